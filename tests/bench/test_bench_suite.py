"""Suite files: threshold names checked against the metrics the harness computes, and the
organiser's key used for held-out suites only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imagingsim.bench import load_suite, run_suite
from imagingsim.bench import metrics as m
from imagingsim.bench.suite import KEY_VARIABLE, realisation_seed, suite_key
from imagingsim.cli import main
from imagingsim.phantom.model import Label

TINY = Path(__file__).with_name("tiny.toml")


def _with_thresholds(tmp_path, thresholds: str) -> str:
    path = tmp_path / "suite.toml"
    path.write_text(TINY.read_text().replace("thresholds = { nrmse_body = 0.8 }", f"thresholds = {thresholds}"))
    return str(path)


def test_threshold_names_are_the_lower_is_better_checkpoint_metrics():
    # every VOI present: each allowed name is computed at a checkpoint (structural=False)
    labels = np.array([Label.AIR, Label.SOFT_TISSUE, Label.TUMOUR_VIABLE, Label.TUMOUR_HYPOXIC, Label.LIVER,
                       Label.SPLEEN, Label.KIDNEY, Label.SOFT_TISSUE], dtype=np.uint8)
    truth = np.array([0.0, 1.0, 5.0, 3.0, 2.0, 2.5, 4.0, 1.2])
    computed = m.image_metrics(truth * 0.9, truth, m.voi_masks(labels), structural=False)
    assert set(m.THRESHOLD_METRICS) <= set(computed)
    assert {"crc", "ssim", "psnr_db"}.isdisjoint(m.THRESHOLD_METRICS)  # higher is better, or final-only
    # the built-in suites use only allowed names (load_suite would refuse them otherwise)
    for name in ("quick", "standard"):
        assert all(set(p.thresholds) <= set(m.THRESHOLD_METRICS) for p in load_suite(name).problems)


@pytest.mark.parametrize(("thresholds", "message"), [
    ("{ nrmse_body = 0.8, ssim = 0.9 }", ("problems[0].thresholds: unknown metric 'ssim': thresholds bound one of "
                                          "nrmse_body, rmse_background, aem_tumour")),
    ("{ nrmse = 0.8 }", "unknown metric 'nrmse'"),
    ("{ aem_heart = 0.1 }", "unknown metric 'aem_heart'"),
    ("{ crc = 0.9 }", "unknown metric 'crc'"),
    ("{ nrmse_body = -0.1 }", "problems[0].thresholds.nrmse_body: Input should be greater than or equal to 0"),
])
def test_unknown_threshold_names_are_refused_in_one_line(tmp_path, capsys, thresholds, message):
    path = _with_thresholds(tmp_path, thresholds)
    with pytest.raises(ValueError) as caught:
        load_suite(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    code = main(["bench", path, "--baselines", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and message in err.replace("\n", " ") and "Traceback" not in err
    assert not (tmp_path / "b").exists()
    assert load_suite(_with_thresholds(tmp_path, "{ aem_liver = 0.1, crc_error = 0.5, bv = 0.3 }"))


def test_public_suite_seeds_do_not_depend_on_the_key_variable(monkeypatch):
    quick = load_suite("quick")
    assert not quick.held_out

    def seeds():
        key = suite_key(quick)
        return [realisation_seed(quick, p.name, level, k, key) for p in quick.problems for level in p.count_levels
                for k in range(quick.realisations_of(p))]

    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    public = seeds()
    monkeypatch.setenv(KEY_VARIABLE, "organiser-secret")
    assert seeds() == public
    assert suite_key(quick, "explicit") == ""
    # a held-out suite does mix the key in
    held = quick.model_copy(update={"held_out": True})
    assert suite_key(held) == "organiser-secret" and suite_key(held, "explicit") == "explicit"


def test_run_suite_uses_the_key_only_for_held_out_suites(monkeypatch):
    from imagingsim.bench import runner

    seen = []

    def spy(spec, problem, modality, scenario, methods, backend, timeout_s, secret, result, say):
        seen.append(secret)  # the key the realisation seeds are made with; no simulation here
        return "numpy"

    monkeypatch.setattr(runner, "_run_problem", spy)
    monkeypatch.setenv(KEY_VARIABLE, "organiser-secret")
    public = run_suite(str(TINY), baselines=True)
    assert seen == ["", ""] and public.key == "public"
    seen.clear()
    held = run_suite(load_suite(str(TINY)).model_copy(update={"held_out": True}), baselines=True)
    assert seen == ["organiser-secret", "organiser-secret"] and held.key not in ("public", "organiser-secret")


def test_a_frame_past_the_schedule_is_refused_before_any_simulation(tmp_path, monkeypatch):
    import imagingsim.pipeline

    def no_simulation(*args, **kwargs):
        raise AssertionError("refused before any simulation")

    monkeypatch.setattr(imagingsim.pipeline, "simulate", no_simulation)
    path = tmp_path / "frames.toml"
    path.write_text(TINY.read_text().replace('name = "ct_2mm"', 'name = "ct_2mm"\nframe = 1'))
    with pytest.raises(ValueError, match=r"^problems\[1\] \(ct_2mm\)\.frame: must be < 1, the number of sessions "
                                         r"of schedule\.times_h; got 1$"):
        run_suite(str(path), baselines=True)
