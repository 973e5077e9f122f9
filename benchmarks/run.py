"""imagingsim benchmarks: one entry point for all of them.

    python benchmarks/run.py [--only NAME ...] [--quick] [--json PATH] [--backend numpy|cupy]

Every comparison is a ratio measured side by side in the same run (reference time / our
time), so machines of different speed give comparable figures. Absolute times are reported
with the machine they ran on. Unit tests never time anything; timing lives here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict]] = {}


def benchmark(func):
    BENCHMARKS[func.__name__] = func
    return func


def best_of(func, repeats: int) -> float:
    """Minimum wall time of ``repeats`` calls, s (the minimum is the least noisy estimator)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory_mb(func) -> tuple[float, object]:
    """Peak Python-heap memory (numpy buffers included) while ``func`` runs, MB."""
    tracemalloc.start()
    try:
        result = func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1e6, result


@benchmark
def simulate_default(args) -> dict:
    """`imagingsim simulate` on the default scenario in a fresh process: total and per-stage
    seconds (the CLI's own stage lines) and the peak resident memory of that process."""
    from compare_commits import REPO, run_once  # benchmarks/ is on sys.path when run as a script

    with TemporaryDirectory() as tmp:
        scenario = "mouse_peg_liposome"
        run = run_once(REPO, scenario, Path(tmp) / "ds", extra=["--set", "phantom.voxel_size_mm=1.0"] if args.quick else [])
        size_mb = sum(f.stat().st_size for f in (Path(tmp) / "ds").rglob("*") if f.is_file()) / 1e6
    return {
        "simulate_default_seconds": run["total"],
        "simulate_default_peak_rss_mb": round(run["peak_rss_mb"], 1),
        **{f"simulate_default_{stage.replace(' ', '_')}_seconds": seconds for stage, seconds in run["stages"].items()},
        "dataset_mb": round(size_mb, 2),
    }


@benchmark
def cohort_scaling(args) -> dict:
    """The same 4-subject cohort, side by side: a plain simulate_and_write of each subject (what
    `imagingsim simulate` runs), the cohort with 1 worker (in this process), on a running
    1-worker Dask cluster with imagingsim imported (the --scheduler path: the Dask path's
    overhead per subject) and with 2 workers (a LocalCluster started and stopped by the run).

    Also what a 2-worker run pays once (starting the cluster and importing imagingsim in its
    workers: ``cohort_2_workers_start_seconds``) and the cores one plain subject keeps busy
    (CPU time / wall time): a subject already overlaps its writing with its next stage, so 2
    workers on 2 cores can gain at most 2 / cores_busy over one worker.
    """
    import logging
    import os

    from dask.distributed import Client, LocalCluster

    from imagingsim.cohort import load_cohort
    from imagingsim.cohort.run import run_cohort
    from imagingsim.pipeline import simulate_and_write

    def imported() -> None:
        import imagingsim.cohort.run  # noqa: F401 - what the first task of a fresh worker imports

    def cluster(workers: int) -> LocalCluster:
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            silence_logs=logging.ERROR)

    voxel = "2.0" if args.quick else "1.0"
    cohort = load_cohort("mouse_epr_variability", subjects=4,
                         overrides=[f"phantom.voxel_size_mm={voxel}", 'modalities.enabled=["pet", "mri"]'])
    timings = {}
    environ = dict(os.environ)  # a LocalCluster's nannies leave their workers' variables here
    with TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), os.times()
        for number in range(1, 5):
            simulate_and_write(cohort.subject(number).scenario, Path(tmp) / f"plain{number}", backend=args.backend)
        timings["plain"] = time.perf_counter() - start
        cores_busy = (os.times().user - cpu.user + os.times().system - cpu.system) / timings["plain"]
        start = time.perf_counter()
        with cluster(2) as started, Client(started) as client:
            client.run(imported)
        timings["start"] = time.perf_counter() - start
        with cluster(1) as warm, Client(warm) as client:
            client.run(imported)
            start = time.perf_counter()
            run_cohort(cohort, Path(tmp) / "dask1", scheduler=warm.scheduler_address, backend=args.backend)
            timings["dask1"] = time.perf_counter() - start
        os.environ.clear()
        os.environ.update(environ)
        for workers in (1, 2):
            start = time.perf_counter()
            run_cohort(cohort, Path(tmp) / f"w{workers}", workers=workers, backend=args.backend)
            timings[workers] = time.perf_counter() - start
    return {
        "cohort_plain_seconds": round(timings["plain"], 2),
        "cohort_1_worker_seconds": round(timings[1], 2),
        "cohort_dask_1_worker_seconds": round(timings["dask1"], 2),
        "cohort_2_workers_seconds": round(timings[2], 2),
        "cohort_2_workers_start_seconds": round(timings["start"], 2),
        "cohort_speedup_2_workers": round(timings[1] / timings[2], 2),
        "cohort_speedup_2_workers_after_start": round(timings[1] / (timings[2] - timings["start"]), 2),
        "cohort_speedup_ceiling_2_workers": round(min(2, os.cpu_count() or 1) / cores_busy, 2),
        "cohort_plain_cores_busy": round(cores_busy, 2),
        "cohort_overhead_per_subject_percent": round(100.0 * (timings["dask1"] - timings["plain"]) / timings["plain"], 1),
        "cohort_1_worker_overhead_percent": round(100.0 * (timings[1] - timings["plain"]) / timings["plain"], 1),
    }


@benchmark
def random_field(args) -> dict:
    """Gaussian random field by FFT filtering vs scipy.ndimage.gaussian_filter of the same noise."""
    import numpy as np
    from scipy import ndimage

    from imagingsim.backend import get_backend
    from imagingsim.grid import ImageGrid
    from imagingsim.phantom.heterogeneity import gaussian_random_field

    be = get_backend(args.backend)
    shape = (64, 64, 64) if args.quick else (128, 128, 128)
    grid = ImageGrid(shape, (0.5, 0.5, 0.5))
    length_mm = 2.0
    ours = best_of(lambda: gaussian_random_field(be, grid, length_mm, be.rng(1)), 3)

    def reference_field():
        # Same covariance: filter sigma = l / sqrt(2) (in voxels), truncated at 4 sigma; the
        # noise is drawn inside both timings (ours pads it, so it draws a little more).
        noise = np.random.default_rng(1).standard_normal(shape)
        return ndimage.gaussian_filter(noise, length_mm / np.sqrt(2) / 0.5)

    reference = best_of(reference_field, 3)
    return {"grf_fft_vs_scipy_gaussian_filter": round(reference / ours, 2), "grf_shape": list(shape)}


def _tomography_problem(args):
    """The issue's reference problem: 64 slices of 256 x 256, 256 views over 180 degrees."""
    import numpy as np

    n, n_slices, n_views = (128, 16, 128) if args.quick else (256, 64, 256)
    # A smooth random object inside the inscribed circle (skimage's circle=True assumes it).
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.arange(n) - (n - 1) / 2, np.arange(n) - (n - 1) / 2, indexing="ij")
    inside = (x**2 + y**2) < (0.45 * n) ** 2
    volume = (rng.random((n, n, n_slices)) * inside[..., None]).astype(np.float32)
    theta_deg = np.arange(n_views) * 180.0 / n_views
    return volume, theta_deg


@benchmark
def projector(args) -> dict:
    """Joseph SpMM projector, its adjoint and FBP vs skimage radon/iradon looped over slices."""
    import numpy as np
    from skimage.transform import iradon, radon

    from imagingsim.backend import get_backend
    from imagingsim.backend._numpy import cpu_threads
    from imagingsim.projectors import ParallelBeamGeometry, ParallelProjector, PixelBackprojector, clear_matrix_cache
    from imagingsim.recon import fbp

    be = get_backend(args.backend)
    volume, theta_deg = _tomography_problem(args)
    n, _, n_slices = volume.shape
    # Same sampling as skimage with circle=True: n bins of one pixel, centred.
    geometry = ParallelBeamGeometry.covering((n, n), (1.0, 1.0), len(theta_deg), n_bins=n)
    device_volume = be.from_host(volume)

    def skimage_forward():
        return np.stack([radon(volume[:, :, k], theta_deg, circle=True) for k in range(n_slices)], axis=-1)

    sinogram_host = skimage_forward()
    repeats = 1 if args.quick else 2
    reference_forward = best_of(skimage_forward, repeats)
    # skimage's (bin, view) sinogram, as (view, bin, slice) for our operators (timing only).
    sinogram = be.from_host(np.ascontiguousarray(np.transpose(sinogram_host, (1, 0, 2)), dtype=np.float32))

    # Cold: a fresh matrix (build + first product; the transpose is built by the first
    # adjoint). Warm: the cached matrix, as in every reconstruction that reuses it.
    clear_matrix_cache()
    start = time.perf_counter()
    op = ParallelProjector(geometry, n_slices, be)
    build = time.perf_counter() - start
    cold_forward = build + best_of(lambda: op.apply(device_volume), 1)
    cold_adjoint = best_of(lambda: op.adjoint(sinogram), 1)
    forward = best_of(lambda: op.apply(device_volume), 3)
    adjoint = best_of(lambda: op.adjoint(sinogram), 3)

    reference_adjoint = best_of(
        lambda: [iradon(sinogram_host[:, :, k], theta_deg, filter_name=None, circle=True) for k in range(n_slices)],
        repeats,
    )
    reference_fbp = best_of(
        lambda: [iradon(sinogram_host[:, :, k], theta_deg, filter_name="ramp", circle=True) for k in range(n_slices)],
        repeats,
    )
    start = time.perf_counter()
    backprojector = PixelBackprojector(geometry, n_slices, be)
    build_bp = time.perf_counter() - start
    cold_fbp = build_bp + best_of(lambda: fbp(sinogram, backprojector, filter_name="ramp"), 1)
    ours_fbp = best_of(lambda: fbp(sinogram, backprojector, filter_name="ramp"), 3)
    return {
        "projector_forward_vs_skimage_radon": round(reference_forward / forward, 1),
        "projector_adjoint_vs_skimage_iradon_unfiltered": round(reference_adjoint / adjoint, 1),
        "fbp_vs_skimage_iradon": round(reference_fbp / ours_fbp, 1),
        "projector_forward_cold_vs_skimage_radon": round(reference_forward / cold_forward, 1),
        "projector_adjoint_cold_vs_skimage_iradon_unfiltered": round(reference_adjoint / cold_adjoint, 1),
        "fbp_cold_vs_skimage_iradon": round(reference_fbp / cold_fbp, 1),
        "projector_build_seconds": round(build, 3),
        "backprojector_build_seconds": round(build_bp, 3),
        "projector_forward_seconds": round(forward, 4),
        "projector_adjoint_seconds": round(adjoint, 4),
        "fbp_seconds": round(ours_fbp, 4),
        "skimage_radon_seconds": round(reference_forward, 3),
        "skimage_iradon_unfiltered_seconds": round(reference_adjoint, 3),
        "skimage_iradon_seconds": round(reference_fbp, 3),
        "projector_nnz": int(op.matrix.nnz),
        "projector_problem": f"{n_slices} slices of {n}x{n}, {len(theta_deg)} views over 180 deg, {n} bins, float32",
        "projector_threads": cpu_threads() if args.backend == "numpy" else "gpu",
        "projector_timing": "warm = cached matrix (best of 3); cold = fresh build + first product; "
        f"skimage single-threaded, best of {repeats}",
    }


@benchmark
def pet_frame(args) -> dict:
    """One PET frame of the default scenario: forward model, Poisson noise and OSEM 4 it x 8 subsets."""
    import imagingsim
    from imagingsim.modalities.base import acquisition_context
    from imagingsim.modalities.pet.acquire import acquire_pet
    from imagingsim.pipeline import simulate
    from imagingsim.projectors import clear_matrix_cache

    overrides = [
        "schedule.times_h=[24.0]",
        'modalities.pet.recon=["osem"]',
        "modalities.pet.iterations=4",
        "modalities.pet.subsets=8",
    ] + (["phantom.voxel_size_mm=1.0"] if args.quick else [])
    scenario = imagingsim.load_scenario(None, overrides)
    # Phantom and delivery are not part of the frame: simulate them with the modality off.
    subject = simulate(scenario.model_copy(update={"modalities": scenario.modalities.model_copy(update={"enabled": []})}),
                       backend=args.backend)

    def frame():
        clear_matrix_cache()  # the projector build counts: a fresh process pays it once
        return acquire_pet(acquisition_context("pet", subject.phantom, subject.delivery, scenario, subject.backend, subject.seed))

    seconds = best_of(frame, 3)
    peak_mb, acquisition = peak_memory_mb(frame)
    return {
        "pet_frame_seconds": round(seconds, 3),
        "pet_frame_peak_memory_mb": round(peak_mb, 1),
        "pet_frame_stage_seconds": {k: round(v, 3) for k, v in acquisition.timings_s.items()},
        "pet_frame_grid": list(subject.phantom.grid.shape),
        "pet_frame_sinogram": [acquisition.geometry.n_angles, acquisition.geometry.n_bins],
    }


# --- MRI benchmarks (imagingsim.modalities.mri.acquire) ---


@benchmark
def mri_subject(args) -> dict:
    """One MRI session of mouse_targeted_spion (8 echoes, 4 coils, 4x variable density, noise, CG-SENSE 30 it,
    R2* fit); batched FFT vs a numpy.fft loop over echoes and coils; batched CG vs scipy cg per echo, on the
    acquisition's own mask, coils and k-space, with the same hybrid (2-D FFT over ky, kz) normal operator."""
    import numpy as np
    from scipy.sparse.linalg import LinearOperator as ScipyOperator
    from scipy.sparse.linalg import cg as scipy_cg

    import imagingsim
    from imagingsim.modalities.base import acquisition_context
    from imagingsim.modalities.mri.acquire import acquire_mri
    from imagingsim.modalities.mri.recon import cg_sense, encoding_operator
    from imagingsim.pipeline import simulate

    overrides = [
        "schedule.times_h=[24.0]",
        "modalities.mri.n_coils=4",
        'modalities.mri.undersampling="variable_density"',
        "modalities.mri.acceleration=4.0",
    ] + (["phantom.voxel_size_mm=1.0"] if args.quick else [])
    scenario = imagingsim.load_scenario("mouse_targeted_spion", overrides)
    # Phantom and delivery are not part of the session: simulate them with the modality off.
    subject = simulate(scenario.model_copy(update={"modalities": scenario.modalities.model_copy(update={"enabled": []})}),
                       backend=args.backend)
    be = subject.backend

    def session():
        return acquire_mri(acquisition_context("mri", subject.phantom, subject.delivery, scenario, be, subject.seed))

    seconds = best_of(session, 2)
    peak_mb, acquisition = peak_memory_mb(session)

    # Reference 1: the forward encoding (all echoes x coils) as a numpy.fft loop vs our batched operator.
    grid = subject.phantom.grid
    spec = scenario.modalities.mri
    n_echoes = len(spec.echo_times_ms)
    fft_repeats, cg_repeats = 3, 2  # the same best-of counts for ours and the reference
    rng = np.random.default_rng(0)
    images_host = (rng.standard_normal((n_echoes,) + grid.shape)
                   + 1j * rng.standard_normal((n_echoes,) + grid.shape)).astype(np.complex64)
    maps = acquisition.coil_maps
    maps_host = np.asarray(be.to_host(maps))
    images = be.from_host(images_host)
    forward = encoding_operator(grid.shape, be, coil_maps=maps, n_batch=n_echoes)
    ours_fft = best_of(lambda: be.to_host(forward.apply(images)), fft_repeats)

    def reference_encoding():
        return np.stack([np.stack([np.fft.fftn(maps_host[c] * images_host[e], norm="ortho")
                                   for c in range(spec.n_coils)]) for e in range(n_echoes)])

    reference_fft = best_of(reference_encoding, fft_repeats)
    ours_k = np.asarray(be.to_host(forward.apply(images)))
    fft_difference = float(np.max(np.abs(ours_k - reference_encoding())) / np.max(np.abs(ours_k)))

    # Reference 2: 30 CG iterations on the acquisition's own data (mask, coils, k-space of session 0),
    # batched over echoes on the device vs scipy cg echo by echo on a LinearOperator wrapping the same
    # hybrid normal operator E^H E + lambda I (2-D FFT over ky, kz after the inverse FFT along x).
    mask = acquisition.mask
    kspace = acquisition.kspace[0, ...]
    lam = spec.cg_regularization
    results = {}

    def ours():
        results["ours"] = be.to_host(cg_sense(kspace, be, mask=mask, coil_maps=maps, iterations=30,
                                              regularization=lam))

    ours_cg = best_of(ours, cg_repeats)
    single = encoding_operator(grid.shape, be, mask=mask, coil_maps=maps, n_batch=1, hybrid=True)
    hybrid_host = np.asarray(be.to_host(be.fft.ifft(kspace, axis=-3, norm="ortho")))

    def normal(v):
        x = be.from_host(np.reshape(v, (1,) + grid.shape).astype(np.complex64), count=False)
        return np.asarray(be.to_host(single.adjoint(single.apply(x)) + lam * x, count=False)).ravel()

    n = int(np.prod(grid.shape))
    op = ScipyOperator((n, n), matvec=normal, dtype=np.complex64)

    def reference():
        solutions = []
        for e in range(n_echoes):
            rhs = np.asarray(be.to_host(single.adjoint(be.from_host(hybrid_host[e:e + 1], count=False)), count=False))
            x, _ = scipy_cg(op, rhs.ravel(), rtol=0.0, atol=0.0, maxiter=30)
            solutions.append(np.reshape(x, grid.shape))
        results["reference"] = np.stack(solutions)

    reference_cg = best_of(reference, cg_repeats)
    ours_image, reference_image = np.asarray(results["ours"]), results["reference"]
    cg_difference = float(np.max(np.abs(ours_image - reference_image)) / np.max(np.abs(reference_image)))
    return {
        "mri_subject_seconds": round(seconds, 3),
        "mri_subject_peak_memory_mb": round(peak_mb, 1),
        "mri_subject_stage_seconds": {k: round(v, 3) for k, v in acquisition.timings_s.items()},
        "mri_subject_grid": list(grid.shape),
        "mri_subject_acceleration": round(acquisition.acceleration, 4),
        "mri_batched_fft_vs_numpy_fft_loop": round(reference_fft / ours_fft, 2),
        "mri_batched_fft_max_relative_difference": fft_difference,
        "mri_cg_sense_vs_scipy_cg_per_echo": round(reference_cg / ours_cg, 2),
        "mri_cg_sense_max_relative_difference": cg_difference,
        "mri_cg_sense_30it_seconds": round(ours_cg, 3),
        "mri_cg_sense_comparison": (
            "like for like: both solve E^H E + lambda I on the acquisition's mask, coil maps and session-0 k-space "
            "with the same hybrid operator (inverse FFT along x once, 2-D FFTs over ky, kz), 30 iterations, "
            "complex64; ours batches the 8 echoes with per-echo steps on the device, the reference runs scipy cg "
            "echo by echo through a LinearOperator (host round trip per matvec on a GPU backend)"
        ),
        "mri_subject_repeats": {"session": 2, "fft": fft_repeats, "cg": cg_repeats},
        "mri_subject_problem": f"{n_echoes} echoes x {spec.n_coils} coils on {list(grid.shape)}, complex64",
    }


# --- NIRF benchmarks (imagingsim.modalities.nirf.acquire) ---


@benchmark
def nirf_frame(args) -> dict:
    """One NIRF time point of mouse_targeted_spion; the batched layer-PSF FFT vs a scipy fftconvolve loop."""
    import numpy as np
    from scipy.signal import fftconvolve

    import imagingsim
    from imagingsim.modalities.base import acquisition_context
    from imagingsim.modalities.nirf.acquire import acquire_nirf
    from imagingsim.modalities.nirf.channel import imaging_channel
    from imagingsim.modalities.nirf.surface import surface_model, to_camera_frame
    from imagingsim.pipeline import simulate

    overrides = ["schedule.times_h=[24.0]", 'modalities.enabled=["nirf"]'] + (
        ["phantom.voxel_size_mm=1.0"] if args.quick else []
    )
    scenario = imagingsim.load_scenario("mouse_targeted_spion", overrides)
    # Phantom and delivery are not part of the frame: simulate them with the modality off.
    off = scenario.modalities.model_copy(update={"enabled": []})
    subject = simulate(scenario.model_copy(update={"modalities": off}), backend=args.backend)
    be = subject.backend

    def frame():
        return acquire_nirf(acquisition_context("nirf", subject.phantom, subject.delivery, scenario, be, subject.seed))

    seconds = best_of(frame, 3)
    acquisition = frame()
    repeats = 5  # the same best-of count for the operator and its reference

    # The convolution step alone: every layer's source convolved with its own PSF and summed.
    spec = scenario.modalities.nirf
    dye, window, band, _, imaged = imaging_channel(scenario.modalities.nirf, subject.delivery)
    model = surface_model(subject.phantom, spec.view, spec.mode, dye.excitation_nm, band.centre_nm, window, be)
    dye_map = subject.delivery.agent(imaged[0]).carrier_ug_per_ml[..., 0]
    layers = model.layers(to_camera_frame(dye_map, spec.view, be.xp)) * model.excitation
    ours = best_of(lambda: be.to_host(model.blur.apply(layers)), repeats)
    host_layers, host_kernels = be.to_host(layers), be.to_host(model.blur.kernels)

    def reference():
        # scipy's 'same' mode centres an odd kernel exactly as the operator does.
        return sum(fftconvolve(host_layers[n], host_kernels[n], mode="same") for n in range(host_layers.shape[0]))

    reference_seconds = best_of(reference, repeats)
    ours_image = be.to_host(model.blur.apply(layers))
    agreement = float(np.max(np.abs(reference() - ours_image)) / np.max(np.abs(ours_image)))
    return {
        "nirf_frame_seconds": round(seconds, 3),
        "nirf_frame_stage_seconds": {k: round(v, 4) for k, v in acquisition.timings_s.items()},
        "nirf_frame_grid": list(subject.phantom.grid.shape),
        "nirf_frame_layers": model.n_layers,
        "nirf_layer_blur_seconds": round(ours, 4),
        "nirf_layer_blur_repeats": repeats,
        "nirf_layer_blur_vs_scipy_fftconvolve_loop": round(reference_seconds / ours, 2),
        "nirf_layer_blur_max_relative_difference": agreement,
    }


# --- SPECT benchmarks (imagingsim.modalities.spect.projector) ---


def _spect_problem(args):
    """128^3 (64^3 quick) voxels of 4 mm, 120 views (60 quick): a water cylinder with hot spheres, LEHR, 99mTc."""
    import numpy as np

    from imagingsim.modalities.spect.physics import collimator
    from imagingsim.physics.attenuation import mass_attenuation_cm2_per_g

    n, n_views = (64, 60) if args.quick else (128, 120)
    pixel = 4.0
    c = (np.arange(n) - (n - 1) / 2.0) * pixel
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    body = (x**2 + (y / 0.8) ** 2) < (0.4 * n * pixel) ** 2
    mu = (body * mass_attenuation_cm2_per_g("water", 140.5) / 10.0).astype(np.float32)
    activity = body * 1.0
    for cx, cy, r in ((0.15, 0.1, 0.06), (-0.2, -0.05, 0.04)):
        activity += 4.0 * (((x - cx * n * pixel) ** 2 + (y - cy * n * pixel) ** 2 + z**2) < (r * n * pixel) ** 2)
    response = collimator("LEHR").response(140.5, 3.8)
    return activity.astype(np.float32), mu, pixel, n_views, response


@benchmark
def spect_osem_iteration(args) -> dict:
    """One SPECT OSEM iteration (every view forward and back, attenuation + collimator) vs scipy.ndimage.

    The reference is the textbook rotation-based projector written with scipy.ndimage: per
    view, ``rotate`` the image (order 1), multiply by the attenuation factors, blur every
    depth plane with ``gaussian_filter`` at its distance's sigma and sum; the adjoint
    blurs, attenuates and rotates back. Attenuation factors are precomputed for both
    (outside the timing), as both implementations keep them.
    """
    import numpy as np
    from scipy import ndimage

    from imagingsim.backend import get_backend
    from imagingsim.backend._numpy import cpu_threads
    from imagingsim.modalities.spect.projector import SPECTGeometry, SPECTProjector
    from imagingsim.operators import Sum
    from imagingsim.projectors import clear_matrix_cache
    from imagingsim.recon import osem

    be = get_backend(args.backend)
    activity, mu, pixel, n_views, response = _spect_problem(args)
    n = activity.shape[0]
    n_subsets = 10
    geometry = SPECTGeometry.covering((n, n), pixel, n_views)
    # The data first (its attenuation tables freed before the subsets' are built).
    full = SPECTProjector(geometry, n, pixel, be, mu_per_mm=be.from_host(mu), collimator=response)
    data = full.apply(be.from_host(activity))
    del full
    clear_matrix_cache()
    start = time.perf_counter()
    subsets = geometry.subset_views(n_subsets)
    models = [Sum([SPECTProjector(geometry.views(v), n, pixel, be, mu_per_mm=be.from_host(mu), collimator=response)])
              for v in subsets]
    build = time.perf_counter() - start
    data_subsets = [be.xp.take(data, be.asarray(v, dtype=be.xp.int64), axis=0) for v in subsets]
    # One iteration after the sensitivity images (computed once per reconstruction).
    ours = best_of(lambda: osem(data_subsets, models, [None] * n_subsets, 1), 1)
    ours_two = best_of(lambda: osem(data_subsets, models, [None] * n_subsets, 2), 1)
    per_iteration = ours_two - ours

    # The ndimage reference: attenuation factors in each view's rotated frame, precomputed.
    angles = geometry.angles_deg
    distances = np.asarray(geometry.orbit_radius_mm - (np.arange(n) - (n - 1) / 2.0) * pixel)
    sigmas = [response.sigma_mm(d) / pixel for d in distances]

    def rotated(volume, angle):
        # Rotating the image by -angle puts the camera direction (u) along axis 1.
        return ndimage.rotate(volume, -angle, axes=(0, 1), reshape=False, order=1)

    factors = []
    for angle in angles:
        path = rotated(mu, angle) * pixel
        beyond = np.flip(np.cumsum(np.flip(path, axis=1), axis=1), axis=1) - 0.5 * path
        factors.append(np.exp(-beyond).astype(np.float32))

    def reference_forward(volume):
        views = []
        for angle, a in zip(angles, factors):
            planes = rotated(volume, angle) * a
            views.append(sum(ndimage.gaussian_filter(planes[:, j, :], sigmas[j], truncate=4.0) for j in range(n)))
        return np.stack(views)

    def reference_adjoint(projection):
        total = np.zeros_like(activity)
        for k, (angle, a) in enumerate(zip(angles, factors)):
            planes = np.stack([ndimage.gaussian_filter(projection[k], sigmas[j], truncate=4.0) for j in range(n)], axis=1)
            total += ndimage.rotate(planes * a, angle, axes=(0, 1), reshape=False, order=1)
        return total

    measured = reference_forward(activity)
    # One iteration's work: a forward projection and the back projection of the ratio.
    reference = best_of(lambda: reference_adjoint(measured / np.maximum(reference_forward(activity), 1e-9)), 1)
    return {
        "spect_osem_iteration_seconds": round(per_iteration, 3),
        "spect_osem_vs_ndimage_rotate_gaussian": round(reference / per_iteration, 1),
        "spect_projector_build_seconds": round(build, 3),
        "spect_ndimage_iteration_seconds": round(reference, 3),
        "spect_problem": f"{n}^3 voxels of {pixel:g} mm, {n_views} views over 360 deg, {n_subsets} subsets, "
        f"LEHR 99mTc, attenuation + collimator response, float32",
        "spect_timing": "ours: 2 iterations minus 1 (the sensitivity images once); reference: one forward and one "
        "back projection of every view (attenuation precomputed for both)",
        "spect_response_fwhm_mm_range": [round(response.fwhm_mm(float(d)), 2) for d in (distances[-1], distances[0])],
        "spect_threads": cpu_threads() if args.backend == "numpy" else "gpu",
    }


# --- CT benchmarks (imagingsim.modalities.ct.acquire) ---


@benchmark
def ct_scan(args) -> dict:
    """One polyenergetic CT scan (forward, Poisson noise, log, water pre-correction, FBP) at the clinical preset.

    256^2 x 64 slices of 1 mm (128^2 x 16 quick): a water cylinder with two cortical-bone
    rods and a 5 mg/mL gold insert. Ours projects each basis material once and sums the
    energies on the sinogram; the reference is the direct approach with the same projector,
    noise and FBP: project mu(E) once per energy bin of the spectrum.
    """
    import numpy as np

    from imagingsim.backend import get_backend
    from imagingsim.modalities.ct import counts as ct_counts
    from imagingsim.modalities.ct import recon as ct_recon
    from imagingsim.modalities.ct import system as ct_system
    from imagingsim.modalities.ct.spec import CTSpec
    from imagingsim.physics.noise import poisson_counts
    from imagingsim.projectors import ParallelBeamGeometry, ParallelProjector, clear_matrix_cache

    be = get_backend(args.backend)
    xp = be.xp
    n, nz = (128, 16) if args.quick else (256, 64)
    pixel = 1.0
    c = (np.arange(n) - (n - 1) / 2.0) * pixel
    x, y = np.meshgrid(c, c, indexing="ij")
    body = (x**2 + y**2) < (0.4 * n * pixel) ** 2
    bone = ((x - 0.2 * n) ** 2 + y**2 < (0.05 * n) ** 2) | ((x + 0.2 * n) ** 2 + y**2 < (0.05 * n) ** 2)
    gold = (x**2 + (y - 0.2 * n) ** 2) < (0.05 * n) ** 2
    water = body & ~bone
    maps = np.stack([water * 1.0, bone * 1.92, gold * 5e-3], axis=-1)[:, :, None, :].repeat(nz, axis=2)
    device_maps = be.from_host(maps.astype(np.float32))
    system = ct_system.ct_system_params(CTSpec(system="clinical"))
    spectrum = ct_system.scan_spectrum(system)
    geometry = ParallelBeamGeometry.covering((n, n), (pixel, pixel), system.n_views)
    photons = ct_system.photons_per_detector_bin(spectrum, system, geometry.bin_size_mm, pixel)
    i0 = float(np.sum(photons))
    calibration = ct_system.water_calibration(spectrum, system.calibration_diameter_mm, i0)
    table = ct_counts.attenuation_coefficients(("water", "cortical_bone"), ("gold",), spectrum.energies_keV)
    sino_shape = (geometry.n_angles, geometry.n_bins, nz)
    clear_matrix_cache()
    ParallelProjector(geometry, 1, be)  # the matrix build is shared by both: time it apart
    rng_key = (1, 2)

    def ours():
        lines = ct_counts.project_basis(device_maps, geometry, be)
        counts = xp.reshape(ct_counts.polyenergetic_counts([lines], [table], photons, be), sino_shape + (1,))
        noisy = xp.astype(poisson_counts(counts, be.rng(*rng_key), validate=False), xp.float32)
        return ct_recon.reconstruct_ct(noisy, i0, calibration, geometry, system, be)

    def reference():
        projector = ParallelProjector(geometry, nz, be)
        counts = xp.zeros(sino_shape, dtype=xp.float32, device=be.device)
        for e, n0 in enumerate(photons):
            mu = sum(device_maps[..., k] * table[e][k] for k in range(3))
            counts = counts + n0 * xp.exp(-projector.apply(mu))
        noisy = xp.astype(poisson_counts(counts[..., None], be.rng(*rng_key), validate=False), xp.float32)
        return ct_recon.reconstruct_ct(noisy, i0, calibration, geometry, system, be)

    ours_seconds = best_of(ours, 2)
    reference_seconds = best_of(reference, 1)
    hu = be.to_host(ours())[..., nz // 2, 0]
    hu = (hu - calibration.mu_water_per_mm) * (1000.0 / calibration.mu_water_per_mm)
    inner = (x**2 + y**2) < (0.1 * n) ** 2
    return {
        "ct_scan_seconds": round(ours_seconds, 3),
        "ct_scan_vs_per_energy_projection": round(reference_seconds / ours_seconds, 1),
        "ct_per_energy_reference_seconds": round(reference_seconds, 3),
        "ct_energy_bins": len(photons),
        "ct_water_centre_hu": round(float(hu[inner].mean()), 1),
        "ct_problem": f"{nz} slices of {n}x{n} (1 mm), {system.n_views} views over 180 deg, {system.kvp:g} kVp, "
        f"{len(photons)} energy bins, water + bone + gold, float32",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--quick", action="store_true", help="smaller problems (smoke run)")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "cupy"))
    args = parser.parse_args(argv)
    results: dict = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "backend": args.backend,
        "quick": args.quick,
    }
    for name in args.only or sorted(BENCHMARKS):
        print(f"{name} ...", file=sys.stderr, flush=True)
        figures = BENCHMARKS[name](args)
        print(json.dumps({name: figures}), flush=True)
        results.update(figures)  # one flat JSON object: every figure has its own unique key
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
