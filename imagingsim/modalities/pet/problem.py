"""PET as a reconstruction benchmark problem, and the built-in PET reconstructions as plug-ins.

:func:`pet_problem` builds the :class:`~imagingsim.recon.problem.ProblemSource` of one frame
from the acquisition's own plan (:func:`~imagingsim.modalities.pet.acquire.plan_pet`) and
noise-free data (:func:`~imagingsim.modalities.pet.acquire.simulate_pet_data`): the truth is
the frame's expected image (what an ideal scanner reports, Bq/mL, before positron range and
PSF), and each realisation draws Poisson prompts from ``count_scale x (trues + scatter +
randoms)`` with the acquisition's generator key ``(seed, PET_NOISE_STREAM, schedule index)``,
so ``draw(subject seed, 1.0)`` gives exactly the prompts the simulation wrote.

The problem's ``forward`` is ``H P`` (Joseph projection and the tracer's positron range x PSF
blur projected onto the sinogram), ``multiplicative = count_scale x n_k x a`` (calibration x
attenuation factors) and ``additive = count_scale x`` (scatter + randoms): the model of
:meth:`~imagingsim.modalities.pet.system.PETSystem.model` split at its diagonal.

The baselines (``fbp``, ``mlem``, ``osem``, ``osem_nopsf``) are plug-ins of the benchmark
protocol (``recon(problem, *, callback=None)``) that run the PET stack's own reconstructions
(:func:`~imagingsim.modalities.pet.system.reconstruct_pet`, :func:`~imagingsim.recon.osem`) on
``problem.native``; EM baselines report every iteration to ``callback`` and are not post-filtered.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.pet.acquire import PET_NOISE_STREAM, plan_pet, simulate_pet_data
from imagingsim.modalities.pet.result import ScannerParams
from imagingsim.modalities.pet.system import PETSystem, reconstruct_pet, resolution_kernel
from imagingsim.operators import Reshape
from imagingsim.physics.noise import poisson_counts
from imagingsim.projectors import ParallelProjector
from imagingsim.recon import osem
from imagingsim.recon.problem import ProblemSource, ReconProblem, check_frame


@dataclasses.dataclass(frozen=True, eq=False)
class PETNative:
    """What the PET baselines use beyond the public problem: the one-frame system with the
    realisation's calibration, and the scanner preset (subsets, FBP filter, post-filter)."""

    system: PETSystem
    scanner: ScannerParams


def pet_problem(ctx: AcquisitionContext, acquisition, *, frame: int = 0) -> ProblemSource:
    """The benchmark problem of PET frame ``frame`` (see the module docstring).

    Raises
    ------
    ValueError
        ``frame`` outside the acquisition's frames.
    """
    check_frame("pet", frame, acquisition.n_frames, "frames")
    backend = ctx.backend
    xp = backend.xp
    plan = plan_pet(ctx)
    raw = simulate_pet_data(plan, ctx)
    system = plan.system
    grid = ctx.phantom.grid
    nz = grid.shape[2]
    mean = (raw.trues + raw.background)[..., frame]
    background = raw.background[..., frame]
    kernel = system.resolution_kernel
    if kernel is None:  # the scenario's recon had no PSF model: the benchmark's forward has one
        kernel = resolution_kernel(plan.tracer_nuclide, plan.scanner.fwhm_mm, grid.voxel_size_mm, grid.shape, backend)
    one_frame = dataclasses.replace(
        system, n_frames=1, projector=ParallelProjector(system.geometry, nz, backend),
        counts_per_unit_projection=(system.counts_per_unit_projection[frame],),
        resolution_kernel=xp.astype(kernel, xp.float32),
    )
    unit = dataclasses.replace(one_frame, counts_per_unit_projection=(1.0,),
                               attenuation_factors=xp.ones_like(system.attenuation_factors))
    image4, sino4 = grid.shape + (1,), tuple(unit.projector.out_shape) + (1,)
    operator = Reshape(sino4, sino4[:3], backend) @ unit.model(resolution=True) @ Reshape(grid.shape, image4, backend)
    weights = one_frame.weights()[..., 0]
    schedule_index = plan.frames[frame]
    truth = backend.to_host(xp.astype(raw.expected_image_bq_per_ml[..., frame], xp.float64))
    labels = backend.to_host(ctx.phantom.labels)
    del raw

    def draw(seed: int, count_scale: float = 1.0) -> ReconProblem:
        scale = float(count_scale)
        prompts = poisson_counts(mean * scale, backend.rng(seed, PET_NOISE_STREAM, schedule_index), validate=False)
        scaled = dataclasses.replace(one_frame, counts_per_unit_projection=(one_frame.counts_per_unit_projection[0]
                                                                            * scale,))
        return ReconProblem(
            modality="pet", data=xp.astype(prompts, xp.float32), operator=operator,
            additive=background * scale, multiplicative=weights * scale, image_shape=tuple(grid.shape),
            voxel_size_mm=tuple(grid.voxel_size_mm), affine=grid.affine, backend=backend, units="Bq/mL",
            native=PETNative(scaled, plan.scanner),
        )

    return ProblemSource(modality="pet", truth=truth, truth_grid=grid, recon_grid=grid, labels=labels,
                         units="Bq/mL", draw=draw)


def _four_d(problem: ReconProblem) -> tuple[Any, Any]:
    return problem.data[..., None], problem.additive[..., None]


def _em(problem: ReconProblem, callback, *, subsets: bool, resolution: bool):
    native: PETNative = problem.native
    system = native.system
    prompts, background = _four_d(problem)
    views = system.geometry.subset_views(native.scanner.subsets) if subsets else [None]
    iterations = getattr(problem, "iterations", None) or native.scanner.iterations

    def report(iteration, image):
        if callback is not None:
            callback(image[..., 0], iteration)

    image = osem([system.take_views(prompts, v) for v in views], [system.model(v, resolution=resolution) for v in views],
                 [system.take_views(background, v) for v in views], iterations, callback=report)
    return image[..., 0]


def fbp_baseline(problem: ReconProblem, *, callback=None):
    """PET FBP of the precorrected sinogram with the scanner's filter and post-filter."""
    native: PETNative = problem.native
    prompts, background = _four_d(problem)
    image = reconstruct_pet("fbp", prompts, background, native.system, native.scanner)[..., 0]
    if callback is not None:
        callback(image, 1)
    return image


def mlem_baseline(problem: ReconProblem, *, callback=None):
    """PET MLEM with attenuation, scatter, randoms and PSF in the model (one subset)."""
    return _em(problem, callback, subsets=False, resolution=True)


def osem_baseline(problem: ReconProblem, *, callback=None):
    """PET OSEM (the scanner's subsets) with the PSF in the model."""
    return _em(problem, callback, subsets=True, resolution=True)


def osem_nopsf_baseline(problem: ReconProblem, *, callback=None):
    """PET OSEM without the PSF in the model (attenuation, scatter and randoms only)."""
    return _em(problem, callback, subsets=True, resolution=False)
