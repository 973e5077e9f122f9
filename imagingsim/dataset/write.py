"""Write one simulated subject as a BIDS dataset with its ground truth as a derivative.

Layout (``<id>`` is ``scenario.subject_id``, ``<agent>`` an agent's name)::

    OUT/
      dataset_description.json  README  CHANGES  .bidsignore
      participants.tsv  participants.json
      sub-<id>/sub-<id>_sessions.tsv (+ .json)                          session -> time after t = 0
      sub-<id>/anat/sub-<id>_{T1map,T2starmap,PDmap}.nii.gz (+ .json)   noise-free qMRI at 3 T
      sourcedata/README                                                  raw acquisition data
      derivatives/truth/                                                 BIDS derivative
        dataset_description.json  README
        sub-<id>/sub-<id>_scenario.json                                  the validated scenario
        sub-<id>/anat/sub-<id>_dseg.nii.gz (+ .tsv, .json)               tissue labels
        sub-<id>/anat/sub-<id>_desc-tumours_dseg.nii.gz (+ .tsv, .json)  tumour index
        sub-<id>/anat/sub-<id>_desc-<property>_map.nii.gz (+ .json)      property maps
        sub-<id>/ses-<time>/delivery/sub-<id>_ses-<time>_desc-<agent><Quantity>_conc.nii.gz (+ .json)
              <Quantity> in Carrier, FreeDrug, BoundDrug, EncapsulatedDrug   ug/mL at that time
        sub-<id>/delivery/sub-<id>_desc-<agent>Carrier_bloodcurve.tsv (+ .json)
        sub-<id>/delivery/sub-<id>_desc-<agent>{Carrier,Drug}_ledger.tsv (+ .json)
        sub-<id>/delivery/sub-<id>_desc-<agent>Carrier_uptake.tsv (+ .json)  %ID/g per region
        sub-<id>/<modality>/...                            each modality's truth (its truth_files)

Each registered modality (:mod:`imagingsim.modalities.registry`) adds its images,
``sourcedata/`` and truth files through ``extra_writers``.

Every file of the derivative matches one entry of :func:`truth_files`, which also writes the
derivative's README (meaning and units of each pattern). The core files use only the BIDS
entities ``sub``, ``ses`` and ``desc``; the agent and the quantity are both encoded in ``desc``
(agent names are letters and digits). The suffixes ``scenario``, ``map``, ``conc``,
``bloodcurve``, ``ledger`` and ``uptake``, those the modalities declare, and the
``delivery/`` folder are imagingsim extensions that BIDS 1.9 does not define
(:func:`extension_suffixes`); ``dseg`` is the BIDS derivative segmentation. The carrier
blood curve is deliberately not called ``_blood``: that suffix is the BIDS-PET blood
recording, with its own required columns and metadata. Likewise no core sidecar uses the
BIDS-PET timing keys ``TimeZero``, ``FrameTimesStart`` or ``FrameDuration``: the 4th axis
holds one instantaneous sample, timed by ``SampleTime_s`` (and ``SampleTime_h``) from
``ReferenceTime``.

One session per schedule time (:mod:`imagingsim.io.sessions`): what is imaged, or true, at time
t is under ``sub-<id>/ses-<t>/``; what belongs to no one time is at subject level.

Everything is written inside one atomic staging directory (:func:`staged_directory`), so a
failure leaves no partial dataset. Outputs are byte-for-byte reproducible: JSON has sorted
keys, two-space indentation and a trailing newline; floats are rendered with Python's
shortest round-trip ``repr``; NIfTI files are gzipped with a zero mtime.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imagingsim import progress
from imagingsim.dataset.layout import CONVENTIONS, TRUTH_PIPELINE, bidsignore_patterns, identity, scenario_summary
from imagingsim.dataset.truth import write_truth
from imagingsim.io.atomic import atomic_write_text, staged_directory
from imagingsim.io.host import host_array
from imagingsim.io.nifti import write_nifti
from imagingsim.io.sessions import session_entity
from imagingsim.io.sidecars import (
    BIDS_VERSION,
    LICENSE,
    TIME_REFERENCE,
    generated_by,
    version,
    write_json,
    write_tsv,
)
from imagingsim.modalities import registry
from imagingsim.modalities.base import OUTPUTS

__all__ = ["finish_dataset", "write_common", "write_dataset"]

#: NCBI Taxonomy binomial names for ``participants.tsv`` (BIDS ``species`` column).
SPECIES_BINOMIAL = {"mouse": "mus musculus", "human": "homo sapiens"}


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
        write_common(stage, scenario, phantom, delivery, backend)
        progress.report(1, len(extra_writers) + 1)
        for done, writer in enumerate(extra_writers, start=2):
            writer(stage)
            progress.report(done, len(extra_writers) + 1)
        return finish_dataset(stage, out, scenario)


def write_common(stage: Path, scenario, phantom, delivery, backend, outputs: Collection[str] = OUTPUTS) -> None:
    """The files every dataset has, whatever the modalities: top level, raw qMRI truth (with the
    ``"images"`` of ``outputs``), truth derivative (with ``"truth"``); see :data:`OUTPUTS`."""
    _write_top_level(stage, scenario, phantom, raw="raw" in outputs)
    if "images" in outputs:
        _write_raw_anat(stage, scenario, phantom, backend)
    if "truth" in outputs:
        write_truth(stage / "derivatives" / TRUTH_PIPELINE, scenario, phantom, delivery, backend)


def finish_dataset(stage: Path, out: Path, scenario) -> list[Path]:
    """The sessions table (once every session's files are there); every file, as its path under ``out``."""
    _write_sessions_table(stage, scenario)
    files = sorted(p.relative_to(stage) for p in stage.rglob("*") if p.is_file())
    return [out / f for f in files]


def _write_top_level(stage: Path, scenario, phantom, *, raw: bool) -> None:
    sub = f"sub-{scenario.subject_id}"
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

{identity(scenario)}

Simulated multimodal imaging ({titles}) of targeted cancer
drug delivery. Nothing here was measured on a living subject: every file is computed from a
numerical phantom and a drug-delivery model, and the exact truth behind every image is stored
alongside it. The same imagingsim version, scenario and seed regenerate every file byte for byte.

{scenario_summary(scenario)}

## Axes and units

{CONVENTIONS}

## Layout

- `{sub}/anat/`: noise-free quantitative relaxation maps of the phantom at 3 T (`_T1map` and
  `_T2starmap` in s, `_PDmap` relative to water). The ground truth the simulated acquisitions
  start from, not simulated acquisitions.
{folders}
- `sourcedata/`: raw acquisition data (k-space, sinograms, projections) when written.
- `derivatives/{TRUTH_PIPELINE}/`: the ground truth as a BIDS derivative (segmentation,
  phantom property maps, per-agent concentration maps per session, blood curves, mass ledgers, %ID/g
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
    if raw:
        source = stage / "sourcedata"
        source.mkdir()
        atomic_write_text(
            source / "README",
            "Reserved for raw acquisition data (k-space, sinograms, projections) of the simulated scans.\n",
        )


def _write_sessions_table(stage: Path, scenario) -> None:
    """``sub-<id>/sub-<id>_sessions.tsv``: each session the writers filled, with its time after t = 0.

    BIDS's sessions file, so a pybids user can go from a session label to its time; written
    only when there is a session (a run without imaging has none).
    """
    sub = f"sub-{scenario.subject_id}"
    rows = [[session_entity(t), float(t) * 3600.0, float(t)] for t in scenario.schedule.times_h
            if (stage / sub / session_entity(t)).is_dir()]
    if not rows:
        return
    write_tsv(stage / sub / f"{sub}_sessions.tsv", ["session_id", "time", "time_h"], rows)
    write_json(stage / sub / f"{sub}_sessions.json", {
        "session_id": {"Description": "The session: one per schedule time at which a modality imaged the subject."},
        "time": {"Description": f"Time of the session since {TIME_REFERENCE.split(';')[0]}.", "Units": "s"},
        "time_h": {"Description": "The same time in hours (convenience copy of the time column).", "Units": "h"},
    })


_QMRI_MAPS = (
    # (suffix, property key, scale to BIDS units, Units, what)
    ("T1map", "t1_3T_ms", 1e-3, "s", "longitudinal relaxation time T1"),
    ("T2starmap", "t2star_3T_ms", 1e-3, "s", "effective transverse relaxation time T2*"),
    ("PDmap", "proton_density", 1.0, "arbitrary", "proton density relative to water (water = 1)"),
)


def _write_raw_anat(stage: Path, scenario, phantom, backend) -> None:
    sub = f"sub-{scenario.subject_id}"
    anat = stage / sub / "anat"
    anat.mkdir(parents=True)
    for suffix, key, scale, units, what in _QMRI_MAPS:
        data = host_array(backend, phantom.properties[key], np.float64) * scale
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
