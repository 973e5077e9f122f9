"""PET: activity -> positron range and PSF -> attenuated projection -> scatter, randoms -> Poisson -> recon.

Model (one frame ``k`` per schedule time ``t_k``, length ``D``; t = 0 is the scenario start)
-----------------------------------------------------------------------------------------
- **Emitters.** Every agent with a positron-emitting label contributes counts, not only the
  tracer: a scanner cannot tell 18F annihilation photons from 89Zr ones. Agent ``a`` has the
  activity concentration at injection scale ``A_a(x) = C_a(x, t_k) * S_a`` (carrier ug/mL
  times specific activity, MBq/mg = 1e3 Bq/ug). Its biodistribution is held at the
  frame-start value during the frame (carrier kinetics take hours, a frame minutes), and
  decay gives ``A_a(x) * I_a,k`` decays per mL, with
  ``I_a,k = int_{max(t_k, t_inj)}^{t_k + D} exp(-lambda_a (t - t_inj)) dt``
  (:func:`~imagingsim.modalities.pet_physics.decay_integral_s`; ``D / I`` is dPETSTEP's
  frame-averaged decay factor), of which a fraction ``beta_a`` emit a positron.
- **Image convention.** Images are in tracer units, Bq/mL: ``E_k = sum_a A_a beta_a I_a,k /
  (beta_tr tau_k)`` with ``tau_k = I_tr,k`` when decay-corrected to the tracer's injection
  (activity at injection) and ``tau_k = D`` without decay correction (mean activity during
  the frame). A frame that ends before the tracer is injected uses ``tau_k = D``.
  ``expected_image_bq_per_ml`` is this ``E_k``, unblurred: what the reconstructions estimate.
- **Resolution.** Each emitter's positrons are spread by its own positron-range kernel in
  water (:func:`~imagingsim.modalities.pet_physics.positron_range_kernel`; not density-scaled,
  so range in lung is underestimated and in bone overestimated), then the scanner PSF
  (Gaussian, ``fwhm_mm``) blurs the sum.
- **Projection.** 2-D direct-plane model: every z plane of the phantom grid is one sinogram
  plane of a parallel-beam scanner (Joseph projector, float32, bins of the pixel size,
  ``n_views`` over 180 degrees); no oblique planes. Expected trues
  ``y_k = n_k * a * P(PSF(E_k))`` with attenuation factors ``a = exp(-P mu_511)`` and
  ``n_k = sensitivity * bin * slice / (1000 mm^3/mL * n_views) * beta_tr * tau_k``, so that
  the sum of ``y_k`` over bins, views and slices is sensitivity x annihilations in the field
  of view (without attenuation).
- **Scatter and randoms.** Scatter, ``SF / (1 - SF)`` times the trues of the frame, is the
  trues sinogram blurred by a broad Gaussian along the radial and axial directions (FWHM a
  quarter of the radial span): a smooth background, not a scatter simulation. Randoms,
  ``RF / (1 - RF)`` times trues + scatter, are uniform over all sinogram bins.
- **Noise.** Prompts ~ Poisson(trues + scatter + randoms) from ``backend.rng(seed,
  PET_NOISE_STREAM, k)``.
- **Reconstruction.** OSEM/MLEM with ``A_k = diag(n_k a) P [PSF o range_tracer]`` and the
  expected scatter + randoms as background (MLEM runs iterations x subsets iterations, the
  same number of updates as OSEM); FBP of ``(prompts - background) / (n_k a)``. Then a
  Gaussian post-filter. Frames are reconstructed together: the model is block-diagonal over
  frames and EM updates are voxelwise, so this equals one reconstruction per frame. The
  resolution model is applied after projection, as the kernel projected along the rays
  (a 2-D blur of each view over radial bin and slice): for an isotropic kernel this equals
  projecting the blurred image (0.1 % rms apart here) at a seventh of the cost
  (:meth:`PETSystem.model`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from imagingsim.attenuation import linear_attenuation_per_mm
from imagingsim.backend import Backend
from imagingsim.modalities.pet_physics import (
    Nuclide,
    decay_integral_s,
    nuclide,
    positron_range_kernel,
)
from imagingsim.modalities.pet_result import PETAcquisition, ScannerParams
from imagingsim.modalities.pet_scanner import scanner_params
from imagingsim.noise import check_nonnegative, poisson_counts
from imagingsim.operators import Blur, Diagonal, LinearOperator
from imagingsim.projectors import (
    ParallelBeamGeometry,
    ParallelProjector,
    PixelBackprojector,
)
from imagingsim.recon import fbp, osem
from imagingsim.scenario import AgentSpec, Scenario, positron_nuclide

#: Random stream of PET noise: the generator key is (seed, PET_NOISE_STREAM, frame index).
PET_NOISE_STREAM = 0x9E7
#: mm^3 per mL.
MM3_PER_ML = 1000.0


# --- operators ---------------------------------------------------------------------------


class _Reshape(LinearOperator):
    """A view of the same numbers in another shape (frames stacked as extra slices)."""

    def _apply(self, x):
        return self.backend.xp.reshape(x, self.out_shape)

    def _adjoint(self, y):
        return self.backend.xp.reshape(y, self.in_shape)


class FrameWise(LinearOperator):
    """Apply a 3-D operator to each frame of ``(nx, ny, nz, n_frames)`` images.

    Looping over frames keeps each FFT on a contiguous 3-D block (about twice as fast as one
    4-D transform over the first three axes with NumPy).
    """

    def __init__(self, op: LinearOperator, n_frames: int):
        super().__init__(op.in_shape + (n_frames,), op.out_shape + (n_frames,), op.backend)
        self.op = op

    def _apply(self, x):
        return self.backend.xp.stack([self.op.apply(x[..., t]) for t in range(x.shape[-1])], axis=-1)

    def _adjoint(self, y):
        return self.backend.xp.stack([self.op.adjoint(y[..., t]) for t in range(y.shape[-1])], axis=-1)


def _smooth(n: int) -> bool:
    for p in (2, 3, 5, 7):
        while n % p == 0:
            n //= p
    return n == 1


def _pad(kernel, widths: tuple[int, ...], backend: Backend):
    """Zero-pad ``kernel`` by ``widths[axis]`` on both sides of each axis."""
    xp = backend.xp
    for axis, w in enumerate(widths):
        if w > 0:
            shape = list(kernel.shape)
            shape[axis] = w
            zeros = xp.zeros(tuple(shape), dtype=kernel.dtype, device=backend.device)
            kernel = xp.concat((zeros, kernel, zeros), axis=axis)
    return kernel


def fft_friendly_blur(kernel, in_shape, backend: Backend) -> Blur:
    """A :class:`~imagingsim.operators.Blur` whose FFT lengths have no prime factor above 7.

    ``Blur`` transforms ``n + k - 1`` points per axis; the kernel is zero-padded (which
    changes nothing else) until that length is 7-smooth: a 113-point transform costs several
    times a 120-point one.
    """
    widths = []
    for n, k in zip(in_shape, kernel.shape):
        size = int(k)
        while k > 1 and not _smooth(int(n) + size - 1):
            size += 2
        widths.append((size - int(k)) // 2)
    return Blur(_pad(kernel, tuple(widths), backend), in_shape, backend)


def resolution_kernel(nuclide_data: Nuclide | None, fwhm_mm: float, voxel_size_mm, image_shape, backend: Backend, *,
                      dtype=None):
    """Positron range (water) of ``nuclide_data`` convolved with the Gaussian scanner PSF.

    Parameters
    ----------
    nuclide_data : Nuclide or None
        None: the PSF alone.
    fwhm_mm : float
        Scanner PSF FWHM, mm.
    voxel_size_mm, image_shape : 3-tuples
        The image grid (the PSF is truncated at 4 sigma or the image size).

    Returns
    -------
    device array
        Odd-sized, centred 3-D kernel summing to 1 (float64 unless ``dtype``).
    """
    xp = backend.xp
    if nuclide_data is None:
        kernel = xp.ones((1, 1, 1), dtype=xp.float64, device=backend.device)
    else:
        kernel = positron_range_kernel(
            nuclide_data.mean_positron_range_mm, nuclide_data.max_positron_range_mm, voxel_size_mm, backend
        )
    psf = Blur.gaussian(image_shape, voxel_size_mm, fwhm_mm, backend).kernel
    padded = _pad(kernel, tuple(k // 2 for k in psf.shape), backend)
    kernel = Blur(psf, padded.shape, backend).apply(padded)
    return xp.astype(kernel, dtype or xp.float64)


# --- the system model --------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PETSystem:
    """Geometry, projector, attenuation and calibration of one acquisition, built once.

    Images are ``(nx, ny, nz, n_frames)``; sinograms ``(n_views, n_bins, nz, n_frames)``.
    Frames are stacked as extra slices of one projector, so a projection of all frames is
    one sparse product.

    Attributes
    ----------
    geometry : ParallelBeamGeometry
    image_shape : (int, int, int)
    voxel_size_mm : (float, float, float)
    n_frames : int
    projector : ParallelProjector
        float32, ``nz * n_frames`` slices.
    attenuation_factors : device array, float32, ``(n_views, n_bins, nz)``
    counts_per_unit_projection : tuple of float
        ``n_k`` per frame, counts per (Bq/mL x mm).
    resolution_kernel : device array or None
        3-D kernel (float32) of the resolution model ``R`` of :meth:`model`.
    """

    geometry: ParallelBeamGeometry
    image_shape: tuple[int, int, int]
    voxel_size_mm: tuple[float, float, float]
    n_frames: int
    projector: ParallelProjector
    attenuation_factors: Any
    counts_per_unit_projection: tuple[float, ...]
    resolution_kernel: Any
    backend: Backend

    @classmethod
    def build(cls, image_shape, voxel_size_mm, mu_511_per_mm, n_views: int, counts_per_unit_projection,
              backend: Backend, *, resolution_kernel=None) -> PETSystem:
        """Geometry covering the image, projectors, ``a = exp(-P mu)`` and the resolution model.

        Parameters
        ----------
        image_shape, voxel_size_mm : 3-tuples
            Phantom grid (voxels, mm); bins are the pixel size and slices its z planes.
        mu_511_per_mm : device array ``image_shape``
            Attenuation at 511 keV, 1/mm.
        n_views : int
            Views over 180 degrees.
        counts_per_unit_projection : sequence of float
            ``n_k`` per frame (see the module docstring).
        resolution_kernel : device array, optional
            3-D kernel of the reconstruction's resolution model (cast to float32).
        """
        xp = backend.xp
        (nx, ny, nz), (dx, dy, _) = tuple(image_shape), tuple(voxel_size_mm)
        n_frames = len(counts_per_unit_projection)
        geometry = ParallelBeamGeometry.covering((nx, ny), (dx, dy), n_views)
        line_integrals = ParallelProjector(geometry, nz, backend).apply(xp.astype(mu_511_per_mm, xp.float32))
        return cls(
            geometry=geometry,
            image_shape=(nx, ny, nz),
            voxel_size_mm=tuple(float(v) for v in voxel_size_mm),
            n_frames=n_frames,
            projector=ParallelProjector(geometry, nz * n_frames, backend),
            attenuation_factors=xp.exp(-line_integrals),
            counts_per_unit_projection=tuple(float(n) for n in counts_per_unit_projection),
            resolution_kernel=None if resolution_kernel is None else xp.astype(resolution_kernel, xp.float32),
            backend=backend,
        )

    def _views(self, views):
        xp = self.backend.xp
        return xp.asarray(list(views), dtype=xp.int64, device=self.backend.device)

    def weights(self, views=None):
        """``n_k * a`` on the sinogram ``(views, bins, nz, n_frames)``, float32."""
        xp = self.backend.xp
        n = xp.asarray(self.counts_per_unit_projection, dtype=xp.float32, device=self.backend.device)
        a = self.attenuation_factors if views is None else xp.take(self.attenuation_factors, self._views(views), axis=0)
        return a[..., None] * n

    def take_views(self, sinogram, views):
        """The rows of some views of a sinogram (an OSEM subset)."""
        return sinogram if views is None else self.backend.xp.take(sinogram, self._views(views), axis=0)

    def model(self, views=None, *, resolution: bool = True, space: str = "sinogram") -> LinearOperator:
        """The system model: expected trues per image in Bq/mL, for all or some views.

        Parameters
        ----------
        views : sequence of int, optional
            View indices (an OSEM subset); all views by default.
        resolution : bool
            Include the resolution model (when the system has a kernel).
        space : {"sinogram", "image"}
            ``"image"``: ``diag(n_k a) P R`` with ``R`` the 3-D kernel on the image.
            ``"sinogram"``: ``diag(n_k a) H P`` with ``H`` the same kernel projected along
            the rays, a 2-D blur over (radial bin, slice) of each view. For an isotropic
            kernel, projection and blur commute (``P R = H P`` in the continuum; 0.1 % rms
            apart with the Joseph projector), and ``H`` works on a subset's sinogram
            instead of the whole image: about 7x faster in OSEM. Needs square pixels
            (``bin = dx = dy``); otherwise the image form is used.
        """
        xp, be = self.backend.xp, self.backend
        nx, ny, nz = self.image_shape
        t = self.n_frames
        projector = self.projector if views is None else self.projector.subset(list(views))
        n_views = projector.out_shape[0]
        sino_shape = (n_views, self.geometry.n_bins, nz)
        blur = resolution and self.resolution_kernel is not None
        dx, dy, _ = self.voxel_size_mm
        in_sinogram = blur and space == "sinogram" and dx == dy == self.geometry.bin_size_mm
        op = Diagonal(self.weights(views), be)
        if in_sinogram:
            projected = xp.sum(self.resolution_kernel, axis=1)[None, ...]
            op = op @ FrameWise(fft_friendly_blur(projected, sino_shape, be), t)
        op = op @ _Reshape(projector.out_shape, sino_shape + (t,), be) @ projector @ _Reshape((nx, ny, nz, t), (nx, ny, nz * t), be)
        if blur and not in_sinogram:
            op = op @ FrameWise(fft_friendly_blur(self.resolution_kernel, self.image_shape, be), t)
        return op


def counts_per_unit_projection(sensitivity: float, bin_size_mm: float, slice_mm: float, n_views: int,
                               beta_plus_fraction: float, tau_s: float) -> float:
    """``n_k``: expected trues per sinogram bin per (Bq/mL x mm) of line integral.

    ``sensitivity * bin * slice / (1000 mm^3/mL * n_views) * beta * tau``: summing
    ``n_k P(x)`` over bins, views and slices gives sensitivity x positrons emitted by ``x``.
    """
    return sensitivity * bin_size_mm * slice_mm / (MM3_PER_ML * n_views) * beta_plus_fraction * tau_s


def scatter_and_randoms(trues, geometry: ParallelBeamGeometry, slice_mm: float, scatter_fraction: float,
                        randoms_fraction: float, backend: Backend):
    """Smooth scatter and uniform randoms for expected trues ``(views, bins, nz, n_frames)``.

    Returns
    -------
    scatter : device array, shape of ``trues``
        The trues blurred along bins and slices (Gaussian, FWHM a quarter of the radial
        span), scaled per frame to ``SF / (1 - SF)`` times the frame's trues.
    randoms_per_bin : device array ``(n_frames,)``
        ``RF / (1 - RF)`` times trues + scatter of each frame, divided by the bins per frame.
    """
    xp = backend.xp
    fwhm = 0.25 * geometry.n_bins * geometry.bin_size_mm
    shape = tuple(trues.shape)
    kernel = Blur.gaussian(shape[:3], (1.0, geometry.bin_size_mm, slice_mm), (0.0, fwhm, fwhm), backend,
                           truncate=3.0, dtype=trues.dtype).kernel
    # FFT round-off leaves tiny negative values where the sinogram is empty: clip them.
    smooth = xp.clip(FrameWise(fft_friendly_blur(kernel, shape[:3], backend), shape[3]).apply(trues), 0.0, None)
    trues_total = xp.sum(trues, axis=(0, 1, 2), dtype=xp.float64)
    smooth_total = xp.sum(smooth, axis=(0, 1, 2), dtype=xp.float64)
    scale = xp.where(smooth_total > 0, trues_total / xp.where(smooth_total > 0, smooth_total, 1.0), 0.0)
    scatter = smooth * xp.astype(scale * (scatter_fraction / (1.0 - scatter_fraction)), trues.dtype)
    n_bins = shape[0] * shape[1] * shape[2]
    randoms = trues_total / (1.0 - scatter_fraction) * (randoms_fraction / (1.0 - randoms_fraction)) / n_bins
    return scatter, xp.astype(randoms, trues.dtype)


# --- reconstruction ----------------------------------------------------------------------


def reconstruct_pet(method: str, prompts, background, system: PETSystem, scanner: ScannerParams, *,
                    psf_in_model: bool = True):
    """Reconstruct all frames with ``method`` ("osem", "mlem", "fbp"), then post-filter.

    Returns
    -------
    device array, float32, ``(nx, ny, nz, n_frames)``, Bq/mL
    """
    be, xp = system.backend, system.backend.xp
    nx, ny, nz = system.image_shape
    t = system.n_frames
    if method in ("osem", "mlem"):
        if method == "osem":
            subsets, n_iterations = system.geometry.subset_views(scanner.subsets), scanner.iterations
        else:
            subsets, n_iterations = [None], scanner.iterations * scanner.subsets
        image = osem(
            [system.take_views(prompts, v) for v in subsets],
            [system.model(v, resolution=psf_in_model) for v in subsets],
            [system.take_views(background, v) for v in subsets],
            n_iterations,
        )
    elif method == "fbp":
        w = system.weights()
        positive = w > 0
        sinogram = xp.where(positive, (prompts - background) / xp.where(positive, w, 1.0), 0.0)
        g = system.geometry
        flat = xp.reshape(xp.astype(sinogram, xp.float32), (g.n_angles, g.n_bins, nz * t))
        image = fbp(flat, PixelBackprojector(g, nz * t, be), filter_name=scanner.fbp_filter, cutoff=scanner.fbp_cutoff)
        image = xp.reshape(image, (nx, ny, nz, t))
    else:
        raise ValueError(f"PET recon method must be osem, mlem or fbp; got {method!r}")
    image = xp.astype(image, xp.float32)
    if scanner.post_filter_fwhm_mm > 0:
        post = Blur.gaussian((nx, ny, nz), system.voxel_size_mm, scanner.post_filter_fwhm_mm, be, dtype=xp.float32)
        image = FrameWise(post, t).apply(image)
    return image


_FBP_FILTER_NAMES = {"ramp": "ramp filter", "shepp-logan": "Shepp-Logan filter", "hann": "Hann-windowed ramp filter"}


def recon_parameters(method: str, scanner: ScannerParams, psf_in_model: bool) -> dict[str, Any]:
    """The BIDS Recon* description of ``method`` (see :class:`PETAcquisition`)."""
    post = scanner.post_filter_fwhm_mm
    common = {"filter_type": "Gaussian" if post > 0 else "none", "filter_size": post if post > 0 else 0.0}
    modelled = "attenuation, scatter, randoms and PSF modelling" if psf_in_model else "attenuation, scatter and randoms modelling"
    it, sub = scanner.iterations, scanner.subsets
    if method == "osem":
        return {**common, "method_name": f"OSEM {it}i{sub}s with {modelled}", "labels": ["subsets", "iterations"],
                "units": ["none", "none"], "values": [sub, it]}
    if method == "mlem":
        return {**common, "method_name": f"MLEM {it * sub}i with {modelled}", "labels": ["iterations"],
                "units": ["none"], "values": [it * sub]}
    return {
        **common,
        "method_name": f"FBP ({_FBP_FILTER_NAMES.get(scanner.fbp_filter, scanner.fbp_filter)}, cut-off "
        f"{scanner.fbp_cutoff:g} x Nyquist) with "
        "attenuation, scatter and randoms precorrection",
        "labels": ["cutoff"],
        "units": ["fraction of Nyquist"],
        "values": [scanner.fbp_cutoff],
    }


# --- the acquisition ---------------------------------------------------------------------


def specific_activity_bq_per_ug(agent: AgentSpec) -> float:
    """Activity per ug of carrier at injection of ``agent``'s positron label, Bq/ug."""
    for label in agent.labels:
        if label.kind == "radionuclide" and label.nuclide == positron_nuclide(agent):
            return label.specific_activity_MBq_per_mg * 1e3  # MBq/mg = 1e6 Bq / 1e3 ug
    raise ValueError(f"agent {agent.name!r} has no positron-emitting label")


def acquire_pet(phantom, delivery, scenario: Scenario, backend: Backend, seed: int) -> PETAcquisition:
    """Simulate and reconstruct the PET study of a scenario (see the module docstring).

    Parameters
    ----------
    phantom : imagingsim.phantom.Phantom
        Grid, labels and densities (for the 511 keV attenuation map) and body mass.
    delivery : imagingsim.delivery.DeliveryResult
        Carrier maps ``(nx, ny, nz, T)`` of every agent at the schedule times.
    scenario : Scenario
        ``modalities.pet`` settings (unset fields from the scanner preset) and the agents.
    backend : Backend
    seed : int
        Subject seed (>= 0); the noise of frame ``k`` is drawn from
        ``backend.rng(seed, PET_NOISE_STREAM, k)``, so it is reproducible per backend.

    Returns
    -------
    PETAcquisition
        Every device array float32.
    """
    xp = backend.xp
    spec = scenario.modalities.pet
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    scanner = scanner_params(spec)
    tracer = scenario.pet_tracer()
    tracer_nuclide = nuclide(positron_nuclide(tracer))
    emitters = [item for item in delivery.agents if positron_nuclide(item.agent) is not None]
    grid = phantom.grid
    (nx, ny, nz), voxel = grid.shape, grid.voxel_size_mm
    duration = scanner.frame_duration_s
    starts = tuple(3600.0 * t for t in delivery.times_h)
    n_frames = len(starts)

    def integrals(data: Nuclide, agent: AgentSpec) -> list[float]:
        inj = 3600.0 * agent.injection_time_h
        return [decay_integral_s(data.half_life_s, s, s + duration, injection_s=inj) for s in starts]

    tracer_integrals = integrals(tracer_nuclide, tracer)
    decay_corrected = spec.decay_correction == "injection"
    tau = [i if decay_corrected and i > 0.0 else duration for i in tracer_integrals]
    n_k = [
        counts_per_unit_projection(scanner.sensitivity, voxel[0], voxel[2], scanner.n_views,
                                   tracer_nuclide.beta_plus_fraction, t)
        for t in tau
    ]

    mu = linear_attenuation_per_mm(phantom, 511.0, backend)
    recon_kernel = None
    if spec.psf_in_model and any(m in ("osem", "mlem") for m in spec.recon):
        recon_kernel = resolution_kernel(tracer_nuclide, scanner.fwhm_mm, voxel, grid.shape, backend)
    system = PETSystem.build(grid.shape, voxel, mu, scanner.n_views, n_k, backend, resolution_kernel=recon_kernel)
    lap("setup")

    # Positrons per mL over each frame, in tracer units, with and without the resolution blur.
    expected = xp.zeros((nx, ny, nz, n_frames), dtype=xp.float64, device=backend.device)
    blurred = xp.zeros((nx, ny, nz, n_frames), dtype=xp.float64, device=backend.device)
    for item in emitters:
        data = nuclide(positron_nuclide(item.agent))
        factors = [
            data.beta_plus_fraction * i / (tracer_nuclide.beta_plus_fraction * t)
            for i, t in zip(integrals(data, item.agent), tau)
        ]
        emission = item.carrier_ug_per_ml * (
            specific_activity_bq_per_ug(item.agent) * xp.asarray(factors, dtype=xp.float64, device=backend.device)
        )
        kernel = resolution_kernel(data, scanner.fwhm_mm, voxel, grid.shape, backend)
        expected = expected + emission
        blurred = blurred + FrameWise(fft_friendly_blur(kernel, grid.shape, backend), n_frames).apply(emission)
    lap("emission")

    # The FFT blur leaves round-off negatives (~1e-16 of the maximum) outside the body.
    trues = system.model(resolution=False).apply(xp.clip(blurred, 0.0, None))
    del blurred
    lap("projection")
    scatter, randoms_per_bin = scatter_and_randoms(
        trues, system.geometry, voxel[2], scanner.scatter_fraction, scanner.randoms_fraction, backend
    )
    background = scatter + randoms_per_bin
    lap("scatter_randoms")

    mean_prompts = trues + background
    check_nonnegative(mean_prompts, "PET expected prompts")
    prompts = xp.stack(
        [
            xp.astype(poisson_counts(mean_prompts[..., k], backend.rng(seed, PET_NOISE_STREAM, k), validate=False), xp.float32)
            for k in range(n_frames)
        ],
        axis=-1,
    )
    del mean_prompts
    lap("noise")

    images = {}
    for method in spec.recon:
        images[method] = reconstruct_pet(method, prompts, background, system, scanner, psf_in_model=spec.psf_in_model)
        lap(f"recon_{method}")

    sums = xp.stack(
        [xp.sum(a, axis=(0, 1, 2), dtype=xp.float64) for a in (trues, scatter, prompts)]
        + [xp.astype(randoms_per_bin, xp.float64) * float(system.geometry.n_angles * system.geometry.n_bins * nz)]
    )
    host = backend.to_host(sums).tolist()
    totals = {name: tuple(float(v) for v in row) for name, row in zip(("trues", "scatter", "prompts", "randoms"), host)}
    total_counts = {k: totals[k] for k in ("trues", "scatter", "randoms", "prompts")}

    tracer_delivery = delivery.agent(tracer.name)
    specific = specific_activity_bq_per_ug(tracer)
    injected_bq = tracer_delivery.injected_mass_ug * specific
    return PETAcquisition(
        tracer=tracer,
        nuclide=tracer_nuclide.name,
        emitters={item.agent.name: positron_nuclide(item.agent) for item in emitters},
        scanner=scanner,
        geometry=system.geometry,
        frame_start_s=starts,
        frame_duration_s=(duration,) * n_frames,
        decay_corrected=decay_corrected,
        injected_activity_bq=injected_bq,
        injected_mass_ug=float(tracer_delivery.injected_mass_ug),
        specific_activity_bq_per_ug=specific,
        images_bq_per_ml=images,
        recon_parameters={m: recon_parameters(m, scanner, spec.psf_in_model) for m in spec.recon},
        expected_image_bq_per_ml=xp.astype(expected, xp.float32),
        mu_511_per_mm=xp.astype(mu, xp.float32),
        prompts=prompts,
        expected_background=background,
        attenuation_factors=system.attenuation_factors,
        counts_per_unit_projection=tuple(n_k),
        total_counts=total_counts,
        suv_scale_g_per_bq=float(phantom.body_mass_g) / injected_bq if injected_bq > 0 else math.nan,
        timings_s=timings,
    )


__all__ = [
    "PET_NOISE_STREAM",
    "FrameWise",
    "PETSystem",
    "acquire_pet",
    "counts_per_unit_projection",
    "fft_friendly_blur",
    "recon_parameters",
    "reconstruct_pet",
    "resolution_kernel",
    "scatter_and_randoms",
    "specific_activity_bq_per_ug",
]
