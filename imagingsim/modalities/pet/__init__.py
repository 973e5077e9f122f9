"""PET: positron emitters -> attenuated, blurred, noisy sinograms -> FBP / MLEM / OSEM.

Modules: ``spec`` (settings), ``physics`` (positron range), ``scanner`` (presets), ``system``
(system model), ``acquire`` (driver), ``result``, ``bids`` (writer), ``fusion`` (onto MRI),
``truth`` (truth-file patterns), ``summary`` (CLI lines).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from imagingsim.modalities.base import AcquisitionContext, CostModel, Modality, StageCost, WriteContext
from imagingsim.modalities.pet.spec import PETSpec, check_tracer
from imagingsim.modalities.pet.truth import TRUTH_FILES


class PET(Modality):
    name = "pet"
    title = "PET"
    description = "PET: 18F/89Zr/64Cu/68Ga, positron range, attenuation, scatter, randoms, Poisson; FBP/MLEM/OSEM"
    Spec = PETSpec
    fuses_onto = ("mri",)
    bids_datatype = "pet"
    truth_files = TRUTH_FILES
    extension_suffixes: ClassVar[dict[str, str]] = {"activity": "an activity concentration map of one session (NIfTI)"}
    example = ("mouse_peg_liposome", ('modalities.enabled=["pet"]',))
    # Fitted (benchmarks/resources.py) to four PET scenarios, mouse and clinical scanners,
    # 3-6 frames, 63 k - 1.3 M voxels: memory within -17 % .. +61 % of each measured stage.
    cost_model = CostModel(constant=StageCost(128e6, 8.2e6, 1.0), per_voxel=StageCost(523.0, 0.0, 1.4e-6),
                           per_voxel_time=StageCost(54.0, 18.8, 1.0e-6))
    baselines: ClassVar[dict[str, str]] = {
        "fbp": "imagingsim.modalities.pet.problem:fbp_baseline",
        "mlem": "imagingsim.modalities.pet.problem:mlem_baseline",
        "osem": "imagingsim.modalities.pet.problem:osem_baseline",
        "osem_nopsf": "imagingsim.modalities.pet.problem:osem_nopsf_baseline",
    }

    def check(self, spec: PETSpec, scenario) -> None:
        from imagingsim.modalities.pet.acquire import check_pet

        check_tracer(spec, scenario)
        check_pet(spec, scenario)

    def acquire(self, ctx: AcquisitionContext):
        from imagingsim.modalities.pet.acquire import acquire_pet

        return acquire_pet(ctx)

    def write(self, stage: Path, acquisition, ctx: WriteContext):
        from imagingsim.modalities.pet.bids import write_pet

        return write_pet(stage, acquisition, ctx)

    def fuse(self, stage: Path, acquisition, anatomical: str, ctx: WriteContext):
        from imagingsim.modalities.pet.fusion import write_pet_mri_fusion

        return write_pet_mri_fusion(stage, ctx.scenario, ctx.phantom, acquisition, ctx.acquisitions[anatomical],
                                    ctx.backend)

    def fusion_readme(self, anatomical: str) -> str:
        from imagingsim.modalities.pet.fusion import README

        return README

    def summary(self, acquisition, subject) -> list[str]:
        from imagingsim.modalities.pet.summary import summary_lines

        return summary_lines(acquisition, subject)

    def recon_problem(self, ctx: AcquisitionContext, acquisition, *, frame: int = 0):
        from imagingsim.modalities.pet.problem import pet_problem

        return pet_problem(ctx, acquisition, frame=frame)

    def report_section(self, view):
        from imagingsim.modalities.pet.report import report_section

        return report_section(view)


MODALITY = PET()
