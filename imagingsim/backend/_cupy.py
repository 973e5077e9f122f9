"""The CuPy backend: array_api_compat.cupy on the current GPU, cupyx.scipy.ndimage."""

from __future__ import annotations

import functools

import array_api_compat.cupy as xcp
import cupy
import numpy as np
from cupyx.scipy import ndimage as cndi
from cupyx.scipy import sparse as csparse
from scipy import sparse

from imagingsim.backend._base import Backend, Generator, Ndimage, SparseMatrix


def _sparse_from_host(matrix) -> SparseMatrix:
    csr = sparse.csr_matrix(matrix)
    return SparseMatrix(csparse.csr_matrix(csr), csparse.csr_matrix(csr.T.tocsr()), csr.shape, lambda m, x: m @ x)


def _sparse_from_csr(data, indices, indptr, shape) -> SparseMatrix:
    csr = csparse.csr_matrix((data, indices, indptr), shape=shape)
    csr.eliminate_zeros()
    return SparseMatrix(csr, csr.T.tocsr(), shape, lambda m, x: m @ x)


class CupyGenerator(Generator):
    """Draws on the GPU (cuRAND XORWOW), seeded from the same key words as the host one.

    Same key on the cupy backend gives the same numbers run to run; they differ from the
    numpy backend's numbers, which is allowed (bit-identity is promised per backend).
    """

    def __init__(self, backend: Backend, seed_words: tuple[int, ...]):
        self._backend = backend
        state = np.random.SeedSequence(list(seed_words)).generate_state(2, dtype=np.uint32)
        self._gpu = cupy.random.Generator(cupy.random.XORWOW(int(state[0]) << 32 | int(state[1])))

    def standard_normal(self, shape, dtype=None):
        out = self._gpu.standard_normal(shape, dtype=cupy.float64)
        return out if dtype is None else out.astype(dtype)

    def uniform(self, shape, low=0.0, high=1.0, dtype=None):
        out = low + (high - low) * self._gpu.random(shape, dtype=cupy.float64)
        return out if dtype is None else out.astype(dtype)

    def poisson(self, lam):
        return self._gpu.poisson(lam).astype(cupy.float64)


def _synchronize_stream() -> None:
    # The stream current in the calling thread (a benchmark plug-in runs in its own thread).
    cupy.cuda.get_current_stream().synchronize()


@functools.cache
def make_cupy_backend() -> Backend:
    """Build the (cached) CuPy backend on the current device."""
    return Backend(
        name="cupy",
        xp=xcp,
        device=cupy.cuda.Device(),
        ndimage=Ndimage(
            gaussian_filter=cndi.gaussian_filter,
            distance_transform_edt=cndi.distance_transform_edt,
            map_coordinates=cndi.map_coordinates,
        ),
        _to_host=cupy.asnumpy,
        _from_host=cupy.asarray,
        _generator_cls=CupyGenerator,
        _sparse_from_host=_sparse_from_host,
        _sparse_from_csr=_sparse_from_csr,
        _release_device=cupy.get_default_memory_pool().free_all_blocks,
        _synchronize=_synchronize_stream,
    )
