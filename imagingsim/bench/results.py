"""Writing a suite's results: ``results.tsv``, ``leaderboard.tsv``, ``leaderboard.html``, the
``results.json`` sidecar (suite, seeds' key fingerprint, backend, version, what each column
means and its units) and the leaderboard as text.

The HTML page is self-contained: the table and, per problem and count level, the convergence
plots (body NRMSE against iterations and against wall time, callbacks excluded) drawn by
matplotlib and embedded as base64 PNG, so it can be mailed or attached as one file.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imagingsim.bench.runner import BenchResult

#: Columns of ``results.tsv`` before the metrics (which follow in name order).
RESULT_KEYS = ("suite", "problem", "modality", "units", "count_level", "realisation", "method", "checkpoint",
               "seconds", "status")
#: Columns of ``leaderboard.tsv``; the text leaderboard shows :data:`SHOWN`.
LEADERBOARD_KEYS = ("problem", "modality", "units", "count_level", "rank", "method", "status", "realisations", "nrmse_body",
                    "rmse_background", "aem_tumour", "aem_liver", "crc", "bv", "ssim", "psnr_db", "bias_body",
                    "sd_body", "bias_tumour", "sd_tumour", "seconds", "threshold_reached", "time_to_threshold_s",
                    "iterations_to_threshold")
SHOWN = ("problem", "count_level", "rank", "method", "nrmse_body", "aem_tumour", "crc", "ssim", "bias_body", "sd_body",
         "seconds", "threshold_reached", "time_to_threshold_s")
#: Units of the columns (``leaderboard.html`` headers and the README of the output).
UNITS = {"count_level": "x scan counts", "nrmse_body": "fraction", "rmse_background": "image units",
         "aem_tumour": "fraction", "aem_liver": "fraction", "bv": "fraction", "psnr_db": "dB", "bias_body": "fraction",
         "sd_body": "fraction", "bias_tumour": "fraction", "sd_tumour": "fraction", "seconds": "s",
         "time_to_threshold_s": "s"}


#: What each column means (``results.json``, written beside the tables).
DESCRIPTIONS = {
    "units": "units of the images and of rmse_background",
    "count_level": "counts of the realisation / counts of the simulated scan (Gaussian noise: SNR^2 ratio)",
    "realisation": "noise realisation index (its seed is made at scoring time and not written)",
    "checkpoint": "iteration the plug-in reported, 'final' for its returned image, 'failed' for a failure",
    "seconds": "reconstruction wall time up to the checkpoint (device synchronised first), callbacks excluded, s",
    "status": "ok, or why the run failed (exception, timeout, wrong shape, non-finite values)",
    "nrmse_body": "||x - t|| / ||t|| over the body (0 perfect, 1 for an all-zero image)",
    "rmse_background": "RMSE over the muscle VOI, image units",
    "aem_<voi>": "|mean of x - mean of t| / mean of t over the VOI (PETRIC's AEM, relative)",
    "crc": "contrast recovery, (x_tumour / x_muscle - 1) / (t_tumour / t_muscle - 1)",
    "crc_error": "|1 - crc|",
    "bv": "background variability, voxel sd / mean over the muscle VOI",
    "ssim": "structural similarity to the truth, local SSIM map (skimage.metrics) averaged over the body "
            "(data range of the truth over the body)",
    "psnr_db": "peak signal-to-noise ratio over the body, dB: 10 log10(range^2 / MSE over the body), range of "
               "the truth over the body",
    "bias_body": "||mean over realisations - t|| / ||t|| over the body",
    "sd_body": "sqrt(sum of the per-voxel variance over realisations) / ||t|| over the body",
    "bias_<voi>": "(mean over realisations of the VOI mean - true VOI mean) / true VOI mean",
    "sd_<voi>": "sd over realisations of the VOI mean / true VOI mean",
    "threshold_reached": "realisations in which every suite threshold held at some checkpoint",
    "time_to_threshold_s": "mean wall time to the first checkpoint meeting every threshold, s",
    "iterations_to_threshold": "mean iteration of that checkpoint",
}


def _cell(value: Any) -> str:
    """One TSV cell as the dataset's tables write them (:func:`~imagingsim.io.sidecars.format_value`:
    shortest round-trip floats, ``n/a`` for NaN and missing), but ``inf`` kept (a perfect PSNR)
    and text folded onto one line (an error message)."""
    from imagingsim.io.sidecars import format_value

    if value is None:
        return ""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, str):
        return " ".join(value.split())
    return format_value(value)


def tsv(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """Tab-separated text: a header of ``columns`` and one line per row (missing cells empty, NaN ``n/a``)."""
    lines = ["\t".join(columns)]
    lines += ["\t".join(_cell(row.get(c)) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def result_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """:data:`RESULT_KEYS` then every metric that occurs, in name order."""
    metrics = sorted({k for row in rows for k in row} - set(RESULT_KEYS))
    return [*RESULT_KEYS, *metrics]


def leaderboard_text(result: BenchResult) -> str:
    """The leaderboard as aligned plain text (the CLI prints it)."""
    rows = [[_short(row.get(c)) for c in SHOWN] for row in result.leaderboard]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(SHOWN)]
    header = "  ".join(c.ljust(w) for c, w in zip(SHOWN, widths))
    lines = [f"suite {result.suite.name} (seeds: {result.key})", header, "-" * len(header)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    failed = [row for row in result.leaderboard if row["status"] != "ok"]
    for row in failed:
        lines.append(f"{row['method']} on {row['problem']} x{row['count_level']:g}: {row['status']}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def convergence_figure(result: BenchResult, problem: str, level: float) -> bytes | None:
    """PNG of body NRMSE against iteration and against time for every method of one problem and level."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    curves = {method: c for (p, lv, method), c in sorted(result.curves.items()) if p == problem and lv == level}
    if not curves:
        return None
    figure = Figure(figsize=(9.0, 3.4), dpi=90)
    by_iteration, by_time = figure.subplots(1, 2)
    for method, curve in curves.items():
        iterations, seconds, values = zip(*curve)
        style = {"marker": "o", "markersize": 3, "label": method}
        by_iteration.plot(iterations, values, **style)
        by_time.plot(seconds, values, **style)
    for axes, xlabel in ((by_iteration, "iteration"), (by_time, "wall time, s (callbacks excluded)")):
        axes.set_xlabel(xlabel)
        axes.set_ylabel("NRMSE over the body")
        axes.grid(alpha=0.3)
    by_iteration.set_title(f"{problem}, x{level:g} counts", fontsize=10)
    by_time.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def leaderboard_html(result: BenchResult) -> str:
    """The self-contained HTML page: table, convergence plots (embedded PNG), column units."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}" + (f"<br><small>{esc(UNITS[c])}</small>" if c in UNITS else "") + "</th>"
                   for c in LEADERBOARD_KEYS)
    body = "".join("<tr>" + "".join(f"<td>{esc(_short(row.get(c)))}</td>" for c in LEADERBOARD_KEYS) + "</tr>"
                   for row in result.leaderboard)
    figures = []
    groups = list(dict.fromkeys((row["problem"], row["count_level"]) for row in result.leaderboard))
    for problem, level in groups:
        png = convergence_figure(result, problem, level)
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            figures.append(f'<h3>{esc(problem)}, x{level:g} counts</h3><img alt="convergence of {esc(problem)}" '
                           f'src="data:image/png;base64,{data}">')
    suite = result.suite
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>imagingsim bench: {esc(suite.name)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #bbb;padding:2px 5px;text-align:right}th{background:#eee}</style></head><body>"
        f"<h1>Reconstruction benchmark: {esc(suite.name)}</h1><p>{esc(suite.description)}</p>"
        f"<p>Scored against the exact simulated truth on the reconstruction grid; means over noise "
        f"realisations (seeds: {esc(result.key)}). NRMSE = ||x - t|| / ||t|| over the body; AEM = "
        "|VOI mean error| / true VOI mean; CRC and BV NEMA-style (tumour vs muscle); bias and sd over "
        "realisations relative to ||t||; time to threshold excludes callbacks.</p>"
        f"<table><tr>{head}</tr>{body}</table><h2>Convergence</h2>{''.join(figures)}</body></html>\n"
    )


def write_results(result: BenchResult, out_dir: str | Path) -> list[Path]:
    """Write ``results.tsv``, ``leaderboard.tsv``, ``leaderboard.html`` and ``results.json`` (the
    suite, the seeds' key fingerprint, the backend and what each column means) into a new ``out_dir``.

    The directory is built in a staging directory and moved into place when complete
    (:func:`~imagingsim.io.atomic.staged_directory`): ``out_dir`` must be absent or empty.

    Raises
    ------
    ValueError
        One line: ``out_dir`` is not empty, is a file, or cannot be created.
    """
    from imagingsim.io.atomic import staged_directory
    from imagingsim.io.sidecars import json_text, version

    texts = {
        "results.tsv": tsv(result_columns(result.rows), result.rows),
        "leaderboard.tsv": tsv(LEADERBOARD_KEYS, result.leaderboard),
        "leaderboard.html": leaderboard_html(result),
        "results.json": json_text({
            "suite": result.suite.model_dump(mode="json"), "seeds": result.key, "backend": result.backend,
            "imagingsim_version": version(), "columns": DESCRIPTIONS,
        }),
    }
    out = Path(out_dir)
    with staged_directory(out) as stage:
        for name, text in texts.items():
            (stage / name).write_text(text, encoding="utf-8")
    return [out / name for name in texts]
