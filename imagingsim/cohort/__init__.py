"""Cohorts: many subjects of one scenario whose biology varies as patients' does.

A cohort file (:mod:`imagingsim.cohort.spec`) names a base scenario, the number of subjects,
a seed and a ``[vary]`` table of scenario field paths with their distributions
(:mod:`imagingsim.cohort.distributions`), optionally with treatment arms (``[[groups]]``).
"""

from imagingsim.cohort.spec import Cohort, SubjectDraw, builtin_cohorts, load_cohort

__all__ = ["Cohort", "SubjectDraw", "builtin_cohorts", "load_cohort"]
