"""What a simulation will need, estimated before any work: peak memory, output bytes, time.

The estimate walks the stages of one subject in order. Each stage's memory cost is what it
adds to the resident memory at its own peak: its results and its transient working set.
The results stay until the dataset is written, the working set does not, so a stage peaks
on top of the baseline of the process, its own cost, and the held part
(:data:`HELD_FRACTION`) of every earlier stage's cost. The phantom and the delivery are
costed here from the grid, the agents and the schedule; each modality costs itself through
:meth:`imagingsim.modalities.base.Modality.cost`.

The coefficients were fitted to measured peaks (Linux ``VmHWM`` per stage), output sizes and
wall times of the built-in scenarios at three voxel sizes each, on the numpy backend on a
2-core x86-64 machine (``benchmarks/resources.py`` prints the estimate beside the
measurement; rerun it after a change that moves memory). Times scale with the machine.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from imagingsim.modalities import registry
from imagingsim.modalities.base import StageCost
from imagingsim.phantom.build import phantom_grid
from imagingsim.scenario import Scenario

__all__ = [
    "ResourceError",
    "ResourceEstimate",
    "available_memory_bytes",
    "check_resources",
    "estimate_resources",
    "free_disk_bytes",
]

#: Resident memory of a process that has imported imagingsim, numpy, scipy and nibabel
#: (measured: 114-120 MB) before any array exists.
BASE_BYTES = 125e6

#: Of each stage's memory cost, the part still held when a later stage peaks (results; the
#: working set is freed). Fitted with the costs below: 0.6 puts the estimated peak of all 18
#: measured runs (6 built-in scenarios x 3 voxel sizes) within -13 % .. +28 % of the measured one.
HELD_FRACTION = 0.6

#: Phantom per voxel: labels and tumour index (1 byte each), ~15 float64 property maps held,
#: a scratch map while drawing (measured 175-212 B/voxel at peak, 0.5-1.0 us/voxel).
PHANTOM_PER_VOXEL = StageCost(memory_bytes=190.0, output_bytes=0.0, seconds=0.6e-6)

#: Delivery working set per voxel: the solver state of the carrier compartments and their
#: step factors (one agent at a time), larger with a payload's drug compartments (measured:
#: 155-190 B/voxel without a payload, 375-510 with one, maps included).
DELIVERY_WORKING_PER_VOXEL = 100.0
DELIVERY_WORKING_PER_VOXEL_PAYLOAD = 170.0
#: Float64 maps held per agent per time point: carrier and bound carrier, plus free, bound
#: and encapsulated drug with a payload.
DELIVERY_MAPS = 2
DELIVERY_MAPS_PAYLOAD = 3
#: Solver time per voxel per time point per agent: 1-25 us/voxel over the built-ins, the
#: long-circulating carriers (many steps to their slow exchanges) at the top; the upper half
#: is taken so that the estimate rarely promises too little.
DELIVERY_SECONDS_PER_VOXEL_TIME = 3.0e-6

#: Written by the dataset writer itself (truth labels and maps, delivery maps per agent and
#: time, gzip'd): measured 6.5-36 B/voxel.
CORE_OUTPUT_PER_VOXEL = 3.0
CORE_OUTPUT_PER_VOXEL_TIME = 2.0
CORE_OUTPUT_PER_VOXEL_TIME_PAYLOAD = 4.5
#: Writing: per-voxel overhead plus gzip of every byte (measured 2.7-10.3 s per subject).
WRITE_SECONDS_PER_VOXEL = 5.0e-6
WRITE_SECONDS_PER_BYTE = 2.0e-8


class ResourceError(ValueError):
    """The run would not fit the memory or the disk; one line naming the voxel size that would."""


@dataclass(frozen=True)
class ResourceEstimate:
    """Estimated needs of one subject.

    Attributes
    ----------
    n_voxels : int
        Voxels of the phantom grid.
    peak_bytes : float
        Peak resident memory of the process, bytes.
    output_bytes : float
        Size of the written dataset, bytes.
    seconds : float
        Wall time on one core of a current x86-64 CPU, s (rough: the machine decides).
    stages : dict of str to StageCost
        The contribution of each stage (phantom, delivery, each modality, writing).
    """

    n_voxels: int
    peak_bytes: float
    output_bytes: float
    seconds: float
    stages: dict[str, StageCost]

    def as_dict(self) -> dict:
        return {**asdict(self), "stages": {k: asdict(v) for k, v in self.stages.items()}}

    def line(self) -> str:
        """The estimate as it appears in the CLI header line."""
        return (f"{self.n_voxels / 1e6:.2f} M voxels, estimated peak memory {_gb(self.peak_bytes)}, "
                f"output {_gb(self.output_bytes)}, ~{_duration(self.seconds)}")


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def estimate_resources(scenario: Scenario) -> ResourceEstimate:
    """Estimate the peak memory, output size and time of simulating and writing ``scenario``.

    Parameters
    ----------
    scenario : Scenario
        Validated with the modality settings (:func:`imagingsim.load_scenario`).

    Returns
    -------
    ResourceEstimate

    Raises
    ------
    ValueError
        The grid exceeds :data:`~imagingsim.phantom.build.MAX_VOXELS` (one line naming
        ``phantom.voxel_size_mm``).
    """
    grid = phantom_grid(scenario.phantom)
    n = grid.n_voxels
    stages = {"phantom": PHANTOM_PER_VOXEL.scaled(n), "delivery": _delivery_cost(scenario, n)}
    for name in registry.acquisition_order(scenario.modalities.enabled):
        modality = registry.get(name)
        stages[name] = modality.cost(getattr(scenario.modalities, name), scenario, grid)
    output = sum(stage.output_bytes for stage in stages.values())
    stages["write"] = StageCost(0.0, 0.0, n * WRITE_SECONDS_PER_VOXEL + output * WRITE_SECONDS_PER_BYTE)
    held = peak = 0.0
    for stage in stages.values():
        peak = max(peak, held + stage.memory_bytes)
        held += HELD_FRACTION * stage.memory_bytes
    return ResourceEstimate(
        n_voxels=n,
        peak_bytes=BASE_BYTES + peak,
        output_bytes=output,
        seconds=sum(stage.seconds for stage in stages.values()),
        stages=stages,
    )


def _delivery_cost(scenario: Scenario, n: int) -> StageCost:
    """Delivery maps held for every agent, the solver's working set of the largest agent, and
    the core dataset files (truth and delivery maps), which scale the same way."""
    n_times = len(scenario.schedule.times_h)
    payloads = [agent.payload is not None for agent in scenario.agents]
    maps = sum(DELIVERY_MAPS + DELIVERY_MAPS_PAYLOAD * p for p in payloads)
    working = DELIVERY_WORKING_PER_VOXEL + DELIVERY_WORKING_PER_VOXEL_PAYLOAD * any(payloads)
    written = sum(CORE_OUTPUT_PER_VOXEL_TIME + CORE_OUTPUT_PER_VOXEL_TIME_PAYLOAD * p for p in payloads)
    return StageCost(
        memory_bytes=n * (working + 8.0 * maps * n_times),
        output_bytes=n * (CORE_OUTPUT_PER_VOXEL + written * n_times),
        seconds=n * n_times * len(payloads) * DELIVERY_SECONDS_PER_VOXEL_TIME,
    )


def available_memory_bytes() -> float | None:
    """Memory this process may still use, bytes: the least of the kernel's ``MemAvailable``
    and the room left under a cgroup (v2 or v1) limit, as batch schedulers and containers set.
    None where neither can be read (not Linux)."""
    candidates = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max" or a huge v1 number: no limit
            candidates.append(int(limit) - usage)
        break
    return float(min(candidates)) if candidates else None


def free_disk_bytes(out: Path) -> float:
    """Free bytes on the file system that will hold ``out`` (its nearest existing ancestor)."""
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    return float(shutil.disk_usage(ancestor).free)


def _finest_fitting_voxel_mm(scenario: Scenario, fits) -> float | None:
    """The smallest voxel size (0.01 mm steps) whose estimate ``fits``, or None if none up to the maximum."""
    field = type(scenario.phantom).model_fields["voxel_size_mm"]
    upper = next(m.le for m in field.metadata if hasattr(m, "le"))
    lo, hi = scenario.phantom.voxel_size_mm, float(upper)

    def ok(voxel_mm: float) -> bool:
        candidate = scenario.model_copy(update={"phantom": scenario.phantom.model_copy(update={"voxel_size_mm": voxel_mm})})
        try:
            return fits(estimate_resources(candidate))
        except ValueError:  # still over the voxel cap
            return False

    if not ok(hi):
        return None
    for _ in range(30):  # bisection: the estimate grows monotonically as voxels shrink
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return math.ceil(hi * 100.0) / 100.0


def check_resources(scenario: Scenario, estimate: ResourceEstimate, out: Path, *,
                    memory_bytes: float | None = None) -> None:
    """Refuse a run whose estimate exceeds the memory or the disk it has.

    Parameters
    ----------
    scenario : Scenario
        The scenario estimated (used to find the finest voxel size that fits).
    estimate : ResourceEstimate
        From :func:`estimate_resources`.
    out : Path
        The output directory (its file system is checked for free space).
    memory_bytes : float, optional
        Memory allowed, bytes; default what the machine has available
        (:func:`available_memory_bytes`).

    Raises
    ------
    ResourceError
        One line naming ``phantom.voxel_size_mm``, the need, what is available and the
        finest voxel size that fits.
    """
    memory = available_memory_bytes() if memory_bytes is None else memory_bytes
    disk = free_disk_bytes(out)  # a dataset being replaced stays until the new one is in place
    if memory is not None and estimate.peak_bytes > memory:
        finest = _finest_fitting_voxel_mm(scenario, lambda e: e.peak_bytes <= memory)
        raise ResourceError(_refusal(scenario, f"needs about {_gb(estimate.peak_bytes)} of memory at its peak, "
                                               f"{_gb(memory)} available", finest))
    if estimate.output_bytes > disk:
        finest = _finest_fitting_voxel_mm(scenario, lambda e: e.output_bytes <= disk)
        raise ResourceError(_refusal(scenario, f"writes about {_gb(estimate.output_bytes)}, "
                                               f"{_gb(disk)} free under {out.parent}", finest))


def _refusal(scenario: Scenario, need: str, finest: float | None) -> str:
    voxel = scenario.phantom.voxel_size_mm
    advice = f"voxel_size_mm >= {finest:g} fits" if finest is not None else "no voxel size fits"
    return f"phantom.voxel_size_mm: {voxel:g} mm {need}; {advice}"
