"""The body seen from the camera: the camera frame, and the surface model of the light leaving the skin.

Volumes are turned into the camera frame ``[d, u, v]`` (:func:`to_camera_frame`): ``d``
along the view from the camera, ``u, v`` the image axes. :class:`SurfaceModel` is the
linear map from a fluorescence source volume in that frame to the photons leaving each
pixel of the body surface: voxel layers below the surface, the excitation fluence and the
escape fraction of each layer voxel (column-averaged optics, diffusion theory of
:mod:`~imagingsim.modalities.nirf.optics`) and one PSF per layer
(:class:`~imagingsim.modalities.nirf.layered_blur.LayeredBlur`). The model and its limits
are described in :mod:`imagingsim.modalities.nirf.acquire` ("Geometry" to "NIR-I vs
NIR-II").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from imagingsim.backend import Backend
from imagingsim.grid import ImageGrid
from imagingsim.modalities.nirf.layered_blur import LayeredBlur
from imagingsim.modalities.nirf.optics import diffusion, layer_kernels, plane_fluence, total_escape
from imagingsim.modalities.nirf.tables import optical_maps, optics_table

#: Camera side of each view: (grid axis along the view, True when the camera is on its + side).
VIEWS: dict[str, tuple[int, bool]] = {"dorsal": (1, False), "ventral": (1, True), "left": (0, False), "right": (0, True)}
AXIS_NAMES = ("x", "y", "z")
#: Deepest layer modelled, mm: a source 60 mm deep sends ~3e-7 of its light out of muscle
#: (exp(-0.25/mm x 60 mm)), so deeper voxels (only in human-sized phantoms) are dropped.
MAX_DEPTH_MM = 60.0
#: PSF kernels are cut at this distance from the source's foot, mm (the escaping light of a
#: source 20 mm deep beyond it: ~exp(-0.25/mm x 43 mm) = 2e-5).
MAX_PSF_RADIUS_MM = 60.0
#: Fallback optics where a column has no tissue (no source there; keeps the formulas finite).
_FALLBACK_MU_A, _FALLBACK_MU_S_PRIME = 0.01, 1.0


def image_axes(view: str) -> tuple[int, int]:
    """Grid axes of the image's ``[u, v]`` indices for ``view``."""
    axis, _ = VIEWS[view]
    return tuple(a for a in range(3) if a != axis)  # type: ignore[return-value]


def to_camera_frame(volume, view: str, xp):
    """``volume[x, y, z(, t)]`` as ``[d, u, v(, t)]``: ``d`` along the view from the camera, ``u, v`` as in the image."""
    axis, far_side = VIEWS[view]
    if far_side:
        volume = xp.flip(volume, axis=axis)
    order = (axis,) + image_axes(view) + tuple(range(3, volume.ndim))
    return xp.permute_dims(volume, order)


def frame_voxel_mm(grid: ImageGrid, view: str) -> tuple[float, float, float]:
    """Voxel size of ``grid`` along the camera frame's ``d, u, v`` axes, mm."""
    view_axis, _ = VIEWS[view]
    u_axis, v_axis = image_axes(view)
    return grid.voxel_size_mm[view_axis], grid.voxel_size_mm[u_axis], grid.voxel_size_mm[v_axis]


@dataclass(frozen=True, eq=False)
class SurfaceModel:
    """The linear map from a source volume (camera frame) to the light leaving each pixel.

    Build it with :meth:`build`; volumes passed to it are in the camera frame ``[d, u, v]``
    (:func:`to_camera_frame`).

    Attributes
    ----------
    index : device array ``(L, nu, nv)``, int64
        Camera-frame ``d`` index of layer ``n`` of each column.
    valid : device array ``(L, nu, nv)``, float64
        1 where that voxel is tissue, else 0.
    excitation : device array ``(L, nu, nv)``
        Fluence rate per unit transmitted irradiance at each layer voxel.
    escape : device array ``(L, nu, nv)``
        Column escape fraction ``E`` (``T`` in NIR-I) of each layer voxel.
    blur : LayeredBlur
        Layer PSFs (fractions of the escaping light per pixel).
    voxel_volume_mm3 : float
    thickness : device array ``(nu, nv)``, int64
        Tissue thickness of each column, voxels (from the first to the last tissue voxel).
    surface : device array ``(nu, nv)``, int64
        Camera-frame index of each column's first tissue voxel (``nd`` where there is none).
    silhouette : device array ``(nu, nv)``, float64
        1 where the column holds tissue: light is only detected there.
    layer_mu_a, layer_mu_s_prime : device arrays ``(L,)``
        Emission optics of each layer's PSF, 1/mm.
    backend : Backend
        Where the arrays live.
    """

    index: Any
    valid: Any
    excitation: Any
    escape: Any
    blur: LayeredBlur
    voxel_volume_mm3: float
    thickness: Any
    surface: Any
    silhouette: Any
    layer_mu_a: Any
    layer_mu_s_prime: Any
    backend: Backend

    @classmethod
    def build(cls, body, excitation_optics, emission_optics, voxel_mm: tuple[float, float, float], window: str,
              mode: str, backend: Backend) -> SurfaceModel:
        """Precompute layers, excitation, column escape fractions and the layer PSFs.

        Parameters
        ----------
        body : device array ``(nd, nu, nv)``, bool
            Tissue (not air), camera frame.
        excitation_optics, emission_optics : (mu_a, mu_s') device arrays ``(nd, nu, nv)``
            Optics at the excitation and emission wavelengths, 1/mm, camera frame.
        voxel_mm : (dd, du, dv)
            Voxel size along the view and the two image axes, mm.
        window : {"NIR-I", "NIR-II"}
        mode : {"epi", "trans"}
        backend : Backend
        """
        xp, dev = backend.xp, backend.device
        n_ref = optics_table().refractive_index
        nd = body.shape[0]
        dd, du, dv = voxel_mm
        as_int = xp.astype(body, xp.int8)
        first = xp.argmax(as_int, axis=0)
        last = (nd - 1) - xp.argmax(xp.flip(as_int, axis=0), axis=0)
        has = xp.any(body, axis=0)
        zero = xp.zeros_like(first)
        thickness = xp.where(has, last - first + 1, zero)
        surface = xp.where(has, first, zero + nd)
        n_layers = int(backend.scalar(xp.max(thickness)))  # one synchronisation: the layer count
        if n_layers == 0:
            raise ValueError("NIRF: the phantom has no tissue voxel (all air)")
        n_layers = min(n_layers, math.ceil(MAX_DEPTH_MM / dd))
        n = xp.reshape(xp.arange(n_layers, dtype=first.dtype, device=dev), (n_layers, 1, 1))
        index = xp.clip(first[None, :, :] + n, 0, nd - 1)
        inside = n < thickness[None, :, :]
        valid = xp.astype(xp.logical_and(inside, xp.take_along_axis(body, index, axis=0)), xp.float64)
        depth = (xp.astype(n, xp.float64) + 0.5) * dd

        def column_mean(volume, fallback: float, *, far: bool = False):
            g = xp.take_along_axis(volume, index, axis=0) * valid
            total, count = xp.cumulative_sum(g, axis=0), xp.cumulative_sum(valid, axis=0)
            if far:  # inclusive suffix sums: from the voxel to the far surface
                total = xp.sum(g, axis=0) - total + g
                count = xp.sum(valid, axis=0) - count + valid
            return xp.where(valid > 0, total / xp.clip(count, 1.0, None), fallback)

        far = mode == "trans"
        ex_a = column_mean(excitation_optics[0], _FALLBACK_MU_A, far=far)
        ex_s = column_mean(excitation_optics[1], _FALLBACK_MU_S_PRIME, far=far)
        ex_depth = (xp.astype(thickness[None, :, :] - n, xp.float64) - 0.5) * dd if far else depth
        excitation = plane_fluence(ex_depth, diffusion(ex_a, ex_s, n_ref, xp), xp) * valid
        em_a = column_mean(emission_optics[0], _FALLBACK_MU_A)
        em_s = column_mean(emission_optics[1], _FALLBACK_MU_S_PRIME)
        params = optics_table().psf[window]
        escape = total_escape(depth, em_a, em_s, diffusion(em_a, em_s, n_ref, xp), params, xp) * valid

        count = xp.sum(valid, axis=(1, 2))
        layer_a = xp.where(count > 0, xp.sum(em_a * valid, axis=(1, 2)) / xp.clip(count, 1.0, None), _FALLBACK_MU_A)
        layer_s = xp.where(count > 0, xp.sum(em_s * valid, axis=(1, 2)) / xp.clip(count, 1.0, None), _FALLBACK_MU_S_PRIME)
        nu, nv = body.shape[1], body.shape[2]
        half = (min(nu - 1, math.ceil(MAX_PSF_RADIUS_MM / du)), min(nv - 1, math.ceil(MAX_PSF_RADIUS_MM / dv)))
        kernels = layer_kernels(depth[:, 0, 0], layer_a, layer_s, (du, dv), half, window, backend)
        blur = LayeredBlur(kernels, (n_layers, nu, nv), backend)
        silhouette = xp.astype(has, xp.float64)
        return cls(index, valid, excitation, escape, blur, dd * du * dv, thickness, surface, silhouette, layer_a,
                   layer_s, backend)

    @property
    def n_layers(self) -> int:
        """Number of depth layers ``L`` below the surface."""
        return int(self.index.shape[0])

    def layers(self, volume):
        """Camera-frame ``volume (nd, nu, nv)`` as layers below the surface ``(L, nu, nv)`` (0 off tissue)."""
        return self.backend.xp.take_along_axis(volume, self.index, axis=0) * self.valid

    def exitance(self, emission_per_mm3):
        """Photons/s leaving the surface per pixel for emitted photons/(s mm^3) (camera frame)."""
        return self.blur.apply(self.layers(emission_per_mm3) * (self.escape * self.voxel_volume_mm3)) * self.silhouette

    def fluorescence(self, coefficient_per_mm):
        """Photons/s leaving each pixel per unit transmitted irradiance (photons/(s mm^2)).

        ``coefficient_per_mm`` (camera frame, 1/mm): photons emitted into the band per mm^3
        and second per unit excitation fluence rate (``ln(10) eps c QY f_band`` for a dye).
        """
        weights = self.excitation * self.escape * self.voxel_volume_mm3
        return self.blur.apply(self.layers(coefficient_per_mm) * weights) * self.silhouette



def surface_model(phantom, view: str, mode: str, excitation_nm: float, emission_nm: float, window: str,
                  backend: Backend) -> SurfaceModel:
    """The :class:`SurfaceModel` of ``phantom`` seen from ``view``.

    Parameters
    ----------
    phantom : imagingsim.phantom.Phantom
        Labels (tissue = not air) and the 810 nm optical maps on the image grid.
    view : {"dorsal", "ventral", "left", "right"}
        Body surface facing the camera.
    mode : {"epi", "trans"}
        Illumination from the camera side or from the opposite surface.
    excitation_nm, emission_nm : float
        Wavelengths of the excitation line and of the emission band centre, nm.
    window : {"NIR-I", "NIR-II"}
        Emission window (selects the PSF parameters).
    backend : Backend
    """
    xp = backend.xp

    def frame(volume):
        return to_camera_frame(volume, view, xp)

    body = frame(phantom.labels != 0)
    ex = tuple(frame(m) for m in optical_maps(phantom, excitation_nm, backend))
    em = tuple(frame(m) for m in optical_maps(phantom, emission_nm, backend))
    return SurfaceModel.build(body, ex, em, frame_voxel_mm(phantom.grid, view), window, mode, backend)


def image_plane(grid: ImageGrid, view: str, model: SurfaceModel) -> tuple[int, ImageGrid]:
    """Where the planar image sits: one voxel thick along the view axis, at the body surface facing the camera.

    Parameters
    ----------
    grid : ImageGrid
        The phantom grid.
    view : str
        Key of :data:`VIEWS`.
    model : SurfaceModel
        The surface model of the phantom seen from ``view``.

    Returns
    -------
    surface_index : int
        Index along the view axis (phantom grid) of the outermost tissue voxel facing the camera.
    image_grid : ImageGrid
        ``grid`` with one voxel along the view axis at ``surface_index`` (places the image in the world).
    """
    backend = model.backend
    view_axis, far_side = VIEWS[view]
    nd = grid.shape[view_axis]
    first = int(backend.scalar(backend.xp.min(model.surface)))  # columns without tissue hold nd
    surface_index = nd - 1 - first if far_side else first
    shape = list(grid.shape)
    origin = list(grid.origin_mm)
    shape[view_axis] = 1
    origin[view_axis] = grid.origin_mm[view_axis] + surface_index * grid.voxel_size_mm[view_axis]
    return surface_index, ImageGrid(tuple(shape), grid.voxel_size_mm, tuple(origin))


def mean_thickness_mm(grid: ImageGrid, view: str, model: SurfaceModel) -> float:
    """Mean tissue thickness along the view over the body's silhouette, mm (the slab of transillumination)."""
    backend, xp = model.backend, model.backend.xp
    view_axis, _ = VIEWS[view]
    columns = xp.astype(model.surface < grid.shape[view_axis], xp.float64)
    mean = xp.sum(xp.astype(model.thickness, xp.float64) * columns) / xp.sum(columns)
    return backend.scalar(mean) * grid.voxel_size_mm[view_axis]


__all__ = [
    "AXIS_NAMES",
    "MAX_DEPTH_MM",
    "MAX_PSF_RADIUS_MM",
    "VIEWS",
    "SurfaceModel",
    "frame_voxel_mm",
    "image_axes",
    "image_plane",
    "mean_thickness_mm",
    "surface_model",
    "to_camera_frame",
]
