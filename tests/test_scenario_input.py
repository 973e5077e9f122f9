"""Strict scenario input: exact types, no control characters, bounded nesting, short messages.

Every refusal is a :class:`ScenarioError` whose message is one printable line under 300
characters naming the field: a bool or a string is not a number, 2.0 is not an integer, a
``--set`` with a newline is refused rather than cut, nesting past ``MAX_NESTING`` is refused
before any parser or validator recurses, and a user's value is echoed shortened.
"""

from __future__ import annotations

import copy
import json
import os
import time
from importlib import resources

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from imagingsim import pipeline
from imagingsim.scenario import (
    MAX_NESTING,
    ScenarioError,
    apply_overrides,
    parse_toml,
    read_scenario_toml,
    shorten,
    validate_scenario,
)

DEFAULT_TEXT = resources.files("imagingsim.phantoms").joinpath("mouse_peg_liposome.toml").read_text(encoding="utf-8")
BASE = read_scenario_toml()
NESTED = f"nested deeper than {MAX_NESTING} levels"


def assert_one_short_line(message: str) -> None:
    assert message.isprintable(), ascii(message[:300])  # no newline, tab, escape sequence...
    assert len(message) < 300, message[:300]


def refusal(func, *args) -> str:
    """The one-line message ``func(*args)`` is refused with."""
    with pytest.raises(ScenarioError) as info:
        func(*args)
    message = str(info.value)
    assert_one_short_line(message)
    return message


def replaced(path: tuple, value) -> dict:
    """The default scenario's raw table with the field at ``path`` set to ``value``."""
    data = copy.deepcopy(BASE)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def deep(depth: int, kind: str = "array") -> str:
    """TOML text of 1 inside ``depth`` arrays or inline tables."""
    return "[" * depth + "1" + "]" * depth if kind == "array" else "{a=" * depth + "1" + "}" * depth


def deep_list(depth: int, container=list) -> list | tuple:
    """1 inside ``depth`` lists (or tuples), built without recursion."""
    value = 1
    for _ in range(depth):
        value = container([value])
    return value


# --- strict types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "field", "hint"),
    [
        ("phantom.voxel_size_mm=true", "phantom.voxel_size_mm", "valid number"),
        ("phantom.voxel_size_mm='0.5'", "phantom.voxel_size_mm", "valid number"),
        ("agents[0].dose_mg_per_kg=false", "agents[0].dose_mg_per_kg", "valid number"),
        ("agents[0].carrier_overrides.washout_per_h=true", "carrier_overrides.washout_per_h", "valid number"),
        ("schedule.times_h=[1, '2', 4]", "schedule.times_h[1]", "valid number"),
        ("seed=2.0", "seed", "valid integer"),
        ("seed=true", "seed", "valid integer"),
        ("seed='3'", "seed", "valid integer"),
        ("phantom.anatomy=1", "phantom.anatomy", "'mouse', 'torso' or 'brain'"),
        ("modalities.ct.noise=1", "modalities.ct.noise", "valid boolean"),
        ("modalities.ct.noise='true'", "modalities.ct.noise", "valid boolean"),
        ("modalities.pet.n_views=64.0", "modalities.pet.n_views", "valid integer"),
        ("modalities.mri.flip_angle_deg=true", "modalities.mri.flip_angle_deg", "valid number"),
    ],
)
def test_a_bool_a_string_or_a_float_is_refused_where_the_type_differs(override, field, hint):
    message = refusal(pipeline.load_scenario, None, [override])
    assert field in message.split(": ")[0] and hint in message


def test_what_toml_writes_for_numbers_and_tuples_stays_accepted():
    scenario = pipeline.load_scenario(None, ["phantom.voxel_size_mm=1", "phantom.tumours[0].centre_mm=[1, 2, 3]",
                                             "modalities.mri.field_T=7", "modalities.enabled=['mri']"])
    assert scenario.phantom.voxel_size_mm == 1.0 and isinstance(scenario.phantom.voxel_size_mm, float)
    assert scenario.phantom.tumours[0].centre_mm == (1.0, 2.0, 3.0)
    assert scenario.modalities.mri.field_T == 7.0


def test_a_python_caller_gets_the_same_strictness():
    assert "valid number" in refusal(validate_scenario, replaced(("phantom", "voxel_size_mm"), True))
    assert "valid integer" in refusal(validate_scenario, replaced(("seed",), 2.0))
    assert validate_scenario(replaced(("phantom", "tumours", 0, "centre_mm"), (0, 1, 2))).phantom.tumours


# --- control characters -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("description=first line\nsecond line", "U+000A in the value (position 10)"),
        ("description=a\tb", "U+0009 in the value (position 1)"),
        ("description=\x1b[31mred", "U+001B in the value (position 0)"),
        ("description=del\x7f", "U+007F in the value"),
        ("descr\niption=x", "U+000A in the key (position 5)"),
        ("seed=3\nname = 'other'", "U+000A in the value"),
    ],
)
def test_a_control_character_in_a_set_is_refused_not_cut(item, needle):
    message = refusal(apply_overrides, BASE, [item])
    assert message.startswith("--set ") and needle in message and message.endswith("not allowed")


def test_bytes_that_are_not_utf8_in_a_set_value_are_refused():
    message = refusal(apply_overrides, BASE, ["description=caf\udce9"])  # how Python keeps argv byte 0xE9
    assert "--set 'description'" in message and "U+DCE9" in message


# --- nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_NESTING, 1000, 100_000])
@pytest.mark.parametrize("kind", ["array", "table"])
def test_deep_nesting_in_a_file_is_one_line(tmp_path, depth, kind):
    path = tmp_path / "deep.toml"
    path.write_text(f"name = 'deep'\nextra = {deep(depth, kind)}\n")
    assert refusal(read_scenario_toml, path) == f"scenario: {NESTED} (arrays and tables); not allowed"


@pytest.mark.parametrize("depth", [1000, 100_000])
@pytest.mark.parametrize("kind", ["array", "table"])
def test_deep_nesting_in_a_set_value_is_one_line(depth, kind):
    assert refusal(apply_overrides, BASE, [f"seed={deep(depth, kind)}"]).startswith(f"--set 'seed': {NESTED}")


@pytest.mark.parametrize("unclosed", ["[" * 100_000, "{a=" * 100_000, "[{a=" * 50_000])
def test_unclosed_deep_nesting_is_refused_not_a_bare_string(unclosed):
    assert NESTED in refusal(apply_overrides, BASE, [f"description={unclosed}"])
    assert NESTED in refusal(parse_toml, f"x = {unclosed}")


def test_long_dotted_keys_are_refused_quickly():
    # tomllib takes quadratic time in a dotted key's segments: minutes for these, unchecked
    start = time.perf_counter()
    for text in ("a." * 100_000 + "b = 1", "[" + "a." * 100_000 + "b]", "x = {" + "a." * 100_000 + "b = 1}"):
        assert NESTED in refusal(parse_toml, text)
    assert NESTED in refusal(apply_overrides, BASE, ["x={" + "a." * 100_000 + "b = 1}"])
    assert NESTED in refusal(apply_overrides, BASE, [".".join(["a"] * 100_000) + "=1"])
    assert time.perf_counter() - start < 10


def test_nesting_up_to_the_limit_is_accepted():
    # one level for the key, MAX_NESTING - 1 arrays, the innermost value at MAX_NESTING
    assert parse_toml(f"x = {deep(MAX_NESTING - 1)}")["x"] == deep_list(MAX_NESTING - 1)
    assert parse_toml(".".join(["a"] * MAX_NESTING) + " = 1")
    # brackets, dots and quotes inside strings and comments are text, not nesting
    lines = [
        "s = '" + "[" * 500 + "'  # " + "{" * 500,
        't = "' + "a." * 500 + '\\"["',
        "u = '''\n" + "[" * 500 + "'''",
        'v = """' + "{" * 500 + '""""',  # the fourth quote is text
    ]
    assert parse_toml("\n".join(lines)) == {"s": "[" * 500, "t": "a." * 500 + '"[', "u": "[" * 500,
                                            "v": "{" * 500 + '"'}


@pytest.mark.parametrize("container", [list, tuple])
def test_deep_python_data_is_refused_before_the_copy_and_the_validation(container):
    data = copy.deepcopy(BASE)
    data["extra"] = deep_list(5000, container)
    assert NESTED in refusal(apply_overrides, data, [])
    assert NESTED in refusal(validate_scenario, data)
    assert NESTED in refusal(pipeline.validate_scenario, data)


# --- shortened values -------------------------------------------------------------------


def test_shorten_cuts_long_values_and_escapes_control_characters():
    assert shorten("mouse") == "'mouse'"
    assert shorten("a" * 50_000_000) == "'" + "a" * 80 + "'... (50000000 characters)"
    assert shorten("a\nb", quote=False) == "a\\nb"
    assert shorten(2.5) == "2.5"
    assert len(shorten("\x00" * 1000)) < 120


@pytest.mark.parametrize(
    "item",
    ["description=" + "x" * 50_000_000, "phantom.anatomy='" + "x" * 50_000_000 + "'"],
)
def test_a_50_mb_value_is_echoed_shortened(item):
    message = refusal(pipeline.load_scenario, None, [item])
    assert "50000000 characters" in message


def test_a_50_mb_description_in_a_file_is_echoed_shortened(tmp_path):
    path = tmp_path / "huge.toml"
    lines = [line for line in DEFAULT_TEXT.splitlines() if not line.startswith("description")]
    path.write_text("description = '" + "x" * 50_000_000 + "'\n" + "\n".join(lines) + "\n")
    message = refusal(pipeline.load_scenario, path)
    assert message.startswith("description:") and "50000000 characters" in message


@pytest.mark.parametrize(
    "args",
    [
        (None, ["x" * 100_000 + "=1"]),
        (None, ["agents[" + "9" * 5000 + "].name=x"]),
        (None, ["y" * 100_000]),
        (None, ["agents[0]." + "z" * 100_000 + "=1"]),
        (None, ["seed=" + "9" * 5000]),
        ("n" * 100_000, None),
        ("nope" * 1000, None),
    ],
)
def test_every_echo_of_a_huge_input_is_shortened(args):
    refusal(pipeline.load_scenario, *args)


def test_a_huge_integer_in_a_file_is_a_scenario_error():
    assert refusal(parse_toml, "seed = " + "9" * 5000).startswith("scenario: ")


# --- paths ------------------------------------------------------------------------------


def test_an_existing_file_wins_over_a_built_in_name(tmp_path, monkeypatch):
    (tmp_path / "mouse_peg_liposome").write_text(DEFAULT_TEXT.replace("seed = 20261122", "seed = 7"))
    monkeypatch.chdir(tmp_path)
    assert read_scenario_toml("mouse_peg_liposome")["seed"] == 7
    assert read_scenario_toml("torso_liver_metastasis")["name"] == "torso_liver_metastasis"


def test_a_directory_as_the_scenario_says_so(tmp_path):
    expected = f"scenario: {shorten(str(tmp_path))} is a directory, not a scenario .toml file"
    assert refusal(read_scenario_toml, tmp_path) == expected
    (tmp_path / "x.toml").mkdir()
    assert "is a directory" in refusal(read_scenario_toml, tmp_path / "x.toml")


def test_a_symlink_loop_as_the_scenario_is_one_line(tmp_path):
    (tmp_path / "a.toml").symlink_to(tmp_path / "b.toml")
    (tmp_path / "b.toml").symlink_to(tmp_path / "a.toml")
    assert refusal(read_scenario_toml, tmp_path / "a.toml").endswith("a symbolic link loop")


def test_an_over_long_name_or_path_as_the_scenario_is_one_line(tmp_path):
    assert "a name of 1005 bytes" in refusal(read_scenario_toml, tmp_path / ("n" * 1000 + ".toml"))
    assert "a path of" in refusal(read_scenario_toml, tmp_path / ("a/" * 3000 + "x.toml"))


def test_a_file_that_is_not_utf8_or_not_regular_is_one_line(tmp_path):
    latin = tmp_path / "latin1.toml"
    latin.write_bytes(b"name = 'caf\xe9'\n")
    assert "is not UTF-8 text (byte 11)" in refusal(read_scenario_toml, latin)
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    assert "is not a regular file" in refusal(read_scenario_toml, fifo)  # and does not block
    assert "NUL character" in refusal(read_scenario_toml, "a\x00b.toml")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_file_is_one_line(tmp_path):
    path = tmp_path / "secret.toml"
    path.write_text("name = 'x'\n")
    path.chmod(0)
    assert "permission denied" in refusal(read_scenario_toml, path)


# --- property tests ---------------------------------------------------------------------

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

CONTROL = st.sampled_from(["\n", "\r", "\t", "\x00", "\x1b[31m", "\x7f", "\x85", "\u2028", "\udcff"])
TEXT = st.one_of(
    st.text(max_size=30),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=10), CONTROL, st.text(max_size=10)),
    st.builds(lambda n: "x" * n, st.integers(100, 2_000_000)),
)
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), TEXT, st.dates(), st.datetimes(), st.times()
)
VALUE = st.one_of(SCALAR, st.lists(SCALAR, max_size=3), st.dictionaries(st.text(max_size=5), SCALAR, max_size=3),
                  st.builds(deep_list, st.integers(1, 40)))
TOML_VALUE = st.one_of(
    st.builds(deep, st.integers(1, 200_000), st.sampled_from(["array", "table"])),
    st.builds(lambda n: "[" * n, st.integers(1, 200_000)),
    st.builds(lambda n: "a." * n + "b", st.integers(1, 100_000)),
    st.builds(lambda s: json.dumps(s), TEXT),
    st.sampled_from(["true", "nan", "-inf", "1979-05-27", "07:32:00", "0x10", "1e999", "[]", "{}", "'''x'''"]),
    st.just("9" * 5000),  # past Python's 4300-digit int conversion limit
    TEXT,
)


def _paths(table, prefix=()):
    for key, value in table.items() if isinstance(table, dict) else enumerate(table):
        yield (*prefix, key)
        if isinstance(value, (dict, list)):
            yield from _paths(value, (*prefix, key))


FIELD_PATHS = list(_paths(BASE))


def _outcome(func, *args) -> None:
    try:
        func(*args)
    except ScenarioError as exc:
        assert_one_short_line(str(exc))


@SETTINGS
@given(st.lists(st.sampled_from(FIELD_PATHS), min_size=1, max_size=3), st.lists(VALUE, min_size=3, max_size=3))
def test_any_field_of_any_type_gives_a_scenario_or_one_short_line(paths, values):
    data = copy.deepcopy(BASE)
    for path, value in zip(paths, values, strict=False):
        target = data
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):  # an earlier replacement removed the way there
            continue
    _outcome(pipeline.validate_scenario, data)


@SETTINGS
@given(
    st.one_of(
        st.builds(lambda key, value: f"{DEFAULT_TEXT}\n{key} = {value}\n",
                  st.sampled_from(["extra", "seed", "description", "x.y"]), TOML_VALUE),
        st.builds(lambda line, cut: DEFAULT_TEXT[:cut] + line + DEFAULT_TEXT[cut:], TEXT,
                  st.integers(0, len(DEFAULT_TEXT))),
        st.text(max_size=300),
    )
)
def test_any_toml_text_gives_a_scenario_or_one_short_line(text):
    _outcome(lambda t: pipeline.validate_scenario(parse_toml(t)), text)


@SETTINGS
@given(st.lists(st.one_of(
    st.builds(lambda key, value: f"{key}={value}",
              st.sampled_from(["seed", "phantom.voxel_size_mm", "agents[0].dose_mg_per_kg", "schedule.times_h",
                               "description", "a.b.c", "agents[9].x", "modalities.mri.field_T", "agents[0].labels"]),
              TOML_VALUE),
    TEXT,
), max_size=3))
def test_any_set_strings_give_a_scenario_or_one_short_line(overrides):
    _outcome(pipeline.load_scenario, None, overrides)
    _outcome(apply_overrides, BASE, overrides)


@SETTINGS
@given(st.one_of(TEXT, st.builds(lambda n: "a/" * n + "x.toml", st.integers(0, 3000))))
def test_any_scenario_name_gives_a_table_or_one_short_line(name):
    _outcome(read_scenario_toml, name)


# Valid TOML with strings and comments full of brackets, dots and quotes, nested up to the
# limit: the pre-scan must never refuse what the parsed table's own check accepts.
KEY = st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,6}", fullmatch=True), st.text("[]{}.='\"# a\\", max_size=6))
TRICKY = st.text(st.sampled_from(list("[]{}.=,#'\"\\ \nab\t\x00\x7fé\u2028")), max_size=20)
LEAF = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False), TRICKY
)
TREE = st.recursive(LEAF, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEY, inner, max_size=3)),
                    max_leaves=12)


def _wrap(value, kinds: list[bool]):
    for as_list in kinds:
        value = [value] if as_list else {"k": value}
    return value


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 1


def _key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else _basic(key)


def _basic(text: str) -> str:
    return json.dumps(text).replace("\x7f", "\\u007f")


def _string(text: str, style: int) -> str:
    plain = all(c >= " " and c != "\x7f" for c in text)
    if style == 1 and plain and "'" not in text:
        return f"'{text}'"
    if style == 2 and "'" not in text and all(c >= " " or c == "\n" for c in text) and "\x7f" not in text:
        return f"'''\n{text}'''"  # the newline after the opening quotes is dropped by TOML
    if style == 3:
        return f'"""\n{_basic(text)[1:-1]}"""'
    return _basic(text)


def _toml(value, rnd) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_toml(v, rnd)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        separator = rnd.choice([", ", ",  # ]]{{.'\"\n  "])
        return "[" + separator.join(_toml(v, rnd) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return _string(value, rnd.randrange(4))


def _document(table: dict, rnd) -> str:
    """``table`` as TOML: each top-level entry inline, as dotted keys or as a [header] section."""
    lines, sections = [], []
    for key, value in table.items():
        style = rnd.randrange(3) if isinstance(value, dict) and value else 0
        if style == 1:
            lines += [f"{_key(key)}.{_key(k)} = {_toml(v, rnd)}" for k, v in value.items()]
        elif style == 2:
            sections += [f"[{_key(key)}]  # [[{{'\""] + [f"{_key(k)} = {_toml(v, rnd)}" for k, v in value.items()]
        else:
            lines.append(f"{_key(key)} = {_toml(value, rnd)}  # {{.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r")
    return "\n".join(lines + sections) + "\n"


@SETTINGS
@given(st.dictionaries(KEY, st.builds(_wrap, TREE, st.lists(st.booleans(), max_size=MAX_NESTING)), max_size=3),
       st.randoms(use_true_random=False))
def test_valid_toml_within_the_limit_parses_to_its_table(table, rnd):
    assume(all(_depth(v) <= MAX_NESTING for v in table.values()))
    assert parse_toml(_document(table, rnd)) == table
