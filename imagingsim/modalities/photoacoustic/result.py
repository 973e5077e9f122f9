"""What the photoacoustic forward model hands to the writer: signals, images, unmixing and truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagingsim.grid import ImageGrid
from imagingsim.modalities.photoacoustic.geometry import AcousticGeometry
from imagingsim.modalities.photoacoustic.spectra import Endmember

#: Columns of :attr:`PAAcquisition.so2_error_by_depth`, with their units.
DEPTH_COLUMNS: dict[str, str] = {
    "time_h": "h",
    "depth_mm": "mm",
    "pixels": "count",
    "so2_true_mean": "dimensionless",
    "so2_error_uncompensated": "dimensionless (mean estimate - truth)",
    "so2_error_compensated": "dimensionless (mean estimate - truth)",
    "so2_error_true_p0_uncompensated": "dimensionless (mean estimate - truth)",
    "so2_error_true_p0_compensated": "dimensionless (mean estimate - truth)",
}


@dataclass(frozen=True, eq=False)
class PAAcquisition:
    """One multi-wavelength photoacoustic study of an axial slice: a scan at each schedule time.

    Image arrays are ``(nx, ny, L, T)`` over the slice's pixels, wavelengths and times;
    signals ``(n_elements, n_t, L, T)``. Device arrays, float32.

    Attributes
    ----------
    geometry : AcousticGeometry
    slice_grid : ImageGrid
        The slice as a one-voxel-thick 3-D grid (places the images in the world).
    wavelengths_nm, times_h : tuple of float
    endmembers : tuple of Endmember
        The absorbers of the model and of the unmixing, in order.
    agent_names : dict of str -> tuple of str
        Agent endmember -> the agents behind it.
    grueneisen, exposure_mJ_per_cm2, snr_db : float
    noise_sd_Pa : float
        Standard deviation of the added Gaussian noise, Pa (the same for every sample).
    signals : device array ``(n_elements, n_t, L, T)``, Pa
    images : dict of str -> device array ``(nx, ny, L, T)``, Pa
        Reconstructions by method (``fbp``, ``lsq``).
    unmix_from : str
    unmixed, unmixed_compensated : device arrays ``(nx, ny, J, T)`` or None
        Estimated concentrations (endmember units), without and with fluence compensation.
    so2_estimate, so2_compensated : device arrays ``(nx, ny, T)`` or None
    p0 : device array ``(nx, ny, L, T)``, Pa
        True initial pressure.
    fluence : device array ``(nx, ny, L, T)``, mJ/cm^2
        True fluence.
    fluence_compensation : {"none", "homogeneous", "true"}
    fluence_model : device array ``(nx, ny, L)``, mJ/cm^2
        The homogeneous-tissue fluence (what ``homogeneous`` compensation divides by).
    so2_true : device array ``(nx, ny)``
        True saturation (NaN outside the body and where there is no blood).
    static_truth : dict of str -> device array ``(nx, ny)``
        True haemoglobin (mM), water and lipid (volume fractions).
    agent_truth : dict of str -> device array ``(nx, ny, T)``
        True agent endmember concentrations (uM dye, mg Au/mL).
    so2_error_by_depth : list of dict
        Rows of :data:`DEPTH_COLUMNS` (blood-containing body pixels binned by depth).
    tumour_summary : list of dict
        Per time: tumour means of true and estimated sO2 and agents (empty without a tumour in the slice).
    condition_number : float
        Of the column-normalised endmember matrix.
    """

    geometry: AcousticGeometry
    slice_grid: ImageGrid
    wavelengths_nm: tuple[float, ...]
    times_h: tuple[float, ...]
    endmembers: tuple[Endmember, ...]
    agent_names: dict[str, tuple[str, ...]]
    grueneisen: float
    exposure_mJ_per_cm2: float
    snr_db: float
    noise_sd_Pa: float
    signals: Any
    images: dict[str, Any]
    unmix_from: str
    unmixed: Any
    unmixed_compensated: Any
    so2_estimate: Any
    so2_compensated: Any
    p0: Any
    fluence: Any
    fluence_compensation: str
    fluence_model: Any
    so2_true: Any
    static_truth: dict[str, Any]
    agent_truth: dict[str, Any]
    so2_error_by_depth: list[dict[str, float]]
    tumour_summary: list[dict[str, float]]
    condition_number: float
    timings_s: dict[str, float] = field(default_factory=dict)


__all__ = ["DEPTH_COLUMNS", "PAAcquisition"]
