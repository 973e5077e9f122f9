"""Finding reconstruction plug-ins and running one on a problem under the harness's clock.

A plug-in is either

- a callable ``recon(problem, *, callback=None) -> image``, which calls
  ``callback(image, iteration)`` after each iteration it wants scored (optional) and should
  run ``problem.iterations`` iterations (the harness does not stop it: every checkpoint it
  reports is scored and the image it returns is its final one; ``--timeout-s`` bounds it), or
- a class with ``__init__(problem)``, ``update()`` (one iteration) and an ``image`` property;
  the harness calls ``update()`` ``problem.iterations`` times and reads ``image`` after each.

It is named by ``"module:attribute"``, or by the name of an entry point in the group
``imagingsim.recon`` of an installed package. A plug-in may declare ``modalities = (name, ...)``
to be run only on those problems. The built-in baselines come through the same door: each
modality lists its own (:attr:`Modality.baselines <imagingsim.modalities.base.Modality.baselines>`).

Time spent in the callback (host copies, scoring) is excluded from the reported times.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

GROUP = "imagingsim.recon"


class PluginError(ValueError):
    """A plug-in name that does not load (bad input): one line naming it and why."""


@dataclass(frozen=True)
class Plugin:
    """A loaded reconstruction: ``name`` as it appears in the results, ``target`` where it came from."""

    name: str
    target: str
    obj: Any

    @property
    def modalities(self) -> tuple[str, ...] | None:
        """The modalities it declares it handles, or None for all."""
        declared = getattr(self.obj, "modalities", None)
        return None if declared is None else tuple(declared)


def load_plugin(spec: str) -> Plugin:
    """Load ``"module:attribute"`` or the entry point ``spec`` of group :data:`GROUP`.

    ``module`` is looked up in the current directory first, then on ``sys.path``.

    Raises
    ------
    PluginError
        One line: the module is missing or fails to import (any exception it raises, a
        ``SyntaxError`` included), the attribute is missing, the entry point is unknown
        (listing the installed ones), the object is not callable, or its ``modalities`` is
        not a tuple of registered modality names.
    """
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        if not module_name or not attribute:
            raise PluginError(f"--recon {spec!r}: expected module:name")
        try:
            module = _import_from_cwd(module_name)
        except Exception as exc:  # noqa: BLE001 - SyntaxError, NameError... in the user's module: one line
            raise PluginError(f"--recon {spec!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
                              .splitlines()[0]) from None
        obj = module
        for part in attribute.split("."):
            if not hasattr(obj, part):
                raise PluginError(f"--recon {spec!r}: {module_name!r} has no attribute {attribute!r}")
            obj = getattr(obj, part)
        name = attribute.rpartition(".")[2]
    else:
        entries = {e.name: e for e in metadata.entry_points(group=GROUP)}
        if spec not in entries:
            installed = ", ".join(sorted(entries)) or "none"
            raise PluginError(f"--recon {spec!r}: not module:name and no entry point of {GROUP} by that name "
                              f"(installed: {installed})")
        try:
            obj = entries[spec].load()
        except Exception as exc:  # noqa: BLE001 - a broken third-party package: say which, in one line
            raise PluginError(f"--recon {spec!r}: entry point failed to load: {exc}".splitlines()[0]) from None
        name = spec
    if not callable(obj):
        raise PluginError(f"--recon {spec!r}: {type(obj).__name__} is not callable (a function or a class)")
    _check_modalities(spec, getattr(obj, "modalities", None))
    return Plugin(name, spec, obj)


def _check_modalities(spec: str, declared) -> None:
    """Refuse a ``modalities`` attribute that is not a collection of registered modality names:
    a string would read as its letters and the plug-in would silently never run, as it would
    with a misspelt name."""
    from imagingsim.modalities import registry

    if declared is None:
        return
    if isinstance(declared, (str, bytes)) or not isinstance(declared, (tuple, list, set, frozenset)):
        raise PluginError(f"--recon {spec!r}: modalities must be a tuple of registered modality names, "
                          f"got {declared!r}".splitlines()[0][:200])
    known = registry.names()
    for name in declared:
        if name not in known:
            raise PluginError(f"--recon {spec!r}: modalities names {name!r}, not a registered modality "
                              f"(registered: {', '.join(known)})")


def _import_from_cwd(module_name: str):
    """Import ``module_name`` with the current directory first on ``sys.path``, as ``python -m``
    does: ``imagingsim bench --recon my_recon:mlem`` finds ``./my_recon.py`` from the console
    script too (whose ``sys.path[0]`` is the script's folder, not the current one). The entry
    is removed afterwards (and only it: what the module itself put on ``sys.path`` stays); the
    imported module stays in ``sys.modules``."""
    here = os.getcwd()
    sys.path.insert(0, here)
    try:
        return importlib.import_module(module_name)
    finally:
        for index, entry in enumerate(sys.path):
            if entry is here:  # our own string object, not an equal entry the module added
                del sys.path[index]
                break


def baseline_plugins(modality) -> list[Plugin]:
    """The built-in baselines of a :class:`~imagingsim.modalities.base.Modality`, named ``<modality>-<name>``."""
    plugins = []
    for name, target in modality.baselines.items():
        plugin = load_plugin(target)
        plugins.append(Plugin(f"{modality.name}-{name}", target, plugin.obj))
    return plugins


class _Abort(BaseException):
    """Raised inside a callback (or before ``update``) to stop a plug-in that has run past its
    time-out: the harness has already recorded the failure and moved on."""


@dataclass
class Run:
    """What one plug-in run produced: host copies of each checkpoint and its time, or an error."""

    checkpoints: list[tuple[int, float, Any]] = field(default_factory=list)
    final: Any = None
    seconds: float = 0.0
    error: str | None = None


def run_plugin(plugin: Plugin, problem, to_host, *, timeout_s: float | None = None) -> Run:
    """Run ``plugin`` on ``problem``; checkpoints are host copies made by ``to_host(image)``.

    The plug-in runs in a worker thread so that a timeout does not stop the benchmark: past
    ``timeout_s`` the run is recorded as failed and the next callback (or ``update``) of the
    plug-in is aborted; a plug-in that never calls back keeps its thread until it returns
    (Python cannot kill a thread), but the harness goes on.

    Returns
    -------
    Run
        ``error`` is None on success, else one line (``"timeout after S s"``,
        ``"ValueError: ..."``); checkpoint times exclude the time spent in the callback.

    Notes
    -----
    Before each clock read (start, every callback, end) the harness calls
    ``problem.backend.synchronize()``, so on a GPU the times include the kernels queued so far
    rather than only their launches.
    """
    result = Run()
    abort = threading.Event()
    clock = {"start": 0.0, "excluded": 0.0}
    backend = getattr(problem, "backend", None)
    # GPU launches return before the work is done: wait for the device before each clock read
    # (a no-op on the host backends), so a checkpoint's time is the work up to it.
    synchronize = backend.synchronize if backend is not None else (lambda: None)

    def elapsed() -> float:
        return time.perf_counter() - clock["start"] - clock["excluded"]

    def callback(image, iteration):
        synchronize()
        entered = time.perf_counter()
        seconds = entered - clock["start"] - clock["excluded"]
        if abort.is_set():
            raise _Abort
        result.checkpoints.append((int(iteration), seconds, to_host(image)))
        clock["excluded"] += time.perf_counter() - entered

    def body():
        synchronize()  # the harness's own queued work (the realisation's copies) is not the plug-in's
        clock["start"] = time.perf_counter()
        obj = plugin.obj
        if inspect.isclass(obj):
            instance = obj(problem)
            for iteration in range(1, (problem.iterations or 1) + 1):
                if abort.is_set():
                    raise _Abort
                instance.update()
                callback(instance.image, iteration)
            image = instance.image
        else:
            image = obj(problem, callback=callback)
        synchronize()
        result.seconds = elapsed()
        if abort.is_set():
            raise _Abort
        result.final = to_host(image)

    def target():
        try:
            body()
        except _Abort:
            pass
        except Exception as exc:  # noqa: BLE001 - the plug-in's failure is a result row, not a crash
            result.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]

    worker = threading.Thread(target=target, name=f"imagingsim-bench-{plugin.name}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        abort.set()
        result.error = f"timeout after {timeout_s:g} s"
        result.final = None
    return result
