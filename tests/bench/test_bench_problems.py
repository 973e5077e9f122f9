"""Each modality's benchmark problem: the contract of its attributes, the adjoint of its model on
every backend, its realisations drawn with the acquisition's own noise streams, and its model
against the simulation's expectation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from imagingsim.modalities import registry
from imagingsim.modalities.base import acquisition_context
from imagingsim.operators import check_adjoint
from imagingsim.pipeline import load_scenario, simulate
from imagingsim.recon.problem import ProblemSource, ReconProblem

SMALL = ("phantom.voxel_size_mm=2.0", "schedule.times_h=[24.0]")
#: The modalities with a benchmark problem, each with a scenario that runs it (coils and
#: undersampling for MRI, so the mask and maps are inside the model).
EXAMPLES = {
    "pet": ("mouse_peg_liposome", ('modalities.enabled=["pet"]',)),
    "ct": ("mouse_gold_spect_ct", ('modalities.enabled=["ct"]', "modalities.ct.n_views=32")),
    "spect": ("mouse_gold_spect_ct", ('modalities.enabled=["ct", "spect"]', "modalities.spect.n_views=16")),
    "mri": ("mouse_peg_liposome", ('modalities.enabled=["mri"]', "modalities.mri.n_coils=4",
                                   "modalities.mri.undersampling=random", "modalities.mri.acceleration=2.0")),
}
CONTRACT = ("modality", "data", "additive", "multiplicative", "image_shape", "voxel_size_mm", "affine", "units",
            "mask", "coil_maps")


def _source(name, backend):
    scenario_name, overrides = EXAMPLES[name]
    subject = simulate(load_scenario(scenario_name, [*overrides, *SMALL]), backend=backend)
    modality = registry.get(name)
    inputs = {r: subject.acquisitions[r] for r in modality.requires if r in subject.acquisitions}
    ctx = acquisition_context(name, subject.phantom, subject.delivery, subject.scenario, subject.backend, subject.seed,
                              **inputs)
    return subject, modality.recon_problem(ctx, subject.acquisitions[name])


def _names(obj, depth: int = 0) -> set[str]:
    """Attribute names reachable from ``obj`` through dataclasses and objects (two levels)."""
    if obj is None or depth > 2 or isinstance(obj, (int, float, str, tuple, list)):
        return set()
    fields = vars(obj) if hasattr(obj, "__dict__") else {}
    if hasattr(obj, "model_dump"):
        fields = dict(obj)
    names = set(fields)
    for value in fields.values():
        if dataclasses.is_dataclass(value) or hasattr(value, "model_dump"):
            names |= _names(value, depth + 1)
    return names


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_problem_contract_adjoint_and_realisations(name, backend):
    if backend.name == "cupy":
        pytest.skip("the GPU runs of the benchmark problems are the cupy contract tests")
    subject, source = _source(name, backend)
    assert isinstance(source, ProblemSource) and source.modality == name
    problem = source.draw(subject.seed, 1.0)
    assert isinstance(problem, ReconProblem)
    for attribute in CONTRACT:
        assert hasattr(problem, attribute), attribute
    assert problem.xp is backend.xp and problem.modality == name
    # the plug-in never sees the truth: no field of the problem, nor of its native objects, holds it
    assert not any("truth" in f.name for f in dataclasses.fields(problem))
    for name_in_native in _names(problem.native):
        assert not any(word in name_in_native for word in ("truth", "true", "expected_image")), name_in_native
    assert tuple(problem.image_shape) == tuple(source.recon_grid.shape)
    assert source.truth.shape == tuple(source.truth_grid.shape) == source.labels.shape
    assert tuple(problem.data.shape) == problem.operator.out_shape
    assert problem.operator.in_shape == tuple(problem.image_shape)

    # the dot test of the model the plug-ins get (float32 operators: 1e-7 relative rounding)
    complex_data = backend.xp.isdtype(problem.data.dtype, "complex floating")
    mismatch = check_adjoint(problem.operator, dtype=backend.xp.complex64 if complex_data else backend.xp.float32)
    assert mismatch < 1e-5

    # realisation at the subject's seed and full counts = the data the simulation acquired
    acquisition = subject.acquisitions[name]
    data = backend.to_host(problem.data)
    if name == "pet":
        assert np.array_equal(data, backend.to_host(acquisition.prompts[..., 0]))
    elif name == "spect":
        assert np.array_equal(data, backend.to_host(acquisition.projections[..., 0]))
        assert source.recon_grid != source.truth_grid  # reconstructed on the coarser grid
    elif name == "mri":
        assert np.array_equal(data, backend.to_host(acquisition.kspace[0, 0, ...]))
        assert problem.mask is not None and problem.coil_maps is not None
    else:
        from imagingsim.modalities.ct.recon import line_integrals_from_counts, water_precorrect

        lines = line_integrals_from_counts(acquisition.measured_counts[..., 0], acquisition.i0_photons, backend)
        if acquisition.system.water_precorrection:
            lines = water_precorrect(lines, acquisition.calibration, backend)
        assert np.array_equal(data, backend.to_host(lines))
    # another seed is another realisation of the same scan
    other = backend.to_host(source.draw(subject.seed + 1, 1.0).data)
    assert other.shape == data.shape and not np.array_equal(other, data)


def test_pet_model_reproduces_the_expected_counts(numpy_backend):
    """``multiplicative * forward(truth) + additive`` is the simulation's expected prompts (one
    emitter: the same positron range and PSF), and the draws are Poisson about it.

    The totals agree within 5 Poisson sd plus 1e-4 (float32 sums). Per bin, the problem's model
    (the PSF applied on the sinogram) and the simulation's (on the image) differ by about 0.1 %
    rms (:meth:`PETSystem.model`): invisible under Poisson noise at low counts, where the
    chi^2 per bin of a matched Poisson model is 1, but not at the scan's 2e4 counts per bin.
    """
    subject, source = _source("pet", numpy_backend)
    truth = numpy_backend.from_host(source.truth, dtype=numpy_backend.xp.float32)
    for scale in (0.01, 1.0, 100.0):
        problem = source.draw(subject.seed, scale)
        expected = problem.multiplicative * problem.forward(truth) + problem.additive
        total, measured = float(np.sum(expected, dtype=np.float64)), float(np.sum(problem.data, dtype=np.float64))
        assert abs(measured - total) < 5.0 * np.sqrt(total) + 1e-4 * total
        if scale == 0.01:
            positive = expected > 0
            chi2 = np.mean((problem.data[positive] - expected[positive]) ** 2 / expected[positive])
            assert 0.95 < chi2 < 1.05, chi2


def test_a_frame_outside_the_acquisition_is_refused_in_one_line():
    from imagingsim.recon.problem import check_frame

    check_frame("pet", 0, 1, "frames")
    for frame in (-1, 2):
        with pytest.raises(ValueError, match=rf"^pet frame {frame} out of range: the acquisition has 2 frames$"):
            check_frame("pet", frame, 2, "frames")
