"""The modality registry: names, lazy loading, one-line errors, the order modalities run in."""

from __future__ import annotations

import pytest

from imagingsim.cli import main
from imagingsim.modalities import registry
from imagingsim.modalities.base import Modality


@pytest.fixture
def fake_registrations(monkeypatch):
    """Replace the registrations for one test (and forget every cached lookup around it)."""

    def install(extra: dict[str, registry.Registration]):
        registry.clear_cache()
        real = registry.registrations()
        monkeypatch.setattr(registry, "registrations", lambda: {**real, **extra})

    yield install
    monkeypatch.undo()
    registry.clear_cache()


def test_builtins_come_first_in_their_order():
    assert registry.names()[:5] == ("pet", "mri", "nirf", "spect", "ct")
    assert all(registry.origin(n) == "built-in" for n in registry.names()[:5])


def test_a_modality_is_loaded_once_and_is_what_it_says():
    first = registry.get("pet")
    assert isinstance(first, Modality) and first.name == "pet" and registry.get("pet") is first


def test_unknown_name_lists_what_is_installed():
    with pytest.raises(registry.ModalityError) as info:
        registry.get("xray")
    assert str(info.value).startswith("unknown modality 'xray'; installed: pet, mri, nirf, spect, ct")
    assert "\n" not in str(info.value)


def test_ct_runs_before_spect_whatever_the_listed_order():
    # CT is ready with PET and goes first: SPECT fuses onto it (anatomical references first).
    assert registry.acquisition_order(["spect", "pet", "ct"]) == ["ct", "pet", "spect"]
    assert registry.acquisition_order(["spect"]) == ["spect"]  # CT not enabled: SPECT uses the true mu


def test_a_broken_plugin_is_an_environment_failure_not_bad_input(fake_registrations, tmp_path, capsys):
    fake_registrations({"broken": registry.Registration("broken", "no_such_package_xyz:MODALITY", "broken-plugin")})
    with pytest.raises(registry.ModalityLoadError, match=r"^modality 'broken' \(broken-plugin, no_such_package_xyz"):
        registry.get("broken")
    code = main(["simulate", "--out", str(tmp_path / "out"), "--set", "phantom.voxel_size_mm=2.0"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "broken-plugin" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_registration_that_is_not_a_modality_is_refused(fake_registrations):
    fake_registrations({"fake": registry.Registration("fake", "imagingsim.scenario:Scenario", "fake-plugin")})
    with pytest.raises(registry.ModalityLoadError, match="is not a Modality named 'fake'"):
        registry.get("fake")


def test_a_core_scenario_gets_its_modality_settings_validated_when_simulated():
    """scenario.load_scenario keeps [modalities.*] raw; simulate validates them through the registry."""
    from imagingsim import scenario as core
    from imagingsim.pipeline import simulate

    raw = core.load_scenario(None, ["phantom.voxel_size_mm=2.0", "schedule.times_h=[24.0]",
                                    'modalities.enabled=["pet"]', "modalities.pet.n_views=64"])
    assert raw.modalities.pet == {"scanner": "preclinical", "n_views": 64}  # the table as written
    subject = simulate(raw, backend="numpy")
    assert subject.scenario.modalities.pet.n_views == 64 and subject.acquisitions["pet"].geometry.n_angles == 64
    bad = core.load_scenario(None, ['modalities.enabled=["pet"]', "modalities.pet.n_views=3"])
    with pytest.raises(ValueError, match=r"^modalities\.pet\.n_views: "):
        simulate(bad, backend="numpy")

