"""Explicit device -> host copies for the writers (the only place arrays leave the device)."""

from __future__ import annotations

import numpy as np


def host_array(backend, array, dtype=None) -> np.ndarray:
    """``array`` copied to the host as a numpy array (of ``dtype`` when given), counted by the backend.

    Parameters
    ----------
    backend : Backend
        The backend ``array`` lives on; its transfer counter records the copy.
    array : device array
    dtype : numpy dtype, optional
        Converted after the copy (e.g. ``np.float32`` for NIfTI images); none keeps the dtype.
    """
    return np.asarray(backend.to_host(array), dtype=dtype)
