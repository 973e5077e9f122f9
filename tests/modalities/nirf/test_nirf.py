"""NIRF forward model: diffusion-theory invariants, PSF width vs depth, NIR-I vs NIR-II, camera
binning, noise and saturation, the layered-blur dot test, backend cleanliness and a visible
tumour."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest

from imagingsim.backend import get_backend
from imagingsim.grid import ImageGrid
from imagingsim.io.sessions import session_label
from imagingsim.modalities.base import acquisition_context
from imagingsim.modalities.nirf import optics as no
from imagingsim.modalities.nirf import tables as nt
from imagingsim.modalities.nirf.acquire import (
    acquire_nirf,
    assemble_nirf,
    camera_readout,
    expected_photoelectrons,
    plan_nirf,
)
from imagingsim.modalities.nirf.camera import camera_noise
from imagingsim.modalities.nirf.layered_blur import LayeredBlur
from imagingsim.modalities.nirf.sensitivity import depth_sensitivity
from imagingsim.modalities.nirf.surface import VIEWS, SurfaceModel, to_camera_frame
from imagingsim.operators import Blur, check_adjoint
from imagingsim.phantom.model import Label
from imagingsim.phantom.properties import tissue_table
from imagingsim.pipeline import load_scenario, simulate

MUSCLE_810 = (0.028, 0.704)  # PHYSICS.md, mu_a and mu_s' in 1/mm
#: PHYSICS.md: surface FWHM of a point source in muscle at 810 nm, mm, by depth (mm).
PHYSICS_FWHM_MM = {1.0: 2.6, 2.0: 4.5, 5.0: 8.3, 10.0: 12.9}


def _slab(backend, shape, voxel_mm, excitation, emission, *, window="NIR-I", mode="epi"):
    """A homogeneous tissue block filling the whole camera-frame volume ``(nd, nu, nv)``."""
    xp = backend.xp
    body = xp.ones(shape, dtype=xp.bool, device=backend.device)

    def const(value):
        return xp.full(shape, value, dtype=xp.float64, device=backend.device)

    return SurfaceModel.build(body, tuple(map(const, excitation)), tuple(map(const, emission)), voxel_mm, window,
                              mode, backend)


def _point(backend, shape, index, value):
    host = np.zeros(shape)
    host[index] = value
    return backend.from_host(host)


def _fwhm(profile: np.ndarray, step_mm: float) -> float:
    """FWHM of a centred, symmetric, single-peaked profile by linear interpolation, mm."""
    centre = int(np.argmax(profile))
    half = 0.5 * profile[centre]
    right = profile[centre:]
    k = int(np.argmax(right < half))
    x = (k - 1) + (right[k - 1] - half) / (right[k - 1] - right[k])
    return 2.0 * x * step_mm


# --- the tables ------------------------------------------------------------------------------


def test_optics_tables_are_consistent_with_tissues_and_physics_md():
    table = nt.optics_table()
    tissues = tissue_table()
    i810 = table.wavelengths_nm.index(810.0)
    i1064 = table.wavelengths_nm.index(1064.0)
    spectra = {k: table.raw["chromophores"][k] for k in ("oxy_blood", "deoxy_blood", "water", "lipid")}
    for label in Label:
        values = table.mu_a_per_mm[label]
        assert values[i810] == tissues[label].mu_a_810nm_per_mm  # the phantom's maps are the anchor
        entry = table.raw["tissue"][label.bids_name]
        if label in (Label.AIR, Label.FAT):
            continue
        s, w, f, b = (entry[k] for k in ("saturation", "water_fraction", "lipid_fraction", "blood_like_fraction"))
        model = [b * (s * o + (1 - s) * d) + w * wa + f * li for o, d, wa, li in zip(*spectra.values())]
        # The table is printed to 3 significant digits: 0.5 % relative.
        np.testing.assert_allclose(values, model, rtol=5e-3, err_msg=label.bids_name)
    # PHYSICS.md fat (PMC6366475): 810 nm mu_a 0.00054, mu_s' 1.09; 1064 nm mu_a 0.0054, mu_s' 0.945.
    assert table.mu_a_per_mm[Label.FAT][i1064] == 0.0054
    a, s = nt.tissue_optics(Label.FAT, 1064.0)
    assert a == pytest.approx(0.0054, rel=1e-12) and s == pytest.approx(0.945, rel=2e-3)  # b from rounded values


def test_mu_eff_from_the_tables():
    a, s = nt.tissue_optics(Label.SOFT_TISSUE, 810.0)
    assert (a, s) == pytest.approx(MUSCLE_810, rel=1e-12)
    m = no.diffusion(a, s, nt.optics_table().refractive_index)
    assert m.mu_eff == pytest.approx(math.sqrt(3 * a * (a + s)), rel=1e-14)
    assert m.mu_eff == pytest.approx(0.25, rel=0.02)  # PHYSICS.md: ~0.25/mm (0.248)
    assert m.D == pytest.approx(1 / (3 * (a + s))) and m.z0 == pytest.approx(1 / (a + s))
    r = no.effective_reflection(1.4)
    assert m.zb == pytest.approx(2 * m.D * (1 + r) / (1 - r))


def test_dye_and_camera_tables():
    for dye in ("ICG", "IRDye800CW", "Cy55", "NIRII"):
        d = nt.fluorophore(dye)
        assert d.absorption_peak_nm < d.emission_peak_nm and 0 < d.quantum_yield < 1
        for window, band in d.windows.items():
            assert band.band_nm[0] < band.band_nm[1] and 0 < band.in_band_fraction <= 1
            assert (band.centre_nm >= nt.NIR_II_MIN_NM) == (window == "NIR-II")
    assert nt.fluorophore("NIRII").native_window == "NIR-II" and nt.fluorophore("ICG").native_window == "NIR-I"
    # 1 nmol/mL ICG: ln(10) x 1.5e5 /M/cm x 1e-6 M = 0.345 /cm = 0.0345 /mm, x QY 0.13 x 0.55 in band.
    assert nt.fluorophore("ICG").fluorescence_per_mm("NIR-I") == pytest.approx(0.0345388 * 0.13 * 0.55, rel=1e-5)
    si, ingaas = nt.camera_for_window("NIR-I"), nt.camera_for_window("NIR-II")
    assert si.preset == "silicon_ccd" and ingaas.preset == "ingaas"
    assert si.qe(840.0) > 0.5 and si.qe(1150.0) == 0.0 and ingaas.qe(1150.0) > 0.8
    for cam in (si, ingaas):
        assert 1e4 <= cam.full_well_e <= 1e6 and cam.source  # CCD / InGaAs wells: 1e4-1e6 e-
        assert cam.pixel_saturation_e == min(cam.full_well_e, (2**cam.adc_bits - 1) * cam.adc_gain_e_per_adu)


def test_binning_follows_the_magnification():
    # 13 um pixels, 50 mm lens at a nominal 350 mm: M0 = 50 / 300; a 0.5 mm voxel is 83 um on
    # the sensor, 6.4 pixels -> 6 x 6, the lens refocused to M = 6 x 13 um / 0.5 mm = 0.156.
    si = nt.camera_for_window("NIR-I")
    setup = si.setup((0.5, 0.5))
    assert si.nominal_magnification == pytest.approx(50 / 300)
    assert setup.binning == (6, 6) and setup.n_binned == 36 and setup.magnification == pytest.approx(0.156)
    assert setup.object_sensor_pixel_mm * 6 == pytest.approx(0.5)  # 6 sensor pixels span the voxel
    # Thin lens: 1/s_o + 1/s_i = 1/f with s_i = M s_o.
    s_o = setup.working_distance_mm
    assert 1 / s_o + 1 / (setup.magnification * s_o) == pytest.approx(1 / 50)
    radius = 50 / si.lens_f_number / 2
    assert setup.collection_efficiency == pytest.approx(math.sin(math.atan(radius / s_o)) ** 2, rel=1e-12)
    # Software binning: N x dark current, sqrt(N) x read noise, N x the pixel's saturation.
    assert setup.read_noise_e == pytest.approx(6 * si.read_noise_e)
    assert setup.dark_current_e_per_s == pytest.approx(36 * si.dark_current_e_per_s)
    assert setup.saturation_e == pytest.approx(36 * si.pixel_saturation_e)
    # A mouse (30 x 70 mm) fits in the 1024-pixel field of view (85 mm); the camera may turn.
    assert setup.field_of_view_mm == pytest.approx((1024 * 0.5 / 6,) * 2)
    assert setup.covers((70.0, 30.0)) and not setup.covers((90.0, 30.0))
    # A voxel smaller than a projected sensor pixel: no binning, the lens moves closer.
    tiny = si.setup((0.02, 0.02))
    assert tiny.binning == (1, 1) and tiny.magnification == pytest.approx(0.65)
    # Anisotropic voxels: the magnification is set by u, v is rounded.
    assert si.setup((0.5, 1.0)).binning == (6, 12)


# --- excitation and emission -----------------------------------------------------------------


def _plane_fluence(z, mu_a, mu_s):
    """PHYSICS.md formulas, written out independently of the package."""
    mu_t = mu_a + mu_s
    D, z0, mu = 1 / (3 * mu_t), 1 / mu_t, math.sqrt(3 * mu_a * mu_t)
    r = -1.440 / 1.4**2 + 0.710 / 1.4 + 0.668 + 0.0636 * 1.4
    zb = 2 * D * (1 + r) / (1 - r)
    return (np.exp(-mu * np.abs(z - z0)) - np.exp(-mu * (z + z0 + 2 * zb))) / (2 * D * mu), D, zb


def test_excitation_fluence_matches_diffusion_theory(backend):
    dd, n = 0.25, 60
    epi = _slab(backend, (n, 3, 3), (dd, 0.5, 0.5), MUSCLE_810, MUSCLE_810)
    z = (np.arange(n) + 0.5) * dd
    expected, D, zb = _plane_fluence(z, *MUSCLE_810)
    np.testing.assert_allclose(backend.to_host(epi.excitation)[:, 1, 1], expected, rtol=1e-12)
    # Transillumination: the same profile from the far surface.
    trans = _slab(backend, (n, 3, 3), (dd, 0.5, 0.5), MUSCLE_810, MUSCLE_810, mode="trans")
    np.testing.assert_allclose(backend.to_host(trans.excitation)[:, 1, 1], expected[::-1], rtol=1e-12)
    # The formula itself: zero at the extrapolated boundary, and energy balance for a unit
    # source: absorbed (mu_a int phi dz) + escaped (D dphi/dz at 0) = 1 (to the 1e-4 of the
    # 1 um midpoint rule over 80 mm).
    assert _plane_fluence(np.array([-zb]), *MUSCLE_810)[0][0] == pytest.approx(0.0, abs=1e-12)
    fine = (np.arange(80_000) + 0.5) * 1e-3
    absorbed = MUSCLE_810[0] * _plane_fluence(fine, *MUSCLE_810)[0].sum() * 1e-3
    h = 1e-6
    slope = (_plane_fluence(np.array([h]), *MUSCLE_810)[0][0] - _plane_fluence(np.array([0.0]), *MUSCLE_810)[0][0]) / h
    assert absorbed + D * slope == pytest.approx(1.0, abs=1e-4)


def test_point_source_signal_decays_as_exp_minus_mu_eff(backend):
    # Depths 3.25-11.25 mm (> 2 transport mean free paths of 1.37 mm) in a 60 mm wide image.
    dd, shape = 0.5, (24, 121, 121)
    model = _slab(backend, shape, (dd, 0.5, 0.5), MUSCLE_810, MUSCLE_810)
    layers = [6, 10, 14, 18, 22]
    depths = (np.array(layers) + 0.5) * dd
    totals = []
    for n in layers:
        image = model.exitance(_point(backend, shape, (n, 60, 60), 1.0 / model.voxel_volume_mm3))
        totals.append(backend.scalar(backend.xp.sum(image)))
    slope = np.polyfit(depths, np.log(totals), 1)[0]
    mu_eff = no.diffusion(*MUSCLE_810, 1.4).mu_eff
    assert slope == pytest.approx(-mu_eff, rel=0.05)  # measured: 0.1 % steeper (light beyond the field)
    # Each total lies between the closed-form light escaping within the inscribed disc (30 mm)
    # and all escaping light T(d), to the 0.1 % of the pixel integration.
    m = no.diffusion(*MUSCLE_810, 1.4)
    for d, total in zip(depths, totals):
        assert no.escape_within(d, 30.0, m) * (1 - 1e-3) < total < no.escape_fraction(d, m) * (1 + 1e-3)


def test_surface_fwhm_grows_with_depth_as_in_physics_md(backend):
    # One layer at exactly the depth (its voxel twice as thick); 0.25 mm pixels, 40 mm field.
    measured = {}
    for depth, reference in PHYSICS_FWHM_MM.items():
        shape = (1, 161, 161)
        model = _slab(backend, shape, (2 * depth, 0.25, 0.25), MUSCLE_810, MUSCLE_810)
        image = backend.to_host(model.exitance(_point(backend, shape, (0, 80, 80), 1.0)))
        measured[depth] = _fwhm(image[:, 80], 0.25)
        assert measured[depth] == pytest.approx(no.psf_fwhm_mm(depth, *MUSCLE_810, "NIR-I"), rel=0.02)
        # PHYSICS.md quotes 2 significant digits; the model gives 2.63 / 4.45 / 8.33 / 12.87 mm.
        assert measured[depth] == pytest.approx(reference, rel=0.05)
    values = [measured[d] for d in sorted(measured)]
    assert all(b > a for a, b in itertools.pairwise(values))


def test_nir2_is_sharper_than_nir1(backend):
    # ICG imaged in its NIR-I band (810-870 nm) or its NIR-II tail (1000-1300 nm), muscle.
    dye = nt.fluorophore("ICG")
    ex = nt.tissue_optics(Label.SOFT_TISSUE, dye.excitation_nm)
    widths = {}
    for window in ("NIR-I", "NIR-II"):
        em = nt.tissue_optics(Label.SOFT_TISSUE, dye.windows[window].centre_nm)
        widths[window] = []
        for depth in (1.0, 2.0, 3.0, 5.0):
            shape = (1, 121, 121)
            model = _slab(backend, shape, (2 * depth, 0.25, 0.25), ex, em, window=window)
            image = backend.to_host(model.exitance(_point(backend, shape, (0, 60, 60), 1.0)))
            widths[window].append(_fwhm(image[:, 60], 0.25))
            assert widths[window][-1] == pytest.approx(no.psf_fwhm_mm(depth, *em, window), rel=0.05)
    assert all(b < a for a, b in zip(widths["NIR-I"], widths["NIR-II"]))
    # The hand-tuned parameters (optics.toml, uncalibrated) give about half at 2 mm
    # (psf_fwhm_mm: 2.35 / 4.42 mm = 0.53) and a fading advantage deeper (0.83 at 5 mm).
    assert widths["NIR-II"][1] / widths["NIR-I"][1] == pytest.approx(0.5, abs=0.1)
    assert widths["NIR-II"][-1] / widths["NIR-I"][-1] > widths["NIR-II"][1] / widths["NIR-I"][1]


def test_weakly_scattered_light_attenuates_faster_than_diffuse_light():
    table = nt.optics_table()
    params = table.psf["NIR-II"]
    a, s = nt.tissue_optics(Label.SOFT_TISSUE, nt.fluorophore("ICG").windows["NIR-II"].centre_nm)
    m = no.diffusion(a, s, table.refractive_index)
    depths = np.linspace(0.5, 10.0, 20)
    q = np.array([no.weak_escape(d, a, s, params) for d in depths])
    diffuse = np.array([no.escape_fraction(d, m) for d in depths])
    total = np.array([no.total_escape(d, a, s, m, params) for d in depths])
    # q = f0 exp(-mu_t' d / k) exactly; its log slope is steeper than the diffuse -mu_eff.
    slope = np.polyfit(depths, np.log(q), 1)[0]
    assert slope == pytest.approx(-(a + s) / params.decay_transport_mfp, rel=1e-12)
    assert slope < -m.mu_eff
    # Photon bookkeeping: E = q + (1 - q) T lies between T and 1, and tends to T with depth.
    assert np.all((total >= diffuse) & (total <= 1.0))
    share = q / total
    assert np.all(np.diff(share) < 0)
    np.testing.assert_allclose(share, [no.weak_share(d, a, s, m, params) for d in depths], rtol=1e-12)
    # Deep (10-20 mm, share < 4 %) the weak share falls as exp(-(mu_t' - mu_eff) d); the 3 %
    # tolerance covers the q in the denominator of q / E (measured 1.4 % shallower).
    deep = np.linspace(10.0, 20.0, 11)
    share_deep = [no.weak_share(d, a, s, m, params) for d in deep]
    assert np.polyfit(deep, np.log(share_deep), 1)[0] == pytest.approx(-(a + s - m.mu_eff), rel=0.03)
    # NIR-I: pure diffusion theory, E = T.
    nir1 = table.psf["NIR-I"]
    assert nir1.weakly_scattered_fraction == 0.0
    assert no.total_escape(2.0, a, s, m, nir1) == no.escape_fraction(2.0, m)
    assert set(params.sidecar()) >= {"Status", "f0_WeaklyScatteredFraction"} and "uncalibrated" in params.sidecar()["Status"]


# --- operators and noise ---------------------------------------------------------------------


@pytest.mark.parametrize(("kshape", "shape"), [((3, 5, 7), (3, 12, 9)), ((2, 3), (2, 10)), ((2, 3, 1, 5), (2, 6, 4, 7))])
def test_layered_blur_dot_test_and_equals_a_sum_of_blurs(backend, kshape, shape):
    rng = np.random.default_rng(3)
    kernels = rng.random(kshape)
    op = LayeredBlur(backend.from_host(kernels), shape, backend)
    assert op.out_shape == shape[1:]
    assert check_adjoint(op) < 1e-12  # float64 round-off ~1e-16
    x = rng.random(shape)
    direct = sum(
        backend.to_host(Blur(backend.from_host(kernels[n]), shape[1:], backend).apply(backend.from_host(x[n])))
        for n in range(shape[0])
    )
    np.testing.assert_allclose(backend.to_host(op.apply(backend.from_host(x))), direct, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="LayeredBlur"):
        LayeredBlur(backend.from_host(np.ones((shape[0] + 1,) + kshape[1:])), shape, backend)


def test_layer_psfs_of_a_model(backend):
    xp = backend.xp
    # The layer PSFs of a real model too (NIR-II: both parts of the mixture).
    model = _slab(backend, (6, 10, 8), (0.5, 0.5, 0.5), MUSCLE_810, (0.049, 0.449), window="NIR-II")
    assert check_adjoint(model.blur) < 1e-12
    assert tuple(model.blur.kernels.shape) == (6, 19, 15)
    assert backend.scalar(xp.min(model.blur.kernels)) >= 0.0


def test_camera_noise_statistics_and_seeding(backend):
    xp = backend.xp
    expected = xp.full((200, 200), 1000.0, dtype=xp.float64, device=backend.device)
    n = 200 * 200
    # Tolerances: 5 standard errors of a mean (sqrt(var / n)) and of a variance (var sqrt(2 / n)).
    for read in (0.0, 20.0):
        image = backend.to_host(camera_noise(expected, read, backend.rng(7, 0xF10, 0)))
        var = 1000.0 + read**2
        assert image.mean() == pytest.approx(1000.0, abs=5 * math.sqrt(var / n))
        assert image.var() == pytest.approx(var, rel=5 * math.sqrt(2 / n))
    # Binned read noise: the InGaAs (50 e- per sensor pixel) on 1 mm voxels bins 8 x 8 = 64
    # pixels, so a dark, unexposed image has variance 64 x 50^2 = 1.6e5 e^2.
    setup = nt.camera_for_window("NIR-II").setup((1.0, 1.0))
    assert setup.n_binned == 64
    dark = backend.to_host(camera_noise(expected * 0.0, setup.read_noise_e, backend.rng(7, 0xF10, 3)))
    assert dark.var() == pytest.approx(64 * 50.0**2, rel=5 * math.sqrt(2 / n))
    # Saturation: a pixel never reads above the level, and reads exactly it when flooded.
    level = 1100.0
    clipped = backend.to_host(camera_noise(expected, 20.0, backend.rng(7, 0xF10, 0), saturation_e=level))
    free = backend.to_host(camera_noise(expected, 20.0, backend.rng(7, 0xF10, 0)))
    assert clipped.max() == level and np.array_equal(clipped, np.minimum(free, level))
    flooded = backend.to_host(camera_noise(expected * 10.0, 20.0, backend.rng(7, 0xF10, 0), saturation_e=level))
    assert np.all(flooded == level)
    a = backend.to_host(camera_noise(expected, 5.0, backend.rng(7, 0xF10, 1)))
    b = backend.to_host(camera_noise(expected, 5.0, backend.rng(7, 0xF10, 1)))
    c = backend.to_host(camera_noise(expected, 5.0, backend.rng(7, 0xF10, 2)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_time_labels():
    assert [session_label(t) for t in (24.0, 0.5, 0.0, 168.0, 0.25, 1.0)] == ["24h", "0p5h", "0h", "168h", "0p25h", "1h"]


def test_camera_frame_puts_the_facing_surface_first(numpy_backend):
    xp = numpy_backend.xp
    volume = np.zeros((4, 5, 6))
    volume[0, :, :] = 1  # left (-x) face
    volume[:, 0, :] += 2  # dorsal (-y) face
    faces = {"left": 1, "right": 0, "dorsal": 2, "ventral": 0}
    for view, marker in faces.items():
        framed = np.asarray(to_camera_frame(xp.asarray(volume), view, xp))
        axis, _ = VIEWS[view]
        assert framed.shape[0] == volume.shape[axis]
        if marker:
            assert np.all(framed[0] >= marker) and not np.all(framed[-1] >= marker)


# --- the acquisition -------------------------------------------------------------------------


def _slab_subject(backend):
    """A 12 x 10 x 12 mm block of muscle with a 3 mm dye sphere 2 mm under the dorsal (-y) face."""
    grid = ImageGrid((24, 24, 24), (0.5,) * 3, (-5.75, -5.75, -5.75))
    x, y, z = np.meshgrid(*[grid.origin_mm[a] + 0.5 * np.arange(24) for a in range(3)], indexing="ij")
    labels = np.where(np.abs(y) < 5.0, int(Label.SOFT_TISSUE), int(Label.AIR)).astype(np.uint8)
    inside = labels > 0
    props = {
        "mu_a_810nm_per_mm": backend.from_host(np.where(inside, 0.028, 0.0)),
        "mu_s_prime_810nm_per_mm": backend.from_host(np.where(inside, 0.704, 0.0)),
    }
    phantom = SimpleNamespace(grid=grid, labels=backend.from_host(labels), properties=props)
    sphere = (x**2 + (y + 1.5) ** 2 + z**2) < 1.5**2
    carrier = np.stack([np.where(sphere, 30.0, 0.0), np.where(sphere, 60.0, 0.3)], axis=-1) * inside[..., None]
    scenario = load_scenario(
        "mouse_targeted_spion", ['modalities.nirf.view="dorsal"', 'modalities.enabled=["nirf"]', "schedule.times_h=[1.0, 24.0]"]
    )
    agent = SimpleNamespace(agent=scenario.agents[0], carrier_ug_per_ml=backend.from_host(carrier))
    other = SimpleNamespace(agent=scenario.agents[1], carrier_ug_per_ml=backend.from_host(carrier))
    delivery = SimpleNamespace(agents=(agent, other), times_h=(1.0, 24.0))
    return phantom, delivery, scenario


def test_acquisition_is_backend_clean_and_matches_numpy(backend):
    # On strict, any implicit device->host conversion raises (conftest guards).
    phantom, delivery, scenario = _slab_subject(backend)
    acq = acquire_nirf(acquisition_context("nirf", phantom, delivery, scenario, backend, 11))
    ref_backend = get_backend("numpy")
    ref = acquire_nirf(acquisition_context("nirf", *_slab_subject(ref_backend)[:2], scenario, ref_backend, 11))
    expected, ref_expected = backend.to_host(acq.expected_e), np.asarray(ref.expected_e)
    assert expected.shape == (24, 24, 2) and acq.image_axes == ("x", "z")
    # FFTs of different libraries agree to round-off, far below float32 storage precision.
    np.testing.assert_allclose(expected, ref_expected, rtol=1e-6, atol=1e-6 * ref_expected.max())
    np.testing.assert_array_equal(backend.to_host(acq.images_e), np.asarray(ref.images_e))  # same seeded draws
    assert acq.imaged_agents == ("spion",) and acq.window == "NIR-I" and acq.camera.preset == "silicon_ccd"
    # The dye over its footprint stands out from the muscle around it; more dye, more signal.
    assert expected[12, 12, 1] > 1.5 * expected[2, 12, 1] and expected[12, 12, 1] > expected[12, 12, 0]
    # Dye truth: carrier x 5 nmol/mg / 1000.
    np.testing.assert_allclose(backend.to_host(acq.dye_nmol_per_ml["spion"])[12, 9, 12], [0.15, 0.3], rtol=1e-6)
    # The image plane sits at the dorsal surface (y = -4.75 mm, the first tissue voxel).
    assert acq.image_grid.shape == (24, 1, 24) and acq.image_grid.origin_mm[1] == pytest.approx(-4.75)


def test_steps_compose_to_the_acquisition_and_the_readout_reruns_alone(numpy_backend):
    phantom, delivery, scenario = _slab_subject(numpy_backend)
    ctx = acquisition_context("nirf", phantom, delivery, scenario, numpy_backend, 11)
    acq = acquire_nirf(ctx)
    assert set(acq.timings_s) == {"setup", "expected", "readout", "result"}
    plan = plan_nirf(ctx)
    expected = expected_photoelectrons(plan, ctx)
    raw = camera_readout(plan, expected, numpy_backend, 11)
    again = assemble_nirf(plan, raw, numpy_backend)
    for name in ("images_e", "expected_e", "background_e"):
        np.testing.assert_array_equal(np.asarray(getattr(again, name)), np.asarray(getattr(acq, name)))
    assert again.saturated_pixels == acq.saturated_pixels and again.depth_sensitivity == acq.depth_sensitivity
    assert again.image_grid == acq.image_grid and again.timings_s == {}
    # Another seed redraws the noise on the same noise-free images, which are not recomputed.
    other = camera_readout(plan, expected, numpy_backend, 12)
    assert other.expected is expected
    assert not np.array_equal(np.asarray(other.images_e), np.asarray(raw.images_e))


def test_saturation_is_clipped_and_counted(numpy_backend):
    phantom, delivery, scenario = _slab_subject(numpy_backend)
    dim = acquire_nirf(acquisition_context("nirf", phantom, delivery, scenario, numpy_backend, 5))
    level = dim.setup.saturation_e
    assert dim.saturated_pixels == (0, 0) and max(dim.peak_expected_e) < level
    # Expose until the brightest pixel gets 3 x the saturation level.
    exposure = 3.0 * level / max(dim.peak_expected_e) * scenario.modalities.nirf.exposure_s
    acq = acquire_nirf(acquisition_context("nirf", phantom, delivery, _with_nirf(scenario, exposure_s=exposure), numpy_backend, 5))
    images, expected = np.asarray(acq.images_e, dtype=np.float64), np.asarray(acq.expected_e, dtype=np.float64)
    assert images.max() == pytest.approx(level, rel=1e-7)  # float32 storage
    assert np.all(images <= level * (1 + 1e-7))
    # Pixels 6 sd above the level are surely clipped, pixels 6 sd below surely not.
    sd = math.sqrt(level + acq.setup.read_noise_e**2)
    for k, count in enumerate(acq.saturated_pixels):
        surely = int(np.sum(expected[..., k] > level + 6 * sd))
        possibly = int(np.sum(expected[..., k] > level - 6 * sd))
        assert 0 < surely <= count <= possibly


def test_transillumination_depth_table_stays_inside_the_slab():
    dye = nt.fluorophore("ICG")
    setup = nt.camera_for_window("NIR-I").setup((0.5, 0.5))
    settings = {"exposure_s": 0.1, "irradiance_mW_per_cm2": 10.0, "autofluorescence_scale": 1.0}
    epi, _, _ = depth_sensitivity(dye, "NIR-I", setup, **settings)
    trans, _, _ = depth_sensitivity(dye, "NIR-I", setup, mode="trans", thickness_mm=5.0, **settings)
    assert [r["depth_mm"] for r in trans] == [r["depth_mm"] for r in epi if r["depth_mm"] < 5.0]
    # Transillumination: the deeper the source, the closer to the lit surface, the more excitation.
    fluence = [r["excitation_fluence_per_irradiance"] for r in trans]
    assert all(b > a for a, b in itertools.pairwise(fluence[-5:]))


@pytest.fixture(scope="module")
def mouse():
    scenario = load_scenario(
        "mouse_targeted_spion", ['modalities.nirf.view="dorsal"', "phantom.voxel_size_mm=1.0", 'modalities.enabled=["nirf"]']
    )
    subject = simulate(scenario.model_copy(update={"modalities": scenario.modalities.model_copy(update={"enabled": []})}),
                       backend="numpy")
    return scenario, subject


def _with_nirf(scenario, **changes):
    nirf = scenario.modalities.nirf.model_copy(update=changes)
    return scenario.model_copy(update={"modalities": scenario.modalities.model_copy(update={"nirf": nirf})})


def _tumour_to_background(subject, acq, view):
    """Mean image over the tumour's projection / mean over the tissue 3-6 mm around it, per time."""
    from scipy import ndimage

    axis, _ = VIEWS[view]
    footprint = np.asarray(subject.phantom.tumour_index).any(axis=axis)
    silhouette = (np.asarray(subject.phantom.labels) != 0).any(axis=axis)
    distance = ndimage.distance_transform_edt(~footprint) * subject.phantom.grid.voxel_size_mm[0]
    ring = silhouette & (distance > 3.0) & (distance <= 6.0)
    expected = np.asarray(acq.expected_e)
    return [expected[..., k][footprint].mean() / expected[..., k][ring].mean() for k in range(expected.shape[-1])]


def test_flank_tumour_contrast_by_view(mouse):
    # The flank tumour (x = +6 mm, radius 4.5 mm) lies ~1 mm under the right flank and ~2 mm
    # under the dorsal skin; seen from the left it is behind 15 mm of tissue.
    scenario, subject = mouse
    tbr = {}
    for view in ("dorsal", "right", "left"):
        acq = acquire_nirf(acquisition_context("nirf", subject.phantom, subject.delivery, _with_nirf(scenario, view=view), subject.backend, subject.seed))
        tbr[view] = _tumour_to_background(subject, acq, view)
    # Measured (0.5, 1, 4, 24 h): dorsal 1.04 / 1.05 / 1.17 / 1.44, right 1.03 / 1.08 / 1.44 / 2.46,
    # left 0.98 / 0.98 / 0.94 / 0.83. The dye must clear from the blood before the tumour shows.
    for view in ("dorsal", "right"):
        assert tbr[view][-1] > 1.3 and tbr[view][-1] > tbr[view][0] + 0.3, view
    assert tbr["right"][-1] > tbr["dorsal"][-1] and tbr["left"][-1] < 1.0


@pytest.mark.parametrize("view", ["dorsal", "right"])
def test_tumour_is_where_the_image_grid_says(mouse, view):
    scenario, subject = mouse
    acq = acquire_nirf(acquisition_context("nirf", subject.phantom, subject.delivery, _with_nirf(scenario, view=view), subject.backend, subject.seed))
    axis, _ = VIEWS[view]
    footprint = np.asarray(subject.phantom.tumour_index).any(axis=axis)
    expected, measured = np.asarray(acq.expected_e), np.asarray(acq.images_e)
    # The default camera (f/2.8) keeps the brightest pixel below its saturation level
    # (measured at 1 mm voxels, 13 x 13 binning: dorsal 0.44, right 0.48 of it, at 0.5 h
    # when the dye is still in the blood) and nothing is clipped.
    assert acq.saturated_pixels == (0,) * len(acq.times_h)
    assert max(acq.peak_expected_e) < 0.75 * acq.setup.saturation_e
    # Shot and read noise (sd ~1e3 e- on ~1e6 e- per pixel) average out over the footprint:
    # the relative error of its mean is ~1e-3 / sqrt(100 pixels).
    assert measured[..., -1][footprint].mean() == pytest.approx(expected[..., -1][footprint].mean(), rel=1e-3)
    # The image plane is the outermost tissue voxel facing the camera.
    grid = acq.image_grid
    tissue = np.nonzero((np.asarray(subject.phantom.labels) != 0).any(axis=tuple(a for a in range(3) if a != axis)))[0]
    edge = tissue[-1] if VIEWS[view][1] else tissue[0]
    phantom_grid = subject.phantom.grid
    assert grid.origin_mm[axis] == pytest.approx(phantom_grid.origin_mm[axis] + edge * phantom_grid.voxel_size_mm[axis])
    # In the caudal third (z < -8 mm: muscle, fat and the tumour; the bright spine marrow and
    # liver lie higher) the brightest 24 h pixel lies over the tumour, in world coordinates
    # through the image grid.
    u_axis, v_axis = (a for a in range(3) if a != axis)
    u = grid.origin_mm[u_axis] + grid.voxel_size_mm[u_axis] * np.arange(footprint.shape[0])
    v = grid.origin_mm[v_axis] + grid.voxel_size_mm[v_axis] * np.arange(footprint.shape[1])
    caudal = np.where(v[None, :] < -8.0, expected[..., -1], 0.0)
    peak = np.unravel_index(np.argmax(caudal), footprint.shape)
    centre = scenario.phantom.tumours[0].centre_mm
    assert math.dist((u[peak[0]], v[peak[1]]), (centre[u_axis], centre[v_axis])) < scenario.phantom.tumours[0].radius_mm
