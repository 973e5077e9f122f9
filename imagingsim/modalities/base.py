"""The Modality contract: everything the pipeline, the dataset writer and the CLI know of a modality.

A modality is one subpackage of :mod:`imagingsim.modalities` (or of another installed package)
whose ``__init__`` defines ``MODALITY``, an instance of a :class:`Modality` subclass. The
registry (:mod:`imagingsim.modalities.registry`) finds it; nothing else in the core names it.

The life of a modality in one simulation::

    spec = Spec.model_validate(scenario table [modalities.<name>])    # at scenario load
    check(spec, scenario)                                              # before any work
    acquisition = acquire(AcquisitionContext(spec, agents, ...))       # after the delivery stage
    write(stage, acquisition, WriteContext(...))                       # into the staged dataset
    summary(acquisition, subject) -> lines                             # printed by the CLI
    report_section(view) -> ReportSection | None                       # teaching report, from the written dataset
    recon_problem(ctx, acquisition) -> ProblemSource | None            # reconstruction benchmark (+ baselines)

``requires`` names modalities whose acquisitions this one uses when they are enabled too (SPECT
corrects attenuation with the CT of the same subject); they are acquired first and handed over
in ``ctx.inputs``, and the only thing used of them is their public result object, never their
acquisition module.

References
----------
The shape follows plug-in registries of scientific Python: xarray's backend entry points
(``xarray.backends.plugins``) and SIRF's per-engine subpackages behind one interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from imagingsim.io.sessions import session_entity
from imagingsim.io.truth_files import TruthFile

if TYPE_CHECKING:
    from imagingsim.backend import Backend
    from imagingsim.grid import ImageGrid
    from imagingsim.modalities.sections import ReportSection
    from imagingsim.recon.problem import ProblemSource
    from imagingsim.scenario import AgentSpec, Scenario, ScheduleSpec


@dataclass(frozen=True, eq=False)
class AcquisitionContext:
    """What a modality's ``acquire`` receives: its settings and the subject, not the whole scenario.

    Attributes
    ----------
    spec : pydantic.BaseModel
        The modality's validated settings (an instance of its ``Spec``).
    agents : tuple of AgentSpec
        The injected agents, in scenario order.
    schedule : ScheduleSpec
        Imaging times, h after the first injection (``schedule.times_h``).
    phantom : imagingsim.phantom.Phantom
        Labels and property maps on the image grid.
    delivery : imagingsim.delivery.DeliveryResult
        Concentration maps over time per agent.
    backend : Backend
        Where the arrays live.
    seed : int
        The subject seed; each modality derives its own noise streams from it.
    inputs : Mapping[str, Any]
        Acquisitions of the modalities in ``requires`` that ran before this one.
    """

    spec: Any
    agents: tuple[AgentSpec, ...]
    schedule: ScheduleSpec
    phantom: Any
    delivery: Any
    backend: Backend
    seed: int
    inputs: Mapping[str, Any] = field(default_factory=dict)


#: What a dataset may hold, each kind written or left out as a whole (``--outputs``):
#: ``"images"`` the raw BIDS images (``sub-<id>/``) and the derived estimates and fusions
#: (``derivatives/`` but the truth), ``"raw"`` the raw data and system models
#: (``sourcedata/``: most of the bytes), ``"truth"`` the ground truth (``derivatives/truth/``).
OUTPUTS: tuple[str, ...] = ("truth", "images", "raw")


def output_kinds(outputs: Iterable[str]) -> frozenset[str]:
    """``outputs`` as a set of :data:`OUTPUTS`; ValueError (one line, ``--outputs``) when it is
    empty or names another kind."""
    kinds = frozenset(outputs)
    if not kinds or not kinds <= set(OUTPUTS):
        raise ValueError(f"--outputs: {','.join(sorted(kinds - set(OUTPUTS))) or 'nothing'} not allowed; "
                         f"choose from {','.join(OUTPUTS)}")
    return kinds


@dataclass(frozen=True, eq=False)
class WriteContext:
    """What a modality's ``write`` receives.

    Attributes
    ----------
    scenario : Scenario
        For the subject id, the scenario name and the schedule (file names and sidecars).
    phantom : imagingsim.phantom.Phantom
        The image grid and the body (SUV, anatomy).
    backend : Backend
        For the explicit device -> host copies.
    acquisitions : Mapping[str, Any]
        Every acquisition of the subject, by modality name (for fusion onto another modality).
    outputs : frozenset of str
        The kinds of :data:`OUTPUTS` this dataset gets; a writer writes (and creates the folders
        of) only those, asking :meth:`writes`, so a left-out kind costs no time.
    """

    scenario: Scenario
    phantom: Any
    backend: Backend
    acquisitions: Mapping[str, Any] = field(default_factory=dict)
    outputs: frozenset[str] = frozenset(OUTPUTS)

    def writes(self, kind: str) -> bool:
        """Whether files of ``kind`` (one of :data:`OUTPUTS`) are written."""
        if kind not in OUTPUTS:
            raise ValueError(f"output kind {kind!r}: choose from {', '.join(OUTPUTS)}")
        return kind in self.outputs

    @property
    def sub(self) -> str:
        """The BIDS subject label, ``sub-<id>``."""
        return f"sub-{self.scenario.subject_id}"

    def prefix(self, time_h: float | None = None) -> str:
        """The start of a file name: ``sub-<id>``, or ``sub-<id>_ses-<time>`` for the session
        at schedule time ``time_h`` (:func:`~imagingsim.io.sessions.session_label`)."""
        return self.sub if time_h is None else f"{self.sub}_{session_entity(time_h)}"

    def images_dir(self, stage: Path, datatype: str, time_h: float | None = None) -> Path:
        """``stage/sub-<id>[/ses-<time>]/<datatype>/`` (created): the reconstructed images."""
        return _made(stage / self.images_relpath(datatype, time_h))

    def images_relpath(self, datatype: str, time_h: float | None = None) -> str:
        """``sub-<id>[/ses-<time>]/<datatype>``: the images folder, from the dataset root (for
        references to it from other files, whether or not the images are written)."""
        return (self._subject_path(time_h) / datatype).as_posix()

    def sourcedata_dir(self, stage: Path, name: str, time_h: float | None = None) -> Path:
        """``stage/sourcedata/sub-<id>[/ses-<time>]/<name>/`` (created): raw data and system model."""
        return _made(stage / "sourcedata" / self._subject_path(time_h) / name)

    def truth_dir(self, stage: Path, name: str, time_h: float | None = None) -> Path:
        """``stage/derivatives/truth/sub-<id>[/ses-<time>]/<name>/`` (created): this modality's ground truth."""
        return self.derivative_dir(stage, "truth", name, time_h)

    def derivative_dir(self, stage: Path, pipeline: str, datatype: str, time_h: float | None = None) -> Path:
        """``stage/derivatives/<pipeline>/sub-<id>[/ses-<time>]/<datatype>/`` (created)."""
        return _made(stage / "derivatives" / pipeline / self._subject_path(time_h) / datatype)

    def _subject_path(self, time_h: float | None) -> Path:
        return Path(self.sub) if time_h is None else Path(self.sub, session_entity(time_h))


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class StageCost:
    """What one stage of a subject costs: bytes it adds to the peak memory, bytes it writes,
    and wall time in s on one core. :mod:`imagingsim.resources` sums them."""

    memory_bytes: float
    output_bytes: float
    seconds: float

    def scaled(self, factor: float) -> StageCost:
        """This cost per unit (voxel, voxel-time...) times ``factor`` units."""
        return StageCost(self.memory_bytes * factor, self.output_bytes * factor, self.seconds * factor)

    def __add__(self, other: StageCost) -> StageCost:
        return StageCost(self.memory_bytes + other.memory_bytes, self.output_bytes + other.output_bytes,
                         self.seconds + other.seconds)


@dataclass(frozen=True)
class CostModel:
    """A stage cost linear in the phantom voxels N and the schedule's time points T:
    ``constant + N * per_voxel + N * T * per_voxel_time``."""

    constant: StageCost
    per_voxel: StageCost
    per_voxel_time: StageCost

    def at(self, n_voxels: int, n_times: int) -> StageCost:
        return self.constant + self.per_voxel.scaled(n_voxels) + self.per_voxel_time.scaled(n_voxels * n_times)


#: For a modality that has not measured itself: generous (2 kB of memory, 100 B of output and
#: 10 us per voxel and time point), so that an unknown plugin errs towards refusing.
UNMEASURED_COST = CostModel(
    constant=StageCost(0.0, 0.0, 0.0),
    per_voxel=StageCost(0.0, 0.0, 0.0),
    per_voxel_time=StageCost(2000.0, 100.0, 1e-5),
)


class Modality(ABC):
    """One imaging modality behind the common interface.

    Class attributes
    ----------------
    name : str
        Lower-case key: the scenario table ``[modalities.<name>]`` and the ``--modalities`` value.
    title : str
        How texts name it (``"PET"``, ``"NIR fluorescence"``).
    description : str
        One line for ``imagingsim modalities``.
    Spec : type[pydantic.BaseModel]
        The settings model; every field has a default so that an absent table is valid.
    requires : tuple of str
        Modalities whose acquisitions this one uses when they are enabled too (acquired first).
    fuses_onto : tuple of str
        Anatomical modalities this functional one is resampled and overlaid onto when both ran.
    bids_datatype : str
        The folder under ``sub-<id>/`` its images go to.
    bids_standard : bool
        False when BIDS has no datatype for it: the folder is then listed in ``.bidsignore``.
    truth_files : tuple of TruthFile
        Patterns of the files it adds to the ground-truth derivative (documented in its README).
    extension_suffixes : dict of str to str
        File-name suffixes it writes that BIDS does not define, with their meaning.
    summary_needs_tumour : bool
        Whether :meth:`summary` reports tumour values (then it is skipped for a phantom without one).
    example : (str, tuple of str)
        A built-in scenario and ``--set`` overrides that run this modality (the contract test
        runs it on every backend, at a coarse voxel size and one schedule time).
    baselines : dict of str to str
        Its built-in reconstructions for the benchmark harness (:mod:`imagingsim.bench`): name ->
        ``"module:attribute"`` of a plug-in (the protocol third-party plug-ins follow), loaded
        only when asked for. Empty by default: a modality without them has no baselines.
    cost_model : CostModel
        Its memory, output and time per voxel and time point (:meth:`cost`), fitted to
        measurements; :data:`UNMEASURED_COST` until then.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    Spec: ClassVar[type[BaseModel]]
    requires: ClassVar[tuple[str, ...]] = ()
    fuses_onto: ClassVar[tuple[str, ...]] = ()
    bids_datatype: ClassVar[str]
    bids_standard: ClassVar[bool] = True
    truth_files: ClassVar[tuple[TruthFile, ...]] = ()
    extension_suffixes: ClassVar[dict[str, str]] = {}
    summary_needs_tumour: ClassVar[bool] = True
    example: ClassVar[tuple[str, tuple[str, ...]]]
    cost_model: ClassVar[CostModel] = UNMEASURED_COST
    baselines: ClassVar[dict[str, str]] = {}

    def check(self, spec: BaseModel, scenario: Scenario) -> None:
        """Check the settings against the rest of the scenario before any work.

        Raises
        ------
        ValueError
            One line naming the field, e.g. ``modalities.pet.subsets: ...``.
        """

    @abstractmethod
    def acquire(self, ctx: AcquisitionContext) -> Any:
        """Simulate (and reconstruct) this modality for one subject; returns its result object."""

    @abstractmethod
    def write(self, stage: Path, acquisition: Any, ctx: WriteContext) -> Sequence[Path] | None:
        """Write the acquisition's images, raw data and truth into the dataset staged at ``stage``;
        only the kinds ``ctx.writes`` names (:data:`OUTPUTS`), without asking for the others' folders."""

    def fuse(self, stage: Path, acquisition: Any, anatomical: str, ctx: WriteContext) -> list[Path]:
        """Write this functional acquisition resampled onto modality ``anatomical`` (``fuses_onto``).

        Files go under ``stage / "derivatives" / "fusion"``; the dataset writer adds that
        derivative's description and README when any modality wrote into it.
        """
        raise NotImplementedError(f"{self.name} declares no fusion onto {anatomical}")

    def fusion_readme(self, anatomical: str) -> str:
        """The README paragraph of the files :meth:`fuse` writes onto ``anatomical``."""
        return ""

    def cost(self, spec: BaseModel, scenario: Scenario, grid: ImageGrid) -> StageCost:
        """What this modality adds to a subject's peak memory, output and time, before any work.

        Parameters
        ----------
        spec : pydantic.BaseModel
            Its validated settings.
        scenario : Scenario
            The whole scenario (the schedule gives the number of time points).
        grid : ImageGrid
            The phantom grid (no array is made before the estimate).

        Notes
        -----
        Evaluates :attr:`cost_model` at the grid's voxel count and the schedule; override for
        a modality whose needs follow other settings.
        """
        return self.cost_model.at(grid.n_voxels, len(scenario.schedule.times_h))

    def summary(self, acquisition: Any, subject: Any) -> list[str]:
        """Lines for the CLI summary (what the scanner saw against the truth)."""
        return []

    def report_section(self, view: Any) -> ReportSection | None:
        """This modality's section of the teaching report, measured from a written dataset.

        Parameters
        ----------
        view : imagingsim.report.dataset.DatasetView
            The dataset's files, sessions, masks and measuring helpers (plotting included),
            so that the modality needs nothing of the report layer.

        Returns
        -------
        ReportSection or None
            None (the default): the modality adds nothing to the report.
        """
        return None

    def recon_problem(self, ctx: AcquisitionContext, acquisition: Any, *, frame: int = 0) -> ProblemSource | None:
        """The benchmark problem of session ``frame`` of this acquisition, or None.

        Parameters
        ----------
        ctx : AcquisitionContext
            The context ``acquisition`` was made with (settings, phantom, delivery, backend, seed).
        acquisition : object
            What :meth:`acquire` returned.
        frame : int, keyword-only
            Index of the session (frame) among those the acquisition holds.

        Returns
        -------
        ProblemSource or None
            The truth on its grid, the tissue labels and ``draw(seed, count_scale)`` giving a
            :class:`~imagingsim.recon.problem.ReconProblem` per noise realisation, drawn with
            this modality's own noise model. None (the default): this modality offers no
            reconstruction benchmark.
        """
        return None

    def __repr__(self) -> str:
        return f"<Modality {self.name}>"


def acquisition_context(
    name: str, phantom, delivery, scenario: Scenario, backend: Backend, seed: int, **inputs: Any
) -> AcquisitionContext:
    """The :class:`AcquisitionContext` of modality ``name`` for one subject of ``scenario``.

    The pipeline builds it this way; tests and benchmarks that drive one modality directly
    use it too.
    """
    return AcquisitionContext(
        spec=getattr(scenario.modalities, name),
        agents=tuple(scenario.agents),
        schedule=scenario.schedule,
        phantom=phantom,
        delivery=delivery,
        backend=backend,
        seed=seed,
        inputs={k: v for k, v in inputs.items() if v is not None},
    )


# Number formats shared by the modalities' summary lines, so the CLI reads the same for all.
def fixed(values) -> str:
    """Values with three significant digits, comma-separated."""
    return ", ".join(f"{v:.3g}" for v in values)


def kilo(values) -> str:
    """Values / 1000 with three significant digits, comma-separated (Bq/mL -> kBq/mL)."""
    return ", ".join(f"{v / 1000:.3g}" for v in values)
