"""NIRF: fluorophore map -> excitation and emission attenuation with depth -> depth blur -> camera noise.

Planar NIR fluorescence imaging of the body surface that faces the camera (``view``), one
image per schedule time, at the phantom grid's in-plane pixel size.

Model
-----
- **Channel.** The imaging channel is that of the dye of the first agent with a fluorophore
  label: its excitation line and, in the window (``modalities.nirf.window``; ``auto`` = the
  dye's native window), its emission filter band (``data/fluorophores.toml``). Every agent
  with the same dye is imaged (their concentrations add); agents labelled with another dye
  are in another channel and are not imaged (their concentration maps are still written
  as truth). Dye concentration, nmol/mL = carrier ug/mL x dye_nmol_per_mg / 1000.
- **Optics.** Absorption and reduced scattering at the excitation line and at the emission
  band centre: the phantom's 810 nm maps times per-tissue spectral ratios
  (:func:`~imagingsim.modalities.nirf.tables.optical_maps`, ``data/optics.toml``).
  Refractive index 1.4; air outside.
- **Geometry.** Voxel layers along the view axis. Each image pixel is a column of voxels;
  its depth origin is the first non-air voxel seen from the camera (the body surface), and
  layer ``n`` holds the column's ``n``-th voxel below it, at depth ``z_n = (n + 1/2) dz``
  (down to :data:`MAX_DEPTH_MM`; PSFs are cut at :data:`MAX_PSF_RADIUS_MM`).
  The skin is treated as locally flat and normal to the view axis (no tilt, no curvature:
  a flank seen edge-on is too bright and too sharp), and light is detected only inside the
  body's silhouette (what the PSF spreads beyond it is lost).
- **Excitation** (diffusion theory, semi-infinite medium, extrapolated boundary; see
  :mod:`~imagingsim.modalities.nirf.optics`): broad-beam irradiance ``E`` (minus the specular
  reflection) on the surface facing the camera (``epi``), or on the opposite surface
  (``trans``, then depth counts from that surface and the medium is still treated as
  semi-infinite: the camera-side boundary is ignored); fluence rate
  ``phi_x(z) = E' [exp(-mu_eff |z - z0|) - exp(-mu_eff (z + z0 + 2 zb))] / (2 D mu_eff)``.
  The diffuse source has strength 1 per transmitted photon, not the transport albedo
  ``mu_s' / mu_t'`` (0.96 in muscle at 810 nm): the fluence is high by ``mu_a / mu_s'``
  (4 % there).
- **Fluorescence source** (photons/s/mm^3 into the emission band):
  ``S = phi_x x ln(10) x extinction x concentration x quantum yield x in-band fraction``,
  plus tissue autofluorescence ``phi_x x af(tissue, window) x autofluorescence`` (the
  scenario multiplier). ``af`` depends on the tissue and the emission window only, not on
  the excitation line (the same for a 660 nm and an 808 nm laser; real autofluorescence
  falls towards longer excitation wavelengths, so it is too low for Cy5.5 and about right
  for ICG, which set the NIR-I values). First Born approximation: the dye does not change
  the tissue optics (at 165 nM ICG, ln(10) eps c = 0.006/mm against a tissue mu_a of
  0.03-0.04/mm).
- **Emission.** A source voxel at depth ``z`` sends the fraction
  ``T(z) = exp(-mu_eff z) [1 - exp(-2 mu_eff zb)] / (4 A D mu_eff)`` of its photons out of
  the surface, spread by the surface exitance profile of a buried point source with its
  image at ``-(z + 2 zb)`` (Haskell et al. 1994; Boas 2002). Its FWHM grows with depth
  (muscle, 810 nm: 2.6 / 4.5 / 8.3 / 12.9 mm at 1 / 2 / 5 / 10 mm). The image is the sum over
  layers of each layer's source convolved (real FFTs on the backend,
  :class:`~imagingsim.operators.LayeredBlur`) with its PSF.
- **Heterogeneity.** Optical properties are depth-averaged along each column: the
  excitation fluence and ``T`` of a voxel use the mean ``mu_a`` and ``mu_s'`` of the body
  voxels of its column between the illuminated (resp. camera-side) surface and the voxel,
  in the formulas of a homogeneous medium. The PSF *shape* of a layer uses those column
  means averaged over all columns of the layer (one kernel per layer, which is what makes
  the FFT possible). Limits: light does not travel along columns, so the column average
  ignores lateral heterogeneity within the PSF footprint (a source next to the liver is
  attenuated as if the liver were not there); the homogeneous formulas with averaged
  properties are exact only for a homogeneous medium; layered media (fat over muscle) are
  approximated.
- **NIR-I vs NIR-II.** In NIR-I the PSF is pure diffusion theory. In NIR-II (1000-1700 nm)
  scattering is weaker and diffusion theory is not valid within a few transport mean free
  paths: there a hand-tuned, uncalibrated (check) fraction
  ``q(z) = f0 exp(-(mu_a + mu_s') z / k)`` of the emitted photons leaves weakly scattered,
  in a narrow Gaussian of FWHM ``c z``, and the rest follows diffusion theory, so a voxel
  sends ``E(z) = q + (1 - q) T(z)`` out
  (:mod:`~imagingsim.modalities.nirf.optics`, parameters
  :class:`~imagingsim.modalities.nirf.tables.PSFParameters`, written to the sidecar).
  Diffusion theory is also approximate for NIR-I sources shallower than ~1 transport mean
  free path (1.4 mm in muscle at 810 nm).
- **Camera** (:class:`~imagingsim.modalities.nirf.tables.CameraSetup`). One image pixel
  is one phantom voxel, imaged on ``n_u x n_v`` sensor pixels: ``n = round(voxel x M0 /
  pixel pitch)`` at the preset's nominal magnification ``M0``, the lens refocused so that
  they span the voxel exactly. Photons leaving each pixel x lens collection (Lambertian,
  ``sin^2 theta`` at that working distance) x optics transmission x QE(emission) x
  exposure = expected photoelectrons; plus ``N = n_u n_v`` x dark current x exposure.
  Measured image = Poisson(expected) + ``sqrt(N)`` x read noise x N(0, 1) (software
  binning), clipped at ``N`` x min(full well, ADC full scale) (saturation; the count of
  clipped pixels goes to the sidecar), drawn from ``backend.rng(seed, NIRF_NOISE_STREAM,
  k)`` for time ``k``. No blooming, no ADC quantisation noise (0.33 e^2 per sensor pixel),
  no excitation leakage through the filter, no lens blur or vignetting. Presets: silicon
  CCD (NIR-I), InGaAs (NIR-II), ``data/cameras.toml``.
- **Image.** ``[u, v]`` along the two world axes of the image plane in increasing order
  (dorsal/ventral: x, z; left/right: y, z), so that with a one-voxel-thick grid at the body
  surface (``NIRFAcquisition.image_grid``) the NIfTI affine places each pixel in the world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from imagingsim.backend import Backend, backend_of
from imagingsim.grid import ImageGrid
from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.nirf.layered_blur import LayeredBlur
from imagingsim.modalities.nirf.optics import (
    diffusion,
    layer_kernels,
    peak_pixel_fraction,
    plane_fluence,
    psf_fwhm_mm,
    specular_reflection,
    total_escape,
)
from imagingsim.modalities.nirf.result import DEPTH_COLUMNS, NIRFAcquisition
from imagingsim.modalities.nirf.tables import (
    LIGHT_M_PER_S,
    PLANCK_J_S,
    CameraSetup,
    Fluorophore,
    autofluorescence_map,
    camera_for_window,
    fluorophore,
    optical_maps,
    optics_table,
    tissue_optics,
)
from imagingsim.modalities.stages import StageTimer
from imagingsim.physics.noise import gaussian_noise, poisson_counts
from imagingsim.scenario import time_label

#: Random stream of NIRF camera noise: the generator key is (seed, NIRF_NOISE_STREAM, time index).
NIRF_NOISE_STREAM = 0xF10
#: Camera side of each view: (grid axis along the view, True when the camera is on its + side).
VIEWS: dict[str, tuple[int, bool]] = {"dorsal": (1, False), "ventral": (1, True), "left": (0, False), "right": (0, True)}
AXIS_NAMES = ("x", "y", "z")
#: Depths of the depth-sensitivity table, mm.
SENSITIVITY_DEPTHS_MM = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0)
#: Deepest layer modelled, mm: a source 60 mm deep sends ~3e-7 of its light out of muscle
#: (exp(-0.25/mm x 60 mm)), so deeper voxels (only in human-sized phantoms) are dropped.
MAX_DEPTH_MM = 60.0
#: PSF kernels are cut at this distance from the source's foot, mm (the escaping light of a
#: source 20 mm deep beyond it: ~exp(-0.25/mm x 43 mm) = 2e-5).
MAX_PSF_RADIUS_MM = 60.0
#: Fallback optics where a column has no tissue (no source there; keeps the formulas finite).
_FALLBACK_MU_A, _FALLBACK_MU_S_PRIME = 0.01, 1.0


def image_axes(view: str) -> tuple[int, int]:
    """Grid axes of the image's ``[u, v]`` indices for ``view``."""
    axis, _ = VIEWS[view]
    return tuple(a for a in range(3) if a != axis)  # type: ignore[return-value]


def to_camera_frame(volume, view: str, xp):
    """``volume[x, y, z(, t)]`` as ``[d, u, v(, t)]``: ``d`` along the view from the camera, ``u, v`` as in the image."""
    axis, far_side = VIEWS[view]
    if far_side:
        volume = xp.flip(volume, axis=axis)
    order = (axis,) + image_axes(view) + tuple(range(3, volume.ndim))
    return xp.permute_dims(volume, order)


def tumour_contrast(acq, phantom, backend: Backend) -> tuple[float, ...]:
    """Per time: mean noise-free image over the tumours' projection / mean over the rest of the body.

    A quick visibility figure (1 = invisible); the footprint is the tumour voxels projected
    along the view axis, the background the rest of the body's silhouette.
    """
    xp = backend.xp
    axis, _ = VIEWS[acq.view]
    footprint = xp.any(phantom.tumour_index > 0, axis=axis)
    rest = xp.any(phantom.labels != 0, axis=axis) & ~footprint
    sums = []
    for mask in (footprint, rest):
        weights = xp.astype(mask, xp.float64)[..., None]
        sums.append(xp.sum(xp.astype(acq.expected_e, xp.float64) * weights, axis=(0, 1)) / xp.sum(weights))
    inside, outside = (backend.to_host(v).tolist() for v in sums)
    return tuple(a / b if b > 0 else float("nan") for a, b in zip(inside, outside, strict=True))


def photon_irradiance(irradiance_mW_per_cm2: float, wavelength_nm: float) -> float:
    """Photons/(s mm^2) of an irradiance in mW/cm^2 at ``wavelength_nm`` (1 mW/cm^2 = 1e-5 W/mm^2)."""
    return irradiance_mW_per_cm2 * 1e-5 / (PLANCK_J_S * LIGHT_M_PER_S / (wavelength_nm * 1e-9))


def camera_noise(expected_e, read_noise_e: float, rng, *, saturation_e: float | None = None):
    """A measured image: ``min(Poisson(expected_e) + read_noise_e x N(0, 1), saturation_e)``, photoelectrons.

    Parameters
    ----------
    expected_e : device array
        Expected photoelectrons (signal + dark current) per image pixel, >= 0.
    read_noise_e : float
        Read noise of an image pixel, electrons rms (binned: ``sqrt(N)`` x a sensor pixel's,
        :attr:`~imagingsim.modalities.nirf.tables.CameraSetup.read_noise_e`).
    rng : imagingsim.backend.Generator
        ``backend.rng(seed, NIRF_NOISE_STREAM, k)``.
    saturation_e : float, optional
        Saturation level of an image pixel, electrons
        (:attr:`~imagingsim.modalities.nirf.tables.CameraSetup.saturation_e`); a saturated
        pixel reads exactly this value. None: no saturation.
    """
    measured = gaussian_noise(poisson_counts(expected_e, rng), read_noise_e, rng)
    if saturation_e is None:
        return measured
    return backend_of(measured).xp.clip(measured, None, saturation_e)


@dataclass(frozen=True, eq=False)
class SurfaceModel:
    """The linear map from a source volume (camera frame) to the light leaving each pixel.

    Build it with :meth:`build`; volumes passed to it are in the camera frame ``[d, u, v]``
    (:func:`to_camera_frame`).

    Attributes
    ----------
    index : device array ``(L, nu, nv)``, int64
        Camera-frame ``d`` index of layer ``n`` of each column.
    valid : device array ``(L, nu, nv)``, float64
        1 where that voxel is tissue, else 0.
    excitation : device array ``(L, nu, nv)``
        Fluence rate per unit transmitted irradiance at each layer voxel.
    escape : device array ``(L, nu, nv)``
        Column escape fraction ``E`` (``T`` in NIR-I) of each layer voxel.
    blur : LayeredBlur
        Layer PSFs (fractions of the escaping light per pixel).
    voxel_volume_mm3 : float
    thickness : device array ``(nu, nv)``, int64
        Tissue thickness of each column, voxels (from the first to the last tissue voxel).
    surface : device array ``(nu, nv)``, int64
        Camera-frame index of each column's first tissue voxel (``nd`` where there is none).
    silhouette : device array ``(nu, nv)``, float64
        1 where the column holds tissue: light is only detected there.
    layer_mu_a, layer_mu_s_prime : device arrays ``(L,)``
        Emission optics of each layer's PSF, 1/mm.
    """

    index: Any
    valid: Any
    excitation: Any
    escape: Any
    blur: LayeredBlur
    voxel_volume_mm3: float
    thickness: Any
    surface: Any
    silhouette: Any
    layer_mu_a: Any
    layer_mu_s_prime: Any
    backend: Backend

    @classmethod
    def build(cls, body, excitation_optics, emission_optics, voxel_mm: tuple[float, float, float], window: str,
              mode: str, backend: Backend) -> SurfaceModel:
        """Precompute layers, excitation, column escape fractions and the layer PSFs.

        Parameters
        ----------
        body : device array ``(nd, nu, nv)``, bool
            Tissue (not air), camera frame.
        excitation_optics, emission_optics : (mu_a, mu_s') device arrays ``(nd, nu, nv)``
            Optics at the excitation and emission wavelengths, 1/mm, camera frame.
        voxel_mm : (dd, du, dv)
            Voxel size along the view and the two image axes, mm.
        window : {"NIR-I", "NIR-II"}
        mode : {"epi", "trans"}
        backend : Backend
        """
        xp, dev = backend.xp, backend.device
        n_ref = optics_table().refractive_index
        nd = body.shape[0]
        dd, du, dv = voxel_mm
        as_int = xp.astype(body, xp.int8)
        first = xp.argmax(as_int, axis=0)
        last = (nd - 1) - xp.argmax(xp.flip(as_int, axis=0), axis=0)
        has = xp.any(body, axis=0)
        zero = xp.zeros_like(first)
        thickness = xp.where(has, last - first + 1, zero)
        surface = xp.where(has, first, zero + nd)
        n_layers = int(backend.scalar(xp.max(thickness)))  # one synchronisation: the layer count
        if n_layers == 0:
            raise ValueError("NIRF: the phantom has no tissue voxel (all air)")
        n_layers = min(n_layers, math.ceil(MAX_DEPTH_MM / dd))
        n = xp.reshape(xp.arange(n_layers, dtype=first.dtype, device=dev), (n_layers, 1, 1))
        index = xp.clip(first[None, :, :] + n, 0, nd - 1)
        inside = n < thickness[None, :, :]
        valid = xp.astype(xp.logical_and(inside, xp.take_along_axis(body, index, axis=0)), xp.float64)
        depth = (xp.astype(n, xp.float64) + 0.5) * dd

        def column_mean(volume, fallback: float, *, far: bool = False):
            g = xp.take_along_axis(volume, index, axis=0) * valid
            total, count = xp.cumulative_sum(g, axis=0), xp.cumulative_sum(valid, axis=0)
            if far:  # inclusive suffix sums: from the voxel to the far surface
                total = xp.sum(g, axis=0) - total + g
                count = xp.sum(valid, axis=0) - count + valid
            return xp.where(valid > 0, total / xp.clip(count, 1.0, None), fallback)

        far = mode == "trans"
        ex_a = column_mean(excitation_optics[0], _FALLBACK_MU_A, far=far)
        ex_s = column_mean(excitation_optics[1], _FALLBACK_MU_S_PRIME, far=far)
        ex_depth = (xp.astype(thickness[None, :, :] - n, xp.float64) - 0.5) * dd if far else depth
        excitation = plane_fluence(ex_depth, diffusion(ex_a, ex_s, n_ref, xp), xp) * valid
        em_a = column_mean(emission_optics[0], _FALLBACK_MU_A)
        em_s = column_mean(emission_optics[1], _FALLBACK_MU_S_PRIME)
        params = optics_table().psf[window]
        escape = total_escape(depth, em_a, em_s, diffusion(em_a, em_s, n_ref, xp), params, xp) * valid

        count = xp.sum(valid, axis=(1, 2))
        layer_a = xp.where(count > 0, xp.sum(em_a * valid, axis=(1, 2)) / xp.clip(count, 1.0, None), _FALLBACK_MU_A)
        layer_s = xp.where(count > 0, xp.sum(em_s * valid, axis=(1, 2)) / xp.clip(count, 1.0, None), _FALLBACK_MU_S_PRIME)
        nu, nv = body.shape[1], body.shape[2]
        half = (min(nu - 1, math.ceil(MAX_PSF_RADIUS_MM / du)), min(nv - 1, math.ceil(MAX_PSF_RADIUS_MM / dv)))
        kernels = layer_kernels(depth[:, 0, 0], layer_a, layer_s, (du, dv), half, window, backend)
        blur = LayeredBlur(kernels, (n_layers, nu, nv), backend)
        silhouette = xp.astype(has, xp.float64)
        return cls(index, valid, excitation, escape, blur, dd * du * dv, thickness, surface, silhouette, layer_a,
                   layer_s, backend)

    @property
    def n_layers(self) -> int:
        return int(self.index.shape[0])

    def layers(self, volume):
        """Camera-frame ``volume (nd, nu, nv)`` as layers below the surface ``(L, nu, nv)`` (0 off tissue)."""
        return self.backend.xp.take_along_axis(volume, self.index, axis=0) * self.valid

    def exitance(self, emission_per_mm3):
        """Photons/s leaving the surface per pixel for emitted photons/(s mm^3) (camera frame)."""
        return self.blur.apply(self.layers(emission_per_mm3) * (self.escape * self.voxel_volume_mm3)) * self.silhouette

    def fluorescence(self, coefficient_per_mm):
        """Photons/s leaving each pixel per unit transmitted irradiance (photons/(s mm^2)).

        ``coefficient_per_mm`` (camera frame, 1/mm): photons emitted into the band per mm^3
        and second per unit excitation fluence rate (``ln(10) eps c QY f_band`` for a dye).
        """
        weights = self.excitation * self.escape * self.voxel_volume_mm3
        return self.blur.apply(self.layers(coefficient_per_mm) * weights) * self.silhouette


# --- the set-up's depth response -----------------------------------------------------------


def depth_sensitivity(dye: Fluorophore, window: str, setup: CameraSetup, *, exposure_s: float,
                      irradiance_mW_per_cm2: float, autofluorescence_scale: float, mode: str = "epi",
                      thickness_mm: float | None = None,
                      depths_mm=SENSITIVITY_DEPTHS_MM) -> tuple[list[dict[str, float]], float, dict[str, float]]:
    """Response of the set-up to a point source vs depth in the reference tissue (host floats).

    Parameters
    ----------
    dye, window : Fluorophore, str
        The imaging channel.
    setup : CameraSetup
        Camera, binning and image pixel (its ``pixel_mm``).
    exposure_s, irradiance_mW_per_cm2, autofluorescence_scale : float
        Scenario settings (s, mW/cm^2, multiplier).
    mode : {"epi", "trans"}
    thickness_mm : float, optional
        Slab thickness for ``trans``, mm: the excitation enters at that depth, and depths at
        or beyond it (outside the slab) are left out of the table.
    depths_mm : sequence of float
        Candidate depths, mm.

    Returns
    -------
    rows : list of dict
        One per depth, keys :data:`~imagingsim.modalities.nirf.result.DEPTH_COLUMNS`.
        ``photoelectrons_per_fmol`` is the whole-image signal of 1 fmol of dye at that depth
        under the set-up's excitation; ``detection_limit_fmol`` the amount whose peak pixel
        equals 3 background noise sd.
    background_noise_e : float
        Noise sd of a pixel of dye-free reference tissue (autofluorescence + dark shot noise
        and binned read noise), photoelectrons.
    reference : dict
        The reference tissue's optics at both wavelengths.
    """
    table = optics_table()
    n = table.refractive_index
    ref = table.reference_tissue
    params = table.psf[window]
    band = dye.windows[window]
    ex_a, ex_s = tissue_optics(ref, dye.excitation_nm)
    em_a, em_s = tissue_optics(ref, band.centre_nm)
    ex, em = diffusion(ex_a, ex_s, n), diffusion(em_a, em_s, n)
    transmitted = 1.0 - specular_reflection(n)
    photons = photon_irradiance(irradiance_mW_per_cm2, dye.excitation_nm) * transmitted
    gain = setup.collection_efficiency * setup.camera.optics_transmission * setup.camera.qe(band.centre_nm)
    per_fmol = math.log(10.0) * dye.extinction_M_per_cm * 1e-10 * dye.quantum_yield * band.in_band_fraction
    trans = mode == "trans" and thickness_mm is not None

    def fluence(z: float) -> float:  # per unit transmitted irradiance
        return plane_fluence(max(thickness_mm - z, 0.0) if trans else z, ex)

    def escape(z: float) -> float:
        return total_escape(z, em_a, em_s, em, params)

    # Autofluorescence of dye-free reference tissue, per pixel: integral of phi af E dz.
    af = table.autofluorescence_per_mm[window][ref] * autofluorescence_scale
    dz, extent = 0.01, (thickness_mm if trans else 60.0)
    steps = int(extent / dz)
    af_integral = sum(fluence((i + 0.5) * dz) * escape((i + 0.5) * dz) for i in range(steps)) * dz * af
    pixel_area = setup.pixel_mm[0] * setup.pixel_mm[1]
    background = photons * gain * exposure_s * af_integral * pixel_area + setup.dark_current_e_per_s * exposure_s
    noise = math.sqrt(background + setup.read_noise_e**2)

    rows = []
    for d in depths_mm:
        if trans and d >= thickness_mm:
            continue  # outside the slab
        e = escape(d)
        peak = peak_pixel_fraction(d, em_a, em_s, pixel_area, window)
        signal = photons * fluence(d) * per_fmol * e * gain * exposure_s
        rows.append({
            "depth_mm": d,
            "excitation_fluence_per_irradiance": transmitted * fluence(d),
            "escape_fraction": e,
            "psf_fwhm_mm": psf_fwhm_mm(d, em_a, em_s, window),
            "peak_pixel_fraction": peak,
            "photoelectrons_per_emitted_photon": e * gain,
            "photoelectrons_per_fmol": signal,
            "detection_limit_fmol": 3.0 * noise / (signal * peak) if signal > 0 else math.inf,
        })
    assert not rows or set(rows[0]) == set(DEPTH_COLUMNS)
    reference = {
        "tissue": ref.bids_name,
        "refractive_index": n,
        "excitation_mu_a_per_mm": ex_a,
        "excitation_mu_s_prime_per_mm": ex_s,
        "excitation_mu_eff_per_mm": ex.mu_eff,
        "emission_mu_a_per_mm": em_a,
        "emission_mu_s_prime_per_mm": em_s,
        "emission_mu_eff_per_mm": em.mu_eff,
        "emission_extrapolation_distance_mm": em.zb,
        "emission_transport_mean_free_path_mm": 1.0 / (em_a + em_s),
    }
    return rows, noise, reference


# --- the acquisition -----------------------------------------------------------------------


def surface_model(phantom, view: str, mode: str, excitation_nm: float, emission_nm: float, window: str,
                  backend: Backend) -> SurfaceModel:
    """The :class:`SurfaceModel` of ``phantom`` seen from ``view`` at the two wavelengths (nm)."""
    xp, grid = backend.xp, phantom.grid
    view_axis, _ = VIEWS[view]
    u_axis, v_axis = image_axes(view)
    voxel = (grid.voxel_size_mm[view_axis], grid.voxel_size_mm[u_axis], grid.voxel_size_mm[v_axis])

    def frame(volume):
        return to_camera_frame(volume, view, xp)

    body = frame(phantom.labels != 0)
    ex = tuple(frame(m) for m in optical_maps(phantom, excitation_nm, backend))
    em = tuple(frame(m) for m in optical_maps(phantom, emission_nm, backend))
    return SurfaceModel.build(body, ex, em, voxel, window, mode, backend)


def imaging_channel(spec, delivery):
    """The imaging channel of the NIRF settings ``spec`` (module docstring, "Channel").

    Returns
    -------
    dye : Fluorophore
        The dye of the first agent with a fluorophore label.
    window : {"NIR-I", "NIR-II"}
        ``modalities.nirf.window``, or the dye's native window for ``"auto"``.
    band : EmissionBand
        The dye's emission band in that window.
    labelled : list of (AgentDelivery, FluorophoreLabel)
        Every agent with a fluorophore label.
    imaged : tuple of str
        Names of the agents whose dye is the channel's.
    """
    labelled = [
        (item, label) for item in delivery.agents for label in item.agent.labels if label.kind == "fluorophore"
    ]
    if not labelled:
        raise ValueError("NIRF needs an agent with a fluorophore label")
    dye = fluorophore(labelled[0][1].dye)
    window = dye.native_window if spec.window == "auto" else spec.window
    imaged = tuple(item.agent.name for item, label in labelled if label.dye == dye.key)
    return dye, window, dye.windows[window], labelled, imaged


def acquire_nirf(ctx: AcquisitionContext) -> NIRFAcquisition:
    """Simulate the planar NIR fluorescence images of a scenario (see the module docstring).

    Parameters
    ----------
    ctx : AcquisitionContext
        The NIRF settings (``ctx.spec``), agents, schedule, phantom, delivery, backend and
        subject seed (:func:`imagingsim.modalities.base.acquisition_context`).

    Returns
    -------
    NIRFAcquisition
        Images in photoelectrons, float32 device arrays.
    """
    phantom, delivery, backend, seed = ctx.phantom, ctx.delivery, ctx.backend, ctx.seed
    xp = backend.xp
    spec = ctx.spec
    timer = StageTimer()
    lap = timer.lap

    dye, window, band, labelled, imaged = imaging_channel(spec, delivery)
    cam = camera_for_window(window)
    grid = phantom.grid
    view_axis, far_side = VIEWS[spec.view]
    u_axis, v_axis = image_axes(spec.view)
    voxel = (grid.voxel_size_mm[view_axis], grid.voxel_size_mm[u_axis], grid.voxel_size_mm[v_axis])

    def frame(volume):
        return to_camera_frame(volume, spec.view, xp)

    setup = cam.setup(voxel[1:])
    model = surface_model(phantom, spec.view, spec.mode, dye.excitation_nm, band.centre_nm, window, backend)
    lap("setup")

    n_ref = optics_table().refractive_index
    photons = photon_irradiance(spec.irradiance_mW_per_cm2, dye.excitation_nm) * (1.0 - specular_reflection(n_ref))
    gain = setup.collection_efficiency * cam.optics_transmission * cam.qe(band.centre_nm)
    to_electrons = photons * gain * spec.exposure_s
    dark = setup.dark_current_e_per_s * spec.exposure_s
    autofluorescence = frame(autofluorescence_map(phantom.labels, window, backend) * spec.autofluorescence)
    background = xp.clip(model.fluorescence(autofluorescence) * to_electrons, 0.0, None) + dark
    lap("autofluorescence")

    dye_maps = {
        item.agent.name: item.carrier_ug_per_ml * (label.dye_nmol_per_mg / 1000.0) for item, label in labelled
    }
    channel = None
    for name in imaged:
        channel = dye_maps[name] if channel is None else channel + dye_maps[name]
    coefficient = dye.fluorescence_per_mm(window)
    n_times = len(delivery.times_h)
    expected, measured = [], []
    for k in range(n_times):
        signal = model.fluorescence(frame(channel[..., k]) * coefficient) * to_electrons
        # FFT round-off leaves ~1e-16 relative negatives where there is no dye.
        mean = xp.clip(signal, 0.0, None) + background
        expected.append(mean)
        measured.append(camera_noise(mean, setup.read_noise_e, backend.rng(seed, NIRF_NOISE_STREAM, k),
                                     saturation_e=setup.saturation_e))
    images = xp.stack(measured, axis=-1)
    expected_stack = xp.stack(expected, axis=-1)
    # One synchronisation for all times: saturated pixels (clipped to the level) and the peak.
    counts = xp.sum(xp.astype(images >= setup.saturation_e, xp.float64), axis=(0, 1))
    peaks = xp.max(xp.reshape(expected_stack, (-1, n_times)), axis=0)
    host = backend.to_host(xp.concat([counts, peaks]))
    saturated = tuple(int(v) for v in host[:n_times])
    peak_expected = tuple(float(v) for v in host[n_times:])
    lap("images")

    nd = grid.shape[view_axis]
    has = model.surface < nd
    first = int(backend.scalar(xp.min(model.surface)))  # columns without tissue hold nd
    surface_index = nd - 1 - first if far_side else first
    thickness_mm = None
    if spec.mode == "trans":
        columns = xp.astype(has, xp.float64)
        mean = xp.sum(xp.astype(model.thickness, xp.float64) * columns) / xp.sum(columns)
        thickness_mm = backend.scalar(mean) * voxel[0]
    rows, noise, reference = depth_sensitivity(
        dye, window, setup, exposure_s=spec.exposure_s, irradiance_mW_per_cm2=spec.irradiance_mW_per_cm2,
        autofluorescence_scale=spec.autofluorescence, mode=spec.mode, thickness_mm=thickness_mm,
    )
    lap("depth_sensitivity")

    shape = list(grid.shape)
    origin = list(grid.origin_mm)
    shape[view_axis] = 1
    origin[view_axis] = grid.origin_mm[view_axis] + surface_index * grid.voxel_size_mm[view_axis]
    return NIRFAcquisition(
        view=spec.view,
        mode=spec.mode,
        window=window,
        dye=dye,
        band=band,
        camera=cam,
        setup=setup,
        excitation_nm=dye.excitation_nm,
        emission_nm=band.centre_nm,
        exposure_s=spec.exposure_s,
        irradiance_mW_per_cm2=spec.irradiance_mW_per_cm2,
        autofluorescence_scale=spec.autofluorescence,
        times_h=tuple(delivery.times_h),
        imaged_agents=imaged,
        dye_agents={item.agent.name: label.dye for item, label in labelled},
        image_axes=(AXIS_NAMES[u_axis], AXIS_NAMES[v_axis]),
        image_grid=ImageGrid(tuple(shape), grid.voxel_size_mm, tuple(origin)),
        images_e=xp.astype(images, xp.float32),
        expected_e=xp.astype(expected_stack, xp.float32),
        saturated_pixels=saturated,
        peak_expected_e=peak_expected,
        background_e=xp.astype(background, xp.float32),
        dye_nmol_per_ml={name: xp.astype(m, xp.float32) for name, m in dye_maps.items()},
        photons_per_s_per_mm2=photons,
        photoelectrons_per_photon=gain,
        reference_optics=reference,
        depth_sensitivity=rows,
        background_noise_e=noise,
        surface_index=surface_index,
        timings_s=timer.seconds,
    )


__all__ = [
    "AXIS_NAMES",
    "MAX_DEPTH_MM",
    "MAX_PSF_RADIUS_MM",
    "NIRF_NOISE_STREAM",
    "SENSITIVITY_DEPTHS_MM",
    "VIEWS",
    "SurfaceModel",
    "acquire_nirf",
    "camera_noise",
    "depth_sensitivity",
    "image_axes",
    "imaging_channel",
    "photon_irradiance",
    "surface_model",
    "time_label",
    "to_camera_frame",
    "tumour_contrast",
]
