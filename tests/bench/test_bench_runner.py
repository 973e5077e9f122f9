"""The harness end to end on a tiny suite: plug-ins written from the README's protocol, the
baselines, failures that become rows, bias and variance over realisations, the written files."""

from __future__ import annotations

import csv
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest

from imagingsim.bench import load_suite, run_suite, write_results
from imagingsim.bench.plugins import Plugin, load_plugin, run_plugin
from imagingsim.bench.suite import key_fingerprint, realisation_seed, suite_key
from imagingsim.modalities import registry
from imagingsim.modalities.base import acquisition_context
from imagingsim.pipeline import load_scenario, simulate

TINY = Path(__file__).with_name("tiny.toml")
README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_plugin() -> Plugin:
    """The MLEM example of the README's benchmark section, run as written."""
    section = README.read_text(encoding="utf-8").split("## Reconstruction benchmark", 1)[1]
    block = re.findall(r"```py\n(.*?)```", section, flags=re.DOTALL)[0]
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README example is the test
    assert namespace["mlem"].modalities == ("pet", "spect")
    return Plugin("mlem", "README.md:mlem", namespace["mlem"])


def _truth_plugin(suite):
    """A plug-in that returns the exact truth of the suite's PET problem (got out of band, by
    simulating the same subject: the harness never hands it over)."""
    problem = suite.problems[0]
    scenario = load_scenario(problem.scenario, [*problem.set, 'modalities.enabled=["pet"]'])
    subject = simulate(scenario, backend="numpy")
    ctx = acquisition_context("pet", subject.phantom, subject.delivery, subject.scenario, subject.backend, subject.seed)
    truth = registry.get("pet").recon_problem(ctx, subject.acquisitions["pet"]).truth

    def truth_recon(problem, *, callback=None):
        return problem.xp.asarray(truth)

    truth_recon.modalities = ("pet",)
    return Plugin("truth", "test:truth", truth_recon)


@pytest.fixture(scope="module")
def tiny():
    suite = load_suite(str(TINY))
    plugins = [load_plugin(f"bench_plugins:{name}") for name in ("MLEMClass", "zeros", "raises", "wrong_shape",
                                                                  "not_a_number", "mlem_in_place")]
    result = run_suite(suite, [_readme_plugin(), *plugins, _truth_plugin(suite)], baselines=True, backend="numpy")
    return result


def _board(result, problem, level, method):
    rows = [r for r in result.leaderboard if (r["problem"], r["count_level"], r["method"]) == (problem, level, method)]
    assert len(rows) == 1, (problem, level, method)
    return rows[0]


def test_a_plugin_from_the_readme_matches_the_builtin_mlem(tiny):
    for level in (1.0, 0.05):
        ours, builtin = _board(tiny, "pet_2mm", level, "mlem"), _board(tiny, "pet_2mm", level, "pet-mlem")
        assert ours["status"] == builtin["status"] == "ok"
        for metric in ("nrmse_body", "aem_tumour", "crc", "bias_body", "sd_body", "ssim"):
            assert ours[metric] == pytest.approx(builtin[metric], rel=0.01), metric
        # the class protocol runs the same iterations, checkpoint by checkpoint
        klass = _board(tiny, "pet_2mm", level, "MLEMClass")
        assert klass["nrmse_body"] == pytest.approx(ours["nrmse_body"], rel=1e-6)
    checkpoints = [r["checkpoint"] for r in tiny.rows
                   if r["method"] == "MLEMClass" and r["problem"] == "pet_2mm" and r["realisation"] == 0
                   and r["count_level"] == 1.0]
    assert checkpoints == [1, 2, 3, 4, 5, "final"]


def test_each_checkpoint_keeps_its_own_image_when_the_plugin_updates_in_place(tiny):
    """A plug-in that writes ``x *= ...`` hands the same array to every callback; each checkpoint
    must still score the image of its own iteration (the README MLEM's, which makes a new array)."""
    def curve(method):
        return [r["nrmse_body"] for r in tiny.rows if r["method"] == method and r["problem"] == "pet_2mm"
                and r["realisation"] == 0 and r["count_level"] == 1.0 and r["checkpoint"] != "final"]

    in_place, fresh = curve("mlem_in_place"), curve("mlem")
    assert len(in_place) == len(fresh) == 5
    assert in_place == pytest.approx(fresh, rel=1e-6)  # float32: x * (u * v) vs (x * u) * v
    assert len(set(in_place)) == 5  # iteration by iteration, not five copies of the last


def test_truth_scores_perfect_and_zeros_score_worse_than_fbp(tiny):
    truth = _board(tiny, "pet_2mm", 1.0, "truth")
    assert truth["nrmse_body"] == 0.0 and truth["rank"] == 1
    assert truth["bias_body"] == 0.0 and truth["aem_tumour"] == 0.0 and truth["crc"] == pytest.approx(1.0)
    for problem in ("pet_2mm", "ct_2mm"):
        zeros = _board(tiny, problem, 1.0, "zeros")
        fbp = _board(tiny, problem, 1.0, f"{problem[:problem.index('_')]}-fbp")
        assert zeros["nrmse_body"] == 1.0 and 0.0 < fbp["nrmse_body"] < zeros["nrmse_body"]
        assert fbp["rank"] < zeros["rank"]
    # a plug-in that declares its modalities runs only there
    assert not [r for r in tiny.leaderboard if r["method"] == "truth" and r["problem"] == "ct_2mm"]


def test_failing_plugins_get_failure_rows_and_the_run_goes_on(tiny):
    expected = {"raises": "RuntimeError: this plug-in always fails", "wrong_shape": "wrong shape (3, 4, 5)",
                "not_a_number": "non-finite values"}
    for method, message in expected.items():
        for row in (r for r in tiny.leaderboard if r["method"] == method):
            assert row["status"].startswith("failed") and message in row["status"], row["status"]
            assert math.isnan(row.get("nrmse_body", math.nan)) and row["rank"] > 1
        failures = [r for r in tiny.rows if r["method"] == method]
        assert failures and all(r["checkpoint"] == "failed" and message in r["status"] for r in failures)
    # every realisation of every working method was scored all the same
    assert _board(tiny, "ct_2mm", 1.0, "ct-fbp")["realisations"] == 2


def test_variance_is_zero_without_noise_and_grows_at_lower_counts(tiny):
    for level in (1.0, 0.05):
        assert _board(tiny, "pet_2mm", level, "truth")["sd_body"] == 0.0  # a noiseless method
        assert _board(tiny, "pet_2mm", level, "zeros")["sd_body"] == 0.0
    high, low = (_board(tiny, "pet_2mm", level, "pet-osem") for level in (1.0, 0.05))
    assert low["sd_body"] > 2.0 * high["sd_body"] > 0.0  # 20x fewer counts: ~sqrt(20) more noise
    assert low["sd_tumour"] > high["sd_tumour"]


def test_time_to_threshold_and_written_files(tiny, tmp_path):
    osem = _board(tiny, "pet_2mm", 1.0, "pet-osem")
    assert osem["threshold_reached"] == "3/3" and 0.0 < osem["time_to_threshold_s"] <= osem["seconds"]
    assert _board(tiny, "pet_2mm", 1.0, "zeros")["threshold_reached"] == "0/3"
    files = write_results(tiny, tmp_path / "out")
    assert sorted(p.name for p in files) == ["leaderboard.html", "leaderboard.tsv", "results.json", "results.tsv"]
    with open(tmp_path / "out" / "leaderboard.tsv", encoding="utf-8") as f:
        board = list(csv.DictReader(f, delimiter="\t"))
    assert len(board) == len(tiny.leaderboard)
    with open(tmp_path / "out" / "results.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == len(tiny.rows) and {"nrmse_body", "ssim", "psnr_db", "aem_tumour"} <= set(rows[0])
    page = (tmp_path / "out" / "leaderboard.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3  # one figure per problem and count level
    assert "pet-osem" in page and "<table>" in page
    with pytest.raises(ValueError, match="--out"):
        write_results(tiny, tmp_path / "out")  # never over an earlier run


def test_callback_time_is_excluded_and_a_timeout_is_a_failure_row():
    class Problem:
        iterations = 3

    def quick(problem, *, callback=None):
        for iteration in range(1, 4):
            callback(np.zeros(2), iteration)
        return np.zeros(2)

    def slow_to_host(image):
        time.sleep(0.1)  # a slow scoring callback
        return np.asarray(image)

    run = run_plugin(Plugin("quick", "test", quick), Problem(), slow_to_host)
    assert run.error is None and [c[0] for c in run.checkpoints] == [1, 2, 3]
    assert run.seconds < 0.05  # 0.4 s spent in the callbacks and the final copy, not counted
    suite = load_suite(str(TINY)).model_copy(update={"problems": load_suite(str(TINY)).problems[1:]})
    result = run_suite(suite, ["bench_plugins:slow"], timeout_s=0.3)
    rows = [r for r in result.leaderboard if r["method"] == "slow"]
    assert rows and all("timeout after 0.3 s" in r["status"] for r in rows)


def test_seeds_are_made_at_scoring_time_and_held_out_suites_need_the_key(monkeypatch):
    suite = load_suite(str(TINY))
    monkeypatch.delenv("IMAGINGSIM_BENCH_KEY", raising=False)
    assert suite_key(suite) == "" and key_fingerprint("") == "public"
    public = realisation_seed(suite, "pet_2mm", 1.0, 0)
    assert public == realisation_seed(suite, "pet_2mm", 1.0, 0)  # reproducible
    assert len({public, realisation_seed(suite, "pet_2mm", 1.0, 1), realisation_seed(suite, "pet_2mm", 0.05, 0),
                realisation_seed(suite, "pet_2mm", 1.0, 0, "secret")}) == 4
    assert "secret" not in key_fingerprint("secret")
    held = suite.model_copy(update={"held_out": True})
    with pytest.raises(ValueError, match="IMAGINGSIM_BENCH_KEY"):
        run_suite(held, ["bench_plugins:zeros"])
    monkeypatch.setenv("IMAGINGSIM_BENCH_KEY", "secret")
    assert suite_key(held) == "secret"


def test_bad_suites_and_plugins_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.read_text().replace("count_levels = [1.0, 0.05]", "count_levels = [-1.0]"))
    with pytest.raises(ValueError, match=r"problems\[0\]\.count_levels\[0\]"):
        load_suite(str(bad))
    with pytest.raises(ValueError, match="not a built-in"):
        load_suite("no_such_suite")
    with pytest.raises(ValueError, match="has no attribute"):
        load_plugin("bench_plugins:nothing_here")
    with pytest.raises(ValueError, match="nothing to run"):
        run_suite(str(TINY))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(TINY.read_text().replace('modality = "ct"', 'modality = "xray"'))
    with pytest.raises(ValueError, match=r"problems\[1\]\.modality: unknown modality 'xray'"):
        run_suite(str(unknown), baselines=True)
    data = json.dumps(sorted(["quick", "standard"]))
    from imagingsim.bench.suite import builtin_suites

    assert json.dumps(builtin_suites()) == data


def test_a_modality_without_the_hook_is_refused_before_any_simulation(tmp_path):
    from imagingsim.modalities.base import Modality

    nirf = registry.get("nirf")
    assert type(nirf).recon_problem is Modality.recon_problem and nirf.baselines == {}  # the documented default
    suite = tmp_path / "nirf.toml"
    suite.write_text(TINY.read_text().replace('modality = "ct"', 'modality = "nirf"'))
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"problems\[1\]\.modality: 'nirf' offers no reconstruction benchmark"):
        run_suite(str(suite), baselines=True)
    assert time.perf_counter() - started < 2.0


def test_entry_point_plugins_are_found_by_name(monkeypatch):
    from importlib import metadata

    from imagingsim.bench import plugins

    entry = metadata.EntryPoint(name="fast_zeros", value="bench_plugins:zeros", group=plugins.GROUP)
    monkeypatch.setattr(plugins.metadata, "entry_points",
                        lambda group: [entry] if group == plugins.GROUP else [])
    plugin = load_plugin("fast_zeros")
    assert plugin.name == "fast_zeros" and plugin.obj.__name__ == "zeros"
    with pytest.raises(ValueError, match="installed: fast_zeros"):
        load_plugin("slow_zeros")


def test_truth_is_resampled_onto_a_coarser_recon_grid_keeping_the_activity():
    from imagingsim.bench.runner import _truth_on_recon_grid
    from imagingsim.grid import ImageGrid
    from imagingsim.phantom.model import Label
    from imagingsim.recon.problem import ProblemSource

    fine = ImageGrid((8, 8, 8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    coarse = ImageGrid((4, 4, 4), (2.0, 2.0, 2.0), (0.5, 0.5, 0.5))  # 2x2x2 blocks of the fine grid
    truth = np.random.default_rng(5).uniform(0.0, 10.0, (8, 8, 8))
    labels = np.full((8, 8, 8), Label.SOFT_TISSUE, dtype=np.uint8)
    labels[:4] = Label.LIVER
    source = ProblemSource("x", truth, fine, coarse, labels, "Bq/mL", draw=None)
    resampled, masks = _truth_on_recon_grid(source)
    assert resampled.shape == (4, 4, 4)
    # each coarse voxel is the mean of its block: the activity (sum x voxel volume) is kept
    assert resampled.sum() * 8.0 == pytest.approx(truth.sum(), rel=1e-6)
    assert resampled[0, 0, 0] == pytest.approx(truth[:2, :2, :2].mean(), rel=1e-6)
    assert masks["liver"][:2].all() and not masks["liver"][2:].any() and masks["body"].all()


def test_the_same_suite_and_seed_give_the_same_scores():
    suite = load_suite(str(TINY))
    ct_only = suite.model_copy(update={"problems": suite.problems[1:]})
    timing = ("seconds", "time_to_threshold_s", "iterations_to_threshold")

    def scores(result):  # repr: NaN (no CRC for an all-zero image) equals itself
        return [{k: repr(v) for k, v in row.items() if k not in timing} for row in result.rows]

    first, second = (run_suite(ct_only, ["bench_plugins:zeros"], baselines=True, backend="numpy") for _ in range(2))
    # 2 realisations x (zeros: final; ct-fbp: its one checkpoint and final)
    assert scores(first) == scores(second) and len(first.rows) == 2 * (1 + 2)
    other_seed = run_suite(ct_only.model_copy(update={"seed": ct_only.seed + 1}), baselines=True, backend="numpy")
    fbp = [r["nrmse_body"] for r in scores(first) if r["method"] == "'ct-fbp'"]
    assert len(fbp) == 4 and fbp != [r["nrmse_body"] for r in scores(other_seed)]  # other seeds, other noise


@pytest.mark.parametrize("name", ["quick", "standard"])
def test_the_builtin_suites_load_and_their_scenarios_validate(name):
    from imagingsim.bench.runner import _scenario

    suite = load_suite(name)
    for index, problem in enumerate(suite.problems):
        modality = registry.get(problem.modality)
        scenario = _scenario(problem, modality, index)
        assert problem.modality in scenario.modalities.enabled
        assert set(problem.thresholds) <= {"nrmse_body", "aem_tumour", "aem_liver", "crc_error", "rmse_background"}
    assert {p.modality for p in suite.problems} >= {"pet", "ct", "mri", "spect"}
