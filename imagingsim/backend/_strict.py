"""The strict backend: array_api_strict on a fake non-CPU device.

Any numpy/scipy call that a kernel sneaks past the backend, and any mixing of devices,
raises here. Operations the array API lacks (ndimage) go through the host; each such
detour is counted in :attr:`Backend.transfers.round_trips`, so a test can assert that a
kernel makes none.
"""

from __future__ import annotations

import functools

import array_api_strict as xs
import numpy as np
from scipy import ndimage as ndi
from scipy import sparse

from imagingsim.backend._base import Backend, Ndimage, SparseMatrix

DEVICE = xs.Device("device1")
_CPU = xs.Device("CPU_DEVICE")


def _to_host(array) -> np.ndarray:
    if not isinstance(array, xs._array_object.Array):
        raise TypeError(f"strict backend expected an array_api_strict array, got {type(array).__name__}")
    return np.array(np.asarray(array.to_device(_CPU)), copy=True)


def _from_host(array: np.ndarray):
    return xs.asarray(np.array(array, copy=True), device=DEVICE)


def _via_host(backend_ref, func):
    """Wrap a scipy function as a device->host->device shim that counts its round trip."""

    @functools.wraps(func)
    def shim(array, *args, **kwargs):
        backend = backend_ref()
        backend.transfers.round_trips += 1
        host_args = [backend.to_host(a, count=False) if isinstance(a, xs._array_object.Array) else a for a in args]
        result = func(backend.to_host(array, count=False), *host_args, **kwargs)
        return backend.from_host(result, count=False)

    return shim


def _sparse_via_host(backend_ref):
    """Sparse products on the host (array_api_strict has no sparse arrays), each counted."""

    def matmul(matrix, x):
        backend = backend_ref()
        backend.transfers.round_trips += 1
        return backend.from_host(matrix @ backend.to_host(x, count=False), count=False)

    def from_host(matrix) -> SparseMatrix:
        csr = sparse.csr_array(matrix)
        return SparseMatrix(csr, csr.T.tocsr(), csr.shape, matmul)

    return from_host


def _sparse_csr_via_host(backend_ref):
    """Build from device CSR arrays on the host (one counted round trip)."""

    def from_csr(data, indices, indptr, shape) -> SparseMatrix:
        backend = backend_ref()
        backend.transfers.round_trips += 1
        host = [backend.to_host(a, count=False) for a in (data, indices, indptr)]
        csr = sparse.csr_array(tuple(host), shape=shape)
        csr.eliminate_zeros()
        return _sparse_via_host(backend_ref)(csr)

    return from_csr


@functools.cache
def make_strict_backend() -> Backend:
    """Build the (cached) strict backend."""
    holder: list[Backend] = []
    ref = lambda: holder[0]
    backend = Backend(
        name="strict",
        xp=xs,
        device=DEVICE,
        ndimage=Ndimage(
            gaussian_filter=_via_host(ref, ndi.gaussian_filter),
            distance_transform_edt=_via_host(ref, ndi.distance_transform_edt),
            map_coordinates=_via_host(ref, ndi.map_coordinates),
        ),
        _to_host=_to_host,
        _from_host=_from_host,
        _sparse_from_host=_sparse_via_host(ref),
        _sparse_from_csr=_sparse_csr_via_host(ref),
    )
    holder.append(backend)
    return backend
