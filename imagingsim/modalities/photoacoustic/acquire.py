"""Photoacoustic tomography: absorbers -> fluence -> p0 -> detector signals -> images -> unmixing.

One axial slice (``slice_z_mm``; default the first tumour's centre) of the phantom is
imaged at every schedule time at each laser wavelength.

Steps
-----
:func:`acquire_photoacoustic` composes them, so the noise and the reconstruction can be
rerun on stored signals:

1. :func:`plan_photoacoustic` -> :class:`PAPlan`: slice, absorber model, acoustic geometry
   and operator, the compensation's fluence model (no random number, no agent map).
2. :func:`expected_signals`: per time, the absorbers' concentrations
   (:mod:`~imagingsim.modalities.photoacoustic.absorbers`), ``mu_a`` and ``mu_s'`` at each
   wavelength, the fluence (:mod:`~imagingsim.modalities.photoacoustic.optics`), the initial
   pressure ``p0 = Gamma mu_a Phi`` (Pa) and the noise-free signals
   (:mod:`~imagingsim.modalities.photoacoustic.acoustic`).
3. :func:`add_noise`: white Gaussian noise of one standard deviation for the whole study,
   ``sigma = max |noise-free signal| / 10^(snr_db / 20)``, drawn from
   ``backend.rng(seed, PA_NOISE_STREAM, k)`` for time ``k``.
4. :func:`reconstruct`: filtered back-projection and/or CGLS least squares started from it
   (:mod:`~imagingsim.modalities.photoacoustic.recon`).
5. :func:`unmix_images`: sO2 and agent concentrations from the ``unmix_from`` images, without
   and with fluence compensation (homogeneous-tissue model, or the true fluence as the
   upper bound; :mod:`~imagingsim.modalities.photoacoustic.unmixing`).

Model limits (also in the sidecars): one slice of a body lit uniformly along z; diffusion
theory with path-averaged optics; homogeneous lossless acoustics with point elements focused
on the slice; no motion, no laser pulse-energy fluctuation, no out-of-plane signal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from imagingsim.backend import Backend
from imagingsim.data.tables import read_table
from imagingsim.grid import ImageGrid
from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.photoacoustic.absorbers import (
    REFERENCE_NM,
    SliceAbsorbers,
    absorption,
    concentrations,
    slice_absorbers,
)
from imagingsim.modalities.photoacoustic.acoustic import AcousticOperator
from imagingsim.modalities.photoacoustic.evaluation import error_by_depth, tumour_means
from imagingsim.modalities.photoacoustic.geometry import AcousticGeometry, acoustic_geometry
from imagingsim.modalities.photoacoustic.optics import beams, fluence, fluence_homogeneous, path_depth
from imagingsim.modalities.photoacoustic.recon import cgls, filtered_backprojection
from imagingsim.modalities.photoacoustic.result import PAAcquisition
from imagingsim.modalities.photoacoustic.spectra import blood_haemoglobin_mM, haemoglobin, severinghaus_so2, water_lipid
from imagingsim.modalities.photoacoustic.unmixing import condition_number, initial_pressure, oxygen_saturation, unmix
from imagingsim.modalities.stages import StageTimer
from imagingsim.phantom.model import Label
from imagingsim.phantom.properties import tissue_table

#: The noise stream of the subject seed (time ``k`` draws from ``(seed, PA_NOISE_STREAM, k)``).
PA_NOISE_STREAM = 0x9A


@dataclass(frozen=True, eq=False)
class PAPlan:
    """What a photoacoustic acquisition fixes before any signal: slice, absorbers, geometry, operator."""

    spec: Any
    slice_index: int
    slice_grid: ImageGrid
    model: SliceAbsorbers
    geometry: AcousticGeometry
    operator: AcousticOperator
    beams: tuple[tuple[int, int], ...]
    fluence_model: Any
    depth_mm: Any
    tumour: Any
    times_h: tuple[float, ...]


def slice_index(phantom, spec) -> int:
    """Index along z of the imaged slice: ``slice_z_mm``, else the first tumour's centre, else the middle."""
    grid = phantom.grid
    if spec.slice_z_mm is not None:
        z = spec.slice_z_mm
    elif phantom.spec.tumours:
        z = phantom.spec.tumours[0].centre_mm[2]
    else:
        return grid.shape[2] // 2
    return min(max(round((z - grid.origin_mm[2]) / grid.voxel_size_mm[2]), 0), grid.shape[2] - 1)


def reference_optics(wavelengths_nm) -> tuple[list[float], list[float]]:
    """``mu_a``, ``mu_s'`` (1/mm) of the typical soft tissue the compensation assumes (tables' values)."""
    props = tissue_table()[Label.SOFT_TISSUE]
    tissue = read_table("optics.toml")["tissue"]["soft_tissue"]
    s = severinghaus_so2(props.po2_mmHg)
    hb = props.blood_volume_fraction * blood_haemoglobin_mM()
    oxy, deoxy = haemoglobin(wavelengths_nm)
    water, lipid = water_lipid(wavelengths_nm)
    mu_a = [hb * (s * o + (1.0 - s) * d) + tissue["water_fraction"] * w + tissue["lipid_fraction"] * f
            for o, d, w, f in zip(oxy.per_mm, deoxy.per_mm, water.per_mm, lipid.per_mm)]
    mu_s = [props.mu_s_prime_810nm_per_mm * (w / REFERENCE_NM) ** -tissue["scattering_power_b"] for w in wavelengths_nm]
    return mu_a, mu_s


def plan_photoacoustic(ctx: AcquisitionContext) -> PAPlan:
    """Resolve the settings against the phantom: slice, absorber model, geometry, operator (step 1)."""
    spec, phantom, backend = ctx.spec, ctx.phantom, ctx.backend
    grid = phantom.grid
    iz = slice_index(phantom, spec)
    h = grid.voxel_size_mm[0]
    slice_grid = ImageGrid((grid.shape[0], grid.shape[1], 1), grid.voxel_size_mm,
                           (grid.origin_mm[0], grid.origin_mm[1], grid.origin_mm[2] + iz * grid.voxel_size_mm[2]))
    wavelengths = tuple(spec.wavelengths_nm)
    model = slice_absorbers(phantom, ctx.agents, iz, wavelengths, spec.gold_form, spec.gold_plasmon_peak_nm, backend)
    geometry = acoustic_geometry(grid.shape[:2], h, grid.origin_mm[:2], grid.voxel_size_mm[2], spec)
    beam_list = beams(spec.detector, spec.side)
    mu_a, mu_s = reference_optics(wavelengths)
    return PAPlan(
        spec=spec,
        slice_index=iz,
        slice_grid=slice_grid,
        model=model,
        geometry=geometry,
        operator=AcousticOperator(geometry, len(wavelengths), backend),
        beams=beam_list,
        fluence_model=fluence_homogeneous(model.body, mu_a, mu_s, h, spec.fluence_mJ_per_cm2, beam_list, backend),
        depth_mm=path_depth(model.body, h, beam_list, backend),
        tumour=phantom.tumour_index[:, :, iz] > 0,
        times_h=tuple(ctx.delivery.times_h),
    )


def expected_signals(plan: PAPlan, delivery, backend: Backend):
    """Per time: concentrations, fluence, p0 and noise-free signals (step 2).

    Returns
    -------
    maps : list of dict
        Per time, each endmember's concentration map ``(nx, ny)``.
    fluence, p0 : lists of device arrays ``(nx, ny, L)``
        mJ/cm^2 and Pa.
    clean : list of device arrays ``(n_elements, n_t, L)``
        Noise-free signals, Pa.
    """
    spec, model = plan.spec, plan.model
    h = plan.slice_grid.voxel_size_mm[0]
    maps, fluences, p0s, clean = [], [], [], []
    for k in range(len(plan.times_h)):
        c = concentrations(model, delivery, k)
        mu_a = absorption(model, c, backend)
        phi = fluence(model.body, mu_a, model.mu_s_prime_per_mm, h, spec.fluence_mJ_per_cm2, plan.beams, backend)
        p0 = initial_pressure(spec.grueneisen, mu_a, phi)
        maps.append(c)
        fluences.append(phi)
        p0s.append(p0)
        clean.append(plan.operator.apply(p0))
    return maps, fluences, p0s, clean


def add_noise(clean, snr_db: float, backend: Backend, seed: int):
    """Noisy signals and the noise sd (Pa): ``sigma = max |clean| / 10^(snr_db / 20)`` over the whole study (step 3)."""
    xp = backend.xp
    peak = xp.max(xp.stack([xp.max(xp.abs(c)) for c in clean]))
    sigma = peak / 10.0 ** (snr_db / 20.0)
    noisy = [c + sigma * backend.rng(seed, PA_NOISE_STREAM, k).standard_normal(tuple(c.shape), dtype=xp.float64)
             for k, c in enumerate(clean)]
    return noisy, sigma


def reconstruct(plan: PAPlan, signals) -> dict[str, Any]:
    """The reconstructions of ``plan.spec.recon`` of one time's signals ``(n_elements, n_t, L)`` (step 4)."""
    fbp = filtered_backprojection(plan.operator, signals)
    out = {}
    if "fbp" in plan.spec.recon:
        out["fbp"] = fbp
    if "lsq" in plan.spec.recon:
        out["lsq"] = cgls(plan.operator, signals, plan.spec.lsq_iterations, start=fbp)
    return out


def unmix_images(plan: PAPlan, images, backend: Backend, true_fluence=None):
    """Concentrations and sO2 from one time's images, without and with fluence compensation (step 5).

    Without: divided by the skin exposure only. With (``fluence_compensation``): by the
    homogeneous-tissue model fluence, or by ``true_fluence`` (that time's simulated fluence).

    Returns
    -------
    plain, so2, compensated, so2_compensated
        Concentrations ``(nx, ny, J)`` and sO2 ``(nx, ny)``; the last two None without compensation.
    """
    spec, members = plan.spec, plan.model.endmembers
    keys = plan.model.keys
    plain = unmix(images, members, spec.grueneisen, float(spec.fluence_mJ_per_cm2), backend)
    so2 = oxygen_saturation(plain[..., keys.index("HbO2")], plain[..., keys.index("Hb")], backend)
    if spec.fluence_compensation == "none":
        return plain, so2, None, None
    assumed = plan.fluence_model if spec.fluence_compensation == "homogeneous" else true_fluence
    comp = unmix(images, members, spec.grueneisen, assumed, backend)
    return plain, so2, comp, oxygen_saturation(comp[..., keys.index("HbO2")], comp[..., keys.index("Hb")], backend)


def acquire_photoacoustic(ctx: AcquisitionContext) -> PAAcquisition:
    """Simulate, reconstruct and unmix the photoacoustic scans of a scenario (module docstring).

    Parameters
    ----------
    ctx : AcquisitionContext
        The settings (``ctx.spec``), agents, phantom, delivery, backend and subject seed.

    Returns
    -------
    PAAcquisition
        Device arrays in float32; ``timings_s`` has one entry per step.
    """
    timer = StageTimer()
    backend = ctx.backend
    xp = backend.xp
    plan = plan_photoacoustic(ctx)
    timer.lap("setup")
    maps, fluences, p0s, clean = expected_signals(plan, ctx.delivery, backend)
    timer.lap("forward")
    noisy, sigma = add_noise(clean, plan.spec.snr_db, backend, ctx.seed)
    # The reconstruction reads what a dataset stores (float32 signals), so it reruns exactly on them.
    noisy = [xp.astype(xp.astype(y, xp.float32), xp.float64) for y in noisy]
    timer.lap("noise")
    images = [reconstruct(plan, y) for y in noisy]
    timer.lap("reconstruction")
    results = [unmix_images(plan, im[plan.spec.unmix_from], backend, phi) for im, phi in zip(images, fluences, strict=True)]
    timer.lap("unmixing")

    def stack(items):
        return xp.stack(items, axis=-1)

    model = plan.model
    compensated = plan.spec.fluence_compensation != "none"
    so2_true = xp.where(model.body & (model.static["HbO2"] + model.static["Hb"] > 0), model.so2, xp.nan)
    unmixed, so2_est = stack([r[0] for r in results]), stack([r[1] for r in results])
    comp = stack([r[2] for r in results]) if compensated else None
    so2_comp = stack([r[3] for r in results]) if compensated else None
    agent_truth = {key: stack([m[key] for m in maps]) for key in model.agent_terms}
    # The same unmixing of the true p0: the colouring of the light alone, without the reconstruction's errors.
    ideal = [unmix_images(plan, p0, backend, phi) for p0, phi in zip(p0s, fluences, strict=True)]
    depth_rows = error_by_depth(plan.depth_mm, plan.slice_grid, plan.times_h, so2_true, {
        "so2_error_uncompensated": so2_est,
        "so2_error_compensated": so2_comp,
        "so2_error_true_p0_uncompensated": stack([r[1] for r in ideal]),
        "so2_error_true_p0_compensated": stack([r[3] for r in ideal]) if compensated else None,
    }, backend)
    tumour_rows = tumour_means(plan.tumour, model, plan.times_h, so2_true, so2_est, so2_comp, agent_truth, unmixed,
                               comp, backend)
    f32 = xp.float32

    def single(a):
        return None if a is None else xp.astype(a, f32)

    acquisition = PAAcquisition(
        geometry=plan.geometry,
        slice_grid=plan.slice_grid,
        wavelengths_nm=tuple(plan.spec.wavelengths_nm),
        times_h=plan.times_h,
        endmembers=model.endmembers,
        agent_names=model.agent_names,
        grueneisen=plan.spec.grueneisen,
        exposure_mJ_per_cm2=plan.spec.fluence_mJ_per_cm2,
        snr_db=plan.spec.snr_db,
        noise_sd_Pa=backend.scalar(sigma),
        signals=single(stack(noisy)),
        images={m: single(stack([im[m] for im in images])) for m in plan.spec.recon},
        unmix_from=plan.spec.unmix_from,
        unmixed=single(unmixed),
        unmixed_compensated=single(comp),
        so2_estimate=single(so2_est),
        so2_compensated=single(so2_comp),
        p0=single(stack(p0s)),
        fluence=single(stack(fluences)),
        fluence_compensation=plan.spec.fluence_compensation,
        fluence_model=single(plan.fluence_model),
        so2_true=single(so2_true),
        static_truth={k: single(v) for k, v in model.static.items()},
        agent_truth={k: single(v) for k, v in agent_truth.items()},
        so2_error_by_depth=depth_rows,
        tumour_summary=tumour_rows,
        condition_number=condition_number(model.endmembers),
    )
    timer.lap("result")
    return dataclasses.replace(acquisition, timings_s=timer.seconds)


__all__ = [
    "PA_NOISE_STREAM",
    "PAPlan",
    "acquire_photoacoustic",
    "add_noise",
    "expected_signals",
    "plan_photoacoustic",
    "reconstruct",
    "reference_optics",
    "slice_index",
    "unmix_images",
]
