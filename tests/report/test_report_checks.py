"""The report's robustness and bookkeeping: FWHM by NEMA's parabolic peak, the MRI mask PSF,
atomic writes under an injected failure, measurements that cannot be made (reported, not
raised), the CLI's exit codes for bad input and internal failures, CT sessions paired by
label, the scenario file and the subject reported.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from imagingsim.cli import main
from imagingsim.modalities.sections import DatasetError, ReportFigure, fwhm, peak_value
from imagingsim.report import command
from imagingsim.report.build import Part, Report, build_report, lead_text
from imagingsim.report.command import figures_dir, write_report
from imagingsim.report.dataset import DatasetView

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


# --- FWHM --------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0.0, 0.25, 0.5])
def test_fwhm_uses_a_parabolic_peak(offset):
    """A Gaussian 3 samples wide (FWHM), its peak anywhere between samples: the parabolic peak
    keeps the width within 2.5 % of the analytic one whatever the offset (the linear crossings
    of so coarse a sampling cost 2 %); the highest sample alone reads 7 % wide at offset 0.5."""
    width = 3.0
    x = np.arange(-15, 16) - offset
    profile = np.exp(-0.5 * (x / (width / FWHM_PER_SIGMA)) ** 2)
    assert fwhm(profile) == pytest.approx(width, rel=0.025)
    assert peak_value(profile) == pytest.approx(1.0, abs=0.025)  # the highest sample: 0.93 at offset 0.5
    if offset == 0.5:  # what the highest sample would give: the check can fail
        assert max(profile) < 0.93


def test_peak_value_is_the_vertex_of_the_parabola():
    # samples of -(x - 0.3)^2 + 5 at -1, 0, 1: the vertex is exactly 5
    p = [-(x - 0.3) ** 2 + 5.0 for x in (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0)]
    assert peak_value(p) == pytest.approx(5.0, rel=1e-12)
    assert peak_value([1.0, 0.5, 0.2]) == 1.0  # at an end: the sample itself


def test_mri_mask_psf_width():
    """Fully sampled: one voxel. A centred block of M of N ky lines: the PSF is a Dirichlet
    kernel of FWHM 1.2067 N / M voxels (the sinc's 1.2067 over the coarser k-space step)."""
    from imagingsim.modalities.mri.report import mask_psf_fwhm_voxels

    n = 128
    assert mask_psf_fwhm_voxels(np.ones((n, 8))) == pytest.approx(1.0, rel=1e-9)
    for m in (32, 16):
        mask = np.zeros((n, 8))
        mask[n // 2 - m // 2: n // 2 + m // 2, :] = 1.0
        assert mask_psf_fwhm_voxels(mask) == pytest.approx(1.2067 * n / m, rel=0.03)


# --- atomic writes -----------------------------------------------------------------------


def _tiny_report(tag: bytes) -> Report:
    figures = (ReportFigure("one", b"\x89PNG-one-" + tag, "first"), ReportFigure("two", b"\x89PNG-two-" + tag, "second"))
    return Report(title="t", lead="l", parts=(Part("a", "A", ("text",), figures),))


def _state(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fail_at", ["figures", "page"])
def test_a_failed_write_leaves_the_previous_report_intact(default_dataset, tmp_path, monkeypatch, fail_at):
    out = tmp_path / "r.html"
    monkeypatch.setattr("imagingsim.report.build.build_report", lambda view: _tiny_report(b"old"))
    write_report(default_dataset, out)
    before = _state(tmp_path)
    assert set(before) == {"r.html", "r_figures/one.png", "r_figures/two.png"}

    real_replace = os.replace

    def failing_replace(src, dst):
        src, dst = str(src), str(dst)
        new_figures = ".staging-" in src and dst == str(figures_dir(out))  # not the old folder put back
        if (fail_at == "figures" and new_figures) or (fail_at == "page" and dst == str(out)):
            raise OSError(28, "No space left on device", dst)
        return real_replace(src, dst)

    monkeypatch.setattr(command.os, "replace", failing_replace)
    monkeypatch.setattr("imagingsim.report.build.build_report", lambda view: _tiny_report(b"new"))
    with pytest.raises(OSError):
        write_report(default_dataset, out)
    assert _state(tmp_path) == before  # the old page and figures, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r_figures"]  # no hidden leftovers

    monkeypatch.setattr(command.os, "replace", real_replace)
    write_report(default_dataset, out)
    assert (out.parent / "r_figures" / "one.png").read_bytes().endswith(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r_figures"]


def test_a_failed_first_write_leaves_nothing(default_dataset, tmp_path, monkeypatch):
    out = tmp_path / "r.html"
    real_replace = os.replace
    monkeypatch.setattr("imagingsim.report.build.build_report", lambda view: _tiny_report(b"new"))
    monkeypatch.setattr(command.os, "replace",
                        lambda s, d: (_ for _ in ()).throw(OSError(5, "I/O error", str(d))) if str(d) == str(out)
                        else real_replace(s, d))
    with pytest.raises(OSError):
        write_report(default_dataset, out)
    assert list(tmp_path.iterdir()) == []


# --- measurements that cannot be made ------------------------------------------------------


def _zero_rois(monkeypatch):
    """Every ROI mean reads 0 and every ledger holds 0 ug: each ratio of the report is 0 / 0."""
    monkeypatch.setattr(DatasetView, "roi_mean", staticmethod(lambda array, mask: 0.0))
    real_table = DatasetView.table

    def table(self, path):
        columns = real_table(self, path)
        if str(path).endswith("_ledger.tsv"):
            return {k: (v if k in ("time", "time_h") else [0.0] * len(v)) for k, v in columns.items()}
        return columns

    monkeypatch.setattr(DatasetView, "table", table)


def test_unmeasurable_values_are_reported_not_raised(default_dataset, monkeypatch):
    from imagingsim.report.html import render_html

    _zero_rois(monkeypatch)
    report = build_report(DatasetView(default_dataset))  # no ZeroDivisionError
    page = render_html(report, "footer")
    assert "not measurable (" in page
    assert "not measurable (the ledger is empty)" in page
    assert "not measurable (no true tumour activity)" in report.sections["pet"].summary["accuracy"]
    assert "not measurable" in report.sections["mri"].summary["accuracy"]
    assert all(math.isnan(v) for v in report.sections["nirf"].measurements["tbr"])


def test_unmeasurable_values_spect_ct(spect_ct_dataset, monkeypatch):
    _zero_rois(monkeypatch)
    report = build_report(DatasetView(spect_ct_dataset))
    assert "not measurable (" in report.sections["spect"].summary["accuracy"]
    assert "not measurable (" in report.sections["ct"].summary["accuracy"]


# --- CLI -----------------------------------------------------------------------------------


def test_cli_internal_failure_is_one_line_exit_1(default_dataset, tmp_path, monkeypatch, capsys):
    def boom(view):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr("imagingsim.report.build.build_report", boom)
    out = tmp_path / "r.html"
    assert main(["report", str(default_dataset), "--out", str(out)]) == 1  # not bad input
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: DATASET: the report of ") and "ZeroDivisionError" in err
    assert "\n" not in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_unknown_pet_nuclide_is_bad_input(default_dataset, tmp_path, monkeypatch, capsys):
    from imagingsim.modalities.pet import report as pet_report

    real_sidecar = DatasetView.sidecar

    def sidecar(self, path):
        data = real_sidecar(self, path)
        return {**data, "TracerRadionuclide": "11C"} if "TracerRadionuclide" in data else data

    monkeypatch.setattr(DatasetView, "sidecar", sidecar)
    monkeypatch.setattr(pet_report, "line_source_fwhm_mm", lambda *a, **k: pytest.fail("measured past the check"))
    assert main(["report", str(default_dataset), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: DATASET: PET TracerRadionuclide '11C' is not in") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def _skeleton(root, subjects=("sub-01",), scenario_text="{}"):
    (root / "derivatives" / "truth").mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "x", "BIDSVersion": "1.9.0"}))
    for sub in subjects:
        (root / "derivatives" / "truth" / sub).mkdir()
        (root / "derivatives" / "truth" / sub / f"{sub}_scenario.json").write_text(scenario_text)
    return root


def test_bad_scenario_json_names_dataset(tmp_path, capsys):
    root = _skeleton(tmp_path / "ds", scenario_text="{not json")
    with pytest.raises(DatasetError, match=r"^DATASET: .*sub-01_scenario.json is not valid JSON"):
        DatasetView(root)
    assert main(["report", str(root), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: DATASET: ") and "\n" not in err


def test_subject_is_chosen_and_checked(default_dataset, tmp_path, capsys):
    root = _skeleton(tmp_path / "ds", subjects=("sub-01", "sub-02"),
                     scenario_text=(default_dataset / "derivatives" / "truth" / "sub-01" / "sub-01_scenario.json")
                     .read_text())
    view = DatasetView(root)
    assert view.sub == "sub-01" and view.subjects == ("sub-01", "sub-02")
    assert DatasetView(root, "02").sub == "sub-02"
    lead = lead_text(view, ["A"])
    assert "holds 2 subjects (sub-01, sub-02); this page reports sub-01 only (the first)" in lead
    assert "subjects" not in lead_text(DatasetView(default_dataset), ["A"])  # one subject: nothing said
    with pytest.raises(DatasetError, match=r"^--subject: sub-07 is not in"):
        DatasetView(root, "sub-07")
    assert main(["report", str(root), "--out", str(tmp_path / "r.html"), "--subject", "sub-07"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --subject: sub-07")


# --- CT: sessions paired by label ----------------------------------------------------------


def test_ct_pairs_contrast_and_hu_by_session(spect_ct_dataset, monkeypatch):
    """With the first session's concentration file missing, the HU per mg/mL comes from the
    session that has one (its own HU), not from the first session's HU."""
    from imagingsim.modalities.ct import report as ct_report

    view = DatasetView(spect_ct_dataset)
    first, last = view.times_h[0], view.times_h[-1]
    real_find = DatasetView.find
    missing = view.truth_dir("ct", first)

    def find(self, folder, pattern):
        if folder == missing and pattern.endswith("_conc.nii.gz"):
            return None
        return real_find(self, folder, pattern)

    monkeypatch.setattr(DatasetView, "find", find)
    m = ct_report.report_section(view).measurements
    assert list(m["contrast_mg_per_ml"]) == [last]
    c = m["contrast_mg_per_ml"][last]
    expected = (m["hu_tumour"][-1] - m["hu_background"][-1]) / c
    assert m["hu_per_mg_per_ml"] == pytest.approx(expected, rel=1e-12)
    misaligned = (m["hu_tumour"][0] - m["hu_background"][0]) / c  # what hu_t[:len(contrast)] paired
    assert abs(misaligned / expected - 1) > 0.01
