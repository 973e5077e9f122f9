"""Write one simulated subject as a BIDS dataset with its ground truth as a derivative.

Layout (``<id>`` is ``scenario.subject_id``, ``<agent>`` an agent's name)::

    OUT/
      dataset_description.json  README  CHANGES  .bidsignore
      participants.tsv  participants.json
      sub-<id>/anat/sub-<id>_{T1map,T2starmap,PDmap}.nii.gz (+ .json)   noise-free qMRI at 3 T
      sourcedata/README                                                  raw acquisition data
      derivatives/truth/                                                 BIDS derivative
        dataset_description.json  README
        sub-<id>/sub-<id>_scenario.json                                  the validated scenario
        sub-<id>/anat/sub-<id>_dseg.nii.gz (+ .tsv, .json)               tissue labels
        sub-<id>/anat/sub-<id>_desc-tumours_dseg.nii.gz (+ .tsv, .json)  tumour index
        sub-<id>/anat/sub-<id>_desc-<property>_map.nii.gz (+ .json)      property maps
        sub-<id>/delivery/sub-<id>_desc-<agent><Quantity>_conc.nii.gz (+ .json)
              <Quantity> in Carrier, FreeDrug, BoundDrug, EncapsulatedDrug   4-D, ug/mL
        sub-<id>/delivery/sub-<id>_desc-<agent>Carrier_bloodcurve.tsv (+ .json)
        sub-<id>/delivery/sub-<id>_desc-<agent>{Carrier,Drug}_ledger.tsv (+ .json)
        sub-<id>/delivery/sub-<id>_desc-<agent>Carrier_uptake.tsv (+ .json)  %ID/g per region
        sub-<id>/<modality>/...                            each modality's truth (its truth_files)

Each registered modality (:mod:`imagingsim.modalities.registry`) adds its images,
``sourcedata/`` and truth files through ``extra_writers``.

Every file of the derivative matches one entry of :func:`truth_files`, which also writes the
derivative's README (meaning and units of each pattern). The core files use only the BIDS
entities ``sub`` and ``desc``; the agent and the quantity are both encoded in ``desc``
(agent names are letters and digits). The suffixes ``scenario``, ``map``, ``conc``,
``bloodcurve``, ``ledger`` and ``uptake``, those the modalities declare, and the
``delivery/`` folder are imagingsim extensions that BIDS 1.9 does not define
(:func:`extension_suffixes`); ``dseg`` is the BIDS derivative segmentation. The carrier
blood curve is deliberately not called ``_blood``: that suffix is the BIDS-PET blood
recording, with its own required columns and metadata. Likewise no core sidecar uses the
BIDS-PET timing keys ``TimeZero``, ``FrameTimesStart`` or ``FrameDuration``: the 4th axis
holds instantaneous samples, timed by ``SampleTimes_s`` (and ``SampleTimes_h``) from
``ReferenceTime``.

Everything is written inside one atomic staging directory (:func:`staged_directory`), so a
failure leaves no partial dataset. Outputs are byte-for-byte reproducible: JSON has sorted
keys, two-space indentation and a trailing newline; floats are rendered with Python's
shortest round-trip ``repr``; NIfTI files are gzipped with a zero mtime.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imagingsim.delivery.result import REGIONS
from imagingsim.io.atomic import atomic_write_text, staged_directory
from imagingsim.io.nifti import write_nifti
from imagingsim.io.sidecars import (
    BIDS_VERSION,
    LICENSE,
    TIME_REFERENCE,
    generated_by,
    plain,
    version,
    write_json,
    write_tsv,
)
from imagingsim.io.truth_files import TruthFile
from imagingsim.modalities import registry
from imagingsim.phantom.model import PROPERTY_DESC, PROPERTY_UNITS, Label

__all__ = [
    "CONC_QUANTITIES",
    "CORE_TRUTH_FILES",
    "EXTENSION_SUFFIXES",
    "bidsignore_patterns",
    "extension_suffixes",
    "property_desc",
    "truth_files",
    "write_dataset",
]

TRUTH_PIPELINE = "truth"


#: NCBI Taxonomy binomial names for ``participants.tsv`` (BIDS ``species`` column).
SPECIES_BINOMIAL = {"mouse": "mus musculus", "human": "homo sapiens"}

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

CONC_UNITS = "ug/mL"


@dataclass(frozen=True)
class ConcQuantity:
    """One 4-D concentration map an :class:`AgentDelivery` may carry."""

    quantity: str  # appended to the agent name in the desc entity: desc-<agent><quantity>
    attribute: str  # AgentDelivery attribute; the map is skipped when absent or None
    what: str  # one-line meaning, used in the sidecar and the README


#: The concentration maps written per agent (``..._desc-<agent><quantity>_conc.nii.gz``).
CONC_QUANTITIES: tuple[ConcQuantity, ...] = (
    ConcQuantity(
        "Carrier",
        "carrier_ug_per_ml",
        "total carrier (nanoparticle) mass per mL of tissue: intravascular carrier plus "
        "extravascular free, cell-associated and renal-transit carrier (v_b C_blood + (E + B + K) / V)",
    ),
    ConcQuantity(
        "FreeDrug",
        "free_drug_ug_per_ml",
        "released, unbound drug mass per mL of tissue: free drug in the voxel's blood plus "
        "free drug in the interstitium (v_b C_free,blood + F / V)",
    ),
    ConcQuantity(
        "BoundDrug",
        "bound_drug_ug_per_ml",
        "released drug bound in cells, mass per mL of tissue (G / V): drug that has left its "
        "carrier and bound intracellularly; drug still inside a carrier is not included",
    ),
    ConcQuantity(
        "EncapsulatedDrug",
        "encapsulated_drug_ug_per_ml",
        "drug still inside its carrier (not yet released), mass per mL of tissue: drug in "
        "circulating carrier in the voxel's blood plus drug in extravascular, cell-associated "
        "and renal-transit carrier",
    ),
)


_DELIVERY = "sub-<id>/delivery/sub-<id>_desc-<agent>"

#: Every file pattern of ``derivatives/truth/sub-<id>/``: the derivative README is written
#: from this table, and the tests check that every written file matches one entry.
CORE_TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/sub-<id>_scenario",
        (".json",),
        "The validated scenario that produced this dataset (input of the simulation).",
        "as named in each field (_h hours, _mm millimetres, _mg_per_kg, ...)",
    ),
    TruthFile(
        "sub-<id>/anat/sub-<id>_dseg",
        (".nii.gz", ".tsv", ".json"),
        "Tissue segmentation of the phantom; the .tsv lookup table lists index, name, "
        "abbreviation and color of every label; the .json gives the material of each label.",
        "label index (dimensionless)",
    ),
    TruthFile(
        "sub-<id>/anat/sub-<id>_desc-tumours_dseg",
        (".nii.gz", ".tsv", ".json"),
        "Tumour index: 0 outside tumours, n + 1 inside the scenario's tumour n (names in the .tsv).",
        "label index (dimensionless)",
    ),
    TruthFile(
        "sub-<id>/anat/sub-<id>_desc-<property>_map",
        (".nii.gz", ".json"),
        "Noise-free phantom property map, one per property listed below.",
        "per property, listed below and in the sidecar's Units",
    ),
    *(
        TruthFile(
            f"{_DELIVERY}{q.quantity}_conc",
            (".nii.gz", ".json"),
            f"4-D ground truth [x, y, z, t]: {q.what}. Volume n is the instantaneous value at "
            "SampleTimes_s[n] (sidecar). Written only when the agent has this quantity.",
            f"{CONC_UNITS} (mass per mL of tissue)",
        )
        for q in CONC_QUANTITIES
    ),
    TruthFile(
        f"{_DELIVERY}Carrier_bloodcurve",
        (".tsv", ".json"),
        "Carrier concentration in whole blood at the solver steps, thinned to at most ~2000 points (columns time, time_h, "
        "whole_blood_concentration). Not a BIDS-PET _blood recording.",
        f"time s, time_h h, whole_blood_concentration {CONC_UNITS}",
    ),
    TruthFile(
        f"{_DELIVERY}Carrier_ledger",
        (".tsv", ".json"),
        "Carrier mass balance: carrier mass in each compartment (one column each, described in "
        "the .json) at each time; the columns sum to the injected carrier mass.",
        "time s, time_h h, compartments ug",
    ),
    TruthFile(
        f"{_DELIVERY}Drug_ledger",
        (".tsv", ".json"),
        "Drug mass balance (agents with a payload): drug mass encapsulated, free, bound and "
        "eliminated, per compartment, at each time; the columns sum to the loaded drug mass.",
        "time s, time_h h, compartments ug",
    ),
    TruthFile(
        f"{_DELIVERY}Carrier_uptake",
        (".tsv", ".json"),
        "Carrier uptake per tissue region of the dseg (one column per label present, air "
        "excluded): all carrier in the region including its blood, per injected carrier mass "
        "and gram of tissue.",
        "time s, time_h h, regions %ID/g",
    ),
)

#: File-name suffixes of the derivative that BIDS 1.9 does not define, with their meaning.
EXTENSION_SUFFIXES: dict[str, str] = {
    "scenario": "the imagingsim scenario (JSON)",
    "map": "a phantom property map (3-D NIfTI)",
    "conc": "a concentration map (NIfTI; 4-D over time, or 3-D for one session)",
    "bloodcurve": "a blood concentration curve (TSV)",
    "ledger": "a mass-balance table (TSV)",
    "uptake": "a %ID/g table per region (TSV)",
}


def truth_files() -> tuple[TruthFile, ...]:
    """Every documented file pattern of the truth derivative: the core's, then each registered
    modality's (:attr:`~imagingsim.modalities.base.Modality.truth_files`), in registry order."""
    return CORE_TRUTH_FILES + tuple(t for name in registry.names() for t in registry.get(name).truth_files)


def extension_suffixes() -> dict[str, str]:
    """File-name suffixes of the truth derivative that BIDS does not define: the core's and the
    registered modalities' (:attr:`~imagingsim.modalities.base.Modality.extension_suffixes`)."""
    suffixes = dict(EXTENSION_SUFFIXES)
    for name in registry.names():
        suffixes.update(registry.get(name).extension_suffixes)
    return suffixes


def bidsignore_patterns() -> tuple[str, ...]:
    """``.bidsignore`` lines: the folder of each registered modality that BIDS does not define."""
    return tuple(f"**/{m.bids_datatype}/" for m in map(registry.get, registry.names()) if not m.bids_standard)

_TIME_COLUMNS = {
    "time": {"Description": f"Time since {TIME_REFERENCE.split(';')[0]}.", "Units": "s"},
    "time_h": {"Description": "The same time in hours (convenience copy of the time column).", "Units": "h"},
}

#: Meaning of the carrier ledger columns (imagingsim.delivery.result.LEDGER_KEYS) other than
#: the organ REGIONS; unknown columns get a generic description.
_CARRIER_LEDGER_MEANING = {
    "blood": "carrier circulating in the whole-body blood pool (counted once, including the blood inside organs)",
    "outside_fov": "extravascular carrier in the rest of the body, outside the field of view",
    "excreted_urine": "carrier excreted in urine (cumulative)",
    "excreted_feces": "carrier excreted in feces (cumulative)",
}
_ORGAN_LEDGER_MEANING = (
    "extravascular carrier (free, cell-associated and in renal transit) in region {name!r} "
    "(an organ missing from the field of view is a lumped compartment and counts here too)"
)
#: Meaning of the drug ledger columns (imagingsim.delivery.result.DRUG_LEDGER_KEYS).
_DRUG_LEDGER_MEANING = {
    "encapsulated_blood": "drug inside circulating carrier",
    "encapsulated_tissue": "drug inside extravascular, cell-associated and renal-transit carrier",
    "encapsulated_excreted": "drug excreted inside its carrier (urine, feces; cumulative)",
    "free_blood": "released, unbound drug in blood",
    "free_tissue": "released, unbound drug in the interstitium",
    "bound_tissue": "released drug bound in cells",
    "eliminated": "free drug eliminated from blood (cumulative)",
}


def property_desc(name: str) -> str:
    """The BIDS ``desc`` value of a property map (:data:`PROPERTY_DESC`).

    >>> property_desc("t2star_3T_ms")
    'T2starAt3T'
    """
    return PROPERTY_DESC[name]


# --- writer -----------------------------------------------------------------------------


def write_dataset(
    out_dir: str | os.PathLike,
    scenario,
    phantom,
    delivery,
    backend,
    *,
    overwrite: bool = False,
    extra_writers: Sequence[Callable[[Path], Any]] = (),
) -> list[Path]:
    """Write a BIDS dataset (raw qMRI truth + ground-truth derivative) for one subject.

    Parameters
    ----------
    out_dir : path-like
        Dataset root. Must be absent or empty unless ``overwrite``.
    scenario : Scenario
        The validated scenario (name, seed and ``subject_id`` are used; it is stored whole).
    phantom : Phantom
        Labels, tumour index and property maps (device arrays of ``backend``).
    delivery : DeliveryResult or None
        Per-agent concentration maps (``(nx, ny, nz, T)``), blood curves, ledgers and
        %ID/g; None writes no ``delivery/`` folder.
    backend : Backend
        Used only for explicit device -> host copies (:meth:`Backend.to_host`).
    overwrite : bool, keyword-only
        Replace a non-empty ``out_dir``; the old tree is removed only once the new one is
        complete.
    extra_writers : sequence of callables, keyword-only
        Each is called as ``writer(staging_root)`` after the built-in files, inside the same
        atomic build (modality modules add their files this way). An exception from one
        aborts the whole build and leaves ``out_dir`` as it was.

    Returns
    -------
    list of Path
        Every file in the finished dataset (paths under ``out_dir``), sorted.

    Raises
    ------
    ValueError
        ``out_dir`` is not empty and ``overwrite`` is false (one line).
    """
    out = Path(out_dir)
    with staged_directory(out, overwrite=overwrite) as stage:
        _write_top_level(stage, scenario, phantom)
        _write_raw_anat(stage, scenario, phantom, backend)
        truth = stage / "derivatives" / TRUTH_PIPELINE
        _write_truth(truth, scenario, phantom, delivery, backend)
        for writer in extra_writers:
            writer(stage)
        files = sorted(p.relative_to(stage) for p in stage.rglob("*") if p.is_file())
    return [out / f for f in files]


def _sub(scenario) -> str:
    return f"sub-{scenario.subject_id}"


def _write_top_level(stage: Path, scenario, phantom) -> None:
    sub = _sub(scenario)
    write_json(
        stage / "dataset_description.json",
        {
            "Name": f"imagingsim synthetic subject: {scenario.name}",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "License": LICENSE,
            "Authors": ["imagingsim (synthetic data generator)"],
            "GeneratedBy": generated_by(scenario),
            "HowToAcknowledge": (
                "Synthetic data: cite the imagingsim software and version given in GeneratedBy, "
                "and state the scenario name and seed so the data can be regenerated."
            ),
            "Keywords": ["synthetic", "phantom", "drug delivery", "nanoparticles", "ground truth"],
        },
    )
    species = SPECIES_BINOMIAL.get(phantom.species, phantom.species)
    write_tsv(
        stage / "participants.tsv",
        ["participant_id", "species", "weight"],
        [[sub, species, float(phantom.body_mass_g) / 1000.0]],
    )
    write_json(
        stage / "participants.json",
        {
            "participant_id": {"Description": "Unique participant identifier (the scenario's subject_id)."},
            "species": {
                "Description": "Binomial species name from the NCBI Taxonomy of the simulated subject.",
            },
            "weight": {
                "Description": "Whole-body mass of the simulated subject, including body parts outside the field of view.",
                "Units": "kg",
            },
        },
    )
    modalities = [registry.get(name) for name in registry.names()]
    titles = ", ".join(m.title for m in modalities)
    standard = [f"`{m.bids_datatype}/`" for m in modalities if m.bids_standard and m.bids_datatype != "anat"]
    ignored = [f"`{m.bids_datatype}/`" for m in modalities if not m.bids_standard]
    listed = ", ".join(standard) + (f", and the non-BIDS {', '.join(ignored)} listed in `.bidsignore`" if ignored else "")
    folders = textwrap.fill(f"- Further modality folders ({listed}) hold simulated acquisitions when enabled.", 92,
                            subsequent_indent="  ")
    readme = f"""# imagingsim synthetic dataset: {scenario.name}

{_identity(scenario)}

Simulated multimodal imaging ({titles}) of targeted cancer
drug delivery. Nothing here was measured on a living subject: every file is computed from a
numerical phantom and a drug-delivery model, and the exact truth behind every image is stored
alongside it. The same imagingsim version, scenario and seed regenerate every file byte for byte.

{_scenario_summary(scenario)}

## Axes and units

{_CONVENTIONS}

## Layout

- `{sub}/anat/`: noise-free quantitative relaxation maps of the phantom at 3 T (`_T1map` and
  `_T2starmap` in s, `_PDmap` relative to water). The ground truth the simulated acquisitions
  start from, not simulated acquisitions.
{folders}
- `sourcedata/`: raw acquisition data (k-space, sinograms, projections) when written.
- `derivatives/{TRUTH_PIPELINE}/`: the ground truth as a BIDS derivative (segmentation,
  phantom property maps, per-agent 4-D concentration maps, blood curves, mass ledgers, %ID/g
  tables and the scenario). Its README lists every file pattern with its meaning and units.
"""
    atomic_write_text(stage / "README", readme)
    atomic_write_text(
        stage / "CHANGES",
        f"1.0.0 n/a\n  - Generated by imagingsim {version()} from scenario {scenario.name} (seed {scenario.seed}).\n",
    )
    atomic_write_text(
        stage / ".bidsignore",
        "# Datatypes that BIDS does not define (imagingsim modalities without a BIDS datatype)\n"
        + "".join(f"{p}\n" for p in bidsignore_patterns()),
    )
    source = stage / "sourcedata"
    source.mkdir()
    atomic_write_text(
        source / "README",
        "Reserved for raw acquisition data (k-space, sinograms, projections) of the simulated scans.\n",
    )


_CONVENTIONS = """\
- Images are gzipped NIfTI-1 with qform = sform (code 1, scanner) mapping voxel indices to
  RAS+ millimetres; all images of a subject share one voxel grid. Arrays are indexed
  [x, y, z, t]: axis 0 runs along +x (right), 1 along +y (anterior), 2 along +z (superior),
  and the 4th axis, when present, is time. NIfTI units: mm and s.
- Times are in seconds from t = 0, the first injection (TSV column `time`, sidecar key
  `SampleTimes_s`); hours appear only as convenience copies (`time_h`, keys ending in `_h`).
- Concentrations are ug/mL (mass per mL of tissue, i.e. of voxel volume), masses ug, uptake
  %ID/g (percent of the injected carrier mass per gram of tissue). Every JSON sidecar states
  its Units, per column for TSV files; field names of the scenario carry their unit."""


def _identity(scenario) -> str:
    return (
        f"Scenario: {scenario.name}; seed: {scenario.seed}; subject: sub-{scenario.subject_id}; "
        f"generated by imagingsim {version()}."
    )


def _scenario_summary(scenario) -> str:
    tumours = ", ".join(f"{t.name} (radius {t.radius_mm!r} mm)" for t in scenario.phantom.tumours) or "none"
    agents = ", ".join(f"{a.name} ({a.carrier}, {a.dose_mg_per_kg!r} mg/kg)" for a in scenario.agents)
    times = ", ".join(repr(float(t)) for t in scenario.schedule.times_h)
    return (
        f"Description: {scenario.description or 'n/a'}\n"
        f"Phantom: {scenario.phantom.anatomy}, {scenario.phantom.voxel_size_mm!r} mm voxels; tumours: {tumours}\n"
        f"Agents: {agents}\n"
        f"Sample times (h after t = 0): {times}"
    )


def _host(backend, array, dtype) -> np.ndarray:
    return np.asarray(backend.to_host(array)).astype(dtype, copy=False)


_QMRI_MAPS = (
    # (suffix, property key, scale to BIDS units, Units, what)
    ("T1map", "t1_3T_ms", 1e-3, "s", "longitudinal relaxation time T1"),
    ("T2starmap", "t2star_3T_ms", 1e-3, "s", "effective transverse relaxation time T2*"),
    ("PDmap", "proton_density", 1.0, "arbitrary", "proton density relative to water (water = 1)"),
)


def _write_raw_anat(stage: Path, scenario, phantom, backend) -> None:
    sub = _sub(scenario)
    anat = stage / sub / "anat"
    anat.mkdir(parents=True)
    for suffix, key, scale, units, what in _QMRI_MAPS:
        data = _host(backend, phantom.properties[key], np.float64) * scale
        base = anat / f"{sub}_{suffix}"
        write_nifti(
            f"{base}.nii.gz", data.astype(np.float32), phantom.grid, description=f"imagingsim truth {suffix} 3T"
        )
        write_json(
            f"{base}.json",
            {
                "MagneticFieldStrength": 3,
                "Units": units,
                "Description": (
                    f"Noise-free ground truth of the imagingsim phantom: {what} at 3 T, "
                    f"from the phantom property {key!r}. Not a simulated acquisition."
                ),
                "EstimationAlgorithm": "none (phantom ground truth, no fitting)",
                "Manufacturer": "imagingsim",
                "ManufacturersModelName": "numerical phantom",
            },
        )


def _lookup_rows(labels: Iterable[int], names: Mapping[int, str], abbrev, colours) -> list[list[Any]]:
    return [[int(i), names[i], abbrev[i], colours[i]] for i in labels]


def _property_tables(phantom) -> list[tuple[str, str, str]]:
    """``(key, desc, units)`` of every property map, sorted by key; unknown keys are an error."""
    rows = []
    for key in sorted(phantom.properties):
        if key not in PROPERTY_DESC or key not in PROPERTY_UNITS:
            raise ValueError(
                f"phantom property {key!r} has no entry in PROPERTY_DESC/PROPERTY_UNITS "
                "(imagingsim.phantom.model); add it there so its map gets a name and units"
            )
        rows.append((key, property_desc(key), PROPERTY_UNITS[key]))
    return rows


def _agent_quantities(result) -> list[ConcQuantity]:
    """The concentration maps this agent carries (attribute present and not None)."""
    return [q for q in CONC_QUANTITIES if getattr(result, q.attribute, None) is not None]


def _truth_readme(scenario, phantom, delivery) -> str:
    lines = [
        f"# imagingsim ground truth: {scenario.name}",
        "",
        _identity(scenario),
        "",
        "The exact truth behind the simulated images of the parent dataset: tissue segmentation,",
        "phantom property maps, per-agent concentration maps and kinetics, and the scenario that",
        "produced them. A BIDS derivative (DatasetType \"derivative\", raw dataset at ../../).",
        "",
        _scenario_summary(scenario),
        "",
        "## Axes and units",
        "",
        _CONVENTIONS,
        "",
        "## Files",
        "",
        f"Paths are relative to this directory; <id> is the subject ({scenario.subject_id}), <agent> an",
        "agent name and <property> a property desc listed below. Every file under sub-<id>/ matches",
        "exactly one of these patterns.",
        "",
    ]
    for entry in truth_files():
        lines.append(f"- {entry.display()}")
        lines += textwrap.wrap(entry.meaning, 92, initial_indent="  ", subsequent_indent="  ")
        lines += textwrap.wrap(f"Units: {entry.units}.", 92, initial_indent="  ", subsequent_indent="  ")
    lines += ["", "Property maps of this phantom (desc value: phantom property, units):", ""]
    for key, desc, units in _property_tables(phantom):
        lines.append(f"- desc-{desc}: {key} ({units})")
    if delivery is not None and delivery.agents:
        lines += ["", "Agents of this dataset (desc values of their files):", ""]
        for result in delivery.agents:
            name = result.agent.name
            descs = [f"{name}{q.quantity}" for q in _agent_quantities(result)]
            if getattr(result, "drug_ledger_ug", None) is not None:
                descs.append(f"{name}Drug")
            lines.append(f"- {name}: " + ", ".join(f"desc-{d}" for d in dict.fromkeys([f"{name}Carrier", *descs])))
    lines += [
        "",
        "## What is BIDS and what is not",
        "",
        "- Entities: only `sub` and `desc` (BIDS 1.9). The agent and the quantity are both encoded",
        "  in `desc` as <agent><Quantity>, for example desc-pegliposomeCarrier, ...FreeDrug,",
        "  ...BoundDrug, ...EncapsulatedDrug (concentration maps) and ...Drug (drug ledger).",
        "  Sidecars repeat them as the keys Agent and Quantity.",
        "- Suffixes defined by BIDS: `_dseg` (derivative segmentation, with its .tsv lookup table).",
        "- Suffixes that are imagingsim extensions, NOT defined by BIDS 1.9:",
        *(f"  - `_{suffix}`: {what}" for suffix, what in extension_suffixes().items()),
        "- The `delivery/` folder is an imagingsim extension, not a BIDS datatype.",
        "- The blood curve is `_bloodcurve`, not BIDS-PET's `_blood` recording; the 4-D maps are",
        "  timed by the imagingsim keys `SampleTimes_s`, `SampleTimes_h` and `ReferenceTime`, not",
        "  by the BIDS-PET keys TimeZero, FrameTimesStart or FrameDuration (volumes are instantaneous",
        "  samples, not frames).",
        "",
    ]
    return "\n".join(lines)


def _write_truth(truth: Path, scenario, phantom, delivery, backend) -> None:
    sub = _sub(scenario)
    grid = phantom.grid
    spatial_reference = f"bids:raw:{sub}/anat/{sub}_T1map.nii.gz"
    properties = _property_tables(phantom)  # fails before anything is written for an unknown key
    write_json(
        truth / "dataset_description.json",
        {
            "Name": f"imagingsim ground truth: {scenario.name}",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": generated_by(scenario),
            "DatasetLinks": {"raw": "../../"},
            "License": LICENSE,
        },
    )
    atomic_write_text(truth / "README", _truth_readme(scenario, phantom, delivery))
    write_json(truth / sub / f"{sub}_scenario.json", scenario.model_dump(mode="json"))

    anat = truth / sub / "anat"
    anat.mkdir(parents=True)
    # tissue segmentation
    labels = _host(backend, phantom.labels, np.uint8)
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
    tumour_index = _host(backend, phantom.tumour_index, np.uint8)
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
        data = _host(backend, phantom.properties[key], np.float32)
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

    if delivery is not None:
        for agent_delivery in delivery.agents:
            _write_agent(truth / sub / "delivery", sub, grid, agent_delivery, labels, backend, spatial_reference)


def _time_rows(times_h: Sequence[float]) -> list[list[float]]:
    """``[time_s, time_h]`` for each time in hours."""
    return [[float(t) * 3600.0, float(t)] for t in times_h]


def _write_agent(folder: Path, sub: str, grid, result, labels: np.ndarray, backend, spatial_reference) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    agent = result.agent
    name = agent.name
    prefix = folder / f"{sub}_desc-{name}"
    times_h = [float(t) for t in result.times_h]
    times_s = [t * 3600.0 for t in times_h]
    payload = getattr(agent, "payload", None)
    drug = payload.drug if payload is not None else None
    common = {
        "Agent": name,
        "Units": CONC_UNITS,
        "SampleTimes_s": times_s,
        "SampleTimes_h": times_h,
        "ReferenceTime": TIME_REFERENCE,
        "InjectionTime_h": float(agent.injection_time_h),
        "InjectedMass_ug": float(result.injected_mass_ug),
        "InjectedDrug_ug": float(result.injected_drug_ug),
        "DosePerBodyMass_mg_per_kg": float(agent.dose_mg_per_kg),
        "Carrier": agent.carrier,
        "CarrierParameters": plain(result.carrier),
        "Drug": drug,
        "Labels": [plain(label) for label in getattr(agent, "labels", ())],
        "SpatialReference": spatial_reference,
    }
    for q in _agent_quantities(result):
        data = _host(backend, getattr(result, q.attribute), np.float32)
        if data.ndim != 4 or data.shape[3] != len(times_s):
            raise ValueError(
                f"agent {name}: {q.attribute} has shape {data.shape}; expected {tuple(grid.shape) + (len(times_s),)}"
            )
        base = f"{prefix}{q.quantity}_conc"
        write_nifti(
            f"{base}.nii.gz", data, grid, frame_times_s=times_s, description=f"imagingsim {name} {q.quantity} ug/mL"
        )
        write_json(
            f"{base}.json",
            dict(
                common,
                Quantity=q.quantity,
                Description=(
                    f"Ground truth of agent {name!r}: {q.what}. Volume n (4th axis) is the "
                    "instantaneous value at SampleTimes_s[n] (s) = SampleTimes_h[n] (h) after t = 0."
                ),
            ),
        )

    # carrier blood curve (solver steps, thinned)
    blood_h = [float(t) for t in result.blood_curve_h]
    write_tsv(
        f"{prefix}Carrier_bloodcurve.tsv",
        ["time", "time_h", "whole_blood_concentration"],
        [row + [c] for row, c in zip(_time_rows(blood_h), result.blood_curve_ug_per_ml)],
    )
    write_json(
        f"{prefix}Carrier_bloodcurve.json",
        {
            "Agent": name,
            "Quantity": "Carrier",
            "Description": (
                f"Carrier concentration of agent {name!r} in whole blood at the solver steps (thinned to at most ~2000 points) "
                "(an imagingsim table, not a BIDS-PET blood recording)."
            ),
            **_TIME_COLUMNS,
            "whole_blood_concentration": {
                "Description": "Carrier mass per mL of whole blood.",
                "Units": CONC_UNITS,
            },
        },
    )
    # mass ledgers
    ledgers = [("Carrier", result.ledger_ug)]
    if getattr(result, "drug_ledger_ug", None) is not None:
        ledgers.append(("Drug", result.drug_ledger_ug))
    for quantity, ledger in ledgers:
        compartments = list(ledger)
        n = {len(ledger[c]) for c in compartments}
        if len(n) > 1:
            raise ValueError(f"agent {name}: {quantity.lower()} ledger columns differ in length")
        length = n.pop() if n else len(times_h)
        ledger_times = _ledger_times(result, length, name)
        write_tsv(
            f"{prefix}{quantity}_ledger.tsv",
            ["time", "time_h"] + compartments,
            [row + [ledger[c][i] for c in compartments] for i, row in enumerate(_time_rows(ledger_times))],
        )
        total = "injected carrier mass" if quantity == "Carrier" else "loaded drug mass"
        sidecar: dict[str, Any] = {
            "Agent": name,
            "Quantity": quantity,
            "Description": (
                f"Mass balance of the {quantity.lower()} of agent {name!r}: mass in each compartment; "
                f"the compartments sum to the {total}."
            ),
            **_TIME_COLUMNS,
        }
        for c in compartments:
            sidecar[c] = {"Description": _ledger_meaning(quantity, c), "Units": "ug"}
        write_json(f"{prefix}{quantity}_ledger.json", sidecar)
    # %ID/g per region present in the segmentation
    present = [Label(v) for v in np.unique(labels).tolist() if v in Label._value2member_map_ and v != Label.AIR]
    columns = [label.bids_name for label in present]
    values = {label.bids_name: list(result.percent_id_per_g(label)) for label in present}
    write_tsv(
        f"{prefix}Carrier_uptake.tsv",
        ["time", "time_h"] + columns,
        [row + [values[c][i] for c in columns] for i, row in enumerate(_time_rows(times_h))],
    )
    sidecar = {
        "Agent": name,
        "Quantity": "Carrier",
        "Description": (
            f"Carrier uptake of agent {name!r} per tissue region: all carrier in the region, including "
            "the blood it contains, in percent of the injected carrier mass per gram of tissue."
        ),
        **_TIME_COLUMNS,
    }
    for c in columns:
        sidecar[c] = {"Description": f"Uptake in the voxels labelled {c!r} in the dseg.", "Units": "%ID/g"}
    write_json(f"{prefix}Carrier_uptake.json", sidecar)


def _ledger_meaning(quantity: str, column: str) -> str:
    if quantity == "Drug":
        what = _DRUG_LEDGER_MEANING.get(column, f"drug in compartment {column!r}")
    elif column in _CARRIER_LEDGER_MEANING:
        what = _CARRIER_LEDGER_MEANING[column]
    elif column in REGIONS:
        what = _ORGAN_LEDGER_MEANING.format(name=column)
    else:
        what = f"carrier in compartment {column!r}"
    return f"{quantity} mass: {what}."


def _ledger_times(result, length: int, name: str) -> list[float]:
    """The time axis a ledger is sampled on (hours): the sample times or the blood-curve times."""
    if length == len(result.times_h):
        return [float(t) for t in result.times_h]
    if length == len(result.blood_curve_h):
        return [float(t) for t in result.blood_curve_h]
    raise ValueError(f"agent {name}: ledger has {length} samples, matching neither times_h nor blood_curve_h")
