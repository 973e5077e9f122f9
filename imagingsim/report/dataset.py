"""A written imagingsim dataset as the report reads it: files, sessions, masks, measurements.

:class:`DatasetView` is what every section of the report (and each modality's
``report_section``) receives. It names no modality: it knows the dataset layout of
:mod:`imagingsim.dataset` (sessions, the truth derivative, the saved scenario) and offers the
host-side measuring tools the sections share (ROI means, slices through the tumour in world
coordinates, masks on another grid, FWHM of a profile, detectability from measured noise) and
:meth:`DatasetView.png` to turn a matplotlib figure into PNG bytes.

References
----------
FWHM with the peak from a parabola through the highest sample and its neighbours and linearly
interpolated half-maximum crossings: NEMA NU 4-2008, section 3 (spatial resolution of
small-animal scanners). Rose criterion (detectability at a contrast-to-noise
ratio of 3-5): A. Rose, J Opt Soc Am 1948;38:196.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from imagingsim.io.nifti import read_nifti
from imagingsim.io.sessions import session_entity
from imagingsim.modalities.sections import DatasetError, fwhm

#: Contrast-to-noise ratio a lesion needs to be seen (the Rose criterion at its lower end).
DETECTION_CNR = 3.0


class DatasetView:
    """Read-only view of one subject of a written dataset.

    Parameters
    ----------
    root : path
        The dataset directory (``imagingsim simulate --out``).
    subject : str, optional
        ``sub-<id>`` (or ``<id>``); the first subject (sorted) by default.

    Attributes
    ----------
    sub : str
        The subject reported.
    subjects : tuple of str
        Every subject of the dataset's truth (the page says which one it reports).

    Raises
    ------
    DatasetError
        One line (``DATASET:`` or ``--subject:``) when ``root`` holds no imagingsim subject
        with its saved scenario, the scenario file is not valid JSON or does not validate, or
        ``subject`` is not one of the dataset's.
    """

    def __init__(self, root, subject: str | None = None):
        self.root = Path(root)
        if not (self.root / "dataset_description.json").is_file():
            raise DatasetError(f"DATASET: {self.root} is not a dataset (no dataset_description.json)")
        truth = self.root / "derivatives" / "truth"
        subjects = sorted(p.name for p in truth.glob("sub-*") if p.is_dir())
        if not subjects:
            raise DatasetError(f"DATASET: {self.root} has no ground truth (derivatives/truth/sub-*); "
                               "write it with --outputs including truth")
        self.subjects: tuple[str, ...] = tuple(subjects)
        if subject is not None:
            subject = subject if subject.startswith("sub-") else f"sub-{subject}"
            if subject not in subjects:
                raise DatasetError(f"--subject: {subject} is not in {self.root}; its subjects: {', '.join(subjects)}")
        self.sub = subject or subjects[0]
        scenario_file = truth / self.sub / f"{self.sub}_scenario.json"
        if not scenario_file.is_file():
            raise DatasetError(f"DATASET: {scenario_file} is missing (the scenario that made the subject)")
        try:
            self.scenario_data: dict[str, Any] = json.loads(scenario_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"DATASET: {scenario_file} is not valid JSON: {' '.join(str(exc).split())}") from None
        if not isinstance(self.scenario_data, dict):
            raise DatasetError(f"DATASET: {scenario_file} does not hold a scenario (a JSON object)")
        from imagingsim.pipeline import validate_scenario

        try:
            self.scenario = validate_scenario(self.scenario_data)
        except ValueError as exc:
            raise DatasetError(f"DATASET: its scenario does not validate here: {str(exc).splitlines()[0]}") from None
        self.times_h: tuple[float, ...] = tuple(float(t) for t in self.scenario.schedule.times_h)
        self.enabled: tuple[str, ...] = tuple(self.scenario.modalities.enabled)
        self._cache: dict[Path, tuple[np.ndarray, np.ndarray]] = {}

    # --- files ---------------------------------------------------------------------------

    def path(self, *parts: str) -> Path:
        """``root / parts`` (whether or not it exists)."""
        return self.root.joinpath(*parts)

    def session(self, time_h: float) -> str:
        """``ses-<label>`` of a schedule time."""
        return session_entity(time_h)

    def images_dir(self, datatype: str, time_h: float | None = None) -> Path:
        """``sub-<id>[/ses-<t>]/<datatype>``."""
        return self.path(self.sub, *( [self.session(time_h)] if time_h is not None else []), datatype)

    def truth_dir(self, name: str, time_h: float | None = None) -> Path:
        """``derivatives/truth/sub-<id>[/ses-<t>]/<name>``."""
        return self.path("derivatives", "truth", self.sub, *([self.session(time_h)] if time_h is not None else []),
                         name)

    def find(self, folder: Path, pattern: str) -> Path | None:
        """The one file of ``folder`` matching ``pattern`` (sorted first), or None."""
        found = sorted(folder.glob(pattern)) if folder.is_dir() else []
        return found[0] if found else None

    def load(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """A NIfTI file as float64 array and its affine (cached; the arrays are read-only)."""
        path = Path(path)
        if path not in self._cache:
            array, affine = read_nifti(path)
            array = np.asarray(array, dtype=np.float64)
            array.flags.writeable = False
            self._cache[path] = (array, affine)
        return self._cache[path]

    def sidecar(self, path: Path) -> dict[str, Any]:
        """The JSON sidecar of a ``.nii.gz`` (or a ``.json`` path itself)."""
        path = Path(path)
        name = path.name.removesuffix(".gz").removesuffix(".nii").removesuffix(".tsv")
        json_path = path if path.suffix == ".json" else path.with_name(name + ".json")
        return json.loads(json_path.read_text(encoding="utf-8"))

    def table(self, path: Path) -> dict[str, list]:
        """A TSV as columns (numbers as float where they parse)."""
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        columns: dict[str, list] = {k: [] for k in (rows[0] if rows else {})}
        for row in rows:
            for key, value in row.items():
                try:
                    columns[key].append(float(value))
                except (TypeError, ValueError):
                    columns[key].append(value)
        return columns

    # --- the phantom ---------------------------------------------------------------------

    @functools.cached_property
    def label_names(self) -> dict[int, str]:
        """Tissue label -> name (``dseg.tsv``)."""
        table = self.table(self.truth_dir("anat") / f"{self.sub}_dseg.tsv")
        return {int(i): str(n) for i, n in zip(table["index"], table["name"])}

    @functools.cached_property
    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Tissue labels (int) and the phantom affine."""
        array, affine = self.load(self.truth_dir("anat") / f"{self.sub}_dseg.nii.gz")
        return array.astype(np.int64), affine

    def tissue(self, *names: str) -> np.ndarray:
        """Mask of the phantom voxels whose label is one of ``names``."""
        ids = [i for i, n in self.label_names.items() if n in names]
        return np.isin(self.labels[0], ids)

    @functools.cached_property
    def tumour(self) -> np.ndarray:
        """Mask of every tumour voxel (``desc-tumours_dseg`` > 0) on the phantom grid."""
        array, _ = self.load(self.truth_dir("anat") / f"{self.sub}_desc-tumours_dseg.nii.gz")
        return array > 0

    @functools.cached_property
    def hypoxic_rim(self) -> np.ndarray:
        """Tumour voxels labelled hypoxic: the rim between the viable shell and the necrotic core."""
        return self.tissue("tumour_hypoxic") & self.tumour

    @functools.cached_property
    def background(self) -> np.ndarray:
        """Reference tissue for tumour-to-background ratios: soft tissue at least 2 voxels from
        any other tissue (eroded, so that blur from organs and the tumour does not leak in)."""
        soft = self.tissue("soft_tissue")
        eroded = ndimage.binary_erosion(soft, iterations=2)
        return eroded if eroded.sum() >= 27 else soft

    @functools.cached_property
    def tumour_centre_mm(self) -> np.ndarray:
        """World (RAS mm) centroid of the tumour mask (the phantom centre when there is none)."""
        affine = self.labels[1]
        mask = self.tumour if self.tumour.any() else np.ones(self.tumour.shape, bool)
        index = np.array(ndimage.center_of_mass(mask))
        return affine[:3, :3] @ index + affine[:3, 3]

    @property
    def has_tumour(self) -> bool:
        return bool(self.tumour.any())

    # --- geometry ------------------------------------------------------------------------

    @staticmethod
    def world_to_index(affine: np.ndarray, world_mm) -> np.ndarray:
        """Fractional voxel index of a world point on a grid with ``affine``."""
        return np.linalg.solve(affine[:3, :3], np.asarray(world_mm, float) - affine[:3, 3])

    def mask_on(self, mask: np.ndarray, affine: np.ndarray, shape) -> np.ndarray:
        """A phantom-grid mask sampled (nearest voxel) at the voxel centres of another grid."""
        src_affine = self.labels[1]
        grids = np.meshgrid(*[np.arange(n) for n in shape[:3]], indexing="ij")
        points = np.stack([g.ravel() for g in grids]).astype(float)
        world = affine[:3, :3] @ points + affine[:3, 3:4]
        index = np.rint(np.linalg.solve(src_affine[:3, :3], world - src_affine[:3, 3:4])).astype(np.int64)
        inside = np.all((index >= 0) & (index < np.array(mask.shape)[:, None]), axis=0)
        out = np.zeros(points.shape[1], bool)
        out[inside] = mask[tuple(index[:, inside])]
        return out.reshape(tuple(shape[:3]))

    def axial_plane(self, array: np.ndarray, affine: np.ndarray,
                    at_mm=None) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """The axial (x-y) plane of a 3-D array through a world point (the tumour centre by
        default): the 2-D array ``[x, y]`` and its extent in world mm (voxel edges)."""
        at = self.tumour_centre_mm if at_mm is None else np.asarray(at_mm, float)
        k = int(np.clip(np.rint(self.world_to_index(affine, at)[2]), 0, array.shape[2] - 1))
        return array[:, :, k], self.extent_xy(affine, array.shape)

    @staticmethod
    def extent_xy(affine: np.ndarray, shape) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)`` of a grid's voxel edges, world mm."""
        dx, dy = affine[0, 0], affine[1, 1]
        x0, y0 = affine[0, 3] - 0.5 * dx, affine[1, 3] - 0.5 * dy
        return (float(x0), float(x0 + dx * shape[0]), float(y0), float(y0 + dy * shape[1]))

    # --- measurements --------------------------------------------------------------------

    @staticmethod
    def roi_mean(array: np.ndarray, mask: np.ndarray) -> float:
        """Mean of the finite values of ``array`` inside ``mask`` (NaN for an empty ROI)."""
        values = np.asarray(array)[np.asarray(mask, bool)]
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else math.nan

    @staticmethod
    def weighted_mean(array: np.ndarray, weights: np.ndarray) -> float:
        """``sum(w x) / sum(w)`` over finite values (partial-voxel ROIs)."""
        keep = np.isfinite(array) & (weights > 0)
        total = float(weights[keep].sum())
        return float((array[keep] * weights[keep]).sum() / total) if total > 0 else math.nan

    @staticmethod
    def roi_sd(array: np.ndarray, mask: np.ndarray) -> float:
        """Standard deviation (ddof 1) of the finite values inside ``mask``."""
        values = np.asarray(array)[np.asarray(mask, bool)]
        values = values[np.isfinite(values)]
        return float(values.std(ddof=1)) if values.size > 1 else math.nan

    @staticmethod
    def fwhm_mm(profile, spacing_mm: float) -> float:
        """FWHM of a single-peaked profile, mm (:func:`~imagingsim.modalities.sections.fwhm`)."""
        return fwhm(profile, spacing_mm)

    @functools.cached_property
    def depth_below_surface_mm(self) -> np.ndarray:
        """Distance of every body voxel to the nearest air voxel (the skin), mm."""
        labels, affine = self.labels
        return ndimage.distance_transform_edt(labels > 0, sampling=np.abs(np.diag(affine)[:3]))

    def depth_response(self, image: np.ndarray, truth: np.ndarray, mask: np.ndarray, *, step_mm: float = 1.0,
                       min_voxels: int = 20) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Measured / true value of ``mask`` voxels against their depth below the skin.

        Both arrays on the phantom grid; per ``step_mm`` shell of depth, the ratio of the
        means, normalised to its median over the shells (1 = depth does not matter).
        Shells with fewer than ``min_voxels`` voxels are left out.
        """
        depth = self.depth_below_surface_mm
        centres, ratios = [], []
        top = float(depth[mask].max()) if mask.any() else 0.0
        for lo in np.arange(0.0, top, step_mm):
            shell = mask & (depth > lo) & (depth <= lo + step_mm) & np.isfinite(image)
            if shell.sum() >= min_voxels:
                true = float(truth[shell].mean())
                if true > 0:
                    centres.append(lo + 0.5 * step_mm)
                    ratios.append(float(image[shell].mean()) / true)
        if not ratios:
            return (), ()
        norm = float(np.median(ratios))
        return tuple(centres), tuple(r / norm for r in ratios)

    @staticmethod
    def detectable(noise_sd: float, signal_per_unit: float) -> float:
        """Smallest concentration whose signal stands :data:`DETECTION_CNR` noise sd above the
        background: ``CNR x sd / (signal per unit concentration)`` (inf when nothing is seen)."""
        if not (signal_per_unit > 0 and math.isfinite(noise_sd)):
            return math.inf
        return DETECTION_CNR * noise_sd / signal_per_unit

    # --- figures -------------------------------------------------------------------------

    @staticmethod
    def figure(width_in: float = 7.0, height_in: float = 3.2):
        """A new matplotlib Figure (object API: no pyplot state, no display needed)."""
        from matplotlib.figure import Figure

        return Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")

    @staticmethod
    def png(fig) -> bytes:
        """The figure as PNG bytes, without time stamps or software versions (the same inputs
        give the same bytes)."""
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
        return buffer.getvalue()


__all__ = ["DETECTION_CNR", "DatasetError", "DatasetView"]  # DatasetError: from the contract (sections)
