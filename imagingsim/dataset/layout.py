"""What the dataset holds: the truth derivative's documented file patterns, suffixes and .bidsignore.

The core's patterns are here; each registered modality adds its own
(:attr:`~imagingsim.modalities.base.Modality.truth_files`). The derivative's README is written
from :func:`truth_files`, and the tests check that every written file matches one pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagingsim.io.sidecars import version
from imagingsim.io.truth_files import TruthFile
from imagingsim.modalities import registry
from imagingsim.phantom.model import OPTIONAL_PROPERTY_DESC, PROPERTY_DESC

TRUTH_PIPELINE = "truth"


CONC_UNITS = "ug/mL"


@dataclass(frozen=True)
class ConcQuantity:
    """One concentration map (4-D over the schedule times) an :class:`AgentDelivery` may carry."""

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
_SESSION_DELIVERY = "sub-<id>/ses-<time>/delivery/sub-<id>_ses-<time>_desc-<agent>"


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
            f"{_SESSION_DELIVERY}{q.quantity}_conc",
            (".nii.gz", ".json"),
            f"Ground truth at the session's time (3-D): {q.what}. The instantaneous value at "
            "SampleTime_s (sidecar). Written only when the agent has this quantity.",
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
    "conc": "a concentration map of one session (3-D NIfTI)",
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


def truth_bidsignore_patterns() -> tuple[str, ...]:
    """``.bidsignore`` lines of the truth derivative: its extension suffixes, the ``delivery``
    folder and each modality's truth folder unless that is a BIDS datatype (the folder is named
    after the modality; it is one when the modality's own images go to a standard datatype of
    the same name). Everything else in it must be valid BIDS-Derivatives."""
    def is_datatype(name: str) -> bool:
        modality = registry.get(name)
        return modality.bids_standard and modality.bids_datatype == name

    folders = ["delivery", *(name for name in registry.names() if not is_datatype(name))]
    return (*(f"**/{folder}" for folder in folders), *(f"**/*_{suffix}.*" for suffix in extension_suffixes()))


def bidsignore_patterns() -> tuple[str, ...]:
    """``.bidsignore`` lines: the folder of each registered modality that BIDS does not define."""
    # "**/<folder>", not "**/<folder>/": the current validator (3.x) matches the folder itself, and a
    # trailing slash matches nothing there.
    return tuple(f"**/{m.bids_datatype}" for m in map(registry.get, registry.names()) if not m.bids_standard)


def property_desc(name: str) -> str:
    """The BIDS ``desc`` value of a property map (:data:`PROPERTY_DESC`).

    >>> property_desc("t2star_3T_ms")
    'T2starAt3T'
    """
    return PROPERTY_DESC[name] if name in PROPERTY_DESC else OPTIONAL_PROPERTY_DESC[name]


CONVENTIONS = """\
- Images are gzipped NIfTI-1 with qform = sform (code 1, scanner) mapping voxel indices to
  RAS+ millimetres; all images of a subject share one voxel grid. Arrays are indexed
  [x, y, z]: axis 0 runs along +x (right), 1 along +y (anterior), 2 along +z (superior); time
  is the session, not an axis. NIfTI units: mm and s.
- Times are in seconds from t = 0, the first injection (TSV column `time`, sidecar key
  `SampleTime_s`); hours appear only as convenience copies (`time_h`, keys ending in `_h`).
- One session per schedule time: `sub-<id>/ses-<time>/` holds what was imaged, and is true, at
  that time (`ses-24h` is 24 h after t = 0; a decimal point is written `p`, as in `ses-0p5h`).
  What does not belong to one time (segmentations, phantom maps, tables over time) is at
  subject level.
- Concentrations are ug/mL (mass per mL of tissue, i.e. of voxel volume), masses ug, uptake
  %ID/g (percent of the injected carrier mass per gram of tissue). Every JSON sidecar states
  its Units, per column for TSV files; field names of the scenario carry their unit."""


def identity(scenario) -> str:
    return (
        f"Scenario: {scenario.name}; seed: {scenario.seed}; subject: sub-{scenario.subject_id}; "
        f"generated by imagingsim {version()}."
    )


def scenario_summary(scenario) -> str:
    tumours = ", ".join(f"{t.name} (radius {t.radius_mm!r} mm)" for t in scenario.phantom.tumours) or "none"
    agents = ", ".join(f"{a.name} ({a.carrier}, {a.dose_mg_per_kg!r} mg/kg)" for a in scenario.agents)
    times = ", ".join(repr(float(t)) for t in scenario.schedule.times_h)
    return (
        f"Description: {scenario.description or 'n/a'}\n"
        f"Phantom: {scenario.phantom.anatomy}, {scenario.phantom.voxel_size_mm!r} mm voxels; tumours: {tumours}\n"
        f"Agents: {agents}\n"
        f"Sample times (h after t = 0): {times}"
    )
