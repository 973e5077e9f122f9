"""Scenario -> one simulated subject -> dataset on disk.

Each stage takes the previous stage's object and returns a new one (ARCHITECTURE: one
direction, no back-and-forth). The CLI and any scale-out only call these functions.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagingsim.backend import Backend, get_backend
from imagingsim.scenario import Scenario

StepReporter = Callable[[str], AbstractContextManager[Any]]


def _silent(_name: str) -> AbstractContextManager[Any]:
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
    for modality in acquisition_order(scenario.modalities.enabled):
        acquire = _ACQUIRE[modality]()
        inputs = {name: acquisitions[name] for name in _INPUTS.get(modality, ()) if name in acquisitions}
        acquisitions[modality] = timed(modality, functools.partial(acquire, **inputs), phantom, delivery, scenario,
                                       be, seed)
    return Subject(scenario, be, seed, phantom, delivery, acquisitions, timings)


def acquisition_order(enabled) -> list[str]:
    """The enabled modalities in the order they run: each after those whose results it uses."""
    ordered = [m for m in enabled if not _INPUTS.get(m)]
    return ordered + [m for m in enabled if _INPUTS.get(m)]


def check_modalities(scenario: Scenario) -> None:
    """Check the enabled modalities' settings against their presets before simulating anything.

    Raises
    ------
    ValueError
        One line naming the field (e.g. ``modalities.pet.subsets``).
    """
    if "pet" in scenario.modalities.enabled:
        from imagingsim.modalities.pet.acquire import check_pet

        check_pet(scenario)
    if "mri" in scenario.modalities.enabled:
        from imagingsim.modalities.mri.acquire import check_mri

        check_mri(scenario)
    if "spect" in scenario.modalities.enabled:
        from imagingsim.modalities.spect.acquire import check_spect

        check_spect(scenario)
    if "ct" in scenario.modalities.enabled:
        from imagingsim.modalities.ct.acquire import check_ct

        check_ct(scenario)


def _pet_acquire():
    from imagingsim.modalities.pet.acquire import acquire_pet

    return acquire_pet


def _mri_acquire():
    from imagingsim.modalities.mri.acquire import acquire_mri

    return acquire_mri


def _nirf_acquire():
    from imagingsim.modalities.nirf.acquire import acquire_nirf

    return acquire_nirf


def _spect_acquire():
    from imagingsim.modalities.spect.acquire import acquire_spect

    return acquire_spect


def _ct_acquire():
    from imagingsim.modalities.ct.acquire import acquire_ct

    return acquire_ct


#: Modality name -> loader of its ``acquire(phantom, delivery, scenario, backend, seed, **inputs)``
#: (imported lazily so a ground-truth-only run never imports the tomography stack).
_ACQUIRE = {"pet": _pet_acquire, "mri": _mri_acquire, "nirf": _nirf_acquire, "spect": _spect_acquire,
            "ct": _ct_acquire}
#: Modality -> the acquisitions it takes as keyword inputs when they are enabled too (SPECT
#: corrects attenuation with the CT of the same subject).
_INPUTS = {"spect": ("ct",)}


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
    for (functional, anatomical), loader in _FUSIONS.items():
        if functional in subject.acquisitions and anatomical in subject.acquisitions:
            fuse = loader()
            writers.append(
                lambda stage, fuse=fuse, f=functional, a=anatomical: fuse(
                    stage, subject.scenario, subject.phantom, subject.acquisitions[f], subject.acquisitions[a],
                    subject.backend,
                )
            )
    return writers


def _pet_writer():
    from imagingsim.modalities.pet.bids import write_pet

    return write_pet


def _mri_writer():
    from imagingsim.modalities.mri.bids import write_mri

    return write_mri


def _nirf_writer():
    from imagingsim.modalities.nirf.bids import write_nirf

    return write_nirf


def _spect_writer():
    from imagingsim.modalities.spect.bids import write_spect

    return write_spect


def _ct_writer():
    from imagingsim.modalities.ct.bids import write_ct

    return write_ct


def _pet_mri_fusion():
    from imagingsim.io.fusion import write_pet_mri_fusion

    return write_pet_mri_fusion


def _spect_ct_fusion():
    from imagingsim.io.fusion import write_spect_ct_fusion

    return write_spect_ct_fusion


#: Modality name -> loader of its ``write(stage, scenario, phantom, acquisition, backend)``.
_WRITERS = {"pet": _pet_writer, "mri": _mri_writer, "nirf": _nirf_writer, "spect": _spect_writer, "ct": _ct_writer}
#: (functional, anatomical) -> loader of ``fuse(stage, scenario, phantom, functional_acq, anatomical_acq,
#: backend)``, run when both are acquired: the functional images resampled onto the anatomical grid.
_FUSIONS = {("pet", "mri"): _pet_mri_fusion, ("spect", "ct"): _spect_ct_fusion}


def write_subject(subject: Subject, out_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write a subject as a BIDS dataset (atomically) and return the files written."""
    from imagingsim.io.bids import write_dataset

    return write_dataset(
        Path(out_dir), subject.scenario, subject.phantom, subject.delivery, subject.backend,
        overwrite=overwrite, extra_writers=_modality_writers(subject),
    )
