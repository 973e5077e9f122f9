"""The ground-truth derivative (``derivatives/truth/``): the scenario, tissue and tumour
segmentations, phantom property maps, the delivery files and the README documenting them."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from imagingsim.dataset.delivery import agent_quantities, write_agent
from imagingsim.dataset.layout import (
    CONVENTIONS,
    TRUTH_PIPELINE,
    extension_suffixes,
    identity,
    property_desc,
    scenario_summary,
    truth_bidsignore_patterns,
    truth_files,
)
from imagingsim.io.atomic import atomic_write_text
from imagingsim.io.host import host_array
from imagingsim.io.nifti import write_nifti
from imagingsim.io.sidecars import (
    BIDS_VERSION,
    LICENSE,
    generated_by,
    write_json,
    write_tsv,
)
from imagingsim.phantom.model import OPTIONAL_PROPERTY_UNITS, PROPERTY_UNITS, Label

#: Distinct colours for the tissue lookup table (``#RRGGBB``), by :class:`Label` value.
LABEL_COLOURS = {
    Label.AIR: "#000000",
    Label.SOFT_TISSUE: "#c86464",
    Label.FAT: "#f0dc8c",
    Label.BONE: "#f5f5f0",
    Label.BLOOD_POOL: "#b4001e",
    Label.LIVER: "#8c3c14",
    Label.SPLEEN: "#6e1e50",
    Label.KIDNEY: "#dc7832",
    Label.LUNG: "#a0c8e6",
    Label.BRAIN: "#e6b4c8",
    Label.TUMOUR_VIABLE: "#32c832",
    Label.TUMOUR_HYPOXIC: "#3264dc",
    Label.TUMOUR_NECROTIC: "#5a5a5a",
}


LABEL_ABBREVIATIONS = {
    Label.AIR: "AIR",
    Label.SOFT_TISSUE: "ST",
    Label.FAT: "FAT",
    Label.BONE: "BONE",
    Label.BLOOD_POOL: "BLD",
    Label.LIVER: "LIV",
    Label.SPLEEN: "SPL",
    Label.KIDNEY: "KID",
    Label.LUNG: "LUNG",
    Label.BRAIN: "BRN",
    Label.TUMOUR_VIABLE: "TV",
    Label.TUMOUR_HYPOXIC: "TH",
    Label.TUMOUR_NECROTIC: "TN",
}


def _lookup_rows(labels: Iterable[int], names: Mapping[int, str], abbrev, colours) -> list[list[Any]]:
    return [[int(i), names[i], abbrev[i], colours[i]] for i in labels]


def _property_tables(phantom) -> list[tuple[str, str, str]]:
    """``(key, desc, units)`` of every property map, sorted by key; unknown keys are an error."""
    rows = []
    units = {**PROPERTY_UNITS, **OPTIONAL_PROPERTY_UNITS}
    for key in sorted(phantom.properties):
        if key not in units:
            raise ValueError(
                f"phantom property {key!r} has no entry in PROPERTY_DESC/PROPERTY_UNITS "
                "(imagingsim.phantom.model); add it there so its map gets a name and units"
            )
        rows.append((key, property_desc(key), units[key]))
    return rows


def _field_maps(delivery) -> list[tuple[str, str, Any]]:
    """``(desc, agent name, FieldMap)`` of every external field that acted on an agent.

    Written like the property maps (``anat/sub-<id>_desc-<agent><Field>_map``), so they
    match that documented pattern; none for agents without heat, light or magnet.
    """
    if delivery is None:
        return []
    return [
        (f"{result.agent.name}{name}", result.agent.name, fmap)
        for result in delivery.agents
        for name, fmap in sorted(getattr(result, "field_maps", {}).items())
    ]


def _truth_readme(scenario, phantom, delivery) -> str:
    lines = [
        f"# imagingsim ground truth: {scenario.name}",
        "",
        identity(scenario),
        "",
        "The exact truth behind the simulated images of the parent dataset: tissue segmentation,",
        "phantom property maps, per-agent concentration maps and kinetics, and the scenario that",
        "produced them. A BIDS derivative (DatasetType \"derivative\", raw dataset at ../../).",
        "",
        scenario_summary(scenario),
        "",
        "## Axes and units",
        "",
        CONVENTIONS,
        "",
        "## Files",
        "",
        f"Paths are relative to this directory; <id> is the subject ({scenario.subject_id}), <time> a",
        "session (one per schedule time, e.g. 24h), <agent> an agent name and <property> a property desc",
        "listed below. Every file under sub-<id>/ matches exactly one of these patterns.",
        "",
    ]
    for entry in truth_files():
        lines.append(f"- {entry.display()}")
        lines += textwrap.wrap(entry.meaning, 92, initial_indent="  ", subsequent_indent="  ")
        lines += textwrap.wrap(f"Units: {entry.units}.", 92, initial_indent="  ", subsequent_indent="  ")
    lines += ["", "Property maps of this phantom (desc value: phantom property, units):", ""]
    for key, desc, units in _property_tables(phantom):
        lines.append(f"- desc-{desc}: {key} ({units})")
    fields = _field_maps(delivery)
    if fields:
        heading = "External fields that acted on an agent, written as maps like the properties (desc value: meaning, units):"
        lines += ["", heading, ""]
        for desc, name, fmap in fields:
            lines.append(f"- desc-{desc}: agent {name}, {fmap.what} ({fmap.units})")
    if delivery is not None and delivery.agents:
        lines += ["", "Agents of this dataset (desc values of their files):", ""]
        for result in delivery.agents:
            name = result.agent.name
            descs = [f"{name}{q.quantity}" for q in agent_quantities(result)]
            if getattr(result, "drug_ledger_ug", None) is not None:
                descs.append(f"{name}Drug")
            lines.append(f"- {name}: " + ", ".join(f"desc-{d}" for d in dict.fromkeys([f"{name}Carrier", *descs])))
    lines += [
        "",
        "## What is BIDS and what is not",
        "",
        "- Entities: only `sub`, `ses` and `desc` (BIDS 1.9). The agent and the quantity are both encoded",
        "  in `desc` as <agent><Quantity>, for example desc-pegliposomeCarrier, ...FreeDrug,",
        "  ...BoundDrug, ...EncapsulatedDrug (concentration maps) and ...Drug (drug ledger).",
        "  Sidecars repeat them as the keys Agent and Quantity.",
        "- Suffixes defined by BIDS: `_dseg` (derivative segmentation, with its .tsv lookup table).",
        "- Suffixes that are imagingsim extensions, NOT defined by BIDS 1.9:",
        *(f"  - `_{suffix}`: {what}" for suffix, what in extension_suffixes().items()),
        "- The `delivery/` folder is an imagingsim extension, not a BIDS datatype.",
        "- `.bidsignore` lists exactly these suffixes and folders (and the modality folders that are not BIDS",
        "  datatypes), so the BIDS validator checks the rest of this derivative and passes over the extensions.",
        "- The blood curve is `_bloodcurve`, not BIDS-PET's `_blood` recording; the concentration maps",
        "  are timed by the imagingsim keys `SampleTime_s`, `SampleTime_h` and `ReferenceTime`, not",
        "  by the BIDS-PET keys TimeZero, FrameTimesStart or FrameDuration (each map is an instantaneous",
        "  sample, not a frame).",
        "",
    ]
    return "\n".join(lines)


def write_truth(truth: Path, scenario, phantom, delivery, backend) -> None:
    sub = f"sub-{scenario.subject_id}"
    grid = phantom.grid
    spatial_reference = f"bids:raw:{sub}/anat/{sub}_T1map.nii.gz"
    properties = _property_tables(phantom)  # fails before anything is written for an unknown key
    write_json(
        truth / "dataset_description.json",
        {
            "Name": f"imagingsim ground truth: {scenario.name}",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": generated_by(scenario, TRUTH_PIPELINE),
            "DatasetLinks": {"raw": "../../"},
            "License": LICENSE,
        },
    )
    atomic_write_text(truth / "README", _truth_readme(scenario, phantom, delivery))
    # BIDS has no names for concentration maps, property maps or mass ledgers: the validator is
    # told to pass over exactly the extension files and folders the README documents.
    atomic_write_text(truth / ".bidsignore", "".join(f"{p}\n" for p in truth_bidsignore_patterns()))
    write_json(truth / sub / f"{sub}_scenario.json", scenario.model_dump(mode="json"))

    anat = truth / sub / "anat"
    anat.mkdir(parents=True)
    # tissue segmentation
    labels = host_array(backend, phantom.labels, np.uint8)
    write_nifti(anat / f"{sub}_dseg.nii.gz", labels, grid, description="imagingsim tissue labels")
    names = {int(label): label.bids_name for label in Label}
    write_tsv(
        anat / f"{sub}_dseg.tsv",
        ["index", "name", "abbreviation", "color"],
        _lookup_rows([int(label) for label in Label], names, LABEL_ABBREVIATIONS, LABEL_COLOURS),
    )
    write_json(
        anat / f"{sub}_dseg.json",
        {
            "Description": "Tissue segmentation of the phantom; label values are listed in the .tsv lookup table.",
            "Units": "label index (dimensionless)",
            "SpatialReference": spatial_reference,
            "Materials": {names.get(int(k), str(k)): v for k, v in sorted(phantom.materials.items())},
        },
    )
    # tumour index
    tumour_index = host_array(backend, phantom.tumour_index, np.uint8)
    write_nifti(anat / f"{sub}_desc-tumours_dseg.nii.gz", tumour_index, grid, description="imagingsim tumour index")
    tumours = list(scenario.phantom.tumours)
    write_tsv(
        anat / f"{sub}_desc-tumours_dseg.tsv",
        ["index", "name"],
        [[0, "background"]] + [[n + 1, t.name] for n, t in enumerate(tumours)],
    )
    write_json(
        anat / f"{sub}_desc-tumours_dseg.json",
        {
            "Description": "Tumour index: 0 outside tumours, n + 1 inside the scenario's tumour n (see the .tsv).",
            "Units": "label index (dimensionless)",
            "SpatialReference": spatial_reference,
        },
    )
    # property maps
    for key, desc, units in properties:
        data = host_array(backend, phantom.properties[key], np.float32)
        write_nifti(anat / f"{sub}_desc-{desc}_map.nii.gz", data, grid, description=f"imagingsim truth {key}")
        write_json(
            anat / f"{sub}_desc-{desc}_map.json",
            {
                "Description": f"Noise-free phantom property map {key!r}.",
                "Property": key,
                "Units": units,
                "SpatialReference": spatial_reference,
            },
        )

    for desc, name, fmap in _field_maps(delivery):
        data = host_array(backend, fmap.values, np.float32)
        write_nifti(anat / f"{sub}_desc-{desc}_map.nii.gz", data, grid, description=f"imagingsim field {desc}")
        write_json(
            anat / f"{sub}_desc-{desc}_map.json",
            {
                "Description": f"External field that acted on agent {name!r}: {fmap.what}.",
                "Agent": name,
                "Units": fmap.units,
                "SpatialReference": spatial_reference,
            },
        )

    if delivery is not None:
        for agent_delivery in delivery.agents:
            write_agent(truth / sub, sub, grid, agent_delivery, labels, backend, spatial_reference)
