"""Delivery systems beyond EPR and pH / hypoxia release: heat, light and enzyme triggers,
magnetic targeting, biomimetic and macrophage-seeking carriers, and the new drugs.

Each test checks the physics or pharmacology against an analytic limit or a controlled
comparison (the same subject with and without the field), on coarse voxels so the whole
file runs in well under a minute.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from imagingsim.backend import get_backend
from imagingsim.data.carriers import CARRIERS
from imagingsim.data.drugs import DRUGS
from imagingsim.delivery import kinetics, simulate_delivery
from imagingsim.delivery.fields import (
    BODY_TEMPERATURE_C,
    heat_activation,
    heating_temperature_C,
    magnet_field_T,
    magnet_force_fraction,
    magnet_radius_mm,
)
from imagingsim.delivery.light import light_fluence_J_per_cm2
from imagingsim.delivery.release import ENZYME_HALF_ACTIVITY_NM, trigger_map
from imagingsim.delivery.summary import tumour_lines
from imagingsim.grid import ImageGrid
from imagingsim.phantom.model import PROPERTY_UNITS, Label, Phantom
from imagingsim.phantom.properties import tissue_table
from imagingsim.physics.optics import diffusion, plane_fluence, refractive_index, spectral_ratios, specular_reflection
from imagingsim.pipeline import load_scenario, simulate, validate_scenario
from imagingsim.scenario import (
    AgentSpec,
    HeatSpec,
    LightSpec,
    MagnetSpec,
    PayloadSpec,
    PhantomSpec,
    ReleaseSpec,
    ScenarioError,
)

COARSE_MOUSE = "phantom.voxel_size_mm=1.0"
NO_MODALITIES = "modalities.enabled=[]"
NEW_CARRIERS = (
    "thermosensitive_liposome",
    "rbc_membrane_nanoparticle",
    "albumin_nanoparticle",
    "hdl_nanoparticle",
    "antibody_igg",
)
NEW_DRUGS = ("paclitaxel", "methotrexate", "oxaliplatin")


def _np(array) -> np.ndarray:
    return np.asarray(array)


def _ledger_errors(item) -> tuple[float, float]:
    """Largest relative misclosure of the carrier and drug ledgers after injection."""
    worst_carrier = max(abs(t / item.injected_mass_ug - 1.0) for t in item.ledger_total_ug())
    worst_drug = 0.0
    if item.drug_ledger_ug is not None:
        worst_drug = max(abs(t / item.injected_drug_ug - 1.0) for t in item.drug_ledger_total_ug())
    return worst_carrier, worst_drug


def _released_extravascular(item, phantom) -> np.ndarray:
    """Released drug outside the blood, per mL: free minus the voxel's share of blood free drug, plus bound."""
    vb = _np(phantom.properties["blood_volume_fraction"])[..., None]
    blood_free = np.asarray(item.drug_ledger_ug["free_blood"]) / item.blood_volume_ml
    return _np(item.free_drug_ug_per_ml) - vb * blood_free + _np(item.bound_drug_ug_per_ml)


class _StepCounter:
    """Spy on kinetics.solver_steps: the number of steps each agent was solved with."""

    def __init__(self, monkeypatch):
        self.counts: list[int] = []
        original = kinetics.solver_steps

        def counting(*args, **kwargs):
            steps = original(*args, **kwargs)
            self.counts.append(len(steps))
            return steps

        monkeypatch.setattr(kinetics, "solver_steps", counting)


# --- heat --------------------------------------------------------------------------------------


def test_heating_field_is_the_gaussian_focus_and_switches_on_above_the_transition(numpy_backend):
    grid = ImageGrid((41, 1, 1), (0.5, 0.5, 0.5), origin_mm=(-10.0, 0.0, 0.0))
    heat = HeatSpec(centre_mm=(0.0, 0.0, 0.0), focal_fwhm_mm=6.0, temperature_rise_K=6.0, on_h=0.0, off_h=1.0)
    t = _np(heating_temperature_C(grid, heat, numpy_backend))[:, 0, 0]
    x = -10.0 + 0.5 * np.arange(41)
    assert t[20] == pytest.approx(BODY_TEMPERATURE_C + 6.0, abs=1e-12)  # the focus
    assert t[x == 3.0][0] == pytest.approx(BODY_TEMPERATURE_C + 3.0, abs=1e-12)  # half the rise at FWHM / 2
    a = _np(heat_activation(t, heat, np))
    low, high = heat.transition_temperature_C - 0.5, heat.transition_temperature_C + 0.5
    assert np.all(a[t <= low] == 0.0) and np.all(a[t >= high] == 1.0)
    inside = (t > low) & (t < high)
    np.testing.assert_allclose(a[inside], t[inside] - low, rtol=1e-12)  # linear across the 1 K width


def _hifu(*overrides):
    return load_scenario("mouse_thermosensitive_hifu", [COARSE_MOUSE, NO_MODALITIES, *overrides])


def test_heated_tumour_gets_the_drug_and_nothing_else_does(monkeypatch):
    steps = _StepCounter(monkeypatch)
    heated = simulate(_hifu(), backend="numpy")
    steps_heated = steps.counts[-1]
    # The same subject without the heating field: same carrier, same baseline leak.
    control = simulate(
        _hifu('agents[0].payload.release={baseline_rate_per_h = 0.2, trigger = "none"}'), backend="numpy"
    )
    item, reference = heated.delivery.agents[0], control.delivery.agents[0]
    tumour = _np(heated.phantom.tumour_index)
    free = _np(item.free_drug_ug_per_ml)
    for k, t in enumerate(item.times_h):
        ratio = free[..., k][tumour == 1].mean() / free[..., k][tumour == 2].mean()
        assert ratio > 3.0, (t, ratio)  # during (0.25, 0.5 h) and after (2, 24 h) heating
    # Outside the voxels the field switches on, no release above what the unheated subject
    # has there (the drug released in the heated vessels does not re-enter other tissue).
    rate = _np(item.field_maps["HeatReleaseRate"].values)
    outside = (rate == 0.0) & (_np(heated.phantom.labels) != Label.AIR)
    assert outside.sum() > 0.9 * (rate >= 0.0).sum() * 0.1
    released = _released_extravascular(item, heated.phantom)[outside]
    baseline = _released_extravascular(reference, control.phantom)[outside]
    assert np.all(released <= 1.05 * baseline + 1e-12 * baseline.max())
    # Mass balance and a bounded number of steps with the window's two extra landings.
    assert max(_ledger_errors(item)) < 1e-9
    assert steps_heated < 400, steps_heated
    # The CLI summary shows it per tumour, with the field in each.
    lines = tumour_lines(heated.delivery, heated.phantom, heated.backend)
    free_line = next(line for line in lines if "free drug ug/mL per tumour" in line)
    assert "heated [" in free_line and "control [" in free_line
    temperature = next(line for line in lines if "HeatTemperature (degC)" in line)
    heated_c, control_c = (float(part.split()[-1]) for part in temperature.split(": ")[-1].split(", "))
    assert heated_c > 41.0 and control_c == pytest.approx(BODY_TEMPERATURE_C, abs=0.2)
    assert tumour_lines(control.delivery, control.phantom, control.backend)  # two tumours: listed too


def test_nothing_changes_before_the_heating_window():
    # Heating from 1 h on: at 0.5 h the subject is the unheated one. The off-window network
    # has the unheated rates; the steps differ (the heated agent's caps and in-step
    # pass-through are those of its faster on-window network), so the two agree to the
    # scheme's accuracy (1e-3 here, see kinetics), not to rounding; heat in the window
    # would make the heated tumour's free drug ~100 times higher.
    late = _hifu(
        "schedule.times_h=[0.5, 2.0]",
        "agents[0].payload.release.heat.on_h=1.0",
        "agents[0].payload.release.heat.off_h=1.5",
    )
    none = _hifu("schedule.times_h=[0.5, 2.0]", 'agents[0].payload.release={baseline_rate_per_h = 0.2, trigger = "none"}')
    a = simulate(late, backend="numpy").delivery.agents[0]
    b = simulate(none, backend="numpy").delivery.agents[0]
    for key in ("carrier_ug_per_ml", "free_drug_ug_per_ml", "encapsulated_drug_ug_per_ml"):
        x, y = _np(getattr(a, key))[..., 0], _np(getattr(b, key))[..., 0]
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-12 * np.abs(y).max(), err_msg=key)
    tumour = _np(simulate(late, backend="numpy").phantom.tumour_index) == 1
    assert _np(a.free_drug_ug_per_ml)[..., 1][tumour].mean() > 3.0 * _np(b.free_drug_ug_per_ml)[..., 1][tumour].mean()


# --- light -------------------------------------------------------------------------------------


def _slab_phantom(backend, shape=(3, 3, 40), voxel_mm=0.5) -> Phantom:
    """A soft-tissue slab (the tissue table's soft-tissue properties) under air on top (+z)."""
    labels = np.full(shape, Label.SOFT_TISSUE, dtype=np.uint8)
    labels[:, :, -4:] = Label.AIR
    row = tissue_table()[Label.SOFT_TISSUE]
    props = {key: np.where(labels == Label.AIR, 0.0, float(getattr(row, key))) for key in PROPERTY_UNITS}
    props["density_g_per_ml"] = np.where(labels == Label.AIR, 0.0012, row.density_g_per_ml)
    return Phantom(
        spec=PhantomSpec(),
        grid=ImageGrid(shape, (voxel_mm,) * 3),
        labels=backend.from_host(labels),
        tumour_index=backend.from_host(np.zeros(shape, np.uint8)),
        properties={k: backend.from_host(np.asarray(v, dtype=np.float64)) for k, v in props.items()},
        materials={},
        species="mouse",
        body_mass_g=25.0,
        blood_volume_ml=1.8,
        seed=0,
        backend=backend,
    )


def _light(**kwargs) -> LightSpec:
    settings = {"centre_mm": (0.5, 0.5, 0.0), "direction": "-z", "beam_radius_mm": 5.0, "irradiance_mW_per_cm2": 100.0,
                "on_h": 2.0, "off_h": 2.5, "release_fluence_J_per_cm2": 1e4}
    settings.update(kwargs)
    return LightSpec(**settings)


@pytest.mark.parametrize("wavelength_nm", [810.0, 1064.0])
def test_light_fluence_is_the_broad_beam_diffusion_solution(backend, wavelength_nm):
    phantom = _slab_phantom(backend)
    light = _light(wavelength_nm=wavelength_nm)
    fluence = backend.to_host(light_fluence_J_per_cm2(phantom, light, backend))[1, 1, ::-1]  # from the skin down
    row = tissue_table()[Label.SOFT_TISSUE]
    ratio_a, ratio_s = spectral_ratios(wavelength_nm)["soft_tissue"]
    m = diffusion(row.mu_a_810nm_per_mm * ratio_a, row.mu_s_prime_810nm_per_mm * ratio_s, refractive_index())
    depth = 0.5 * (np.arange(36) + 0.5)  # voxel centres below the skin, mm
    transmitted = 100.0 / 1e3 * 1800.0 * (1.0 - specular_reflection(refractive_index()))  # J/cm^2
    expected = transmitted * np.array([plane_fluence(d, m) for d in depth])
    np.testing.assert_allclose(fluence[4:], expected, rtol=1e-12)
    assert np.all(fluence[:4] == 0.0)  # air above the skin
    # Outside the spot nothing.
    narrow = backend.to_host(light_fluence_J_per_cm2(phantom, _light(beam_radius_mm=0.4, centre_mm=(0.0, 0.0, 0.0)), backend))
    assert narrow[0, 0, 0] > 0.0 and narrow[2, 2, 0] == 0.0


def test_light_release_falls_as_exp_minus_mu_eff_depth(numpy_backend):
    phantom = _slab_phantom(numpy_backend)
    light = _light()
    lit = AgentSpec(name="a", carrier="peg_liposome", dose_mg_per_kg=20.0, payload=PayloadSpec(
        release=ReleaseSpec(baseline_rate_per_h=0.005, trigger="light", light=light)))
    dark = AgentSpec(name="a", carrier="peg_liposome", dose_mg_per_kg=20.0, payload=PayloadSpec(
        release=ReleaseSpec(baseline_rate_per_h=0.005)))
    times = [2.0, 2.5]
    a = simulate_delivery(phantom, [lit], times, numpy_backend).agents[0]
    b = simulate_delivery(phantom, [dark], times, numpy_backend).agents[0]
    extra = (_released_extravascular(a, phantom) - _released_extravascular(b, phantom))[1, 1, ::-1, 1][4:]
    encapsulated = _np(b.encapsulated_drug_ug_per_ml)[1, 1, ::-1, 0][4:]
    fraction = extra / encapsulated  # released by the light, per drug present
    row = tissue_table()[Label.SOFT_TISSUE]
    m = diffusion(row.mu_a_810nm_per_mm, row.mu_s_prime_810nm_per_mm, refractive_index())
    depth = 0.5 * (np.arange(36) + 0.5)
    deep = depth > 3.0 * m.z0  # diffusion regime, the source's near field left out
    assert fraction[0] < 0.05  # far from saturation: linear in the fluence
    expected = fraction[deep][0] * np.exp(-m.mu_eff * (depth[deep] - depth[deep][0]))
    keep = expected > 1e-6 * fraction.max()  # above rounding
    np.testing.assert_allclose(fraction[deep][keep], expected[keep], rtol=0.05)
    assert max(_ledger_errors(a)) < 1e-9


def test_light_threshold_and_window_validation(numpy_backend):
    phantom = _slab_phantom(numpy_backend)
    light = _light(threshold_fluence_J_per_cm2=20.0)
    fluence = _np(light_fluence_J_per_cm2(phantom, light, numpy_backend))
    item = simulate_delivery(phantom, [AgentSpec(name="a", carrier="peg_liposome", dose_mg_per_kg=20.0, payload=PayloadSpec(
        release=ReleaseSpec(trigger="light", light=light)))], [2.5], numpy_backend).agents[0]
    rate = _np(item.field_maps["LightReleaseRate"].values)
    assert np.all(rate[fluence < 20.0] == 0.0) and np.all(rate[fluence >= 20.0] > 0.0)
    with pytest.raises(ValueError, match="off_h must be after on_h"):
        _light(on_h=2.0, off_h=1.0)
    with pytest.raises(ValueError, match="triggered_rate_per_h: not used by a light trigger"):
        ReleaseSpec(trigger="light", light=light, triggered_rate_per_h=1.0)
    with pytest.raises(ValueError, match=r"\[heat\] table is required"):
        ReleaseSpec(trigger="heat")


# --- enzyme ------------------------------------------------------------------------------------


def test_enzyme_trigger_follows_the_protease_map():
    scenario = load_scenario("mouse_peg_liposome", [
        COARSE_MOUSE, NO_MODALITIES, "schedule.times_h=[24.0]", "phantom.tumours[0].protease_activity_nM=20.0",
        'agents[0].payload.release={baseline_rate_per_h = 0.005, trigger = "enzyme", triggered_rate_per_h = 0.2}',
    ])
    subject = simulate(scenario, backend="numpy")
    protease = _np(subject.phantom.properties["protease_activity_nM"])
    labels = _np(subject.phantom.labels)
    assert protease[labels == Label.TUMOUR_VIABLE].mean() > 10.0 * protease[labels == Label.SOFT_TISSUE].mean()
    release = scenario.agents[0].payload.release
    on = trigger_map(release, None, None, np, protease_nM=np.array([0.0, ENZYME_HALF_ACTIVITY_NM, 1e9]))
    np.testing.assert_allclose(on, [0.0, 0.5, 1.0], atol=1e-9)
    item = subject.delivery.agents[0]
    assert max(_ledger_errors(item)) < 1e-9
    # Released per encapsulated drug is higher where the protease is.
    per = _released_extravascular(item, subject.phantom)[..., 0] / np.maximum(_np(item.encapsulated_drug_ug_per_ml)[..., 0], 1e-30)
    assert per[labels == Label.TUMOUR_VIABLE].mean() > 2.0 * per[labels == Label.SOFT_TISSUE].mean()
    # Without the map: one line naming the setting.
    bare = load_scenario("mouse_peg_liposome", [
        COARSE_MOUSE, NO_MODALITIES, "schedule.times_h=[1.0]",
        'agents[0].payload.release={trigger = "enzyme", triggered_rate_per_h = 0.2}',
    ])
    with pytest.raises(ValueError, match="protease_activity_nM"):
        simulate(bare, backend="numpy")


# --- magnet ------------------------------------------------------------------------------------

# A small NdFeB magnet on the right flank, its surface at the tumour's edge (tumour centre x = 6
# mm, radius 4.5 mm): 0.4 T and 240 T/m at the surface give r0 = 5 mm, centre at x = 15.5 mm.
MAGNET = ("agents[0].magnet={centre_mm = [15.5, -2.0, -14.0], surface_field_T = 0.4, "
          "surface_gradient_T_per_m = 240.0, enhancement_at_surface = 10.0}")


SPION_AGENT = ('agents=[{name = "spion", carrier = "spion", dose_mg_per_kg = 20.0, '
               'labels = [{kind = "iron_oxide", iron_mass_fraction = 0.5}]}]')


def _spion(*overrides):
    return load_scenario("mouse_targeted_spion", [
        COARSE_MOUSE, NO_MODALITIES, "schedule.times_h=[1.0, 4.0, 24.0]", SPION_AGENT, *overrides,
    ])


def test_dipole_field_and_force_fall_as_the_dipole_law(numpy_backend):
    magnet = MagnetSpec(centre_mm=(0.0, 0.0, 0.0), surface_field_T=0.5, surface_gradient_T_per_m=100.0)
    r0 = magnet_radius_mm(magnet)
    assert r0 == pytest.approx(15.0)  # 3 B0 / G
    grid = ImageGrid((121, 1, 1), (0.5, 0.5, 0.5), origin_mm=(0.0, 0.0, 0.0))
    x = 0.5 * np.arange(121)
    field = _np(magnet_field_T(grid, magnet, numpy_backend))[:, 0, 0]
    force = _np(magnet_force_fraction(grid, magnet, numpy_backend))[:, 0, 0]
    outside = x >= r0
    np.testing.assert_allclose(field[outside], 0.5 * (r0 / x[outside]) ** 3, rtol=1e-12)
    np.testing.assert_allclose(force[outside], (r0 / x[outside]) ** 7, rtol=1e-12)
    # The surface gradient is the configured one: dB/dr = 3 B0 / r0.
    assert 3.0 * 0.5 / (r0 * 1e-3) == pytest.approx(100.0)
    assert np.all(field[~outside] == 0.5) and np.all(force[~outside] == 1.0)


def test_magnet_pulls_carrier_into_the_tumour_next_to_it_only():
    pulled = simulate(_spion(MAGNET), backend="numpy")
    free = simulate(_spion(), backend="numpy")
    a, b = pulled.delivery.agents[0], free.delivery.agents[0]
    tumour = _np(pulled.phantom.tumour_index) > 0
    for k in range(len(a.times_h)):
        ratio = _np(a.carrier_ug_per_ml)[..., k][tumour].mean() / _np(b.carrier_ug_per_ml)[..., k][tumour].mean()
        if a.times_h[k] == 24.0:
            assert ratio > 1.5, ratio
    spec = pulled.scenario.agents[0].magnet
    x, y, z = (np.asarray(v) for v in pulled.phantom.grid.axes_mm(get_backend("numpy")))
    distance = np.sqrt((x - spec.centre_mm[0]) ** 2 + (y - spec.centre_mm[1]) ** 2 + (z - spec.centre_mm[2]) ** 2)
    far = (distance - magnet_radius_mm(spec) > 20.0) & (_np(pulled.phantom.labels) != Label.AIR)
    assert far.sum() > 100
    # There the pull itself is negligible, (5 / 25)^7 x 10 ~ 1e-4; what changes is the blood:
    # the carrier the magnet holds near it is missing from the circulation.
    force = _np(pulled.delivery.agents[0].field_maps["MagneticForce"].values)
    assert spec.enhancement_at_surface * force[far].max() < 2e-4
    for key in ("carrier_ug_per_ml", "bound_carrier_ug_per_ml"):
        x1, x0 = _np(getattr(a, key))[far], _np(getattr(b, key))[far]
        change = np.abs(x1 - x0) / np.maximum(x0, 1e-12 * x0.max())
        assert change.max() < 0.05, (key, change.max())
    assert max(_ledger_errors(a)) < 1e-9
    assert set(a.field_maps) == {"MagnetField", "MagneticForce"}


def test_magnet_needs_a_magnetic_carrier():
    with pytest.raises(ScenarioError, match="iron_oxide label"):
        load_scenario("mouse_peg_liposome", [
            "agents[0].labels=[]",
            "agents[0].magnet={centre_mm = [0.0, 0.0, 0.0], surface_field_T = 0.5, surface_gradient_T_per_m = 100.0}",
        ])


# --- biomimetic coating, macrophage-seeking HDL ------------------------------------------------


def _mouse_agent(agent: str, times="[0.5, 1.0, 2.0, 4.0, 8.0, 24.0]", *overrides):
    return load_scenario("mouse_peg_liposome", [
        COARSE_MOUSE, NO_MODALITIES, f"schedule.times_h={times}", f"agents=[{agent}]", *overrides,
    ])


def _half_life_h(item) -> float:
    """When the blood curve first falls to half its initial value (log-linear between points), h."""
    t, c = np.asarray(item.blood_curve_h), np.asarray(item.blood_curve_ug_per_ml)
    k = int(np.argmax(c <= 0.5 * c[0]))
    return float(np.exp(np.interp(np.log(0.5 * c[0]), np.log(c[[k, k - 1]]), np.log(t[[k, k - 1]]))))


def test_red_cell_membrane_coating_circulates_longer_and_spares_the_liver():
    coated = simulate(_mouse_agent('{name = "rbc", carrier = "rbc_membrane_nanoparticle", dose_mg_per_kg = 20.0}',
                                   "[1.0, 24.0, 72.0]"), backend="numpy").delivery.agents[0]
    bare = simulate(_mouse_agent('{name = "plga", carrier = "plga_nanoparticle", dose_mg_per_kg = 20.0, '
                                 'carrier_overrides = {hydrodynamic_diameter_nm = 90.0}}', "[1.0, 24.0, 72.0]"),
                    backend="numpy").delivery.agents[0]
    assert coated.carrier.hydrodynamic_diameter_nm == bare.carrier.hydrodynamic_diameter_nm == 90.0
    assert _half_life_h(coated) > 10.0 * _half_life_h(bare)
    assert _half_life_h(coated) == pytest.approx(24.0, rel=0.05)  # the configured observed half-life
    for k in range(3):
        assert coated.percent_id_per_g("liver")[k] < bare.percent_id_per_g("liver")[k]


def test_hdl_signal_in_the_tumour_follows_the_macrophages():
    # At 72 h the unbound HDL (which follows the vessels) has washed out; what stays is the
    # HDL the macrophages took up, in proportion to their local density.
    scenario = _mouse_agent('{name = "hdl", carrier = "hdl_nanoparticle", dose_mg_per_kg = 10.0, '
                            'labels = [{kind = "radionuclide", nuclide = "Zr89", specific_activity_MBq_per_mg = 15.0}]}',
                            "[72.0]", "phantom.tumours[0].macrophage_fraction=0.2")
    subject = simulate(scenario, backend="numpy")
    item = subject.delivery.agents[0]
    tumour = _np(subject.phantom.tumour_index) > 0
    macrophages = _np(subject.phantom.properties["macrophage_fraction"])[tumour]
    signal = _np(item.carrier_ug_per_ml)[..., 0][tumour]
    r = np.corrcoef(signal, macrophages)[0, 1]
    assert r > 0.8, r
    assert max(_ledger_errors(item)) < 1e-9
    # Without the map: one line naming the phantom setting.
    bare = _mouse_agent('{name = "hdl", carrier = "hdl_nanoparticle", dose_mg_per_kg = 10.0}', "[24.0]")
    with pytest.raises(ValueError, match="macrophage_fraction"):
        simulate(bare, backend="numpy")


# --- every new carrier and drug ------------------------------------------------------------


def _small_phantom(backend, *, macrophages: bool) -> Phantom:
    """8 x 8 x 8 voxels of 2 mm: muscle with liver, spleen, kidney, bone and a three-zone tumour."""
    lab = np.full((8, 8, 8), Label.SOFT_TISSUE, np.uint8)
    lab[0] = Label.AIR
    lab[1, 1:3, 1:3] = Label.LIVER
    lab[1, 4, 4] = Label.SPLEEN
    lab[1, 6, 6] = Label.KIDNEY
    lab[6, 6, 1] = Label.BONE
    lab[3:7, 3:7, 3:7] = Label.TUMOUR_VIABLE
    lab[4:6, 4:6, 4:6] = Label.TUMOUR_HYPOXIC
    lab[4, 4, 4] = Label.TUMOUR_NECROTIC
    table = tissue_table()
    props = {key: np.zeros(lab.shape) for key in PROPERTY_UNITS}
    for label in Label:
        for key in PROPERTY_UNITS:
            props[key][lab == label] = float(getattr(table[label], key))
    if macrophages:
        props["macrophage_fraction"] = np.where(lab >= Label.TUMOUR_VIABLE, 0.2, 0.02) * (lab != Label.AIR)
    return Phantom(
        spec=PhantomSpec(), grid=ImageGrid(lab.shape, (2.0,) * 3), labels=backend.from_host(lab),
        tumour_index=backend.from_host((lab >= Label.TUMOUR_VIABLE).astype(np.uint8)),
        properties={k: backend.from_host(v) for k, v in props.items()}, materials={}, species="mouse",
        body_mass_g=25.0, blood_volume_ml=1.8, seed=0, backend=backend,
    )


@pytest.mark.parametrize("carrier", (*NEW_CARRIERS, "dendrimer"))  # dendrimer: PAMAM-G5 methotrexate
def test_new_carriers_balance_with_a_bounded_step_count(backend, carrier, monkeypatch):
    steps = _StepCounter(monkeypatch)
    phantom = _small_phantom(backend, macrophages=True)
    agents = [AgentSpec(name=f"d{n}", carrier=carrier, dose_mg_per_kg=10.0,
                        payload=PayloadSpec(drug=drug, loading_mg_per_mg=0.1, release=ReleaseSpec(baseline_rate_per_h=0.05)))
              for n, drug in enumerate(NEW_DRUGS)]
    result = simulate_delivery(phantom, agents, [0.5, 4.0, 24.0, 168.0], backend)
    for item in result.agents:
        carrier_error, drug_error = _ledger_errors(item)
        assert carrier_error < 1e-9 and drug_error < 1e-9
        for values in list(item.ledger_ug.values()) + list(item.drug_ledger_ug.values()):
            assert min(values) >= 0.0
    assert max(steps.counts) < 2000, steps.counts


def test_new_table_entries_have_sources_and_units():
    for name in NEW_CARRIERS:
        assert name in CARRIERS
    for name in NEW_DRUGS:
        assert DRUGS[name].blood_half_life_h > 0.0
    assert CARRIERS["hdl_nanoparticle"].cell_uptake_map == "macrophage"
    assert CARRIERS["rbc_membrane_nanoparticle"].blood_half_life_h.mouse > CARRIERS["plga_nanoparticle"].blood_half_life_h.mouse


# --- schema: new fields are off by default and absent from old dumps ---------------------------


def test_unset_new_fields_are_left_out_of_the_dump():
    dump = load_scenario("mouse_peg_liposome").model_dump(mode="json")
    assert "magnet" not in dump["agents"][0]
    assert not {"heat", "light", "enzyme_half_activity_nM"} & set(dump["agents"][0]["payload"]["release"])
    assert not {"macrophage_fraction", "protease_activity_nM"} & set(dump["phantom"]["tumours"][0])
    hifu = load_scenario("mouse_thermosensitive_hifu")
    again = validate_scenario(hifu.model_dump(mode="json"))
    assert again == hifu and "heat" in hifu.model_dump(mode="json")["agents"][0]["payload"]["release"]


def test_nirf_uses_the_shared_diffusion_theory():
    from imagingsim.modalities.nirf import optics as nirf_optics
    from imagingsim.physics import optics

    assert nirf_optics.plane_fluence is optics.plane_fluence and nirf_optics.diffusion is optics.diffusion
    assert math.isclose(specular_reflection(1.4), (0.4 / 2.4) ** 2)


# --- the phantom's optional stromal maps, and the fields written as truth -----------------------


def test_stromal_maps_only_when_asked_and_zoned_by_the_tumour(numpy_backend):
    from imagingsim.phantom import build_phantom
    from imagingsim.phantom.stroma import MACROPHAGE_ZONE_FACTOR, NORMAL_PROTEASE_NM, PROTEASE_ZONE_FACTOR

    spec = load_scenario("mouse_peg_liposome", [COARSE_MOUSE]).phantom
    assert not {"macrophage_fraction", "protease_activity_nM"} & set(build_phantom(spec, numpy_backend, 1).properties)
    flat = spec.model_copy(update={
        "heterogeneity": spec.heterogeneity.model_copy(update={"relative_sd": 0.0}),
        "tumours": [spec.tumours[0].model_copy(update={"macrophage_fraction": 0.2, "protease_activity_nM": 20.0})],
    })
    phantom = build_phantom(flat, numpy_backend, 1)
    labels = _np(phantom.labels)
    macrophages, protease = (_np(phantom.properties[k]) for k in ("macrophage_fraction", "protease_activity_nM"))
    for label in (Label.TUMOUR_VIABLE, Label.TUMOUR_HYPOXIC, Label.TUMOUR_NECROTIC):
        np.testing.assert_allclose(macrophages[labels == label], 0.2 * MACROPHAGE_ZONE_FACTOR[label], rtol=1e-12)
        np.testing.assert_allclose(protease[labels == label], 20.0 * PROTEASE_ZONE_FACTOR[label], rtol=1e-12)
    assert np.all(protease[labels == Label.SOFT_TISSUE] == NORMAL_PROTEASE_NM) and np.all(protease[labels == 0] == 0.0)
    textured = build_phantom(spec.model_copy(update={"tumours": flat.tumours}), numpy_backend, 1)
    again = build_phantom(spec.model_copy(update={"tumours": flat.tumours}), numpy_backend, 1)
    np.testing.assert_array_equal(_np(textured.properties["macrophage_fraction"]), _np(again.properties["macrophage_fraction"]))
    # The texture draws from its own stream: every other map is the one without stromal maps.
    plain = build_phantom(spec, numpy_backend, 1)
    for key in plain.properties:
        np.testing.assert_array_equal(_np(textured.properties[key]), _np(plain.properties[key]), err_msg=key)


def test_field_maps_are_written_as_documented_truth(tmp_path):
    from imagingsim.dataset.layout import truth_files
    from imagingsim.pipeline import write_subject

    scenario = load_scenario("mouse_thermosensitive_hifu", ["phantom.voxel_size_mm=2.0", NO_MODALITIES,
                                                            "schedule.times_h=[0.5]"])
    write_subject(simulate(scenario, backend="numpy"), tmp_path / "ds")
    truth = tmp_path / "ds" / "derivatives" / "truth"
    anat = truth / "sub-01" / "anat"
    for field, units in (("HeatTemperature", "degC"), ("HeatReleaseRate", "1/h")):
        sidecar = (anat / f"sub-01_desc-thermodox{field}_map.json").read_text()
        assert f'"Units": "{units}"' in sidecar and (anat / f"sub-01_desc-thermodox{field}_map.nii.gz").is_file()
        assert f"desc-thermodox{field}: agent thermodox" in (truth / "README").read_text()
    for path in truth.glob("sub-*/**/*"):
        if path.is_file():
            rel = path.relative_to(truth).as_posix()
            assert sum(bool(t.regex().fullmatch(rel)) for t in truth_files()) == 1, rel
