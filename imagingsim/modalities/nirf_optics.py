"""NIR optics of the fluorescence model: data tables, diffusion theory and the layer PSFs.

Tables (each value with its source in the data file):

- ``data/fluorophores.toml``: dyes (:class:`Fluorophore`): peaks, excitation line, molar
  extinction at it, quantum yield, emission bands per window.
- ``data/optics.toml``: tissue absorption at 660-1300 nm (chromophore model anchored to the
  phantom's 810 nm maps), scattering power law, autofluorescence, refractive index, and the
  PSF parameters of each window (:class:`PSFParameters`).
- ``data/cameras.toml``: camera presets (:class:`Camera`).

Diffusion theory of a semi-infinite medium with an extrapolated boundary (Haskell et al.,
JOSA A 1994;11:2727; Boas et al., in Handbook of Biomedical Optics 2002; Farrell et al.,
Med Phys 1992;19:879). With ``mu_t' = mu_a + mu_s'``:

- ``D = 1 / (3 mu_t')``, ``mu_eff = sqrt(3 mu_a mu_t')``, ``z0 = 1 / mu_t'``,
  ``zb = 2 A D`` with ``A = (1 + R_eff) / (1 - R_eff)`` and ``R_eff(n)`` from the fit of
  Groenhuis et al. (Appl Opt 1983;22:2456), 0.53 for n = 1.4.
- Broad-beam excitation (:func:`plane_fluence`): the transmitted irradiance becomes an
  isotropic plane source at ``z0``; with its negative image at ``-(z0 + 2 zb)`` the fluence
  rate per unit transmitted irradiance is
  ``phi(z) = [exp(-mu_eff |z - z0|) - exp(-mu_eff (z + z0 + 2 zb))] / (2 D mu_eff)``.
- A buried isotropic point source at depth ``d`` with its image at ``-(d + 2 zb)`` gives
  the surface fluence ``phi(rho, 0) = [exp(-mu_eff r1)/r1 - exp(-mu_eff r2)/r2] / (4 pi D)``,
  ``r1 = sqrt(rho^2 + d^2)``, ``r2 = sqrt(rho^2 + (d + 2 zb)^2)``; the exitance (what the
  camera sees) is ``phi(rho, 0) / (2 A)`` (:func:`surface_exitance`), the partial-current
  boundary condition. Its integral over the surface is closed-form,
  ``T(d) = exp(-mu_eff d) [1 - exp(-2 mu_eff zb)] / (4 A D mu_eff)`` (:func:`escape_fraction`),
  so the total signal decays exactly as ``exp(-mu_eff d)``. Its FWHM reproduces PHYSICS.md
  (muscle, 810 nm: 2.63 / 4.45 / 8.33 / 12.87 mm at 1 / 2 / 5 / 10 mm; the Fick-flux form
  ``D dphi/dz`` would give 1.5 / 3.0 / 6.9 / 11.8 mm).
- NIR-II: a calibrated mixture (:class:`PSFParameters`, values in optics.toml) puts a
  fraction ``f_w(d) = f0 exp(-d mu_s' / k)`` of the escaping light into a narrow Gaussian of
  FWHM ``c d`` (weakly scattered photons, where diffusion theory is not valid) and the rest
  into the diffusion profile. It is an empirical model, not a fit to data. NIR-I uses
  ``f0 = 0`` (pure diffusion theory).
"""

from __future__ import annotations

import functools
import itertools
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from imagingsim.backend import Backend
from imagingsim.operators.base import LinearOperator
from imagingsim.operators.blur import FWHM_PER_SIGMA, _fft_length
from imagingsim.phantom.model import Label
from imagingsim.phantom.properties import lookup, tissue_table

WINDOWS = ("NIR-I", "NIR-II")
#: Emission at or above this wavelength is NIR-II, nm.
NIR_II_MIN_NM = 1000.0
#: Wavelength of the phantom's optical maps, nm.
PHANTOM_WAVELENGTH_NM = 810.0
PLANCK_J_S = 6.62607015e-34
LIGHT_M_PER_S = 299_792_458.0
#: Fluorescence coefficient per (nmol/mL) per (1/(M cm)): ln(10) x 1e-6 M per nmol/mL / 10 mm per cm.
_EXTINCTION_TO_PER_MM = math.log(10.0) * 1e-7


def _read(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("imagingsim.data").joinpath(name).read_text(encoding="utf-8"))


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
    table = _read("fluorophores.toml")
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
    """A camera preset of ``data/cameras.toml`` (units in the names)."""

    preset: str
    description: str
    manufacturer: str
    model: str
    window: str
    quantum_efficiency: tuple[tuple[float, float], ...]
    read_noise_e: float
    dark_current_e_per_s: float
    lens_focal_length_mm: float
    lens_f_number: float
    working_distance_mm: float
    optics_transmission: float

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
    def collection_efficiency(self) -> float:
        """Fraction of a Lambertian surface's exitance inside the lens aperture, ``sin^2(theta)``."""
        radius = 0.5 * self.lens_focal_length_mm / self.lens_f_number
        return math.sin(math.atan(radius / self.working_distance_mm)) ** 2


@functools.cache
def camera(preset: str) -> Camera:
    """The camera preset called ``preset``."""
    table = _read("cameras.toml")
    if preset not in table:
        raise ValueError(f"data/cameras.toml has no camera {preset!r}; presets: {', '.join(table)}")
    e = table[preset]
    return Camera(
        preset=preset,
        description=e["description"],
        manufacturer=e["manufacturer"],
        model=e["model"],
        window=e["window"],
        quantum_efficiency=tuple((float(w), float(q)) for w, q in e["quantum_efficiency"]),
        read_noise_e=float(e["read_noise_e"]),
        dark_current_e_per_s=float(e["dark_current_e_per_s"]),
        lens_focal_length_mm=float(e["lens_focal_length_mm"]),
        lens_f_number=float(e["lens_f_number"]),
        working_distance_mm=float(e["working_distance_mm"]),
        optics_transmission=float(e["optics_transmission"]),
    )


def camera_for_window(window: str) -> Camera:
    """The camera preset whose ``window`` is ``window`` (silicon CCD for NIR-I, InGaAs for NIR-II)."""
    for preset in _read("cameras.toml"):
        cam = camera(preset)
        if cam.window == window:
            return cam
    raise ValueError(f"data/cameras.toml has no camera for window {window!r}")


# --- tissue optics -------------------------------------------------------------------------


@dataclass(frozen=True)
class PSFParameters:
    """Weakly scattered part of the PSF (see the module docstring); ``f0 = 0``: pure diffusion."""

    weakly_scattered_fraction: float
    decay_transport_mfp: float
    cone_fwhm_per_depth: float

    def weak_fraction(self, depth_mm, mu_s_prime_per_mm, xp=math):
        """``f_w = f0 exp(-d mu_s' / k)`` (floats with ``math``, arrays with ``xp``)."""
        return self.weakly_scattered_fraction * xp.exp(-depth_mm * mu_s_prime_per_mm / self.decay_transport_mfp)


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


def _interp_log(xs: tuple[float, ...], ys: tuple[float, ...], x: float) -> float:
    if not xs[0] <= x <= xs[-1]:
        raise ValueError(f"wavelength {x} nm is outside the optics table ({xs[0]}-{xs[-1]} nm)")
    for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]):
        if x0 <= x <= x1:
            t = (x - x0) / (x1 - x0)
            if y0 > 0.0 and y1 > 0.0:
                return math.exp((1.0 - t) * math.log(y0) + t * math.log(y1))
            return (1.0 - t) * y0 + t * y1
    return ys[-1]


@functools.cache
def optics_table() -> OpticsTable:
    """The validated ``data/optics.toml``."""
    raw = _read("optics.toml")
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
    """Tissue autofluorescence coefficient in ``window``'s band (device float64, 1/mm)."""
    table = optics_table().autofluorescence_per_mm[window]
    return lookup(backend, labels, [table[label] for label in Label])


# --- diffusion theory ----------------------------------------------------------------------


def effective_reflection(n: float) -> float:
    """Effective internal reflection coefficient of a tissue-air boundary (Groenhuis et al. 1983 fit)."""
    return -1.440 / n**2 + 0.710 / n + 0.668 + 0.0636 * n


def specular_reflection(n: float) -> float:
    """Fresnel reflectance at normal incidence from air, ``((n - 1) / (n + 1))^2``."""
    return ((n - 1.0) / (n + 1.0)) ** 2


@dataclass(frozen=True)
class Diffusion:
    """Diffusion-theory constants of a medium (floats or device arrays), mm and 1/mm."""

    D: Any
    mu_eff: Any
    z0: Any
    zb: Any
    A: float


def diffusion(mu_a, mu_s_prime, n: float, xp=math) -> Diffusion:
    """``D``, ``mu_eff``, ``z0`` and ``zb`` of a medium (module docstring); ``xp`` = math or an array namespace."""
    mu_t = mu_a + mu_s_prime
    D = 1.0 / (3.0 * mu_t)
    r = effective_reflection(n)
    A = (1.0 + r) / (1.0 - r)
    return Diffusion(D=D, mu_eff=xp.sqrt(3.0 * mu_a * mu_t), z0=1.0 / mu_t, zb=2.0 * A * D, A=A)


def plane_fluence(z_mm, m: Diffusion, xp=math):
    """Fluence rate at depth ``z`` per unit transmitted broad-beam irradiance (dimensionless)."""
    mu = m.mu_eff
    distance = abs(z_mm - m.z0) if xp is math else xp.abs(z_mm - m.z0)
    return (xp.exp(-mu * distance) - xp.exp(-mu * (z_mm + m.z0 + 2.0 * m.zb))) / (2.0 * m.D * mu)


def surface_exitance(rho_mm, depth_mm, m: Diffusion, xp=math):
    """Exitance at surface distance ``rho`` from a unit isotropic point source at ``depth``, 1/mm^2."""
    r1 = xp.sqrt(rho_mm * rho_mm + depth_mm * depth_mm)
    image = depth_mm + 2.0 * m.zb
    r2 = xp.sqrt(rho_mm * rho_mm + image * image)
    mu = m.mu_eff
    return (xp.exp(-mu * r1) / r1 - xp.exp(-mu * r2) / r2) / (4.0 * math.pi * m.D * 2.0 * m.A)


def escape_within(depth_mm, radius_mm, m: Diffusion, xp=math):
    """Fraction of a point source's photons leaving the surface within ``radius`` of its foot."""
    mu = m.mu_eff
    image = depth_mm + 2.0 * m.zb
    r1 = xp.sqrt(radius_mm * radius_mm + depth_mm * depth_mm)
    r2 = xp.sqrt(radius_mm * radius_mm + image * image)
    inner = xp.exp(-mu * depth_mm) - xp.exp(-mu * r1) - xp.exp(-mu * image) + xp.exp(-mu * r2)
    return inner / (4.0 * m.A * m.D * mu)


def escape_fraction(depth_mm, m: Diffusion, xp=math):
    """Fraction of a point source's photons leaving the surface, ``T(d)`` (module docstring)."""
    return (xp.exp(-m.mu_eff * depth_mm) - xp.exp(-m.mu_eff * (depth_mm + 2.0 * m.zb))) / (4.0 * m.A * m.D * m.mu_eff)


def psf_profile(rho_mm: float, depth_mm: float, mu_a: float, mu_s_prime: float, window: str) -> float:
    """Surface profile of a point source at ``depth``, normalised to unit integral, 1/mm^2 (host floats)."""
    table = optics_table()
    m = diffusion(mu_a, mu_s_prime, table.refractive_index)
    params = table.psf[window]
    diffuse = surface_exitance(rho_mm, depth_mm, m) / escape_fraction(depth_mm, m)
    f_w = params.weak_fraction(depth_mm, mu_s_prime)
    if f_w == 0.0:
        return diffuse
    sigma = max(params.cone_fwhm_per_depth * depth_mm, 1e-6) / FWHM_PER_SIGMA
    gauss = math.exp(-0.5 * (rho_mm / sigma) ** 2) / (2.0 * math.pi * sigma * sigma)
    return (1.0 - f_w) * diffuse + f_w * gauss


def psf_fwhm_mm(depth_mm: float, mu_a: float, mu_s_prime: float, window: str) -> float:
    """FWHM of :func:`psf_profile` (bisection on the monotonically falling profile), mm."""
    peak = psf_profile(0.0, depth_mm, mu_a, mu_s_prime, window)
    lo, hi = 0.0, 1.0
    while psf_profile(hi, depth_mm, mu_a, mu_s_prime, window) > 0.5 * peak:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if psf_profile(mid, depth_mm, mu_a, mu_s_prime, window) > 0.5 * peak else (lo, mid)
    return lo + hi  # 2 x the half-width


# --- the layer kernels and their convolution -----------------------------------------------

#: Pixels (each side of the centre) of the sub-sampled central patch, and sub-samples per pixel.
_PATCH_PIXELS = 2
_SUBSAMPLES = 5


def layer_kernels(depth_mm, mu_a, mu_s_prime, pixel_mm: tuple[float, float], half: tuple[int, int],
                  window: str, backend: Backend):
    """Pixel-integrated surface PSF of each layer, as fractions of its escaping light.

    Parameters
    ----------
    depth_mm, mu_a, mu_s_prime : device arrays ``(L,)``
        Source depth of each layer and the (layer-averaged) optics of the emitted light, mm, 1/mm.
    pixel_mm : (du, dv)
        Image pixel size, mm.
    half : (hu, hv)
        Kernel half-widths in pixels; the kernels are ``(2 hu + 1, 2 hv + 1)``.
    window : {"NIR-I", "NIR-II"}
        Selects the weakly scattered part (:class:`PSFParameters`).

    Returns
    -------
    device array, float64, ``(L, 2 hu + 1, 2 hv + 1)``
        Kernel ``l`` sums to the fraction of the PSF inside the kernel (<= 1): the diffuse part
        is the exitance integrated over each pixel (5 x 5 sub-samples in the central 5 x 5
        pixels, the centre pixel replaced by the closed-form integral over the disc of equal
        area, pixel centres elsewhere) divided by the closed-form total ``T(d)``.
    """
    xp, dev = backend.xp, backend.device
    table = optics_table()
    params = table.psf[window]
    (du, dv), (hu, hv) = pixel_mm, half
    m = diffusion(mu_a[:, None, None], mu_s_prime[:, None, None], table.refractive_index, xp)
    d = depth_mm[:, None, None]
    total = escape_fraction(d, m, xp)

    def grid(step: float, h: int, sub: int):
        """Sample positions (mm) of pixels -h..h, ``sub`` per pixel at their sub-pixel centres."""
        k = xp.arange((2 * h + 1) * sub, dtype=xp.float64, device=dev)
        return ((k + 0.5) / sub - (h + 0.5)) * step

    def evaluate(profile, sub: int, h_u: int, h_v: int):
        u, v = grid(du, h_u, sub), grid(dv, h_v, sub)
        rho = xp.sqrt(u[:, None] ** 2 + v[None, :] ** 2)[None, :, :]
        values = profile(rho)
        if sub == 1:
            return values
        shape = (values.shape[0], 2 * h_u + 1, sub, 2 * h_v + 1, sub)
        return xp.mean(xp.reshape(values, shape), axis=(2, 4))

    def with_patch(profile):
        kernel = evaluate(profile, 1, hu, hv)
        pu, pv = min(_PATCH_PIXELS, hu), min(_PATCH_PIXELS, hv)
        kernel[:, hu - pu:hu + pu + 1, hv - pv:hv + pv + 1] = evaluate(profile, _SUBSAMPLES, pu, pv)
        return kernel

    diffuse = with_patch(lambda rho: surface_exitance(rho, d, m, xp)) * (du * dv)
    disc = math.sqrt(du * dv / math.pi)
    diffuse[:, hu, hv] = escape_within(d, disc, m, xp)[:, 0, 0]
    diffuse = diffuse / total
    if params.weakly_scattered_fraction == 0.0:
        return diffuse
    sigma = xp.clip(params.cone_fwhm_per_depth * d, 1e-3, None) / FWHM_PER_SIGMA
    gauss = with_patch(lambda rho: xp.exp(-0.5 * (rho / sigma) ** 2))
    gauss = gauss / xp.sum(gauss, axis=(1, 2), keepdims=True)
    f_w = params.weak_fraction(d, mu_s_prime[:, None, None], xp)
    return (1.0 - f_w) * diffuse + f_w * gauss


class DepthBlur(LinearOperator):
    """Sum over layers of 2-D convolutions, ``y = sum_l k_l * x_l``, by real FFTs.

    Maps a stack of layers ``(L, nu, nv)`` to one image ``(nu, nv)``; each layer is
    convolved with its own centred kernel (linear, 'same' size, zero outside, as
    :class:`imagingsim.operators.Blur`) and the spectra are summed before one inverse
    transform. The adjoint correlates the image with each kernel.

    Parameters
    ----------
    kernels : device array ``(L, ku, kv)``
        One kernel per layer, odd lengths, centred at ``(ku // 2, kv // 2)``.
    in_shape : (L, nu, nv)
    backend : Backend
    """

    def __init__(self, kernels, in_shape, backend: Backend):
        in_shape = tuple(int(n) for n in in_shape)
        super().__init__(in_shape, in_shape[1:], backend)
        n_layers, ku, kv = (int(k) for k in kernels.shape)
        if n_layers != in_shape[0] or ku % 2 == 0 or kv % 2 == 0:
            raise ValueError(f"DepthBlur needs (L, odd, odd) kernels for {in_shape}, got {tuple(kernels.shape)}")
        self.kernels = kernels
        self._centre = (ku // 2, kv // 2)
        self._padded = (_fft_length(in_shape[1] + ku - 1), _fft_length(in_shape[2] + kv - 1))
        self._kernel_ft = backend.fft.rfftn(kernels, s=self._padded, axes=(1, 2))

    def _apply(self, x):
        xp, fft = self.backend.xp, self.backend.fft
        spectrum = xp.sum(fft.rfftn(x, s=self._padded, axes=(1, 2)) * self._kernel_ft, axis=0)
        full = fft.irfftn(spectrum, s=self._padded, axes=(0, 1))
        (cu, cv), (nu, nv) = self._centre, self.out_shape
        return full[cu:cu + nu, cv:cv + nv]

    def _adjoint(self, y):
        xp, fft = self.backend.xp, self.backend.fft
        spectrum = fft.rfftn(y, s=self._padded, axes=(0, 1))[None, :, :] * xp.conj(self._kernel_ft)
        full = fft.irfftn(spectrum, s=self._padded, axes=(1, 2))
        # The correlation at lag j - c sits at index (j - c) mod P: roll it back into place.
        nu, nv = self.out_shape
        return xp.roll(full, self._centre, axis=(1, 2))[:, :nu, :nv]


__all__ = [
    "WINDOWS",
    "Camera",
    "DepthBlur",
    "Diffusion",
    "EmissionBand",
    "Fluorophore",
    "OpticsTable",
    "PSFParameters",
    "autofluorescence_map",
    "camera",
    "camera_for_window",
    "diffusion",
    "effective_reflection",
    "escape_fraction",
    "escape_within",
    "fluorophore",
    "layer_kernels",
    "optical_maps",
    "optics_table",
    "plane_fluence",
    "psf_fwhm_mm",
    "psf_profile",
    "specular_reflection",
    "surface_exitance",
    "tissue_optics",
]
