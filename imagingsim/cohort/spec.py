"""Cohort files: a base scenario, a number of subjects, a seed, and what varies between subjects.

A cohort is a TOML table::

    name = "mouse_epr_variability"
    description = "..."
    base = "mouse_peg_liposome"          # a built-in scenario or a path to a scenario file
    subjects = 50
    seed = 2026

    [set]                                # fixed for every subject (as --set)
    "phantom.voxel_size_mm" = 1.0

    [vary]                               # any field path that --set accepts
    "phantom.tumours[0].radius_mm" = { distribution = "uniform", low = 2.5, high = 5.0 }
    "agents[0].dose_mg_per_kg" = { distribution = "lognormal", median = 20.0, sd_log = 0.15 }

    [[groups]]                           # optional arms, drawn per subject by weight
    name = "targeted"
    weight = 0.5
    set = { "agents[0].targeting.ligand" = "folate" }

Subject k (1-based) is built as base -> ``set`` -> its group's ``set`` -> each ``vary`` value, every value
drawn from its own random stream keyed by the cohort seed, k and the field path, so subject k
is the same whatever the number of subjects, the worker count, the order of the fields or the
other fields. Each subject's scenario passes the same validation as a scenario file.

**Refused at load.** A distribution that can produce a value the scenario refuses is refused
when the cohort is loaded, naming the field: each field is validated at values spanning its
support (:meth:`probes`: the bounds, every choice, or 8 standard deviations out for the
unbounded normal and lognormal), alone and in each group. Fields that are only invalid in
combination (two bounds that must stay ordered) are still caught per subject, naming the
subject and the field, before anything is simulated.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, ValidationError

from imagingsim.cohort.distributions import Distribution
from imagingsim.pipeline import validate_scenario
from imagingsim.scenario import (
    Scenario,
    ScenarioError,
    SpecModel,
    apply_overrides,
    builtin_names,
    parse_toml,
    read_scenario_toml,
    set_path,
    shorten,
)

MAX_SUBJECTS = 100_000
MAX_FIELDS = 64
#: Stream keys besides the per-field ones (a field's key is a hash of its path, below 2**32).
GROUP_STREAM = 2**32
SEED_STREAM = 2**32 + 1

GroupName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$", max_length=64)]


class GroupSpec(SpecModel):
    """One arm of the cohort: its share of the subjects and the fields it sets."""

    name: GroupName
    weight: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    set: dict[str, Any] = Field(default_factory=dict, max_length=MAX_FIELDS)


class CohortSpec(SpecModel):
    """A cohort file, validated (unknown keys and wrong types refused)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$", max_length=64)]
    description: str = ""
    base: Annotated[str, Field(min_length=1, max_length=4096)]
    subjects: Annotated[int, Field(ge=1, le=MAX_SUBJECTS)]
    seed: Annotated[int, Field(ge=0, lt=2**63)]
    set: dict[str, Any] = Field(default_factory=dict, max_length=MAX_FIELDS)
    vary: dict[str, Distribution] = Field(default_factory=dict, max_length=MAX_FIELDS)
    groups: list[GroupSpec] = Field(default_factory=list, max_length=16)


@dataclass(frozen=True)
class SubjectDraw:
    """Subject ``number`` of a cohort: its label, group, drawn values and validated scenario."""

    number: int
    label: str  # the BIDS subject label, e.g. "007"
    group: str | None
    values: dict[str, Any]  # field path -> drawn value, in the cohort's [vary] order
    scenario: Scenario


@dataclass(frozen=True)
class Cohort:
    """A loaded cohort: the validated file, the base scenario table and its overrides."""

    spec: CohortSpec
    base: dict[str, Any]  # the raw base scenario table, --set overrides applied

    @property
    def subjects(self) -> int:
        return self.spec.subjects

    def label(self, number: int) -> str:
        """``number`` zero-padded to at least 3 digits (``sub-001``)."""
        return f"{number:0{max(3, len(str(self.spec.subjects)))}d}"

    def _rng(self, number: int, stream: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.spec.seed, spawn_key=(number, stream)))

    def group_of(self, number: int) -> GroupSpec | None:
        groups = self.spec.groups
        if not groups:
            return None
        weights = np.cumsum([g.weight for g in groups])
        u = self._rng(number, GROUP_STREAM).random() * weights[-1]
        return groups[min(int(np.searchsorted(weights, u, side="right")), len(groups) - 1)]

    def values(self, number: int) -> dict[str, Any]:
        """The ``[vary]`` values of subject ``number``, each from its own stream (no validation)."""
        return {key: distribution.draw(self._rng(number, field_stream(key)))
                for key, distribution in self.spec.vary.items()}

    def subject(self, number: int) -> SubjectDraw:
        """Draw and validate subject ``number`` (1-based)."""
        if not 1 <= number <= self.spec.subjects:
            raise IndexError(f"subject {number} out of range 1..{self.spec.subjects}")
        group = self.group_of(number)
        data = copy.deepcopy(self.base)
        if group is not None:
            for key, value in group.set.items():
                set_path(data, key, copy.deepcopy(value), label=f"groups.{group.name}.set.{shorten(key, quote=False)}")
        values = self.values(number)
        for key, value in values.items():
            set_path(data, key, value, label=f"vary.{shorten(key, quote=False)}")
        data["seed"] = int(self._rng(number, SEED_STREAM).integers(0, 2**31 - 1))
        data["subject_id"] = self.label(number)
        try:
            scenario = validate_scenario(data)
        except ScenarioError as exc:
            raise ScenarioError(f"cohort {self.spec.name}, subject {number}: {exc}") from None
        return SubjectDraw(number, self.label(number), group.name if group else None, values, scenario)


def field_stream(key: str) -> int:
    """The random stream of a field: a hash of its path (below 2**32), stable across runs."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big")


def builtin_cohorts() -> list[str]:
    """Names of the cohorts shipped in the package (``imagingsim.phantoms/cohorts``)."""
    folder = resources.files("imagingsim.phantoms").joinpath("cohorts")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def read_cohort_toml(name_or_path: str | Path) -> dict[str, Any]:
    """A cohort's raw table from a built-in name or a ``.toml`` path (one-line errors)."""
    text = str(name_or_path)
    if not Path(text).suffix and text in builtin_cohorts():
        source = resources.files("imagingsim.phantoms").joinpath("cohorts", f"{text}.toml").read_text(encoding="utf-8")
        return parse_toml(source)
    if not Path(text).suffix and "/" not in text and not Path(text).exists():
        raise ScenarioError(f"cohort: no built-in cohort {shorten(text)}; built-ins: {', '.join(builtin_cohorts())}")
    try:
        return read_scenario_toml(name_or_path)  # the same checks as a scenario file
    except ScenarioError as exc:
        raise ScenarioError("cohort:" + str(exc).removeprefix("scenario:")) from None


def load_cohort(
    name_or_path: str | Path,
    *,
    subjects: int | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
) -> Cohort:
    """Load and validate a cohort; ``subjects``, ``seed`` and ``--set`` ``overrides`` (on the
    base scenario) replace the file's.

    Raises
    ------
    ScenarioError
        One line naming the field: a malformed cohort file, a base scenario that does not
        validate, or a distribution or group that can produce an invalid scenario.
    """
    raw = read_cohort_toml(name_or_path)
    if subjects is not None:
        raw["subjects"] = subjects
    if seed is not None:
        raw["seed"] = seed
    try:
        spec = CohortSpec.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ScenarioError(f"cohort {where}: {error['msg']} (got {shorten(error.get('input'))})") from None
    base_source: str | Path = spec.base
    if spec.base not in builtin_names() and not Path(spec.base).is_absolute() and Path(str(name_or_path)).suffix:
        base_source = Path(str(name_or_path)).parent / spec.base  # a path relative to the cohort file
    base = read_scenario_toml(base_source)
    for key, value in spec.set.items():
        set_path(base, key, copy.deepcopy(value), label=f"set.{shorten(key, quote=False)}")
    base = apply_overrides(base, overrides or [])
    _check(spec, base)
    return Cohort(spec, base)


def _check(spec: CohortSpec, base: dict[str, Any]) -> None:
    """Validate the base, each group and each distribution's probes (module docstring)."""
    try:
        validate_scenario(copy.deepcopy(base))
    except ScenarioError as exc:
        raise ScenarioError(f"cohort base {shorten(spec.base)}: {exc}") from None
    arms: list[tuple[str, dict[str, Any]]] = [("", base)]
    for group in spec.groups:
        data = copy.deepcopy(base)
        for key, value in group.set.items():
            set_path(data, key, copy.deepcopy(value), label=f"groups.{group.name}.set.{shorten(key, quote=False)}")
        try:
            validate_scenario(copy.deepcopy(data))
        except ScenarioError as exc:
            raise ScenarioError(f"groups.{group.name}: {exc}") from None
        arms.append((f" in group {group.name}", data))
    for key, distribution in spec.vary.items():
        label = f"vary.{shorten(key, quote=False)}"
        for where, arm in arms[1:] or arms:
            for probe in distribution.probes():
                data = copy.deepcopy(arm)
                set_path(data, key, probe, label=label)
                try:
                    validate_scenario(data)
                except ScenarioError as exc:
                    raise ScenarioError(
                        f"{label}: the {distribution.distribution} distribution can give {shorten(probe)}{where}, "
                        f"which the scenario refuses ({exc})"
                    ) from None


__all__ = ["Cohort", "CohortSpec", "GroupSpec", "SubjectDraw", "builtin_cohorts", "field_stream", "load_cohort"]
