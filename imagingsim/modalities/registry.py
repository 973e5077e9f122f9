"""Which modalities exist: the built-ins and those of installed packages, loaded lazily, cached.

A modality is registered by an entry point in the group ``imagingsim.modalities`` whose value
is ``package.module:MODALITY`` (an instance of :class:`~imagingsim.modalities.base.Modality`).
The built-ins go through the same door, from :data:`BUILTIN`, so a third-party modality
needs no edit here::

    # pyproject.toml of another package
    [project.entry-points."imagingsim.modalities"]
    photoacoustic = "my_package.photoacoustic:MODALITY"

Only the names are read eagerly; a modality's module is imported the first time it is asked
for, so listing or validating never imports the tomography stack of an unused modality.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from importlib import metadata

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from imagingsim.modalities.base import Modality

GROUP = "imagingsim.modalities"

#: The built-in modalities, in the order they run and are listed: one line each.
BUILTIN: dict[str, str] = {
    "pet": "imagingsim.modalities.pet:MODALITY",
    "mri": "imagingsim.modalities.mri:MODALITY",
    "nirf": "imagingsim.modalities.nirf:MODALITY",
    "spect": "imagingsim.modalities.spect:MODALITY",
    "ct": "imagingsim.modalities.ct:MODALITY",
    "photoacoustic": "imagingsim.modalities.photoacoustic:MODALITY",
}


class ModalityError(ValueError):
    """An unknown modality name (bad input); the message is one line listing what is installed."""


class ModalityLoadError(RuntimeError):
    """A registered modality that does not load (the environment, not the input): one line
    naming the modality, the package that registered it and why."""


@dataclass(frozen=True)
class Registration:
    """Where a modality comes from: ``target`` is ``module:attribute``; ``origin`` a package name."""

    name: str
    target: str
    origin: str


@functools.cache
def registrations() -> dict[str, Registration]:
    """Every registered modality by name: the built-ins first, then entry points in name order.

    An entry point that reuses a registered name is ignored: the built-in (or the first
    package in name order) keeps it, so installing a package never changes a built-in.
    """
    found = {name: Registration(name, target, "built-in") for name, target in BUILTIN.items()}
    for entry in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        if entry.name in found:
            continue
        package = entry.dist.name if entry.dist is not None else "unknown package"
        found[entry.name] = Registration(entry.name, entry.value, package)
    return found


def names() -> tuple[str, ...]:
    """Registered modality names, built-ins first."""
    return tuple(registrations())


@functools.cache
def get(name: str) -> Modality:
    """The registered modality ``name`` (imported on first use).

    Raises
    ------
    ModalityError
        One line naming the installed modalities when ``name`` is unknown.
    ModalityLoadError
        One line saying what is wrong with a registration that does not load.
    """
    registered = registrations()
    if name not in registered:
        raise ModalityError(f"unknown modality {name!r}; installed: {', '.join(registered)}")
    registration = registered[name]
    module_name, _, attribute = registration.target.partition(":")
    try:
        modality = getattr(importlib.import_module(module_name), attribute or "MODALITY")
    except (ImportError, AttributeError) as exc:
        raise ModalityLoadError(
            f"modality {name!r} ({registration.origin}, {registration.target}) failed to load: {exc}".splitlines()[0]
        ) from None
    if not isinstance(modality, Modality) or modality.name != name:
        raise ModalityLoadError(
            f"modality {name!r} ({registration.origin}): {registration.target} is not a Modality named {name!r}"
        )
    return modality


def origin(name: str) -> str:
    """``"built-in"`` or the distribution name of the package that registered ``name``."""
    return registrations()[name].origin


def acquisition_order(enabled) -> list[str]:
    """The enabled modalities in the order they run: each after those whose results it uses.

    Among those ready, the anatomical references others fuse onto go first (stable otherwise):
    their files (MRI k-space is most of the bytes) are written while the functional scans
    compute (:func:`imagingsim.pipeline.simulate_and_write`). Results do not depend on the
    order: every modality draws from its own random streams.
    """
    pending = list(enabled)
    targets = {anatomical for m in pending for anatomical in get(m).fuses_onto}
    ordered: list[str] = []
    while pending:
        ready = [m for m in pending if not any(r in pending for r in get(m).requires if r != m)]
        if not ready:
            raise ModalityError(f"modalities {pending} require each other in a cycle")
        ordered += sorted(ready, key=lambda m: m not in targets)
        pending = [m for m in pending if m not in ready]
    return ordered


@functools.cache
def modalities_model() -> type[BaseModel]:
    """The ``[modalities]`` table's model: ``enabled`` plus one settings table per registered modality.

    Unknown tables and unknown names in ``enabled`` are refused, naming what is installed.
    """
    from imagingsim.scenario import ModalitiesSpec

    class RegisteredModalities(ModalitiesSpec):
        model_config = ConfigDict(extra="forbid")

        @field_validator("enabled")
        @classmethod
        def _installed(cls, enabled):
            unknown = [m for m in enabled if m not in registrations()]
            if unknown:
                raise ValueError(f"unknown modality {unknown[0]!r}; allowed: {', '.join(names())}")
            return enabled

    fields = {name: (get(name).Spec, Field(default_factory=get(name).Spec)) for name in names()}
    return create_model("ModalitiesSpec", __base__=RegisteredModalities, **fields)


@functools.cache
def scenario_model():
    """The :class:`~imagingsim.scenario.Scenario` model with every registered modality's settings."""
    from imagingsim.scenario import Scenario

    modalities = modalities_model()
    return create_model("Scenario", __base__=Scenario, modalities=(modalities, Field(default_factory=modalities)))


def check_enabled(scenario) -> None:
    """Run each enabled modality's :meth:`~imagingsim.modalities.base.Modality.check`.

    Raises
    ------
    ValueError
        The first modality's one-line complaint, naming its field.
    """
    for name in scenario.modalities.enabled:
        get(name).check(getattr(scenario.modalities, name), scenario)


def clear_cache() -> None:
    """Forget the registrations and loaded modalities (after installing a package at run time)."""
    for cached in (registrations, get, modalities_model, scenario_model):
        cached.cache_clear()
