"""What the MRI forward model hands to the writers: k-space, images, fits and their truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagingsim.modalities.mri.physics import IronAgent
from imagingsim.modalities.mri.spec import MRISpec


@dataclass(frozen=True, eq=False)
class MRIAcquisition:
    """One MRI study: a spoiled multi-echo GRE session at each schedule time.

    Array layouts put batches first and the image axes (x, y, z) last: ``T`` sessions,
    ``E`` echoes, ``C`` coils. K-space is in **unshifted FFT order** (k = 0 at index 0; the
    writer stores it centred).

    Attributes
    ----------
    spec : MRISpec
        The scenario's MRI section.
    times_h : tuple of float
        Session times after t = 0, h (the schedule).
    time_labels : tuple of str
        BIDS session labels of the schedule times (:func:`~imagingsim.io.sessions.session_label`).
    iron_agents : tuple of IronAgent
        Agents with an iron-oxide label, with their relaxivities at the field.
    kspace : device array ``(T, E, C, nx, ny, nz)``, complex
        Measured data: ``M (F S m + n)``, zeros at phase encodes not acquired.
    mask : device array ``(ny, nz)``, bool, FFT order
        Acquired phase encodes (the same in every session); all true when fully sampled.
    coil_maps : device array ``(C, nx, ny, nz)``, complex, or None
        Receive sensitivities (``sum_c |S_c|^2 = 1``); None for one uniform coil.
    offresonance_hz : device array ``(nx, ny, nz)``, float, or None
        The B0 off-resonance map, Hz (None when ``b0_offresonance_hz`` is 0).
    noise_sd : tuple of float
        Per session, the sd of each of the real and imaginary parts of the k-space noise
        (= in image space, orthonormal FFT), in the units of the images. The same in every
        session: ``noise_percent / 100 x noise_reference_signal``.
    noise_reference_signal : float
        Mean pre-contrast (baseline) noiseless first-echo magnitude in muscle (the whole
        body without muscle): the BrainWeb noise reference, independent of the agent.
    noise_floor_rms : device array ``(nx, ny, nz)``, float32, or None
        RMS magnitude of the reconstructed noise alone (local average; see
        :func:`~imagingsim.modalities.mri.relaxometry.noise_statistics`): the floor the R2* fit's echo
        cut-off uses. None without noise or with a single echo.
    acceleration : float
        Achieved ``N_total / N_acquired`` over (ky, kz).
    recon_method : str
        ``"zero_filled"`` or ``"cg_sense"``.
    magnitude : device array ``(T, E, nx, ny, nz)``, float32 (float64 for complex128 k-space)
        Reconstructed magnitude images.
    r2star_per_s : device array ``(T, nx, ny, nz)``, float32, or None
        Fitted R2* (1/s), 0 outside the signal mask; None with a single echo.
    fit_mask : device array ``(T, nx, ny, nz)``, bool, or None
        Voxels fitted.
    iron_estimate_mM : device array ``(T, nx, ny, nz)``, float32, or None
        ``(R2* - R2*_0) / r2*`` with the first iron agent's solution r2*; NaN outside the
        fit mask, where the fit hit a clip limit and where the baseline is a void
        (:func:`~imagingsim.modalities.mri.relaxometry.iron_estimate_mM`); None without an iron agent or
        with a single echo.
    true_r1_per_s, true_r2star_per_s : device arrays ``(T, nx, ny, nz)``, float32
        The relaxation rates the signal was computed from.
    true_iron_mM, true_bound_iron_mM : device arrays ``(T, nx, ny, nz)``, float32
        Iron of all iron-oxide agents, total and cell-associated, mM.
    baseline_r1_per_s, baseline_r2star_per_s : device arrays ``(nx, ny, nz)``, float32
        Pre-contrast rates at the field.
    timings_s : dict of str -> float
        Wall time of each stage, s.
    """

    spec: MRISpec
    times_h: tuple[float, ...]
    time_labels: tuple[str, ...]
    iron_agents: tuple[IronAgent, ...]
    kspace: Any = field(repr=False)
    mask: Any = field(repr=False)
    coil_maps: Any = field(repr=False)
    offresonance_hz: Any = field(repr=False)
    noise_sd: tuple[float, ...]
    noise_reference_signal: float
    noise_floor_rms: Any = field(repr=False)
    acceleration: float
    recon_method: str
    magnitude: Any = field(repr=False)
    r2star_per_s: Any = field(repr=False)
    fit_mask: Any = field(repr=False)
    iron_estimate_mM: Any = field(repr=False)
    true_r1_per_s: Any = field(repr=False)
    true_r2star_per_s: Any = field(repr=False)
    true_iron_mM: Any = field(repr=False)
    true_bound_iron_mM: Any = field(repr=False)
    baseline_r1_per_s: Any = field(repr=False)
    baseline_r2star_per_s: Any = field(repr=False)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def n_coils(self) -> int:
        return int(self.kspace.shape[2])

    @property
    def echo_times_ms(self) -> tuple[float, ...]:
        return tuple(float(t) for t in self.spec.echo_times_ms)


__all__ = ["MRIAcquisition"]
