"""Measured resources of a simulation beside imagingsim's estimate of them, per stage.

    python benchmarks/resources.py [SCENARIO] [--voxel-size-mm V ...] [--json PATH]

For each voxel size, one child process per run (so each starts from a fresh heap) simulates
and writes the scenario and reports, per stage: the resident memory before it, the peak
during it (Linux ``VmHWM``, reset before each stage through ``/proc/self/clear_refs``), the
memory it leaves held, its wall time, and the bytes each modality wrote. The parent prints
them beside :func:`imagingsim.resources.estimate_resources`. The estimate's coefficients
were fitted from this script's output; rerun it after a change that moves memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import functools, json, sys, tempfile, time
from pathlib import Path

def status():
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(value.split()[0]) * 1024
    return values

from imagingsim import pipeline
from imagingsim.dataset.write import write_dataset
from imagingsim.modalities import registry
from imagingsim.modalities.base import WriteContext

scenario = pipeline.load_scenario(sys.argv[1], json.loads(sys.argv[2]))
stages = []

class Stage:
    def __init__(self, name):
        self.name = name
    def __enter__(self):
        self.before = status()["VmRSS"]
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM to the current RSS
        self.start = time.perf_counter()
    def __exit__(self, *exc):
        now = status()
        stages.append({"stage": self.name, "before": self.before, "peak": now["VmHWM"],
                       "after": now["VmRSS"], "seconds": time.perf_counter() - self.start})

subject = pipeline.simulate(scenario, backend="numpy", step=Stage)
written = {}

def size(root):
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())

def record(name, func, stage):
    before = size(stage)  # writers need not return their files: measure what they added
    func(stage)
    written[name] = size(stage) - before

ctx = WriteContext(subject.scenario, subject.phantom, subject.backend, subject.acquisitions)
writers = [functools.partial(record, name, functools.partial(registry.get(name).write, acquisition=acq, ctx=ctx))
           for name, acq in subject.acquisitions.items()]
with tempfile.TemporaryDirectory() as tmp, Stage("write"):
    files = write_dataset(Path(tmp) / "ds", subject.scenario, subject.phantom, subject.delivery,
                          subject.backend, extra_writers=writers)
    total = sum(f.stat().st_size for f in files if f.is_file())
written["core"] = total - sum(written.values())
print(json.dumps({"n_voxels": subject.phantom.grid.n_voxels, "stages": stages, "output_bytes": written}))
"""


def measure(scenario: str, overrides: list[str]) -> dict:
    """Run one simulation in a child process and return its per-stage measurements."""
    result = subprocess.run([sys.executable, "-c", CHILD, scenario, json.dumps(overrides)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_of(measured: dict) -> int:
    """Peak resident memory of the whole run, bytes."""
    return max(stage["peak"] for stage in measured["stages"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="mouse_peg_liposome")
    parser.add_argument("--voxel-size-mm", type=float, nargs="+", default=[1.0, 0.7, 0.5])
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from imagingsim.resources import estimate_resources

    import imagingsim

    rows = []
    for size in args.voxel_size_mm:
        overrides = [*args.overrides, f"phantom.voxel_size_mm={size}"]
        measured = measure(args.scenario, overrides)
        estimate = estimate_resources(imagingsim.load_scenario(args.scenario, overrides))
        rows.append({"voxel_size_mm": size, "measured": measured, "estimate": estimate.as_dict()})
        peak, seconds = peak_of(measured), sum(s["seconds"] for s in measured["stages"])
        out = sum(measured["output_bytes"].values())
        print(f"{args.scenario} at {size:g} mm ({measured['n_voxels'] / 1e6:.2f} M voxels): "
              f"peak {peak / 1e9:.2f} GB (estimate {estimate.peak_bytes / 1e9:.2f}, "
              f"{estimate.peak_bytes / peak - 1:+.0%}), output {out / 1e9:.3f} GB "
              f"(estimate {estimate.output_bytes / 1e9:.3f}), {seconds:.0f} s (estimate {estimate.seconds:.0f})")
        for stage in measured["stages"]:
            print(f"    {stage['stage']:9s} before {stage['before'] / 1e6:7.0f} MB  peak {stage['peak'] / 1e6:7.0f} MB"
                  f"  after {stage['after'] / 1e6:7.0f} MB  {stage['seconds']:6.1f} s")
        print("    output MB: " + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in measured["output_bytes"].items()))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
