"""Deterministic 8-bit RGB PNG files, written without an imaging library.

PNG is the quick-look format every viewer, browser and notebook opens; a colour overlay is a
picture, not a measurement, so it does not belong in a NIfTI (RGB24 NIfTIs break MONAI's loader
and TorchIO keeps only their red channel). The encoder is the PNG specification's minimum:
signature, IHDR, one IDAT of zlib-compressed scanlines (filter 0), IEND. The bytes depend only
on the pixels, so the same image gives the same file.

References
----------
W3C, Portable Network Graphics (PNG) Specification, 3rd edition (2025), sections 5 and 11.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from imagingsim.io.atomic import atomic_write_bytes

__all__ = ["png_bytes", "write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(rgb: np.ndarray) -> bytes:
    """The PNG encoding of an RGB image.

    Parameters
    ----------
    rgb : numpy.ndarray, uint8, shape ``(rows, columns, 3)``
        Row 0 is the top of the picture.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"png_bytes: need a non-empty uint8 (rows, columns, 3) array, got {rgb.dtype} {rgb.shape}")
    rows, columns, _ = rgb.shape
    header = struct.pack(">IIBBBBB", columns, rows, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    scanlines = np.concatenate([np.zeros((rows, 1), np.uint8), rgb.reshape(rows, columns * 3)], axis=1)
    return (_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 9))
            + _chunk(b"IEND", b""))


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write ``rgb`` (see :func:`png_bytes`) to ``path`` atomically."""
    return atomic_write_bytes(path, png_bytes(rgb))
