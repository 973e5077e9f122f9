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
  (down to :data:`~imagingsim.modalities.nirf.surface.MAX_DEPTH_MM`; PSFs are cut at
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

from imagingsim.grid import ImageGrid
from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.nirf.camera import camera_noise, photon_irradiance
from imagingsim.modalities.nirf.channel import imaging_channel
from imagingsim.modalities.nirf.optics import (
    specular_reflection,
)
from imagingsim.modalities.nirf.result import NIRFAcquisition
from imagingsim.modalities.nirf.sensitivity import depth_sensitivity
from imagingsim.modalities.nirf.surface import AXIS_NAMES, VIEWS, image_axes, surface_model, to_camera_frame
from imagingsim.modalities.nirf.tables import (
    autofluorescence_map,
    camera_for_window,
    optics_table,
)
from imagingsim.modalities.stages import StageTimer

#: Random stream of NIRF camera noise: the generator key is (seed, NIRF_NOISE_STREAM, time index).
NIRF_NOISE_STREAM = 0xF10


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
