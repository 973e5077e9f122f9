"""Array backends: the only kernel-side place that imports numpy, scipy or cupy.

A :class:`Backend` bundles an array-API namespace (``xp``) with its device, FFT, the
ndimage-like operations the kernels need, a seeded random generator and explicit host
transfers. Kernels receive a backend (or derive it from their input with
:func:`backend_of`) and create every array with an explicit ``device=`` and dtype.

Three backends exist:

``numpy``
    ``array_api_compat.numpy`` on the CPU, scipy for ndimage.
``cupy``
    ``array_api_compat.cupy`` on the current GPU, ``cupyx.scipy`` for ndimage.
``strict``
    ``array_api_strict`` arrays on the fake device ``Device("device1")``: any hidden
    numpy/scipy call or device mixing raises. It proves on a CPU that kernels are
    backend-clean; its ndimage shims go through the host and count the round trips.
"""

from __future__ import annotations

import functools
import warnings

from imagingsim.backend._base import Backend, BackendError, TransferStats, restore_heap_reuse
from imagingsim.backend._numpy import cpu_threads, make_numpy_backend

__all__ = [
    "Backend",
    "BackendError",
    "TransferStats",
    "backend_of",
    "cpu_threads",
    "cupy_status",
    "get_backend",
    "restore_heap_reuse",
]

BACKEND_NAMES = ("auto", "numpy", "cupy", "strict")


@functools.cache
def cupy_status() -> tuple[bool, str]:
    """Whether CuPy is importable and sees a usable GPU.

    Returns
    -------
    usable : bool
        True when ``cupy.is_available()`` is true.
    reason : str
        A short human-readable explanation (version or why not).
    """
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001 - missing, or a broken CUDA install raising anything at import
        return False, f"cupy not importable ({type(exc).__name__}: {exc})".splitlines()[0]
    try:
        if cupy.is_available():
            return True, f"cupy {cupy.__version__}, {cupy.cuda.runtime.getDeviceCount()} GPU(s)"
        return False, f"cupy {cupy.__version__} installed but no usable GPU"
    except Exception as exc:  # noqa: BLE001 - a broken driver raises anything
        return False, f"cupy present but broken ({type(exc).__name__})"


@functools.cache
def _warn_fallback_once(reason: str) -> None:
    warnings.warn(f"imagingsim: GPU backend unavailable, using numpy ({reason})", stacklevel=3)


@functools.cache
def get_backend(name: str = "auto") -> Backend:
    """Return the backend called ``name``.

    Parameters
    ----------
    name : {"auto", "numpy", "cupy", "strict"}
        ``auto`` takes CuPy when ``cupy.is_available()`` is true, else NumPy (warning once
        when CuPy is installed but unusable). ``cupy`` without a usable GPU raises
        :class:`BackendError` with a one-line message.

    Returns
    -------
    Backend
        Cached: the same object for the same name.
    """
    if name not in BACKEND_NAMES:
        raise BackendError(f"backend must be one of {', '.join(BACKEND_NAMES)}; got {name!r}")
    if name == "auto":
        usable, reason = cupy_status()
        if usable:
            return get_backend("cupy")
        if not reason.startswith("cupy not importable"):
            _warn_fallback_once(reason)
        return get_backend("numpy")
    if name == "numpy":
        return make_numpy_backend()
    if name == "strict":
        from imagingsim.backend._strict import make_strict_backend

        return make_strict_backend()
    usable, reason = cupy_status()
    if not usable:
        raise BackendError(f"backend 'cupy' needs a usable GPU: {reason}")
    from imagingsim.backend._cupy import make_cupy_backend

    return make_cupy_backend()


def backend_of(array) -> Backend:
    """Return the backend whose arrays ``array`` belongs to (by array type and device)."""
    module = type(array).__module__
    if module.startswith("array_api_strict"):
        return get_backend("strict")
    if module.startswith("cupy"):
        return get_backend("cupy")
    return get_backend("numpy")
