"""Phantom physics and geometry: anatomy labels, tumour zones, random fields, property maps.

Every kernel test runs on the ``backend`` fixture (numpy, strict, cupy when usable). Voxels
are coarse where the property under test allows it, so each test takes well under 1 s.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from imagingsim.backend import get_backend
from imagingsim.data.materials import material_compositions
from imagingsim.grid import ImageGrid
from imagingsim.phantom import PROPERTY_UNITS, TUMOUR_LABELS, Label, build_phantom
from imagingsim.phantom.anatomy import ANATOMIES, VoxelCanvas
from imagingsim.phantom.heterogeneity import gaussian_random_field, lognormal_multiplier
from imagingsim.phantom.properties import RANGES, label_materials, tissue_table
from imagingsim.phantom.tumour import draw_tumours, paint_tumours
from imagingsim.pipeline import load_scenario
from imagingsim.scenario import HeterogeneitySpec, PhantomSpec, TumourSpec

FLANK = TumourSpec(name="flank", centre_mm=(6.0, -2.0, -14.0), radius_mm=4.5)
#: One tumour per anatomy, inside the body (inside the brain for "brain"), at coarse voxels.
COARSE = {
    "mouse": PhantomSpec(anatomy="mouse", voxel_size_mm=1.0, tumours=[FLANK]),
    "torso": PhantomSpec(anatomy="torso", voxel_size_mm=5.0, tumours=[TumourSpec(centre_mm=(60.0, 0.0, -40.0), radius_mm=25.0)]),
    "brain": PhantomSpec(anatomy="brain", voxel_size_mm=4.0, tumours=[TumourSpec(centre_mm=(25.0, 10.0, 20.0), radius_mm=20.0)]),
}


def host(backend, array) -> np.ndarray:
    return backend.to_host(array, count=False)


def lag_correlation(field: np.ndarray, lag: int, axis: int) -> float:
    """Sample autocovariance of a zero-mean unit-variance field at ``lag`` voxels along ``axis``."""
    a = np.moveaxis(field, axis, 0)
    return float(np.mean(a[:-lag] * a[lag:]))


# --- data tables ---------------------------------------------------------------------------


def test_tables_cover_every_label_property_and_material():
    table = tissue_table()
    assert set(table) == set(Label)
    materials = material_compositions()
    for label, props in table.items():
        assert props.material in materials, label
    for name, material in materials.items():
        assert abs(sum(material.mass_fractions.values()) - 1.0) <= 2e-3, name
    assert table[Label.BLOOD_POOL].blood_volume_fraction == 1.0
    assert table[Label.BRAIN].vessel_permeability == 0.0
    assert all(table[label].receptor_density_nM == 0.0 for label in Label if label not in TUMOUR_LABELS)


# --- anatomy -------------------------------------------------------------------------------


@pytest.mark.parametrize("anatomy", sorted(COARSE))
def test_labels_cover_the_expected_set(backend, anatomy):
    phantom = build_phantom(COARSE[anatomy], backend, seed=1)
    present = set(np.unique(host(backend, phantom.labels)).tolist())
    assert present == {int(v) for v in ANATOMIES[anatomy].labels | set(TUMOUR_LABELS)}
    assert phantom.species == ANATOMIES[anatomy].species
    assert set(phantom.properties) == set(PROPERTY_UNITS)
    assert phantom.materials == label_materials() and phantom.materials[int(Label.BONE)] == "cortical_bone"


def test_mouse_organs_sit_on_the_right_sides(backend):
    """RAS+: liver mostly at +x (subject's right), spleen at -x, spine and kidneys dorsal (-y)."""
    mouse = ANATOMIES["mouse"]
    labels, geometry = mouse.build(backend, 1.0)
    labels = host(backend, labels)
    x, y, z = (host(backend, axis) for axis in mouse.grid(1.0).axes_mm(backend))

    def centroid(mask):
        i, j, k = np.nonzero(mask)
        return x[i, 0, 0].mean(), y[0, j, 0].mean(), z[0, 0, k].mean()

    liver, spleen, lung, bone = (centroid(labels == lab) for lab in (Label.LIVER, Label.SPLEEN, Label.LUNG, Label.BONE))
    assert liver[0] > 0 > spleen[0]
    assert lung[2] > liver[2]  # lungs superior to the liver
    assert bone[1] < 0  # spine dorsal
    kidney = labels == Label.KIDNEY
    right, left = centroid(kidney & (x > 0)), centroid(kidney & (x < 0))
    assert right[0] > 0 > left[0] and right[1] < 0 and left[1] < 0
    assert geometry.landmarks_mm["liver"][0] > 0 > geometry.landmarks_mm["spleen"][0]
    body = host(backend, geometry.body_distance_mm)
    assert np.all(labels[body >= 0] == Label.AIR) and np.all(labels[body < 0] != Label.AIR)


def test_protruding_tumour_is_wrapped_by_tissue_not_air(backend):
    """A flank tumour bulging out of the trunk displaces air: the outline grows around it."""
    bulging = TumourSpec(centre_mm=(10.0, 0.0, -14.0), radius_mm=4.5, boundary_irregularity=0.0)
    phantom = build_phantom(PhantomSpec(anatomy="mouse", voxel_size_mm=0.5, tumours=[bulging]), backend, seed=1)
    labels = host(backend, phantom.labels)
    tumour = np.isin(labels, [int(v) for v in TUMOUR_LABELS])
    assert tumour.any()
    # Face neighbours of tumour voxels (the grid edge is far away: no wrap-around issue).
    neighbours = np.zeros_like(tumour)
    for axis in range(3):
        for shift in (-1, 1):
            neighbours |= np.roll(tumour, shift, axis=axis)
    assert not np.any(neighbours & (labels == Label.AIR))
    x = phantom.grid.origin_mm[0] + phantom.grid.voxel_size_mm[0] * np.nonzero(tumour)[0]
    assert x.max() > 12.0  # it does stick out of the 12 mm half-width body


# --- tumour geometry -----------------------------------------------------------------------


def test_tumour_zone_volumes_match_spherical_shells(backend):
    """Irregularity 0: volumes of core, hypoxic shell, viable rim and the whole tumour.

    Tolerances: counting voxel centres inside a sphere of radius n voxels deviates from
    4/3 pi n^3 by lattice-point noise; over random sub-voxel centre offsets the largest
    deviation measured here was 0.8 % (core, n = 8.4), 0.4 % (shell), 0.2 % (rim), 0.1 %
    (whole). 2 % per zone and 1 % in total leave margin for any offset.
    """
    grid = ImageGrid.centred((16.0, 16.0, 16.0), 0.25)
    spec = TumourSpec(centre_mm=(0.13, -0.21, 0.07), radius_mm=6.0, necrotic_fraction=0.35,
                      hypoxic_shell_fraction=0.25, boundary_irregularity=0.0)
    canvas = VoxelCanvas(backend, grid)
    index = host(backend, paint_tumours(canvas, draw_tumours(backend, [spec], seed=3)))
    labels = host(backend, canvas.labels)
    R, core, shell = 6.0, 0.35 * 6.0, 0.60 * 6.0
    ball = lambda r: 4.0 / 3.0 * math.pi * r**3
    expected = {
        Label.TUMOUR_NECROTIC: ball(core),
        Label.TUMOUR_HYPOXIC: ball(shell) - ball(core),
        Label.TUMOUR_VIABLE: ball(R) - ball(shell),
    }
    voxel_mm3 = 0.25**3
    for label, volume in expected.items():
        assert np.sum(labels == label) * voxel_mm3 == pytest.approx(volume, rel=0.02), label.name
    assert np.sum(index == 1) * voxel_mm3 == pytest.approx(ball(R), rel=0.01)
    assert np.array_equal(index == 1, np.isin(labels, [int(v) for v in TUMOUR_LABELS]))


def test_irregular_boundary_depends_on_seed_only(backend):
    grid = ImageGrid.centred((20.0, 20.0, 20.0), 0.5)
    spec = TumourSpec(centre_mm=(0.0, 0.0, 0.0), radius_mm=6.0, boundary_irregularity=0.3)

    def mask(seed):
        canvas = VoxelCanvas(backend, grid)
        return host(backend, paint_tumours(canvas, draw_tumours(backend, [spec], seed)))

    a, b, c = mask(1), mask(1), mask(2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # R (1 + e f) with E f = 0: volume ~ 4/3 pi R^3 (1 + 3 e^2) on average; generous bounds.
    for m in (a, c):
        assert 0.6 < np.sum(m) * 0.125 / (4.0 / 3.0 * math.pi * 6.0**3) < 1.8


# --- random fields -------------------------------------------------------------------------


def test_grf_is_standard_normal_with_gaussian_covariance(backend):
    """Mean 0, sd 1, autocorrelation exp(-1/2) at a lag of one correlation length.

    96^3 voxels of 1 mm, l = 2 mm. Over 40 seeds the estimators' sds were 0.010 (mean),
    0.006 (sd) and 0.009 (lag-l correlation averaged over the three axes); the tolerances
    0.05 / 0.03 / 0.04 are about 4-5 of those sds.
    """
    grid = ImageGrid((96, 96, 96), (1.0, 1.0, 1.0))
    field = host(backend, gaussian_random_field(backend, grid, 2.0, backend.rng(11, 1)))
    assert field.shape == grid.shape
    assert abs(field.mean()) < 0.05
    assert abs(field.std() - 1.0) < 0.03
    rho = np.mean([lag_correlation(field, 2, axis) for axis in range(3)])
    assert abs(rho - math.exp(-0.5)) < 0.04


def test_grf_correlation_length_is_in_mm_for_anisotropic_voxels(backend):
    """Voxels of 0.5 x 1 x 1.5 mm, l = 3 mm: lags of 6, 3, 2 voxels all correlate exp(-1/2).

    Per-axis estimator sd over 40 seeds: 0.019; tolerance 0.08 (4 sd). Ignoring the voxel
    size would give exp(-2) = 0.14 along x, far outside it.
    """
    grid = ImageGrid((160, 80, 64), (0.5, 1.0, 1.5))
    field = host(backend, gaussian_random_field(backend, grid, 3.0, backend.rng(12, 1)))
    for axis, lag in enumerate((6, 3, 2)):
        assert abs(lag_correlation(field, lag, axis) - math.exp(-0.5)) < 0.08, axis


def test_grf_is_reproducible_per_stream(backend):
    grid = ImageGrid((16, 16, 16), (1.0, 1.0, 1.0))
    a, b, c = (host(backend, gaussian_random_field(backend, grid, 2.0, backend.rng(5, s))) for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_lognormal_multiplier_has_mean_one(backend):
    """s = 0.5, l = 1 mm on 96^3: sample-mean sd over 40 seeds 0.002; tolerance 0.01."""
    grid = ImageGrid((96, 96, 96), (1.0, 1.0, 1.0))
    field = gaussian_random_field(backend, grid, 1.0, backend.rng(13, 1))
    multiplier = host(backend, lognormal_multiplier(field, 0.5))
    assert abs(multiplier.mean() - 1.0) < 0.01
    assert multiplier.min() > 0.0
    np.testing.assert_array_equal(host(backend, lognormal_multiplier(field, 0.0)), 1.0)


# --- property maps -------------------------------------------------------------------------


def test_same_seed_is_bit_identical_and_other_seed_changes_texture_only(backend):
    spec = PhantomSpec(
        anatomy="mouse", voxel_size_mm=1.0,
        tumours=[FLANK.model_copy(update={"boundary_irregularity": 0.0})],
    )
    a, b, c = (build_phantom(spec, backend, seed) for seed in (5, 5, 6))
    assert np.array_equal(host(backend, a.labels), host(backend, b.labels))
    assert np.array_equal(host(backend, a.tumour_index), host(backend, b.tumour_index))
    for name in PROPERTY_UNITS:
        assert np.array_equal(host(backend, a.properties[name]), host(backend, b.properties[name])), name
    assert np.array_equal(host(backend, a.labels), host(backend, c.labels))
    for name in ("blood_volume_fraction", "vessel_permeability", "glucose_metabolism", "ph", "po2_mmHg"):
        assert not np.array_equal(host(backend, a.properties[name]), host(backend, c.properties[name])), name
    # Untextured properties do not depend on the seed.
    assert np.array_equal(host(backend, a.properties["t1_3T_ms"]), host(backend, c.properties["t1_3T_ms"]))


def test_mouse_blood_volume_fits_whole_body_volume(backend):
    phantom = build_phantom(load_scenario().phantom, backend, seed=20261122)
    bvf = host(backend, phantom.properties["blood_volume_fraction"])
    blood_ml = float(bvf.sum()) * phantom.grid.voxel_volume_ml
    assert phantom.blood_volume_ml == pytest.approx(1.8)
    assert 0.5 < blood_ml <= phantom.blood_volume_ml


def test_brain_has_intact_bbb_and_a_leaky_tumour(backend):
    spec = COARSE["brain"]
    phantom = build_phantom(spec, backend, seed=2)
    labels = host(backend, phantom.labels)
    permeability = host(backend, phantom.properties["vessel_permeability"])
    assert np.all(permeability[labels == Label.BRAIN] == 0.0)
    # Viable rim: table 1 x spec 1 x BBB scale 0.3, times a mean-1 texture (~500 voxels).
    rim = permeability[labels == Label.TUMOUR_VIABLE]
    assert rim.size > 100
    assert rim.mean() == pytest.approx(0.3 * spec.tumours[0].permeability, rel=0.1)


def test_maps_are_within_physical_ranges(backend):
    phantom = build_phantom(load_scenario().phantom, backend, seed=7)
    labels = host(backend, phantom.labels)
    for name in PROPERTY_UNITS:
        values = host(backend, phantom.properties[name])
        assert values.dtype == np.float64 and values.shape == phantom.grid.shape, name
        assert np.all(np.isfinite(values)) and values.min() >= 0.0, name
        low, high = RANGES.get(name, (None, None))
        assert low is None or values.min() >= low, name
        assert high is None or values.max() <= high, name
    bvf = host(backend, phantom.properties["blood_volume_fraction"])
    assert np.all(bvf[labels == Label.BLOOD_POOL] == 1.0)
    receptor = host(backend, phantom.properties["receptor_density_nM"])
    assert np.all(receptor[~np.isin(labels, [int(v) for v in TUMOUR_LABELS])] == 0.0)


def test_tumour_spec_scales_its_zones(backend):
    """receptor_density_nM and permeability of the spec set the viable rim; hypoxic is 0.5x."""
    tumour = FLANK.model_copy(update={"receptor_density_nM": 120.0, "permeability": 2.0})
    spec = PhantomSpec(anatomy="mouse", voxel_size_mm=0.5, tumours=[tumour],
                       heterogeneity=HeterogeneitySpec(relative_sd=0.0))
    phantom = build_phantom(spec, backend, seed=1)
    labels = host(backend, phantom.labels)
    receptor = host(backend, phantom.properties["receptor_density_nM"])
    permeability = host(backend, phantom.properties["vessel_permeability"])
    np.testing.assert_allclose(receptor[labels == Label.TUMOUR_VIABLE], 120.0)
    np.testing.assert_allclose(receptor[labels == Label.TUMOUR_HYPOXIC], 60.0)
    np.testing.assert_allclose(permeability[labels == Label.TUMOUR_VIABLE], 2.0)
    np.testing.assert_allclose(permeability[labels == Label.TUMOUR_NECROTIC], 0.04)
    # Without texture every voxel holds its label's table value.
    np.testing.assert_array_equal(permeability[labels == Label.LIVER], 0.1)


# --- validation and transfers ----------------------------------------------------------------


def test_tumour_outside_field_of_view_is_one_line_value_error():
    outside = PhantomSpec(anatomy="mouse", tumours=[FLANK, TumourSpec(centre_mm=(13.0, 0.0, 0.0), radius_mm=4.5)])
    with pytest.raises(ValueError) as info:
        build_phantom(outside, get_backend("numpy"), seed=0)
    message = str(info.value)
    assert message.startswith("phantom.tumours[1].centre_mm: tumour (radius 4.5 mm)")
    assert "mouse field of view x in [-15, 15] mm" in message and "\n" not in message


def test_too_many_voxels_is_value_error():
    with pytest.raises(ValueError, match=r"^phantom\.voxel_size_mm: 0\.1 mm gives"):
        build_phantom(PhantomSpec(anatomy="torso", voxel_size_mm=0.1), get_backend("numpy"), seed=0)


def test_build_makes_no_host_transfers(backend):
    """Everything stays on the device: no counted download, upload or ndimage round trip."""
    backend.transfers.reset()
    build_phantom(COARSE["mouse"], backend, seed=4)
    stats = backend.transfers
    assert (stats.downloads, stats.uploads, stats.round_trips) == (0, 0, 0)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 33])
def test_device_frequencies_match_numpy_fftfreq(backend, n):
    # The kernel builds FFT frequencies itself (array_api_compat's fftfreq rejects GPU devices).
    import numpy as np

    from imagingsim.phantom.heterogeneity import _frequencies_per_mm

    full = backend.to_host(_frequencies_per_mm(backend, n, 0.4, half=False))
    half = backend.to_host(_frequencies_per_mm(backend, n, 0.4, half=True))
    np.testing.assert_array_equal(full, np.fft.fftfreq(n, d=0.4))
    np.testing.assert_array_equal(half, np.fft.rfftfreq(n, d=0.4))
