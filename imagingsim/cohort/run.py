"""Write a cohort as one BIDS dataset, subject by subject, resumable.

Each subject is simulated and written as a complete single-subject dataset in a staging
directory beside ``out`` (same file system), then its folders (``sub-<label>/``,
``sourcedata/sub-<label>/``, ``derivatives/<name>/sub-<label>/``) are renamed into ``out`` and
a completion record is written last, atomically, under ``out/.imagingsim/subjects/``: the
subject's drawn values, group, seed and every file with its size and SHA-256. A subject is
complete exactly when its record exists; anything of a subject without a record is stale
(a run killed between the renames) and is removed before the subject is redone.
``--resume`` keeps the complete subjects and redoes the rest. A subject that raises is left
absent, its traceback kept under ``out/.imagingsim/failed/``, and the run goes on. The
dataset-level files (``dataset_description.json``, ``participants.tsv`` with every drawn value,
the derivatives' descriptions) are rewritten atomically from the records at the end of every run.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib

from imagingsim.backend import cpu_threads, restore_heap_reuse
from imagingsim.cohort.spec import Cohort, SubjectDraw
from imagingsim.dataset.layout import bidsignore_patterns
from imagingsim.dataset.write import SPECIES_BINOMIAL
from imagingsim.io.atomic import atomic_write_text
from imagingsim.io.lock import output_lock
from imagingsim.io.sidecars import BIDS_VERSION, LICENSE, generated_by, version, write_json, write_tsv
from imagingsim.modalities.base import OUTPUTS, output_kinds
from imagingsim.pipeline import simulate_and_write
from imagingsim.resources import available_memory_bytes, estimate_resources

RECORDS = Path(".imagingsim") / "subjects"
#: The traceback of each subject that failed in the last run, until a run completes it.
FAILURES = Path(".imagingsim") / "failed"
#: A subject whose worker dies (killed, out of memory) is tried again up to this many times.
TASK_RETRIES = 2
_STAGING_PREFIX = ".imagingsim-subject-"
#: What a Dask worker process holds beyond a plain ``imagingsim simulate`` of the same subject
#: (distributed, its event loop and comms): the peak RSS of a 1 mm mouse subject was 476 MB in a
#: worker and 404 MB in ``imagingsim simulate`` (estimate 385 MB).
DASK_WORKER_BYTES = 75e6

#: Units of a drawn field from the suffix of its name (the scenario's unit convention).
UNIT_SUFFIXES = {
    "_mg_per_kg": "mg/kg", "_per_h": "1/h", "_nM": "nM", "_mm": "mm", "_ms": "ms", "_h": "h",
    "_h_mouse": "h", "_h_human": "h", "_MBq_per_mg": "MBq/mg", "_nmol_per_mg": "nmol/mg", "_T": "T",
}


@dataclass(frozen=True)
class CohortRun:
    """What a run did: subjects written now, subjects kept from before, subjects that failed
    (label -> one line: the error; the traceback is in ``out/.imagingsim/failed/``), the dataset root."""

    out: Path
    written: tuple[str, ...]
    kept: tuple[str, ...]
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SubjectDone:
    """One subject finished, written or failed (for a progress display).

    Attributes
    ----------
    label : str
        The subject (``001`` ...).
    done, failed, total : int
        Complete subjects so far (those an earlier run kept included), subjects failed in this
        run so far, subjects in the cohort.
    kept : int
        Of ``done``, the subjects kept from an earlier run (not part of this run's rate).
    error : str or None
        One line when this subject failed.
    """

    label: str
    done: int
    failed: int
    total: int
    kept: int
    error: str | None = None


def run_cohort(
    cohort: Cohort,
    out: str | os.PathLike,
    *,
    outputs: Iterable[str] = OUTPUTS,
    resume: bool = False,
    backend: str = "auto",
    workers: int = 1,
    scheduler: str | None = None,
    on_subject: Callable[[SubjectDone], None] | None = None,
) -> CohortRun:
    """Simulate and write every subject of ``cohort`` into the BIDS dataset ``out``.

    Parameters
    ----------
    cohort : Cohort
        A loaded cohort (:func:`imagingsim.cohort.load_cohort`).
    out : path-like
        The dataset root: absent or empty, or (with ``resume``) a cohort dataset of an earlier run.
    outputs : iterable of str
        Any of :data:`OUTPUTS`; what is left out is not written.
    resume : bool
        Keep the subjects an earlier run completed and redo the rest.
    backend : str
        The backend every subject runs on.
    workers : int
        Subjects at a time: 1 runs them here one after another; more starts a Dask
        ``LocalCluster`` of that many processes.
    scheduler : str, optional
        The address of a running Dask scheduler (``tcp://host:port``) to run the subjects on
        instead (a SLURM/PBS cluster through ``dask-jobqueue``, for example).
    on_subject : callable, optional
        ``on_subject(SubjectDone)`` after each subject, written or failed (progress display).

    Returns
    -------
    CohortRun
        A subject whose simulation or writing raised is left absent, its error recorded under
        ``out/.imagingsim/failed/``, and the run goes on with the others (``--resume`` redoes it);
        a worker that dies has its subject run again instead (Dask's ``allowed-failures``).

    Raises
    ------
    ValueError
        ``out`` holds files and ``resume`` is false, or ``outputs`` names something unknown
        (one line).
    """
    kinds = output_kinds(outputs)
    outputs = tuple(o for o in OUTPUTS if o in kinds)  # in the order of OUTPUTS: the cohort's identity
    if workers < 1:
        raise ValueError(f"--workers: must be at least 1, got {workers}")
    if scheduler is None:
        _check_memory(cohort, workers)
    out = Path(out).absolute()
    if out.exists() and any(out.iterdir()) and not resume:
        raise ValueError(f"--out {out}: not empty; use --resume to complete an earlier run of this cohort")
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        _check_same_cohort(cohort, out, outputs)
        _remove_stale_staging(out)
        complete = {label for label in map(cohort.label, range(1, cohort.subjects + 1)) if _complete_or_cleared(out, label)}
        todo = [n for n in range(1, cohort.subjects + 1) if cohort.label(n) not in complete]
        progress = _Progress(on_subject, out, len(complete), cohort.subjects)
        if workers <= 1 and scheduler is None:
            for number in todo:
                try:
                    write_subject_task(cohort, number, out, outputs, backend)
                except Exception as exc:  # noqa: BLE001 - recorded, and the others go on
                    progress.failed(cohort.label(number), exc)
                else:
                    progress.one(cohort.label(number))
        else:
            _run_on_dask(cohort, todo, out, outputs, backend, workers, scheduler, progress)
        _remove_stale_staging(out)  # of workers killed mid-subject (their subjects were redone)
        if not progress.errors:
            shutil.rmtree(out / FAILURES, ignore_errors=True)  # earlier runs' failures, all redone
        _write_dataset_files(cohort, out)
    written = tuple(cohort.label(n) for n in todo if cohort.label(n) not in progress.errors)
    return CohortRun(out, written, tuple(sorted(complete)), dict(sorted(progress.errors.items())))


def _check_same_cohort(cohort: Cohort, out: Path, outputs: tuple[str, ...]) -> None:
    """Record what makes the subjects (the cohort but its size, the base scenario, the outputs)
    in ``.imagingsim/cohort.json``; a resume of another cohort is refused in one line."""
    # through JSON, so that it compares equal to what an earlier run wrote (tuples become lists)
    identity = json.loads(json.dumps({"Cohort": cohort.spec.model_dump(mode="json", exclude={"subjects"}),
                                      "Base": cohort.base, "Outputs": sorted(outputs)}))
    path = out / RECORDS.parent / "cohort.json"
    if path.is_file():
        before = json.loads(path.read_text())
        if before != identity:
            differs = next(k for k in identity if before.get(k) != identity[k])
            raise ValueError(f"--resume: {out} holds subjects of another cohort or settings ({differs} differs); "
                             "use another --out")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, identity)


def _check_memory(cohort: Cohort, workers: int) -> None:
    """Refuse, in one line, ``workers`` subjects at a time that the machine's memory cannot hold
    (each a Dask worker process when more than one: :data:`DASK_WORKER_BYTES` more)."""
    need = max(estimate_resources(cohort.subject(n).scenario).peak_bytes for n in (1, cohort.subjects))
    need += DASK_WORKER_BYTES if workers > 1 else 0.0
    available = available_memory_bytes()
    if available is None or need * workers <= available:
        return
    fits = int(available // need)
    advice = f"--workers {fits} fits" if fits >= 1 else "a coarser phantom.voxel_size_mm (--set) is needed"
    raise ValueError(f"--workers {workers}: each subject needs about {need / 1e9:.2f} GB at its peak, "
                     f"{available / 1e9:.2f} GB available; {advice}")


class _Progress:
    """Counts the subjects written and failed for ``on_subject``; records each failure."""

    def __init__(self, callback, out: Path, done: int, total: int):
        self.callback, self.out, self.done, self.kept, self.total = callback, out, done, done, total
        self.errors: dict[str, str] = {}

    def one(self, label: str) -> None:
        self.done += 1
        _failure_path(self.out, label).unlink(missing_ok=True)  # of an earlier run
        self._report(label, None)

    def failed(self, label: str, exc: BaseException) -> None:
        line = " ".join(f"{type(exc).__name__}: {exc}".split())
        self.errors[label] = line
        path = _failure_path(self.out, label)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "".join(traceback.format_exception(exc)))
        self._report(label, line)

    def _report(self, label: str, error: str | None) -> None:
        if self.callback is not None:
            self.callback(SubjectDone(label, self.done, len(self.errors), self.total, self.kept, error))


def write_subject_task(cohort: Cohort, number: int, out: Path, outputs: tuple[str, ...], backend: str) -> str:
    """One subject, start to finish: the unit of work of a cohort (a Dask task); its label."""
    restore_heap_reuse()  # in a Dask worker, whose nanny pinned glibc's thresholds
    _write_one(cohort.subject(number), out, outputs, backend)
    return cohort.label(number)


def _run_on_dask(cohort: Cohort, numbers: list[int], out: Path, outputs: tuple[str, ...], backend: str,
                 workers: int, scheduler: str | None, progress: _Progress) -> None:
    """Each subject one task on a ``LocalCluster`` of ``workers`` processes, or on the cluster at
    ``scheduler``; a task whose worker dies is run again on another (up to ``TASK_RETRIES``
    times on a LocalCluster: the scheduler's ``allowed-failures``), one that raises is failed
    (a simulation is deterministic: running it again would raise again)."""
    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    environ = dict(os.environ)  # the nannies set their workers' variables in this process too
    if scheduler is None:
        threads = max(1, cpu_threads() // workers)  # processes x threads <= the CPUs: no oversubscription
        # Dask's default worker environment also sets MALLOC_TRIM_THRESHOLD_=65536 (see
        # restore_heap_reuse, which each task runs for the clusters of others)
        env = {name: str(threads) for name in ("IMAGINGSIM_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                               "MKL_NUM_THREADS")}
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # left here by an earlier LocalCluster
        # Dask's statistical profiler samples every thread's stack each 10 ms: 4 % of a subject
        with dask.config.set({"distributed.nanny.pre-spawn-environ": env,
                              "distributed.scheduler.allowed-failures": TASK_RETRIES,
                              "distributed.worker.profile.enabled": False}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
    try:
        with Client(scheduler or cluster) as client:
            futures = {client.submit(write_subject_task, cohort, n, out, outputs, backend,
                                     key=f"imagingsim-sub-{cohort.label(n)}", pure=False): cohort.label(n)
                       for n in numbers}
            for future in as_completed(futures):
                if future.status == "finished":
                    progress.one(future.result())
                elif future.status == "error":  # raised, or its workers died too often (KilledWorker)
                    progress.failed(futures[future], future.exception())
                else:  # cancelled: the cluster went away
                    progress.failed(futures[future], RuntimeError(f"the Dask task was {future.status}"))
    finally:
        if cluster is not None:
            cluster.close()
        os.environ.clear()
        os.environ.update(environ)


def _record_path(out: Path, label: str) -> Path:
    return out / RECORDS / f"sub-{label}.json"


def _failure_path(out: Path, label: str) -> Path:
    return out / FAILURES / f"sub-{label}.txt"


def _complete_or_cleared(out: Path, label: str) -> bool:
    """The record exists and every file it lists is there with its size (a fast check); a
    subject that is not complete has its stale folders removed."""
    path = _record_path(out, label)
    if not path.is_file():
        _remove_subject(out, label)  # stale: killed between the renames
        shutil.rmtree(out / RECORDS / f"sub-{label}", ignore_errors=True)
        return False
    files = json.loads(path.read_text())["Files"]
    if all((out / rel).is_file() and (out / rel).stat().st_size == entry["size"] for rel, entry in files.items()):
        return True
    path.unlink()
    _remove_subject(out, label)
    return False


def _subject_folders(root: Path, label: str) -> list[Path]:
    """Every folder of subject ``label`` under a dataset root, relative to it."""
    sub = f"sub-{label}"
    folders = [Path(sub), Path("sourcedata", sub)]
    derivatives = root / "derivatives"
    if derivatives.is_dir():
        folders += [Path("derivatives", d.name, sub) for d in sorted(derivatives.iterdir()) if d.is_dir()]
    return [f for f in folders if (root / f).exists()]


def _remove_subject(out: Path, label: str) -> None:
    for folder in _subject_folders(out, label):
        shutil.rmtree(out / folder)


def _remove_stale_staging(out: Path) -> None:
    for path in out.parent.glob(f".{out.name}{_STAGING_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)


def _write_one(draw: SubjectDraw, out: Path, outputs: tuple[str, ...], backend: str) -> None:
    """Simulate ``draw``, stage it beside ``out``, rename its folders in, then write its record."""
    staging = out.parent / f".{out.name}{_STAGING_PREFIX}{draw.label}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        dataset = staging / "ds"
        subject, _ = simulate_and_write(draw.scenario, dataset, backend=backend, outputs=outputs)
        files = {}
        for folder in _subject_folders(dataset, draw.label):
            for path in sorted(p for p in (dataset / folder).rglob("*") if p.is_file()):
                files[path.relative_to(dataset).as_posix()] = {"size": path.stat().st_size, "sha256": _sha256(path)}
        pairs = manifest_rows(dataset, draw.label)
        _keep_dataset_level_files(dataset, out, draw.label)
        for folder in _subject_folders(dataset, draw.label):
            target = out / folder
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            os.rename(dataset / folder, target)
        _record_path(out, draw.label).parent.mkdir(parents=True, exist_ok=True)
        write_json(_record_path(out, draw.label), {
            "Subject": f"sub-{draw.label}",
            "Number": draw.number,
            "Group": draw.group,
            "Values": draw.values,
            "Seed": draw.scenario.seed,
            "Species": SPECIES_BINOMIAL.get(subject.phantom.species, subject.phantom.species),
            "Weight_kg": float(subject.phantom.body_mass_g) / 1000.0,
            "Files": files,
            "Manifest": pairs,
        })
    finally:
        shutil.rmtree(staging, ignore_errors=True)


#: Columns of ``manifest.tsv`` (see :func:`manifest_rows`).
MANIFEST_COLUMNS = ("participant_id", "session", "time_h", "image", "image_units", "truth", "truth_units", "labels")


def manifest_rows(dataset: Path, label: str) -> list[list[Any]]:
    """Training pairs of one subject: every image of a session with every truth map of the same
    session on the same voxel grid (shape and affine), and the tissue labels.

    Read from the files alone (grids from the NIfTI headers, units from the sidecars), so any
    modality's images pair with any truth without the cohort knowing either.
    """
    sub = f"sub-{label}"
    truth_root = dataset / "derivatives" / "truth" / sub
    labels = truth_root / "anat" / f"{sub}_dseg.nii.gz"
    sessions = {row.split("\t")[0]: row.split("\t")[2]
                for row in (dataset / sub / f"{sub}_sessions.tsv").read_text().splitlines()[1:]} \
        if (dataset / sub / f"{sub}_sessions.tsv").is_file() else {}
    labels_column = _rel(labels, dataset) if labels.is_file() else "n/a"
    rows = []
    for session, time_h in sessions.items():
        truths = [(_rel(p, dataset), _grid(p), _units(p)) for p in sorted((truth_root / session).rglob("*.nii.gz"))]
        for image in sorted((dataset / sub / session).rglob("*.nii.gz")):
            grid, units = _grid(image), _units(image)
            for truth, truth_grid, truth_units in truths:
                if truth_grid == grid:
                    rows.append([sub, session, float(time_h), _rel(image, dataset), units, truth, truth_units,
                                 labels_column])
    return rows


def _grid(path: Path) -> tuple:
    """A NIfTI-1's voxel grid: spatial shape and affine, from its header alone (the 348 bytes
    at the start of the gzip stream; a third of the time of ``nibabel.load``)."""
    with gzip.open(path) as stream:
        header = nib.Nifti1Header.from_fileobj(stream)
    return tuple(header.get_data_shape()[:3]), tuple(round(float(v), 6) for v in header.get_best_affine().ravel())


def _units(path: Path) -> str:
    sidecar = path.with_name(path.name.removesuffix(".nii.gz") + ".json")
    return str(json.loads(sidecar.read_text()).get("Units", "n/a")) if sidecar.is_file() else "n/a"


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _keep_dataset_level_files(dataset: Path, out: Path, label: str) -> None:
    """Each derivative's own description, README and .bidsignore, kept with the subject's record.

    The dataset's copies are those of its lowest-numbered complete subject (:func:`_write_dataset_files`),
    whatever order the workers finish in.
    """
    derivatives = dataset / "derivatives"
    for derivative in sorted(derivatives.iterdir()) if derivatives.is_dir() else []:
        for path in derivative.iterdir():
            if path.is_file():
                target = out / RECORDS / f"sub-{label}" / "derivatives" / derivative.name / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(target, path.read_text(encoding="utf-8"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def participant_column(key: str) -> str:
    """The participants.tsv column of a field path: ``agents[0].dose_mg_per_kg`` -> ``agents_0_dose_mg_per_kg``."""
    return "".join(c if c.isalnum() else "_" for c in key).strip("_").replace("__", "_")


def field_units(key: str) -> str | None:
    """Units of a field from its name's suffix (:data:`UNIT_SUFFIXES`), None when it has none."""
    name = key.rsplit(".", 1)[-1].split("[")[0]
    for suffix in sorted(UNIT_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return UNIT_SUFFIXES[suffix]
    return None


def _cohort_preface(cohort: Cohort, described: str) -> str:
    """What a derivative README kept from one subject says about the whole cohort."""
    spec = cohort.spec
    varied = ", ".join(f"`{key}`" for key in spec.vary) or "nothing"
    return (f"This derivative holds every subject of the imagingsim cohort `{spec.name}` ({cohort.subjects} "
            f"subjects, cohort seed {spec.seed}, base scenario `{spec.base}`). The text below was written "
            f"for {described}; the subjects differ in {varied}"
            f"{' and their group' if spec.groups else ''}: each subject's values are its row of "
            "participants.tsv at the dataset root.\n\n")


def _write_dataset_files(cohort: Cohort, out: Path) -> None:
    """The dataset-level files, from the completion records (atomic writes)."""
    records = [json.loads(p.read_text()) for p in sorted((out / RECORDS).glob("sub-*.json"))]
    if records:
        kept = out / RECORDS / records[0]["Subject"] / "derivatives"
        for path in sorted(kept.rglob("*")) if kept.is_dir() else []:
            if path.is_file():
                target = out / "derivatives" / path.relative_to(kept)
                target.parent.mkdir(parents=True, exist_ok=True)
                text = path.read_text(encoding="utf-8")
                if path.name.startswith("README"):  # after its title line
                    title, _, body = text.partition("\n\n") if text.startswith("# ") else ("", "", text)
                    text = (title + "\n\n" if title else "") + _cohort_preface(cohort, records[0]["Subject"]) + body
                atomic_write_text(target, text)
    spec = cohort.spec
    first = cohort.subject(1).scenario
    write_json(out / "dataset_description.json", {
        "Name": f"imagingsim synthetic cohort: {spec.name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "License": LICENSE,
        "Authors": ["imagingsim (synthetic data generator)"],
        "GeneratedBy": generated_by(first),
        "HowToAcknowledge": (
            "Synthetic data: cite the imagingsim software and version given in GeneratedBy, and state the "
            "cohort name and seed so the data can be regenerated."
        ),
        "Keywords": ["synthetic", "cohort", "drug delivery", "nanoparticles", "ground truth"],
    })
    keys = list(spec.vary)
    columns = ["participant_id", "species", "weight", *(["group"] if spec.groups else []),
               *(participant_column(k) for k in keys)]
    rows = [[r["Subject"], r["Species"], r["Weight_kg"], *([r["Group"]] if spec.groups else []),
             *(r["Values"][k] for k in keys)] for r in records]
    write_tsv(out / "participants.tsv", columns, rows)
    sidecar: dict[str, Any] = {
        "participant_id": {"Description": "Subject label: its number in the cohort."},
        "species": {"Description": "Binomial species name from the NCBI Taxonomy."},
        "weight": {"Description": "Whole-body mass of the simulated subject.", "Units": "kg"},
    }
    if spec.groups:
        sidecar["group"] = {"Description": "Treatment arm, drawn per subject by weight.",
                            "Levels": {g.name: f"weight {g.weight!r}; sets {dict(g.set)}" for g in spec.groups}}
    for key, distribution in spec.vary.items():
        entry = {"Description": f"Scenario field {key}, drawn per subject: {distribution.model_dump(mode='json')}"}
        if (units := field_units(key)) is not None:
            entry["Units"] = units
        sidecar[participant_column(key)] = entry
    write_json(out / "participants.json", sidecar)
    atomic_write_text(out / "README", (
        f"# imagingsim synthetic cohort: {spec.name}\n\n{spec.description}\n\n"
        f"{len(records)} of {spec.subjects} subjects, cohort seed {spec.seed}, base scenario {spec.base}, "
        f"generated by imagingsim {version()}. participants.tsv holds every drawn value per subject (units in "
        "participants.json); .imagingsim/subjects/ the completion record of each subject (its files with "
        "their SHA-256).\n"
    ))
    atomic_write_text(out / "CHANGES", f"1.0.0 n/a\n  - Generated by imagingsim {version()} from cohort {spec.name}.\n")
    write_tsv(out / "manifest.tsv", list(MANIFEST_COLUMNS), [row for r in records for row in r.get("Manifest", [])])
    write_json(out / "manifest.json", {
        "Description": "Training pairs for machine learning: each image of a session with each ground-truth map of "
                       "the same session on the same voxel grid, and the tissue labels; paths from the dataset root.",
        "participant_id": {"Description": "The subject."},
        "session": {"Description": "The session (one per schedule time)."},
        "time_h": {"Description": "Time of the session after the first injection.", "Units": "h"},
        "image": {"Description": "A simulated image (raw dataset)."},
        "image_units": {"Description": "Units of the image (its sidecar's Units)."},
        "truth": {"Description": "A ground-truth map of the same session on the image's grid (derivatives/truth)."},
        "truth_units": {"Description": "Units of the truth map (its sidecar's Units)."},
        "labels": {"Description": "The tissue segmentation on the same grid (derivatives/truth, dseg)."},
    })
    atomic_write_text(out / ".bidsignore", "".join(f"{p}\n" for p in (".imagingsim", "manifest.*", *bidsignore_patterns())))


__all__ = ["OUTPUTS", "CohortRun", "SubjectDone", "field_units", "participant_column", "run_cohort"]
