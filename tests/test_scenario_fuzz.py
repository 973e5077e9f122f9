"""Hypothesis over the command line: any scenario file and ``--set`` value gives exit 2 and one line.

The library-level properties (any TOML text, any field of any type, any ``--set`` string)
are in test_scenario_input.py; this checks what a user of the CLI sees: no traceback, one
line under 300 characters, nothing written (a valid scenario is refused by a tiny
``--max-memory-gb`` before any work).
"""

from __future__ import annotations

from importlib import resources

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagingsim.cli import main

BASE_TEXT = (resources.files("imagingsim.phantoms").joinpath("mouse_peg_liposome.toml").read_text(encoding="utf-8"))

CONTROL = st.sampled_from(["\n", "\r", "\t", "\x00", "\x1b[31m", "\x7f", "\x85", "\u2028"])
TEXT = st.one_of(
    st.text(max_size=40),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=10), CONTROL, st.text(max_size=10)),
    st.builds(lambda n: "x" * n, st.integers(300, 3_000_000)),
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
