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


def test_derived_nuclide_lists_equal_the_scenario_lists():
    assert NUCLIDE_NAMES == scenario.NUCLIDES
    assert POSITRON_EMITTERS == scenario.POSITRON_EMITTERS
    assert SINGLE_PHOTON_EMITTERS == scenario.SPECT_EMITTERS


def test_emitter_lists_split_the_table():
    assert set(POSITRON_EMITTERS).isdisjoint(SINGLE_PHOTON_EMITTERS)
    assert set(POSITRON_EMITTERS) | set(SINGLE_PHOTON_EMITTERS) == set(NUCLIDE_NAMES) == set(nuclide_table())
    assert all(nuclide(n).photon_energies_keV for n in SINGLE_PHOTON_EMITTERS)


def test_unknown_nuclide_is_one_line_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown radionuclide 'Xx99'; known: F18, Zr89"):
        nuclide("Xx99")
