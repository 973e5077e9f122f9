"""Loading and timing plug-ins: a module in the current directory from the console script, a
broken module in one line, two plug-ins that would share a name, the device synchronised
before every clock read."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from imagingsim.bench import run_suite
from imagingsim.bench.plugins import Plugin, load_plugin, run_plugin

TINY = Path(__file__).with_name("tiny.toml")


def _console_script() -> list[str]:
    """The installed ``imagingsim`` script (its ``sys.path[0]`` is the venv's ``bin``, not the
    current directory); else the same entry point under ``python -P`` (no current directory)."""
    script = Path(sys.executable).with_name("imagingsim")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-P", "-c", "import sys; from imagingsim.cli import main; sys.exit(main())"]


def _bench(cwd: Path, *args: str, timeout: float = 240.0) -> subprocess.CompletedProcess:
    return subprocess.run([*_console_script(), "bench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_the_console_script_finds_a_plugin_module_in_the_current_directory(tmp_path):
    (tmp_path / "my_recon_cwd.py").write_text(
        "def backprojection(problem, *, callback=None):\n"
        "    image = problem.adjoint(problem.data)\n"
        "    if callback is not None:\n"
        "        callback(image, 1)\n"
        "    return image\n"
        "\n"
        "backprojection.modalities = ('ct',)\n", encoding="utf-8")
    done = _bench(tmp_path, str(TINY), "--recon", "my_recon_cwd:backprojection", "--out", "b", "--backend", "numpy")
    assert done.returncode == 0, done.stderr
    assert "backprojection" in done.stdout and "ct_2mm" in done.stdout
    assert "pet_2mm" not in done.stderr  # the only method runs on CT: PET is not even simulated
    assert (tmp_path / "b" / "leaderboard.tsv").is_file()


@pytest.mark.parametrize(("source", "error"), [
    ("def broken(problem:\n    return problem\n", "SyntaxError"),
    ("undefined_name + 1\n", "NameError"),
])
def test_a_broken_plugin_module_is_one_line_exit_2(tmp_path, source, error):
    (tmp_path / "broken_recon.py").write_text(source, encoding="utf-8")
    started = time.perf_counter()
    done = _bench(tmp_path, str(TINY), "--recon", "broken_recon:broken", "--out", "b", timeout=60.0)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "--recon 'broken_recon:broken': cannot import 'broken_recon'" in lines[0] and error in lines[0]
    assert not (tmp_path / "b").exists() and time.perf_counter() - started < 60.0


def test_load_plugin_restores_sys_path(tmp_path, monkeypatch):
    (tmp_path / "restore_recon.py").write_text("def f(problem, *, callback=None):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    assert load_plugin("restore_recon:f").name == "f"
    assert sys.path == before


def _zeros(problem, *, callback=None):
    return problem.xp.zeros(problem.image_shape)


def _ones(problem, *, callback=None):
    return problem.xp.ones(problem.image_shape)


def test_two_plugins_with_one_name_are_refused_naming_both(monkeypatch):
    import imagingsim.pipeline

    def no_simulation(*args, **kwargs):
        raise AssertionError("refused before any simulation")

    monkeypatch.setattr(imagingsim.pipeline, "simulate", no_simulation)
    first, second = Plugin("zeros", "mine:zeros", _zeros), Plugin("zeros", "theirs:zeros", _ones)
    with pytest.raises(ValueError, match=r"--recon: 'mine:zeros' and 'theirs:zeros' both give the method name 'zeros'"):
        run_suite(str(TINY), [first, second])
    # a plug-in that takes a baseline's name is refused too, when the baselines run
    clash = Plugin("pet-mlem", "mine:mlem", _zeros)
    with pytest.raises(ValueError, match=r"'imagingsim.modalities.pet.problem:mlem_baseline' both give .* 'pet-mlem'"):
        run_suite(str(TINY), [clash], baselines=True)


def test_every_backend_can_synchronize(backend):
    """A no-op on numpy and strict (their calls return when the work is done); on cupy it waits
    for the current stream, after which a queued result is ready."""
    x = backend.from_host(np.arange(6.0))
    y = x * 2.0
    assert backend.synchronize() is None
    assert np.array_equal(backend.to_host(y), np.arange(6.0) * 2.0)
    assert (backend._synchronize is None) == (backend.name != "cupy")


class _SpyBackend:
    """Records every synchronize() in the shared event log; a device that takes ``work_s`` to
    finish what was queued before each one."""

    def __init__(self, log: list[str], work_s: float):
        self.log, self.work_s = log, work_s

    def synchronize(self):
        self.log.append("sync")
        time.sleep(self.work_s)


class _Problem:
    iterations = 3

    def __init__(self, backend):
        self.backend = backend


def test_the_clock_is_read_after_synchronising_the_device():
    log: list[str] = []
    problem = _Problem(_SpyBackend(log, work_s=0.1))

    def recon(problem, *, callback=None):
        for iteration in range(1, 4):
            log.append(f"launch {iteration}")  # an asynchronous kernel launch: returns at once
            callback(np.zeros(2), iteration)
        log.append("launch final")
        return np.zeros(2)

    def to_host(image):
        log.append("copy")
        return np.array(image)

    run = run_plugin(Plugin("recon", "test", recon), problem, to_host)
    assert run.error is None
    assert log == ["sync", "launch 1", "sync", "copy", "launch 2", "sync", "copy", "launch 3", "sync", "copy",
                   "launch final", "sync", "copy"]
    # the device's work up to each checkpoint is the plug-in's time (without the waits the
    # clock would read ~0 s); the first wait, for the harness's own work, is not
    seconds = [s for _, s, _ in run.checkpoints] + [run.seconds]
    for waits, value in zip((1, 2, 3, 4), seconds, strict=True):
        assert 0.1 * waits <= value < 0.1 * waits + 0.09, seconds


def test_a_class_plugin_is_synchronised_after_each_update():
    log: list[str] = []

    class Recon:
        def __init__(self, problem):
            self.image = np.zeros(2)

        def update(self):
            log.append("update")

    run = run_plugin(Plugin("Recon", "test", Recon), _Problem(_SpyBackend(log, work_s=0.0)), np.array)
    assert run.error is None and len(run.checkpoints) == 3
    assert log == ["sync", "update", "sync", "update", "sync", "update", "sync", "sync"]


@pytest.mark.parametrize(("declared", "message"), [
    ('"pet"', "modalities must be a tuple of registered modality names, got 'pet'"),
    ("3", "modalities must be a tuple of registered modality names, got 3"),
    ('("pet", "xray")', "modalities names 'xray', not a registered modality (registered: pet,"),
])
def test_a_plugin_declaring_bad_modalities_is_refused(tmp_path, monkeypatch, declared, message):
    module = f"declares_{abs(hash(declared))}"
    (tmp_path / f"{module}.py").write_text(f"def f(problem, *, callback=None):\n    return None\n\n"
                                           f"f.modalities = {declared}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"^--recon '.*:f': ") as caught:
        load_plugin(f"{module}:f")
    assert message in str(caught.value)
    (tmp_path / "declares_good.py").write_text("def f(problem, *, callback=None):\n    return None\n\n"
                                               "f.modalities = ['pet', 'ct']\n")
    assert load_plugin("declares_good:f").modalities == ("pet", "ct")


def test_each_plugin_gets_its_own_mask_and_coil_maps(backend):
    """A plug-in that writes into ``mask`` or ``coil_maps`` (MRI) changes neither what the next
    plug-in is handed nor the problem's model."""
    from imagingsim.bench.runner import _own_copy
    from imagingsim.operators import Reshape
    from imagingsim.recon.problem import ReconProblem

    shape = (2, 3, 4)
    sampled = np.array([[True, False, True, True]] * 3)
    mask = backend.from_host(sampled)
    maps = backend.from_host(np.ones((2, *shape), dtype=np.complex64))
    problem = ReconProblem("mri", backend.zeros(shape), Reshape(shape, shape, backend), 0.0, 1.0, shape, (1.0, 1.0, 1.0),
                           None, backend, "a.u.", mask=mask, coil_maps=maps)
    mine = _own_copy(problem)
    mine.mask[...] = False
    mine.coil_maps[...] = 0.0
    mine.data[...] = 7.0
    host = backend.to_host
    assert np.array_equal(host(problem.mask), sampled) and np.array_equal(host(problem.coil_maps), np.ones((2, *shape)))
    assert np.array_equal(host(problem.data), np.zeros(shape))
    assert _own_copy(ReconProblem("pet", backend.zeros(shape), Reshape(shape, shape, backend), 0.0, 1.0, shape,
                                  (1.0, 1.0, 1.0), None, backend, "Bq/mL")).mask is None
