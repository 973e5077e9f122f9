"""MRI with iron-oxide (SPION) contrast: multi-echo spoiled GRE, k-space, coils, CG-SENSE, R2* and iron.

Modules: ``spec`` (settings), ``physics`` (relaxation, relaxivity), ``sampling`` (masks,
coils), ``recon`` (zero filling, CG-SENSE, R2* fit), ``acquire`` (driver), ``result``,
``bids`` (writer), ``truth`` (truth-file patterns), ``summary`` (CLI lines).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from imagingsim.modalities.base import AcquisitionContext, CostModel, Modality, StageCost, WriteContext
from imagingsim.modalities.mri.spec import MRISpec
from imagingsim.modalities.mri.truth import TRUTH_FILES


class MRI(Modality):
    name = "mri"
    title = "MRI"
    description = "MRI: multi-echo GRE with SPION relaxivity, k-space, undersampling, coils, CG-SENSE, R2* and iron maps"
    Spec = MRISpec
    bids_datatype = "anat"
    truth_files = TRUTH_FILES
    example = ("mouse_peg_liposome", ('modalities.enabled=["mri"]',))
    # Fitted (benchmarks/resources.py) to two MRI scenarios, 4-6 sessions, 63 k - 504 k
    # voxels: k-space of every coil and echo is kept per session (complex64). Written: ~100 B/voxel/session
    # when k-space was a bare complex64 array; cost() swaps that array for the ISMRMRD file's real size.
    cost_model = CostModel(constant=StageCost(0.0, 0.2e6, 0.05), per_voxel=StageCost(741.0, 0.1, 5.2e-6),
                           per_voxel_time=StageCost(107.0, 99.8, 0.22e-6))
    baselines: ClassVar[dict[str, str]] = {
        "zero_filled": "imagingsim.modalities.mri.problem:zero_filled_baseline",
        "cg_sense": "imagingsim.modalities.mri.problem:cg_sense_baseline",
    }

    def cost(self, spec: MRISpec, scenario, grid) -> StageCost:
        """The fitted model, with the k-space written as ISMRMRD: per session one acquisition per
        acquired phase encode and echo, each a header plus coils x readout complex64 samples."""
        from imagingsim.modalities.mri.ismrmrd_io import ACQUISITION_OVERHEAD_BYTES

        nx, ny, nz = grid.shape
        sessions, echoes, coils = len(scenario.schedule.times_h), len(spec.echo_times_ms), spec.n_coils
        bare = sessions * echoes * coils * 8.0 * grid.n_voxels  # the complex64 array the fit was made with
        lines = sessions * echoes * ny * nz / spec.acceleration
        ismrmrd = lines * (ACQUISITION_OVERHEAD_BYTES + 8.0 * coils * nx)
        return super().cost(spec, scenario, grid) + StageCost(0.0, ismrmrd - bare, 0.0)

    def check(self, spec: MRISpec, scenario) -> None:
        from imagingsim.modalities.mri.acquire import check_mri

        check_mri(spec, scenario)

    def recon_problem(self, ctx: AcquisitionContext, acquisition, *, frame: int = 0):
        from imagingsim.modalities.mri.problem import mri_problem

        return mri_problem(ctx, acquisition, frame=frame)

    def acquire(self, ctx: AcquisitionContext):
        from imagingsim.modalities.mri.acquire import acquire_mri

        return acquire_mri(ctx)

    def write(self, stage: Path, acquisition, ctx: WriteContext):
        from imagingsim.modalities.mri.bids import write_mri

        return write_mri(stage, acquisition, ctx)

    def summary(self, acquisition, subject) -> list[str]:
        from imagingsim.modalities.mri.summary import summary_lines

        return summary_lines(acquisition, subject)

    def report_section(self, view):
        from imagingsim.modalities.mri.report import report_section

        return report_section(view)


MODALITY = MRI()
