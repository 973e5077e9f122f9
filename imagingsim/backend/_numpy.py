"""The NumPy backend: array_api_compat.numpy on the CPU, scipy.ndimage for filters."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import array_api_compat.numpy as xnp
import numpy as np
from scipy import fft as scipy_fft
from scipy import ndimage as ndi
from scipy import sparse

from imagingsim.backend._base import Backend, Ndimage, SparseMatrix

#: Matrices with fewer stored entries are multiplied in one thread (threads cost ~50 us).
_PARALLEL_MIN_NNZ = 1_000_000


def cpu_threads() -> int:
    """Threads for sparse products: ``IMAGINGSIM_NUM_THREADS`` or the CPUs this process may use."""
    configured = os.environ.get("IMAGINGSIM_NUM_THREADS", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"IMAGINGSIM_NUM_THREADS: must be a whole number >= 1, got {configured!r}")
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.cache
def _pool(n_threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(n_threads, thread_name_prefix="imagingsim-spmm")


class RowBlocks:
    """A CSR matrix split into row blocks of equal work, multiplied in parallel threads.

    scipy's sparse products release the GIL, so blocks run concurrently; each output row is
    computed by exactly one block with the same arithmetic as the unsplit product, so the
    result is bit-identical for any number of threads.
    """

    def __init__(self, csr, n_blocks: int):
        self.shape, self.nnz, self.dtype = csr.shape, int(csr.nnz), csr.dtype
        n_blocks = 1 if self.nnz < _PARALLEL_MIN_NNZ else max(1, min(n_blocks, csr.shape[0]))
        targets = np.linspace(0, self.nnz, n_blocks + 1)[1:-1]
        cuts = [0, *np.searchsorted(csr.indptr, targets).tolist(), csr.shape[0]]
        self.bounds = list(itertools.pairwise(cuts))
        self.blocks = [_row_view(csr, lo, hi) for lo, hi in self.bounds] if n_blocks > 1 else [csr]

    def __matmul__(self, x):
        if len(self.blocks) == 1:
            return self.blocks[0] @ x
        out = np.empty((self.shape[0], *x.shape[1:]), dtype=np.result_type(self.dtype, x.dtype))

        def work(k: int) -> None:
            lo, hi = self.bounds[k]
            out[lo:hi] = self.blocks[k] @ x

        list(_pool(len(self.blocks)).map(work, range(len(self.blocks))))
        return out


class ThreadedFFT:
    """The array-API FFT functions from ``scipy.fft``, transforms run on ``workers`` threads.

    Same signatures and dtypes as ``numpy.fft`` (float32 stays single precision); batched
    transforms are split over threads, each 1-D transform computed whole by one thread, so
    results do not depend on the thread count.
    """

    _TRANSFORMS = frozenset({"fft", "ifft", "fftn", "ifftn", "rfft", "irfft", "rfftn", "irfftn", "hfft", "ihfft"})

    def __init__(self, workers: int):
        self.workers = workers

    def __getattr__(self, name: str):
        func = getattr(scipy_fft, name)
        return functools.partial(func, workers=self.workers) if name in self._TRANSFORMS else func


def _row_view(csr, lo: int, hi: int):
    """Rows ``lo:hi`` of a CSR matrix sharing its data and index buffers (no copy).

    scipy's constructor copies slices even with ``copy=False``; assigning the buffers to an
    empty matrix of the right shape does not.
    """
    start, end = int(csr.indptr[lo]), int(csr.indptr[hi])
    block = sparse.csr_array((hi - lo, csr.shape[1]), dtype=csr.dtype)
    block.data, block.indices = csr.data[start:end], csr.indices[start:end]
    block.indptr = csr.indptr[lo : hi + 1] - csr.indptr[lo]
    block.has_sorted_indices = csr.has_sorted_indices
    return block


class LazyTranspose:
    """``A.T`` as row blocks, built on the first product (a forward-only user never pays it)."""

    def __init__(self, csr):
        self._csr, self._blocks = csr, None
        self._lock = threading.Lock()  # two threads' first products build it once
        self.shape, self.nnz, self.dtype = csr.shape[::-1], int(csr.nnz), csr.dtype

    def __matmul__(self, y):
        with self._lock:
            if self._blocks is None:
                self._blocks = RowBlocks(self._csr.T.tocsr(), cpu_threads())
                self._csr = None
        return self._blocks @ y


def _blocked(csr) -> SparseMatrix:
    return SparseMatrix(RowBlocks(csr, cpu_threads()), LazyTranspose(csr), csr.shape, lambda m, x: m @ x)


class SerialBLAS:
    """A context in which BLAS calls use one thread each (:meth:`Backend.serial_blas`).

    The limit is process-wide (threadpoolctl): it is set when the first context opens and
    restored when the last one closes, so contexts may overlap across threads (a subject's
    workers, subjects of a cohort run as threads). Measured on 2 cores: the CT energy sums
    took 1.86 s with BLAS threads against 0.53 s in two pieces of one BLAS thread each.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._open = 0
        self._limits = None

    @contextlib.contextmanager
    def __call__(self):
        from threadpoolctl import threadpool_limits

        with self._lock:
            if self._open == 0:
                self._limits = threadpool_limits(limits=1, user_api="blas")
            self._open += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                if self._open == 0:
                    self._limits.restore_original_limits()
                    self._limits = None


def _sparse_from_host(matrix) -> SparseMatrix:
    return _blocked(sparse.csr_array(matrix))


def _sparse_from_csr(data, indices, indptr, shape) -> SparseMatrix:
    csr = sparse.csr_array((np.asarray(data), np.asarray(indices), np.asarray(indptr)), shape=shape)
    csr.eliminate_zeros()
    return _blocked(csr)


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
        _adopt_host=lambda a: a,
        _sparse_from_host=_sparse_from_host,
        _sparse_from_csr=_sparse_from_csr,
        _fft=ThreadedFFT(cpu_threads()),
        workers=cpu_threads(),
        _serial_blas=SerialBLAS(),
    )
