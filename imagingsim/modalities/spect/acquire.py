"""SPECT: activity -> attenuated, collimator-blurred projections -> scatter -> Poisson -> OSEM.

Model (one acquisition ``k`` per schedule time ``t_k`` from the tracer's injection on)
--------------------------------------------------------------------------------------
- **Activity.** The tracer agent's carrier map at ``t_k`` times its specific activity:
  ``A(x)`` in Bq/mL at injection, held during the acquisition (kinetics take hours). Other
  single-photon agents are not imaged (no cross-talk between nuclides is modelled).
- **Image convention.** Decay-corrected to the injection (``f_k = I_k / D``, ``I_k`` the
  decay integral over the acquisition, ``D`` its length) or the mean activity during the
  acquisition (``f_k = 1``), as in PET.
- **Projection.** For each photopeak ``p`` of the nuclide: the rotation-based projector
  with the true ``mu(E_p)`` map of the acquisition (tissues, plus gold and iodine from the
  delivery maps at that time) and the collimator-detector response at
  ``E_p`` (:class:`~imagingsim.modalities.spect.projector.SPECTProjector`), on the phantom grid,
  then ``f x f`` detector pixels summed (``voxel_binning``). Expected primary counts
  ``f_k c_p P_p(A)`` with ``c_p`` = efficiency x photons per decay x window share x view
  time x pixel area (:func:`~imagingsim.modalities.spect.system.counts_per_unit_projection`).
  The windows of all peaks are added into one projection set. Decay during an acquisition
  is averaged over it (every view sees ``f_k``); septal penetration, the energy dependence
  of the intrinsic resolution and gamma cross-talk between windows (down-scatter of a
  higher photopeak into a lower window) are not modelled. Windows may not overlap.
- **Scatter.** ``SF / (1 - SF)`` times the primary counts of each window, spread by a broad
  Gaussian over bins and rows (FWHM a quarter of the detector width): a smooth background,
  not a Monte Carlo scatter simulation. ``scatter = "tew"`` also simulates two side windows
  per peak in which the scatter spectrum is linear (density ``(1 +/- tilt)`` times its mean
  at the lower and upper edges), draws their counts, and uses the triple-energy-window
  estimate ``(C_lower + C_upper) / W_side x W_peak / 2`` (unbiased for a linear spectrum),
  smoothed, as the reconstruction background; otherwise the expected scatter is used. The
  side windows hold scatter only (no photopeak tail, no down-scatter).
- **Noise.** Counts ~ Poisson(primary + scatter) from ``backend.rng(seed, SPECT_NOISE_STREAM, k)``.
- **Reconstruction.** OSEM on the grid ``voxel_binning`` times coarser than the phantom,
  with one model per variant: ``ac_cdr`` (attenuation and collimator response), ``ac``,
  ``cdr`` and ``none``. Attenuation correction uses the CT of the same time when CT is
  acquired (bilinear HU -> mu at each photopeak, resampled onto the SPECT grid by the CT
  result's :meth:`~imagingsim.modalities.ct.result.CTAcquisition.attenuation_map_per_mm`,
  which averages over each coarse voxel and keeps the mu integral; SimpleITK's
  point-sampling resampler would alias), else the
  true mu map averaged over the coarse voxels.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from imagingsim import progress
from imagingsim.backend import Backend
from imagingsim.data.radionuclides import Nuclide, nuclide
from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.settings import check_acquisitions_fit
from imagingsim.modalities.spect.physics import SPECTParams, photopeaks, spect_params
from imagingsim.modalities.spect.result import RECON_VARIANTS, SPECTAcquisition
from imagingsim.modalities.spect.spec import SPECTSpec, spect_tracer
from imagingsim.modalities.spect.system import (
    SPECTGrids,
    bin_pixels,
    block_mean,
    counts_per_unit_projection,
    pad_to,
    peak_projectors,
    reconstruct_spect,
    subset_projectors,
)
from imagingsim.modalities.stages import StageTimer
from imagingsim.operators import Blur
from imagingsim.physics.attenuation import (
    contrast_attenuation_per_mm,
    contrast_density_g_per_ml,
    linear_attenuation_per_mm,
)
from imagingsim.physics.decay import decay_integral_s
from imagingsim.physics.noise import poisson_counts
from imagingsim.scenario import AgentSpec, Scenario
from imagingsim.scenario import single_photon_nuclide as spect_nuclide
from imagingsim.scenario import specific_activity_bq_per_ug as label_specific_activity

#: Random stream of SPECT noise: generator key (seed, SPECT_NOISE_STREAM, schedule index, window).
SPECT_NOISE_STREAM = 0x5BEC7


def specific_activity_bq_per_ug(agent: AgentSpec) -> float:
    """Activity per ug of carrier at injection of ``agent``'s single-photon label, Bq/ug."""
    return label_specific_activity(agent, spect_nuclide(agent))


def check_spect(spec: SPECTSpec, scenario: Scenario) -> None:
    """Fail fast, before any simulation, on SPECT settings only the presets and grid can check.

    Raises
    ------
    ValueError
        One line naming the field: subsets that do not divide the views, a collimator not
        rated for the nuclide, an orbit that does not clear the image box, or acquisitions
        that overlap.
    """
    from imagingsim.phantom.anatomy import get_anatomy

    tracer = spect_tracer(spec, scenario.agents)
    data = nuclide(spect_nuclide(tracer))
    params = spect_params(spec, data)
    check_windows(photopeaks(data, params), params, tew=spec.scatter == "tew")
    SPECTGrids.build(get_anatomy(scenario.phantom.anatomy).grid(scenario.phantom.voxel_size_mm), params)
    check_acquisitions_fit(scenario.schedule.times_h, tracer.injection_time_h, params.acquisition_time_s,
                           "modalities.spect.acquisition_time_s", "acquisitions")


def check_windows(peaks, params: SPECTParams, *, tew: bool) -> None:
    """Refuse photopeak windows (and TEW side windows) that overlap: their photons would count twice.

    Raises
    ------
    ValueError
        One line naming ``modalities.spect.energy_window_percent`` and the largest width
        that keeps the windows apart.
    """
    side = [p.energy_keV * params.tew_side_window_percent / 100.0 if tew else 0.0 for p in peaks]
    spans = sorted((p.window_keV[0] - w, p.window_keV[1] + w, p.energy_keV) for p, w in zip(peaks, side))
    for (_, hi, e1), (lo, _, e2) in itertools.pairwise(spans):
        if lo < hi:
            # Windows of width W% (plus side windows) meet when E1 (1 + W/200) + s1 = E2 (1 - W/200) - s2.
            gap = e2 - e1 - (e1 + e2) * params.tew_side_window_percent / 100.0 * tew
            pair = f"the {e1:g} and {e2:g} keV photopeaks"
            if gap <= 0:
                raise ValueError(
                    f"modalities.spect.scatter: the TEW side windows ({params.tew_side_window_percent:g} % each) of {pair} "
                    "overlap at any photopeak window width; use scatter = \"fraction\""
                )
            limit = math.floor(200.0 * gap / (e1 + e2) * 100.0) / 100.0  # rounded down: the bound holds
            tew_note = f" with scatter = \"tew\" ({params.tew_side_window_percent:g} % side windows)" if tew else ""
            raise ValueError(
                f"modalities.spect.energy_window_percent: the windows of {pair} overlap{tew_note}; must be <= "
                f"{limit:g} %, got {params.energy_window_percent:g}"
            )


def _smooth(sinogram, fwhm_mm: float, pixel_mm: float, slice_mm: float, backend: Backend):
    """Gaussian blur over bins and rows (not views), clipped at 0 (FFT round-off), total kept."""
    xp = backend.xp
    blur = Blur.gaussian(tuple(sinogram.shape), (1.0, pixel_mm, slice_mm), (0.0, fwhm_mm, fwhm_mm), backend,
                         truncate=3.0, dtype=sinogram.dtype)
    smooth = xp.clip(blur.apply(sinogram), 0.0, None)
    total, kept = xp.sum(sinogram, dtype=xp.float64), xp.sum(smooth, dtype=xp.float64)
    scale = xp.where(kept > 0, total / xp.where(kept > 0, kept, 1.0), 0.0)
    return smooth * xp.astype(scale, sinogram.dtype)


@dataclass(frozen=True, eq=False)
class SPECTPlan:
    """Everything a SPECT study needs before any photon is counted.

    Attributes
    ----------
    tracer : AgentSpec
        The imaged agent.
    nuclide : Nuclide
        Its single-photon label.
    params : SPECTParams
        The preset after the scenario's overrides (collimator, views, binning, scatter).
    peaks : tuple of Photopeak
        The photopeaks and their windows.
    grids : SPECTGrids
        The fine (phantom) grid the data are simulated on and the coarse reconstruction grid.
    frames : tuple of int
        Schedule indices of the acquisitions (from the tracer's injection on).
    starts_s : tuple of float
        Acquisition starts, s after t = 0.
    duration_s : float
        Acquisition length, s.
    decay_integrals_s : list of float
        Decays per initial nucleus during each acquisition, s.
    decay_corrected : bool
        Images decay-corrected to the injection.
    counts_per_unit_fine : list of float
        Expected counts per unit projection per photopeak on the fine grid.
    mu_true_per_mm : dict of str -> device array
        True mu per photopeak and acquisition (tissues and contrast), ``(nx, ny, nz, T)``, 1/mm.
    contrast_moves : bool
        Whether contrast agents change the attenuation between acquisitions.
    """

    tracer: AgentSpec
    nuclide: Nuclide
    params: SPECTParams
    peaks: tuple
    grids: SPECTGrids
    frames: tuple[int, ...]
    starts_s: tuple[float, ...]
    duration_s: float
    decay_integrals_s: list[float]
    decay_corrected: bool
    counts_per_unit_fine: list[float]
    mu_true_per_mm: dict[str, Any]
    contrast_moves: bool

    @property
    def activity_factors(self) -> list[float]:
        """Image convention per acquisition: decay integral / duration (decay-corrected) or 1."""
        return [i / self.duration_s if self.decay_corrected else 1.0 for i in self.decay_integrals_s]


@dataclass(frozen=True, eq=False)
class SPECTRawData:
    """Per acquisition (lists over ``plan.frames``): expected images on the fine grid (Bq/mL),
    expected primary and scatter projections, the scatter estimate used as the background,
    the measured counts and (TEW) the side-window counts."""

    expected_images: list
    primaries: list
    scatters: list
    estimates: list
    measured: list
    lower_counts: list
    upper_counts: list


def plan_spect(ctx: AcquisitionContext) -> SPECTPlan:
    """Resolve the SPECT settings, acquisitions, decay, photopeaks and true attenuation of a subject."""
    phantom, delivery, backend, spec = ctx.phantom, ctx.delivery, ctx.backend, ctx.spec
    xp = backend.xp
    tracer = spect_tracer(spec, ctx.agents)
    data = nuclide(spect_nuclide(tracer))
    params = spect_params(spec, data)
    peaks = photopeaks(data, params)
    grids = SPECTGrids.build(phantom.grid, params)
    fine_pixel, fine_slice = phantom.grid.voxel_size_mm[0], phantom.grid.voxel_size_mm[2]
    duration = params.acquisition_time_s
    injection_s = 3600.0 * tracer.injection_time_h
    frames = tuple(k for k, t in enumerate(delivery.times_h) if 3600.0 * t >= injection_s)
    starts = tuple(3600.0 * delivery.times_h[k] for k in frames)
    integrals = [decay_integral_s(data.half_life_s, s, s + duration, injection_s=injection_s) for s in starts]
    c_fine = [counts_per_unit_projection(p, params, fine_pixel, fine_slice) for p in peaks]

    check_windows(peaks, params, tew=spec.scatter == "tew")
    tissue_mu = {p.label: linear_attenuation_per_mm(phantom, p.energy_keV, backend) for p in peaks}
    contrast = contrast_density_g_per_ml(delivery, backend)
    frame_index = xp.asarray(frames, dtype=xp.int64, device=backend.device)
    contrast = {kind: xp.take(density, frame_index, axis=3) for kind, density in contrast.items()}
    # True mu per photopeak and acquisition: tissues, plus the contrast agents present then.
    mu_true = {}
    for p in peaks:
        extra = contrast_attenuation_per_mm(contrast, p.energy_keV, backend)
        stacked = xp.stack([tissue_mu[p.label]] * len(frames), axis=-1)
        mu_true[p.label] = xp.astype(stacked if extra is None else stacked + extra, xp.float32)
    return SPECTPlan(tracer=tracer, nuclide=data, params=params, peaks=peaks, grids=grids, frames=frames,
                     starts_s=starts, duration_s=duration, decay_integrals_s=integrals,
                     decay_corrected=spec.decay_correction == "injection", counts_per_unit_fine=c_fine,
                     mu_true_per_mm=mu_true, contrast_moves=bool(contrast))


def simulate_spect_data(plan: SPECTPlan, ctx: AcquisitionContext) -> SPECTRawData:
    """Primary and scatter projections of every acquisition and their Poisson counts.

    Counts of acquisition ``k`` are drawn from ``backend.rng(seed, SPECT_NOISE_STREAM, k, 0)``
    (``k`` the schedule index); TEW side windows from their own streams (:func:`_tew_estimate`).
    """
    phantom, backend, seed = ctx.phantom, ctx.backend, ctx.seed
    xp = backend.xp
    grids, params, peaks = plan.grids, plan.params, plan.peaks
    f = grids.factor
    fine_slice = phantom.grid.voxel_size_mm[2]
    pixel, slice_mm = grids.coarse.pixel_size_mm, grids.grid.voxel_size_mm[2]
    specific = specific_activity_bq_per_ug(plan.tracer)
    carrier = ctx.delivery.agent(plan.tracer.name).carrier_ug_per_ml
    span_mm = grids.coarse.n_bins * pixel
    finished = itertools.count(1)

    def projectors(k: int) -> list:
        return peak_projectors(grids.fine, grids.padded_shape[2], fine_slice, peaks,
                               [pad_to(plan.mu_true_per_mm[p.label][..., k], grids.padded_shape, backend) for p in peaks],
                               backend, keep_attenuation=not plan.contrast_moves)

    # Without moving contrast every acquisition shares one projector set and its attenuation
    # tables; with it, each acquisition's set is applied once and keeps no tables (two
    # acquisitions at once then hold two view blocks, not two sets of tables).
    shared = None if plan.contrast_moves else projectors(0)

    def acquisition(k: int) -> tuple:
        # Acquisitions are independent (each draws from its own stream): the backend may
        # simulate two at once.
        schedule_index = plan.frames[k]
        fine_projectors = shared if shared is not None else projectors(k)
        activity = carrier[..., schedule_index] * specific
        # Photons come from the mean activity during the acquisition, A x I_k / D, whatever
        # the images' convention.
        mean_factor = plan.decay_integrals_s[k] / plan.duration_s
        expected_image = xp.astype(activity * (1.0 if plan.decay_corrected else mean_factor), xp.float32)
        image = pad_to(xp.astype(activity, xp.float32), grids.padded_shape, backend)
        primary_peaks = [bin_pixels(proj.apply(image), f, backend) * (c * mean_factor)
                         for proj, c in zip(fine_projectors, plan.counts_per_unit_fine)]
        sf = params.scatter_fraction
        scatter_peaks = [_smooth(p, 0.25 * span_mm, pixel, slice_mm, backend) * (sf / (1.0 - sf)) for p in primary_peaks]
        primary = sum(primary_peaks[1:], primary_peaks[0])
        scatter = sum(scatter_peaks[1:], scatter_peaks[0])
        counts = poisson_counts(primary + scatter, backend.rng(seed, SPECT_NOISE_STREAM, schedule_index, 0))
        lower = upper = None
        estimate = scatter
        if ctx.spec.scatter == "tew":
            estimate, lower, upper = _tew_estimate(scatter_peaks, peaks, params, backend, seed, schedule_index,
                                                   pixel, slice_mm)
        progress.report(next(finished), len(plan.frames))
        return (expected_image, primary, scatter, xp.astype(estimate, xp.float32), xp.astype(counts, xp.float32),
                lower, upper)

    raw = SPECTRawData([], [], [], [], [], [], [])
    for image, primary, scatter, estimate, counts, lower, upper in backend.map_ordered(acquisition,
                                                                                     range(len(plan.frames))):
        raw.expected_images.append(image)
        raw.primaries.append(primary)
        raw.scatters.append(scatter)
        raw.estimates.append(estimate)
        raw.measured.append(counts)
        if lower is not None:
            raw.lower_counts.append(lower)
            raw.upper_counts.append(upper)
    return raw


def recon_weights(plan: SPECTPlan) -> list[list[float]]:
    """Counts per unit projection on the reconstruction grid, per acquisition and photopeak,
    in the images' convention (the system model's scale)."""
    pixel, slice_mm = plan.grids.coarse.pixel_size_mm, plan.grids.grid.voxel_size_mm[2]
    c_coarse = [counts_per_unit_projection(p, plan.params, pixel, slice_mm) for p in plan.peaks]
    return [[c * a for c in c_coarse] for a in plan.activity_factors]


def reconstruct_spect_images(plan: SPECTPlan, measured, estimates, mu_recon_per_mm, variants, backend: Backend):
    """OSEM of every acquisition with every variant; reruns on stored counts and background.

    Parameters
    ----------
    plan : SPECTPlan
    measured, estimates : sequence of device arrays
        Counts and background (scatter estimate) per acquisition, on the reconstruction grid.
    mu_recon_per_mm : dict of str -> device array
        Attenuation maps per photopeak for the correction, ``grid.shape + (T,)``, 1/mm.
    variants : sequence of str
        Keys of :data:`~imagingsim.modalities.spect.result.RECON_VARIANTS`.
    backend : Backend

    Returns
    -------
    dict of str -> device array, float32, ``grid.shape + (T,)``
        Bq/mL in the images' convention.
    """
    xp = backend.xp
    grids, params, peaks = plan.grids, plan.params, plan.peaks
    slice_mm = grids.grid.voxel_size_mm[2]
    weights = recon_weights(plan)
    finished = itertools.count(1)

    def acquisition(k: int) -> dict:
        # Acquisitions are independent, so the backend may reconstruct two at once (their
        # three-tap blur passes and attenuation sums leave a core idle). The resampling
        # matrices and attenuation tables of each subset are built once per acquisition and
        # shared by the variants with and without collimator modelling.
        shared = {}
        for attenuation in sorted({RECON_VARIANTS[v][0] for v in variants}):
            mu_k = [mu_recon_per_mm[p.label][..., k] for p in peaks]
            shared[attenuation] = subset_projectors(grids.coarse, grids.grid.shape[2], slice_mm, peaks, mu_k, params,
                                                    backend, attenuation=attenuation)
        out = {}
        for variant in variants:
            attenuation, collimator = RECON_VARIANTS[variant]
            image = reconstruct_spect(measured[k], estimates[k], weights[k], shared[attenuation], peaks, params,
                                      collimator=collimator)
            if params.post_filter_fwhm_mm > 0:
                image = Blur.gaussian(grids.grid.shape, grids.grid.voxel_size_mm, params.post_filter_fwhm_mm, backend,
                                      dtype=xp.float32).apply(xp.astype(image, xp.float32))
            out[variant] = xp.astype(image, xp.float32)
        del shared
        progress.report(next(finished), len(plan.frames))
        return out

    per_acquisition = backend.map_ordered(acquisition, range(len(plan.frames)))
    images = {variant: [frame[variant] for frame in per_acquisition] for variant in variants}
    return {variant: xp.stack(frames_out, axis=-1) for variant, frames_out in images.items()}


def acquire_spect(ctx: AcquisitionContext) -> SPECTAcquisition:
    """Simulate and reconstruct the SPECT study of a scenario (see the module docstring).

    :func:`plan_spect`, then :func:`simulate_spect_data`, then the attenuation maps for the
    correction (from the CT result in ``ctx.inputs["ct"]`` when CT ran, else the truth), then
    :func:`reconstruct_spect_images`.

    Parameters
    ----------
    ctx : AcquisitionContext
        The SPECT settings (``ctx.spec``), agents, schedule, phantom, delivery, backend and
        subject seed (:func:`imagingsim.modalities.base.acquisition_context`).

    Returns
    -------
    SPECTAcquisition
    """
    phantom, delivery, backend = ctx.phantom, ctx.delivery, ctx.backend
    ct = ctx.inputs.get("ct")
    xp = backend.xp
    spec = ctx.spec
    timer = StageTimer()
    plan = plan_spect(ctx)
    timer.lap("setup")
    with progress.part(0, 2):
        raw = simulate_spect_data(plan, ctx)
    timer.lap("projection_noise")
    mu_recon = _attenuation_maps(phantom, plan.grids, plan.peaks, plan.mu_true_per_mm, plan.frames, ct, backend)
    attenuation_source = "ct" if ct is not None else "truth"
    timer.lap("attenuation_maps")
    with progress.part(1, 2):
        images = reconstruct_spect_images(plan, raw.measured, raw.estimates, mu_recon, spec.recon, backend)
    timer.lap("recon")

    def stack(arrays):
        return xp.stack(arrays, axis=-1)

    projections, primary_all, scatter_all = stack(raw.measured), stack(raw.primaries), stack(raw.scatters)
    sums = xp.stack([xp.sum(a, axis=(0, 1, 2), dtype=xp.float64) for a in (primary_all, scatter_all, projections)])
    host = backend.to_host(sums).tolist()
    total_counts = {name: tuple(float(v) for v in row) for name, row in zip(("primary", "scatter", "measured"), host)}
    tracer, params, duration = plan.tracer, plan.params, plan.duration_s
    specific = specific_activity_bq_per_ug(tracer)
    return SPECTAcquisition(
        tracer=tracer,
        nuclide=plan.nuclide.name,
        params=params,
        photopeaks=plan.peaks,
        geometry=plan.grids.coarse,
        grid=plan.grids.grid,
        schedule_indices=plan.frames,
        frame_start_s=plan.starts_s,
        frame_duration_s=(duration,) * len(plan.frames),
        decay_corrected=plan.decay_corrected,
        decay_correction_factors=tuple(duration / i if plan.decay_corrected else 1.0 for i in plan.decay_integrals_s),
        injected_activity_bq=float(delivery.agent(tracer.name).injected_mass_ug) * specific,
        images_bq_per_ml=images,
        recon_parameters={v: recon_parameters(v, params) for v in spec.recon},
        expected_image_bq_per_ml=stack(raw.expected_images),
        mu_true_per_mm=plan.mu_true_per_mm,
        mu_recon_per_mm=mu_recon,
        attenuation_source=attenuation_source,
        projections=projections,
        expected_primary=primary_all,
        expected_scatter=scatter_all,
        scatter_estimate=stack(raw.estimates),
        side_window_counts={"lower": stack(raw.lower_counts), "upper": stack(raw.upper_counts)}
        if raw.lower_counts else {},
        counts_per_unit_projection=tuple(tuple(w) for w in recon_weights(plan)),
        total_counts=total_counts,
        timings_s=timer.seconds,
    )


def _tew_estimate(scatter_peaks, peaks, params, backend: Backend, seed: int, schedule_index: int, pixel_mm: float,
                  slice_mm: float):
    """Triple-energy-window scatter estimate from simulated side-window counts (summed over peaks)."""
    xp = backend.xp
    estimate, lower_total, upper_total = None, None, None
    for p, (scatter, peak) in enumerate(zip(scatter_peaks, peaks)):
        width = peak.window_keV[1] - peak.window_keV[0]
        side = peak.energy_keV * params.tew_side_window_percent / 100.0
        density = scatter / width  # mean scatter counts per keV in the window
        expected = (density * ((1.0 + params.tew_scatter_tilt) * side), density * ((1.0 - params.tew_scatter_tilt) * side))
        lower, upper = (
            xp.astype(poisson_counts(e, backend.rng(seed, SPECT_NOISE_STREAM, schedule_index, 1 + 2 * p + w)), xp.float32)
            for w, e in enumerate(expected)
        )
        term = (lower + upper) * (0.5 * width / side)
        estimate = term if estimate is None else estimate + term
        lower_total = lower if lower_total is None else lower_total + lower
        upper_total = upper if upper_total is None else upper_total + upper
    smooth = _smooth(estimate, params.tew_filter_fwhm_mm, pixel_mm, slice_mm, backend)
    return smooth, lower_total, upper_total


def _attenuation_maps(phantom, grids: SPECTGrids, peaks, mu_true, frames, ct, backend: Backend):
    """Per peak, ``grid.shape + (T,)`` mu maps for attenuation correction (CT-based or true)."""
    xp = backend.xp
    maps = {}
    for peak in peaks:
        if ct is None:
            coarse = block_mean(pad_to(mu_true[peak.label], grids.padded_shape, backend), grids.factor, backend)
            maps[peak.label] = xp.astype(coarse, xp.float32)
        else:
            maps[peak.label] = xp.stack(
                # The CT scans every schedule time: its scan index is the schedule index.
                [ct.attenuation_map_per_mm(k, peak.energy_keV, grids.grid, backend) for k in frames], axis=-1
            )
    return maps


def roi_activity_bq_per_ml(acquisition: SPECTAcquisition, mask, backend: Backend):
    """Mean activity in an ROI of the phantom grid, true and per reconstruction, per acquisition.

    The ROI is taken on the reconstruction grid as the coarse voxels lying wholly inside
    ``mask`` (so partial-volume edges do not blur the comparison); the truth is averaged
    over the same voxels.

    Returns
    -------
    truth : tuple of float
        Bq/mL per acquisition.
    images : dict of str -> tuple of float
        Bq/mL per acquisition for each reconstruction variant.
    """
    from imagingsim.physics.metrics import roi_mean

    xp = backend.xp
    padded = tuple(acquisition.params.voxel_binning * n for n in acquisition.grid.shape)
    f = acquisition.params.voxel_binning
    inside = block_mean(pad_to(xp.astype(mask, xp.float32), padded, backend), f, backend) > 0.999
    truth = block_mean(pad_to(acquisition.expected_image_bq_per_ml, padded, backend), f, backend)
    images = {v: tuple(roi_mean(image, inside, backend)) for v, image in acquisition.images_bq_per_ml.items()}
    return tuple(roi_mean(truth, inside, backend)), images


def recon_parameters(variant: str, params: SPECTParams) -> dict:
    """Method name, settings and what the model of ``variant`` includes."""
    attenuation, collimator = RECON_VARIANTS[variant]
    modelled = [name for name, on in (("attenuation", attenuation), ("collimator-detector response", collimator)) if on]
    return {
        "method_name": f"OSEM {params.iterations}i{params.subsets}s with "
        + (" and ".join(modelled) if modelled else "no attenuation or collimator") + " modelling; scatter as background",
        "iterations": params.iterations,
        "subsets": params.subsets,
        "attenuation_correction": attenuation,
        "collimator_response_modelling": collimator,
        "post_filter_fwhm_mm": params.post_filter_fwhm_mm,
    }


__all__ = [
    "SPECT_NOISE_STREAM",
    "SPECTPlan",
    "SPECTRawData",
    "acquire_spect",
    "check_spect",
    "plan_spect",
    "recon_parameters",
    "recon_weights",
    "reconstruct_spect_images",
    "roi_activity_bq_per_ml",
    "simulate_spect_data",
    "specific_activity_bq_per_ug",
]
