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
  cone-beam geometry is not modelled). Energies are processed in chunks so the temporary
  ``(sinogram, energies)`` arrays stay under :data:`MAX_CHUNK_ELEMENTS`.
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
  (:func:`polyenergetic_counts`) whose rounding can differ between BLAS builds or CPU
  instruction sets (last-bit differences, not statistical ones).
"""

from __future__ import annotations

import functools
import math
from dataclasses import fields
from typing import Any

from imagingsim.backend import Backend
from imagingsim.data.tables import read_table
from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.ct.result import CTAcquisition, CTSystemParams, WaterCalibration
from imagingsim.modalities.ct.spec import CTSpec
from imagingsim.modalities.ct.spectrum import (
    BONE_CHORD_FRACTION,
    XraySpectrum,
    bone_hu,
    calibration_mu_water_per_mm,
    effective_energy_keV,
    filtered_kramers,
    kramers_photons,
    measured_bone_hu,
    water_hardening_table,
    water_mu_per_mm,
    xray_spectrum,
)
from imagingsim.modalities.settings import merged_preset
from imagingsim.modalities.stages import StageTimer
from imagingsim.physics.attenuation import (
    CONTRAST_ELEMENTS,
    contrast_density_g_per_ml,
    element_mass_attenuation_cm2_per_g,
    linear_attenuation_per_mm,
    material_mass_attenuation_cm2_per_g,
)
from imagingsim.physics.noise import poisson_counts
from imagingsim.projectors import ParallelBeamGeometry, ParallelProjector, PixelBackprojector
from imagingsim.recon import fbp
from imagingsim.scenario import Scenario

#: Random stream of CT noise: the generator key is (seed, CT_NOISE_STREAM, scan index).
CT_NOISE_STREAM = 0xC7
#: CTSystemParams fields a scenario may override (the CTSpec field of the same name).
OVERRIDABLE = (
    "kvp",
    "tube_current_time_mAs",
    "added_filtration_mm_Al",
    "added_filtration_mm_Cu",
    "n_views",
    "fbp_filter",
    "fbp_cutoff",
)
#: Largest temporary (sinogram bins x energies) array of the polyenergetic sum, elements
#: (2**25 float32 = 128 MiB; the exp() of the chunk doubles it).
MAX_CHUNK_ELEMENTS = 2**25
#: Fewest unattenuated photons per detector bin per view that check_ct accepts: below this
#: even air is Poisson-dominated and the log of a few counts is meaningless.
MIN_AIR_PHOTONS = 100.0
#: Below this fraction of the unfiltered photons surviving the filters, check_ct blames them.
MIN_FILTER_TRANSMISSION = 1e-4
#: (mu/rho) in cm^2/g times a density in g/mL (= g/cm^3) is 1/cm; this makes it 1/mm.
_PER_CM_TO_PER_MM = 0.1


# --- presets -----------------------------------------------------------------------------


@functools.cache
def ct_presets() -> dict[str, dict[str, Any]]:
    """The ``[ct.<name>]`` tables of ``data/ct_systems.toml``, by preset name."""
    return read_table("ct_systems.toml")["ct"]


def ct_system_params(spec: CTSpec) -> CTSystemParams:
    """The CT system of ``spec``: its preset, each field the scenario sets replacing the preset's.

    Raises
    ------
    ValueError
        One line: an unknown preset or a preset missing a field.
    """
    presets = ct_presets()
    if spec.system not in presets:
        raise ValueError(f"modalities.ct.system: no preset {spec.system!r}; presets: {', '.join(presets)}")
    preset = presets[spec.system]
    derived = {"preset", "fluence_kvp", "fluence_filtration_mm", "water_precorrection", "noise"}
    names = [f.name for f in fields(CTSystemParams) if f.name not in derived]
    values = merged_preset(spec, preset, names, OVERRIDABLE, table=f"data/ct_systems.toml [ct.{spec.system}]")
    for name in ("kvp", "tube_current_time_mAs", "inherent_filtration_mm_Al", "added_filtration_mm_Al",
                 "added_filtration_mm_Cu", "fluence_photons_per_mAs_per_mm2", "calibration_diameter_mm", "fbp_cutoff"):
        values[name] = float(values[name])
    values["n_views"] = int(values["n_views"])
    return CTSystemParams(
        preset=spec.system,
        fluence_kvp=float(preset["kvp"]),
        fluence_filtration_mm={
            "Al": float(preset["inherent_filtration_mm_Al"]) + float(preset["added_filtration_mm_Al"]),
            "Cu": float(preset["added_filtration_mm_Cu"]),
        },
        water_precorrection=bool(spec.water_precorrection),
        noise=bool(spec.noise),
        **values,
    )


def scan_spectrum(system: CTSystemParams) -> XraySpectrum:
    """The filtered spectrum at isocentre per mAs of a system's kVp and filtration."""
    return xray_spectrum(system.kvp, system.filtration_mm, system.fluence_photons_per_mAs_per_mm2,
                         system.fluence_kvp, system.fluence_filtration_mm)


def photons_per_detector_bin(spectrum: XraySpectrum, system: CTSystemParams, bin_mm: float, slice_mm: float
                             ) -> tuple[float, ...]:
    """``N0(E)``: unattenuated photons per detector bin per view in each energy bin.

    Fluence per mAs x mAs per view (the scan's mAs spread evenly over the views) x the
    detector element's area at isocentre (radial bin x slice thickness, mm^2).
    """
    per_view = system.tube_current_time_mAs / system.n_views * bin_mm * slice_mm
    return tuple(n * per_view for n in spectrum.photons_per_mAs_per_mm2)


def water_calibration(spectrum: XraySpectrum, diameter_mm: float, i0_photons: float, *,
                      water_precorrection: bool = True, bone_mm: float | None = None) -> WaterCalibration:
    """Reference energy, mu_water, HU of bone and the pre-correction table of a spectrum.

    The table reaches ``ln(i0_photons)``, the largest line integral a measurement clipped at
    1 photon can report.

    Parameters
    ----------
    spectrum : XraySpectrum
    diameter_mm : float
        Calibration water cylinder diameter, mm.
    i0_photons : float
        Unattenuated photons per detector bin per view (the 1-photon clip caps ``p`` at ``ln I0``).
    water_precorrection : bool, keyword-only
        Whether the reconstruction pre-corrects for water: ``hu_bone`` is calibrated through
        the same processing (:func:`~imagingsim.modalities.ct.spectrum.measured_bone_hu`).
    bone_mm : float, keyword-only
        Cortical-bone chord of the bone calibration, mm; default
        :data:`~imagingsim.modalities.ct.spectrum.BONE_CHORD_FRACTION` x ``diameter_mm``.
    """
    mu_cal = calibration_mu_water_per_mm(spectrum, diameter_mm)
    energy = effective_energy_keV(mu_cal)
    max_p = math.log(max(i0_photons, math.e))
    lengths, integrals = water_hardening_table(spectrum, max_p)
    mu_w = water_mu_per_mm((energy,))[0]
    bone = BONE_CHORD_FRACTION * float(diameter_mm) if bone_mm is None else float(bone_mm)
    hu_bone = measured_bone_hu(spectrum, diameter_mm, bone, mu_w, max_line_integral=max_p,
                               water_table=(lengths, integrals) if water_precorrection else None)
    return WaterCalibration(
        effective_energy_keV=energy,
        mu_water_per_mm=mu_w,
        calibration_mu_water_per_mm=mu_cal,
        calibration_diameter_mm=float(diameter_mm),
        hu_bone=hu_bone,
        hu_bone_monoenergetic=bone_hu(energy),
        calibration_bone_mm=bone,
        water_precorrection=bool(water_precorrection),
        water_lengths_mm=lengths,
        water_line_integrals=integrals,
    )


def check_ct(spec: CTSpec, scenario: Scenario) -> None:
    """Fail fast, before any simulation, on CT settings that only the presets can check.

    Raises
    ------
    ValueError
        One line naming the field: filters that stop (almost) every photon at this kVp, or
        too few photons per detector bin per view in air (mAs over views too small for the
        voxel size).
    """
    system = ct_system_params(spec)
    _, unfiltered = kramers_photons(system.kvp)
    _, filtered = filtered_kramers(system.kvp, system.filtration_mm)
    transmission = math.fsum(filtered) / math.fsum(unfiltered)
    if transmission < MIN_FILTER_TRANSMISSION:
        field = "added_filtration_mm_Cu" if system.added_filtration_mm_Cu > 0 else "added_filtration_mm_Al"
        raise ValueError(
            f"modalities.ct.{field}: {system.added_filtration_mm_Cu:g} mm Cu + {system.filtration_mm['Al']:g} mm Al "
            f"transmits {transmission:.1e} of the {system.kvp:g} kVp photons (need >= {MIN_FILTER_TRANSMISSION:g}); "
            "use less filtration or a higher kvp"
        )
    voxel = scenario.phantom.voxel_size_mm
    i0 = math.fsum(photons_per_detector_bin(scan_spectrum(system), system, voxel, voxel))
    if i0 < MIN_AIR_PHOTONS:
        raise ValueError(
            f"modalities.ct.tube_current_time_mAs: {system.tube_current_time_mAs:g} mAs over {system.n_views} views "
            f"gives {i0:.3g} photons per {voxel:g} x {voxel:g} mm detector bin per view in air (need >= "
            f"{MIN_AIR_PHOTONS:g}); raise the mAs or lower n_views"
        )


# --- basis maps and attenuation tables -----------------------------------------------------


def material_basis_maps(phantom, backend: Backend) -> tuple[tuple[str, ...], Any]:
    """Density maps of the materials present in a phantom, g/mL.

    Returns
    -------
    materials : tuple of str
        Material names (``data/materials.toml``) that occupy at least one voxel, in label order.
    maps : device array, float32, ``(nx, ny, nz, n_materials)``
        Voxel density where the voxel's label is made of that material, 0 elsewhere.

    Notes
    -----
    One explicit host transfer: the voxel count of each label (so absent materials cost no
    projection).
    """
    xp = backend.xp
    labels = xp.astype(phantom.labels, xp.int64)
    values = sorted(phantom.materials)
    counts = backend.to_host(xp.stack([xp.sum(xp.astype(labels == v, xp.int64)) for v in values])).tolist()
    materials = tuple(dict.fromkeys(phantom.materials[v] for v, n in zip(values, counts) if n > 0))
    density = phantom.properties["density_g_per_ml"]
    maps = []
    for name in materials:
        inside = xp.zeros(labels.shape, dtype=xp.bool, device=backend.device)
        for v in values:
            if phantom.materials[v] == name:
                inside = inside | (labels == v)
        maps.append(xp.astype(xp.where(inside, density, 0.0), xp.float32))
    return materials, xp.stack(maps, axis=-1)


#: Density of each contrast element present, g/mL, ``(nx, ny, nz, T)`` (shared with SPECT,
#: whose photons the same gold and iodine attenuate).
contrast_maps_g_per_ml = contrast_density_g_per_ml


def attenuation_coefficients(materials, elements, energies_keV) -> list[list[float]]:
    """``(mu/rho)(E) / 10`` of each basis, 1/mm per g/mL: rows energies, columns materials then elements.

    Multiplying a basis map's line integral (g/mL x mm) by its column gives the
    dimensionless ``p(E)`` contribution.
    """
    energies = tuple(float(e) for e in energies_keV)
    columns = [material_mass_attenuation_cm2_per_g(m, energies) for m in materials]
    columns += [element_mass_attenuation_cm2_per_g(CONTRAST_ELEMENTS[e], energies) for e in elements]
    return [[c[i] * _PER_CM_TO_PER_MM for c in columns] for i in range(len(energies))]


# --- kernels -------------------------------------------------------------------------------


def project_basis(maps, geometry: ParallelBeamGeometry, backend: Backend):
    """Line integrals of a stack of basis maps ``(nx, ny, nz, K)`` -> ``(n_views * n_bins * nz, K)``, float32.

    All ``nz * K`` planes go through one sparse product (the projector's matrix is cached per
    geometry, so the column count is free).
    """
    xp = backend.xp
    nx, ny, nz, k = maps.shape
    projector = ParallelProjector(geometry, nz * k, backend)
    sinogram = projector.apply(xp.reshape(xp.astype(maps, xp.float32), (nx, ny, nz * k)))
    return xp.reshape(sinogram, (-1, k))


def polyenergetic_counts(line_integrals, coefficients, photons, backend: Backend, *,
                         max_chunk_elements: int = MAX_CHUNK_ELEMENTS):
    """Expected photon-counting detector counts ``sum_E N0(E) exp(-sum_k A[E, k] L[:, k])``.

    Parameters
    ----------
    line_integrals : sequence of device arrays ``(n_rays, K_i)``, float32
        Basis line integrals (g/mL x mm); several blocks (static tissue, one time's contrast)
        are summed without being concatenated.
    coefficients : sequence of lists ``[n_energies][K_i]``
        The matching blocks of :func:`attenuation_coefficients`, 1/mm per g/mL.
    photons : sequence of float
        ``N0(E)``, unattenuated photons per ray in each energy bin.
    backend : Backend
    max_chunk_elements : int, keyword-only
        Energies are summed in chunks of at most ``max_chunk_elements // n_rays`` (at least 1).

    Returns
    -------
    device array ``(n_rays,)``, float32
        Expected counts per ray.
    """
    xp, dev = backend.xp, backend.device
    n_rays = line_integrals[0].shape[0]
    n_energies = len(photons)
    chunk = max(1, min(n_energies, max_chunk_elements // max(n_rays, 1)))
    total = xp.zeros((n_rays,), dtype=xp.float32, device=dev)
    for start in range(0, n_energies, chunk):
        stop = min(n_energies, start + chunk)
        exponent = None
        for block, table in zip(line_integrals, coefficients, strict=True):
            # (K, chunk): one column of attenuation coefficients per energy of the chunk.
            a = xp.asarray([list(col) for col in zip(*table[start:stop])], dtype=xp.float32, device=dev)
            term = xp.matmul(block, a)  # (n_rays, chunk)
            exponent = term if exponent is None else exponent + term
        weights = xp.asarray(list(photons[start:stop]), dtype=xp.float32, device=dev)
        total = total + xp.matmul(xp.exp(-exponent), weights)
    return total


def line_integrals_from_counts(counts, i0_photons: float, backend: Backend):
    """``ln(I0 / max(counts, 1))``: the measured line integral (clipped: see the module notes)."""
    xp = backend.xp
    return xp.astype(math.log(i0_photons) - xp.log(xp.clip(counts, 1.0, None)), xp.float32)


def water_precorrect(line_integrals, calibration: WaterCalibration, backend: Backend):
    """Linearise measured line integrals for water: ``p -> mu_water(E_ref) L(p)``.

    ``L(p)`` inverts the table ``p_poly(L)`` by linear interpolation; outside the table
    (negative ``p`` from noise) the end segments are extended, so noise stays zero-mean
    around 0.

    Parameters
    ----------
    line_integrals : device array, any shape, float32
    calibration : WaterCalibration
    backend : Backend

    Returns
    -------
    device array, shape and dtype of ``line_integrals``
    """
    xp, dev = backend.xp, backend.device
    shape = line_integrals.shape
    p = xp.reshape(line_integrals, (-1,))
    table_p = xp.asarray(calibration.water_line_integrals, dtype=p.dtype, device=dev)
    table_l = xp.asarray(calibration.water_lengths_mm, dtype=p.dtype, device=dev)
    n = table_p.shape[0]
    upper = xp.clip(xp.searchsorted(table_p, p, side="right"), 1, n - 1)
    lower = upper - 1
    p0, p1 = xp.take(table_p, lower), xp.take(table_p, upper)
    l0, l1 = xp.take(table_l, lower), xp.take(table_l, upper)
    length = l0 + (p - p0) * (l1 - l0) / (p1 - p0)
    return xp.reshape(length * calibration.mu_water_per_mm, shape)


# --- the acquisition ---------------------------------------------------------------------


def acquire_ct(ctx: AcquisitionContext) -> CTAcquisition:
    """Simulate and reconstruct one CT scan per schedule time (see the module docstring).

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
    phantom, delivery, backend, seed = ctx.phantom, ctx.delivery, ctx.backend, ctx.seed
    xp = backend.xp
    timer = StageTimer()
    system = ct_system_params(ctx.spec)
    grid = phantom.grid
    (nx, ny, nz), (dx, dy, dz) = grid.shape, grid.voxel_size_mm
    times = tuple(float(t) for t in delivery.times_h)
    n_scans = len(times)
    geometry = ParallelBeamGeometry.covering((nx, ny), (dx, dy), system.n_views)
    spectrum = scan_spectrum(system)
    photons = photons_per_detector_bin(spectrum, system, geometry.bin_size_mm, dz)
    i0 = math.fsum(photons)
    calibration = water_calibration(spectrum, system.calibration_diameter_mm, i0,
                                    water_precorrection=system.water_precorrection)
    materials, tissue = material_basis_maps(phantom, backend)
    contrast = contrast_maps_g_per_ml(delivery, backend)
    elements = tuple(contrast)
    table = attenuation_coefficients(materials, elements, spectrum.energies_keV)
    n_mat = len(materials)
    tissue_table = [row[:n_mat] for row in table]
    contrast_table = [row[n_mat:] for row in table]
    timer.lap("setup")

    tissue_lines = project_basis(tissue, geometry, backend)
    del tissue
    contrast_lines = None
    if elements:
        # (nx, ny, nz, T, C) -> one projection of every time and element.
        stacked = xp.stack([contrast[e] for e in elements], axis=-1)
        contrast_lines = xp.reshape(project_basis(xp.reshape(stacked, (nx, ny, nz, n_scans * len(elements))), geometry,
                                                  backend), (-1, n_scans, len(elements)))
        del stacked
    timer.lap("projection")

    sino_shape = (geometry.n_angles, geometry.n_bins, nz)
    expected, measured = [], []
    for k in range(n_scans):
        if contrast_lines is None:
            counts = expected[0] if k else xp.reshape(
                polyenergetic_counts([tissue_lines], [tissue_table], photons, backend), sino_shape)
        else:
            blocks = [tissue_lines, contrast_lines[:, k, :]]
            counts = xp.reshape(polyenergetic_counts(blocks, [tissue_table, contrast_table], photons, backend), sino_shape)
        expected.append(counts)
        timer.lap("counts")
        if system.noise:
            draw = poisson_counts(counts, backend.rng(seed, CT_NOISE_STREAM, k), validate=False)
            measured.append(xp.astype(draw, xp.float32))
        else:
            measured.append(counts)
        timer.lap("noise")
    del tissue_lines, contrast_lines
    expected_counts = xp.stack(expected, axis=-1)
    measured_counts = xp.stack(measured, axis=-1)
    del expected, measured

    mu_recon = reconstruct_ct(measured_counts, i0, calibration, geometry, system, backend)
    mu_w = calibration.mu_water_per_mm
    hu = xp.astype((mu_recon - mu_w) * (1000.0 / mu_w), xp.float32)
    timer.lap("recon")

    mu_true, contrast_mg = true_attenuation(phantom, contrast, calibration.effective_energy_keV, n_scans, backend)
    timer.lap("truth")
    return CTAcquisition(
        system=system,
        geometry=geometry,
        times_h=times,
        spectrum=spectrum,
        i0_photons_per_energy=photons,
        i0_photons=i0,
        calibration=calibration,
        materials=materials,
        contrast_elements=elements,
        hu=hu,
        mu_recon_per_mm=mu_recon,
        expected_counts=expected_counts,
        measured_counts=measured_counts,
        mu_true_per_mm=mu_true,
        contrast_mg_per_ml=contrast_mg,
        timings_s=timer.seconds,
        grid=grid,
    )


def tissue_hu(acquisition: CTAcquisition, phantom, backend: Backend, *, scan: int = 0) -> dict[str, float]:
    """Mean HU of each material's interior (voxels whose 6 neighbours share its label) in one scan.

    Interiors keep partial-volume edges out of the means; materials without interior voxels
    are left out. Air is the air outside the body.
    """
    from imagingsim.physics.metrics import roi_mean

    xp = backend.xp
    labels = phantom.labels
    interior = xp.ones(labels.shape, dtype=xp.bool, device=backend.device)
    for axis in range(3):
        n = labels.shape[axis]
        lower = xp.take(labels, xp.arange(0, n - 1, device=backend.device), axis=axis)
        upper = xp.take(labels, xp.arange(1, n, device=backend.device), axis=axis)
        same = lower == upper
        edge_shape = list(labels.shape)
        edge_shape[axis] = 1
        edge = xp.zeros(tuple(edge_shape), dtype=xp.bool, device=backend.device)
        interior = interior & xp.concat((edge, same), axis=axis) & xp.concat((same, edge), axis=axis)
    names = {}
    for value, material in sorted(phantom.materials.items()):
        names.setdefault(material, []).append(value)
    means = {}
    for material, values in names.items():
        mask = interior & _isin(labels, values, xp)
        if backend.scalar(xp.sum(xp.astype(mask, xp.int64))) > 0:
            means[material] = roi_mean(acquisition.hu[..., scan], mask, backend)[0]
    return means


def _isin(labels, values, xp):
    mask = labels == values[0]
    for v in values[1:]:
        mask = mask | (labels == v)
    return mask


def reconstruct_ct(counts, i0_photons: float, calibration: WaterCalibration, geometry: ParallelBeamGeometry,
                   system: CTSystemParams, backend: Backend):
    """Log, optional water pre-correction and FBP of counts ``(n_views, n_bins, nz, T)`` -> mu ``(nx, ny, nz, T)``, 1/mm.

    All scans go through one FBP (scans stacked as extra slices).
    """
    xp = backend.xp
    n_views, n_bins, nz, t = counts.shape
    lines = line_integrals_from_counts(counts, i0_photons, backend)
    if system.water_precorrection:
        lines = water_precorrect(lines, calibration, backend)
    flat = xp.reshape(lines, (n_views, n_bins, nz * t))
    image = fbp(flat, PixelBackprojector(geometry, nz * t, backend), filter_name=system.fbp_filter,
                cutoff=system.fbp_cutoff)
    nx, ny = geometry.image_shape
    return xp.astype(xp.reshape(image, (nx, ny, nz, t)), xp.float32)


def true_attenuation(phantom, contrast: dict[str, Any], energy_keV: float, n_scans: int, backend: Backend):
    """True mu at ``energy_keV`` per scan (tissue + contrast), 1/mm, and contrast in mg/mL.

    Returns
    -------
    mu : device array, float32, ``(nx, ny, nz, n_scans)``
    contrast_mg_per_ml : dict of str -> device array, float32, ``(nx, ny, nz, n_scans)``
    """
    xp = backend.xp
    tissue = linear_attenuation_per_mm(phantom, energy_keV, backend)
    mu = xp.stack([tissue] * n_scans, axis=-1)
    out = {}
    for element, density in contrast.items():
        per_g = element_mass_attenuation_cm2_per_g(CONTRAST_ELEMENTS[element], (float(energy_keV),))[0]
        mu = mu + density * (per_g * _PER_CM_TO_PER_MM)
        out[element] = xp.astype(density * 1000.0, xp.float32)  # g/mL -> mg/mL
    return xp.astype(mu, xp.float32), out


__all__ = [
    "CT_NOISE_STREAM",
    "MAX_CHUNK_ELEMENTS",
    "MIN_AIR_PHOTONS",
    "OVERRIDABLE",
    "acquire_ct",
    "attenuation_coefficients",
    "check_ct",
    "contrast_maps_g_per_ml",
    "ct_presets",
    "ct_system_params",
    "line_integrals_from_counts",
    "material_basis_maps",
    "photons_per_detector_bin",
    "polyenergetic_counts",
    "project_basis",
    "reconstruct_ct",
    "scan_spectrum",
    "tissue_hu",
    "true_attenuation",
    "water_calibration",
    "water_precorrect",
]
