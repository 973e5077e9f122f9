"""The reconstruction problem a benchmark hands to a plug-in, and what a modality gives the harness.

Two objects keep the truth away from the plug-in:

- :class:`ReconProblem` is everything a real reconstruction gets and nothing more: the measured
  data of one noise realisation, the system model as a
  :class:`~imagingsim.operators.LinearOperator` on the chosen backend, the additive background
  and multiplicative factors, the image grid and the units. For emission and count data
  ``E[data] = multiplicative * forward(x) + additive`` (elementwise, outside ``forward``); for
  MRI ``data = forward(x) + noise`` with coils and mask inside ``forward`` (``additive = 0``,
  ``multiplicative = 1``) and ``mask`` / ``coil_maps`` given as well.
- :class:`ProblemSource` is what a modality's
  :meth:`~imagingsim.modalities.base.Modality.recon_problem` returns to the harness: the truth
  on its grid with the tissue labels, and ``draw(seed, count_scale)`` which simulates one more
  noise realisation (at ``count_scale`` times the scan's counts) with the modality's own noise
  model and returns its :class:`ReconProblem`.

References
----------
The attribute names follow the SyneRBI PETRIC challenge's data objects (acquisition data,
additive term, multiplicative factors; ``petric.py``, 2024) extended to CT and MRI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imagingsim.backend import Backend
from imagingsim.operators import LinearOperator


@dataclass(frozen=True, eq=False)
class ReconProblem:
    """One noise realisation of one scan, as a reconstruction sees it (never the truth).

    Attributes
    ----------
    modality : str
        Registered modality name (``"pet"``, ``"ct"``, ``"mri"``...).
    data : device array, shape ``operator.out_shape``
        Measured data: PET/SPECT prompts (counts), CT line integrals (dimensionless,
        ``ln(I0 / I)`` water-precorrected), MRI k-space (complex, 0 off the mask).
    operator : LinearOperator
        The system model ``A`` from images ``image_shape`` to data; :meth:`forward` and
        :meth:`adjoint` apply it and its adjoint.
    additive : device array of ``data``'s shape, or float
        Expected additive counts (scatter + randoms); 0.0 where there are none. It is the
        exact expectation the realisation was drawn from, where real data give only an
        estimate: this part of the problem is easier than real data.
    multiplicative : device array of ``data``'s shape, or float
        Elementwise factors outside ``forward`` (attenuation x sensitivity x calibration);
        1.0 where there are none.
    image_shape : tuple of int
        Shape of the image a reconstruction returns, ``(nx, ny, nz)``.
    voxel_size_mm : tuple of float
        Voxel size of that image, mm.
    affine : tuple of tuple of float, (4, 4)
        Voxel index -> RAS world mm of the image (``ImageGrid.affine``, host).
    backend : Backend
        Where ``data`` and the operator's arrays live; :attr:`xp` is its array namespace.
    units : str
        Units of the image a reconstruction should return (``"Bq/mL"``, ``"1/mm"``, ``"a.u."``).
    mask : device array or None
        MRI: acquired phase encodes ``(ny, nz)``, bool, FFT order (inside ``forward`` already).
    coil_maps : device array or None
        MRI: coil sensitivities ``(C, nx, ny, nz)`` (inside ``forward`` already); None for one coil.
    native : object, optional
        The modality's own system objects, for its built-in baselines (a plug-in that uses it
        is tied to that modality and its internals; the public contract is the fields above).
    iterations : int or None
        The benchmark's iteration budget for this problem: a callable plug-in should run this
        many iterations (the harness calls a class plug-in's ``update()`` this many times).
    """

    modality: str
    data: Any
    operator: LinearOperator
    additive: Any
    multiplicative: Any
    image_shape: tuple[int, ...]
    voxel_size_mm: tuple[float, ...]
    affine: Any
    backend: Backend
    units: str
    mask: Any = None
    coil_maps: Any = None
    native: Any = None
    iterations: int | None = None

    @property
    def xp(self):
        """The array namespace of the backend (``numpy``, ``cupy`` or ``array_api_strict``)."""
        return self.backend.xp

    def forward(self, x):
        """``A x``: image ``image_shape`` -> data shape (without ``multiplicative``/``additive``)."""
        return self.operator.apply(x)

    def adjoint(self, y):
        """``A^H y``: data shape -> image ``image_shape``."""
        return self.operator.adjoint(y)


def check_frame(modality: str, frame: int, n_frames: int, unit: str) -> None:
    """Refuse a ``frame`` outside the acquisition's ``n_frames`` (``unit``: "frames", "scans"...)."""
    if not 0 <= frame < n_frames:
        raise ValueError(f"{modality} frame {frame} out of range: the acquisition has {n_frames} {unit}")


@dataclass(frozen=True, eq=False)
class ProblemSource:
    """What a modality gives the benchmark harness for one scan: truth, labels and realisations.

    Attributes
    ----------
    modality : str
    truth : numpy.ndarray
        The exact image the reconstruction estimates, on ``truth_grid``, in ``units`` (host, float64).
    truth_grid : ImageGrid
        Grid of ``truth`` and ``labels`` (the phantom grid).
    recon_grid : ImageGrid
        Grid of the reconstructed image (``ReconProblem.image_shape``); the harness resamples
        the truth onto it (activity-preserving) when the two differ.
    labels : numpy.ndarray, uint8
        Tissue labels (:class:`~imagingsim.phantom.model.Label`) on ``truth_grid``.
    units : str
        Units of ``truth`` and of the reconstructed images.
    draw : callable
        ``draw(seed, count_scale) -> ReconProblem``: a new noise realisation from the
        modality's own noise model and generator ``seed``, at ``count_scale`` times the
        counts (or SNR^2 for MRI) of the scan. ``draw(subject seed, 1.0)`` gives the data the
        simulation itself acquired.
    magnitude : bool
        Score ``|image|`` against ``|truth|`` (MRI: complex images, magnitude truth).
    """

    modality: str
    truth: Any
    truth_grid: Any
    recon_grid: Any
    labels: Any
    units: str
    draw: Callable[[int, float], ReconProblem]
    magnitude: bool = False
