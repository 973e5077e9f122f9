"""The backend interface shared by the numpy, cupy and strict implementations."""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class BackendError(RuntimeError):
    """A backend was asked for that cannot be used here (one-line message)."""


@dataclass
class TransferStats:
    """Counts of explicit host transfers, so tests can assert that a kernel makes none.

    Attributes
    ----------
    downloads : int
        Device -> host copies through :meth:`Backend.to_host`.
    uploads : int
        Host -> device copies through :meth:`Backend.from_host`.
    round_trips : int
        Device -> host -> device detours taken by shims that have no device
        implementation on this backend (only the strict backend takes them).
    """

    downloads: int = 0
    uploads: int = 0
    round_trips: int = 0

    def reset(self) -> None:
        self.downloads = self.uploads = self.round_trips = 0


@dataclass(frozen=True)
class Ndimage:
    """The ndimage-like operations kernels may use, in voxel units.

    Every function takes and returns device arrays of its backend.
    """

    gaussian_filter: Callable[..., Any]
    distance_transform_edt: Callable[..., Any]
    map_coordinates: Callable[..., Any]


class SparseMatrix:
    """A sparse matrix on a backend's device with its transpose, for ``A @ x`` and ``A.T @ y``.

    Both orientations are stored in CSR so the adjoint is as fast as the forward product
    (row-parallel SpMV/SpMM on every backend). ``x`` may be a vector ``(n,)`` or a stack of
    columns ``(n, k)`` (one product for many slices).

    Parameters
    ----------
    forward, transpose : backend sparse matrices
        ``A`` and ``A.T``, each in CSR.
    shape : tuple of int
        ``A.shape``.
    matmul : callable
        ``matmul(M, x)`` -> ``M @ x`` on the device.
    """

    def __init__(self, forward, transpose, shape: tuple[int, int], matmul: Callable[[Any, Any], Any]):
        self._forward, self._transpose, self._matmul = forward, transpose, matmul
        self.shape = (int(shape[0]), int(shape[1]))
        self.nnz = int(forward.nnz)

    def apply(self, x):
        """``A @ x``."""
        return self._matmul(self._forward, x)

    def adjoint(self, y):
        """``A.T @ y`` (real matrices: the transpose is the adjoint)."""
        return self._matmul(self._transpose, y)


class Generator:
    """A seeded random generator that returns device arrays.

    Randomness in imagingsim flows only through these objects (ARCHITECTURE habit 5): a
    generator is made from the scenario seed and a stream key with :meth:`Backend.rng`.
    This host implementation (PCG64) serves the numpy and strict backends; its uploads are
    not counted in :class:`TransferStats`, because on the GPU the draws happen on the device
    (:class:`imagingsim.backend._cupy.CupyGenerator`). Poisson draws, which need the mean
    on the host, are counted as round trips off the CPU.
    """

    def __init__(self, backend: Backend, seed_words: tuple[int, ...]):
        self._backend = backend
        self._host = np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(seed_words))))

    def standard_normal(self, shape: tuple[int, ...], dtype=None):
        """Standard normal samples of ``shape`` on the device (float64 unless ``dtype``)."""
        return self._backend._from_fresh_host(self._host.standard_normal(shape), dtype)

    def uniform(self, shape: tuple[int, ...], low: float = 0.0, high: float = 1.0, dtype=None):
        """Uniform samples in [low, high) of ``shape`` on the device."""
        return self._backend._from_fresh_host(self._host.uniform(low, high, shape), dtype)

    def poisson(self, lam):
        """Poisson counts with mean ``lam`` (a device array, >= 0), as float64 on the device."""
        host_lam = self._backend.to_host(lam, count=False)
        if self._backend.device != "cpu":  # a real detour only off the host (strict)
            self._backend.transfers.round_trips += 1
        return self._backend._from_fresh_host(self._host.poisson(host_lam).astype(np.float64))


@dataclass(eq=False)
class Backend:
    """An array namespace with its device and the helpers kernels need.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"cupy"`` or ``"strict"``.
    xp : module
        An array-API namespace (``array_api_compat.numpy``, ``array_api_compat.cupy`` or
        ``array_api_strict``).
    device : object
        The device every array of this backend lives on.
    ndimage : Ndimage
        Gaussian filtering, Euclidean distance transform, interpolation.
    transfers : TransferStats
        Counters of explicit host transfers.
    """

    name: str
    xp: Any
    device: Any
    ndimage: Ndimage = field(repr=False)
    _to_host: Callable[[Any], np.ndarray] = field(repr=False)
    _from_host: Callable[[np.ndarray], Any] = field(repr=False)
    _generator_cls: type = field(default=Generator, repr=False)
    _sparse_from_host: Callable[[Any], SparseMatrix] | None = field(default=None, repr=False)
    _sparse_from_csr: Callable[..., SparseMatrix] | None = field(default=None, repr=False)
    _fft: Any = field(default=None, repr=False)
    _release_device: Callable[[], None] | None = field(default=None, repr=False)
    _synchronize: Callable[[], None] | None = field(default=None, repr=False)
    _serial_blas: Callable[[], contextlib.AbstractContextManager] | None = field(default=None, repr=False)
    _adopt_host: Callable[[np.ndarray], Any] | None = field(default=None, repr=False)
    transfers: TransferStats = field(default_factory=TransferStats, repr=False)
    workers: int = field(default=1, repr=False)

    def map_ordered(self, func: Callable[[Any], Any], items) -> list:
        """``[func(item) for item in items]``, up to :attr:`workers` items at a time.

        For independent pieces of work (the sessions of a study, the acquisitions of a
        scan series) whose kernels leave cores idle: NumPy releases the GIL in its array
        loops, so on the CPU two pieces overlap where one alone keeps about one core busy.
        ``workers`` is 1 on a GPU (one stream) and on the strict backend. The threads are
        kept between calls; a call made from one of them
        runs its items one after the other (no nested pools, no deadlock). Each item runs
        in a copy of the caller's context (progress listeners follow it). Results come back
        in item order; the first failure in item order is raised once the items already
        started have stopped, and those not started are cancelled.

        The pieces run inside :meth:`serial_blas`, in series or not, so that two pieces do not
        each start a BLAS thread per core and a piece's products round the same whatever the
        worker count.
        """
        items = list(items)
        with self.serial_blas():
            if self.workers <= 1 or len(items) <= 1 or getattr(_worker_state, "inside", False):
                return [func(item) for item in items]
            from concurrent.futures import wait

            pool = _work_pool(self.workers)
            futures = [pool.submit(_run_as_worker, contextvars.copy_context(), func, item) for item in items]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                wait(futures)
                raise

    def serial_blas(self) -> contextlib.AbstractContextManager:
        """A context in which BLAS calls use one thread each (numpy; elsewhere it does nothing).

        OpenBLAS starts a thread per core for a large enough product and keeps those
        threads spinning after it, so a BLAS call made beside other work takes the cores
        that work needs (the delivery solver beside its step-factor thread: 4.6 s with BLAS
        threads, 4.1 s without); and its threaded products may round differently from its
        one-threaded ones, which would make results depend on the core count. A subject is
        simulated inside this context, and :meth:`map_ordered` runs its pieces inside it;
        where a product is large, split it into pieces for :meth:`map_ordered`.
        """
        return self._serial_blas() if self._serial_blas is not None else contextlib.nullcontext()

    def prefetch(self, func: Callable[[Any], Any], items) -> Iterator[Any]:
        """Yield ``func(item)`` for each item in order, the next ones computed while the
        caller works on the current one (on :attr:`workers` other threads).

        For a loop whose set-up of the next pieces does not depend on the current one (the
        step factors of the next step sizes while the solver steps with this one). At most
        ``workers`` pieces are computed ahead, so ``workers + 1`` results are held at a time.
        """
        from collections import deque

        items = list(items)
        if self.workers <= 1 or len(items) <= 1:
            for item in items:
                yield func(item)
            return
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="imagingsim-prefetch")
        try:
            pending = deque(pool.submit(contextvars.copy_context().run, func, item) for item in items[:self.workers])
            for item in items[self.workers:]:
                ready = pending.popleft().result()
                pending.append(pool.submit(contextvars.copy_context().run, func, item))
                yield ready
                del ready  # the caller has moved on: do not hold this piece while the next ones compute
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def release_memory(self) -> None:
        """Give memory freed by finished work back to the system, between stages.

        glibc keeps freed heap memory (arrays below its adaptive mmap threshold, up to 32 MB)
        for reuse, so a stage's temporaries stay resident after it; trimming returns them
        and lowers the peak of the next stage. On the GPU, CuPy's pool keeps freed blocks
        the same way. Costs milliseconds; a no-op where there is no glibc.
        """
        _trim_host_heap()
        if self._release_device is not None:
            self._release_device()

    def synchronize(self) -> None:
        """Wait until the work queued on the device by the calling thread has finished.

        GPU kernels are launched asynchronously: a wall clock read right after a launch
        measures the launch, not the work. Call this before reading a clock that times device
        work (the benchmark's plug-in timing). A no-op on the host backends, whose calls
        return when the work is done.
        """
        if self._synchronize is not None:
            self._synchronize()

    @property
    def fft(self):
        """The array-API FFT extension of :attr:`xp` (multi-threaded on the numpy backend)."""
        return self._fft if self._fft is not None else self.xp.fft

    def asarray(self, obj, dtype=None):
        """``xp.asarray`` on this backend's device (Python scalars, lists or own arrays)."""
        return self.xp.asarray(obj, dtype=dtype, device=self.device)

    def zeros(self, shape, dtype=None):
        """Zeros on this backend's device (float64 unless ``dtype``)."""
        return self.xp.zeros(shape, dtype=dtype or self.xp.float64, device=self.device)

    def to_host(self, array, *, count: bool = True) -> np.ndarray:
        """Copy a device array to a host :class:`numpy.ndarray` (counted)."""
        if count:
            self.transfers.downloads += 1
        return self._to_host(array)

    def from_host(self, array, dtype=None, *, count: bool = True):
        """Copy host data (numpy array, scalar or sequence) to this device (counted)."""
        if count:
            self.transfers.uploads += 1
        host = np.asarray(array)
        if dtype is not None:
            host = host.astype(_host_dtype(self.xp, dtype), copy=False)
        return self._from_host(host)

    def _from_fresh_host(self, array: np.ndarray, dtype=None):
        """:meth:`from_host` (uncounted) for a new host array that nothing else holds (a
        generator's draw): the numpy backend takes it as it is instead of copying it (the
        default's MRI noise: two 16 MB copies fewer per session)."""
        if dtype is not None:
            array = array.astype(_host_dtype(self.xp, dtype), copy=False)
        return self._adopt_host(array) if self._adopt_host is not None else self._from_host(array)

    def scalar(self, array) -> float:
        """One device scalar as a Python float: an explicit, counted synchronisation."""
        return float(self.to_host(array))

    def sparse_matrix(self, host_matrix) -> SparseMatrix:
        """Move a host ``scipy.sparse`` matrix (any format, real) to this device.

        The product functions of the returned :class:`SparseMatrix` take and return device
        arrays of this backend.
        """
        self.transfers.uploads += 1
        return self._sparse_from_host(host_matrix)

    def sparse_csr(self, data, indices, indptr, shape: tuple[int, int]) -> SparseMatrix:
        """A sparse matrix from CSR arrays on this device, stored entries that are 0 dropped.

        Parameters
        ----------
        data : device array, float32 or float64
            Stored values, row after row.
        indices : device array, int32 or int64
            Column of each stored value (need not be sorted within a row).
        indptr : device array, int32 or int64 (as ``indices``), length ``shape[0] + 1``
            Row ``r`` holds ``data[indptr[r]:indptr[r+1]]``.
        shape : (int, int)
            Matrix shape.

        Notes
        -----
        Kernels build their matrices in the array namespace (padded to a regular number of
        entries per row, with zeros where a row has fewer), so no kernel needs scipy; the zeros
        are pruned here. On numpy and cupy the arrays never leave the device; strict has no
        sparse arrays and builds on the host (counted as one round trip).
        """
        return self._sparse_from_csr(data, indices, indptr, (int(shape[0]), int(shape[1])))

    def rng(self, *key: int) -> Generator:
        """A generator seeded from integer words, e.g. ``(scenario_seed, subject, stream)``.

        The same key on the same backend gives the same numbers, bit for bit.
        """
        if not key or any(int(k) < 0 for k in key):
            raise ValueError("rng key must be one or more non-negative integers")
        return self._generator_cls(self, tuple(int(k) for k in key))


_worker_state = threading.local()


@functools.cache
def _work_pool(workers: int):
    """The threads of :meth:`Backend.map_ordered`, made once per worker count."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(workers, thread_name_prefix="imagingsim-work")


def _run_as_worker(context: contextvars.Context, func: Callable[[Any], Any], item: Any) -> Any:
    _worker_state.inside = True
    return context.run(func, item)


@functools.cache
def _glibc(name: str) -> Callable[..., int] | None:
    """A function of glibc's malloc (``malloc_trim``, ``mallopt``), None without glibc."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None


def _trim_host_heap() -> None:
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim(0)


#: ``mallopt`` parameters (glibc malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: The mmap threshold glibc's adaptive rule rises to on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX), bytes.
_ADAPTIVE_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def restore_heap_reuse() -> bool:
    """Let freed arrays up to 32 MB be reused again when the environment pinned glibc's thresholds.

    Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``; any such variable
    turns off glibc's adaptive mmap threshold, which then stays at 128 KiB: every array
    temporary above it is mapped and page-faulted afresh, and the delivery solver ran 9x
    slower (6.0 vs 0.65 s, 1 mm mouse). This sets the thresholds the adaptive rule reaches
    (32 MB mmap, twice that to trim); :meth:`Backend.release_memory` still returns the
    memory between stages. Nothing changes but speed.

    Returns
    -------
    bool
        True when a pinned threshold was found and the thresholds were set.
    """
    mallopt = _glibc("mallopt")
    pinned = any(f"MALLOC_{name}_" in os.environ for name in ("TRIM_THRESHOLD", "MMAP_THRESHOLD", "TOP_PAD"))
    if mallopt is None or not pinned:
        return False
    mallopt(_M_MMAP_THRESHOLD, _ADAPTIVE_MMAP_THRESHOLD_MAX)
    mallopt(_M_TRIM_THRESHOLD, 2 * _ADAPTIVE_MMAP_THRESHOLD_MAX)
    return True


def _host_dtype(xp, dtype) -> np.dtype:
    """The numpy dtype that matches an array-API dtype of ``xp``."""
    for name in ("float64", "float32", "int64", "int32", "int16", "uint8", "bool", "complex64", "complex128"):
        if dtype == getattr(xp, name, None):
            return np.dtype(name)
    return np.dtype(dtype)


__all__ = ["Backend", "BackendError", "Generator", "Ndimage", "SparseMatrix", "TransferStats"]
