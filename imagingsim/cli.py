"""The ``imagingsim`` command line. Commands are thin: parse, call the pipeline, summarise.

Bad input of any kind ends with exit code 2 and one line on stderr, never a traceback, and
nothing written (the dataset is built in a staging directory and moved into place last).
"""

from __future__ import annotations

import contextlib
import platform
import sys
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
    help="Synthetic multimodal imaging of targeted cancer drug delivery.",
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

EXIT_WRITE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class BadInput(Exception):
    """Raised for user errors; main() prints its one-line message and exits 2."""


class WriteFailed(Exception):
    """Raised when the file system refuses the output; main() prints one line and exits 1."""


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
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty output directory.")] = False,
) -> None:
    """Simulate one subject and write a BIDS dataset with ground truth."""
    from imagingsim.backend import BackendError, get_backend
    from imagingsim.io.atomic import check_output_dir
    from imagingsim.pipeline import simulate as run_simulation
    from imagingsim.pipeline import write_subject
    from imagingsim.scenario import ScenarioError, load_scenario

    if backend not in ("auto", "numpy", "cupy"):
        raise BadInput(f"--backend: must be one of auto, numpy, cupy; got {backend!r}")
    extra = list(overrides or [])
    if seed is not None:
        extra.append(f"seed={seed}")
    if modalities is not None:
        names = [m.strip() for m in modalities.split(",") if m.strip()]
        extra.append("modalities.enabled=[" + ", ".join(f'"{m}"' for m in names) + "]")
    started = time.perf_counter()
    try:
        loaded = load_scenario(scenario, extra)
        check_output_dir(out_dir, overwrite=overwrite)
        be = get_backend(backend)
        err.print(f"imagingsim {__version__}: scenario [bold]{loaded.name}[/], seed {loaded.seed}, backend {be.name}")
        subject = run_simulation(loaded, backend=be, step=_spinner)
        with _spinner("writing dataset"):
            files = write_subject(subject, out_dir, overwrite=overwrite)
    except (ScenarioError, BackendError, ValueError) as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:  # the disk, not the input: one line, exit 1, staging removed
        raise WriteFailed(f"could not write {exc.filename or out_dir}: {exc.strerror or exc}") from None
    _summarise(subject, out_dir, files, time.perf_counter() - started)


@app.command()
def phantoms() -> None:
    """List the built-in scenarios with a one-line description each."""
    from imagingsim.scenario import DEFAULT_SCENARIO, builtin_names, scenario_description

    for name in builtin_names():
        marker = " (default)" if name == DEFAULT_SCENARIO else ""
        out.print(f"{name}{marker}: {scenario_description(name)}")


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
def _spinner(name: str):
    start = time.perf_counter()
    with err.status(f"{name}...", spinner="dots"):
        yield
    err.print(f"  {name}: {time.perf_counter() - start:.1f} s")


def _summarise(subject, out_dir: Path, files: list[Path], seconds: float) -> None:
    size = sum(f.stat().st_size for f in files if f.is_file())
    out.print(f"wrote {len(files)} files ({size / 1e6:.1f} MB) to {out_dir}")
    if not subject.scenario.phantom.tumours:
        out.print("  no tumour in this phantom")
    else:
        for agent in subject.delivery.agents:
            tumour = ", ".join(f"{v:.3g}" for v in agent.percent_id_per_g("tumour"))
            times = ", ".join(f"{t:g}" for t in agent.times_h)
            out.print(f"  {agent.agent.name}: tumour %ID/g at t = [{times}] h: [{tumour}]")
        if "pet" in subject.acquisitions:
            _summarise_pet(subject)
        if "mri" in subject.acquisitions:
            _summarise_mri(subject)
        if "nirf" in subject.acquisitions:
            _summarise_nirf(subject)
        if "spect" in subject.acquisitions:
            _summarise_spect(subject)
    if "ct" in subject.acquisitions:
        _summarise_ct(subject)
    out.print(f"done in {seconds:.1f} s")


def _summarise_pet(subject) -> None:
    """Tumour activity recovered by each PET reconstruction vs the truth, per frame."""
    from imagingsim.physics.metrics import roi_mean

    acq, be = subject.acquisitions["pet"], subject.backend
    tumour = subject.phantom.tumour_index > 0
    truth = roi_mean(acq.expected_image_bq_per_ml, tumour, be)
    out.print(f"  PET {acq.tracer.name} ({acq.nuclide}): tumour mean kBq/mL, true [{_kilo(truth)}]")
    for method, image in acq.images_bq_per_ml.items():
        out.print(f"    {method}: [{_kilo(roi_mean(image, tumour, be))}]")


def _summarise_mri(subject) -> None:
    """Tumour iron (true and estimated from R2*), per session."""
    from imagingsim.modalities.mri.acquire import roi_iron_mM

    acq, be = subject.acquisitions["mri"], subject.backend
    tumour = subject.phantom.tumour_index > 0
    out.print(f"  MRI {acq.spec.field_T:g} T, {acq.recon_method}, acceleration {acq.acceleration:.2f}")
    if acq.iron_estimate_mM is None:
        out.print("    no iron-oxide agent (or one echo): no iron estimate")
        return
    true, estimate, fraction = roi_iron_mM(acq, tumour, be)
    out.print(
        f"    tumour iron mM, true \\[{_fixed(true)}], from R2* \\[{_fixed(estimate)}] "
        f"(estimated in at least {min(fraction):.0%} of tumour voxels)"
    )


def _summarise_nirf(subject) -> None:
    """Tumour-to-body contrast of the noise-free NIRF images, per time."""
    from imagingsim.modalities.nirf.acquire import tumour_contrast

    acq = subject.acquisitions["nirf"]
    contrast = tumour_contrast(acq, subject.phantom, subject.backend)
    out.print(
        f"  NIRF {acq.dye.name} ({acq.window}, {acq.view} view): tumour/body contrast [{_fixed(contrast)}], "
        f"pixel noise {acq.background_noise_e:.3g} e-"
    )


def _summarise_spect(subject) -> None:
    """Tumour activity recovered by each SPECT reconstruction variant vs the truth, per acquisition."""
    from imagingsim.modalities.spect.acquire import roi_activity_bq_per_ml

    acq, be = subject.acquisitions["spect"], subject.backend
    truth, images = roi_activity_bq_per_ml(acq, subject.phantom.tumour_index > 0, be)
    out.print(f"  SPECT {acq.tracer.name} ({acq.nuclide}, {acq.params.collimator.name}): tumour mean kBq/mL, "
              f"true \\[{_kilo(truth)}]")
    for variant, values in images.items():
        out.print(f"    {variant}: \\[{_kilo(values)}]")


def _summarise_ct(subject) -> None:
    """Mean HU of the main tissues in the first CT scan."""
    from imagingsim.modalities.ct.acquire import tissue_hu

    acq = subject.acquisitions["ct"]
    values = tissue_hu(acq, subject.phantom, subject.backend)
    out.print(f"  CT {acq.system.kvp:g} kVp, first scan: mean HU in the tissue interiors "
              + ", ".join(f"{name} {hu:.0f}" for name, hu in values.items()))


def _fixed(values) -> str:
    return ", ".join(f"{v:.3g}" for v in values)


def _kilo(values) -> str:
    return ", ".join(f"{v / 1000:.3g}" for v in values)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    command = typer.main.get_command(app)
    try:
        # Non-standalone typer turns Ctrl-C into a returned 130 and returns other exit codes.
        result = command.main(args=argv, prog_name="imagingsim", standalone_mode=False)
    except BadInput as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    except WriteFailed as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return EXIT_WRITE_FAILED
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        err.print("interrupted: nothing was written", markup=False)
        return EXIT_INTERRUPTED
    except typer.TyperException as exc:  # usage errors: unknown option, bad --seed, missing --out
        if type(exc).__name__ == "NoArgsIsHelpError":
            out.print(command.get_help(typer.Context(command, info_name="imagingsim")), markup=False)
            return 0
        err.print(f"error: {exc.format_message()}", markup=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    if result == EXIT_INTERRUPTED:
        err.print("interrupted: nothing was written", markup=False)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
