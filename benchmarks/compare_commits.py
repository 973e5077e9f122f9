"""Two commits side by side: `imagingsim simulate` per stage, interleaved runs, peak RSS.

    python benchmarks/compare_commits.py BASE [--head REV] [--scenarios NAME ...] [--rounds 3]

Each revision is checked out in a temporary git worktree (``--head`` defaults to this
checkout as it is, uncommitted changes included) and run from it with this Python
(``PYTHONPATH`` puts the worktree's package first, so both use the same installed
dependencies). Runs alternate base, head, base, head... so a machine that slows down or
warms up during the measurement affects both alike. Per stage the median of the rounds is
reported with the ratio base / head (above 1: head is faster), and the peak resident memory
of each run (``ru_maxrss`` of that child, from ``os.wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIOS = ("mouse_peg_liposome", "torso_liver_metastasis", "mouse_gold_spect_ct")
#: The CLI's per-stage lines ("  delivery: 9.3 s") and its last line ("done in 36.1 s").
STAGE_LINE = re.compile(r"^  ([a-z][a-z ]*): ([0-9.]+) s$")
TOTAL_LINE = re.compile(r"^done in ([0-9.]+) s$")


def run_once(source: Path, scenario: str, out: Path, extra: list[str] | None = None) -> dict:
    """One `imagingsim simulate` from ``source``: seconds per stage, total, peak RSS in MB."""
    env = {**os.environ, "PYTHONPATH": str(source), "COLUMNS": "200"}
    command = [sys.executable, "-m", "imagingsim", "simulate", scenario, "--out", str(out), "--overwrite",
               "--backend", "numpy", *(extra or [])]
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(command, cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        lines = log.read().splitlines()
    if child.returncode != 0:
        raise RuntimeError(f"{source} {scenario}: exit {child.returncode}\n" + "\n".join(lines[-20:]))
    stages = {m.group(1): float(m.group(2)) for m in map(STAGE_LINE.match, lines) if m}
    total = next(float(m.group(1)) for m in map(TOTAL_LINE.match, lines) if m)
    return {"stages": stages, "total": total, "peak_rss_mb": usage.ru_maxrss / 1024.0}  # Linux: KiB


def checkout(revision: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(into), revision], check=True,
                   capture_output=True)
    return into


def summarise(runs: list[dict]) -> dict:
    stages = sorted({s for r in runs for s in r["stages"]})
    return {
        "stages": {s: statistics.median(r["stages"].get(s, 0.0) for r in runs) for s in stages},
        "total": statistics.median(r["total"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the reference revision (e.g. a commit before the change)")
    parser.add_argument("--head", help="the revision to compare (default: this checkout as it is)")
    parser.add_argument("--scenarios", nargs="+", default=list(DEFAULT_SCENARIOS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the medians and ratios here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="imagingsim-compare-") as tmp:
        root = Path(tmp)
        sources = {"base": checkout(args.base, root / "base")}
        sources["head"] = checkout(args.head, root / "head") if args.head else REPO
        try:
            report = {}
            for scenario in args.scenarios:
                runs: dict[str, list[dict]] = {"base": [], "head": []}
                for _ in range(args.rounds):
                    for which, source in sources.items():
                        runs[which].append(run_once(source, scenario, root / f"out-{which}"))
                medians = {which: summarise(r) for which, r in runs.items()}
                ratios = {s: round(medians["base"]["stages"][s] / t, 2)
                          for s, t in medians["head"]["stages"].items() if t > 0 and s in medians["base"]["stages"]}
                ratios["total"] = round(medians["base"]["total"] / medians["head"]["total"], 2)
                report[scenario] = {**medians, "speedup": ratios}
                print(json.dumps({scenario: report[scenario]}), flush=True)
        finally:
            for which, source in sources.items():
                if source != REPO:
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(source)],
                                   check=False, capture_output=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
