"""NIRF data tables: dyes, cameras (with their sensor binning) and tissue optics.

Each value has its source (or "check") in the data file:

- ``data/fluorophores.toml``: dyes (:class:`Fluorophore`): peaks, excitation line, molar
  extinction at it, quantum yield, emission bands per window.
- ``data/cameras.toml``: camera presets (:class:`Camera`): quantum efficiency, sensor pixel
  pitch and format, full well, ADC bit depth and gain, read noise and dark current per
  sensor pixel, and the lens. :meth:`Camera.setup` images one phantom voxel on an integer
  number of sensor pixels and gives the binned pixel's noise, dark current, saturation
  level and light collection (:class:`CameraSetup`).
- ``data/optics.toml``: tissue absorption at 660-1300 nm (chromophore model anchored to the
  phantom's 810 nm maps), scattering power law, autofluorescence, refractive index and the
  (hand-tuned, uncalibrated) PSF parameters of each window (:class:`PSFParameters`).

The physics that uses them is in :mod:`imagingsim.modalities.nirf.optics`.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

from imagingsim.backend import Backend
from imagingsim.data.tables import read_table
from imagingsim.phantom.model import Label
from imagingsim.phantom.properties import lookup, tissue_table
from imagingsim.physics.optics import interp_log as _interp_log  # shared with the delivery's light trigger

WINDOWS = ("NIR-I", "NIR-II")
#: Emission at or above this wavelength is NIR-II, nm.
NIR_II_MIN_NM = 1000.0
#: Wavelength of the phantom's optical maps, nm.
PHANTOM_WAVELENGTH_NM = 810.0
PLANCK_J_S = 6.62607015e-34
LIGHT_M_PER_S = 299_792_458.0
#: Fluorescence coefficient per (nmol/mL) per (1/(M cm)): ln(10) x 1e-6 M per nmol/mL / 10 mm per cm.
_EXTINCTION_TO_PER_MM = math.log(10.0) * 1e-7


# --- fluorophores --------------------------------------------------------------------------


@dataclass(frozen=True)
class EmissionBand:
    """The emission filter of one window: band (nm) and the fraction of the dye's emission in it."""

    window: str
    band_nm: tuple[float, float]
    in_band_fraction: float

    @property
    def centre_nm(self) -> float:
        """Band centre, nm: the wavelength at which the emitted light's tissue optics are taken."""
        return 0.5 * (self.band_nm[0] + self.band_nm[1])


@dataclass(frozen=True)
class Fluorophore:
    """One dye of ``data/fluorophores.toml`` (units in the names)."""

    key: str
    name: str
    native_window: str
    absorption_peak_nm: float
    emission_peak_nm: float
    excitation_nm: float
    excitation_band_nm: tuple[float, float]
    extinction_M_per_cm: float
    quantum_yield: float
    source: str
    windows: dict[str, EmissionBand]

    def fluorescence_per_mm(self, window: str) -> float:
        """In-band fluorescence coefficient per nmol/mL of dye, 1/mm per (nmol/mL).

        ``ln(10) x extinction x concentration`` (the dye's absorption coefficient at the
        excitation line) times the quantum yield and the in-band fraction: photons emitted
        into the band per mm^3 and second, per unit excitation fluence rate (photons/s/mm^2).
        """
        band = self.windows[window]
        return _EXTINCTION_TO_PER_MM * self.extinction_M_per_cm * self.quantum_yield * band.in_band_fraction


@functools.cache
def fluorophore(dye: str) -> Fluorophore:
    """The dye ``dye`` (a ``FluorophoreLabel.dye`` value) from ``data/fluorophores.toml``."""
    table = read_table("fluorophores.toml")
    if dye not in table:
        raise ValueError(f"data/fluorophores.toml has no dye {dye!r}; dyes: {', '.join(table)}")
    entry = dict(table[dye])
    windows = {
        w: EmissionBand(w, (float(v["emission_band_nm"][0]), float(v["emission_band_nm"][1])), float(v["in_band_fraction"]))
        for w, v in entry.pop("windows").items()
    }
    if set(windows) != set(WINDOWS) or entry["native_window"] not in WINDOWS:
        raise ValueError(f"data/fluorophores.toml [{dye}]: needs windows {WINDOWS} and a native_window among them")
    return Fluorophore(
        key=dye,
        name=entry["name"],
        native_window=entry["native_window"],
        absorption_peak_nm=float(entry["absorption_peak_nm"]),
        emission_peak_nm=float(entry["emission_peak_nm"]),
        excitation_nm=float(entry["excitation_nm"]),
        excitation_band_nm=tuple(float(v) for v in entry["excitation_band_nm"]),
        extinction_M_per_cm=float(entry["extinction_M_per_cm"]),
        quantum_yield=float(entry["quantum_yield"]),
        source=entry["source"],
        windows=windows,
    )


# --- cameras -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """A camera preset of ``data/cameras.toml`` (units in the names; noise per sensor pixel)."""

    preset: str
    description: str
    manufacturer: str
    model: str
    window: str
    quantum_efficiency: tuple[tuple[float, float], ...]
    sensor_pixel_um: float
    sensor_format_px: tuple[int, int]
    full_well_e: float
    adc_bits: int
    adc_gain_e_per_adu: float
    read_noise_e: float
    dark_current_e_per_s: float
    lens_focal_length_mm: float
    lens_f_number: float
    working_distance_mm: float
    optics_transmission: float
    source: str

    def qe(self, wavelength_nm: float) -> float:
        """Quantum efficiency at ``wavelength_nm`` (linear interpolation, 0 outside the table)."""
        points = self.quantum_efficiency
        if not points[0][0] <= wavelength_nm <= points[-1][0]:
            return 0.0
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            if x0 <= wavelength_nm <= x1:
                return y0 + (y1 - y0) * (wavelength_nm - x0) / (x1 - x0)
        return points[-1][1]

    @property
    def pixel_saturation_e(self) -> float:
        """Saturation of one sensor pixel, e-: the full well or the ADC's full scale, whichever is lower."""
        return min(self.full_well_e, (2**self.adc_bits - 1) * self.adc_gain_e_per_adu)

    @property
    def nominal_magnification(self) -> float:
        """Thin-lens magnification at the nominal working distance, ``f / (WD - f)``."""
        return self.lens_focal_length_mm / (self.working_distance_mm - self.lens_focal_length_mm)

    def setup(self, pixel_mm: tuple[float, float]) -> CameraSetup:
        """Image one phantom voxel ``pixel_mm = (du, dv)`` (mm) on an integer block of sensor pixels.

        The binning along ``u`` is the nominal object-side voxel on the sensor,
        ``n_u = max(1, round(du M0 / p))`` (``M0`` the nominal magnification, ``p`` the pixel
        pitch); the lens is then refocused to ``M = n_u p / du`` (working distance
        ``f (1 + 1 / M)``) so that exactly ``n_u`` sensor pixels span one voxel. Along ``v``,
        ``n_v = max(1, round(dv M / p))`` (exact for isotropic voxels).
        """
        du, dv = (float(v) for v in pixel_mm)
        p_mm = self.sensor_pixel_um * 1e-3
        n_u = max(1, round(du * self.nominal_magnification / p_mm))
        magnification = n_u * p_mm / du
        n_v = max(1, round(dv * magnification / p_mm))
        return CameraSetup(self, (du, dv), (n_u, n_v), magnification)


@dataclass(frozen=True)
class CameraSetup:
    """A camera imaging phantom voxels: software binning of sensor pixels into image pixels.

    Every sensor pixel is read out (software binning, as on InGaAs arrays and CCDs read at
    full resolution), so a binned pixel of ``N = n_u n_v`` sensor pixels has read noise
    ``sqrt(N) sigma_read``, dark current ``N`` times a pixel's and saturates at ``N`` times
    a pixel's saturation level (uniform light within the image pixel). ADC quantisation
    (variance ``gain^2 / 12`` per sensor pixel, 0.33 e^2 at 2 e-/ADU) is neglected against
    the read noise.

    Attributes
    ----------
    camera : Camera
    pixel_mm : (du, dv)
        Image pixel (the phantom voxel) on the object, mm.
    binning : (n_u, n_v)
        Sensor pixels per image pixel along ``u`` and ``v``.
    magnification : float
        Image size / object size.
    """

    camera: Camera
    pixel_mm: tuple[float, float]
    binning: tuple[int, int]
    magnification: float

    @property
    def n_binned(self) -> int:
        """Sensor pixels summed into one image pixel, ``N``."""
        return self.binning[0] * self.binning[1]

    @property
    def working_distance_mm(self) -> float:
        """Object-to-lens distance at :attr:`magnification` (thin lens), mm."""
        return self.camera.lens_focal_length_mm * (1.0 + 1.0 / self.magnification)

    @property
    def collection_efficiency(self) -> float:
        """Fraction of a Lambertian surface's exitance inside the lens aperture, ``sin^2(theta)``.

        ``tan(theta)`` = aperture radius (``f / (2 N_f)``) / working distance.
        """
        cam = self.camera
        radius = 0.5 * cam.lens_focal_length_mm / cam.lens_f_number
        return math.sin(math.atan(radius / self.working_distance_mm)) ** 2

    @property
    def read_noise_e(self) -> float:
        """Read noise of a binned pixel, ``sqrt(N) sigma_read``, e- rms."""
        return math.sqrt(self.n_binned) * self.camera.read_noise_e

    @property
    def dark_current_e_per_s(self) -> float:
        """Dark current of a binned pixel, ``N`` times a sensor pixel's, e-/s."""
        return self.n_binned * self.camera.dark_current_e_per_s

    @property
    def saturation_e(self) -> float:
        """Saturation level of a binned pixel, ``N`` x min(full well, ADC full scale), e-."""
        return self.n_binned * self.camera.pixel_saturation_e

    @property
    def object_sensor_pixel_mm(self) -> float:
        """A sensor pixel projected onto the object, mm."""
        return self.camera.sensor_pixel_um * 1e-3 / self.magnification

    @property
    def field_of_view_mm(self) -> tuple[float, float]:
        """The sensor projected onto the object, mm (sensor format order)."""
        return tuple(n * self.object_sensor_pixel_mm for n in self.camera.sensor_format_px)  # type: ignore[return-value]

    def covers(self, extent_mm: tuple[float, float]) -> bool:
        """Whether an image of ``extent_mm`` fits in the field of view (the camera may be turned 90 degrees)."""
        return all(e <= f * (1 + 1e-9) for e, f in zip(sorted(extent_mm), sorted(self.field_of_view_mm)))


@functools.cache
def camera(preset: str) -> Camera:
    """The camera preset called ``preset``."""
    table = read_table("cameras.toml")
    if preset not in table:
        raise ValueError(f"data/cameras.toml has no camera {preset!r}; presets: {', '.join(table)}")
    e = table[preset]
    cam = Camera(
        preset=preset,
        description=e["description"],
        manufacturer=e["manufacturer"],
        model=e["model"],
        window=e["window"],
        quantum_efficiency=tuple((float(w), float(q)) for w, q in e["quantum_efficiency"]),
        sensor_pixel_um=float(e["sensor_pixel_um"]),
        sensor_format_px=(int(e["sensor_format_px"][0]), int(e["sensor_format_px"][1])),
        full_well_e=float(e["full_well_e"]),
        adc_bits=int(e["adc_bits"]),
        adc_gain_e_per_adu=float(e["adc_gain_e_per_adu"]),
        read_noise_e=float(e["read_noise_e"]),
        dark_current_e_per_s=float(e["dark_current_e_per_s"]),
        lens_focal_length_mm=float(e["lens_focal_length_mm"]),
        lens_f_number=float(e["lens_f_number"]),
        working_distance_mm=float(e["working_distance_mm"]),
        optics_transmission=float(e["optics_transmission"]),
        source=e["source"],
    )
    if not cam.working_distance_mm > cam.lens_focal_length_mm:
        raise ValueError(f"data/cameras.toml [{preset}]: working_distance_mm must exceed lens_focal_length_mm")
    return cam


def camera_for_window(window: str) -> Camera:
    """The camera preset whose ``window`` is ``window`` (silicon CCD for NIR-I, InGaAs for NIR-II)."""
    for preset in read_table("cameras.toml"):
        cam = camera(preset)
        if cam.window == window:
            return cam
    raise ValueError(f"data/cameras.toml has no camera for window {window!r}")


# --- tissue optics -------------------------------------------------------------------------


@dataclass(frozen=True)
class PSFParameters:
    """Weakly scattered ("snake") part of the emission PSF; hand-tuned, uncalibrated (check).

    The fraction of a point source's photons that leave the surface weakly scattered is
    ``q(d) = f0 exp(-(mu_a + mu_s') d / k)``, spread as a Gaussian of FWHM ``c d``
    (:func:`imagingsim.modalities.nirf.optics.weak_escape`); ``f0 = 0``: pure diffusion.

    Attributes
    ----------
    weakly_scattered_fraction : float
        ``f0``, the fraction at zero depth (dimensionless).
    decay_transport_mfp : float
        ``k``, the decay length in transport mean free paths ``1 / (mu_a + mu_s')``.
    cone_fwhm_per_depth : float
        ``c``, FWHM of the Gaussian per mm of depth (mm/mm).
    """

    weakly_scattered_fraction: float
    decay_transport_mfp: float
    cone_fwhm_per_depth: float

    def sidecar(self) -> dict[str, Any]:
        """The parameters with their meaning, for a JSON sidecar."""
        return {
            "Status": "hand-tuned, uncalibrated (check): not fitted to any measurement",
            "Formula": "q(d) = f0 exp(-(mu_a + mu_s') d / k) of the emitted photons leave weakly scattered, "
            "as a Gaussian of FWHM c d; the rest, (1 - q(d)), follow diffusion theory",
            "f0_WeaklyScatteredFraction": self.weakly_scattered_fraction,
            "k_DecayLength_transport_mean_free_paths": self.decay_transport_mfp,
            "c_ConeFWHMPerDepth_mm_per_mm": self.cone_fwhm_per_depth,
        }


@dataclass(frozen=True)
class OpticsTable:
    """``data/optics.toml``, validated: per-label spectra and the medium constants."""

    wavelengths_nm: tuple[float, ...]
    refractive_index: float
    reference_tissue: Label
    mu_a_per_mm: dict[Label, tuple[float, ...]]
    scattering_power_b: dict[Label, float]
    autofluorescence_per_mm: dict[str, dict[Label, float]]
    psf: dict[str, PSFParameters]
    raw: dict[str, Any]

    def absorption_ratio(self, label: Label, wavelength_nm: float) -> float:
        """``mu_a(label, lambda) / mu_a(label, 810 nm)`` (log-linear interpolation; 1 for air)."""
        values = self.mu_a_per_mm[label]
        ref = _interp_log(self.wavelengths_nm, values, PHANTOM_WAVELENGTH_NM)
        return 1.0 if ref == 0.0 else _interp_log(self.wavelengths_nm, values, wavelength_nm) / ref

    def scattering_ratio(self, label: Label, wavelength_nm: float) -> float:
        """``mu_s'(label, lambda) / mu_s'(label, 810 nm) = (lambda / 810)^-b``."""
        return (wavelength_nm / PHANTOM_WAVELENGTH_NM) ** -self.scattering_power_b[label]


@functools.cache
def optics_table() -> OpticsTable:
    """The validated ``data/optics.toml``."""
    raw = read_table("optics.toml")
    wavelengths = tuple(float(w) for w in raw["wavelengths_nm"])
    tissues = raw["tissue"]
    missing = [label.bids_name for label in Label if label.bids_name not in tissues]
    if missing:
        raise ValueError(f"data/optics.toml: no [tissue.<name>] for {missing}")
    mu_a, b, af = {}, {}, {w: {} for w in WINDOWS}
    for label in Label:
        entry = tissues[label.bids_name]
        values = tuple(float(v) for v in entry["mu_a_per_mm"])
        if len(values) != len(wavelengths) or any(v < 0 for v in values):
            raise ValueError(f"data/optics.toml [tissue.{label.bids_name}]: mu_a_per_mm needs {len(wavelengths)} values >= 0")
        mu_a[label] = values
        b[label] = float(entry["scattering_power_b"])
        for w in WINDOWS:
            af[w][label] = float(entry[f"autofluorescence_{w}_per_mm"])
    psf = {w: PSFParameters(**{k: float(v) for k, v in raw["psf"][w].items()}) for w in WINDOWS}
    for w, p in psf.items():
        if not (0.0 <= p.weakly_scattered_fraction <= 1.0 and p.decay_transport_mfp > 0 and p.cone_fwhm_per_depth > 0):
            raise ValueError(f"data/optics.toml [psf.{w}]: needs 0 <= f0 <= 1, k > 0 and c > 0")
    medium = raw["medium"]
    return OpticsTable(
        wavelengths_nm=wavelengths,
        refractive_index=float(medium["refractive_index"]),
        reference_tissue=Label[medium["reference_tissue"].upper()],
        mu_a_per_mm=mu_a,
        scattering_power_b=b,
        autofluorescence_per_mm=af,
        psf=psf,
        raw=raw,
    )


def tissue_optics(label: Label, wavelength_nm: float) -> tuple[float, float]:
    """Default ``(mu_a, mu_s')`` of ``label`` at ``wavelength_nm``, 1/mm (tissues.toml at 810 nm x ratios)."""
    props, table = tissue_table()[label], optics_table()
    return (
        props.mu_a_810nm_per_mm * table.absorption_ratio(label, wavelength_nm),
        props.mu_s_prime_810nm_per_mm * table.scattering_ratio(label, wavelength_nm),
    )


def optical_maps(phantom, wavelength_nm: float, backend: Backend):
    """``(mu_a, mu_s')`` maps of ``phantom`` at ``wavelength_nm`` (device float64, 1/mm).

    The phantom's 810 nm maps times each label's spectral ratio (``data/optics.toml``).
    """
    table = optics_table()
    ratios_a = [table.absorption_ratio(label, wavelength_nm) for label in Label]
    ratios_s = [table.scattering_ratio(label, wavelength_nm) for label in Label]
    props = phantom.properties
    return (
        props["mu_a_810nm_per_mm"] * lookup(backend, phantom.labels, ratios_a),
        props["mu_s_prime_810nm_per_mm"] * lookup(backend, phantom.labels, ratios_s),
    )


def autofluorescence_map(labels, window: str, backend: Backend):
    """Tissue autofluorescence coefficient in ``window``'s band (device float64, 1/mm).

    One value per tissue and window, whatever the excitation line (660-808 nm for the
    tabulated dyes): the tables do not resolve the excitation wavelength dependence.
    """
    table = optics_table().autofluorescence_per_mm[window]
    return lookup(backend, labels, [table[label] for label in Label])


__all__ = [
    "LIGHT_M_PER_S",
    "NIR_II_MIN_NM",
    "PHANTOM_WAVELENGTH_NM",
    "PLANCK_J_S",
    "WINDOWS",
    "Camera",
    "CameraSetup",
    "EmissionBand",
    "Fluorophore",
    "OpticsTable",
    "PSFParameters",
    "autofluorescence_map",
    "camera",
    "camera_for_window",
    "fluorophore",
    "optical_maps",
    "optics_table",
    "tissue_optics",
]
