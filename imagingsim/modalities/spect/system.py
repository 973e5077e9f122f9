"""SPECT system models on two grids: the phantom grid (simulation) and a binned grid (reconstruction).

``E[counts_k] = f_k * sum_p c_p * P_p(x)`` for an image ``x`` (Bq/mL) of acquisition ``k``:
``P_p`` the attenuated, collimator-blurred projection at photopeak ``p``
(:class:`~imagingsim.modalities.spect.projector.SPECTProjector`, mm x Bq/mL), ``c_p`` the counts per
unit projection of the peak (:func:`counts_per_unit_projection`) and ``f_k`` the decay
factor of the acquisition. The phantom grid is zero-padded at its far end to a multiple of
the binning factor, so that ``f x f`` detector pixels and ``f^3`` voxels of it make one
pixel and one voxel of the reconstruction grid, and both grids rotate about the same axis.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagingsim.backend import Backend
from imagingsim.grid import ImageGrid
from imagingsim.modalities.spect.physics import Photopeak, SPECTParams
from imagingsim.modalities.spect.projector import SPECTGeometry, SPECTProjector
from imagingsim.operators import LinearOperator, Sum
from imagingsim.recon import osem

#: mm^3 per mL.
MM3_PER_ML = 1000.0


def counts_per_unit_projection(peak: Photopeak, params: SPECTParams, bin_mm: float, slice_mm: float) -> float:
    """``c_p``: counts per detector pixel per (Bq/mL x mm) of projection, per second of mean activity.

    ``efficiency x photons per decay x window share x view time x pixel area / 1000``:
    summing ``c_p P(x)`` over the pixels of one unattenuated view gives the photons of the
    peak that the collimator passes during the view.
    """
    return (params.collimator.efficiency * peak.yield_per_decay * peak.window_fraction * params.view_duration_s
            * bin_mm * slice_mm / MM3_PER_ML)


def binned_grid(grid: ImageGrid, factor: int) -> tuple[ImageGrid, tuple[int, int, int]]:
    """The reconstruction grid ``factor`` times coarser, and the padded phantom shape it covers.

    The phantom grid is padded at its far end to a multiple of ``factor`` voxels; a coarse
    voxel is the block of ``factor^3`` fine voxels from the grid's first voxel on, so its
    centre lies ``(factor - 1) / 2`` fine voxels beyond the block's first centre.
    """
    padded = tuple(-(-n // factor) * factor for n in grid.shape)
    coarse = ImageGrid(
        tuple(n // factor for n in padded),
        tuple(v * factor for v in grid.voxel_size_mm),
        tuple(o + 0.5 * (factor - 1) * v for o, v in zip(grid.origin_mm, grid.voxel_size_mm)),
    )
    return coarse, padded


def pad_to(volume, shape, backend: Backend):
    """Zero-pad the first three axes of ``volume`` at their far end to ``shape``."""
    xp = backend.xp
    for axis, n in enumerate(shape):
        missing = n - volume.shape[axis]
        if missing > 0:
            extra = list(volume.shape)
            extra[axis] = missing
            volume = xp.concat((volume, xp.zeros(tuple(extra), dtype=volume.dtype, device=backend.device)), axis=axis)
    return volume


def bin_pixels(projection, factor: int, backend: Backend):
    """Sum ``factor x factor`` detector pixels: ``(v, bins, rows) -> (v, bins / f, rows / f)``."""
    xp = backend.xp
    if factor == 1:
        return projection
    v, b, r = projection.shape
    return xp.sum(xp.reshape(projection, (v, b // factor, factor, r // factor, factor)), axis=(2, 4))


def block_mean(volume, factor: int, backend: Backend):
    """Mean over ``factor^3`` blocks of a padded volume ``(nx, ny, nz, ...)`` (exact binning)."""
    xp = backend.xp
    if factor == 1:
        return volume
    (nx, ny, nz), rest = volume.shape[:3], tuple(volume.shape[3:])
    blocks = xp.reshape(volume, (nx // factor, factor, ny // factor, factor, nz // factor, factor) + rest)
    return xp.mean(blocks, axis=(1, 3, 5))


@dataclass(frozen=True)
class SPECTGrids:
    """The simulation and reconstruction geometries of one study.

    Attributes
    ----------
    fine, coarse : SPECTGeometry
        On the padded phantom grid and on the reconstruction grid; same views and orbit.
    padded_shape : (int, int, int)
        Phantom grid padded to a multiple of ``factor``.
    grid : ImageGrid
        Reconstruction grid.
    factor : int
        Voxel binning.
    """

    fine: SPECTGeometry
    coarse: SPECTGeometry
    padded_shape: tuple[int, int, int]
    grid: ImageGrid
    factor: int

    @classmethod
    def build(cls, phantom_grid: ImageGrid, params: SPECTParams) -> SPECTGrids:
        """Both geometries for ``params`` (views, orbit, binning) on ``phantom_grid``.

        Raises
        ------
        ValueError
            One line: non-square pixels, or an orbit radius that does not clear the image box.
        """
        dx, dy, _ = phantom_grid.voxel_size_mm
        if dx != dy:
            raise ValueError(f"phantom.voxel_size_mm: SPECT needs square transaxial voxels, got {dx:g} x {dy:g} mm")
        f = params.voxel_binning
        grid, padded = binned_grid(phantom_grid, f)
        try:
            coarse = SPECTGeometry.covering(grid.shape[:2], f * dx, params.n_views, orbit_radius_mm=params.orbit_radius_mm)
        except ValueError as error:
            raise ValueError(f"modalities.spect.orbit_radius_mm: {error}") from None
        fine = SPECTGeometry(padded[:2], dx, coarse.angles_deg, coarse.n_bins * f, coarse.orbit_radius_mm)
        return cls(fine=fine, coarse=coarse, padded_shape=padded, grid=grid, factor=f)


def peak_projectors(geometry: SPECTGeometry, n_slices: int, slice_mm: float, peaks, mu_maps, backend: Backend, *,
                    attenuation: bool = True, collimator: bool = True,
                    keep_attenuation: bool = True) -> list[SPECTProjector]:
    """One projector per photopeak (its mu map and collimator response, when modelled).

    ``keep_attenuation=False`` for projectors applied once (see :class:`SPECTProjector`).
    """
    return [
        SPECTProjector(geometry, n_slices, slice_mm, backend, mu_per_mm=mu if attenuation else None,
                       collimator=peak.response if collimator else None, keep_attenuation=keep_attenuation)
        for peak, mu in zip(peaks, mu_maps, strict=True)
    ]


def system_model(projectors, weights) -> LinearOperator:
    """``sum_p w_p P_p``: counts per image in Bq/mL, one term per photopeak."""
    return Sum(projectors, weights)


def subset_projectors(geometry: SPECTGeometry, n_slices: int, slice_mm: float, peaks, mu_maps, params: SPECTParams,
                      backend: Backend, *, attenuation: bool) -> list[tuple[list[int], list[SPECTProjector]]]:
    """Per OSEM subset: its views and one projector per photopeak (ideal collimator).

    Collimator modelling is added per variant with :meth:`SPECTProjector.with_response`,
    which shares the resampling matrices and attenuation tables built here.
    """
    return [
        (views, peak_projectors(geometry.views(views), n_slices, slice_mm, peaks, mu_maps, backend,
                                attenuation=attenuation, collimator=False))
        for views in geometry.subset_views(params.subsets)
    ]


def reconstruct_spect(counts, background, weights, subsets, peaks, params: SPECTParams, *, collimator: bool):
    """OSEM of one acquisition with the model ``sum_p w_p P_p`` and the scatter estimate as background.

    Parameters
    ----------
    counts, background : device arrays ``(n_views, n_bins, nz)``
        Measured counts and the scatter estimate.
    weights : sequence of float
        Counts per unit projection of each photopeak for this acquisition.
    subsets : list of (views, projectors)
        From :func:`subset_projectors` (with or without attenuation).
    peaks : sequence of Photopeak
        Their collimator responses, used when ``collimator``.
    params : SPECTParams
        Iterations.
    collimator : bool, keyword-only
        Model the collimator-detector response.

    Returns
    -------
    device array ``(nx, ny, nz)``, Bq/mL
    """
    backend = subsets[0][1][0].backend
    xp = backend.xp
    models, data, backgrounds = [], [], []
    for views, projectors in subsets:
        terms = [p.with_response(peak.response if collimator else None) for p, peak in zip(projectors, peaks)]
        index = backend.asarray(views, dtype=xp.int64)
        models.append(system_model(terms, weights))
        data.append(xp.take(counts, index, axis=0))
        backgrounds.append(xp.take(background, index, axis=0))
    return osem(data, models, backgrounds, params.iterations)


__all__ = [
    "MM3_PER_ML",
    "SPECTGrids",
    "bin_pixels",
    "binned_grid",
    "block_mean",
    "counts_per_unit_projection",
    "pad_to",
    "peak_projectors",
    "reconstruct_spect",
    "subset_projectors",
    "system_model",
]
