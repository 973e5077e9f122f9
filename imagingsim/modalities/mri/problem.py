"""MRI as a reconstruction benchmark problem, and zero filling and CG-SENSE as plug-ins.

The problem of session ``frame`` is the first echo's k-space: ``data = forward(m) + noise``
with ``forward = M F S`` (coil maps, orthonormal FFT, sampling mask; the acquisition's own
:func:`~imagingsim.modalities.mri.recon.encoding_operator`), ``additive = 0`` and
``multiplicative = 1``; ``problem.mask`` and ``problem.coil_maps`` are the acquisition's. The
truth is the noiseless complex first-echo image ``m`` (proton density, relaxation with the
session's iron, off-resonance phase; arbitrary units), recovered from the plan's noise-free,
fully sampled k-space by ``E^H`` (exact: the maps are normalised, ``E^H E = I`` fully sampled).
Images are scored by magnitude.

Each realisation adds complex Gaussian noise of sd ``sigma / sqrt(count_scale)`` per part
(``count_scale`` scales the SNR squared, as scan time does) with the acquisition's generator key
``(seed, MRI_NOISE_STREAM, session)`` over all echoes, of which the first is kept:
``draw(subject seed, 1.0)`` gives the first echo the simulation wrote.
"""

from __future__ import annotations

import dataclasses
import math

from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.mri.acquire import MRI_NOISE_STREAM, add_kspace_noise, plan_mri, simulate_mri_session
from imagingsim.modalities.mri.recon import cg_sense, encoding_operator, zero_filled
from imagingsim.operators import Reshape
from imagingsim.recon.problem import ProblemSource, ReconProblem, check_frame


def mri_problem(ctx: AcquisitionContext, acquisition, *, frame: int = 0) -> ProblemSource:
    """The benchmark problem of the first echo of MRI session ``frame`` (see the module docstring)."""
    n_sessions = len(acquisition.times_h)
    check_frame("mri", frame, n_sessions, "sessions")
    backend = ctx.backend
    xp = backend.xp
    grid = ctx.phantom.grid
    plan = plan_mri(ctx)
    noiseless = dataclasses.replace(plan, spec=plan.spec.model_copy(update={"noise_percent": 0.0,
                                                                             "undersampling": "none"}))
    clean, _ = simulate_mri_session(noiseless, ctx, frame)  # (E, C, nx, ny, nz), fully sampled
    truth_image = plan.forward.adjoint(clean)[0, ...]
    truth = backend.to_host(xp.astype(xp.abs(truth_image), xp.float64))
    mask = plan.mask if plan.undersampled else None
    n_coils = 1 if plan.coil_maps is None else int(plan.coil_maps.shape[0])
    shape = tuple(grid.shape)
    operator = (Reshape((1, n_coils) + shape, (n_coils,) + shape, backend)
                @ encoding_operator(shape, backend, mask=mask, coil_maps=plan.coil_maps, n_batch=1)
                @ Reshape(shape, (1,) + shape, backend))
    labels = backend.to_host(ctx.phantom.labels)
    spec = plan.spec

    def draw(seed: int, count_scale: float = 1.0) -> ReconProblem:
        if spec.noise_percent > 0:
            sigma = plan.sigma * (1.0 / math.sqrt(float(count_scale)))
            noisy = add_kspace_noise(clean, sigma, backend.rng(seed, MRI_NOISE_STREAM, frame), backend, mask=mask)
        else:
            noisy = clean if mask is None else clean * xp.astype(mask, plan.rdtype)
        return ReconProblem(modality="mri", data=noisy[0, ...], operator=operator, additive=0.0, multiplicative=1.0,
                            image_shape=shape, voxel_size_mm=tuple(grid.voxel_size_mm), affine=grid.affine,
                            backend=backend, units="a.u.", mask=plan.mask, coil_maps=plan.coil_maps, native=spec)

    return ProblemSource(modality="mri", truth=truth, truth_grid=grid, recon_grid=grid, labels=labels, units="a.u.",
                         draw=draw, magnitude=True)


def zero_filled_baseline(problem: ReconProblem, *, callback=None):
    """Zero-filled inverse FFT with root-sum-of-squares coil combination (a magnitude image)."""
    image = zero_filled(problem.data[None, ...], problem.backend)[0, ...]
    if callback is not None:
        callback(image, 1)
    return image


def cg_sense_baseline(problem: ReconProblem, *, callback=None):
    """CG-SENSE (Pruessmann et al. 2001) with the acquisition's regularisation; ``problem.iterations``
    CG iterations (the acquisition's ``cg_iterations`` when None)."""
    spec = problem.native
    iterations = problem.iterations or spec.cg_iterations
    image = cg_sense(problem.data[None, ...], problem.backend, mask=problem.mask, coil_maps=problem.coil_maps,
                     iterations=iterations, regularization=spec.cg_regularization)[0, ...]
    if callback is not None:
        callback(image, iterations)
    return image
