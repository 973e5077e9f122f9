"""SPECT: single-photon emitters -> attenuated, collimator-blurred projections -> OSEM variants.

Uses the CT of the same subject for attenuation correction when CT is enabled too
(``requires``). Modules: ``spec`` (settings), ``physics`` (presets, photopeaks),
``projector`` (rotation-based projector), ``system`` (grids, system models), ``acquire``
(driver), ``result``, ``bids`` (writer), ``truth`` (truth-file patterns), ``summary``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from imagingsim.modalities.base import AcquisitionContext, CostModel, Modality, StageCost, WriteContext
from imagingsim.modalities.spect.spec import SPECTSpec, check_tracer
from imagingsim.modalities.spect.truth import TRUTH_FILES


class SPECT(Modality):
    name = "spect"
    title = "SPECT"
    description = "SPECT: 99mTc/111In/177Lu, attenuation and depth-dependent collimator response, OSEM variants"
    Spec = SPECTSpec
    requires = ("ct",)
    fuses_onto = ("ct",)
    bids_datatype = "spect"
    bids_standard = False
    truth_files = TRUTH_FILES
    example = ("mouse_gold_spect_ct", ('modalities.enabled=["ct", "spect"]', "modalities.spect.n_views=16"))
    # Fitted (benchmarks/resources.py) to mouse_gold_spect_ct, 63 k - 504 k voxels.
    cost_model = CostModel(constant=StageCost(13e6, 2.0e6, 1.5), per_voxel=StageCost(0.0, 0.0, 0.0),
                           per_voxel_time=StageCost(327.0, 9.5, 8.5e-6))
    baselines: ClassVar[dict[str, str]] = {
        "osem_ac_cdr": "imagingsim.modalities.spect.problem:osem_ac_cdr_baseline",
        "osem_ac": "imagingsim.modalities.spect.problem:osem_ac_baseline",
        "osem_cdr": "imagingsim.modalities.spect.problem:osem_cdr_baseline",
        "osem_none": "imagingsim.modalities.spect.problem:osem_none_baseline",
    }

    def check(self, spec: SPECTSpec, scenario) -> None:
        from imagingsim.modalities.spect.acquire import check_spect

        check_tracer(spec, scenario)
        check_spect(spec, scenario)

    def recon_problem(self, ctx: AcquisitionContext, acquisition, *, frame: int = 0):
        from imagingsim.modalities.spect.problem import spect_problem

        return spect_problem(ctx, acquisition, frame=frame)

    def acquire(self, ctx: AcquisitionContext):
        from imagingsim.modalities.spect.acquire import acquire_spect

        return acquire_spect(ctx)

    def write(self, stage: Path, acquisition, ctx: WriteContext):
        from imagingsim.modalities.spect.bids import write_spect

        return write_spect(stage, acquisition, ctx)

    def fuse(self, stage: Path, acquisition, anatomical: str, ctx: WriteContext):
        from imagingsim.modalities.spect.fusion import write_spect_ct_fusion

        return write_spect_ct_fusion(stage, ctx.scenario, ctx.phantom, acquisition, ctx.acquisitions[anatomical],
                                     ctx.backend)

    def fusion_readme(self, anatomical: str) -> str:
        from imagingsim.modalities.spect.fusion import README

        return README

    def summary(self, acquisition, subject) -> list[str]:
        from imagingsim.modalities.spect.summary import summary_lines

        return summary_lines(acquisition, subject)

    def report_section(self, view):
        from imagingsim.modalities.spect.report import report_section

        return report_section(view)


MODALITY = SPECT()
