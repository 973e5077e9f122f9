"""Write one simulated subject as a BIDS dataset with its ground truth as a derivative.

Layout (``<id>`` is ``scenario.subject_id``)::

    OUT/
      dataset_description.json  README  CHANGES  .bidsignore
      participants.tsv  participants.json
      sub-<id>/anat/sub-<id>_{T1map,T2starmap,PDmap}.nii.gz (+ .json)   noise-free qMRI at 3 T
      sourcedata/README                                                  raw acquisition data
      derivatives/truth/
        dataset_description.json  README
        sub-<id>/sub-<id>_scenario.json                                  the validated scenario
        sub-<id>/anat/sub-<id>_dseg.nii.gz (+ .tsv, .json)               tissue labels
        sub-<id>/anat/sub-<id>_desc-tumours_dseg.nii.gz (+ .tsv, .json)  tumour index
        sub-<id>/anat/sub-<id>_desc-<property>_map.nii.gz (+ .json)      property maps
        sub-<id>/delivery/sub-<id>_agent-<name>_desc-{carrier,freedrug,bounddrug}_conc.nii.gz (+ .json)
        sub-<id>/delivery/sub-<id>_agent-<name>_blood.tsv (+ .json)      blood curve
        sub-<id>/delivery/sub-<id>_agent-<name>_desc-{carrier,drug}_ledger.tsv (+ .json)
        sub-<id>/delivery/sub-<id>_agent-<name>_uptake.tsv (+ .json)     %ID/g per region

Everything is written inside one atomic staging directory (:func:`staged_directory`), so a
failure leaves no partial dataset. Outputs are byte-for-byte reproducible: JSON has sorted
keys, two-space indentation and a trailing newline; floats are rendered with Python's
shortest round-trip ``repr``; NIfTI files are gzipped with a zero mtime.
"""

from __future__ import annotations

import json
import math
import os
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from imagingsim.io.atomic import atomic_write_text, staged_directory
from imagingsim.io.nifti import write_nifti
from imagingsim.phantom.model import PROPERTY_DESC, PROPERTY_UNITS, Label

__all__ = [
    "BIDS_VERSION",
    "BIDSIGNORE_PATTERNS",
    "format_value",
    "json_text",
    "property_desc",
    "write_dataset",
    "write_json",
    "write_tsv",
]

BIDS_VERSION = "1.9.0"
LICENSE = "CC0-1.0"
TRUTH_PIPELINE = "truth"

#: Datatypes BIDS does not define, which modality modules add; the validator skips them.
BIDSIGNORE_PATTERNS = ("**/ct/", "**/spect/", "**/nirf/")

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
_CONC_QUANTITIES = (
    # (desc entity, AgentDelivery attribute, what it is)
    ("carrier", "carrier_ug_per_ml", "carrier (nanoparticle) mass concentration, all compartments"),
    ("freedrug", "free_drug_ug_per_ml", "released (free) drug concentration"),
    ("bounddrug", "bound_drug_ug_per_ml", "drug still bound to (encapsulated in) the carrier"),
)


# --- deterministic text ---------------------------------------------------------------


def _plain(obj: Any) -> Any:
    """Convert ``obj`` into JSON-ready builtins; non-finite floats become None."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "model_dump"):
        return _plain(obj.model_dump(mode="json"))
    return obj


def json_text(obj: Any) -> str:
    """Canonical JSON: sorted keys, 2-space indent, UTF-8, trailing newline, no NaN."""
    return json.dumps(_plain(obj), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as canonical JSON (:func:`json_text`) atomically; parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json_text(obj))


def format_value(value: Any) -> str:
    """One TSV cell: ``n/a`` for None/NaN/inf, shortest round-trip ``repr`` for floats."""
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return repr(value) if math.isfinite(value) else "n/a"
    text = str(value)
    if "\t" in text or "\n" in text:
        raise ValueError(f"TSV cell contains a tab or newline: {text!r}")
    return text


def write_tsv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a tab-separated table with a header row and ``\\n`` line endings, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(columns)]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"{path.name}: row has {len(row)} cells for {len(columns)} columns")
        lines.append("\t".join(format_value(v) for v in row))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def property_desc(name: str) -> str:
    """The BIDS ``desc`` value of a property map (:data:`PROPERTY_DESC`).

    >>> property_desc("t2star_3T_ms")
    'T2starAt3T'
    """
    return PROPERTY_DESC[name]


def _version() -> str:
    try:
        return metadata.version("imagingsim")
    except metadata.PackageNotFoundError:  # running from a bare source tree
        return "unknown"


def _generated_by(scenario) -> list[dict[str, Any]]:
    return [
        {
            "Name": "imagingsim",
            "Version": _version(),
            "Description": f"Synthetic multimodal imaging simulator; scenario {scenario.name!r}, seed {scenario.seed}.",
        }
    ]


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
            "GeneratedBy": _generated_by(scenario),
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
    tumours = ", ".join(f"{t.name} (radius {t.radius_mm!r} mm)" for t in scenario.phantom.tumours) or "none"
    agents = ", ".join(f"{a.name} ({a.carrier}, {a.dose_mg_per_kg!r} mg/kg)" for a in scenario.agents)
    times = ", ".join(repr(float(t)) for t in scenario.schedule.times_h)
    readme = f"""# imagingsim synthetic dataset: {scenario.name}

This dataset was generated by imagingsim {_version()}, a simulator of multimodal imaging
(PET, SPECT, CT, MRI, NIR fluorescence) of targeted cancer drug delivery. Nothing in it
was measured on a living subject: every file is computed from a numerical phantom and a
drug-delivery model, and the exact truth behind every image is stored alongside it.

Scenario: {scenario.name} (seed {scenario.seed}, subject {scenario.subject_id})
Description: {scenario.description or "n/a"}
Phantom: {scenario.phantom.anatomy}, {scenario.phantom.voxel_size_mm!r} mm voxels; tumours: {tumours}
Agents: {agents}
Imaging times (h after the first injection): {times}

Regenerate it with the same imagingsim version, scenario and seed: the files are
byte-for-byte reproducible.

## Layout

- `{sub}/anat/`: noise-free quantitative MRI maps of the phantom at 3 T
  (`_T1map` and `_T2starmap` in seconds, `_PDmap` relative to water). They are the
  ground truth the simulated acquisitions start from, not simulated acquisitions.
- Further modality folders (`pet/`, `anat/` echoes, and the non-BIDS `ct/`, `spect/`,
  `nirf/` listed in `.bidsignore`) hold simulated acquisitions when enabled.
- `sourcedata/`: raw acquisition data (k-space, sinograms, projections) when written.
- `derivatives/{TRUTH_PIPELINE}/`: the ground truth: tissue segmentation (`_dseg`), tumour
  index (`_desc-tumours_dseg`), every phantom property map (`_desc-<property>_map`),
  per-agent 4-D concentration maps in ug/mL (`delivery/*_conc.nii.gz`), the blood curve,
  mass ledgers and %ID/g per region (`delivery/*.tsv`), and the full scenario
  (`{sub}_scenario.json`). Every JSON sidecar states its units.

Coordinates are RAS+ millimetres of the simulated scanner; all images of a subject share
one voxel grid. Time zero is the first injection.
"""
    atomic_write_text(stage / "README", readme)
    atomic_write_text(
        stage / "CHANGES",
        f"1.0.0 n/a\n  - Generated by imagingsim {_version()} from scenario {scenario.name} (seed {scenario.seed}).\n",
    )
    atomic_write_text(
        stage / ".bidsignore",
        "# Datatypes that BIDS does not define (simulated CT, SPECT and NIR fluorescence)\n"
        + "".join(f"{p}\n" for p in BIDSIGNORE_PATTERNS),
    )
    source = stage / "sourcedata"
    source.mkdir()
    atomic_write_text(
        source / "README",
        "Reserved for raw acquisition data (k-space, sinograms, projections) of the simulated scans.\n",
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


def _write_truth(truth: Path, scenario, phantom, delivery, backend) -> None:
    sub = _sub(scenario)
    grid = phantom.grid
    spatial_reference = f"bids:raw:{sub}/anat/{sub}_T1map.nii.gz"
    write_json(
        truth / "dataset_description.json",
        {
            "Name": f"imagingsim ground truth: {scenario.name}",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": _generated_by(scenario),
            "DatasetLinks": {"raw": "../../"},
            "License": LICENSE,
        },
    )
    atomic_write_text(
        truth / "README",
        "Ground truth of the imagingsim simulation: segmentations, phantom property maps, "
        "agent concentration maps and kinetics, and the scenario that produced them.\n"
        "See the README of the parent dataset for the layout.\n",
    )
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
    for key in sorted(phantom.properties):
        desc = property_desc(key)
        data = _host(backend, phantom.properties[key], np.float32)
        write_nifti(anat / f"{sub}_desc-{desc}_map.nii.gz", data, grid, description=f"imagingsim truth {key}")
        write_json(
            anat / f"{sub}_desc-{desc}_map.json",
            {
                "Description": f"Noise-free phantom property map {key!r}.",
                "Property": key,
                "Units": PROPERTY_UNITS.get(key, "n/a"),
                "SpatialReference": spatial_reference,
            },
        )

    if delivery is not None:
        for agent_delivery in delivery.agents:
            _write_agent(truth / sub / "delivery", sub, grid, agent_delivery, labels, backend, spatial_reference)


def _write_agent(folder: Path, sub: str, grid, result, labels: np.ndarray, backend, spatial_reference) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    agent = result.agent
    prefix = folder / f"{sub}_agent-{agent.name}"
    times_h = [float(t) for t in result.times_h]
    times_s = [t * 3600.0 for t in times_h]
    payload = getattr(agent, "payload", None)
    drug = payload.drug if payload is not None else None
    common = {
        "Units": CONC_UNITS,
        "FrameTimesStart": times_s,
        "FrameTimesHours": times_h,
        "FrameDuration": [0.0] * len(times_s),
        "TimeZero": "first injection",
        "InjectionTime_h": float(agent.injection_time_h),
        "InjectedMass_ug": float(result.injected_mass_ug),
        "InjectedDrug_ug": float(result.injected_drug_ug),
        "DosePerBodyMass_mg_per_kg": float(agent.dose_mg_per_kg),
        "Carrier": agent.carrier,
        "CarrierParameters": _plain(result.carrier),
        "Drug": drug,
        "Labels": [_plain(label) for label in getattr(agent, "labels", ())],
        "SpatialReference": spatial_reference,
    }
    for desc, attr, what in _CONC_QUANTITIES:
        array = getattr(result, attr, None)
        if array is None:
            continue
        data = _host(backend, array, np.float32)
        if data.ndim != 4 or data.shape[3] != len(times_s):
            raise ValueError(
                f"agent {agent.name}: {attr} has shape {data.shape}; expected {tuple(grid.shape) + (len(times_s),)}"
            )
        base = f"{prefix}_desc-{desc}_conc"
        write_nifti(
            f"{base}.nii.gz", data, grid, frame_times_s=times_s, description=f"imagingsim {agent.name} {desc} ug/mL"
        )
        write_json(
            f"{base}.json",
            dict(
                common,
                Description=(
                    f"Ground-truth {what} of agent {agent.name!r}, ug/mL of tissue, at the instants "
                    "FrameTimesStart (s) / FrameTimesHours (h) after the first injection (4th axis)."
                ),
            ),
        )

    # blood curve (fine sampling)
    write_tsv(
        f"{prefix}_blood.tsv",
        ["time_h", "blood_ug_per_ml"],
        zip(result.blood_curve_h, result.blood_curve_ug_per_ml),
    )
    write_json(
        f"{prefix}_blood.json",
        {
            "Description": f"Whole-blood carrier concentration of agent {agent.name!r}.",
            "time_h": {"Description": "Time after the first injection.", "Units": "h"},
            "blood_ug_per_ml": {"Description": "Carrier concentration in whole blood.", "Units": CONC_UNITS},
        },
    )
    # mass ledgers
    ledgers = [("carrier", result.ledger_ug, "carrier")]
    if getattr(result, "drug_ledger_ug", None) is not None:
        ledgers.append(("drug", result.drug_ledger_ug, "drug"))
    for desc, ledger, what in ledgers:
        compartments = list(ledger)
        n = {len(ledger[c]) for c in compartments}
        if len(n) > 1:
            raise ValueError(f"agent {agent.name}: {desc} ledger columns differ in length")
        length = n.pop() if n else len(times_h)
        ledger_times = _ledger_times(result, length, agent.name)
        write_tsv(
            f"{prefix}_desc-{desc}_ledger.tsv",
            ["time_h"] + compartments,
            [[t] + [ledger[c][i] for c in compartments] for i, t in enumerate(ledger_times)],
        )
        sidecar: dict[str, Any] = {
            "Description": f"Mass balance of the {what} of agent {agent.name!r}: mass in each compartment.",
            "time_h": {"Description": "Time after the first injection.", "Units": "h"},
        }
        for c in compartments:
            sidecar[c] = {"Description": f"{what.capitalize()} mass in compartment {c!r}.", "Units": "ug"}
        write_json(f"{prefix}_desc-{desc}_ledger.json", sidecar)
    # %ID/g per region present in the segmentation
    present = [Label(v) for v in np.unique(labels).tolist() if v in Label._value2member_map_ and v != Label.AIR]
    columns = [label.bids_name for label in present]
    values = {label.bids_name: list(result.percent_id_per_g(label)) for label in present}
    write_tsv(
        f"{prefix}_uptake.tsv",
        ["time_h"] + columns,
        [[t] + [values[c][i] for c in columns] for i, t in enumerate(times_h)],
    )
    sidecar = {
        "Description": f"Carrier uptake of agent {agent.name!r} per tissue region, percent injected dose per gram.",
        "time_h": {"Description": "Time after the first injection.", "Units": "h"},
    }
    for c in columns:
        sidecar[c] = {"Description": f"Mean uptake in region {c!r} (labels of the dseg).", "Units": "%ID/g"}
    write_json(f"{prefix}_uptake.json", sidecar)


def _ledger_times(result, length: int, name: str) -> list[float]:
    """The time axis a ledger is sampled on: the frame times or the fine blood-curve times."""
    if length == len(result.times_h):
        return [float(t) for t in result.times_h]
    if length == len(result.blood_curve_h):
        return [float(t) for t in result.blood_curve_h]
    raise ValueError(f"agent {name}: ledger has {length} samples, matching neither times_h nor blood_curve_h")
