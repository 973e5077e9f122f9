"""SPECT as a reconstruction benchmark problem, and the OSEM variants as plug-ins.

The problem of acquisition ``frame`` is on the reconstruction grid (``voxel_binning`` times
coarser than the phantom): ``data`` are the measured counts, ``forward`` the sum over
photopeaks of the rotation-based projector with attenuation (the acquisition's correction
map: from its CT when CT ran, else the true mu averaged over each coarse voxel) and the
depth-dependent collimator response, each times its counts per unit projection
(:func:`~imagingsim.modalities.spect.system.system_model`). Attenuation depends on the depth along
each ray, so it is inside ``forward`` and ``multiplicative`` is 1; ``additive`` is the expected
scatter (a model-based scatter estimate; the TEW estimate of the scan is noisy and is not
redrawn per realisation).

The truth is the acquisition's expected activity image on the phantom grid (Bq/mL, in the
images' decay convention); the harness resamples it onto the coarse grid keeping the activity.
Each realisation draws Poisson counts from ``count_scale x`` (primary + scatter) with the
acquisition's generator key ``(seed, SPECT_NOISE_STREAM, schedule index, 0)``:
``draw(subject seed, 1.0)`` gives the counts the simulation wrote.

The baselines run OSEM with the scan's subsets with and without attenuation and collimator
modelling (``osem_ac_cdr``, ``osem_ac``, ``osem_cdr``, ``osem_none``: the four
reconstructions the modality writes, without their post-filter).
"""

from __future__ import annotations

import dataclasses

from imagingsim.modalities.base import AcquisitionContext
from imagingsim.modalities.spect.acquire import SPECT_NOISE_STREAM
from imagingsim.modalities.spect.system import peak_projectors, subset_projectors, system_model
from imagingsim.physics.noise import poisson_counts
from imagingsim.recon import osem
from imagingsim.recon.problem import ProblemSource, ReconProblem, check_frame


@dataclasses.dataclass(frozen=True, eq=False)
class SPECTNative:
    """What the SPECT baselines use beyond the public problem: the scan's settings, geometry,
    photopeaks, the attenuation-correction maps of the frame and the realisation's counts per
    unit projection (never the acquisition, which holds the truth)."""

    params: object
    photopeaks: tuple
    geometry: object
    grid: object
    mu_recon_per_mm: tuple
    weights: tuple[float, ...]


def spect_problem(ctx: AcquisitionContext, acquisition, *, frame: int = 0) -> ProblemSource:
    """The benchmark problem of SPECT acquisition ``frame`` (see the module docstring)."""
    n_frames = len(acquisition.frame_start_s)
    check_frame("spect", frame, n_frames, "acquisitions")
    backend = ctx.backend
    xp = backend.xp
    grid, peaks = acquisition.grid, acquisition.photopeaks
    nz, slice_mm = grid.shape[2], grid.voxel_size_mm[2]
    mu = [acquisition.mu_recon_per_mm[p.label][..., frame] for p in peaks]
    projectors = peak_projectors(acquisition.geometry, nz, slice_mm, peaks, mu, backend)
    weights = tuple(acquisition.counts_per_unit_projection[frame])
    mean = (acquisition.expected_primary + acquisition.expected_scatter)[..., frame]
    scatter = acquisition.expected_scatter[..., frame]
    schedule_index = acquisition.schedule_indices[frame]
    truth = backend.to_host(xp.astype(acquisition.expected_image_bq_per_ml[..., frame], xp.float64))
    labels = backend.to_host(ctx.phantom.labels)

    def draw(seed: int, count_scale: float = 1.0) -> ReconProblem:
        scale = float(count_scale)
        counts = poisson_counts(mean * scale, backend.rng(seed, SPECT_NOISE_STREAM, schedule_index, 0), validate=False)
        scaled = tuple(w * scale for w in weights)
        return ReconProblem(
            modality="spect", data=xp.astype(counts, xp.float32), operator=system_model(projectors, scaled),
            additive=xp.astype(scatter * scale, xp.float32), multiplicative=1.0, image_shape=tuple(grid.shape),
            voxel_size_mm=tuple(grid.voxel_size_mm), affine=grid.affine, backend=backend, units="Bq/mL",
            native=SPECTNative(acquisition.params, peaks, acquisition.geometry, grid, tuple(mu), scaled),
        )

    return ProblemSource(modality="spect", truth=truth, truth_grid=ctx.phantom.grid, recon_grid=grid, labels=labels,
                         units="Bq/mL", draw=draw)


def _osem(problem: ReconProblem, callback, *, attenuation: bool, collimator: bool):
    native: SPECTNative = problem.native
    backend = problem.backend
    xp = backend.xp
    peaks, params, grid = native.photopeaks, native.params, native.grid
    subsets = subset_projectors(native.geometry, grid.shape[2], grid.voxel_size_mm[2], peaks, list(native.mu_recon_per_mm),
                                params, backend, attenuation=attenuation)
    models, data, backgrounds = [], [], []
    for views, projectors in subsets:
        terms = [p.with_response(peak.response if collimator else None) for p, peak in zip(projectors, peaks)]
        index = backend.asarray(views, dtype=xp.int64)
        models.append(system_model(terms, native.weights))
        data.append(xp.take(problem.data, index, axis=0))
        backgrounds.append(xp.take(problem.additive, index, axis=0))
    report = None if callback is None else (lambda iteration, image: callback(image, iteration))
    return osem(data, models, backgrounds, problem.iterations or params.iterations, callback=report)


def osem_ac_cdr_baseline(problem: ReconProblem, *, callback=None):
    """SPECT OSEM with attenuation and collimator-detector response in the model."""
    return _osem(problem, callback, attenuation=True, collimator=True)


def osem_ac_baseline(problem: ReconProblem, *, callback=None):
    """SPECT OSEM with attenuation correction only."""
    return _osem(problem, callback, attenuation=True, collimator=False)


def osem_cdr_baseline(problem: ReconProblem, *, callback=None):
    """SPECT OSEM with the collimator response only (no attenuation correction)."""
    return _osem(problem, callback, attenuation=False, collimator=True)


def osem_none_baseline(problem: ReconProblem, *, callback=None):
    """SPECT OSEM without attenuation or collimator modelling."""
    return _osem(problem, callback, attenuation=False, collimator=False)
