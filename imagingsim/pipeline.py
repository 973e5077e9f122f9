"""Scenario -> one simulated subject -> dataset on disk.

Each stage takes the previous stage's object and returns a new one (ARCHITECTURE: one
direction, no back-and-forth). The CLI and any scale-out only call these functions.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagingsim import scenario as scenario_module
from imagingsim.backend import Backend, get_backend
from imagingsim.modalities import registry
from imagingsim.modalities.base import OUTPUTS, WriteContext, acquisition_context, output_kinds
from imagingsim.scenario import Scenario, ScenarioError, apply_overrides, read_scenario_toml

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


def load_scenario(name_or_path: str | Path | None = None, overrides: list[str] | None = None) -> Scenario:
    """Load, override and validate a scenario with every registered modality's settings.

    Parameters
    ----------
    name_or_path : str or Path, optional
        Built-in name (``imagingsim phantoms``) or TOML path; None for the default scenario.
    overrides : list of str, optional
        ``dotted.key=value`` strings applied before validation (``--set``).

    Raises
    ------
    ScenarioError
        One line naming the field and what is allowed, for the core fields, each modality's
        settings table and each enabled modality's check against the rest of the scenario.
    """
    return validate_scenario(apply_overrides(read_scenario_toml(name_or_path), overrides or []))


def validate_scenario(data: dict[str, Any]) -> Scenario:
    """Validate a raw scenario table like :func:`load_scenario` (core, modality settings, checks)."""
    scenario = scenario_module.validate_scenario(data, registry.scenario_model())
    try:
        registry.check_enabled(scenario)
    except ValueError as exc:
        raise ScenarioError(str(exc).splitlines()[0]) from None
    return scenario


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
    return _run_stages(scenario, backend, step, _ignore_stage)


def simulate_and_write(
    scenario: Scenario,
    out_dir: str | Path,
    *,
    backend: str | Backend = "auto",
    step: StepReporter = _silent,
    overwrite: bool = False,
    outputs: Iterable[str] = OUTPUTS,
) -> tuple[Subject, list[Path]]:
    """Simulate one subject and write it, each stage's files written while the next computes.

    The same files as :func:`simulate` then :func:`write_subject`, byte for byte: one
    background thread runs the writers one at a time, in the same order, on stage results
    that are never modified after their stage. A subject otherwise keeps about one core busy
    (gzip, HDF5 and the next modality's kernels overlap on two). The last stage,
    ``"writing dataset"``, writes the fused images (fusion needs every acquisition) on this
    thread while the writer thread finishes, then waits for it.

    Parameters
    ----------
    outputs : iterable of str
        The kinds of files written, of :data:`imagingsim.modalities.base.OUTPUTS` (``"truth"``,
        ``"images"``, ``"raw"``); a kind left out is never written (no time spent on it), and
        what is written is the same bytes as in the full dataset.

    Returns
    -------
    (Subject, list of Path)
        The subject in memory and every file of the finished dataset.

    Raises
    ------
    ValueError
        ``outputs`` is empty or names an unknown kind (one line).
    """
    from imagingsim.dataset.write import finish_dataset, write_common
    from imagingsim.io.atomic import staged_directory

    kinds = output_kinds(outputs)
    out = Path(out_dir)
    with staged_directory(out, overwrite=overwrite) as stage, _Background() as background:
        def on_stage(subject: Subject, name: str) -> None:
            if name == "delivery":
                background.submit(write_common, stage, subject.scenario, subject.phantom, subject.delivery,
                                  subject.backend, kinds)
            elif name in subject.acquisitions:
                background.submit(_write_one, registry.get(name), subject.acquisitions[name],
                                  _write_context(subject, kinds), stage)
            background.submit(subject.backend.release_memory)  # the writer's buffers, once written

        subject = _run_stages(scenario, backend, step, on_stage)
        with step("writing dataset"):
            pairs = _fusion_pairs(subject) if "images" in kinds else []
            if pairs:
                # Here, while the writer thread finishes the last stages' files: the two
                # write different files, and nothing else is left to compute.
                background.raise_failed()
                _fuse_all(pairs, _write_context(subject, kinds), stage)
            background.wait()
            files = finish_dataset(stage, out, subject.scenario)
    return subject, files


class _Background:
    """One writer thread: jobs run one at a time in submission order; the first error is
    raised in the caller (at the next submit or wait), and the rest are cancelled."""

    def __enter__(self) -> _Background:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="imagingsim-writer")
        self._futures: list = []
        return self

    def submit(self, func, *args) -> None:
        self.raise_failed()
        self._futures.append(self._pool.submit(contextvars.copy_context().run, func, *args))

    def wait(self) -> None:
        for future in self._futures:
            future.result()

    def raise_failed(self) -> None:
        """Raise the first error of a finished job, if any."""
        for future in self._futures:
            if future.done() and future.exception() is not None:
                future.result()

    def __exit__(self, *exc) -> None:
        # On an error or interrupt, drop the queued writers; a running one finishes first
        # (a thread cannot be stopped), then the staging folder is removed by the caller.
        self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)


def _ignore_stage(_subject: Subject, _name: str) -> None:
    return None


def _run_stages(
    scenario: Scenario,
    backend: str | Backend,
    step: StepReporter,
    on_stage: Callable[[Subject, str], None],
) -> Subject:
    """The stages of :func:`simulate`; ``on_stage(subject_so_far, name)`` after each one."""
    from imagingsim.delivery import simulate_delivery
    from imagingsim.phantom import build_phantom

    be = get_backend(backend) if isinstance(backend, str) else backend
    if not isinstance(scenario, registry.scenario_model()):
        # A core Scenario keeps the modality tables raw: validate them (and run the checks) now.
        scenario = validate_scenario(scenario.model_dump(mode="json"))
    else:
        registry.check_enabled(scenario)  # also after model_copy(update=...), which skips validation
    seed = subject_seed(scenario)
    timings: dict[str, float] = {}

    def timed(name, func, *args):
        start = time.perf_counter()
        # One BLAS thread per call: BLAS's own threads would spin on the cores the stage's
        # threads use, and the bits would depend on the core count (Backend.serial_blas).
        with step(name), be.serial_blas():
            result = func(*args)
            be.release_memory()  # its temporaries, before the next stage adds its own
        timings[name] = time.perf_counter() - start
        return result

    phantom = timed("phantom", build_phantom, scenario.phantom, be, seed)
    delivery = timed("delivery", simulate_delivery, phantom, list(scenario.agents), scenario.schedule.times_h, be)
    acquisitions: dict[str, Any] = {}
    subject = Subject(scenario, be, seed, phantom, delivery, acquisitions, timings)
    on_stage(subject, "delivery")
    for name in registry.acquisition_order(scenario.modalities.enabled):
        modality = registry.get(name)
        inputs = {r: acquisitions[r] for r in modality.requires if r in acquisitions}
        ctx = acquisition_context(name, phantom, delivery, scenario, be, seed, **inputs)
        acquisitions[name] = timed(name, modality.acquire, ctx)
        on_stage(subject, name)
    return subject


def write_subject(subject: Subject, out_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write a subject as a BIDS dataset (atomically) and return the files written."""
    from imagingsim.dataset.write import write_dataset

    ctx = _write_context(subject)
    return write_dataset(
        Path(out_dir), subject.scenario, subject.phantom, subject.delivery, subject.backend,
        overwrite=overwrite, extra_writers=_modality_writers(subject, ctx),
    )


def _modality_writers(subject: Subject, ctx: WriteContext) -> list[Callable[[Path], Any]]:
    """``writer(stage)`` callables: each acquisition's files, then the fusion derivative of each
    functional acquisition onto an anatomical one that was acquired too."""
    writers: list[Callable[[Path], Any]] = [
        functools.partial(_write_one, registry.get(name), acquisition, ctx)
        for name, acquisition in subject.acquisitions.items()
    ]
    pairs = _fusion_pairs(subject)
    if pairs:
        writers.append(functools.partial(_fuse_all, pairs, ctx))
    return writers


def _write_context(subject: Subject, outputs: frozenset[str] = frozenset(OUTPUTS)) -> WriteContext:
    return WriteContext(subject.scenario, subject.phantom, subject.backend, subject.acquisitions, outputs)


def _fusion_pairs(subject: Subject) -> list:
    """(functional modality, anatomical name) for each fusion whose both acquisitions exist."""
    return [(registry.get(functional), anatomical)
            for functional in subject.acquisitions
            for anatomical in registry.get(functional).fuses_onto if anatomical in subject.acquisitions]


def _write_one(modality, acquisition, ctx: WriteContext, stage: Path):
    return modality.write(stage, acquisition, ctx)


def _fuse_all(pairs, ctx: WriteContext, stage: Path) -> list[Path]:
    from imagingsim.dataset.fusion import write_fusion_description

    written = []
    for modality, anatomical in pairs:
        written += modality.fuse(stage, ctx.acquisitions[modality.name], anatomical, ctx)
    if written:
        labels = [f"{modality.title} on {registry.get(anatomical).title}" for modality, anatomical in pairs]
        paragraphs = [modality.fusion_readme(anatomical) for modality, anatomical in pairs]
        written += write_fusion_description(stage, ctx.scenario, labels, paragraphs)
    return written
