"""The imaging channel: which dye, emission window and band a NIRF acquisition images.

The channel is that of the dye of the first agent with a fluorophore label: its excitation
line and, in the window (``modalities.nirf.window``; ``auto`` = the dye's native window),
its emission filter band (``data/fluorophores.toml``). Every agent with the same dye is
imaged (their concentrations add); agents labelled with another dye are in another channel
and are not imaged (their concentration maps are still written as truth).
"""

from __future__ import annotations

from typing import Any

from imagingsim.modalities.nirf.tables import fluorophore


def fluorophore_labels(delivery) -> list[tuple[Any, Any]]:
    """Every (AgentDelivery, FluorophoreLabel) pair of ``delivery``, in agent and label order."""
    return [(item, label) for item in delivery.agents for label in item.agent.labels if label.kind == "fluorophore"]


def imaging_channel(spec, delivery):
    """The imaging channel of the NIRF settings ``spec`` (module docstring).

    Parameters
    ----------
    spec : NIRFSpec
        ``modalities.nirf`` (its ``window``).
    delivery : imagingsim.delivery.DeliveryResult
        The agents and their labels.

    Returns
    -------
    dye : Fluorophore
        The dye of the first agent with a fluorophore label.
    window : {"NIR-I", "NIR-II"}
        ``modalities.nirf.window``, or the dye's native window for ``"auto"``.
    band : EmissionBand
        The dye's emission band in that window.
    labelled : list of (AgentDelivery, FluorophoreLabel)
        Every agent with a fluorophore label (:func:`fluorophore_labels`).
    imaged : tuple of str
        Names of the agents whose dye is the channel's.

    Raises
    ------
    ValueError
        When no agent has a fluorophore label.
    """
    labelled = fluorophore_labels(delivery)
    if not labelled:
        raise ValueError("NIRF needs an agent with a fluorophore label")
    dye = fluorophore(labelled[0][1].dye)
    window = dye.native_window if spec.window == "auto" else spec.window
    imaged = tuple(item.agent.name for item, label in labelled if label.dye == dye.key)
    return dye, window, dye.windows[window], labelled, imaged


def dye_concentrations(delivery) -> dict[str, Any]:
    """Dye concentration of every fluorophore agent, nmol/mL: carrier ug/mL x dye_nmol_per_mg / 1000.

    Parameters
    ----------
    delivery : imagingsim.delivery.DeliveryResult
        Carrier concentration maps ``(nx, ny, nz, T)`` per agent, ug/mL.

    Returns
    -------
    dict of str -> device array ``(nx, ny, nz, T)``
        By agent name.
    """
    return {item.agent.name: item.carrier_ug_per_ml * (label.dye_nmol_per_mg / 1000.0)
            for item, label in fluorophore_labels(delivery)}


__all__ = ["dye_concentrations", "fluorophore_labels", "imaging_channel"]
