"""CT as a reconstruction benchmark problem, and the built-in CT FBP as a plug-in.

The problem of scan ``frame`` is the linear one a reconstruction of CT solves after the log:
``data`` are the measured line integrals ``ln(I0 / max(I, 1))``, water-precorrected when the
system is (:mod:`~imagingsim.modalities.ct.recon`), ``forward`` the Joseph parallel-beam
projector of the acquisition's geometry (mm), ``multiplicative = 1`` and ``additive = 0``:
``E[data] ~= forward(mu)`` up to the residual beam hardening of non-water tissue and the
log's noise bias at low counts (the simulation is polyenergetic, the problem's model is not:
the mismatch a real CT reconstruction has too). The truth is the acquisition's true
attenuation at the calibration's effective energy, 1/mm.

Each realisation draws Poisson counts from ``count_scale x`` the acquisition's expected counts
with its generator key ``(seed, CT_NOISE_STREAM, scan index)`` and an air scan
``count_scale x I0``: ``draw(subject seed, 1.0)`` gives the counts the simulation wrote.
"""

from __future__ import annotations

import dataclasses

from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.ct.acquire import CT_NOISE_STREAM
from imagingsim.modalities.ct.recon import line_integrals_from_counts, water_precorrect
from imagingsim.physics.noise import poisson_counts
from imagingsim.projectors import ParallelProjector, PixelBackprojector
from imagingsim.recon import fbp
from imagingsim.recon.problem import ProblemSource, ReconProblem, check_frame


@dataclasses.dataclass(frozen=True)
class CTNative:
    """What the CT baseline uses beyond the public problem: the system settings (FBP filter and
    cut-off). Only settings: the acquisition itself holds the true mu and is not handed over."""

    system: object


def ct_problem(ctx: AcquisitionContext, acquisition, *, frame: int = 0) -> ProblemSource:
    """The benchmark problem of CT scan ``frame`` (see the module docstring)."""
    n_scans = len(acquisition.times_h)
    check_frame("ct", frame, n_scans, "scans")
    backend = ctx.backend
    xp = backend.xp
    grid = acquisition.grid
    nz = grid.shape[2]
    geometry, system, calibration = acquisition.geometry, acquisition.system, acquisition.calibration
    expected = acquisition.expected_counts[..., frame]
    operator = ParallelProjector(geometry, nz, backend)
    truth = backend.to_host(xp.astype(acquisition.mu_true_per_mm[..., frame], xp.float64))
    labels = backend.to_host(ctx.phantom.labels)

    def draw(seed: int, count_scale: float = 1.0) -> ReconProblem:
        scale = float(count_scale)
        counts = expected * scale
        if system.noise:
            counts = xp.astype(poisson_counts(counts, backend.rng(seed, CT_NOISE_STREAM, frame), validate=False),
                               xp.float32)
        lines = line_integrals_from_counts(counts, acquisition.i0_photons * scale, backend)
        if system.water_precorrection:
            lines = water_precorrect(lines, calibration, backend)
        return ReconProblem(modality="ct", data=lines, operator=operator, additive=0.0, multiplicative=1.0,
                            image_shape=tuple(grid.shape), voxel_size_mm=tuple(grid.voxel_size_mm),
                            affine=grid.affine, backend=backend, units="1/mm", native=CTNative(system))

    return ProblemSource(modality="ct", truth=truth, truth_grid=ctx.phantom.grid, recon_grid=grid, labels=labels,
                         units="1/mm", draw=draw)


def fbp_baseline(problem: ReconProblem, *, callback=None):
    """CT FBP of the line integrals with the system's filter and cut-off (1/mm)."""
    system = problem.native.system
    geometry = problem.operator.geometry
    image = fbp(problem.data, PixelBackprojector(geometry, problem.image_shape[2], problem.backend),
                filter_name=system.fbp_filter, cutoff=system.fbp_cutoff)
    if callback is not None:
        callback(image, 1)
    return image
