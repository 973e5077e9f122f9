"""The NumPy backend: array_api_compat.numpy on the CPU, scipy.ndimage for filters."""

from __future__ import annotations

import functools

import array_api_compat.numpy as xnp
import numpy as np
from scipy import ndimage as ndi
from scipy import sparse

from imagingsim.backend._base import Backend, Ndimage, SparseMatrix


def _sparse_from_host(matrix) -> SparseMatrix:
    csr = sparse.csr_array(matrix)
    return SparseMatrix(csr, csr.T.tocsr(), csr.shape, lambda m, x: m @ x)


def _sparse_from_csr(data, indices, indptr, shape) -> SparseMatrix:
    csr = sparse.csr_array((np.asarray(data), np.asarray(indices), np.asarray(indptr)), shape=shape)
    csr.eliminate_zeros()
    return SparseMatrix(csr, csr.T.tocsr(), shape, lambda m, x: m @ x)


@functools.cache
def make_numpy_backend() -> Backend:
    """Build the (cached) NumPy backend."""
    return Backend(
        name="numpy",
        xp=xnp,
        device="cpu",
        ndimage=Ndimage(
            gaussian_filter=ndi.gaussian_filter,
            distance_transform_edt=ndi.distance_transform_edt,
            map_coordinates=ndi.map_coordinates,
        ),
        _to_host=lambda a: np.asarray(a),
        _from_host=lambda a: np.array(a, copy=True),
        _sparse_from_host=_sparse_from_host,
        _sparse_from_csr=_sparse_from_csr,
    )
