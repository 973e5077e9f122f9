"""CT: polyenergetic parallel-beam projection with beam hardening, gold/iodine contrast, FBP in HU.

Modules: ``spec`` (settings), ``spectrum`` (X-ray spectra, attenuation, calibration),
``acquire`` (presets, projection, reconstruction, HU -> mu), ``result``, ``bids`` (writer),
``truth`` (truth-file patterns), ``summary`` (CLI lines).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from imagingsim.modalities.base import AcquisitionContext, CostModel, Modality, StageCost, WriteContext
from imagingsim.modalities.ct.spec import CTSpec
from imagingsim.modalities.ct.truth import TRUTH_FILES


class CT(Modality):
    name = "ct"
    title = "CT"
    description = "CT: polyenergetic spectrum, beam hardening, gold/iodine contrast, Poisson, water pre-correction, FBP in HU"
    Spec = CTSpec
    bids_datatype = "ct"
    bids_standard = False
    truth_files = TRUTH_FILES
    example = ("mouse_gold_spect_ct", ('modalities.enabled=["ct"]', "modalities.ct.n_views=32"))
    # Fitted (benchmarks/resources.py) to mouse_gold_spect_ct, 63 k - 504 k voxels: the
    # constant is the energy-chunked polyenergetic sum (up to 2^25 float32 per chunk, twice).
    cost_model = CostModel(constant=StageCost(644e6, 8.8e6, 1.5), per_voxel=StageCost(0.0, 0.0, 0.0),
                           per_voxel_time=StageCost(155.0, 21.7, 3.8e-6))
    summary_needs_tumour = False
    baselines: ClassVar[dict[str, str]] = {"fbp": "imagingsim.modalities.ct.problem:fbp_baseline"}

    def check(self, spec: CTSpec, scenario) -> None:
        from imagingsim.modalities.ct.system import check_ct

        check_ct(spec, scenario)

    def acquire(self, ctx: AcquisitionContext):
        from imagingsim.modalities.ct.acquire import acquire_ct

        return acquire_ct(ctx)

    def recon_problem(self, ctx: AcquisitionContext, acquisition, *, frame: int = 0):
        from imagingsim.modalities.ct.problem import ct_problem

        return ct_problem(ctx, acquisition, frame=frame)

    def write(self, stage: Path, acquisition, ctx: WriteContext):
        from imagingsim.modalities.ct.bids import write_ct

        return write_ct(stage, acquisition, ctx)

    def summary(self, acquisition, subject) -> list[str]:
        from imagingsim.modalities.ct.summary import summary_lines

        return summary_lines(acquisition, subject)

    def report_section(self, view):
        from imagingsim.modalities.ct.report import report_section

        return report_section(view)


MODALITY = CT()
