"""The one TOML reader: parsed once, every caller gets its own copy."""

from __future__ import annotations

import tomllib
from importlib import resources

from imagingsim.data.tables import read_table


def test_read_table_parses_the_package_file():
    text = resources.files("imagingsim.data").joinpath("radionuclides.toml").read_text(encoding="utf-8")
    assert read_table("radionuclides.toml") == tomllib.loads(text)


def test_each_call_returns_an_independent_deep_copy():
    first = read_table("radionuclides.toml")
    first["F18"]["half_life_s"] = -1.0
    first["In111"]["photon_energies_keV"].append(0.0)
    del first["Zr89"]
    second = read_table("radionuclides.toml")
    assert second["F18"]["half_life_s"] == 6586.2
    assert second["In111"]["photon_energies_keV"] == [171.3, 245.4]
    assert "Zr89" in second
