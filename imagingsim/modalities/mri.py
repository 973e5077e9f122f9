"""MRI with iron-oxide (SPION) contrast: R1/R2* from relaxivity -> multi-echo spoiled GRE ->
3-D Cartesian k-space (coils, undersampling) -> complex noise -> recon -> R2* map -> iron.

Model (one session per schedule time ``t_k``; physics in :mod:`~imagingsim.modalities.mri_physics`)
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
  :mod:`~imagingsim.modalities.mri_sampling`).
- **Noise.** Complex Gaussian noise is added to the acquired k-space samples, sd ``sigma``
  in each of the real and imaginary parts, with ``sigma = noise_percent / 100`` times the
  mean noiseless first-echo magnitude in muscle (``Label.SOFT_TISSUE``; the whole body when
  there is no muscle) at that session: BrainWeb's definition. The FFT being orthonormal,
  the image noise has the same sd per voxel and magnitude images are Rician (single coil).
  Generator ``(seed, MRI_NOISE_STREAM, k)`` for session ``k``.
- **Reconstruction** (:mod:`imagingsim.recon.mri`). ``recon = "auto"``: CG-SENSE when
  undersampled, else zero-filled inverse FFT with root-sum-of-squares coil combination.
  Then the R2* fit over echoes (log-linear WLS, weights S^2) inside a signal mask, and the
  iron estimate ``(R2* - R2*_0) / r2*`` with the solution r2* of the first iron agent.
  ``R2*_0`` is the simulation's own baseline at the field: it stands in for the
  pre-contrast scan a real study would acquire. The estimate uses the solution relaxivity,
  so cell-associated iron (effective r2* ``f`` times higher) is overestimated by up to
  ``f``: a real limitation of R2* iron quantification, kept on purpose.
"""

from __future__ import annotations

import time

from imagingsim.backend import Backend
from imagingsim.modalities.mri_physics import (
    baseline_relaxation,
    iron_agents,
    iron_mM,
    offresonance_map_hz,
    relaxation_with_iron,
    spoiled_gre,
)
from imagingsim.modalities.mri_result import MRIAcquisition, time_label
from imagingsim.modalities.mri_sampling import coil_sensitivities, n_acquired, sampling_mask, to_fft_order
from imagingsim.phantom.model import Label
from imagingsim.recon.mri import cg_sense, encoding_operator, fit_r2star, iron_estimate_mM, signal_mask, zero_filled
from imagingsim.scenario import Scenario

#: Random streams: generator keys (seed, stream[, session]).
MRI_NOISE_STREAM = 0x3A1
MRI_MASK_STREAM = 0x3A2
MRI_B0_STREAM = 0x3A3


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
    """The reconstruction ``spec.recon`` asks for (``auto``: CG-SENSE when undersampled)."""
    if spec.recon == "auto":
        return "cg_sense" if spec.undersampling != "none" else "zero_filled"
    return spec.recon


def acquire_mri(phantom, delivery, scenario: Scenario, backend: Backend, seed: int, *, dtype=None) -> MRIAcquisition:
    """Simulate and reconstruct the MRI study of a scenario (see the module docstring).

    Parameters
    ----------
    phantom : imagingsim.phantom.Phantom
        Grid, labels, proton density and 3 T relaxation maps.
    delivery : imagingsim.delivery.DeliveryResult
        Carrier and cell-associated carrier maps ``(nx, ny, nz, T)`` at the schedule times.
    scenario : Scenario
        ``modalities.mri`` settings and the agents (iron-oxide labels).
    backend : Backend
    seed : int
        Subject seed (>= 0): masks, off-resonance and noise are drawn from
        ``backend.rng(seed, stream, ...)``, reproducible per backend.
    dtype : complex dtype, keyword-only, optional
        Of k-space and the reconstructions: complex64 unless given (complex128 for exact
        checks); relaxation and signal are computed in float64.

    Returns
    -------
    MRIAcquisition
    """
    xp = backend.xp
    spec = scenario.modalities.mri
    cdtype = dtype or xp.complex64
    rdtype = xp.float32 if cdtype == xp.complex64 else xp.float64
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    grid = phantom.grid
    _, ny, nz = grid.shape
    echo_times = [float(t) for t in spec.echo_times_ms]
    n_echoes = len(echo_times)
    agents = iron_agents(delivery, spec.field_T)
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
    undersampled = spec.undersampling != "none"
    method = resolve_recon(spec)
    forward = encoding_operator(grid.shape, backend, coil_maps=coil_maps, n_batch=n_echoes)
    lap("setup")

    out: dict[str, list] = {k: [] for k in ("kspace", "magnitude", "r2star", "fit_mask", "iron_estimate", "r1",
                                             "r2star_true", "iron", "bound", "sigma", "reference")}
    for k in range(len(delivery.times_h)):
        iron = [
            (agent.relaxivity, iron_mM(item.carrier_ug_per_ml[..., k], agent.iron_mass_fraction),
             iron_mM(item.bound_carrier_ug_per_ml[..., k], agent.iron_mass_fraction))
            for agent, item in agents
        ]
        r1, r2star, total, bound = relaxation_with_iron(r1_0, r2star_0, iron, spec.clustered_iron_r2star_factor)
        images = spoiled_gre(m0, r1, r2star, repetition_time_ms=spec.repetition_time_ms, echo_times_ms=echo_times,
                             flip_angle_deg=spec.flip_angle_deg, offresonance_hz=offresonance, dtype=cdtype)
        reference = reference_signal(xp.abs(images[0, ...]), phantom.labels, backend)
        sigma = (spec.noise_percent / 100.0) * reference
        lap("signal")
        clean = forward.apply(images)
        del images
        lap("encoding")
        if spec.noise_percent > 0:
            kspace = add_kspace_noise(clean, sigma, backend.rng(seed, MRI_NOISE_STREAM, k), backend,
                                      mask=mask if undersampled else None)
        else:
            kspace = clean * xp.astype(mask, rdtype) if undersampled else clean
        del clean
        lap("noise")
        if method == "cg_sense":
            image = cg_sense(kspace, backend, mask=mask if undersampled else None, coil_maps=coil_maps,
                             iterations=spec.cg_iterations, regularization=spec.cg_regularization)
            magnitude = xp.abs(image)
            del image
        else:
            magnitude = zero_filled(kspace, backend)
        magnitude = xp.astype(magnitude, rdtype)
        lap(f"recon_{method}")
        if n_echoes >= 2:
            fit_mask = signal_mask(magnitude[0, ...], sigma, backend)
            fitted = fit_r2star(magnitude, echo_times, backend, mask=fit_mask, noise_sd=sigma)
            out["fit_mask"].append(fit_mask)
            out["r2star"].append(xp.astype(fitted, xp.float32))
            if agents:
                estimate = iron_estimate_mM(fitted, r2star_0, agents[0][0].relaxivity.r2star_per_mM_s, backend,
                                            mask=fit_mask)
                out["iron_estimate"].append(xp.astype(estimate, xp.float32))
        lap("r2star_fit")
        out["kspace"].append(kspace)
        out["magnitude"].append(magnitude)
        out["r1"].append(xp.astype(r1, xp.float32))
        out["r2star_true"].append(xp.astype(r2star, xp.float32))
        out["iron"].append(xp.astype(total, xp.float32))
        out["bound"].append(xp.astype(bound, xp.float32))
        out["sigma"].append(xp.astype(sigma, xp.float64))
        out["reference"].append(reference)

    def stacked(key):
        return xp.stack(out[key], axis=0) if out[key] else None

    # One explicit synchronisation for the scalars the sidecars report.
    host = backend.to_host(xp.stack(out["sigma"] + out["reference"])).tolist()
    n_sessions = len(out["sigma"])
    result = MRIAcquisition(
        spec=spec,
        times_h=tuple(float(t) for t in delivery.times_h),
        time_labels=tuple(time_label(t) for t in delivery.times_h),
        iron_agents=tuple(agent for agent, _ in agents),
        kspace=stacked("kspace"),
        mask=mask,
        coil_maps=coil_maps,
        offresonance_hz=None if offresonance is None else xp.astype(offresonance, xp.float32),
        noise_sd=tuple(float(v) for v in host[:n_sessions]),
        muscle_signal=tuple(float(v) for v in host[n_sessions:]),
        acceleration=float(acceleration),
        recon_method=method,
        magnitude=stacked("magnitude"),
        r2star_per_s=stacked("r2star"),
        fit_mask=stacked("fit_mask"),
        iron_estimate_mM=stacked("iron_estimate"),
        true_r1_per_s=stacked("r1"),
        true_r2star_per_s=stacked("r2star_true"),
        true_iron_mM=stacked("iron"),
        true_bound_iron_mM=stacked("bound"),
        baseline_r1_per_s=xp.astype(r1_0, xp.float32),
        baseline_r2star_per_s=xp.astype(r2star_0, xp.float32),
        timings_s=timings,
    )
    lap("collect")
    return result


__all__ = [
    "MRI_B0_STREAM",
    "MRI_MASK_STREAM",
    "MRI_NOISE_STREAM",
    "acquire_mri",
    "add_kspace_noise",
    "reference_signal",
    "resolve_recon",
]
