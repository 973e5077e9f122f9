"""Where the detectors are and when they sample: the acoustic geometry of one slice.

Conventions: the slice is the phantom's axial plane ``[x, y]`` at one z; pixel ``(i, j)``
has its centre at ``(x0 + i h, y0 + j h)`` mm (the phantom grid's). Elements are point
detectors in the slice plane, focused in elevation on it (they see only the slice).

- **Ring**: ``n_elements`` on a circle centred on the slice centre, radius
  ``R0 = half the slice's diagonal + one voxel`` (every pixel inside, as the exact
  inversion needs), covering ``angular_coverage_deg`` centred on the dorsal side (-y),
  elements at the centres of equal arcs.
- **Linear array**: ``n_elements`` at ``pitch_mm`` along x, centred on the slice centre, one
  voxel outside the slice edge on the ``side`` of the body (dorsal: y below the slice).

Time: samples ``t_k = t0 + k dt`` (us), ``dt = 1 / sampling_rate``; the window spans the
earliest to the latest arrival from any pixel, plus a margin of four standard deviations
of the band-pass's impulse response.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: FWHM of a Gaussian in standard deviations, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class AcousticGeometry:
    """The slice, the elements and the time axis (units in the names; host floats).

    Attributes
    ----------
    shape : (nx, ny)
    voxel_mm : float
        In-plane pixel size (isotropic), mm.
    origin_mm : (x0, y0)
        World position of pixel (0, 0)'s centre, mm.
    slice_thickness_mm : float
        Elevation thickness of the slice (the phantom's z voxel), mm.
    detector : {"ring", "linear"}
    elements_mm : tuple of (x, y)
        Element positions, world mm.
    arc_weights : tuple of float
        Per element, the fraction of the full circle it stands for (``dtheta / 2 pi``; linear:
        ``pitch / (2 pi distance to the slice centre)``): the back-projection's quadrature weights.
    speed_mm_per_us : float
        Speed of sound, mm/us (= km/s).
    dt_us, t0_us : float
        Sampling interval and first sample time, us.
    n_t : int
        Samples per element.
    center_frequency_MHz, bandwidth_percent : float
        The Gaussian band-pass (bandwidth 0: none).
    ring_radius_mm : float
        Radius of the ring (linear array: distance from the array to the slice centre), mm.
    """

    shape: tuple[int, int]
    voxel_mm: float
    origin_mm: tuple[float, float]
    slice_thickness_mm: float
    detector: str
    elements_mm: tuple[tuple[float, float], ...]
    arc_weights: tuple[float, ...]
    speed_mm_per_us: float
    dt_us: float
    t0_us: float
    n_t: int
    center_frequency_MHz: float
    bandwidth_percent: float
    ring_radius_mm: float

    @property
    def n_elements(self) -> int:
        return len(self.elements_mm)

    @property
    def range_step_mm(self) -> float:
        """Distance sound travels in one sample, ``c dt``, mm."""
        return self.speed_mm_per_us * self.dt_us

    @property
    def centre_mm(self) -> tuple[float, float]:
        (nx, ny), h, (x0, y0) = self.shape, self.voxel_mm, self.origin_mm
        return (x0 + 0.5 * (nx - 1) * h, y0 + 0.5 * (ny - 1) * h)

    @property
    def sigma_MHz(self) -> float:
        """Standard deviation of the Gaussian band-pass, MHz (0: no filter)."""
        return self.center_frequency_MHz * self.bandwidth_percent / 100.0 / FWHM_PER_SIGMA

    def time_us(self, k: int) -> float:
        return self.t0_us + k * self.dt_us

    def sidecar(self) -> dict:
        """The geometry for a JSON sidecar (positions in world mm)."""
        return {
            "Detector": self.detector,
            "NumberOfElements": self.n_elements,
            "ElementPositions_mm": [list(p) for p in self.elements_mm],
            "ElementPositionsDescription": "world (x, y) of each point element in the slice plane, RAS mm",
            "ArcWeights": list(self.arc_weights),
            "ArcWeightsDescription": "per element, the fraction of the full circle it stands for in the back-projection",
            "RingRadius_mm": self.ring_radius_mm,
            "SpeedOfSound_m_per_s": self.speed_mm_per_us * 1000.0,
            "SamplingInterval_us": self.dt_us,
            "FirstSampleTime_us": self.t0_us,
            "SamplesPerElement": self.n_t,
            "CenterFrequency_MHz": self.center_frequency_MHz,
            "Bandwidth_percent": self.bandwidth_percent,
            "BandwidthDescription": "Gaussian band-pass in |f|, FWHM = Bandwidth_percent x CenterFrequency; 0: none",
            "SliceThickness_mm": self.slice_thickness_mm,
            "PixelSize_mm": self.voxel_mm,
        }


def geometry_from_sidecar(side: dict) -> AcousticGeometry:
    """The :class:`AcousticGeometry` written by :meth:`AcousticGeometry.sidecar` (+ ``SliceGrid``), read back."""
    grid = side["SliceGrid"]
    return AcousticGeometry(
        shape=(int(grid["Shape"][0]), int(grid["Shape"][1])),
        voxel_mm=float(side["PixelSize_mm"]),
        origin_mm=(float(grid["Origin_mm"][0]), float(grid["Origin_mm"][1])),
        slice_thickness_mm=float(side["SliceThickness_mm"]),
        detector=side["Detector"],
        elements_mm=tuple((float(x), float(y)) for x, y in side["ElementPositions_mm"]),
        arc_weights=tuple(float(w) for w in side["ArcWeights"]),
        speed_mm_per_us=float(side["SpeedOfSound_m_per_s"]) / 1000.0,
        dt_us=float(side["SamplingInterval_us"]),
        t0_us=float(side["FirstSampleTime_us"]),
        n_t=int(side["SamplesPerElement"]),
        center_frequency_MHz=float(side["CenterFrequency_MHz"]),
        bandwidth_percent=float(side["Bandwidth_percent"]),
        ring_radius_mm=float(side["RingRadius_mm"]),
    )


def _rectangle_distances(point, lo, hi) -> tuple[float, float]:
    """Nearest and farthest distance from ``point`` to the axis-aligned rectangle ``[lo, hi]``."""
    near = math.hypot(*(max(l - p, 0.0, p - u) for p, l, u in zip(point, lo, hi)))
    far = max(math.hypot(cx - point[0], cy - point[1]) for cx in (lo[0], hi[0]) for cy in (lo[1], hi[1]))
    return near, far


def acoustic_geometry(shape, voxel_mm: float, origin_mm, slice_thickness_mm: float, spec) -> AcousticGeometry:
    """The geometry of ``spec`` (``PhotoacousticSpec``) around a slice (module docstring).

    Parameters
    ----------
    shape : (nx, ny)
    voxel_mm : float
        In-plane pixel size, mm (the phantom grid is isotropic).
    origin_mm : (x0, y0)
        Centre of pixel (0, 0), world mm.
    slice_thickness_mm : float
    spec : PhotoacousticSpec

    Returns
    -------
    AcousticGeometry
    """
    nx, ny = (int(n) for n in shape)
    h = float(voxel_mm)
    x0, y0 = (float(v) for v in origin_mm)
    cx, cy = x0 + 0.5 * (nx - 1) * h, y0 + 0.5 * (ny - 1) * h
    n = spec.n_elements
    if spec.detector == "ring":
        radius = 0.5 * math.hypot(nx * h, ny * h) + h
        coverage = math.radians(spec.angular_coverage_deg)
        angles = [-0.5 * math.pi - 0.5 * coverage + coverage * (d + 0.5) / n for d in range(n)]
        elements = tuple((cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in angles)
        weights = tuple(coverage / (2.0 * math.pi * n) for _ in range(n))
    else:
        y_array = y0 - h if spec.side == "dorsal" else y0 + ny * h
        elements = tuple((cx + spec.pitch_mm * (d - 0.5 * (n - 1)), y_array) for d in range(n))
        radius = abs(y_array - cy)
        weights = tuple(spec.pitch_mm / (2.0 * math.pi * radius) for _ in range(n))
    c = spec.speed_of_sound_m_per_s / 1000.0
    dt = 1.0 / spec.sampling_rate_MHz
    step = c * dt
    lo, hi = (x0, y0), (x0 + (nx - 1) * h, y0 + (ny - 1) * h)
    spans = [_rectangle_distances(p, lo, hi) for p in elements]
    half_footprint = h / math.sqrt(2.0)
    sigma = spec.center_frequency_MHz * spec.bandwidth_percent / 100.0 / FWHM_PER_SIGMA
    margin = 2 + (math.ceil(4.0 / (2.0 * math.pi * sigma) / dt) if sigma > 0 else 0)
    first = max(1, math.floor((min(s[0] for s in spans) - half_footprint) / step) - margin)
    last = math.ceil((max(s[1] for s in spans) + half_footprint) / step) + margin
    return AcousticGeometry(
        shape=(nx, ny),
        voxel_mm=h,
        origin_mm=(x0, y0),
        slice_thickness_mm=float(slice_thickness_mm),
        detector=spec.detector,
        elements_mm=elements,
        arc_weights=weights,
        speed_mm_per_us=c,
        dt_us=dt,
        t0_us=first * dt,
        n_t=last - first + 1,
        center_frequency_MHz=spec.center_frequency_MHz,
        bandwidth_percent=spec.bandwidth_percent,
        ring_radius_mm=radius,
    )


__all__ = ["FWHM_PER_SIGMA", "AcousticGeometry", "acoustic_geometry", "geometry_from_sidecar"]
