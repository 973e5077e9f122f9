"""NIRF: fluorophore map -> excitation and emission attenuation with depth -> depth blur -> camera noise.

Planar NIR fluorescence imaging of the body surface that faces the camera (``view``), one
image per schedule time, at the phantom grid's in-plane pixel size.

Steps
-----
:func:`acquire_nirf` is the composition of four steps, so that the noise-free signal and
the noisy readout can be rerun on their own (another seed, stored expected images):

1. :func:`plan_nirf` -> :class:`NIRFPlan`: channel, camera set-up, surface model, photon
   budget and image plane (no random number, no dye map).
2. :func:`expected_photoelectrons` -> :class:`NIRFExpected`: the noise-free images
   (dye fluorescence + autofluorescence + dark current) and the dye concentration truth.
3. :func:`camera_readout` -> :class:`NIRFRawData`: the measured images (shot and read
   noise, saturation), one generator per time.
4. :func:`assemble_nirf` -> :class:`~imagingsim.modalities.nirf.result.NIRFAcquisition`:
   saturated-pixel counts, peaks and the set-up's depth response.

Model
-----
- **Channel** (:mod:`~imagingsim.modalities.nirf.channel`). The imaging channel is that of
  the dye of the first agent with a fluorophore label: its excitation line and, in the
  window (``modalities.nirf.window``; ``auto`` = the dye's native window), its emission
  filter band (``data/fluorophores.toml``). Every agent with the same dye is imaged (their
  concentrations add); agents labelled with another dye are in another channel and are not
  imaged (their concentration maps are still written as truth). Dye concentration,
  nmol/mL = carrier ug/mL x dye_nmol_per_mg / 1000.
- **Optics.** Absorption and reduced scattering at the excitation line and at the emission
  band centre: the phantom's 810 nm maps times per-tissue spectral ratios
  (:func:`~imagingsim.modalities.nirf.tables.optical_maps`, ``data/optics.toml``).
  Refractive index 1.4; air outside.
- **Geometry** (:mod:`~imagingsim.modalities.nirf.surface`). Voxel layers along the view
  axis. Each image pixel is a column of voxels; its depth origin is the first non-air voxel
  seen from the camera (the body surface), and layer ``n`` holds the column's ``n``-th voxel
  below it, at depth ``z_n = (n + 1/2) dz`` (down to
  :data:`~imagingsim.modalities.nirf.surface.MAX_DEPTH_MM`; PSFs are cut at
  :data:`~imagingsim.modalities.nirf.surface.MAX_PSF_RADIUS_MM`).
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
  :class:`~imagingsim.modalities.nirf.layered_blur.LayeredBlur`) with its PSF
  (:class:`~imagingsim.modalities.nirf.surface.SurfaceModel`).
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
- **Camera** (:class:`~imagingsim.modalities.nirf.tables.CameraSetup`,
  :mod:`~imagingsim.modalities.nirf.camera`). One image pixel is one phantom voxel, imaged
  on ``n_u x n_v`` sensor pixels: ``n = round(voxel x M0 / pixel pitch)`` at the preset's
  nominal magnification ``M0``, the lens refocused so that they span the voxel exactly.
  Photons leaving each pixel x lens collection (Lambertian, ``sin^2 theta`` at that working
  distance) x optics transmission x QE(emission) x exposure = expected photoelectrons; plus
  ``N = n_u n_v`` x dark current x exposure. Measured image = Poisson(expected) + ``sqrt(N)``
  x read noise x N(0, 1) (software binning), clipped at ``N`` x min(full well, ADC full
  scale) (saturation; the count of clipped pixels goes to the sidecar), drawn from
  ``backend.rng(seed, NIRF_NOISE_STREAM, k)`` for time ``k``. No blooming, no ADC
  quantisation noise (0.33 e^2 per sensor pixel), no excitation leakage through the filter,
  no lens blur or vignetting. Presets: silicon CCD (NIR-I), InGaAs (NIR-II),
  ``data/cameras.toml``.
- **Image.** ``[u, v]`` along the two world axes of the image plane in increasing order
  (dorsal/ventral: x, z; left/right: y, z), so that with a one-voxel-thick grid at the body
  surface (``NIRFAcquisition.image_grid``) the NIfTI affine places each pixel in the world.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from imagingsim.backend import Backend
from imagingsim.grid import ImageGrid
from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.nirf.camera import (
    NIRF_NOISE_STREAM,
    camera_noise,
    photoelectrons_per_photon,
    transmitted_photon_irradiance,
)
from imagingsim.modalities.nirf.channel import dye_concentrations, imaging_channel
from imagingsim.modalities.nirf.result import NIRFAcquisition
from imagingsim.modalities.nirf.sensitivity import depth_sensitivity
from imagingsim.modalities.nirf.surface import (
    AXIS_NAMES,
    SurfaceModel,
    frame_voxel_mm,
    image_axes,
    image_plane,
    mean_thickness_mm,
    surface_model,
    to_camera_frame,
)
from imagingsim.modalities.nirf.tables import (
    Camera,
    CameraSetup,
    EmissionBand,
    Fluorophore,
    autofluorescence_map,
    camera_for_window,
)
from imagingsim.modalities.stages import StageTimer


@dataclass(frozen=True, eq=False)
class NIRFPlan:
    """What an NIRF acquisition fixes before any image is formed: settings, channel, camera, surface model.

    Attributes
    ----------
    view, mode : str
        ``modalities.nirf`` settings.
    window : {"NIR-I", "NIR-II"}
        Emission window (``auto`` resolved).
    dye : Fluorophore
        The dye of the imaging channel.
    band : EmissionBand
        Its emission filter band in ``window``.
    camera : Camera
        The preset of ``window``.
    setup : CameraSetup
        The camera imaging the phantom's voxels (binning, read noise, dark current, saturation).
    model : SurfaceModel
        Source volume (camera frame) -> photons leaving each pixel.
    exposure_s : float
        Exposure time, s.
    irradiance_mW_per_cm2 : float
        Excitation irradiance at the skin, mW/cm^2.
    autofluorescence_scale : float
        Multiplier of the tabulated tissue autofluorescence.
    photons_per_s_per_mm2 : float
        Transmitted excitation photon irradiance, photons/(s mm^2).
    photoelectrons_per_photon : float
        Photoelectrons per photon leaving the skin (collection x optics transmission x QE).
    times_h : tuple of float
        Schedule times, h after t = 0.
    imaged_agents : tuple of str
        Agents whose dye is the channel's.
    dye_agents : dict of str -> str
        Every agent with a fluorophore label -> its dye.
    image_axes : tuple of str
        World axes of the image's ``[u, v]`` indices.
    image_grid : ImageGrid
        The image plane: the phantom grid, one voxel thick along the view axis at the body surface.
    surface_index : int
        Index along the view axis (phantom grid) of the image plane.
    thickness_mm : float or None
        Mean body thickness along the view, mm (transillumination only; None for ``epi``).
    """

    view: str
    mode: str
    window: str
    dye: Fluorophore
    band: EmissionBand
    camera: Camera
    setup: CameraSetup
    model: SurfaceModel
    exposure_s: float
    irradiance_mW_per_cm2: float
    autofluorescence_scale: float
    photons_per_s_per_mm2: float
    photoelectrons_per_photon: float
    times_h: tuple[float, ...]
    imaged_agents: tuple[str, ...]
    dye_agents: dict[str, str]
    image_axes: tuple[str, str]
    image_grid: ImageGrid
    surface_index: int
    thickness_mm: float | None

    @property
    def to_photoelectrons(self) -> float:
        """Photoelectrons per unit of :meth:`SurfaceModel.fluorescence` (photon irradiance x gain x exposure)."""
        return self.photons_per_s_per_mm2 * self.photoelectrons_per_photon * self.exposure_s

    @property
    def dark_e(self) -> float:
        """Dark current of an image pixel over the exposure, photoelectrons."""
        return self.setup.dark_current_e_per_s * self.exposure_s


@dataclass(frozen=True, eq=False)
class NIRFExpected:
    """The noise-free images at the camera and the dye truth they come from.

    Attributes
    ----------
    expected_e : device array ``(nu, nv, T)``, float64
        Expected photoelectrons per image pixel (dye + autofluorescence + dark current), not
        clipped at saturation.
    background_e : device array ``(nu, nv)``, float64
        Its autofluorescence + dark-current part (the same at every time), photoelectrons.
    dye_nmol_per_ml : dict of str -> device array ``(nx, ny, nz, T)``
        Dye concentration of every fluorophore agent, nmol/mL (phantom grid).
    """

    expected_e: Any
    background_e: Any
    dye_nmol_per_ml: dict[str, Any]


@dataclass(frozen=True, eq=False)
class NIRFRawData:
    """What the camera read: the measured images beside their noise-free expectation.

    Attributes
    ----------
    expected : NIRFExpected
        The noise-free images the readout was drawn from.
    images_e : device array ``(nu, nv, T)``, float64
        Measured photoelectrons (Poisson + read noise, clipped at ``setup.saturation_e``; may be < 0).
    """

    expected: NIRFExpected
    images_e: Any


def plan_nirf(ctx: AcquisitionContext) -> NIRFPlan:
    """Resolve the NIRF settings against the dye, camera presets and phantom (step 1).

    Parameters
    ----------
    ctx : AcquisitionContext
        The NIRF settings (``ctx.spec``), phantom, delivery (agents and times) and backend.

    Returns
    -------
    NIRFPlan

    Raises
    ------
    ValueError
        No agent with a fluorophore label, or a phantom without tissue.
    """
    spec, phantom, backend = ctx.spec, ctx.phantom, ctx.backend
    dye, window, band, labelled, imaged = imaging_channel(spec, ctx.delivery)
    cam = camera_for_window(window)
    setup = cam.setup(frame_voxel_mm(phantom.grid, spec.view)[1:])
    model = surface_model(phantom, spec.view, spec.mode, dye.excitation_nm, band.centre_nm, window, backend)
    surface_index, image_grid = image_plane(phantom.grid, spec.view, model)
    u_axis, v_axis = image_axes(spec.view)
    return NIRFPlan(
        view=spec.view,
        mode=spec.mode,
        window=window,
        dye=dye,
        band=band,
        camera=cam,
        setup=setup,
        model=model,
        exposure_s=spec.exposure_s,
        irradiance_mW_per_cm2=spec.irradiance_mW_per_cm2,
        autofluorescence_scale=spec.autofluorescence,
        photons_per_s_per_mm2=transmitted_photon_irradiance(spec.irradiance_mW_per_cm2, dye.excitation_nm),
        photoelectrons_per_photon=photoelectrons_per_photon(setup, band.centre_nm),
        times_h=tuple(ctx.delivery.times_h),
        imaged_agents=imaged,
        dye_agents={item.agent.name: label.dye for item, label in labelled},
        image_axes=(AXIS_NAMES[u_axis], AXIS_NAMES[v_axis]),
        image_grid=image_grid,
        surface_index=surface_index,
        thickness_mm=mean_thickness_mm(phantom.grid, spec.view, model) if spec.mode == "trans" else None,
    )


def expected_photoelectrons(plan: NIRFPlan, ctx: AcquisitionContext) -> NIRFExpected:
    """The noise-free images: expected photoelectrons at the camera at every schedule time (step 2).

    Parameters
    ----------
    plan : NIRFPlan
    ctx : AcquisitionContext
        The phantom (autofluorescence by tissue), the delivery (carrier maps) and the backend.

    Returns
    -------
    NIRFExpected
    """
    backend = ctx.backend
    xp = backend.xp
    model, to_electrons = plan.model, plan.to_photoelectrons

    def frame(volume):
        return to_camera_frame(volume, plan.view, xp)

    autofluorescence = frame(autofluorescence_map(ctx.phantom.labels, plan.window, backend) * plan.autofluorescence_scale)
    background = xp.clip(model.fluorescence(autofluorescence) * to_electrons, 0.0, None) + plan.dark_e

    dye_maps = dye_concentrations(ctx.delivery)
    channel = None
    for name in plan.imaged_agents:
        channel = dye_maps[name] if channel is None else channel + dye_maps[name]
    coefficient = plan.dye.fluorescence_per_mm(plan.window)
    expected = []
    for k in range(len(plan.times_h)):
        signal = model.fluorescence(frame(channel[..., k]) * coefficient) * to_electrons
        # FFT round-off leaves ~1e-16 relative negatives where there is no dye.
        expected.append(xp.clip(signal, 0.0, None) + background)
    return NIRFExpected(expected_e=xp.stack(expected, axis=-1), background_e=background, dye_nmol_per_ml=dye_maps)


def camera_readout(plan: NIRFPlan, expected: NIRFExpected, backend: Backend, seed: int) -> NIRFRawData:
    """The measured images: shot and read noise and saturation drawn on the expected ones (step 3).

    Parameters
    ----------
    plan : NIRFPlan
        Its camera set-up (binned read noise and saturation level, photoelectrons).
    expected : NIRFExpected
    backend : Backend
    seed : int
        The subject seed; time ``k`` draws from ``backend.rng(seed, NIRF_NOISE_STREAM, k)``.

    Returns
    -------
    NIRFRawData
    """
    setup = plan.setup
    measured = [
        camera_noise(expected.expected_e[..., k], setup.read_noise_e, backend.rng(seed, NIRF_NOISE_STREAM, k),
                     saturation_e=setup.saturation_e)
        for k in range(len(plan.times_h))
    ]
    return NIRFRawData(expected=expected, images_e=backend.xp.stack(measured, axis=-1))


def assemble_nirf(plan: NIRFPlan, raw: NIRFRawData, backend: Backend) -> NIRFAcquisition:
    """The acquisition's result: float32 images, saturation and peak per time, the set-up's depth response (step 4).

    Parameters
    ----------
    plan : NIRFPlan
    raw : NIRFRawData
    backend : Backend

    Returns
    -------
    NIRFAcquisition
        Images in photoelectrons, float32 device arrays (``timings_s`` left empty).
    """
    xp = backend.xp
    setup, n_times = plan.setup, len(plan.times_h)
    images, expected = raw.images_e, raw.expected.expected_e
    # One synchronisation for all times: saturated pixels (clipped to the level) and the peak.
    counts = xp.sum(xp.astype(images >= setup.saturation_e, xp.float64), axis=(0, 1))
    peaks = xp.max(xp.reshape(expected, (-1, n_times)), axis=0)
    host = backend.to_host(xp.concat([counts, peaks]))
    rows, noise, reference = depth_sensitivity(
        plan.dye, plan.window, setup, exposure_s=plan.exposure_s, irradiance_mW_per_cm2=plan.irradiance_mW_per_cm2,
        autofluorescence_scale=plan.autofluorescence_scale, mode=plan.mode, thickness_mm=plan.thickness_mm,
    )
    return NIRFAcquisition(
        view=plan.view,
        mode=plan.mode,
        window=plan.window,
        dye=plan.dye,
        band=plan.band,
        camera=plan.camera,
        setup=setup,
        excitation_nm=plan.dye.excitation_nm,
        emission_nm=plan.band.centre_nm,
        exposure_s=plan.exposure_s,
        irradiance_mW_per_cm2=plan.irradiance_mW_per_cm2,
        autofluorescence_scale=plan.autofluorescence_scale,
        times_h=plan.times_h,
        imaged_agents=plan.imaged_agents,
        dye_agents=plan.dye_agents,
        image_axes=plan.image_axes,
        image_grid=plan.image_grid,
        images_e=xp.astype(images, xp.float32),
        expected_e=xp.astype(expected, xp.float32),
        saturated_pixels=tuple(int(v) for v in host[:n_times]),
        peak_expected_e=tuple(float(v) for v in host[n_times:]),
        background_e=xp.astype(raw.expected.background_e, xp.float32),
        dye_nmol_per_ml={name: xp.astype(m, xp.float32) for name, m in raw.expected.dye_nmol_per_ml.items()},
        photons_per_s_per_mm2=plan.photons_per_s_per_mm2,
        photoelectrons_per_photon=plan.photoelectrons_per_photon,
        reference_optics=reference,
        depth_sensitivity=rows,
        background_noise_e=noise,
        surface_index=plan.surface_index,
    )


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
        Images in photoelectrons, float32 device arrays; ``timings_s`` has one entry per step.
    """
    timer = StageTimer()
    plan = plan_nirf(ctx)
    timer.lap("setup")
    expected = expected_photoelectrons(plan, ctx)
    timer.lap("expected")
    raw = camera_readout(plan, expected, ctx.backend, ctx.seed)
    timer.lap("readout")
    acquisition = assemble_nirf(plan, raw, ctx.backend)
    timer.lap("result")
    return dataclasses.replace(acquisition, timings_s=timer.seconds)


__all__ = [
    "NIRFExpected",
    "NIRFPlan",
    "NIRFRawData",
    "acquire_nirf",
    "assemble_nirf",
    "camera_readout",
    "expected_photoelectrons",
    "plan_nirf",
]
