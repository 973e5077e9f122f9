"""imagingsim benchmarks: one entry point for all of them.

    python benchmarks/run.py [--only NAME ...] [--quick] [--json PATH] [--backend numpy|cupy]

Every comparison is a ratio measured side by side in the same run (reference time / our
time), so machines of different speed give comparable figures. Absolute times are reported
with the machine they ran on. Unit tests never time anything; timing lives here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Callable

BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict]] = {}


def benchmark(func):
    BENCHMARKS[func.__name__] = func
    return func


def best_of(func, repeats: int) -> float:
    """Minimum wall time of ``repeats`` calls, s (the minimum is the least noisy estimator)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory_mb(func) -> tuple[float, object]:
    """Peak Python-heap memory (numpy buffers included) while ``func`` runs, MB."""
    tracemalloc.start()
    try:
        result = func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1e6, result


@benchmark
def simulate_default(args) -> dict:
    """`imagingsim simulate` on the default scenario: stage times and peak memory."""
    import imagingsim
    from imagingsim.pipeline import simulate, write_subject

    scenario = imagingsim.load_scenario(None, ["phantom.voxel_size_mm=1.0"] if args.quick else [])
    with TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subject = simulate(scenario, backend=args.backend)
        write_start = time.perf_counter()
        files = write_subject(subject, Path(tmp) / "ds")
        end = time.perf_counter()
        size_mb = sum(f.stat().st_size for f in files) / 1e6
    peak_mb, _ = peak_memory_mb(lambda: simulate(scenario, backend=args.backend))
    return {
        "simulate_default_seconds": round(end - start, 3),
        "phantom_seconds": round(subject.timings_s["phantom"], 3),
        "delivery_seconds": round(subject.timings_s["delivery"], 3),
        "write_seconds": round(end - write_start, 3),
        "dataset_mb": round(size_mb, 2),
        "simulate_peak_memory_mb": round(peak_mb, 1),
        "grid_shape": list(subject.phantom.grid.shape),
    }


@benchmark
def random_field(args) -> dict:
    """Gaussian random field by FFT filtering vs scipy.ndimage.gaussian_filter of the same noise."""
    import numpy as np
    from scipy import ndimage

    from imagingsim.backend import get_backend
    from imagingsim.grid import ImageGrid
    from imagingsim.phantom.heterogeneity import gaussian_random_field

    be = get_backend(args.backend)
    shape = (64, 64, 64) if args.quick else (128, 128, 128)
    grid = ImageGrid(shape, (0.5, 0.5, 0.5))
    length_mm = 2.0
    ours = best_of(lambda: gaussian_random_field(be, grid, length_mm, be.rng(1)), 3)

    def reference_field():
        # Same covariance: filter sigma = l / sqrt(2) (in voxels), truncated at 4 sigma; the
        # noise is drawn inside both timings (ours pads it, so it draws a little more).
        noise = np.random.default_rng(1).standard_normal(shape)
        return ndimage.gaussian_filter(noise, length_mm / np.sqrt(2) / 0.5)

    reference = best_of(reference_field, 3)
    return {"grf_fft_vs_scipy_gaussian_filter": round(reference / ours, 2), "grf_shape": list(shape)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--quick", action="store_true", help="smaller problems (smoke run)")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "cupy"))
    args = parser.parse_args(argv)
    results: dict = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "backend": args.backend,
        "quick": args.quick,
    }
    for name in args.only or sorted(BENCHMARKS):
        print(f"{name} ...", file=sys.stderr, flush=True)
        results[name] = BENCHMARKS[name](args)
        print(json.dumps({name: results[name]}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
