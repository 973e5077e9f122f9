"""Scenario validation: one-line errors naming the field, overrides, no tracebacks ever."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagingsim.pipeline import load_scenario, validate_scenario
from imagingsim.scenario import (
    ScenarioError,
    apply_overrides,
    builtin_names,
    parse_toml,
    read_scenario_toml,
)


def test_default_scenario_is_builtin_and_valid():
    assert "mouse_peg_liposome" in builtin_names()
    scenario = load_scenario()
    assert scenario.name == "mouse_peg_liposome"
    assert scenario.agents[0].labels[0].nuclide == "Zr89"


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_validates(name):
    load_scenario(name)


@pytest.mark.parametrize(
    ("override", "field", "hint"),
    [
        ("phantom.voxel_size_mm=9", "phantom.voxel_size_mm", "less than or equal to 5"),
        ("phantom.voxel_size_mm=0", "phantom.voxel_size_mm", "greater than or equal to 0.05"),
        ("phantom.anatomy='rat'", "phantom.anatomy", "'mouse', 'torso' or 'brain'"),
        ("phantom.colour=1", "phantom.colour", "unknown key"),
        ("agents[0].dose_mg_per_kg=-1", "agents[0].dose_mg_per_kg", "greater than 0"),
        ("agents[0].labels[0].nuclide='Xx99'", "agents[0].labels[0].nuclide", "'Zr89'"),
        ("agents[0].carrier='bogus'", "agents[0].carrier", "allowed: albumin_nanoparticle"),
        ("agents[0].carrier_overrides.washout_per_h=-1", "carrier_overrides.washout_per_h", "greater than or equal to 0"),
        ("schedule.times_h=[4, 1]", "schedule.times_h", "strictly increasing"),
        ("seed=-3", "seed", "greater than or equal to 0"),
        ("seed=nan", "seed", "valid integer"),
        ("phantom.tumours[0].necrotic_fraction=0.9", "phantom.tumours[0].necrotic_fraction", "less than or equal to 0.8"),
        ("modalities.enabled=['xray']", "modalities.enabled", "unknown modality"),
    ],
)
def test_bad_values_name_the_field_in_one_line(override, field, hint):
    with pytest.raises(ScenarioError) as info:
        load_scenario(None, [override])
    message = str(info.value)
    assert "\n" not in message
    assert field in message and hint in message


def test_override_changes_only_the_named_field():
    base = load_scenario()
    changed = load_scenario(None, ["phantom.voxel_size_mm=0.4", "agents[0].dose_mg_per_kg=10", "seed=5"])
    assert changed.phantom.voxel_size_mm == 0.4 and changed.agents[0].dose_mg_per_kg == 10 and changed.seed == 5
    assert changed.schedule == base.schedule and changed.phantom.tumours == base.phantom.tumours


def test_override_does_not_mutate_its_input():
    raw = read_scenario_toml(None)
    apply_overrides(raw, ["phantom.voxel_size_mm=0.3"])
    assert raw["phantom"]["voxel_size_mm"] == 0.5


@pytest.mark.parametrize("bad", ["novalue", "a..b=1", "agents[9].name='x'", "agents[0]x=1", "name.sub=1"])
def test_malformed_override_is_a_scenario_error(bad):
    with pytest.raises(ScenarioError):
        load_scenario(None, [bad])


def test_missing_file_and_unknown_builtin():
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario("/nonexistent/x.toml")
    with pytest.raises(ScenarioError, match="no built-in scenario"):
        load_scenario("no_such_scenario")


# --- property tests: random input never escapes as anything but ScenarioError ----------

_FIELDS = [
    "name", "seed", "subject_id", "description", "phantom", "phantom.anatomy", "phantom.voxel_size_mm",
    "phantom.heterogeneity.relative_sd", "phantom.heterogeneity.correlation_length_mm",
    "phantom.tumours", "phantom.tumours[0].radius_mm", "phantom.tumours[0].centre_mm",
    "agents", "agents[0]", "agents[0].name", "agents[0].carrier", "agents[0].labels",
    "agents[0].labels[0]", "agents[0].labels[0].kind", "agents[0].payload", "agents[0].payload.release.trigger",
    "agents[0].carrier_overrides", "agents[0].carrier_overrides.abc_factor", "agents[0].targeting",
    "schedule.times_h", "modalities.enabled", "unknown.deep.key",
]
_VALUES = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: repr(v).replace("inf", "inf").replace("nan", "nan")),
    st.text(string.printable, max_size=12),
    st.sampled_from(["true", "[]", "{}", "[1, 2]", "{a = 1}", "'mouse'", "[[1]]", "1e400", "-0.0", '"\\u0000"']),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_FIELDS), _VALUES), max_size=4))
def test_random_overrides_never_raise_anything_else(pairs):
    try:
        load_scenario(None, [f"{k}={v}" for k, v in pairs])
    except ScenarioError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_toml_text_never_raises_anything_else(text):
    try:
        validate_scenario(parse_toml(text))
    except ScenarioError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
        lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.sampled_from(_FIELDS[:12]), children, max_size=3)),
        max_leaves=12,
    )
)
def test_random_tables_never_raise_anything_else(data):
    try:
        validate_scenario(data)
    except ScenarioError as exc:
        assert "\n" not in str(exc)


def test_toml_dates_and_times_are_scenario_errors(tmp_path):
    path = tmp_path / "dated.toml"
    base = (Path(__file__).resolve().parents[1] / "phantoms" / "mouse_peg_liposome.toml").read_text()
    path.write_text(base.replace('name = "mouse_peg_liposome"', "name = 1979-05-27T07:32:00Z\nwhen = 07:32:00"))
    with pytest.raises(ScenarioError, match="name"):
        load_scenario(path, ["seed=3"])
