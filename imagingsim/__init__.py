"""imagingsim: synthetic multimodal imaging of targeted cancer drug delivery.

The public API mirrors the CLI::

    import imagingsim
    scenario = imagingsim.load_scenario("mouse_peg_liposome", overrides=["seed=7"])
    subject = imagingsim.simulate(scenario, backend="numpy")
    subject.phantom, subject.delivery          # in memory
    imagingsim.write_subject(subject, "out")   # a BIDS dataset on disk
    subject, files = imagingsim.simulate_and_write(scenario, "out2")  # both, writing overlapped

Importing the package never imports CuPy; the backend is chosen when a simulation runs.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "load_scenario": "imagingsim.pipeline",
    "ScenarioError": "imagingsim.scenario",
    "Scenario": "imagingsim.scenario",
    "get_backend": "imagingsim.backend",
    "ImageGrid": "imagingsim.grid",
    "Subject": "imagingsim.pipeline",
    "simulate": "imagingsim.pipeline",
    "write_subject": "imagingsim.pipeline",
    "simulate_and_write": "imagingsim.pipeline",
    "load_cohort": "imagingsim.cohort",
    "run_cohort": "imagingsim.cohort.run",
}

__all__ = [  # noqa: RUF022 - the public API, in the order of _API
    "__version__",
    "load_scenario",
    "ScenarioError",
    "Scenario",
    "get_backend",
    "ImageGrid",
    "Subject",
    "simulate",
    "write_subject",
    "simulate_and_write",
    "load_cohort",
    "run_cohort",
]
assert set(__all__) == {"__version__", *_API}


def __getattr__(name: str):
    # Lazy: `import imagingsim` stays cheap and cannot fail on optional GPU packages.
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'imagingsim' has no attribute {name!r}")
