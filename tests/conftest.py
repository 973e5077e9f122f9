"""The backend matrix, defined once: every kernel test takes the ``backend`` fixture.

``numpy`` and ``strict`` always run; ``cupy`` runs when a GPU is usable and is skipped with
the reason otherwise. On ``strict``, device arrays refuse ``__bool__``, ``__float__``,
``__int__`` and ``__index__`` (the CPU analogue of ``cupyx.allow_synchronize(False)``):
a kernel that silently synchronises fails there.
"""

from __future__ import annotations

import array_api_strict
import pytest

from imagingsim.backend import cupy_status, get_backend
from imagingsim.backend._strict import DEVICE as STRICT_DEVICE

BACKEND_NAMES = ("numpy", "strict", "cupy")
_GUARDED = ("__bool__", "__float__", "__int__", "__index__", "__complex__")


def _guard(original, name):
    def guarded(self, *args, **kwargs):
        if self.device == STRICT_DEVICE:
            raise RuntimeError(f"implicit device->host synchronisation: {name} on a device array")
        return original(self, *args, **kwargs)

    return guarded


@pytest.fixture(params=BACKEND_NAMES)
def backend(request, monkeypatch):
    """Each backend in turn, with its transfer counters reset."""
    name = request.param
    if name == "cupy":
        usable, reason = cupy_status()
        if not usable:
            pytest.skip(f"cupy backend: {reason}")
    be = get_backend(name)
    if name == "strict":
        array_cls = array_api_strict._array_object.Array
        for dunder in _GUARDED:
            monkeypatch.setattr(array_cls, dunder, _guard(getattr(array_cls, dunder), dunder))
    be.transfers.reset()
    return be


@pytest.fixture
def numpy_backend():
    return get_backend("numpy")
