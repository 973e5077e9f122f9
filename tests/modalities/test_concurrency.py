"""Work split over threads gives the same bits as one thread, for every registered modality.

On the CPU the backend runs independent pieces at once (`Backend.map_ordered`: MRI sessions,
SPECT and CT pieces, PET frames and blurs of frames, the delivery step's destination maps;
`Backend.prefetch`: the solver's next step factors). Each piece computes every value with the
same operations in the same order as the serial loop, so a subject must not depend on the
worker count. This compares a whole in-memory subject (delivery and every acquisition, every
array field) simulated with 1 and with 2 workers.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from imagingsim.backend import get_backend
from imagingsim.modalities import registry
from imagingsim.pipeline import load_scenario, simulate

#: Coarse, and two schedule times so that sessions and acquisitions have a partner.
SMALL = ("phantom.voxel_size_mm=2.0", "schedule.times_h=[4.0, 24.0]")


def _arrays(obj, path: str = "", seen=None) -> dict[str, np.ndarray]:
    """Every numpy array reachable through dataclass fields, dicts, lists and tuples."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return {}
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return {path: obj}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = ((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))
    elif isinstance(obj, dict):
        items = ((str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(obj))
    else:
        return {}
    out: dict[str, np.ndarray] = {}
    for name, value in items:
        out.update(_arrays(value, f"{path}.{name}", seen))
    return out


@pytest.mark.parametrize("name", registry.names())
def test_a_subject_is_the_same_bits_with_one_or_two_workers(name):
    modality = registry.get(name)
    scenario_name, overrides = modality.example
    scenario = load_scenario(scenario_name, [*overrides, *SMALL])
    numpy_backend = get_backend("numpy")
    serial = simulate(scenario, backend=dataclasses.replace(numpy_backend, workers=1))
    threaded = simulate(scenario, backend=dataclasses.replace(numpy_backend, workers=2))

    for part in ("delivery", "acquisitions"):
        want, got = _arrays(getattr(serial, part)), _arrays(getattr(threaded, part))
        assert want.keys() == got.keys()
        assert want, f"{part}: no arrays found to compare"
        differing = [key for key in want
                     if want[key].dtype != got[key].dtype or not np.array_equal(want[key], got[key], equal_nan=True)]
        assert not differing, f"{name}: {part} differs with 2 workers: {differing[:5]}"


def test_map_ordered_keeps_order_context_and_first_failure():
    import contextvars

    backend = dataclasses.replace(get_backend("numpy"), workers=2)
    label = contextvars.ContextVar("label", default="unset")
    label.set("caller")
    threads = set()

    def work(i):
        threads.add(threading.current_thread().name)
        # A call from a worker runs its items in that worker (no nested pool).
        inner = backend.map_ordered(lambda j: threading.current_thread().name, range(3))
        assert set(inner) == {threading.current_thread().name}
        return i * i, label.get()

    assert backend.map_ordered(work, range(6)) == [(i * i, "caller") for i in range(6)]
    assert all(t.startswith("imagingsim-work") for t in threads)

    def fail_on_odd(i):
        if i % 2:
            raise ValueError(f"item {i}")
        return i

    with pytest.raises(ValueError, match="item 1"):
        backend.map_ordered(fail_on_odd, range(6))
    serial = dataclasses.replace(backend, workers=1)
    assert serial.map_ordered(lambda i: threading.current_thread().name, range(2)) == [threading.current_thread().name] * 2


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_a_subject_is_simulated_with_one_blas_thread(monkeypatch):
    """Every stage runs with one BLAS thread (spinning BLAS threads would take the cores of
    the stage's own threads; threaded products would make bits depend on the core count)."""
    import imagingsim.phantom

    before = _blas_threads()
    if not before:
        pytest.skip("NumPy is not linked to a BLAS that threadpoolctl can limit")
    seen = []
    build = imagingsim.phantom.build_phantom

    def build_and_look(*args):
        seen.append(_blas_threads())
        return build(*args)

    monkeypatch.setattr(imagingsim.phantom, "build_phantom", build_and_look)
    simulate(load_scenario("mouse_targeted_spion", list(SMALL) + ['modalities.enabled=["nirf"]']), backend="numpy")
    assert seen == [{1}]
    assert _blas_threads() == before


@pytest.mark.parametrize("workers", [1, 2])
def test_pieces_call_blas_with_one_thread_and_the_limit_is_restored(workers):
    """Two pieces each starting a BLAS thread per core would oversubscribe the cores; and a
    piece's products must round the same in series as side by side, so the one-thread limit
    holds with 1 worker too. Nested sections keep it until the outermost one closes."""
    blas_threads = _blas_threads
    backend = dataclasses.replace(get_backend("numpy"), workers=workers)
    before = blas_threads()
    if not before:
        pytest.skip("NumPy is not linked to a BLAS that threadpoolctl can limit")

    def work(i):
        inner = backend.map_ordered(lambda j: blas_threads(), range(2))
        return blas_threads(), inner

    for outer, inner in backend.map_ordered(work, range(4)):
        assert outer == {1} and inner == [{1}, {1}]
    assert blas_threads() == before


def test_prefetch_yields_in_order_and_holds_at_most_workers_plus_one():
    backend = dataclasses.replace(get_backend("numpy"), workers=2)
    alive = set()
    most = [0]
    lock = threading.Lock()

    class Piece:
        def __init__(self, i):
            self.i = i
            with lock:
                alive.add(i)
                most[0] = max(most[0], len(alive))

        def __del__(self):
            with lock:
                alive.discard(self.i)

    got = []
    for piece in backend.prefetch(Piece, range(20)):
        got.append(piece.i)
        del piece
    assert got == list(range(20))
    assert most[0] <= backend.workers + 1
