"""Hypothesis over scenario input: whatever the text, a scenario or one short line, never a traceback.

Inputs: TOML text with deep nesting, control characters, huge strings and random lines; the
default scenario with any field replaced by a value of another type; random ``--set``
strings. The library must return a Scenario or raise ScenarioError whose message is one
line under 300 characters; the CLI must exit 2 with exactly that kind of line.
"""

from __future__ import annotations

import datetime
import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagingsim.cli import main
from imagingsim.pipeline import validate_scenario
from imagingsim.scenario import ScenarioError, apply_overrides, parse_toml, read_scenario_toml

BASE_TEXT = (read_scenario_toml.__globals__["resources"].files("imagingsim.phantoms")
             .joinpath("mouse_peg_liposome.toml").read_text(encoding="utf-8"))
BASE = tomllib.loads(BASE_TEXT)

CONTROL = st.sampled_from(["\n", "\r", "\t", "\x00", "\x1b[31m", "\x7f", "\x85", "\u2028"])
TEXT = st.one_of(
    st.text(max_size=40),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=10), CONTROL, st.text(max_size=10)),
    st.builds(lambda n: "x" * n, st.integers(300, 3_000_000)),
)
SCALAR = st.one_of(
    st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True), TEXT,
    st.dates(), st.datetimes(), st.times(),
)


def nested(depth: int, leaf="1") -> str:
    return "[" * depth + leaf + "]" * depth


WEIRD_VALUE = st.one_of(
    st.builds(nested, st.integers(1, 3000)),
    st.builds(lambda d: "{a=" * d + "1" + "}" * d, st.integers(1, 3000)),
    st.builds(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"', TEXT),
    st.sampled_from(["true", "nan", "-inf", "1979-05-27", "07:32:00", "0x10", "1e999", "[]", "{}", "'''x'''"]),
)
TOML_TEXT = st.one_of(
    st.builds(lambda key, value: f"{BASE_TEXT}\n{key} = {value}\n", st.sampled_from(["extra", "seed", "description"]),
              WEIRD_VALUE),
    st.builds(lambda line, cut: BASE_TEXT[:cut] + line + BASE_TEXT[cut:], st.text(max_size=60),
              st.integers(0, len(BASE_TEXT))),
    st.text(max_size=300),
)


def paths(table, prefix=()):
    """Every (path, value) of a raw scenario table, lists included."""
    for key, value in table.items() if isinstance(table, dict) else enumerate(table):
        yield (*prefix, key), value
        if isinstance(value, (dict, list)):
            yield from paths(value, (*prefix, key))


ALL_PATHS = [p for p, _ in paths(BASE)]


def replaced(path, value):
    data = tomllib.loads(BASE_TEXT)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def assert_one_short_line(message: str) -> None:
    assert "\n" not in message and "\r" not in message, message[:300]
    assert len(message) < 300, message[:300]


def outcome(func, *args):
    try:
        func(*args)
    except ScenarioError as exc:
        assert_one_short_line(str(exc))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TOML_TEXT)
def test_any_toml_text_gives_a_scenario_or_one_short_line(text):
    outcome(lambda t: validate_scenario(parse_toml(t)), text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ALL_PATHS), st.one_of(SCALAR, st.lists(SCALAR, max_size=3),
                                              st.dictionaries(st.text(max_size=5), SCALAR, max_size=2)))
def test_any_field_of_any_type_gives_a_scenario_or_one_short_line(path, value):
    outcome(validate_scenario, replaced(path, value))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["seed", "phantom.voxel_size_mm", "agents[0].dose_mg_per_kg",
                                                          "schedule.times_h", "description", "a.b.c", "agents[9].x"]),
              st.one_of(WEIRD_VALUE, TEXT)),
    st.text(max_size=50),
), max_size=3))
def test_any_set_strings_give_a_scenario_or_one_short_line(overrides):
    outcome(lambda o: validate_scenario(apply_overrides(BASE, o)), overrides)


def test_a_bool_a_string_and_a_float_are_refused_where_numbers_and_integers_go():
    for path, value in [(("phantom", "voxel_size_mm"), True), (("phantom", "voxel_size_mm"), "0.5"),
                        (("seed",), 2.0), (("seed",), True), (("agents", 0, "dose_mg_per_kg"), False)]:
        try:
            validate_scenario(replaced(path, value))
        except ScenarioError as exc:
            assert str(exc).startswith(".".join(str(p) for p in path if not isinstance(p, int))[:5])
        else:
            raise AssertionError(f"{path} = {value!r} was accepted")
    assert validate_scenario(replaced(("phantom", "voxel_size_mm"), 1)).phantom.voxel_size_mm == 1.0  # int is fine
    validate_scenario(replaced(("phantom", "tumours", 0, "centre_mm"), [0, 1, 2]))  # an array fills a tuple
    assert isinstance(datetime.date.today(), datetime.date)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=TOML_TEXT, overrides=st.lists(st.builds(lambda v: f"seed={v}", WEIRD_VALUE), max_size=1))
def test_the_cli_answers_any_scenario_file_with_exit_2_and_one_line(tmp_path, capsys, text, overrides):
    scenario = tmp_path / "fuzz.toml"
    scenario.write_bytes(text.encode("utf-8", "surrogatepass"))
    argv = ["simulate", str(scenario), "--out", str(tmp_path / "ds"), "--max-memory-gb", "0.1"]  # valid -> refused too
    for item in overrides:
        argv += ["--set", item]
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err[:500]
    assert len(lines[0]) <= 300
    assert not (tmp_path / "ds").exists()
