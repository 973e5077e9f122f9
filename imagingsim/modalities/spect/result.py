"""What the SPECT forward model hands to the writers: images, projections and their metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagingsim.grid import ImageGrid
from imagingsim.modalities.frames import one_frame
from imagingsim.modalities.spect.physics import Photopeak, SPECTParams
from imagingsim.modalities.spect.projector import SPECTGeometry
from imagingsim.scenario import AgentSpec

#: What each reconstruction variant's system model includes (attenuation, collimator response).
RECON_VARIANTS = {
    "ac_cdr": (True, True),
    "ac": (True, False),
    "cdr": (False, True),
    "none": (False, False),
}


@dataclass(frozen=True, eq=False)
class SPECTAcquisition:
    """One SPECT study: an acquisition at each schedule time from the tracer's injection on.

    Projections are simulated on the phantom grid (the truth) and binned to the detector
    pixels; images are reconstructed on :attr:`grid`, ``voxel_binning`` times coarser, so
    the reconstruction never uses the model that made the data. All device arrays float32.

    Attributes
    ----------
    tracer : AgentSpec
        The imaged agent (its single-photon label).
    nuclide : str
        ``"Tc99m"``, ``"In111"`` or ``"Lu177"``.
    params : SPECTParams
        System, collimator, timing and reconstruction settings.
    photopeaks : tuple of Photopeak
        Windows acquired (their counts are added into one projection set).
    geometry : SPECTGeometry
        Detector geometry of the projections and reconstructions (on :attr:`grid`).
    grid : ImageGrid
        Reconstruction grid (in the phantom's world frame).
    schedule_indices : tuple of int
        Index into the scenario schedule of each acquisition.
    frame_start_s, frame_duration_s : tuple of float
        Acquisition starts (scenario clock) and lengths, s.
    decay_corrected : bool
        Images are decay-corrected to the tracer's injection.
    decay_correction_factors : tuple of float
        Per acquisition, the factor applied for decay (duration over the decay integral; 1
        when not decay-corrected).
    injected_activity_bq : float
        Tracer activity at injection, Bq.
    images_bq_per_ml : dict of str -> device array ``grid.shape + (T,)``
        OSEM image per variant of :data:`RECON_VARIANTS`, Bq/mL.
    recon_parameters : dict of str -> dict
        Per variant: method name, iterations, subsets, what is modelled, post-filter.
    expected_image_bq_per_ml : device array ``(nx, ny, nz, T)`` on the phantom grid
        The activity the images estimate (ground truth).
    mu_true_per_mm : dict of str -> device array ``(nx, ny, nz, T)``
        True attenuation on the phantom grid at each photopeak (label ``"140keV"``) and
        acquisition (tissues plus the contrast agents present then), 1/mm.
    mu_recon_per_mm : dict of str -> device array ``grid.shape + (T,)``
        Attenuation maps used for attenuation correction, per photopeak, on :attr:`grid`.
    attenuation_source : str
        ``"ct"`` (bilinear HU -> mu of the CT at the same time, averaged onto the SPECT grid
        by :func:`imagingsim.io.resample.resample_to_grid`) or ``"truth"`` (the true mu
        map, block-averaged; no CT was acquired).
    projections : device array ``(n_views, n_bins, nz, T)``
        Measured counts in the photopeak windows (Poisson draws).
    expected_primary, expected_scatter : device arrays, shape of :attr:`projections`
        Expected unscattered and scattered counts.
    scatter_estimate : device array, shape of :attr:`projections`
        Background used by the reconstructions: the expected scatter (``scatter =
        "fraction"``) or the smoothed triple-energy-window estimate (``"tew"``).
    side_window_counts : dict of str -> device array, or empty
        ``"lower"``/``"upper"`` counts summed over the peaks' side windows (TEW only).
    counts_per_unit_projection : tuple of tuple of float
        Per acquisition and photopeak: expected counts per detector pixel per (Bq/mL x mm)
        of attenuated, blurred projection of the image.
    total_counts : dict of str -> tuple of float
        Per acquisition: ``"primary"``, ``"scatter"``, ``"measured"`` summed over the views.
    timings_s : dict of str -> float
    """

    tracer: AgentSpec
    nuclide: str
    params: SPECTParams
    photopeaks: tuple[Photopeak, ...]
    geometry: SPECTGeometry
    grid: ImageGrid
    schedule_indices: tuple[int, ...]
    frame_start_s: tuple[float, ...]
    frame_duration_s: tuple[float, ...]
    decay_corrected: bool
    decay_correction_factors: tuple[float, ...]
    injected_activity_bq: float
    images_bq_per_ml: dict[str, Any]
    recon_parameters: dict[str, dict[str, Any]]
    expected_image_bq_per_ml: Any
    mu_true_per_mm: dict[str, Any]
    mu_recon_per_mm: dict[str, Any]
    attenuation_source: str
    projections: Any
    expected_primary: Any
    expected_scatter: Any
    scatter_estimate: Any
    side_window_counts: dict[str, Any]
    counts_per_unit_projection: tuple[tuple[float, ...], ...]
    total_counts: dict[str, tuple[float, ...]]
    timings_s: dict[str, float] = field(default_factory=dict)

    def frame(self, k: int) -> SPECTAcquisition:
        """Acquisition ``k`` alone: the scan of one session.

        Every array becomes ``[..., k]`` (3-D) and every per-acquisition tuple keeps its one
        entry, so the writers produce the same sidecar keys for one session as for the whole
        study, as one-element lists.
        """
        return one_frame(
            self, k, n_frames=len(self.frame_start_s),
            tuples=("schedule_indices", "frame_start_s", "frame_duration_s", "decay_correction_factors",
                    "counts_per_unit_projection"),
            arrays=("expected_image_bq_per_ml", "projections", "expected_primary", "expected_scatter",
                    "scatter_estimate"),
            array_maps=("images_bq_per_ml", "mu_true_per_mm", "mu_recon_per_mm", "side_window_counts"),
            tuple_maps=("total_counts",),
        )


__all__ = ["RECON_VARIANTS", "SPECTAcquisition"]
