"""MRI with iron-oxide (SPION) contrast: R1/R2* from relaxivity -> multi-echo spoiled GRE ->
3-D Cartesian k-space (coils, undersampling) -> complex noise -> recon -> R2* map -> iron.

Model (one session per schedule time ``t_k``; physics in :mod:`~imagingsim.modalities.mri.physics`)
-------------------------------------------------------------------------------------------
- **Relaxation.** Baseline R1 and R2* at the scenario's field (1.5, 3 or 7 T) from the
  phantom's 3 T maps and the field model of ``data/relaxivity.toml``; every agent with an
  iron-oxide label adds ``r1 C`` and ``r2* (C_free + f C_bound)`` with ``C`` its iron (mM)
  at ``t_k`` and ``f = clustered_iron_r2star_factor`` for cell-associated iron.
- **Signal.** Complex spoiled-GRE images at each echo time, ``M0`` = proton density, with
  the phase ``2 pi df TE`` of a smooth seeded off-resonance map ``df`` (Hz; sd
  ``b0_offresonance_hz``, generator ``(seed, MRI_B0_STREAM)``) when that sd is > 0.
- **Encoding.** Each coil image ``S_c m`` (smooth loop sensitivities, ``sum |S_c|^2 = 1``;
  one uniform coil when ``n_coils`` is 1) goes to k-space by the orthonormal 3-D FFT;
  readout along x fully sampled, phase encodes (ky, kz) kept where the mask is true (one
  mask for every session, generator ``(seed, MRI_MASK_STREAM)``; see
  :mod:`~imagingsim.modalities.mri.sampling`).
- **Noise.** Complex Gaussian noise is added to the acquired k-space samples, sd ``sigma``
  in each of the real and imaginary parts, with ``sigma = noise_percent / 100`` times the
  mean noiseless **pre-contrast** first-echo magnitude in muscle (``Label.SOFT_TISSUE``; the
  whole body when there is no muscle): BrainWeb's definition, fixed once from the baseline
  so that every session has the same ``sigma`` (the noise of a scanner does not follow the
  contrast agent). The FFT being orthonormal, the image noise has the same sd per voxel;
  magnitude images are Rician with one coil and chi-distributed (a higher floor) after a
  root-sum-of-squares of several. Generator ``(seed, MRI_NOISE_STREAM, k)`` for session ``k``.
- **Reconstruction** (:mod:`imagingsim.modalities.mri.recon`). ``recon = "auto"``: CG-SENSE when
  undersampled with more than one coil, else zero-filled inverse FFT with
  root-sum-of-squares coil combination (:func:`resolve_recon`; :func:`check_mri` rejects an
  explicit ``"cg_sense"`` on undersampled single-coil data, where it is only zero filling
  scaled by ``1 / (1 + lambda)``).
- **Noise floor.** :data:`~imagingsim.modalities.mri.relaxometry.NOISE_REALISATIONS` noise-only k-spaces
  (the same ``sigma``, mask and coils; generator ``(seed, MRI_NOISE_FLOOR_STREAM)``) go
  through the same reconstruction once per study; their local magnitude statistics
  (:func:`~imagingsim.modalities.mri.relaxometry.noise_statistics`) set the R2* fit's signal mask and echo
  cut-off, so the thresholds follow the coil count (RSS floor) and the g-factor (SENSE).
- **R2\\* and iron.** The R2* fit over echoes (log-linear WLS, RSS excess floor subtracted,
  echoes cut and weighted by a first pass's predicted signal; :func:`~imagingsim.modalities.mri.relaxometry.fit_r2star`)
  inside the signal mask, and the iron estimate ``(R2* - R2*_0) / r2*`` with the solution r2* of the
  first iron agent, NaN where the fit is masked or clipped or the baseline is a void.
  ``R2*_0`` is the simulation's own baseline at the field: it stands in for the
  pre-contrast scan a real study would acquire. The estimate uses the solution relaxivity,
  so cell-associated iron (effective r2* ``f`` times higher) is overestimated by up to
  ``f``: a real limitation of R2* iron quantification, kept on purpose.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

from imagingsim import progress
from imagingsim.backend import Backend
from imagingsim.io.sessions import session_label
from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.mri.physics import (
    baseline_relaxation,
    iron_agents,
    iron_mM,
    offresonance_map_hz,
    relaxation_with_iron,
    spoiled_gre,
)
from imagingsim.modalities.mri.recon import cg_sense, encoding_operator, zero_filled
from imagingsim.modalities.mri.relaxometry import (
    NOISE_REALISATIONS,
    fit_r2star,
    iron_estimate_mM,
    noise_statistics,
    signal_mask,
)
from imagingsim.modalities.mri.result import MRIAcquisition
from imagingsim.modalities.mri.sampling import (
    calibration_size,
    coil_sensitivities,
    n_acquired,
    sampling_mask,
    to_fft_order,
)
from imagingsim.modalities.mri.spec import MRISpec
from imagingsim.modalities.stages import StageTimer
from imagingsim.phantom.model import Label
from imagingsim.scenario import Scenario

#: Random streams: generator keys (seed, stream[, session]).
MRI_NOISE_STREAM = 0x3A1
MRI_MASK_STREAM = 0x3A2
MRI_B0_STREAM = 0x3A3
MRI_NOISE_FLOOR_STREAM = 0x3A4


def add_kspace_noise(kspace, sigma, rng, backend: Backend, *, mask=None):
    """``kspace + sigma (n_re + i n_im)`` with standard normal ``n``, zeroed off the mask.

    Parameters
    ----------
    kspace : device array, complex, ``(..., ny, nz)`` last two axes the phase encodes
    sigma : float or device 0-d array
        sd of each of the real and imaginary parts (>= 0).
    rng : Generator
    mask : device bool array ``(ny, nz)``, FFT order, optional
        Acquired encodes: the result is 0 elsewhere (nothing is measured there).
    """
    xp = backend.xp
    cdtype = kspace.dtype
    rdtype = xp.float32 if cdtype == xp.complex64 else xp.float64
    shape = tuple(kspace.shape)
    sigma = sigma if isinstance(sigma, (int, float)) else xp.astype(sigma, rdtype)
    real = rng.standard_normal(shape, dtype=rdtype) * sigma
    imag = rng.standard_normal(shape, dtype=rdtype) * sigma
    noisy = kspace + (xp.astype(real, cdtype) + 1j * xp.astype(imag, cdtype))
    if mask is None:
        return noisy
    return noisy * xp.astype(mask, rdtype)


def reference_signal(first_echo_magnitude, labels, backend: Backend):
    """Mean of ``first_echo_magnitude`` over muscle (the whole body without muscle), device 0-d."""
    xp = backend.xp
    a = xp.astype(first_echo_magnitude, xp.float64)
    means = []
    for region in (labels == int(Label.SOFT_TISSUE), labels != int(Label.AIR)):
        count = xp.sum(xp.astype(region, xp.float64))
        means.append((count, xp.sum(xp.where(region, a, 0.0)) / xp.maximum(count, 1.0)))
    (n_muscle, muscle), (_, body) = means
    return xp.where(n_muscle > 0, muscle, body)


def resolve_recon(spec) -> str:
    """The reconstruction ``spec.recon`` asks for.

    ``auto`` is CG-SENSE when the data are undersampled **and** there is more than one coil,
    else the zero-filled inverse FFT: with one coil CG-SENSE has no coil diversity to unfold
    the aliasing and returns the zero-filled image divided by ``1 + lambda``
    (:func:`~imagingsim.modalities.mri.recon.cg_sense`), so zero filling is the honest name for it.
    """
    if spec.recon == "auto":
        return "cg_sense" if spec.undersampling != "none" and spec.n_coils > 1 else "zero_filled"
    return spec.recon


def check_mri(spec: MRISpec, scenario: Scenario) -> None:
    """Fail fast, before the phantom and delivery, on MRI settings that only the grid can check.

    Checks ``modalities.mri`` against the phantom grid the scenario will build (the anatomy's
    field of view at ``phantom.voxel_size_mm``), without building it.

    Raises
    ------
    ValueError
        One line naming the field:

        - ``modalities.mri.calibration_fraction``: the fully sampled calibration box holds
          more phase encodes than the acceleration acquires;
        - ``modalities.mri.recon``: ``"cg_sense"`` asked for explicitly on undersampled
          single-coil data (CG-SENSE is then zero filling scaled by ``1 / (1 + lambda)``,
          not a de-aliasing); ``recon = "auto"`` picks zero filling in that case instead
          (:func:`resolve_recon`).
    """
    from imagingsim.phantom.anatomy import get_anatomy

    grid = get_anatomy(scenario.phantom.anatomy).grid(scenario.phantom.voxel_size_mm)
    check_mri_spec(spec, tuple(int(n) for n in grid.shape[1:]))


def check_mri_spec(spec, phase_encodes: tuple[int, int]) -> None:
    """:func:`check_mri` for a given ``(ny, nz)`` phase-encode matrix (also run by :func:`acquire_mri`)."""
    if spec.undersampling == "none":
        return
    target = n_acquired(phase_encodes, spec.acceleration)
    cy, cz = calibration_size(phase_encodes, spec.calibration_fraction)
    if cy * cz > target:
        raise ValueError(
            f"modalities.mri.calibration_fraction: the {cy}x{cz} calibration box holds more than the {target} "
            f"phase encodes that acceleration {spec.acceleration:g} acquires on the {phase_encodes[0]}x"
            f"{phase_encodes[1]} (ky, kz) matrix; lower calibration_fraction or acceleration"
        )
    if spec.n_coils == 1 and spec.recon == "cg_sense":
        raise ValueError(
            f"modalities.mri.recon: \"cg_sense\" with n_coils = 1 and {spec.undersampling} undersampling only scales "
            "the zero-filled image by 1 / (1 + lambda) (no coil diversity to unfold aliasing); use n_coils > 1 or "
            "recon = \"zero_filled\" (\"auto\" picks it)"
        )


@dataclass(frozen=True, eq=False)
class MRIPlan:
    """Everything an MRI study needs before any session is simulated.

    Attributes
    ----------
    spec : MRISpec
        The settings.
    method : {"zero_filled", "cg_sense"}
        The reconstruction (:func:`resolve_recon`).
    echo_times_ms : list of float
    iron_agents : list of (IronAgent, AgentDelivery)
        Agents with an iron-oxide label and their relaxivities at the field.
    r1_0, r2star_0 : device arrays
        Baseline relaxation rates at the field, 1/s.
    proton_density : device array
    offresonance_hz : device array or None
        Seeded B0 off-resonance map, Hz.
    coil_maps : device array or None
        Receive sensitivities ``(C, nx, ny, nz)`` (None for one coil).
    mask : device array, bool, ``(ny, nz)``
        Acquired phase encodes, FFT order.
    acceleration : float
        Fully sampled / acquired phase encodes.
    forward : LinearOperator
        Encoding operator (coils, FFT) of all echoes at once.
    sigma : device array (scalar)
        Complex noise sd per k-space sample.
    reference_signal : device array (scalar)
        Pre-contrast first-echo muscle magnitude the noise percentage refers to.
    cdtype, rdtype : dtypes
        Of k-space and images, and of magnitudes.
    """

    spec: MRISpec
    method: str
    echo_times_ms: list[float]
    iron_agents: list
    r1_0: Any
    r2star_0: Any
    proton_density: Any
    offresonance_hz: Any
    coil_maps: Any
    mask: Any
    acceleration: float
    forward: Any
    sigma: Any
    reference_signal: Any
    cdtype: Any
    rdtype: Any

    @property
    def undersampled(self) -> bool:
        """Whether phase encodes are skipped (the mask then enters the noise and the recon)."""
        return self.spec.undersampling != "none"


def plan_mri(ctx: AcquisitionContext, *, dtype=None) -> MRIPlan:
    """Baseline relaxation, coils, sampling mask, encoding operator and noise level of a subject."""
    phantom, backend, seed, spec = ctx.phantom, ctx.backend, ctx.seed, ctx.spec
    xp = backend.xp
    cdtype = dtype or xp.complex64
    rdtype = xp.float32 if cdtype == xp.complex64 else xp.float64
    grid = phantom.grid
    _, ny, nz = grid.shape
    check_mri_spec(spec, (ny, nz))
    echo_times = [float(t) for t in spec.echo_times_ms]
    agents = iron_agents(ctx.delivery, spec.field_T)
    r1_0, r2star_0 = baseline_relaxation(phantom, spec.field_T, backend)
    m0 = phantom.properties["proton_density"]
    offresonance = None
    if spec.b0_offresonance_hz > 0:
        offresonance = offresonance_map_hz(grid, spec.b0_offresonance_hz, backend.rng(seed, MRI_B0_STREAM), backend)
    coil_maps = coil_sensitivities(grid, spec.n_coils, backend, dtype=cdtype) if spec.n_coils > 1 else None
    if spec.undersampling == "none":
        mask = xp.ones((ny, nz), dtype=xp.bool, device=backend.device)
        acceleration = 1.0
    else:
        centred = sampling_mask((ny, nz), spec.undersampling, spec.acceleration, spec.calibration_fraction,
                                backend.rng(seed, MRI_MASK_STREAM), backend)
        mask = to_fft_order(centred, backend)
        acceleration = ny * nz / n_acquired((ny, nz), spec.acceleration)
    forward = encoding_operator(grid.shape, backend, coil_maps=coil_maps, n_batch=len(echo_times))

    # BrainWeb noise reference: the pre-contrast first-echo magnitude of muscle. Fixed before
    # any session, so the noise does not follow the contrast agent.
    baseline_first_echo = spoiled_gre(m0, r1_0, r2star_0, repetition_time_ms=spec.repetition_time_ms,
                                      echo_times_ms=echo_times[:1], flip_angle_deg=spec.flip_angle_deg)
    reference = reference_signal(xp.abs(baseline_first_echo[0, ...]), phantom.labels, backend)
    sigma = (spec.noise_percent / 100.0) * reference
    return MRIPlan(spec=spec, method=resolve_recon(spec), echo_times_ms=echo_times, iron_agents=agents, r1_0=r1_0,
                   r2star_0=r2star_0, proton_density=m0, offresonance_hz=offresonance, coil_maps=coil_maps, mask=mask,
                   acceleration=acceleration, forward=forward, sigma=sigma, reference_signal=reference,
                   cdtype=cdtype, rdtype=rdtype)


def reconstruct_mri(plan: MRIPlan, kspace, backend: Backend):
    """Magnitude images ``(B, nx, ny, nz)`` of k-space ``(B, C, nx, ny, nz)`` by ``plan.method``.

    Reruns on stored k-space (with the plan's mask and coil maps).
    """
    xp = backend.xp
    spec = plan.spec
    if plan.method == "cg_sense":
        image = cg_sense(kspace, backend, mask=plan.mask if plan.undersampled else None, coil_maps=plan.coil_maps,
                         iterations=spec.cg_iterations, regularization=spec.cg_regularization)
        return xp.astype(xp.abs(image), plan.rdtype)
    return xp.astype(zero_filled(kspace, backend), plan.rdtype)


def noise_floor(plan: MRIPlan, backend: Backend, seed: int):
    """Noise statistics of this coil set, mask and recon: noise alone reconstructed (own stream).

    None without noise or with fewer than two echoes (no R2* fit to protect).
    """
    xp = backend.xp
    if not (plan.spec.noise_percent > 0 and len(plan.echo_times_ms) >= 2):
        return None
    zeros = xp.zeros((NOISE_REALISATIONS,) + tuple(plan.forward.out_shape[1:]), dtype=plan.cdtype,
                     device=backend.device)
    noise_only = add_kspace_noise(zeros, plan.sigma, backend.rng(seed, MRI_NOISE_FLOOR_STREAM), backend,
                                  mask=plan.mask if plan.undersampled else None)
    del zeros
    return noise_statistics(reconstruct_mri(plan, noise_only, backend), backend)


def simulate_mri_session(plan: MRIPlan, ctx: AcquisitionContext, session: int, timer: StageTimer | None = None):
    """True relaxation and noisy k-space of session ``session`` (noise from ``rng(seed, MRI_NOISE_STREAM, session)``).

    Returns
    -------
    kspace : device array, ``(E, C, nx, ny, nz)``
    truth : dict
        ``r1``, ``r2star`` (1/s), ``iron`` and ``bound`` (mM) maps of the session.
    """
    backend, spec = ctx.backend, plan.spec
    xp = backend.xp
    timer = timer or StageTimer()
    iron = [
        (agent.relaxivity, iron_mM(item.carrier_ug_per_ml[..., session], agent.iron_mass_fraction),
         iron_mM(item.bound_carrier_ug_per_ml[..., session], agent.iron_mass_fraction))
        for agent, item in plan.iron_agents
    ]
    r1, r2star, total, bound = relaxation_with_iron(plan.r1_0, plan.r2star_0, iron, spec.clustered_iron_r2star_factor)
    images = spoiled_gre(plan.proton_density, r1, r2star, repetition_time_ms=spec.repetition_time_ms,
                         echo_times_ms=plan.echo_times_ms, flip_angle_deg=spec.flip_angle_deg,
                         offresonance_hz=plan.offresonance_hz, dtype=plan.cdtype)
    timer.lap("signal")
    clean = plan.forward.apply(images)
    del images
    timer.lap("encoding")
    if spec.noise_percent > 0:
        kspace = add_kspace_noise(clean, plan.sigma, backend.rng(ctx.seed, MRI_NOISE_STREAM, session), backend,
                                  mask=plan.mask if plan.undersampled else None)
    else:
        kspace = clean * xp.astype(plan.mask, plan.rdtype) if plan.undersampled else clean
    del clean
    timer.lap("noise")
    return kspace, {"r1": r1, "r2star": r2star, "iron": total, "bound": bound}


def acquire_mri(ctx: AcquisitionContext, *, dtype=None) -> MRIAcquisition:
    """Simulate and reconstruct the MRI study of a scenario (see the module docstring).

    :func:`plan_mri`, the :func:`noise_floor` of its reconstruction, then per session
    :func:`simulate_mri_session`, :func:`reconstruct_mri` and the R2* fit, up to
    ``backend.workers`` sessions at a time (so only that many sessions' echoes are in
    flight; the results are the same bits whatever the number). ``timings_s`` sums each
    part over the sessions.

    Parameters
    ----------
    ctx : AcquisitionContext
        The MRI settings (``ctx.spec``), agents, schedule, phantom, delivery, backend and
        subject seed (:func:`imagingsim.modalities.base.acquisition_context`).
    dtype : complex dtype, keyword-only, optional
        Of k-space and the reconstructions: complex64 unless given (complex128 for exact
        checks); relaxation and signal are computed in float64.

    Returns
    -------
    MRIAcquisition
    """
    delivery, backend = ctx.delivery, ctx.backend
    xp = backend.xp
    spec = ctx.spec
    timer = StageTimer()
    lap = timer.lap
    plan = plan_mri(ctx, dtype=dtype)
    lap("setup")
    noise = noise_floor(plan, backend, ctx.seed)
    lap("noise_floor")

    echo_times, agents, method = plan.echo_times_ms, plan.iron_agents, plan.method
    n_sessions = len(delivery.times_h)
    out = _SessionStacks(n_sessions, backend)
    finished = itertools.count(1)  # next() is atomic: sessions finish on any thread

    def session(k: int) -> StageTimer:
        # Sessions are independent (own noise stream, results in their own slots), so the
        # backend may run two at once: their FFTs, noise draws and fits leave a core idle.
        session_timer = StageTimer()
        kspace, truth = simulate_mri_session(plan, ctx, k, session_timer)
        magnitude = reconstruct_mri(plan, kspace, backend)
        session_timer.lap(f"recon_{method}")
        if len(echo_times) >= 2:
            fit_mask = signal_mask(magnitude[0, ...], noise, backend)
            fitted = fit_r2star(magnitude, echo_times, backend, mask=fit_mask,
                                noise_floor=None if noise is None else noise.rms,
                                rss_channels=spec.n_coils if method == "zero_filled" else 1)
            out.put("fit_mask", k, fit_mask)
            out.put("r2star", k, xp.astype(fitted, xp.float32))
            if agents:
                estimate = iron_estimate_mM(fitted, plan.r2star_0, agents[0][0].relaxivity.r2star_per_mM_s, backend,
                                            mask=fit_mask, first_echo_ms=echo_times[0])
                out.put("iron_estimate", k, xp.astype(estimate, xp.float32))
        session_timer.lap("r2star_fit")
        out.put("kspace", k, kspace)
        out.put("magnitude", k, magnitude)
        for key, name in (("r1", "r1"), ("r2star_true", "r2star"), ("iron", "iron"), ("bound", "bound")):
            out.put(key, k, xp.astype(truth[name], xp.float32))
        progress.report(next(finished), n_sessions)
        return session_timer

    for session_timer in backend.map_ordered(session, range(n_sessions)):
        timer.add(session_timer)
    stacked = out.get

    # One explicit synchronisation for the scalars the sidecars report.
    sigma_host, reference_host = backend.to_host(xp.stack([xp.astype(plan.sigma, xp.float64),
                                                           plan.reference_signal])).tolist()
    result = MRIAcquisition(
        spec=spec,
        times_h=tuple(float(t) for t in delivery.times_h),
        time_labels=tuple(session_label(t) for t in delivery.times_h),
        iron_agents=tuple(agent for agent, _ in agents),
        kspace=stacked("kspace"),
        mask=plan.mask,
        coil_maps=plan.coil_maps,
        offresonance_hz=None if plan.offresonance_hz is None else xp.astype(plan.offresonance_hz, xp.float32),
        noise_sd=(float(sigma_host),) * n_sessions,
        noise_reference_signal=float(reference_host),
        noise_floor_rms=None if noise is None else xp.astype(noise.rms, xp.float32),
        acceleration=float(plan.acceleration),
        recon_method=method,
        magnitude=stacked("magnitude"),
        r2star_per_s=stacked("r2star"),
        fit_mask=stacked("fit_mask"),
        iron_estimate_mM=stacked("iron_estimate"),
        true_r1_per_s=stacked("r1"),
        true_r2star_per_s=stacked("r2star_true"),
        true_iron_mM=stacked("iron"),
        true_bound_iron_mM=stacked("bound"),
        baseline_r1_per_s=xp.astype(plan.r1_0, xp.float32),
        baseline_r2star_per_s=xp.astype(plan.r2star_0, xp.float32),
        timings_s=timer.seconds,
    )
    lap("collect")
    return result


class _SessionStacks:
    """Per-session arrays written into one preallocated ``(n_sessions, ...)`` array per key.

    Stacking the sessions' arrays at the end would hold every map twice (k-space included);
    here each slot is filled as its session finishes, by whichever thread ran it.
    """

    def __init__(self, n_sessions: int, backend: Backend):
        self._n, self._backend = n_sessions, backend
        self._arrays: dict[str, Any] = {}
        self._lock = threading.Lock()

    def put(self, key: str, session: int, array) -> None:
        xp = self._backend.xp
        with self._lock:
            if key not in self._arrays:
                self._arrays[key] = xp.empty((self._n,) + tuple(array.shape), dtype=array.dtype,
                                             device=self._backend.device)
        self._arrays[key][session, ...] = array

    def get(self, key: str):
        """The stacked array of ``key``; None when no session produced one."""
        return self._arrays.get(key)


def roi_iron_mM(acquisition: MRIAcquisition, roi, backend: Backend):
    """Mean true and estimated iron in a region, per session (the estimate over voxels that have one).

    Parameters
    ----------
    acquisition : MRIAcquisition
        With an iron estimate (``iron_estimate_mM`` not None).
    roi : device bool array ``(nx, ny, nz)``
        The region, e.g. ``phantom.tumour_index > 0``.
    backend : Backend

    Returns
    -------
    true_mM, estimate_mM, estimated_fraction : tuples of float, one value per session
        Mean true iron over the region (mM); mean of the finite iron estimate over the
        region (mM; NaN when no voxel has one); fraction of the region's voxels with an
        estimate (the others are masked, clipped or baseline voids).
    """
    xp = backend.xp
    if acquisition.iron_estimate_mM is None:
        raise ValueError("roi_iron_mM: the acquisition has no iron estimate (no iron agent, or one echo)")
    region = xp.astype(roi, xp.float64)
    estimate = xp.astype(acquisition.iron_estimate_mM, xp.float64)
    has = xp.isfinite(estimate) & roi
    axes = (1, 2, 3)
    n_roi = xp.sum(region)
    n_est = xp.sum(xp.astype(has, xp.float64), axis=axes)
    sums = xp.stack([
        xp.sum(xp.astype(acquisition.true_iron_mM, xp.float64) * region, axis=axes) / xp.maximum(n_roi, 1.0),
        xp.sum(xp.where(has, estimate, 0.0), axis=axes) / xp.where(n_est > 0, n_est, xp.nan),
        n_est / xp.maximum(n_roi, 1.0),
    ])
    true, est, fraction = backend.to_host(sums).tolist()  # one explicit synchronisation
    return tuple(true), tuple(est), tuple(fraction)


__all__ = [
    "MRI_B0_STREAM",
    "MRI_MASK_STREAM",
    "MRI_NOISE_FLOOR_STREAM",
    "MRI_NOISE_STREAM",
    "MRIPlan",
    "acquire_mri",
    "add_kspace_noise",
    "check_mri",
    "check_mri_spec",
    "noise_floor",
    "plan_mri",
    "reconstruct_mri",
    "reference_signal",
    "resolve_recon",
    "roi_iron_mM",
    "simulate_mri_session",
]
