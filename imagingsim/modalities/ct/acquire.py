"""CT: mu(E) basis maps -> polyenergetic line integrals -> Poisson -> log -> (water pre-correction) -> FBP -> HU.

Model (one scan ``k`` at each schedule time ``t_k``)
----------------------------------------------------
- **Attenuation.** ``mu(E, x) = sum_m rho_m(x) (mu/rho)_m(E)`` over a few basis maps: one
  per material present in the phantom (its voxels' density, g/mL, 0 elsewhere; ICRU
  compositions of ``data/materials.toml``) and one per contrast element present (gold,
  iodine: carrier ug/mL x the label's mass fraction, on top of the tissue it sits in, no
  displacement). Mass attenuation from xraydb (Elam totals, coherent included).
- **Projection.** Each basis map is projected once (Joseph, float32, ``n_views`` over
  180 degrees, bins of the pixel size, one detector row per z plane): ``P rho_m`` in
  g/mL x mm. Per energy bin the line integral is ``p(E) = sum_m (mu/rho)_m(E) P rho_m``, a
  small matrix product on the sinogram, so the projector runs once per basis map instead of
  once per energy. Tissue maps are static; contrast maps change with time.
- **Detector.** Ideal photon counting: ``E[counts] = sum_E N0(E) exp(-p(E))`` with
  ``N0(E)`` the spectrum at isocentre (:mod:`imagingsim.modalities.ct.spectrum`) x mAs per view
  (the scan's mAs spread evenly over the views) x bin width x slice thickness. No energy
  weighting, scatter, bow-tie, focal spot or detector blur; parallel beam (fan- or
  cone-beam geometry is not modelled). Rays are summed in pieces of
  :data:`~imagingsim.modalities.ct.counts.RAYS_PER_PIECE` on the backend's workers (the
  ``(rays, energies)`` temporaries stay in the cache).
- **Noise.** Poisson counts from ``backend.rng(seed, CT_NOISE_STREAM, k)``; with
  ``noise = false`` the expected counts are used as measured.
- **Log.** ``p = ln(I0 / max(counts, 1))``, ``I0 = sum_E N0(E)``. A ray with 0 counts
  (photon starvation behind bone or metal) has an infinite log: clipping at 1 photon caps it
  at ``ln(I0)``, a bounded error in a few rays instead of an inf that FBP would spread over
  the whole slice (scanners handle starvation with their own adaptive filters).
- **Water pre-correction** (``water_precorrection``, default on). Beam hardening makes
  ``p`` grow slower than linearly with path length: a uniform water cylinder reconstructs
  darker in its centre (cupping). The table ``p_poly(L)`` of water lengths ``L`` is inverted
  by linear interpolation and each measured ``p`` replaced by ``mu_water(E_ref) L(p)``: exact
  for water, approximate for soft tissue, not for bone (bone streaks remain, as on scanners).
- **Reference energy and HU.** ``E_ref`` is the energy at which water attenuates as much as
  the mean FBP value (without pre-correction) inside a water cylinder of the preset's
  ``calibration_diameter_mm`` (:func:`~imagingsim.modalities.ct.spectrum.calibration_mu_water_per_mm`).
  ``HU = 1000 (mu - mu_w) / mu_w`` with ``mu_w = mu_water(E_ref)``, which by that
  definition also equals the uncorrected calibration value: with pre-correction water reads
  0 HU everywhere; without, the calibration cylinder reads 0 HU on average. The truth
  ``mu_true_per_mm`` is stated at ``E_ref``.
- **Reconstruction.** FBP (:func:`imagingsim.recon.fbp`) with the preset's filter and
  cut-off, pixel-driven backprojection.
- **Bone calibration** (``hu_bone``). The water pre-correction linearises water only: bone
  hardens the beam more than water of the same attenuation, so it reconstructs well below
  its monoenergetic HU at ``E_ref`` (on the presets ~5400 HU in the mouse phantom instead of
  6750, ~1500 in the torso instead of 2220; the calibrated break points are 5225 and 1630 HU). ``hu_bone`` is therefore calibrated through the
  chain the data go through
  (:func:`~imagingsim.modalities.ct.spectrum.measured_bone_hu`): a central chord of cortical
  bone, :data:`~imagingsim.modalities.ct.spectrum.BONE_CHORD_FRACTION` of the calibration
  diameter, inside the calibration water cylinder, as a polyenergetic line integral with the
  1-photon clip, then the water pre-correction when it is on (else the uncorrected data);
  bone's effective mu, relative to the all-water chord, gives its HU as the CT measures it.
  It is the break point of the bilinear HU -> mu conversion (:func:`~imagingsim.modalities.ct.attenuation.hu_to_mu_per_mm`) that
  SPECT attenuation correction uses. The monoenergetic value is kept as
  ``hu_bone_monoenergetic`` for reference (as a break point it under-estimates bone's mu at
  140 keV by 12-20 %). Bone thinner than the chord reads a little higher, thicker a little
  lower (self-hardening): rods of 0.1-0.3 x the diameter give bone's mu at 140 keV within
  +0.5 % to -4.5 %.
- **HU -> mu limits.** The bilinear conversion assumes every voxel is an air-water or
  water-bone mixture. Fat is neither: its low effective Z puts it far below water at low
  energies (-261 HU true at the preclinical E_ref of 26 keV, reading ~-290 HU in the mouse),
  so at low kVp it maps to ~0.7 x water's mu at 140 keV where its true mu is 0.95 x water's
  (clinical 120 kVp: ~-100 HU, ~0.9 x). Soft tissues denser than water map a few % low.
  Noise converted voxel by voxel and averaged afterwards (as SPECT does) reads slightly low
  at the kink at 0 HU, about 0.3 x sigma_HU / 1000 of water's mu (~1 % at 30 HU noise).
- **Determinism.** Same inputs, seed and backend give the same counts and images bit for bit
  on the same machine and BLAS library: the polyenergetic sum is a float32 matrix product
  (:func:`~imagingsim.modalities.ct.counts.polyenergetic_counts`) whose rounding can differ between BLAS builds or CPU
  instruction sets (last-bit differences, not statistical ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from imagingsim import progress
from imagingsim.backend import Backend
from imagingsim.grid import ImageGrid
from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.ct.counts import (
    attenuation_coefficients,
    contrast_maps_g_per_ml,
    material_basis_maps,
    polyenergetic_counts,
    project_basis,
    true_attenuation,
)
from imagingsim.modalities.ct.recon import hu_from_mu, reconstruct_ct
from imagingsim.modalities.ct.result import CTAcquisition, CTSystemParams, WaterCalibration
from imagingsim.modalities.ct.spectrum import XraySpectrum
from imagingsim.modalities.ct.system import ct_system_params, photons_per_detector_bin, scan_spectrum, water_calibration
from imagingsim.modalities.stages import StageTimer
from imagingsim.physics.noise import poisson_counts
from imagingsim.projectors import ParallelBeamGeometry

#: Random stream of CT noise: the generator key is (seed, CT_NOISE_STREAM, scan index).
CT_NOISE_STREAM = 0xC7


@dataclass(frozen=True, eq=False)
class CTPlan:
    """Everything a CT study needs before any photon is counted.

    Attributes
    ----------
    system : CTSystemParams
        The preset after the scenario's overrides.
    grid : ImageGrid
        The phantom grid (the reconstruction grid too).
    geometry : ParallelBeamGeometry
        Views over 180 degrees, bins of the pixel size.
    times_h : tuple of float
        Scan times, h after the scenario's t = 0 (every schedule time).
    spectrum : XraySpectrum
        Photons per energy bin at isocentre.
    photons : tuple of float
        Unattenuated photons per detector bin per view, per energy bin.
    i0_photons : float
        Their sum.
    calibration : WaterCalibration
        Effective energy, mu of water and the water hardening table.
    materials : tuple of str
        Basis materials present in the phantom.
    tissue_maps : device array
        Their densities, g/mL, ``(nx, ny, nz, M)``.
    contrast_maps : dict of str -> device array
        Gold / iodine density per scan, g/mL, ``(nx, ny, nz, T)``.
    tissue_table, contrast_table : list of list of float
        Mass attenuation (cm^2/g) of each basis map per energy bin, rows per energy.
    """

    system: CTSystemParams
    grid: ImageGrid
    geometry: ParallelBeamGeometry
    times_h: tuple[float, ...]
    spectrum: XraySpectrum
    photons: tuple[float, ...]
    i0_photons: float
    calibration: WaterCalibration
    materials: tuple[str, ...]
    tissue_maps: Any
    contrast_maps: dict[str, Any]
    tissue_table: list[list[float]]
    contrast_table: list[list[float]]

    @property
    def elements(self) -> tuple[str, ...]:
        """Contrast elements present (keys of :attr:`contrast_maps`)."""
        return tuple(self.contrast_maps)


def plan_ct(ctx: AcquisitionContext) -> CTPlan:
    """Resolve the CT settings against the preset and build the basis maps and attenuation tables."""
    phantom, backend = ctx.phantom, ctx.backend
    system = ct_system_params(ctx.spec)
    grid = phantom.grid
    (nx, ny, _), (dx, dy, dz) = grid.shape, grid.voxel_size_mm
    geometry = ParallelBeamGeometry.covering((nx, ny), (dx, dy), system.n_views)
    spectrum = scan_spectrum(system)
    photons = photons_per_detector_bin(spectrum, system, geometry.bin_size_mm, dz)
    i0 = math.fsum(photons)
    calibration = water_calibration(spectrum, system.calibration_diameter_mm, i0,
                                    water_precorrection=system.water_precorrection)
    materials, tissue = material_basis_maps(phantom, backend)
    contrast = contrast_maps_g_per_ml(ctx.delivery, backend)
    table = attenuation_coefficients(materials, tuple(contrast), spectrum.energies_keV)
    n_mat = len(materials)
    return CTPlan(
        system=system, grid=grid, geometry=geometry, times_h=tuple(float(t) for t in ctx.delivery.times_h),
        spectrum=spectrum, photons=photons, i0_photons=i0, calibration=calibration, materials=materials,
        tissue_maps=tissue, contrast_maps=contrast, tissue_table=[row[:n_mat] for row in table],
        contrast_table=[row[n_mat:] for row in table],
    )


def simulate_ct_counts(plan: CTPlan, backend: Backend, seed: int, timer: StageTimer | None = None):
    """Expected and measured counts of every scan.

    Each basis map is projected once; per scan the energies are summed on the sinogram
    (:func:`~imagingsim.modalities.ct.counts.polyenergetic_counts`) and Poisson noise is drawn from
    ``backend.rng(seed, CT_NOISE_STREAM, k)`` (unless ``plan.system.noise`` is off).

    Returns
    -------
    expected, measured : device arrays, float32, ``(n_views, n_bins, nz, T)``
        Photon counts per detector bin.
    """
    xp = backend.xp
    timer = timer or StageTimer()
    nx, ny, nz = plan.grid.shape
    n_scans, elements, geometry = len(plan.times_h), plan.elements, plan.geometry
    tissue_lines = project_basis(plan.tissue_maps, geometry, backend)
    contrast_lines = None
    if elements:
        # (nx, ny, nz, T, C) -> one projection of every time and element.
        stacked = xp.stack([plan.contrast_maps[e] for e in elements], axis=-1)
        contrast_lines = xp.reshape(project_basis(xp.reshape(stacked, (nx, ny, nz, n_scans * len(elements))), geometry,
                                                  backend), (-1, n_scans, len(elements)))
        del stacked
    timer.lap("projection")

    sino_shape = (geometry.n_angles, geometry.n_bins, nz)
    expected = []
    for k in range(n_scans):
        if contrast_lines is None:
            counts = expected[0] if k else xp.reshape(
                polyenergetic_counts([tissue_lines], [plan.tissue_table], plan.photons, backend), sino_shape)
        else:
            blocks = [tissue_lines, contrast_lines[:, k, :]]
            counts = xp.reshape(polyenergetic_counts(blocks, [plan.tissue_table, plan.contrast_table], plan.photons,
                                                     backend), sino_shape)
        expected.append(counts)
        progress.report(k + 1, n_scans)  # the counts are most of the stage's time
    timer.lap("counts")

    def noisy(k: int):
        # Each scan draws from its own stream: the backend may draw two scans at once.
        draw = poisson_counts(expected[k], backend.rng(seed, CT_NOISE_STREAM, k), validate=False)
        return xp.astype(draw, xp.float32)

    measured = backend.map_ordered(noisy, range(n_scans)) if plan.system.noise else expected
    timer.lap("noise")
    del tissue_lines, contrast_lines
    return xp.stack(expected, axis=-1), xp.stack(measured, axis=-1)


def acquire_ct(ctx: AcquisitionContext) -> CTAcquisition:
    """Simulate and reconstruct one CT scan per schedule time (see the module docstring).

    :func:`plan_ct`, then :func:`simulate_ct_counts`, then
    :func:`~imagingsim.modalities.ct.recon.reconstruct_ct` (which reruns on stored counts:
    ``reconstruct_ct(acq.measured_counts, acq.i0_photons, acq.calibration, acq.geometry,
    acq.system, backend)``), then the true mu maps.

    Parameters
    ----------
    ctx : AcquisitionContext
        The CT settings (``ctx.spec``), agents, schedule, phantom, delivery, backend and
        subject seed (:func:`imagingsim.modalities.base.acquisition_context`).

    Returns
    -------
    CTAcquisition
        Every device array float32.
    """
    backend = ctx.backend
    timer = StageTimer()
    plan = plan_ct(ctx)
    timer.lap("setup")
    expected_counts, measured_counts = simulate_ct_counts(plan, backend, ctx.seed, timer)
    mu_recon = reconstruct_ct(measured_counts, plan.i0_photons, plan.calibration, plan.geometry, plan.system, backend)
    hu = hu_from_mu(mu_recon, plan.calibration, backend)
    timer.lap("recon")
    mu_true, contrast_mg = true_attenuation(ctx.phantom, plan.contrast_maps, plan.calibration.effective_energy_keV,
                                            len(plan.times_h), backend)
    timer.lap("truth")
    return CTAcquisition(
        system=plan.system,
        geometry=plan.geometry,
        times_h=plan.times_h,
        spectrum=plan.spectrum,
        i0_photons_per_energy=plan.photons,
        i0_photons=plan.i0_photons,
        calibration=plan.calibration,
        materials=plan.materials,
        contrast_elements=plan.elements,
        hu=hu,
        mu_recon_per_mm=mu_recon,
        expected_counts=expected_counts,
        measured_counts=measured_counts,
        mu_true_per_mm=mu_true,
        contrast_mg_per_ml=contrast_mg,
        timings_s=timer.seconds,
        grid=plan.grid,
    )
