"""Benchmark suites: which scans, at which count levels, how many noise realisations, scored how.

A suite is a TOML file (built-ins in ``imagingsim/bench/suites/``)::

    name = "quick"
    description = "..."
    seed = 20261205          # realisation seeds derive from it (never written as files)
    held_out = false         # true: seeds also need the organiser's key (IMAGINGSIM_BENCH_KEY;
                             # ignored by public suites)
    realisations = 3
    iterations = 8

    [[problems]]
    name = "mouse_24h"
    modality = "<registered modality name>"
    scenario = "mouse_peg_liposome"
    set = ["phantom.voxel_size_mm=1.0", "schedule.times_h=[24.0]"]
    frame = 0                      # session of the scan
    count_levels = [1.0, 0.25]     # x the scan's counts (or SNR^2 for Gaussian noise)
    thresholds = { nrmse_body = 0.45, aem_tumour = 0.2 }   # for the time to threshold
                                   # (names: metrics.THRESHOLD_METRICS; all must hold)

The scenario is loaded with the problem's ``set`` overrides and only the modalities the
problem needs enabled (its own and those it ``requires``).
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from imagingsim.bench.metrics import THRESHOLD_METRICS

#: Environment variable holding the organiser's key of held-out suites.
KEY_VARIABLE = "IMAGINGSIM_BENCH_KEY"


class ProblemSpec(BaseModel):
    """One scan of a suite (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    modality: str
    scenario: str
    set: list[str] = Field(default_factory=list)
    frame: Annotated[int, Field(ge=0)] = 0
    count_levels: Annotated[list[Annotated[float, Field(gt=0.0, le=1000.0)]], Field(min_length=1)] = [1.0]
    iterations: Annotated[int, Field(ge=1, le=10000)] | None = None
    realisations: Annotated[int, Field(ge=1, le=1000)] | None = None
    thresholds: dict[str, Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _known_metrics(cls, thresholds: dict[str, float]) -> dict[str, float]:
        # A misspelt or higher-is-better name would silently never (or always) hold.
        unknown = sorted(set(thresholds) - set(THRESHOLD_METRICS))
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}: thresholds bound one of {', '.join(THRESHOLD_METRICS)}")
        return thresholds


class SuiteSpec(BaseModel):
    """A benchmark suite (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    description: str = ""
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    held_out: bool = False
    realisations: Annotated[int, Field(ge=1, le=1000)] = 3
    iterations: Annotated[int, Field(ge=1, le=10000)] = 10
    problems: Annotated[list[ProblemSpec], Field(min_length=1)]

    def realisations_of(self, problem: ProblemSpec) -> int:
        return problem.realisations or self.realisations

    def iterations_of(self, problem: ProblemSpec) -> int:
        return problem.iterations or self.iterations


def builtin_suites() -> list[str]:
    """Names of the built-in suites."""
    folder = resources.files("imagingsim.bench") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_suite(name_or_path: str | Path) -> SuiteSpec:
    """A built-in suite by name, or a suite TOML file.

    Raises
    ------
    ValueError
        One line: unknown name (listing the built-ins), unreadable file, bad TOML, or the
        first invalid field (``problems[0].count_levels: ...``).
    """
    text_name = str(name_or_path)
    if text_name in builtin_suites():
        text = (resources.files("imagingsim.bench") / "suites" / f"{text_name}.toml").read_text(encoding="utf-8")
    elif text_name.endswith(".toml"):
        try:
            text = Path(text_name).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"suite {text_name!r}: {exc.strerror or exc}") from None
    else:
        raise ValueError(f"suite {text_name!r}: not a built-in ({', '.join(builtin_suites())}) nor a .toml file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"suite {text_name!r}: invalid TOML: {exc}".splitlines()[0]) from None
    try:
        return SuiteSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in error["loc"]).replace(".[", "[")
        message = error["msg"].removeprefix("Value error, ")
        raise ValueError(f"suite {text_name!r}: {where}: {message}") from None


def suite_key(suite: SuiteSpec, key: str | None = None) -> str:
    """The key mixed into the realisation seeds.

    A public suite (``held_out = false``) always gets "" whatever ``key`` or the environment
    say, so that its realisations are the same for everyone. A held-out suite gets ``key``,
    else :data:`KEY_VARIABLE`.

    Raises
    ------
    ValueError
        A held-out suite without a key (its seeds are the organiser's).
    """
    if not suite.held_out:
        return ""
    key = key if key is not None else os.environ.get(KEY_VARIABLE, "")
    if suite.held_out and not key:
        raise ValueError(f"suite {suite.name!r} holds out its noise realisations: set {KEY_VARIABLE} to the "
                         "organiser's key")
    return key


def key_fingerprint(key: str) -> str:
    """What the results record of the key: ``"public"`` or the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:12] if key else "public"


def realisation_seed(suite: SuiteSpec, problem: str, count_level: float, index: int, key: str = "") -> int:
    """The generator seed of realisation ``index`` of ``problem`` at ``count_level``: a SHA-256 of
    the suite seed, the names, the level, the index and the key, computed at scoring time and
    never written. Without the key (held-out suites) the seeds, and so the data, cannot be made."""
    text = f"{suite.name}/{suite.seed}/{problem}/{count_level!r}/{index}/{key}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
