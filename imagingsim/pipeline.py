"""Scenario -> one simulated subject -> dataset on disk.

Each stage takes the previous stage's object and returns a new one (ARCHITECTURE: one
direction, no back-and-forth). The CLI and any scale-out only call these functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager

from imagingsim.backend import Backend, get_backend
from imagingsim.scenario import Scenario

StepReporter = Callable[[str], ContextManager[Any]]


def _silent(_name: str) -> ContextManager[Any]:
    return contextlib.nullcontext()


@dataclass(frozen=True, eq=False)
class Subject:
    """One simulated subject, in memory.

    Attributes
    ----------
    scenario : Scenario
        The validated scenario it was made from.
    backend : Backend
        Where its arrays live.
    seed : int
        The subject seed actually used (see :func:`subject_seed`).
    phantom : imagingsim.phantom.Phantom
        Labels and property maps.
    delivery : imagingsim.delivery.DeliveryResult
        Concentration maps over time, blood curves and mass ledgers per agent.
    acquisitions : dict
        Modality name -> acquisition object (empty until modalities are enabled).
    timings_s : dict
        Wall time of each stage, s.
    """

    scenario: Scenario
    backend: Backend
    seed: int
    phantom: Any
    delivery: Any
    acquisitions: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)


def subject_seed(scenario: Scenario) -> int:
    """The 32-bit seed of one subject: a hash of the scenario seed and the subject id.

    Distinct subjects of one scenario thus get independent heterogeneity, and the same
    (seed, subject_id) always gives the same subject.
    """
    digest = hashlib.sha256(f"{scenario.seed}/{scenario.subject_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def simulate(
    scenario: Scenario,
    *,
    backend: str | Backend = "auto",
    step: StepReporter = _silent,
) -> Subject:
    """Simulate one subject in memory.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario (see :func:`imagingsim.load_scenario`).
    backend : str or Backend
        ``"auto"``, ``"numpy"``, ``"cupy"``, ``"strict"`` or a backend object.
    step : callable, optional
        ``step(name)`` returns a context manager wrapped around each stage (progress display).
    """
    from imagingsim.delivery import simulate_delivery
    from imagingsim.phantom import build_phantom

    be = get_backend(backend) if isinstance(backend, str) else backend
    check_modalities(scenario)
    seed = subject_seed(scenario)
    timings: dict[str, float] = {}

    def timed(name, func, *args):
        start = time.perf_counter()
        with step(name):
            result = func(*args)
        timings[name] = time.perf_counter() - start
        return result

    phantom = timed("phantom", build_phantom, scenario.phantom, be, seed)
    delivery = timed("delivery", simulate_delivery, phantom, list(scenario.agents), scenario.schedule.times_h, be)
    acquisitions = {}
    for modality in scenario.modalities.enabled:
        acquire = _ACQUIRE[modality]()
        acquisitions[modality] = timed(modality, acquire, phantom, delivery, scenario, be, seed)
    return Subject(scenario, be, seed, phantom, delivery, acquisitions, timings)


def check_modalities(scenario: Scenario) -> None:
    """Check the enabled modalities' settings against their presets before simulating anything.

    Raises
    ------
    ValueError
        One line naming the field (e.g. ``modalities.pet.subsets``).
    """
    if "pet" in scenario.modalities.enabled:
        from imagingsim.modalities.pet import check_pet

        check_pet(scenario)
    if "mri" in scenario.modalities.enabled:
        from imagingsim.modalities.mri import check_mri

        check_mri(scenario)


def _pet_acquire():
    from imagingsim.modalities.pet import acquire_pet

    return acquire_pet


def _mri_acquire():
    from imagingsim.modalities.mri import acquire_mri

    return acquire_mri


def _nirf_acquire():
    from imagingsim.modalities.nirf import acquire_nirf

    return acquire_nirf


#: Modality name -> loader of its ``acquire(phantom, delivery, scenario, backend, seed)``
#: (imported lazily so a ground-truth-only run never imports the tomography stack).
_ACQUIRE = {"pet": _pet_acquire, "mri": _mri_acquire, "nirf": _nirf_acquire}


def _modality_writers(subject: Subject) -> list[Callable[[Path], Any]]:
    """``writer(stage)`` callables that add each acquisition's files to the dataset."""
    writers = []
    for modality, acquisition in subject.acquisitions.items():
        write = _WRITERS[modality]()
        writers.append(
            lambda stage, write=write, acquisition=acquisition: write(
                stage, subject.scenario, subject.phantom, acquisition, subject.backend
            )
        )
    return writers


def _pet_writer():
    from imagingsim.io.pet import write_pet

    return write_pet


def _mri_writer():
    from imagingsim.io.mri import write_mri

    return write_mri


def _nirf_writer():
    from imagingsim.io.nirf import write_nirf

    return write_nirf


#: Modality name -> loader of its ``write(stage, scenario, phantom, acquisition, backend)``.
_WRITERS = {"pet": _pet_writer, "mri": _mri_writer, "nirf": _nirf_writer}


def write_subject(subject: Subject, out_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write a subject as a BIDS dataset (atomically) and return the files written."""
    from imagingsim.io.bids import write_dataset

    return write_dataset(
        Path(out_dir), subject.scenario, subject.phantom, subject.delivery, subject.backend,
        overwrite=overwrite, extra_writers=_modality_writers(subject),
    )
