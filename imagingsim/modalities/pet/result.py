"""What the PET forward model hands to the writers: images, raw data and their metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagingsim.modalities.frames import one_frame
from imagingsim.projectors import ParallelBeamGeometry
from imagingsim.scenario import AgentSpec


@dataclass(frozen=True)
class ScannerParams:
    """A PET scanner preset after the scenario's overrides (units in the names)."""

    preset: str
    manufacturer: str
    model: str
    fwhm_mm: float
    sensitivity: float
    scatter_fraction: float
    randoms_fraction: float
    frame_duration_s: float
    n_views: int
    iterations: int
    subsets: int
    post_filter_fwhm_mm: float
    fbp_filter: str
    fbp_cutoff: float


@dataclass(frozen=True, eq=False)
class PETAcquisition:
    """One PET study: a frame at each schedule time, raw sinograms and reconstructions.

    Frames start at the scenario's schedule times (t = 0 is the scenario start, when the
    first agent may be injected). All device arrays are float32.

    Attributes
    ----------
    tracer : AgentSpec
        The agent the scan is named after and decay-corrected for.
    nuclide : str
        Its nuclide (``"Zr89"``...).
    emitters : dict of str -> str
        Every positron-emitting agent -> its nuclide. All of them contribute counts.
    scanner : ScannerParams
    geometry : ParallelBeamGeometry
        Transaxial geometry; slices are the phantom grid's z planes.
    schedule_indices : tuple of int
        Index into the scenario schedule of each frame: the schedule times from the tracer's
        injection on (earlier times have no tracer to image).
    frame_start_s, frame_duration_s : tuple of float
        Frame starts after the scenario's t = 0 (not after the injection), and lengths, s.
    decay_correction_factors : tuple of float
        Per frame, the factor applied for decay (BIDS DecayCorrectionFactor): frame length
        over the decay integral since injection when decay-corrected, else 1.
    decay_corrected : bool
        True: images are decay-corrected to the tracer's injection (BIDS ImageDecayCorrected).
    injected_activity_bq : float
        Tracer activity at injection, Bq.
    injected_mass_ug : float
        Tracer (carrier) mass injected, ug.
    specific_activity_bq_per_ug : float
        Tracer specific activity at injection, Bq/ug.
    images_bq_per_ml : dict of str -> device array ``(nx, ny, nz, n_frames)``
        Reconstruction per method (``"osem"``, ``"mlem"``, ``"fbp"``), Bq/mL.
    recon_parameters : dict of str -> dict
        Per method: ``{"labels": [...], "units": [...], "values": [...], "filter_type": str,
        "filter_size": float (mm), "method_name": str}`` for the BIDS Recon* fields.
    expected_image_bq_per_ml : device array ``(nx, ny, nz, n_frames)``
        What an ideal scanner would report in the same convention: sum over emitters of
        activity x positrons per decay x decay over the frame, divided by the tracer's
        factors (the ground truth the reconstructions estimate).
    mu_511_per_mm : device array ``(nx, ny, nz)``
        Linear attenuation coefficient at 511 keV, 1/mm.
    prompts : device array ``(n_views, n_bins, nz, n_frames)``
        Measured counts (Poisson draws, integer-valued).
    expected_background : device array ``(n_views, n_bins, nz, n_frames)``
        Expected scatter + randoms counts.
    attenuation_factors : device array ``(n_views, n_bins, nz)``
        ``exp(-line integral of mu_511)``.
    counts_per_unit_projection : tuple of float
        Per frame, the factor ``n_k`` in ``E[trues] = n_k * a * P(PSF(x))`` for an image ``x``
        in Bq/mL (tracer units) and line integrals ``P`` in mm: sensitivity, bin and slice
        size, views, positrons per decay, and the tracer's decay integral over the frame when the
        images are decay-corrected (else the frame length: the image is then the mean activity).
    total_counts : dict of str -> tuple of float
        Per frame: ``"trues"``, ``"scatter"``, ``"randoms"`` (expected) and ``"prompts"``
        (drawn: the realised total, not an expectation).
    suv_scale_g_per_bq : tuple of float
        Per frame, multiply the Bq/mL image by this to get body-weight SUV: body mass over
        injected activity, g/Bq, times the frame's decay factor when the images are not
        decay-corrected (SUV compares activity with the dose decayed to the scan).
    """

    tracer: AgentSpec
    nuclide: str
    emitters: dict[str, str]
    scanner: ScannerParams
    geometry: ParallelBeamGeometry
    schedule_indices: tuple[int, ...]
    frame_start_s: tuple[float, ...]
    frame_duration_s: tuple[float, ...]
    decay_correction_factors: tuple[float, ...]
    decay_corrected: bool
    injected_activity_bq: float
    injected_mass_ug: float
    specific_activity_bq_per_ug: float
    images_bq_per_ml: dict[str, Any]
    recon_parameters: dict[str, dict[str, Any]]
    expected_image_bq_per_ml: Any
    mu_511_per_mm: Any
    prompts: Any
    expected_background: Any
    attenuation_factors: Any
    counts_per_unit_projection: tuple[float, ...]
    total_counts: dict[str, tuple[float, ...]]
    suv_scale_g_per_bq: tuple[float, ...]
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Number of frames, one per schedule time from the tracer's injection on."""
        return len(self.frame_start_s)

    def frame(self, k: int) -> PETAcquisition:
        """Frame ``k`` alone: the static scan of one session.

        Images, sinograms and the expected image become 3-D (``[..., k]``); every per-frame
        tuple keeps its one entry, so the writers produce the same keys for one frame as for
        many. What does not depend on the frame (attenuation, mu map, geometry) is shared.
        """
        return one_frame(
            self, k, n_frames=self.n_frames,
            tuples=("schedule_indices", "frame_start_s", "frame_duration_s", "decay_correction_factors",
                    "counts_per_unit_projection", "suv_scale_g_per_bq"),
            arrays=("expected_image_bq_per_ml", "prompts", "expected_background"),
            array_maps=("images_bq_per_ml",),
            tuple_maps=("total_counts",),
        )
