"""The reconstruction benchmark: plug-in reconstructions scored against the exact simulated truth.

Modules, one job each: :mod:`~imagingsim.bench.suite` (suites in TOML, realisation seeds),
:mod:`~imagingsim.bench.plugins` (finding and running plug-ins), :mod:`~imagingsim.bench.metrics`
(image quality against truth), :mod:`~imagingsim.bench.runner` (:func:`run_suite`),
:mod:`~imagingsim.bench.results` (TSV, HTML, text leaderboard) and
:mod:`~imagingsim.bench.command` (the ``imagingsim bench`` command). The problem a plug-in sees
is :class:`~imagingsim.recon.problem.ReconProblem`; each modality builds its own through the
Modality contract (``recon_problem``) and registers its baselines (``baselines``).
"""

from imagingsim.bench.results import leaderboard_text, write_results
from imagingsim.bench.runner import BenchResult, run_suite
from imagingsim.bench.suite import builtin_suites, load_suite
from imagingsim.recon.problem import ProblemSource, ReconProblem

__all__ = ["BenchResult", "ProblemSource", "ReconProblem", "builtin_suites", "leaderboard_text", "load_suite",
           "run_suite", "write_results"]
