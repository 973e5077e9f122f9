"""The delivery part of the truth derivative: per-agent concentration maps, one per session
(``derivatives/truth/sub-<id>/ses-<time>/delivery/``), and the blood curves, mass ledgers and
%ID/g tables over the whole time course (``derivatives/truth/sub-<id>/delivery/``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imagingsim.dataset.layout import CONC_QUANTITIES, CONC_UNITS, ConcQuantity
from imagingsim.delivery.result import REGIONS
from imagingsim.io.host import host_array
from imagingsim.io.nifti import write_nifti
from imagingsim.io.sessions import session_entity
from imagingsim.io.sidecars import (
    TIME_REFERENCE,
    plain,
    write_json,
    write_tsv,
)
from imagingsim.phantom.model import Label

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


def agent_quantities(result) -> list[ConcQuantity]:
    """The concentration maps this agent carries (attribute present and not None)."""
    return [q for q in CONC_QUANTITIES if getattr(result, q.attribute, None) is not None]


def _time_rows(times_h: Sequence[float]) -> list[list[float]]:
    """``[time_s, time_h]`` for each time in hours."""
    return [[float(t) * 3600.0, float(t)] for t in times_h]


def write_agent(subject_dir: Path, sub: str, grid, result, labels: np.ndarray, backend, spatial_reference) -> None:
    """Write one agent's truth under ``subject_dir`` (``derivatives/truth/sub-<id>``).

    Each concentration map is split into its sessions: the volume sampled at schedule time t
    goes to ``ses-<t>/delivery/<sub>_ses-<t>_desc-<agent><Quantity>_conc.nii.gz`` (3-D), so a
    session holds the truth at the moment its images were taken. The tables, sampled over the
    whole time course, go to ``delivery/`` at subject level.
    """
    folder = subject_dir / "delivery"
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
    for q in agent_quantities(result):
        data = host_array(backend, getattr(result, q.attribute), np.float32)
        if data.ndim != 4 or data.shape[3] != len(times_s):
            raise ValueError(
                f"agent {name}: {q.attribute} has shape {data.shape}; expected {tuple(grid.shape) + (len(times_s),)}"
            )
        for k, (time_s, time_h) in enumerate(zip(times_s, times_h, strict=True)):
            session = session_entity(time_h)
            base = subject_dir / session / "delivery" / f"{sub}_{session}_desc-{name}{q.quantity}_conc"
            base.parent.mkdir(parents=True, exist_ok=True)
            write_nifti(f"{base}.nii.gz", data[..., k], grid,
                        description=f"imagingsim {name} {q.quantity} ug/mL")
            write_json(
                f"{base}.json",
                dict(
                    common,
                    Quantity=q.quantity,
                    SampleTime_s=time_s,
                    SampleTime_h=time_h,
                    Description=(
                        f"Ground truth of agent {name!r}: {q.what}. The instantaneous value at "
                        "SampleTime_s (s) = SampleTime_h (h) after t = 0, the time of this session."
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
