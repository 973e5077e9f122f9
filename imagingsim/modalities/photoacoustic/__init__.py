"""Photoacoustic tomography: multi-wavelength p0 of one slice, acoustic propagation, reconstruction, unmixing.

Modules: ``spec`` (settings), ``spectra`` (absorber spectra of ``data/photoacoustic.toml``,
oxygen dissociation), ``absorbers`` (the slice's haemoglobin, water, lipid and agents),
``optics`` (diffusion-theory fluence), ``geometry`` (elements and time axis), ``acoustic``
(the forward operator and its adjoint), ``recon`` (filtered back-projection, CGLS),
``unmixing`` (spectral unmixing, sO2), ``evaluation`` (errors against the truth), ``acquire``
(the driver's steps), ``result``, ``bids`` (writer), ``truth`` (truth-file patterns),
``summary`` (CLI lines), ``report`` (its section of the teaching report).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

from imagingsim.modalities.base import AcquisitionContext, CostModel, Modality, StageCost, WriteContext
from imagingsim.modalities.photoacoustic.spec import PhotoacousticSpec
from imagingsim.modalities.photoacoustic.truth import TRUTH_FILES


class Photoacoustic(Modality):
    name = "photoacoustic"
    title = "photoacoustic tomography"
    description = "Photoacoustic tomography: multi-wavelength slice, ring/linear array, back-projection and LSQ, sO2 unmixing"
    Spec = PhotoacousticSpec
    bids_datatype = "pa"
    bids_standard = False
    truth_files = TRUTH_FILES
    example = ("mouse_targeted_spion", ('modalities.enabled=["photoacoustic"]', "phantom.voxel_size_mm=1.0"))
    extension_suffixes: ClassVar[dict[str, str]] = {
        "pa": "a photoacoustic image of one axial slice (NIfTI one voxel thick; 4th axis wavelength or endmember)",
        "so2error": "photoacoustic sO2 error by depth, without and with fluence compensation (TSV)",
    }
    # Fallback per voxel of the phantom (cost() below sizes the slice's operator instead).
    cost_model = CostModel(constant=StageCost(50e6, 1e5, 0.5), per_voxel=StageCost(20.0, 0.0, 1e-6),
                           per_voxel_time=StageCost(5.0, 2.0, 1e-7))

    def check(self, spec: PhotoacousticSpec, scenario) -> None:
        from imagingsim.modalities.photoacoustic.absorbers import agent_endmembers

        if spec.slice_z_mm is not None:
            from imagingsim.phantom.build import phantom_grid

            grid = phantom_grid(scenario.phantom)
            low = grid.origin_mm[2] - 0.5 * grid.voxel_size_mm[2]
            high = low + grid.shape[2] * grid.voxel_size_mm[2]
            if not low <= spec.slice_z_mm <= high:
                raise ValueError(f"modalities.photoacoustic.slice_z_mm: {spec.slice_z_mm:g} mm is outside the phantom, "
                                 f"whose slices span {low:g} to {high:g} mm")
        members, _, _ = agent_endmembers(scenario.agents, spec.wavelengths_nm, spec.gold_form, spec.gold_plasmon_peak_nm)
        needed = 4 + len(members)
        if len(spec.wavelengths_nm) < needed:
            raise ValueError(f"modalities.photoacoustic.wavelengths_nm: {len(spec.wavelengths_nm)} wavelengths for "
                             f"{needed} absorbers (HbO2, Hb, water, lipid{''.join(', ' + m.key for m in members)}); "
                             f"give at least {needed}")

    def cost(self, spec: PhotoacousticSpec, scenario, grid) -> StageCost:
        """Sized by the slice's sparse operator: entries = pixels x elements x samples per footprint."""
        nx, ny, _ = grid.shape
        h = grid.voxel_size_mm[0]
        step = spec.speed_of_sound_m_per_s / 1000.0 / spec.sampling_rate_MHz
        entries = nx * ny * spec.n_elements * (math.ceil(math.sqrt(2.0) * h / step) + 2)
        n_t = math.hypot(nx * h, ny * h) * 1.2 / step
        times, wavelengths = len(scenario.schedule.times_h), len(spec.wavelengths_nm)
        signal_bytes = spec.n_elements * n_t * wavelengths * 8.0
        # The matrix in both orientations (8 B value + 4 B index), about five float64 build
        # temporaries of one block, the signals and images of every time.
        memory = (2 * 12.0 * entries + 5 * 8.0 * min(entries, 2e6) + times * (signal_bytes + 40.0 * nx * ny * wavelengths)
                  + 50e6)
        output = times * (4.0 * spec.n_elements * n_t * wavelengths + 4.0 * nx * ny * wavelengths * 8) + 1e5
        # Fitted on the 2-core CI machine (mouse at 1 and 0.5 mm, 128 elements, 7 wavelengths,
        # 20 CGLS iterations: 0.7-1.5 s per time): per operator application and wavelength,
        # ~1.2 ns per matrix entry plus ~15 ns per sample of the padded FFTs.
        applications = 2 + (2 * spec.lsq_iterations + 1 if "lsq" in spec.recon else 0)
        per_application = 1.2e-9 * entries + 1.5e-8 * spec.n_elements * 2.0 * n_t
        seconds = 0.3 + 2e-8 * entries + times * wavelengths * applications * per_application
        return StageCost(memory, output, seconds)

    def acquire(self, ctx: AcquisitionContext):
        from imagingsim.modalities.photoacoustic.acquire import acquire_photoacoustic

        return acquire_photoacoustic(ctx)

    def write(self, stage: Path, acquisition, ctx: WriteContext):
        from imagingsim.modalities.photoacoustic.bids import write_photoacoustic

        return write_photoacoustic(stage, acquisition, ctx)

    def summary(self, acquisition, subject) -> list[str]:
        from imagingsim.modalities.photoacoustic.summary import summary_lines

        return summary_lines(acquisition, subject)

    def report_section(self, view):
        from imagingsim.modalities.photoacoustic.report import report_section

        return report_section(view)


MODALITY = Photoacoustic()
