"""PET: activity -> positron range and PSF -> attenuated projection -> scatter, randoms -> Poisson -> recon.

Model (one frame ``k`` per schedule time ``t_k``, length ``D``; t = 0 is the scenario start)
-----------------------------------------------------------------------------------------
- **Emitters.** Every agent with a positron-emitting label contributes counts, not only the
  tracer: a scanner cannot tell 18F annihilation photons from 89Zr ones. Agent ``a`` has the
  activity concentration at injection scale ``A_a(x) = C_a(x, t_k) * S_a`` (carrier ug/mL
  times specific activity, MBq/mg = 1e3 Bq/ug). Its biodistribution is held at the
  frame-start value during the frame (carrier kinetics take hours, a frame minutes), and
  decay gives ``A_a(x) * I_a,k`` decays per mL, with
  ``I_a,k = int_{max(t_k, t_inj)}^{t_k + D} exp(-lambda_a (t - t_inj)) dt``
  (:func:`~imagingsim.physics.decay.decay_integral_s`; ``D / I`` is dPETSTEP's
  frame-averaged decay factor), of which a fraction ``beta_a`` emit a positron.
- **Image convention.** Images are in tracer units, Bq/mL: ``E_k = sum_a A_a beta_a I_a,k /
  (beta_tr tau_k)`` with ``tau_k = I_tr,k`` when decay-corrected to the tracer's injection
  (activity at injection) and ``tau_k = D`` without decay correction (mean activity during
  the frame). Frames are the schedule times from the tracer's injection on: earlier times
  have no tracer to image (BIDS TimeZero is the tracer's injection).
  ``expected_image_bq_per_ml`` is this ``E_k``, unblurred: what the reconstructions estimate.
- **Resolution.** Each emitter's positrons are spread by its own positron-range kernel in
  water (:func:`~imagingsim.modalities.pet.physics.positron_range_kernel`; not density-scaled,
  so range in lung is underestimated and in bone overestimated), then the scanner PSF
  (Gaussian, ``fwhm_mm``) blurs the sum.
- **Projection.** 2-D direct-plane model: every z plane of the phantom grid is one sinogram
  plane of a parallel-beam scanner (Joseph projector, float32, bins of the pixel size,
  ``n_views`` over 180 degrees); no oblique planes. Expected trues
  ``y_k = n_k * a * P(PSF(E_k))`` with attenuation factors ``a = exp(-P mu_511)`` and
  ``n_k = sensitivity * bin * slice / (1000 mm^3/mL * n_views) * beta_tr * tau_k``, so that
  the sum of ``y_k`` over bins, views and slices is sensitivity x annihilations in the field
  of view (without attenuation).
- **Scatter and randoms.** Scatter, ``SF / (1 - SF)`` times the trues of the frame, is the
  trues sinogram blurred by a broad Gaussian along the radial and axial directions (FWHM a
  quarter of the radial span): a smooth background, not a scatter simulation. Randoms,
  ``RF / (1 - RF)`` times trues + scatter, are uniform over all sinogram bins.
- **Noise.** Prompts ~ Poisson(trues + scatter + randoms) from ``backend.rng(seed,
  PET_NOISE_STREAM, k)``.
- **Reconstruction.** OSEM/MLEM with ``A_k = diag(n_k a) P [PSF o range_tracer]`` and the
  expected scatter + randoms as background (MLEM runs iterations x subsets iterations, the
  same number of updates as OSEM); FBP of ``(prompts - background) / (n_k a)``. Then a
  Gaussian post-filter. Frames are reconstructed together: the model is block-diagonal over
  frames and EM updates are voxelwise, so this equals one reconstruction per frame. The
  resolution model is applied after projection, as the kernel projected along the rays
  (a 2-D blur of each view over radial bin and slice): for an isotropic kernel this equals
  projecting the blurred image (0.1 % rms apart here) at a seventh of the cost
  (:meth:`PETSystem.model`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from imagingsim import progress
from imagingsim.backend import Backend
from imagingsim.data.radionuclides import Nuclide, nuclide
from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.pet.result import PETAcquisition, ScannerParams
from imagingsim.modalities.pet.scanner import scanner_params
from imagingsim.modalities.pet.spec import PETSpec, pet_tracer
from imagingsim.modalities.pet.system import (
    PETSystem,
    counts_per_unit_projection,
    recon_parameters,
    reconstruct_pet,
    resolution_kernel,
)
from imagingsim.modalities.settings import check_acquisitions_fit
from imagingsim.modalities.stages import StageTimer
from imagingsim.operators import Blur, FrameWise
from imagingsim.physics.attenuation import linear_attenuation_per_mm
from imagingsim.physics.decay import decay_integral_s
from imagingsim.physics.noise import check_nonnegative, poisson_counts
from imagingsim.projectors import ParallelBeamGeometry
from imagingsim.scenario import AgentSpec, Scenario, positron_nuclide
from imagingsim.scenario import specific_activity_bq_per_ug as label_specific_activity

#: Random stream of PET noise: the generator key is (seed, PET_NOISE_STREAM, frame index).
PET_NOISE_STREAM = 0x9E7
#: Smallest counts per unit projection the float32 recon weights carry safely (a tracer
#: decayed by ~1e-25 within the frame would make images in injection units overflow).
_MIN_COUNTS_PER_UNIT = 1e-30


def scatter_and_randoms(trues, geometry: ParallelBeamGeometry, slice_mm: float, scatter_fraction: float,
                        randoms_fraction: float, backend: Backend):
    """Smooth scatter and uniform randoms for expected trues ``(views, bins, nz, n_frames)``.

    Parameters
    ----------
    trues : device array ``(n_views, n_bins, nz, n_frames)``
        Expected true coincidences per bin, counts.
    geometry : ParallelBeamGeometry
        Supplies the radial span (n_bins x bin_size_mm) that sets the scatter blur.
    slice_mm : float
        Slice thickness, mm (the axial blur is in mm).
    scatter_fraction, randoms_fraction : float
        ``S / (T + S)`` and ``R / (T + S + R)``, each in [0, 0.9].
    backend : Backend

    Returns
    -------
    scatter : device array, shape of ``trues``
        The trues blurred along bins and slices (Gaussian, FWHM a quarter of the radial
        span), scaled per frame to ``SF / (1 - SF)`` times the frame's trues.
    randoms_per_bin : device array ``(n_frames,)``
        ``RF / (1 - RF)`` times trues + scatter of each frame, divided by the bins per frame.
    """
    xp = backend.xp
    fwhm = 0.25 * geometry.n_bins * geometry.bin_size_mm
    shape = tuple(trues.shape)
    kernel = Blur.gaussian(shape[:3], (1.0, geometry.bin_size_mm, slice_mm), (0.0, fwhm, fwhm), backend,
                           truncate=3.0, dtype=trues.dtype).kernel
    # FFT round-off leaves tiny negative values where the sinogram is empty: clip them.
    smooth = xp.clip(FrameWise(Blur(kernel, shape[:3], backend), shape[3]).apply(trues), 0.0, None)
    trues_total = xp.sum(trues, axis=(0, 1, 2), dtype=xp.float64)
    smooth_total = xp.sum(smooth, axis=(0, 1, 2), dtype=xp.float64)
    scale = xp.where(smooth_total > 0, trues_total / xp.where(smooth_total > 0, smooth_total, 1.0), 0.0)
    scatter = smooth * xp.astype(scale * (scatter_fraction / (1.0 - scatter_fraction)), trues.dtype)
    n_bins = shape[0] * shape[1] * shape[2]
    randoms = trues_total / (1.0 - scatter_fraction) * (randoms_fraction / (1.0 - randoms_fraction)) / n_bins
    return scatter, xp.astype(randoms, trues.dtype)


# --- the acquisition ---------------------------------------------------------------------


def specific_activity_bq_per_ug(agent: AgentSpec) -> float:
    """Activity per ug of carrier at injection of ``agent``'s positron label, Bq/ug."""
    return label_specific_activity(agent, positron_nuclide(agent))


def check_pet(spec: PETSpec, scenario: Scenario) -> None:
    """Fail fast, before any simulation, on PET settings that only the presets can check.

    Raises
    ------
    ValueError
        One line naming the field: subsets that do not divide the views, or frames that
        overlap (the frame length must not exceed the spacing of the imaged schedule times).
    """
    scanner = scanner_params(spec)
    injection_h = pet_tracer(spec, scenario.agents).injection_time_h
    check_acquisitions_fit(scenario.schedule.times_h, injection_h, scanner.frame_duration_s,
                           "modalities.pet.frame_duration_s", "frames")


def frame_decay_integrals_s(data: Nuclide, agent: AgentSpec, starts_s, duration_s: float) -> list[float]:
    """Decays per initial nucleus of ``agent``'s ``data`` label during each frame, s (see
    :func:`~imagingsim.physics.decay.decay_integral_s`; frames start at ``starts_s``, s after t = 0)."""
    injection_s = 3600.0 * agent.injection_time_h
    return [decay_integral_s(data.half_life_s, s, s + duration_s, injection_s=injection_s) for s in starts_s]


@dataclass(frozen=True, eq=False)
class PETPlan:
    """Everything a PET study needs before any positron is emitted.

    Attributes
    ----------
    scanner : ScannerParams
        The preset after the scenario's overrides.
    tracer : AgentSpec
        The agent the scan is named after and decay-corrected for.
    tracer_nuclide : Nuclide
        Its positron emitter.
    emitters : list of AgentDelivery
        Every agent with a positron label (all are detected).
    frames : tuple of int
        Schedule indices of the frames (the schedule times from the tracer's injection on).
    starts_s : tuple of float
        Frame starts, s after the scenario's t = 0.
    duration_s : float
        Frame length, s.
    decay_corrected : bool
        Images decay-corrected to the injection.
    tau_s : list of float
        Per frame: the tracer's decay integral (decay-corrected) or the frame length, s.
    per_positron : float
        Expected counts per unit projection of one positron per mL (sensitivity x geometry).
    counts_per_unit : list of float
        ``per_positron`` x beta+ fraction x ``tau_s``: the system model's scale per frame.
    mu_511_per_mm : device array
        Attenuation map at 511 keV, 1/mm.
    system : PETSystem
        Projector, attenuation factors and (optionally) the resolution model of the recon.
    """

    scanner: ScannerParams
    tracer: AgentSpec
    tracer_nuclide: Nuclide
    emitters: list
    frames: tuple[int, ...]
    starts_s: tuple[float, ...]
    duration_s: float
    decay_corrected: bool
    tau_s: list[float]
    per_positron: float
    counts_per_unit: list[float]
    mu_511_per_mm: Any
    system: PETSystem


@dataclass(frozen=True, eq=False)
class PETRawData:
    """Expected and measured PET data: sinograms ``(n_views, n_bins, nz, T)``, counts, float32.

    ``expected_image_bq_per_ml`` is the truth the reconstructions estimate (tracer units,
    ``(nx, ny, nz, T)``, float64); ``randoms_per_bin`` the uniform randoms rate per frame.
    """

    trues: Any
    scatter: Any
    randoms_per_bin: Any
    background: Any
    prompts: Any
    expected_image_bq_per_ml: Any


def plan_pet(ctx: AcquisitionContext) -> PETPlan:
    """Resolve the PET settings, frames, decay and the system model of a subject.

    Raises
    ------
    ValueError
        One line naming ``modalities.pet.decay_correction`` when the tracer has decayed too far
        to correct to its injection.
    """
    spec, delivery, backend = ctx.spec, ctx.delivery, ctx.backend
    grid = ctx.phantom.grid
    voxel = grid.voxel_size_mm
    scanner = scanner_params(spec)
    tracer = pet_tracer(spec, ctx.agents)
    tracer_nuclide = nuclide(positron_nuclide(tracer))
    emitters = [item for item in delivery.agents if positron_nuclide(item.agent) is not None]
    duration = scanner.frame_duration_s
    # PET frames are the schedule times from the tracer's injection on (TimeZero is the
    # injection; the scenario validation guarantees at least one).
    injection_s = 3600.0 * tracer.injection_time_h
    frames = tuple(k for k, t in enumerate(delivery.times_h) if 3600.0 * t >= injection_s)
    starts = tuple(3600.0 * delivery.times_h[k] for k in frames)

    decay_corrected = spec.decay_correction == "injection"
    tau = frame_decay_integrals_s(tracer_nuclide, tracer, starts, duration) if decay_corrected else [duration] * len(starts)
    bin_mm = min(voxel[0], voxel[1])  # ParallelBeamGeometry.covering's default bin
    per_positron = counts_per_unit_projection(scanner.sensitivity, bin_mm, voxel[2], scanner.n_views, 1.0, 1.0)
    n_k = [per_positron * tracer_nuclide.beta_plus_fraction * t for t in tau]
    for t_s, n in zip(starts, n_k, strict=True):
        if not n > _MIN_COUNTS_PER_UNIT:
            raise ValueError(
                f"modalities.pet.decay_correction: at {t_s / 3600.0:g} h the tracer's {tracer_nuclide.name} has "
                "decayed too far to correct to its injection (images would overflow); use \"none\" or a later tracer"
            )

    mu = linear_attenuation_per_mm(ctx.phantom, 511.0, backend)
    recon_kernel = None
    if spec.psf_in_model and any(m in ("osem", "mlem") for m in spec.recon):
        recon_kernel = resolution_kernel(tracer_nuclide, scanner.fwhm_mm, voxel, grid.shape, backend)
    system = PETSystem.build(grid.shape, voxel, mu, scanner.n_views, n_k, backend, resolution_kernel=recon_kernel)
    assert system.geometry.bin_size_mm == bin_mm
    return PETPlan(scanner=scanner, tracer=tracer, tracer_nuclide=tracer_nuclide, emitters=emitters, frames=frames,
                   starts_s=starts, duration_s=duration, decay_corrected=decay_corrected, tau_s=tau,
                   per_positron=per_positron, counts_per_unit=n_k, mu_511_per_mm=mu, system=system)


def simulate_pet_data(plan: PETPlan, ctx: AcquisitionContext, timer: StageTimer | None = None) -> PETRawData:
    """Emission, projection, scatter and randoms, and Poisson prompts of every frame.

    The noise of frame ``k`` is drawn from ``backend.rng(seed, PET_NOISE_STREAM, k)`` (``k`` the
    schedule index).
    """
    backend, seed = ctx.backend, ctx.seed
    xp = backend.xp
    timer = timer or StageTimer()
    grid = ctx.phantom.grid
    (nx, ny, nz), voxel = grid.shape, grid.voxel_size_mm
    n_frames = len(plan.frames)
    scanner, system = plan.scanner, plan.system

    # Positrons per mL emitted during each frame by every emitter (absolute, so a decayed
    # tracer cannot overflow anything), blurred by each nuclide's range and the PSF; and
    # the same in the images' tracer units without blur (the truth the recon estimates).
    positrons = xp.zeros((nx, ny, nz, n_frames), dtype=xp.float64, device=backend.device)
    blurred = xp.zeros((nx, ny, nz, n_frames), dtype=xp.float64, device=backend.device)
    frame_index = xp.asarray(plan.frames, dtype=xp.int64, device=backend.device)
    for item in plan.emitters:
        data = nuclide(positron_nuclide(item.agent))
        per_ml = [data.beta_plus_fraction * i for i in frame_decay_integrals_s(data, item.agent, plan.starts_s,
                                                                               plan.duration_s)]
        emission = xp.take(item.carrier_ug_per_ml, frame_index, axis=3) * (
            specific_activity_bq_per_ug(item.agent) * xp.asarray(per_ml, dtype=xp.float64, device=backend.device)
        )
        kernel = resolution_kernel(data, scanner.fwhm_mm, voxel, grid.shape, backend)
        positrons = positrons + emission
        blurred = blurred + FrameWise(Blur(kernel, grid.shape, backend), n_frames).apply(emission)
    tracer_units = [1.0 / (plan.tracer_nuclide.beta_plus_fraction * t) for t in plan.tau_s]
    expected = positrons * xp.asarray(tracer_units, dtype=xp.float64, device=backend.device)
    del positrons
    timer.lap("emission")

    # The FFT blur leaves round-off negatives (~1e-16 of the maximum) outside the body.
    lines = system.line_integrals(xp.astype(xp.clip(blurred, 0.0, None), xp.float32))
    del blurred
    trues = lines * (system.attenuation_factors[..., None] * plan.per_positron)
    timer.lap("projection")
    scatter, randoms_per_bin = scatter_and_randoms(
        trues, system.geometry, voxel[2], scanner.scatter_fraction, scanner.randoms_fraction, backend
    )
    background = scatter + randoms_per_bin
    timer.lap("scatter_randoms")

    mean_prompts = trues + background
    check_nonnegative(mean_prompts, "PET expected prompts")

    def noisy(k: int):
        # Each frame draws from its own stream: the backend may draw two frames at once.
        draw = poisson_counts(mean_prompts[..., k], backend.rng(seed, PET_NOISE_STREAM, plan.frames[k]), validate=False)
        return xp.astype(draw, xp.float32)

    prompts = xp.stack(backend.map_ordered(noisy, range(n_frames)), axis=-1)
    del mean_prompts
    timer.lap("noise")
    return PETRawData(trues=trues, scatter=scatter, randoms_per_bin=randoms_per_bin, background=background,
                      prompts=prompts, expected_image_bq_per_ml=expected)


def acquire_pet(ctx: AcquisitionContext) -> PETAcquisition:
    """Simulate and reconstruct the PET study of a scenario (see the module docstring).

    :func:`plan_pet`, then :func:`simulate_pet_data`, then
    :func:`~imagingsim.modalities.pet.system.reconstruct_pet` per method (which reruns on
    stored data: the prompts, the expected background and the plan's system model).

    Parameters
    ----------
    ctx : AcquisitionContext
        The PET settings (``ctx.spec``), agents, schedule, phantom, delivery, backend and
        subject seed (:func:`imagingsim.modalities.base.acquisition_context`).

    Returns
    -------
    PETAcquisition
        Every device array float32.
    """
    phantom, delivery, backend = ctx.phantom, ctx.delivery, ctx.backend
    xp = backend.xp
    spec = ctx.spec
    timer = StageTimer()
    plan = plan_pet(ctx)
    timer.lap("setup")
    raw = simulate_pet_data(plan, ctx, timer)
    scanner, system, tracer, nz = plan.scanner, plan.system, plan.tracer, phantom.grid.shape[2]

    sums = xp.stack(
        [xp.sum(a, axis=(0, 1, 2), dtype=xp.float64) for a in (raw.trues, raw.scatter, raw.prompts)]
        + [xp.astype(raw.randoms_per_bin, xp.float64) * float(system.geometry.n_angles * system.geometry.n_bins * nz)]
    )
    host = backend.to_host(sums).tolist()
    totals = {name: tuple(float(v) for v in row) for name, row in zip(("trues", "scatter", "prompts", "randoms"), host)}
    total_counts = {k: totals[k] for k in ("trues", "scatter", "randoms", "prompts")}
    # Only their totals are kept: free the trues and scatter sinograms before the reconstructions.
    raw = dataclasses.replace(raw, trues=None, scatter=None)

    progress.report(1, len(spec.recon) + 1)  # the data, then one share per reconstruction
    images = {}
    for done, method in enumerate(spec.recon, start=2):
        images[method] = reconstruct_pet(method, raw.prompts, raw.background, system, scanner,
                                         psf_in_model=spec.psf_in_model)
        timer.lap(f"recon_{method}")
        progress.report(done, len(spec.recon) + 1)

    tracer_delivery = delivery.agent(tracer.name)
    specific = specific_activity_bq_per_ug(tracer)
    injected_bq = tracer_delivery.injected_mass_ug * specific
    duration, decay_corrected = plan.duration_s, plan.decay_corrected
    # Factor each frame was multiplied by for decay (BIDS DecayCorrectionFactor): duration over
    # the decay integral from injection; SUV = image x body mass / injected activity, with the
    # image first brought to injection scale when it is not decay-corrected.
    correction = [duration / t if decay_corrected else 1.0 for t in plan.tau_s]
    to_injection = [1.0 if decay_corrected else duration / i
                    for i in frame_decay_integrals_s(plan.tracer_nuclide, tracer, plan.starts_s, duration)]
    suv = tuple(float(phantom.body_mass_g) / injected_bq * f for f in to_injection)
    return PETAcquisition(
        tracer=tracer,
        nuclide=plan.tracer_nuclide.name,
        emitters={item.agent.name: positron_nuclide(item.agent) for item in plan.emitters},
        scanner=scanner,
        geometry=system.geometry,
        schedule_indices=plan.frames,
        frame_start_s=plan.starts_s,
        frame_duration_s=(duration,) * len(plan.frames),
        decay_correction_factors=tuple(correction),
        decay_corrected=decay_corrected,
        injected_activity_bq=injected_bq,
        injected_mass_ug=float(tracer_delivery.injected_mass_ug),
        specific_activity_bq_per_ug=specific,
        images_bq_per_ml=images,
        recon_parameters={m: recon_parameters(m, scanner, spec.psf_in_model) for m in spec.recon},
        expected_image_bq_per_ml=xp.astype(raw.expected_image_bq_per_ml, xp.float32),
        mu_511_per_mm=xp.astype(plan.mu_511_per_mm, xp.float32),
        prompts=raw.prompts,
        expected_background=raw.background,
        attenuation_factors=system.attenuation_factors,
        counts_per_unit_projection=tuple(plan.counts_per_unit),
        total_counts=total_counts,
        suv_scale_g_per_bq=suv,
        timings_s=timer.seconds,
    )


__all__ = [
    "PET_NOISE_STREAM",
    "PETPlan",
    "PETRawData",
    "acquire_pet",
    "check_pet",
    "frame_decay_integrals_s",
    "plan_pet",
    "scatter_and_randoms",
    "simulate_pet_data",
    "specific_activity_bq_per_ug",
]
