"""The backend layer: selection, host transfers, seeded generators, strict-device guards."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from imagingsim.backend import BackendError, backend_of, get_backend


def test_unknown_backend_is_one_line_error():
    with pytest.raises(BackendError, match="backend must be one of"):
        get_backend("tpu")


def test_cupy_without_gpu_is_one_line_error():
    from imagingsim.backend import cupy_status

    if cupy_status()[0]:
        pytest.skip("a GPU is usable here")
    with pytest.raises(BackendError) as info:
        get_backend("cupy")
    assert "\n" not in str(info.value) and "cupy" in str(info.value)


def test_auto_falls_back_to_numpy_without_gpu():
    from imagingsim.backend import cupy_status

    expected = "cupy" if cupy_status()[0] else "numpy"
    assert get_backend("auto").name == expected


def test_round_trip_and_counters(backend):
    host = np.arange(12.0).reshape(3, 4)
    dev = backend.from_host(host)
    assert backend_of(dev) is backend
    np.testing.assert_array_equal(backend.to_host(dev), host)
    assert (backend.transfers.uploads, backend.transfers.downloads) == (1, 1)


def test_generator_is_reproducible_per_key(backend):
    a = backend.to_host(backend.rng(7, 1).standard_normal((64,)))
    b = backend.to_host(backend.rng(7, 1).standard_normal((64,)))
    c = backend.to_host(backend.rng(7, 2).standard_normal((64,)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_poisson_mean_equals_variance(backend):
    # 200k draws: the standard error of the sample mean and variance is < 0.5 % at lam = 20.
    lam = backend.xp.full((200_000,), 20.0, dtype=backend.xp.float64, device=backend.device)
    counts = backend.to_host(backend.rng(3).poisson(lam))
    assert abs(counts.mean() - 20.0) / 20.0 < 0.01
    assert abs(counts.var() - 20.0) / 20.0 < 0.02
    zero = backend.zeros((100,))
    assert backend.to_host(backend.rng(3).poisson(zero)).sum() == 0


def test_strict_device_refuses_implicit_sync(backend):
    if backend.name != "strict":
        pytest.skip("guards apply to the strict backend")
    x = backend.asarray([1.0, 2.0])
    for convert in (bool, float, int):
        with pytest.raises(RuntimeError, match="implicit"):
            convert(backend.xp.sum(x))
    assert backend.scalar(backend.xp.sum(x)) == 3.0  # the explicit path works


def test_strict_device_refuses_host_mixing():
    strict = get_backend("strict")
    with pytest.raises((ValueError, TypeError)):
        strict.asarray([1.0]) + strict.xp.asarray([1.0])  # CPU_DEVICE array


def test_strict_ndimage_shim_counts_round_trips(backend):
    x = backend.rng(1).standard_normal((8, 8, 8))
    backend.ndimage.gaussian_filter(x, 1.0)
    assert backend.transfers.round_trips == (1 if backend.name == "strict" else 0)


def _random_sparse(rows, cols, density, seed):
    from scipy import sparse

    return sparse.random(rows, cols, density=density, random_state=seed, format="coo")


@pytest.mark.parametrize("columns", [None, 5])
def test_sparse_matrix_products_match_dense_and_are_adjoint(backend, columns):
    # Dot test <A x, y> = <x, A^T y> in float64: rounding alone is ~1e-15 relative.
    host = _random_sparse(40, 30, 0.2, seed=4)
    matrix = backend.sparse_matrix(host)
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((30,) if columns is None else (30, columns))
    y_host = rng.standard_normal((40,) if columns is None else (40, columns))
    ax = backend.to_host(matrix.apply(backend.from_host(x_host)))
    aty = backend.to_host(matrix.adjoint(backend.from_host(y_host)))
    dense = host.toarray()
    np.testing.assert_allclose(ax, dense @ x_host, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(aty, dense.T @ y_host, rtol=1e-12, atol=1e-12)
    lhs, rhs = float(np.sum(ax * y_host)), float(np.sum(x_host * aty))
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)
    assert matrix.shape == (40, 30)
    assert backend.transfers.round_trips == (2 if backend.name == "strict" else 0)


def test_broken_cupy_warns_once_and_falls_back(monkeypatch):
    import sys
    import types
    import warnings

    import imagingsim.backend as backend_module

    broken = types.ModuleType("cupy")
    broken.__version__ = "0.0-broken"

    def is_available():
        raise RuntimeError("CUDA driver version is insufficient")

    broken.is_available = is_available
    monkeypatch.setitem(sys.modules, "cupy", broken)
    for cached in (backend_module.cupy_status, backend_module.get_backend, backend_module._warn_fallback_once):
        cached.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert backend_module.get_backend("auto").name == "numpy"
            assert backend_module.get_backend("auto").name == "numpy"
        assert len([w for w in caught if "GPU backend unavailable" in str(w.message)]) == 1
        with pytest.raises(BackendError) as info:
            backend_module.get_backend("cupy")
        assert "\n" not in str(info.value) and "broken" in str(info.value)
    finally:
        for cached in (backend_module.cupy_status, backend_module.get_backend, backend_module._warn_fallback_once):
            cached.cache_clear()


def test_import_never_touches_cupy():
    import subprocess
    import sys

    code = "import sys, imagingsim; imagingsim.load_scenario; print('cupy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


_FAULTS_PER_ALLOCATION = """
import resource, sys
import numpy as np
from imagingsim.backend import restore_heap_reuse
restored = restore_heap_reuse() if sys.argv[1] == "restore" else False
np.ones(1 << 18)  # 2 MB (below the 4 MB where numpy asks for huge pages): faults once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    np.ones(1 << 18)  # allocated, written, freed: reused from the heap or mapped afresh
print(restored, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_restore_heap_reuse_undoes_a_pinned_trim_threshold():
    """With MALLOC_TRIM_THRESHOLD_ set (as Dask's nanny sets it), glibc maps every 2 MB array
    afresh: one page fault per 4 KiB page, 512 per allocation; once restored, freed arrays are
    reused from the heap and fault (almost) never."""

    def faults(mode: str, env: dict) -> tuple[str, float]:
        result = subprocess.run([sys.executable, "-c", _FAULTS_PER_ALLOCATION, mode], env={**os.environ, **env},
                                capture_output=True, text=True, check=True)
        restored, per_allocation = result.stdout.split()
        return restored, float(per_allocation)

    pinned = {"MALLOC_TRIM_THRESHOLD_": "65536"}
    assert faults("keep", pinned)[1] > 400
    assert faults("restore", pinned) == ("True", pytest.approx(0, abs=20))
    assert faults("restore", {})[0] == "False"  # nothing pinned: glibc's adaptive rule is left alone
