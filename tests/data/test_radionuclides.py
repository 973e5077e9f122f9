"""The nuclide lists derived from data/radionuclides.toml match the scenario's (keeps them in sync)."""

from __future__ import annotations

import pytest

from imagingsim import scenario
from imagingsim.data.radionuclides import (
    NUCLIDE_NAMES,
    POSITRON_EMITTERS,
    SINGLE_PHOTON_EMITTERS,
    nuclide,
    nuclide_table,
)


def test_the_scenario_schema_accepts_exactly_the_tabulated_nuclides():
    """scenario.py takes its nuclide names from the table: a new row is a new allowed label."""
    assert scenario.NUCLIDES == NUCLIDE_NAMES == ("F18", "Zr89", "Cu64", "Ga68", "Tc99m", "In111", "Lu177")
    assert scenario.POSITRON_EMITTERS == POSITRON_EMITTERS == ("F18", "Zr89", "Cu64", "Ga68")
    assert scenario.SINGLE_PHOTON_EMITTERS == SINGLE_PHOTON_EMITTERS == ("Tc99m", "In111", "Lu177")
    label = {"kind": "radionuclide", "specific_activity_MBq_per_mg": 1.0}
    for name in NUCLIDE_NAMES:
        assert scenario.RadionuclideLabel.model_validate({**label, "nuclide": name}).nuclide == name
    with pytest.raises(ValueError, match="nuclide"):
        scenario.RadionuclideLabel.model_validate({**label, "nuclide": "Xx99"})


def test_emitter_lists_split_the_table():
    assert set(POSITRON_EMITTERS).isdisjoint(SINGLE_PHOTON_EMITTERS)
    assert set(POSITRON_EMITTERS) | set(SINGLE_PHOTON_EMITTERS) == set(NUCLIDE_NAMES) == set(nuclide_table())
    assert all(nuclide(n).photon_energies_keV for n in SINGLE_PHOTON_EMITTERS)


def test_unknown_nuclide_is_one_line_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown radionuclide 'Xx99'; known: F18, Zr89"):
        nuclide("Xx99")


def test_lu177_photopeak_yields_match_ensdf():
    """ENSDF (NNDC NuDat) gives 10.36(7) % at 208.4 keV and 6.20(7) % at 112.9 keV; the
    tolerance is the evaluation's uncertainty, tight enough to catch a rounded 11 %."""
    from imagingsim.data.radionuclides import nuclide

    lu = nuclide("Lu177")
    yields = dict(zip(lu.photon_energies_keV, lu.photon_yields))
    assert abs(yields[208.4] - 0.1036) <= 0.0007
    assert abs(yields[112.9] - 0.0620) <= 0.0007
