"""Which dye, emission window and band a NIRF acquisition images (the imaging channel)."""

from __future__ import annotations

from imagingsim.modalities.nirf.tables import (
    fluorophore,
)


def imaging_channel(spec, delivery):
    """The imaging channel of the NIRF settings ``spec`` (module docstring, "Channel").

    Returns
    -------
    dye : Fluorophore
        The dye of the first agent with a fluorophore label.
    window : {"NIR-I", "NIR-II"}
        ``modalities.nirf.window``, or the dye's native window for ``"auto"``.
    band : EmissionBand
        The dye's emission band in that window.
    labelled : list of (AgentDelivery, FluorophoreLabel)
        Every agent with a fluorophore label.
    imaged : tuple of str
        Names of the agents whose dye is the channel's.
    """
    labelled = [
        (item, label) for item in delivery.agents for label in item.agent.labels if label.kind == "fluorophore"
    ]
    if not labelled:
        raise ValueError("NIRF needs an agent with a fluorophore label")
    dye = fluorophore(labelled[0][1].dye)
    window = dye.native_window if spec.window == "auto" else spec.window
    imaged = tuple(item.agent.name for item, label in labelled if label.dye == dye.key)
    return dye, window, dye.windows[window], labelled, imaged
