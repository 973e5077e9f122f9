"""The report opened in a real headless Chromium (Debian's ``chromium``, driven by playwright
with the system browser; never a downloaded one): no console errors, no network, every image
decoded, every section laid out. A full-page screenshot is kept as a test artefact in
``$IMAGINGSIM_TEST_ARTIFACTS`` (default ``build/test-artifacts/`` of the repository).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The switches of a sandbox-less CI container; nothing reaches the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    for candidate in (os.environ.get("IMAGINGSIM_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("IMAGINGSIM_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_report_renders_in_headless_chromium(default_report, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium; .ci/run installs it as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra: pip install -e .[test]")
    html_path, pngs = default_report
    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html_path.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({complete: e.complete, w: e.naturalWidth, h: e.naturalHeight}))")
            sections = page.eval_on_selector_all(
                "section", "els => els.map(e => {const r = e.getBoundingClientRect();"
                           " return {id: e.id, top: r.top + window.scrollY, height: r.height};})")
            height = page.evaluate("document.documentElement.scrollHeight")
            shot = tmp_path / "report_screenshot.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    kept = artifacts_dir() / "report_screenshot.png"
    shutil.copyfile(shot, kept)

    assert errors == [], errors
    assert all(url.startswith(("file:", "data:")) for url in requests), [u[:80] for u in requests]
    assert len(images) == len(pngs) and images
    assert all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in images), images
    ids = [s["id"] for s in sections]
    for expected in ("overview", "summary", "modality-pet", "modality-mri", "modality-nirf"):
        assert expected in ids
    # every section laid out, in order, and the page tall enough to hold the last one
    assert all(s["height"] > 20 for s in sections), sections
    tops = [s["top"] for s in sections]
    assert tops == sorted(tops)
    assert height >= sections[-1]["top"] + sections[-1]["height"] > 900
    assert kept.stat().st_size > 10_000
