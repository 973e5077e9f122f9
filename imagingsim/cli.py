"""The ``imagingsim`` command line. Commands are thin: parse, call the pipeline, summarise.

Bad input of any kind ends with exit code 2 and one line on stderr, never a traceback, and
nothing written (the dataset is built in a staging directory and moved into place last).
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from imagingsim import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Synthetic multimodal imaging of targeted cancer drug delivery.",
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

EXIT_ENVIRONMENT = 1  # the disk or the installation failed, not the input
EXIT_BAD_INPUT = 2
EXIT_SUBJECTS_FAILED = 1  # a cohort ran to its end, but some subjects raised (listed, and redone by --resume)
EXIT_INTERRUPTED = 130  # 128 + SIGINT; SIGTERM gives 143 and SIGHUP 129, as a shell reports them


class BadInput(Exception):
    """Raised for user errors; main() prints its one-line message and exits 2."""


class WriteFailed(Exception):
    """Raised when the file system refuses the output; main() prints one line and exits 1."""


class EnvironmentFailure(Exception):
    """Raised when the installation is broken (e.g. a registered modality fails to load); exit 1."""


class Interrupted(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP: unwinds like KeyboardInterrupt (staging removed, lock freed).

    A BaseException so that no ``except Exception`` on the way swallows it. ``written`` says
    whether the dataset was already in place when the signal came (it arrived after the swap).
    """

    def __init__(self, signum: int, written: bool = False, out_dir: Path | None = None):
        super().__init__(signum)
        self.signum = signum
        self.written = written
        self.out_dir = out_dir

    def message(self) -> str:
        name = signal.Signals(self.signum).name
        what = "interrupted" if self.signum == signal.SIGINT else f"terminated by {name}"
        if self.written:
            return f"{what} after the dataset was written to {self.out_dir}"
        return f"{what}: nothing was written"


def _raise_interrupted(signum, _frame):
    raise Interrupted(signum)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"imagingsim {__version__}", markup=False)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", "-V", help="Print the version and exit.", is_eager=True, callback=_print_version,
    )] = False,
) -> None:
    """Synthetic multimodal imaging of targeted cancer drug delivery."""


@app.command()
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory (BIDS).")],
    scenario: Annotated[str | None, typer.Argument(
        help="Built-in scenario name (see `imagingsim phantoms`) or a .toml path; default scenario if omitted."
    )] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the scenario seed.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto | numpy | cupy")] = "auto",
    modalities: Annotated[str | None, typer.Option(
        "--modalities", help="Comma-separated modalities to simulate (overrides the scenario)."
    )] = None,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a field: dotted.key=value (repeatable)."
    )] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing imagingsim dataset (never a directory of other files)."
    )] = False,
    max_memory_gb: Annotated[float | None, typer.Option(
        "--max-memory-gb", help="Refuse to start if the estimated peak memory exceeds this (default: what is available).",
        min=0.1,
    )] = None,
    with_report: Annotated[bool, typer.Option(
        "--report", help="Also write the teaching report, OUT_report.html beside the dataset."
    )] = False,
) -> None:
    """Simulate one subject and write a BIDS dataset with ground truth."""
    from imagingsim.backend import BackendError, get_backend
    from imagingsim.dependencies import dependency_problems
    from imagingsim.io.lock import output_lock
    from imagingsim.io.outdir import check_output_dir, sweep_stale
    from imagingsim.modalities.registry import ModalityError, ModalityLoadError
    from imagingsim.pipeline import load_scenario, simulate_and_write
    from imagingsim.resources import check_resources, estimate_resources
    from imagingsim.scenario import ScenarioError

    problems = dependency_problems()
    if problems:  # the environment, not the input: before anything could fail as if it were
        raise EnvironmentFailure(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    if backend not in ("auto", "numpy", "cupy"):
        raise BadInput(f"--backend: must be one of auto, numpy, cupy; got {backend!r}")
    extra = list(overrides or [])
    if seed is not None:
        extra.append(f"seed={seed}")
    if modalities is not None:
        names = [m.strip() for m in modalities.split(",") if m.strip()]
        extra.append("modalities.enabled=[" + ", ".join(f'"{m}"' for m in names) + "]")
    started = time.perf_counter()
    out = before = None
    if with_report:
        from imagingsim.report.command import check_report_path, default_report_path

        try:  # before any work: a report that cannot be written is refused up front
            check_report_path(default_report_path(out_dir), need_folder=False)
        except ValueError as exc:
            raise BadInput(f"--report: {exc}") from None
    try:
        loaded = load_scenario(scenario, extra)
        out = check_output_dir(out_dir, overwrite=overwrite)
        be = get_backend(backend)
        estimate = estimate_resources(loaded)
        check_resources(loaded, estimate, out, memory_bytes=None if max_memory_gb is None else max_memory_gb * 1e9)
        before = _identity(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with output_lock(out) as lock:
            if lock.previous_owner:
                err.print(f"took over the lock of a run that died (pid {lock.previous_owner.get('pid')})", markup=False)
            cleaned = sweep_stale(out).message(out)
            if cleaned:
                err.print(cleaned, markup=False)
            err.print(f"imagingsim {__version__}: scenario [bold]{loaded.name}[/], seed {loaded.seed}, backend {be.name}; "
                      f"{estimate.line()}")
            subject, files = simulate_and_write(loaded, out, backend=be, step=_stage, overwrite=overwrite)
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        written = out is not None and _identity(out) not in (before, None)
        raise Interrupted(signum, written, out) from None
    except ModalityLoadError as exc:  # an installed plugin is broken: the environment, not the input
        raise EnvironmentFailure(str(exc)) from None
    except (ScenarioError, BackendError, ModalityError, ValueError) as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:  # the disk, not the input: one line, exit 1, staging removed
        raise WriteFailed(f"could not write {exc.filename or out_dir}: {exc.strerror or exc}") from None
    _summarise(subject, out_dir, files, time.perf_counter() - started)
    if with_report:
        report(out_dir, default_report_path(out_dir))


@app.command()
def phantoms() -> None:
    """List the built-in scenarios with a one-line description each."""
    from imagingsim.scenario import DEFAULT_SCENARIO, builtin_names, scenario_description

    for name in builtin_names():
        marker = " (default)" if name == DEFAULT_SCENARIO else ""
        out.print(f"{name}{marker}: {scenario_description(name)}")


@app.command()
def cohort(
    name: Annotated[str, typer.Argument(help="Built-in cohort (see `imagingsim cohorts`) or a cohort .toml path.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory (one BIDS dataset).")],
    subjects: Annotated[int | None, typer.Option("--subjects", help="Number of subjects (overrides the file).",
                                                 min=1)] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Cohort seed (overrides the file).", min=0)] = None,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a field of the base scenario: dotted.key=value (repeatable)."
    )] = None,
    outputs: Annotated[str, typer.Option(
        "--outputs", help="What to write, comma-separated: truth, images, raw (raw data is most of the bytes)."
    )] = "truth,images,raw",
    resume: Annotated[bool, typer.Option("--resume", help="Keep the subjects an earlier run completed.")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Subjects at a time (Dask LocalCluster processes).",
                                         min=1)] = 1,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Run on an existing Dask cluster: its scheduler address, tcp://host:port."
    )] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto | numpy | cupy")] = "auto",
) -> int:
    """Simulate a cohort: sub-001 ... sub-N of one BIDS dataset, each value drawn per subject."""
    from imagingsim.cohort.run import run_cohort
    from imagingsim.cohort.spec import load_cohort
    from imagingsim.dependencies import dependency_problems
    from imagingsim.scenario import ScenarioError

    problems = dependency_problems()
    if problems:
        raise EnvironmentFailure(problems[0])
    if backend not in ("auto", "numpy", "cupy"):
        raise BadInput(f"--backend: must be one of auto, numpy, cupy; got {backend!r}")
    started = time.perf_counter()
    try:
        loaded = load_cohort(name, subjects=subjects, seed=seed, overrides=list(overrides or []))
        err.print(f"imagingsim {__version__}: cohort [bold]{loaded.spec.name}[/], {loaded.subjects} subjects, "
                  f"seed {loaded.spec.seed}, base {loaded.spec.base}")

        with _SubjectProgress(started) as report:
            result = run_cohort(loaded, out_dir, outputs=[o.strip() for o in outputs.split(",") if o.strip()],
                                resume=resume, backend=backend, workers=workers, scheduler=scheduler,
                                on_subject=report)
    except KeyboardInterrupt:
        raise Interrupted(signal.SIGINT) from None
    except (ScenarioError, ValueError) as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise WriteFailed(f"could not write {exc.filename or out_dir}: {exc.strerror or exc}") from None
    out.print(f"cohort {loaded.spec.name}: {len(result.written)} subjects written, {len(result.kept)} kept from an "
              f"earlier run, {len(result.failed)} failed, in {result.out} ({time.perf_counter() - started:.1f} s)",
              markup=False)
    if result.failed:
        for label, error in result.failed.items():
            _error(f"sub-{label} failed: {error}")
        err.print(f"tracebacks in {result.out / '.imagingsim' / 'failed'}; --resume redoes the failed subjects",
                  markup=False)
        return EXIT_SUBJECTS_FAILED
    return 0


class _SubjectProgress:
    """Progress over a cohort's subjects: done/total, rate, ETA and failures, as a bar on a
    terminal and as one line per subject otherwise (the log of a batch job).

    The rate counts this run's subjects from the start, set-up included; subjects an earlier
    run completed (``--resume``) count as done but not in the rate.
    """

    def __init__(self, started: float):
        self.started, self.bar, self.task = started, None, None

    def __enter__(self) -> _SubjectProgress:
        if err.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn

            self.bar = Progress(TextColumn("subjects"), BarColumn(), TextColumn("{task.description}"), console=err)
            self.bar.start()
            self.task = self.bar.add_task("starting", total=None)
        return self

    def __call__(self, event) -> None:
        elapsed = time.perf_counter() - self.started
        rate = (event.done - event.kept + event.failed) / elapsed  # subjects/s of this run
        left = event.total - event.done - event.failed
        eta = f", ETA {left / rate:.0f} s" if left and rate > 0 else ""
        text = (f"{event.done}/{event.total} done, {event.failed} failed, {elapsed:.1f} s, "
                f"{rate * 60:.1f} subjects/min{eta}")
        if self.bar is not None:
            self.bar.update(self.task, total=event.total, completed=event.done + event.failed, description=text)
            if event.error is not None:
                self.bar.console.print(f"  sub-{event.label} failed: {event.error}", markup=False)
        else:
            what = f"failed: {event.error}" if event.error is not None else "written"
            err.print(f"  sub-{event.label} {what}; {text}", markup=False)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command()
def cohorts() -> None:
    """List the built-in cohorts, one a line: name, subjects, base scenario and description."""
    from imagingsim.cohort.spec import builtin_cohorts, read_cohort_toml

    for name in builtin_cohorts():
        raw = read_cohort_toml(name)
        description = str(raw.get("description", "")).strip()
        out.print(f"{name}: {raw.get('subjects')} subjects of {raw.get('base')}; {description}", markup=False)


@app.command()
def bench(
    suite: Annotated[str, typer.Argument(help="Built-in suite (quick, standard) or a suite .toml path.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="New directory for results.tsv and the leaderboard.")],
    recon: Annotated[list[str] | None, typer.Option(
        "--recon", help="A plug-in reconstruction: module:name or an imagingsim.recon entry point (repeatable)."
    )] = None,
    baselines: Annotated[bool, typer.Option("--baselines", help="Also run the modalities' built-in reconstructions.")]
    = False,
    backend: Annotated[str, typer.Option("--backend", help="auto | numpy | cupy")] = "auto",
    timeout_s: Annotated[float | None, typer.Option("--timeout-s", help="Time budget of one plug-in run, s.")] = None,
) -> None:
    """Score reconstructions against the exact truth: bias, variance, VOI errors, time to threshold."""
    from imagingsim.bench.command import bench_command

    started = time.perf_counter()
    try:
        text = bench_command(suite, list(recon or []), baselines=baselines, out_dir=out_dir, backend=backend,
                             timeout_s=timeout_s, progress=lambda line: err.print(line, markup=False))
    except KeyboardInterrupt:
        raise Interrupted(signal.SIGINT) from None
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise WriteFailed(f"could not write {exc.filename or out_dir}: {exc.strerror or exc}") from None
    out.print(text, markup=False)
    out.print(f"results in {out_dir} ({time.perf_counter() - started:.1f} s)", markup=False)


@app.command()
def report(
    dataset: Annotated[Path, typer.Argument(help="A dataset written by `imagingsim simulate`.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write (figures beside it).")],
    subject: Annotated[str | None, typer.Option(
        "--subject", help="The subject to report (sub-<id>); the first by default.")] = None,
) -> None:
    """Write the teaching report of a dataset: modality trade-offs measured, as one HTML page."""
    from imagingsim.report.command import ReportFailed, report_command

    try:
        text = report_command(dataset, out_path, subject)
    except KeyboardInterrupt:
        raise Interrupted(signal.SIGINT) from None
    except ReportFailed as exc:  # a measurement failed on a readable dataset: not bad input, exit 1
        raise EnvironmentFailure(str(exc)) from None
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise WriteFailed(f"could not write {exc.filename or out_path}: {exc.strerror or exc}") from None
    out.print(text, markup=False)


@app.command("modalities")
def list_modalities() -> None:
    """List the registered modalities: name, where it comes from, and what it simulates."""
    from imagingsim.modalities import registry

    for name in registry.names():
        try:
            description = registry.get(name).description
        except registry.ModalityLoadError as exc:
            description = f"not loadable: {exc}"
        out.print(f"{name} ({registry.origin(name)}): {description}", markup=False)


@app.command()
def info() -> None:
    """Print versions, the backend `auto` picks, and whether a GPU is usable."""
    import numpy
    import scipy

    from imagingsim.backend import cupy_status, get_backend

    usable, reason = cupy_status()
    out.print(f"imagingsim {__version__}")
    out.print(f"python {platform.python_version()} ({sys.platform}), numpy {numpy.__version__}, scipy {scipy.__version__}")
    out.print(f"gpu: {'usable' if usable else 'not usable'} ({reason})")
    out.print(f"backend (auto): {get_backend('auto').name}")


@contextlib.contextmanager
def _stage(name: str):
    """Show a stage while it runs: a bar with percentage and ETA once its loops report
    progress (:mod:`imagingsim.progress`), a pulsing bar until then; its time after."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from imagingsim import progress

    start = time.perf_counter()
    columns = (TextColumn("  {task.description}"), BarColumn(), TaskProgressColumn(), TextColumn("ETA"),
               TimeRemainingColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(name, total=None)  # pulses until the first report
        with progress.listening(lambda fraction: bar.update(task, total=1.0, completed=fraction)):
            yield
    err.print(f"  {name}: {time.perf_counter() - start:.1f} s")


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a directory, or None if absent: the swap gives ``--out`` a new inode."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _summarise(subject, out_dir: Path, files: list[Path], seconds: float) -> None:
    from imagingsim.modalities import registry

    size = sum(f.stat().st_size for f in files if f.is_file())
    out.print(f"wrote {len(files)} files ({size / 1e6:.1f} MB) to {out_dir}")
    has_tumour = bool(subject.scenario.phantom.tumours)
    if not has_tumour:
        out.print("  no tumour in this phantom")
    else:
        for agent in subject.delivery.agents:
            tumour = ", ".join(f"{v:.3g}" for v in agent.percent_id_per_g("tumour"))
            times = ", ".join(f"{t:g}" for t in agent.times_h)
            out.print(f"  {agent.agent.name}: tumour %ID/g at t = [{times}] h: [{tumour}]")
        from imagingsim.delivery.summary import tumour_lines  # per tumour: several tumours, or a field

        for line in tumour_lines(subject.delivery, subject.phantom, subject.backend):
            out.print(line, markup=False)
    for name, acquisition in subject.acquisitions.items():
        modality = registry.get(name)
        if has_tumour or not modality.summary_needs_tumour:
            for line in modality.summary(acquisition, subject):
                out.print(line, markup=False)
    out.print(f"done in {seconds:.1f} s")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    command = typer.main.get_command(app)
    # SIGTERM (timeout, batch schedulers) and SIGHUP (a closed terminal) unwind like Ctrl-C, so
    # the staging directory and the lock go too; handlers only in the main thread, restored after.
    handled = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, _raise_interrupted) for s in handled}
    try:
        return _run(command, argv)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


#: Longest error line printed. Messages name the field and shorten the values they echo;
#: this is the last guard, for text from elsewhere (the OS, click) that may carry any value.
MAX_ERROR_CHARS = 300


def _error(message: str) -> None:
    """Print ``error: MESSAGE`` as one line of at most :data:`MAX_ERROR_CHARS` characters."""
    from imagingsim.scenario import shorten

    text = " ".join(message.split())  # newlines and tabs become spaces: one line
    # escaped, and cut with room for the "... (N characters)" that shorten appends
    err.print("error: " + shorten(text, MAX_ERROR_CHARS - 40, quote=False), markup=False, soft_wrap=True)


def _run(command, argv: list[str] | None) -> int:
    try:
        # Non-standalone typer turns Ctrl-C into a returned 130 and returns other exit codes.
        result = command.main(args=argv, prog_name="imagingsim", standalone_mode=False)
    except Interrupted as exc:
        err.print(exc.message(), markup=False)
        return 128 + exc.signum
    except BadInput as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    except (WriteFailed, EnvironmentFailure) as exc:
        _error(str(exc))
        return EXIT_ENVIRONMENT
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        err.print("interrupted: nothing was written", markup=False)
        return EXIT_INTERRUPTED
    except typer.TyperException as exc:  # usage errors: unknown option, bad --seed, missing --out
        if type(exc).__name__ == "NoArgsIsHelpError":
            out.print(command.get_help(typer.Context(command, info_name="imagingsim")), markup=False)
            return 0
        _error(exc.format_message())
        return EXIT_BAD_INPUT
    if result == EXIT_INTERRUPTED:
        err.print("interrupted: nothing was written", markup=False)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
