"""The backend matrix, defined once: every kernel test takes the ``backend`` fixture.

``numpy`` and ``strict`` always run; ``cupy`` runs when a GPU is usable and is skipped with
the reason otherwise. On ``strict``, device arrays refuse ``__bool__``, ``__float__``,
``__int__`` and ``__index__`` (the CPU analogue of ``cupyx.allow_synchronize(False)``):
a kernel that silently synchronises fails there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import array_api_strict
import pytest

from imagingsim.backend import cupy_status, get_backend
from imagingsim.backend._strict import DEVICE as STRICT_DEVICE

BACKEND_NAMES = ("numpy", "strict", "cupy")
_GUARDED = ("__bool__", "__float__", "__int__", "__index__", "__complex__")


def _guard(original, name):
    def guarded(self, *args, **kwargs):
        if self.device == STRICT_DEVICE:
            raise RuntimeError(f"implicit device->host synchronisation: {name} on a device array")
        return original(self, *args, **kwargs)

    return guarded


@pytest.fixture(params=BACKEND_NAMES)
def backend(request, monkeypatch):
    """Each backend in turn, with its transfer counters reset."""
    name = request.param
    if name == "cupy":
        usable, reason = cupy_status()
        if not usable:
            pytest.skip(f"cupy backend: {reason}")
    be = get_backend(name)
    if name == "strict":
        install_strict_guards(monkeypatch)
    be.transfers.reset()
    return be


def install_strict_guards(monkeypatch) -> None:
    """Make strict device arrays refuse implicit host conversion for the rest of the test."""
    array_cls = array_api_strict._array_object.Array
    for dunder in _GUARDED:
        monkeypatch.setattr(array_cls, dunder, _guard(getattr(array_cls, dunder), dunder))


@pytest.fixture
def numpy_backend():
    return get_backend("numpy")


# --- the official BIDS validator -------------------------------------------------------------

VALIDATOR_VERSION = "1.15.0"
_NETWORK_ERROR = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|"
    r"network|socket hang up|getaddrinfo|request to \S+ failed",
    re.IGNORECASE,
)


def _install_bids_validator() -> Path:
    """The npm ``bids-validator`` 1.x binary, installed once into a cache directory."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("bids-validator needs Node.js and npm, which are not installed")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imagingsim" / "bids-validator"
    binary = cache / "node_modules" / ".bin" / "bids-validator"
    manifest = cache / "node_modules" / "bids-validator" / "package.json"
    if binary.exists() and manifest.exists() and json.loads(manifest.read_text()).get("version") == VALIDATOR_VERSION:
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [npm, "install", "--prefix", str(cache), f"bids-validator@{VALIDATOR_VERSION}", "--no-audit", "--no-fund"],
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("npm install bids-validator timed out (registry unreachable?)")
    if proc.returncode != 0:
        if _NETWORK_ERROR.search(proc.stderr + proc.stdout):
            pytest.skip(f"npm registry unreachable: {proc.stderr.strip().splitlines()[-1:]}")
        pytest.fail(f"npm install bids-validator failed:\n{proc.stderr[-3000:]}")
    assert binary.exists(), f"npm install succeeded but {binary} is missing"
    return binary



@pytest.fixture(scope="session")
def bids_validator():
    """``validate(path) -> {"errors": [...], "warnings": [...], "summary": {...}}``.

    Runs the official validator (npm ``bids-validator`` 1.x, installed on first use); skips
    with the reason only when Node/npm are missing or the npm registry cannot be reached.
    """
    binary = _install_bids_validator()

    def validate(path: Path) -> dict:
        proc = subprocess.run([str(binary), str(path), "--json"], check=False, capture_output=True, text=True,
                              timeout=300)
        start = proc.stdout.find("{")
        assert start >= 0, f"validator printed no JSON (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        report = json.loads(proc.stdout[start:])
        for warning in report["issues"]["warnings"]:
            print(f"bids-validator warning {warning['key']}: {warning.get('reason')}")
        errors = [
            f"{e['key']}: {e.get('reason')} {[f.get('file', {}).get('relativePath') for f in e.get('files', [])][:5]}"
            for e in report["issues"]["errors"]
        ]
        return {"errors": errors, "warnings": report["issues"]["warnings"], "summary": report["summary"]}

    return validate


@pytest.fixture(scope="session")
def bids_validator_deno():
    """``validate(path) -> {"errors": [(code, location)], "subjects": [...]}`` with the current
    BIDS validator (``bids-validator-deno`` from PyPI, a test dependency)."""
    import sys

    found = shutil.which("bids-validator-deno") or shutil.which("bids-validator-deno", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("bids-validator-deno is not installed: pip install -e '.[test]'")

    def validate(path: Path) -> dict:
        proc = subprocess.run([found, str(path), "--format", "json"], capture_output=True, text=True, timeout=600,
                              check=False)
        report = json.loads(proc.stdout)
        issues = report["issues"]["issues"]
        return {"errors": [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"],
                "subjects": report["summary"]["subjects"]}

    return validate
