"""The ``imagingsim bench`` command's work, behind the thin CLI in :mod:`imagingsim.cli`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

#: Backends ``--backend`` accepts.
BACKENDS = ("auto", "numpy", "cupy")


def bench_command(suite: str, recons: Sequence[str], *, baselines: bool, out_dir: Path, backend: str = "auto",
                  timeout_s: float | None = None, progress: Callable[[str], None] | None = None) -> str:
    """Run ``suite`` on the plug-ins (and baselines), write ``out_dir``; return the leaderboard text.

    Everything the user gave is checked before any simulation (suite, plug-ins, backend, output
    directory, time-out), so bad input costs no time and writes nothing.

    Raises
    ------
    ValueError
        One line naming the option and what is allowed.
    """
    from imagingsim.bench.plugins import load_plugin
    from imagingsim.bench.results import leaderboard_text, write_results
    from imagingsim.bench.runner import run_suite
    from imagingsim.bench.suite import load_suite
    from imagingsim.io.outdir import check_output_dir

    if backend not in BACKENDS:
        raise ValueError(f"--backend: must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"--timeout-s: must be > 0 s, got {timeout_s:g}")
    spec = load_suite(suite)
    plugins = [load_plugin(r) for r in recons]
    if not plugins and not baselines:
        raise ValueError("--recon: give at least one module:name plug-in, or --baselines")
    check_output_dir(out_dir)  # refused before the work, not after it
    result = run_suite(spec, plugins, baselines=baselines, backend=backend, timeout_s=timeout_s, progress=progress)
    write_results(result, out_dir)
    return leaderboard_text(result)
