"""NIfTI-1 writing and reading with a complete, deterministic header.

Conventions (see ``imagingsim.grid``): arrays are ``[i, j, k(, t)]`` with axis 0 along +x,
so they go into NIfTI without any transpose, and the grid's diagonal RAS+ affine becomes both
the qform and the sform.

**Transform code.** Both qform_code and sform_code are 1 (``NIFTI_XFORM_SCANNER_ANAT``).
The phantom's world frame *is* the simulated scanner's frame: every modality of a subject
is simulated in it, so all maps share it without registration. Code 2
(``ALIGNED_ANAT``) would claim the image had been registered to some other anatomical
image, and codes 3/4 (Talairach / MNI) would claim a template space; neither is true. The
affine is diagonal with positive voxel sizes, so the qform (a rotation quaternion plus
``qfac``) represents it exactly and the two transforms agree bit for bit, which every
reader (nibabel, SimpleITK/ITK, FSL, AFNI) then interprets identically.

**Deterministic bytes.** nibabel's own ``.nii.gz`` writer goes through ``gzip.GzipFile``,
whose header carries the modification time. Here the uncompressed NIfTI is serialised to
memory (``Nifti1Image.to_bytes``) and compressed with ``mtime=0`` (and no file name in the
gzip header), so the same data always give the same bytes. Images that would compress below
348 bytes are stored uncompressed inside the gzip stream (see ``_MIN_GZ_BYTES``).

**Fast gzip.** Float images are mostly mantissa noise: zlib spends ~12 s on the default
dataset's 410 MB at level 6 and still ~8 s at level 1, for 220-224 MB. ISA-L's gzip
(``isal.igzip``, Intel's Intelligent Storage Acceleration Library; standard gzip that every
reader opens) at its level 1 writes 223 MB in 0.6 s, so it is the one compressor here.

References
----------
ISA-L: https://github.com/intel/isa-l; python-isal: https://github.com/pycompression/python-isal
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip

from imagingsim.grid import ImageGrid
from imagingsim.io.atomic import atomic_write_bytes

__all__ = ["XFORM_CODE", "nifti_image", "read_nifti", "sinogram_grid", "write_nifti"]


#: qform_code and sform_code written into every file (1 = NIFTI_XFORM_SCANNER_ANAT).
XFORM_CODE = 1
_GZIP_LEVEL = 1  # ISA-L level (0-3): 2 and 3 save under 0.5 % more, at up to 3x the time
_DESCRIP_BYTES = 80  # NIfTI-1 ``descrip`` is char[80]
# The npm bids-validator 1.x rejects any .nii.gz smaller than a bare NIfTI-1 header (348
# bytes) as NIFTI_TOO_SMALL without decompressing it. A tiny or constant image compresses
# below that, so such files are stored at gzip level 0 (still valid gzip, still deterministic).
_MIN_GZ_BYTES = 348


def _uniform_spacing(times_s: Sequence[float]) -> float:
    """The common spacing of ``times_s`` in s, or 0.0 when not uniform or fewer than 2 frames."""
    t = np.asarray(times_s, dtype=np.float64)
    if t.size < 2:
        return 0.0
    steps = np.diff(t)
    if steps[0] > 0 and np.allclose(steps, steps[0], rtol=1e-9, atol=1e-9):
        return float(steps[0])
    return 0.0


def nifti_image(
    data: np.ndarray,
    grid: ImageGrid,
    *,
    frame_times_s: Sequence[float] | None = None,
    description: str = "",
) -> nib.Nifti1Image:
    """Build a :class:`nibabel.Nifti1Image` with a complete header (see :func:`write_nifti`)."""
    data = np.asarray(data)
    if data.ndim not in (3, 4):
        raise ValueError(f"NIfTI data must be 3-D or 4-D, got shape {data.shape}")
    if tuple(data.shape[:3]) != tuple(grid.shape):
        raise ValueError(f"NIfTI data shape {data.shape[:3]} does not match grid shape {grid.shape}")
    if data.dtype == np.uint8 or data.dtype == np.bool_:
        data = data.astype(np.uint8, copy=False)
    else:
        if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
            raise ValueError(f"NIfTI data must be real numbers, got dtype {data.dtype}")
        data = data.astype(np.float32, copy=False)
    affine = np.array(grid.affine, dtype=np.float64)

    header = nib.Nifti1Header()
    header.set_data_dtype(data.dtype)
    img = nib.Nifti1Image(data, affine, header)
    img.set_qform(affine, code=XFORM_CODE)
    img.set_sform(affine, code=XFORM_CODE)
    hdr = img.header
    hdr.set_xyzt_units("mm", "sec")
    if data.ndim == 4:
        n_frames = data.shape[3]
        if frame_times_s is not None:
            times = [float(t) for t in frame_times_s]
            if len(times) != n_frames:
                raise ValueError(f"frame_times_s has {len(times)} values for {n_frames} frames")
            dt = _uniform_spacing(times)
            hdr["toffset"] = times[0] if times else 0.0
        else:
            dt = 0.0
        hdr.set_zooms(tuple(grid.voxel_size_mm) + (dt,))
    elif frame_times_s is not None:
        raise ValueError("frame_times_s is only meaningful for 4-D data")
    if np.issubdtype(data.dtype, np.floating) and data.size:
        finite = data[np.isfinite(data)]
        if finite.size:
            hdr["cal_min"], hdr["cal_max"] = float(finite.min()), float(finite.max())
    descrip = description.encode("ascii", "replace")[: _DESCRIP_BYTES - 1]
    hdr["descrip"] = descrip
    return img


def write_nifti(
    path: str | os.PathLike,
    data: np.ndarray,
    grid: ImageGrid,
    *,
    frame_times_s: Sequence[float] | None = None,
    description: str = "",
    compress_level: int = _GZIP_LEVEL,
) -> Path:
    """Write a host array as a gzipped NIfTI-1 file with deterministic bytes.

    Parameters
    ----------
    path : path-like
        Destination, normally ending in ``.nii.gz`` (always gzip-compressed).
    data : numpy.ndarray, shape ``grid.shape`` or ``grid.shape + (T,)``
        Host data indexed ``[i, j, k(, t)]`` (axis 0 = +x). ``uint8``/``bool`` is stored as
        uint8 (label images); everything else as float32
        (maps).
    grid : ImageGrid
        Supplies the affine written as both qform and sform (code 1, scanner).
    frame_times_s : sequence of float, optional, keyword-only
        Frame times of a 4-D series in seconds. ``pixdim[4]`` is their spacing when uniform,
        else 0 (the times then belong in the JSON sidecar); ``toffset`` is the first time.
    description : str, keyword-only
        Stored in the header's ``descrip`` field (ASCII, cut to 79 bytes).
    compress_level : int, keyword-only
        ISA-L gzip level 0-3 (default 1; see the module docstring).

    Returns
    -------
    Path
        The written path. Units are set to mm and s; the write is atomic.
    """
    img = nifti_image(data, grid, frame_times_s=frame_times_s, description=description)
    raw = img.to_bytes()
    packed = igzip.compress(raw, compresslevel=compress_level, mtime=0)
    if len(packed) < _MIN_GZ_BYTES:
        packed = gzip.compress(raw, compresslevel=0, mtime=0)  # stored blocks: never below the raw size
    return atomic_write_bytes(path, packed)


def read_nifti(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI file into a host array and its voxel -> RAS mm affine.

    Returns
    -------
    array : numpy.ndarray
        Indexed ``[i, j, k(, t)]`` in the stored dtype (scaling applied only when the file
        carries a non-identity slope/intercept).
    affine : numpy.ndarray, shape (4, 4)
        The sform (falling back to the qform) as nibabel resolves it.
    """
    img = nib.load(str(path))
    slope, inter = img.header.get_slope_inter()
    if slope in (None, 1.0) and inter in (None, 0.0):
        array = np.asarray(img.dataobj.get_unscaled())
    else:
        array = np.asarray(img.dataobj)
    return array, np.array(img.affine, dtype=np.float64)


def sinogram_grid(geometry, grid: ImageGrid) -> ImageGrid:
    """A NIfTI grid for ``[view, radial bin, slice]`` sinograms of a parallel-beam ``geometry``.

    pixdim = (view step in degrees, bin size mm, slice mm) and the origin holds the first
    angle, bin centre and slice position: a readable record, not a spatial mapping.
    """
    angles = geometry.angles_deg
    step = angles[1] - angles[0] if len(angles) > 1 else 180.0
    return ImageGrid(
        (geometry.n_angles, geometry.n_bins, grid.shape[2]),
        (step, geometry.bin_size_mm, grid.voxel_size_mm[2]),
        (angles[0], geometry.bin_centres_mm[0], grid.origin_mm[2]),
    )
