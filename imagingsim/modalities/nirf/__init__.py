"""NIR fluorescence: diffusion-theory excitation and depth blur, NIR-I/NIR-II, camera noise (planar).

Modules: ``spec`` (settings), ``tables`` (dyes, cameras, optics), ``channel`` (which dye and
window are imaged), ``optics`` (diffusion theory), ``layered_blur`` (depth-dependent PSF
operator), ``surface`` (camera frame and surface model), ``camera`` (photon budget and
readout noise), ``sensitivity`` (depth response of the set-up), ``acquire`` (the driver's
steps and the model), ``result``, ``bids`` (writer), ``truth`` (truth-file patterns),
``summary`` (CLI lines).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from imagingsim.modalities.base import AcquisitionContext, CostModel, Modality, StageCost, WriteContext
from imagingsim.modalities.nirf.spec import NIRFSpec
from imagingsim.modalities.nirf.truth import TRUTH_FILES
from imagingsim.scenario import DYES


class NIRF(Modality):
    name = "nirf"
    title = "NIR fluorescence"
    description = "NIR fluorescence: planar epi/trans-illumination, diffusion-theory depth blur, NIR-I/II cameras"
    Spec = NIRFSpec
    bids_datatype = "nirf"
    bids_standard = False
    truth_files = TRUTH_FILES
    example = ("mouse_peg_liposome", ('modalities.enabled=["nirf"]',))
    # Measured (benchmarks/resources.py): planar images only, a few MB at most.
    cost_model = CostModel(constant=StageCost(10e6, 0.1e6, 0.05), per_voxel=StageCost(10.0, 0.0, 0.64e-6),
                           per_voxel_time=StageCost(0.0, 1.3, 0.0))
    extension_suffixes: ClassVar[dict[str, str]] = {"nirf": "a planar NIR fluorescence image (NIfTI, one voxel thick along the view axis)"}

    def check(self, spec: NIRFSpec, scenario) -> None:
        if not any(label.kind == "fluorophore" for agent in scenario.agents for label in agent.labels):
            raise ValueError(f"modalities.enabled has 'nirf' but no agent has a fluorophore label ({', '.join(DYES)})")

    def acquire(self, ctx: AcquisitionContext):
        from imagingsim.modalities.nirf.acquire import acquire_nirf

        return acquire_nirf(ctx)

    def write(self, stage: Path, acquisition, ctx: WriteContext):
        from imagingsim.modalities.nirf.bids import write_nirf

        return write_nirf(stage, acquisition, ctx)

    def summary(self, acquisition, subject) -> list[str]:
        from imagingsim.modalities.nirf.summary import summary_lines

        return summary_lines(acquisition, subject)

    def report_section(self, view):
        from imagingsim.modalities.nirf.report import report_section

        return report_section(view)


MODALITY = NIRF()
