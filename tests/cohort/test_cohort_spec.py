"""Cohort files: sampling against the distributions' parameters, stable subjects, bad input."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from imagingsim.cohort import builtin_cohorts, load_cohort
from imagingsim.scenario import ScenarioError

N_DRAWS = 4000  # subjects drawn for the moment checks (values only: no scenario validation)


def _cohort(tmp_path: Path, vary: str, *, extra: str = "", subjects: int = N_DRAWS) -> Path:
    path = tmp_path / "cohort.toml"
    path.write_text(f'name = "c"\nbase = "mouse_peg_liposome"\nsubjects = {subjects}\nseed = 7\n{extra}\n[vary]\n{vary}\n')
    return path


def _draws(cohort, key: str) -> np.ndarray:
    return np.array([cohort.values(k)[key] for k in range(1, cohort.subjects + 1)], dtype=float)


def _within_4_se(sample: np.ndarray, mean: float, sd: float) -> None:
    se = sd / math.sqrt(sample.size)
    assert abs(sample.mean() - mean) < 4 * se, (sample.mean(), mean, se)
    # sd of the sample sd ~ sd / sqrt(2 n) for a near-normal sample; 4 of those
    assert abs(sample.std(ddof=1) - sd) < 4 * sd / math.sqrt(2 * sample.size) * 1.5, (sample.std(ddof=1), sd)


RADIUS = "phantom.tumours[0].radius_mm"
DOSE = "agents[0].dose_mg_per_kg"


def test_uniform_normal_and_truncated_normal_match_their_moments(tmp_path):
    cohort = load_cohort(_cohort(tmp_path, f'"{RADIUS}" = {{ distribution = "uniform", low = 2.0, high = 5.0 }}\n'
                                           f'"{DOSE}" = {{ distribution = "normal", mean = 20.0, sd = 2.0 }}'))
    _within_4_se(_draws(cohort, RADIUS), 3.5, 3.0 / math.sqrt(12.0))
    _within_4_se(_draws(cohort, DOSE), 20.0, 2.0)
    truncated = load_cohort(_cohort(tmp_path, f'"{DOSE}" = {{ distribution = "normal", mean = 20.0, sd = 4.0, '
                                              'low = 18.0, high = 30.0 }'))
    sample = _draws(truncated, DOSE)
    exact = stats.truncnorm((18.0 - 20.0) / 4.0, (30.0 - 20.0) / 4.0, loc=20.0, scale=4.0)
    assert sample.min() >= 18.0 and sample.max() <= 30.0
    _within_4_se(sample, exact.mean(), exact.std())


def test_lognormal_has_the_median_and_log_sd_asked_for(tmp_path):
    cohort = load_cohort(_cohort(tmp_path, f'"{DOSE}" = {{ distribution = "lognormal", median = 20.0, sd_log = 0.3 }}'))
    _within_4_se(np.log(_draws(cohort, DOSE)), math.log(20.0), 0.3)


def test_choice_frequencies_follow_the_weights_and_groups_their_weights(tmp_path):
    cohort = load_cohort(_cohort(
        tmp_path, f'"{DOSE}" = {{ distribution = "choice", values = [10.0, 20.0, 40.0], weights = [1, 2, 1] }}',
        extra='[[groups]]\nname = "a"\nweight = 3\n[[groups]]\nname = "b"\nweight = 1\n'))
    sample = _draws(cohort, DOSE)
    for value, p in ((10.0, 0.25), (20.0, 0.5), (40.0, 0.25)):
        share = np.mean(sample == value)
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / sample.size), (value, share)
    groups = [cohort.group_of(k).name for k in range(1, cohort.subjects + 1)]
    share_a = groups.count("a") / len(groups)
    assert abs(share_a - 0.75) < 4 * math.sqrt(0.75 * 0.25 / len(groups))


def test_subject_k_is_the_same_whatever_the_number_of_subjects_or_the_other_fields(tmp_path):
    vary = (f'"{RADIUS}" = {{ distribution = "uniform", low = 2.0, high = 5.0 }}\n'
            f'"{DOSE}" = {{ distribution = "normal", mean = 20.0, sd = 2.0 }}')
    small = load_cohort(_cohort(tmp_path, vary), subjects=5)
    large = load_cohort(_cohort(tmp_path, vary), subjects=50)
    for k in range(1, 6):
        a, b = small.subject(k), large.subject(k)
        assert a.values == b.values and a.scenario.seed == b.scenario.seed
        assert a.scenario.model_dump(exclude={"subject_id"}) == b.scenario.model_dump(exclude={"subject_id"})
    alone = load_cohort(_cohort(tmp_path, f'"{DOSE}" = {{ distribution = "normal", mean = 20.0, sd = 2.0 }}'))
    assert alone.values(3)[DOSE] == small.values(3)[DOSE]  # a field's stream is its own
    assert small.subject(2).values != small.subject(3).values
    assert small.subject(2).scenario.phantom.tumours[0].radius_mm == small.values(2)[RADIUS]


@pytest.mark.parametrize(("vary", "message"), [
    (f'"{RADIUS}" = {{ distribution = "uniform", low = 0.1, high = 5.0 }}',
     "vary.phantom.tumours[0].radius_mm: the uniform distribution can give 0.1, which the scenario refuses"),
    ('"phantom.tumours[0].permeability" = { distribution = "lognormal", median = 1.0, sd_log = 0.5 }',
     "vary.phantom.tumours[0].permeability: the lognormal distribution can give 54.59"),
    (f'"{DOSE}" = {{ distribution = "normal", mean = 20.0, sd = 5.0 }}',
     "vary.agents[0].dose_mg_per_kg: the normal distribution can give -20"),
    (f'"{DOSE}" = {{ distribution = "gamma", shape = 2.0 }}', "cohort vary.agents[0].dose_mg_per_kg"),
    (f'"{DOSE}" = {{ distribution = "uniform", low = 5.0, high = 1.0 }}', "low must be below high"),
    ('"phantom.tumours[3].radius_mm" = { distribution = "constant", value = 2.0 }',
     "vary.phantom.tumours[3].radius_mm: index 3 out of range for tumours (length 1)"),
])
def test_a_distribution_that_can_give_an_invalid_scenario_is_refused_in_one_line(tmp_path, vary, message):
    with pytest.raises(ScenarioError) as error:
        load_cohort(_cohort(tmp_path, vary))
    text = str(error.value)
    assert message in text and "\n" not in text, text


def test_every_builtin_cohort_loads_and_its_subjects_validate():
    names = builtin_cohorts()
    assert {"mouse_epr_variability", "human_liver_metastasis"} <= set(names)
    for name in names:
        cohort = load_cohort(name)
        draws = [cohort.subject(k) for k in (1, 2, cohort.subjects)]
        assert [d.label for d in draws] == ["001", "002", f"{cohort.subjects:03d}"]
        assert all(d.scenario.subject_id == d.label for d in draws)
        assert len({d.scenario.seed for d in draws}) == 3
        if cohort.spec.groups:
            assert all(d.group in {g.name for g in cohort.spec.groups} for d in draws)


def test_cli_lists_the_cohorts_one_a_line_name_first():
    result = subprocess.run([sys.executable, "-m", "imagingsim", "cohorts"], capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == builtin_cohorts()
    assert lines[0].startswith("human_liver_metastasis: 40 subjects of torso_liver_metastasis; ")
