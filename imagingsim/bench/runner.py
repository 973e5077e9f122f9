"""Run a suite: simulate each scan once, draw its noise realisations, run every plug-in, score it.

For each problem of the suite the subject is simulated once (only the modalities the problem
needs; not at all when no method runs on its modality), the modality turns its acquisition into a
:class:`~imagingsim.recon.problem.ProblemSource` (through the Modality contract; the truth stays
here), and for each count level and realisation a fresh noise draw is handed to every plug-in.
Each checkpoint the plug-in reports is scored against the truth on the reconstruction grid
(:mod:`imagingsim.bench.metrics`); the final images of the realisations give bias and sd.
A plug-in that raises, times out, or returns an image of the wrong shape or with NaN gets a
failure row and the run goes on.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import imagingsim.bench.metrics as m
from imagingsim.bench.plugins import Plugin, baseline_plugins, load_plugin, run_plugin
from imagingsim.bench.suite import SuiteSpec, key_fingerprint, load_suite, realisation_seed, suite_key


@dataclass
class BenchResult:
    """Everything a suite run produced.

    Attributes
    ----------
    suite : SuiteSpec
    rows : list of dict
        One per method x problem x count level x realisation x checkpoint (and a ``final``
        row per run, or a failure row): the columns of ``results.tsv``.
    leaderboard : list of dict
        One per method x problem x count level, ranked by body NRMSE within each problem and level.
    curves : dict
        ``(problem, count_level, method) -> [(iteration, seconds, nrmse_body), ...]``: the mean
        over realisations of each checkpoint (for the convergence plots).
    key : str
        ``"public"`` or the fingerprint of the held-out key the seeds were made with.
    backend : str
        The backend the problems ran on.
    """

    suite: SuiteSpec
    rows: list[dict[str, Any]] = field(default_factory=list)
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[tuple[str, float, str], list[tuple[int, float, float]]] = field(default_factory=dict)
    key: str = "public"
    backend: str = ""


@dataclass
class _Scored:
    """The runs of one method on one problem and count level, over its realisations."""

    finals: list[np.ndarray] = field(default_factory=list)
    final_metrics: list[dict[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    reached: list[tuple[int, float] | None] = field(default_factory=list)
    checkpoints: list[list[tuple[int, float, float]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run_suite(
    suite: SuiteSpec | str,
    recons: Sequence[str | Plugin] = (),
    *,
    baselines: bool = False,
    backend: str = "auto",
    timeout_s: float | None = None,
    key: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Run a benchmark suite on plug-ins and/or the built-in baselines.

    Parameters
    ----------
    suite : SuiteSpec or str
        A suite or its built-in name / TOML path (:func:`~imagingsim.bench.suite.load_suite`).
    recons : sequence of str or Plugin
        Plug-ins, ``"module:name"`` or entry-point names of group ``imagingsim.recon``.
    baselines : bool
        Also run each problem's modality baselines (named ``<modality>-<name>``).
    backend : str
        ``"auto"`` (the GPU when usable), ``"numpy"``, ``"cupy"`` or ``"strict"``: where the
        problems' arrays live.
    timeout_s : float, optional
        Wall-time budget of one plug-in run (one realisation), s.
    key : str, optional
        Held-out key (default: the ``IMAGINGSIM_BENCH_KEY`` environment variable).
    progress : callable, optional
        ``progress(line)`` after each plug-in run.

    Returns
    -------
    BenchResult

    Raises
    ------
    ValueError
        One line, before any simulation: unknown suite, plug-in, modality or scenario field;
        no method to run; a held-out suite without its key.
    """
    from imagingsim.modalities import registry
    from imagingsim.modalities.base import Modality

    spec = suite if isinstance(suite, SuiteSpec) else load_suite(suite)
    secret = suite_key(spec, key)
    plugins = [p if isinstance(p, Plugin) else load_plugin(p) for p in recons]
    _refuse_duplicate_names(plugins)
    if not plugins and not baselines:
        raise ValueError("nothing to run: give --recon module:name or --baselines")
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"--timeout-s must be > 0, got {timeout_s:g}")
    problems = []
    for index, problem in enumerate(spec.problems):
        try:
            modality = registry.get(problem.modality)
        except ValueError as exc:
            raise ValueError(f"suite {spec.name!r}: problems[{index}].modality: {exc}") from None
        if type(modality).recon_problem is Modality.recon_problem:
            raise ValueError(f"suite {spec.name!r}: problems[{index}].modality: {problem.modality!r} offers no "
                             "reconstruction benchmark (its Modality has no recon_problem)")
        if baselines:
            _refuse_duplicate_names([*plugins, *(Plugin(f"{modality.name}-{name}", target, None)
                                                 for name, target in modality.baselines.items())])
        problems.append((problem, modality, _scenario(problem, modality, index)))
    result = BenchResult(spec, key=key_fingerprint(secret))
    say = progress or (lambda _line: None)
    for problem, modality, scenario in problems:
        methods = [p for p in plugins if p.modalities is None or modality.name in p.modalities]
        if baselines:
            methods += baseline_plugins(modality)
        if not methods:
            continue  # no method runs on this modality: do not simulate it
        result.backend = _run_problem(spec, problem, modality, scenario, methods, backend, timeout_s, secret, result,
                                      say)
    _rank(result.leaderboard)
    return result


def _refuse_duplicate_names(plugins: Sequence[Plugin]) -> None:
    """One line naming both targets when two methods would share a name in the results: their
    runs would be merged into one scored entry (``a:mlem`` and ``b:mlem`` are both ``mlem``)."""
    seen: dict[str, str] = {}
    for plugin in plugins:
        if plugin.name in seen:
            raise ValueError(f"--recon: {seen[plugin.name]!r} and {plugin.target!r} both give the method name "
                             f"{plugin.name!r}; rename one (each method needs its own name in the results)")
        seen[plugin.name] = plugin.target


def _scenario(problem, modality, index: int):
    """The problem's scenario with its overrides and only the modalities it needs enabled."""
    from imagingsim.pipeline import load_scenario

    enabled = list(dict.fromkeys([*modality.requires, modality.name]))
    overrides = [*problem.set, f"modalities.enabled={json.dumps(enabled)}"]
    try:
        scenario = load_scenario(problem.scenario, overrides=overrides)
    except ValueError as exc:
        raise ValueError(f"problems[{index}] ({problem.name}): {exc}".splitlines()[0]) from None
    # Every modality scans at most once per session of the schedule: a frame past the last
    # session is refused here, before minutes of simulation (the modality checks its own
    # count, which can be smaller, e.g. sessions before an injection, once simulated).
    sessions = len(scenario.schedule.times_h)
    if problem.frame >= sessions:
        raise ValueError(f"problems[{index}] ({problem.name}).frame: must be < {sessions}, the number of sessions "
                         f"of schedule.times_h; got {problem.frame}")
    return scenario


def _run_problem(spec, problem, modality, scenario, methods, backend, timeout_s, secret, result, say):
    from imagingsim.modalities.base import acquisition_context
    from imagingsim.pipeline import simulate

    subject = simulate(scenario, backend=backend)
    inputs = {r: subject.acquisitions[r] for r in modality.requires if r in subject.acquisitions}
    ctx = acquisition_context(modality.name, subject.phantom, subject.delivery, subject.scenario, subject.backend,
                              subject.seed, **inputs)
    source = modality.recon_problem(ctx, subject.acquisitions[modality.name], frame=problem.frame)
    if source is None:
        raise ValueError(f"problem {problem.name}: modality {modality.name!r} offers no reconstruction benchmark")
    truth, masks = _truth_on_recon_grid(source)
    iterations = spec.iterations_of(problem)
    backend_obj = subject.backend

    def to_host(image):
        # Always a copy: a plug-in that updates its image in place (``x *= ...``) hands the
        # same array to every callback, and each checkpoint must keep the image of its iteration.
        if isinstance(image, np.ndarray):
            return np.array(image, copy=True)
        return np.array(backend_obj.to_host(image), copy=True)

    for level in problem.count_levels:
        scored = {p.name: _Scored() for p in methods}
        for k in range(spec.realisations_of(problem)):
            seed = realisation_seed(spec, problem.name, level, k, secret)
            recon_problem = dataclasses.replace(source.draw(seed, level), iterations=iterations)
            for plugin in methods:
                run = run_plugin(plugin, _own_copy(recon_problem), to_host, timeout_s=timeout_s)
                base = {"suite": spec.name, "problem": problem.name, "modality": modality.name, "count_level": level,
                        "realisation": k, "method": plugin.name, "units": source.units}
                final, error = _score_run(run, base, truth, masks, source, problem, recon_problem.image_shape,
                                          scored[plugin.name], result.rows)
                status = f"failed: {error}" if final is None else f"nrmse {final['nrmse_body']:.4f}, {run.seconds:.2f} s"
                say(f"{problem.name} x{level:g} #{k} {plugin.name}: {status}")
        for plugin in methods:
            row = _summary(spec, problem, modality.name, level, plugin.name, scored[plugin.name], truth, masks,
                           spec.realisations_of(problem))
            result.leaderboard.append({**row, "units": source.units})
            curve = _mean_curve(scored[plugin.name].checkpoints)
            if curve:
                result.curves[(problem.name, level, plugin.name)] = curve
    subject.backend.release_memory()
    return backend_obj.name


def _own_copy(problem):
    """The problem with its own copies of the arrays a plug-in is handed, so that one that
    writes into ``data``, ``additive``, ``multiplicative``, ``mask`` or ``coil_maps`` cannot
    change what the next one gets (the operator keeps its own references to the mask and
    maps, so the copies do not change ``forward`` either). ``native``, the baselines' system
    objects, is shared: a plug-in that uses it is tied to the modality's internals anyway."""
    xp = problem.xp

    def copied(value):
        return value if value is None or isinstance(value, (int, float)) else xp.asarray(value, copy=True)

    return dataclasses.replace(problem, data=copied(problem.data), additive=copied(problem.additive),
                               multiplicative=copied(problem.multiplicative), mask=copied(problem.mask),
                               coil_maps=copied(problem.coil_maps))


def _truth_on_recon_grid(source):
    """The truth and the VOI masks on the reconstruction grid (activity-preserving resampling
    of the truth, nearest-neighbour labels) when the modality reconstructs on another grid."""
    from imagingsim.io.resample import resample_to_grid

    truth, labels = np.asarray(source.truth, dtype=np.float64), np.asarray(source.labels)
    if source.truth_grid != source.recon_grid:
        truth = resample_to_grid(truth, source.truth_grid, source.recon_grid, quantity="concentration").astype(
            np.float64)
        labels = resample_to_grid(labels, source.truth_grid, source.recon_grid, quantity="labels")
    if source.magnitude:
        truth = np.abs(truth)
    return truth, m.voi_masks(labels)


def _checked(image, shape, magnitude: bool) -> tuple[np.ndarray | None, str | None]:
    """The image as real float64, or an error line (wrong shape, complex where real, NaN/inf)."""
    image = np.asarray(image)
    if tuple(image.shape) != tuple(shape):
        return None, f"wrong shape {tuple(image.shape)}, expected {tuple(shape)}"
    if np.iscomplexobj(image):
        if not magnitude:
            return None, "complex image for a real-valued problem"
        image = np.abs(image)
    if not np.issubdtype(image.dtype, np.number):
        return None, f"image of dtype {image.dtype} is not numeric"
    if not np.all(np.isfinite(image)):
        return None, "non-finite values (NaN or inf) in the image"
    if magnitude:
        image = np.abs(image)  # a magnitude problem scores |x| whatever sign a real image has
    return image.astype(np.float64), None


def _score_run(run, base, truth, masks, source, problem, shape, scored: _Scored, rows):
    """Score one run into ``rows`` and ``scored``; returns (final metrics, None) or (None, error line)."""
    if run.error is None:
        final, error = _checked(run.final, shape, source.magnitude)
    else:
        final, error = None, run.error
    if error is not None:
        scored.errors.append(error)
        rows.append({**base, "checkpoint": "failed", "seconds": run.seconds, "status": error})
        return None, error
    curve = []
    for iteration, seconds, image in run.checkpoints:
        checked, problem_line = _checked(image, shape, source.magnitude)
        if checked is None:
            rows.append({**base, "checkpoint": iteration, "seconds": seconds, "status": problem_line})
            continue
        values = m.image_metrics(checked, truth, masks, structural=False)
        rows.append({**base, "checkpoint": iteration, "seconds": seconds, "status": "ok", **values})
        curve.append((iteration, seconds, values))
    values = m.image_metrics(final, truth, masks)
    rows.append({**base, "checkpoint": "final", "seconds": run.seconds, "status": "ok", **values})
    scored.finals.append(final)
    scored.final_metrics.append(values)
    scored.seconds.append(run.seconds)
    scored.reached.append(m.time_to_threshold(curve or [(0, run.seconds, values)], problem.thresholds))
    scored.checkpoints.append([(it, s, v["nrmse_body"]) for it, s, v in curve])
    return values, None


def _summary(spec, problem, modality, level, method, scored: _Scored, truth, masks, n_realisations):
    row: dict[str, Any] = {"problem": problem.name, "modality": modality, "count_level": level, "method": method}
    ok = len(scored.finals)
    if scored.errors:
        row["status"] = f"failed {len(scored.errors)}/{n_realisations}: {scored.errors[0]}"
    else:
        row["status"] = "ok"
    row["realisations"] = ok
    if ok:
        for name in ("nrmse_body", "rmse_background", "aem_tumour", "aem_liver", "crc", "bv", "ssim", "psnr_db"):
            values = [v.get(name, math.nan) for v in scored.final_metrics]
            row[name] = float(np.mean(values)) if values else math.nan
        row.update(m.bias_and_sd(scored.finals, truth, masks))
        row["seconds"] = float(np.mean(scored.seconds))
        reached = [r for r in scored.reached if r is not None]
        row["threshold_reached"] = f"{len(reached)}/{ok}" if problem.thresholds else "n/a"
        row["time_to_threshold_s"] = float(np.mean([s for _, s in reached])) if reached else math.nan
        row["iterations_to_threshold"] = float(np.mean([i for i, _ in reached])) if reached else math.nan
    return row


def _mean_curve(runs: list[list[tuple[int, float, float]]]) -> list[tuple[int, float, float]]:
    """Mean seconds and NRMSE per iteration over the realisations that reached it."""
    by_iteration: dict[int, list[tuple[float, float]]] = {}
    for run in runs:
        for iteration, seconds, value in run:
            by_iteration.setdefault(iteration, []).append((seconds, value))
    return [(it, float(np.mean([s for s, _ in v])), float(np.mean([e for _, e in v])))
            for it, v in sorted(by_iteration.items())]


def _rank(rows: list[dict[str, Any]]) -> None:
    """Order by problem, count level (suite order) and body NRMSE; failed methods last; ``rank`` per group."""
    order = {}
    for row in rows:
        order.setdefault((row["problem"], row["count_level"]), len(order))

    def key(row):
        value = row.get("nrmse_body", math.nan)
        failed = row["status"] != "ok" or not math.isfinite(value)
        return order[(row["problem"], row["count_level"])], failed, value if not failed else 0.0, row["method"]

    rows.sort(key=key)
    group, rank = None, 0
    for row in rows:
        if (row["problem"], row["count_level"]) != group:
            group, rank = (row["problem"], row["count_level"]), 0
        rank += 1
        row["rank"] = rank
