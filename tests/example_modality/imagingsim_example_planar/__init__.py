"""Example external modality: the carrier of one agent projected onto the coronal plane, with noise.

It exists to prove the Modality contract from outside the package: it is registered by an
entry point (``imagingsim.modalities``), validated from ``[modalities.planar]``, simulated,
written and summarised without a line of imagingsim changed. The physics is deliberately
simple: the areal density ``P(x, z) = sum_y C(x, y, z) dy`` (ug/mm^2 after dividing mL by
1000 mm^3) of the first agent's carrier at each schedule time, plus Gaussian noise of a given
relative standard deviation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from imagingsim.grid import ImageGrid
from imagingsim.io.nifti import write_nifti
from imagingsim.io.sidecars import write_json
from imagingsim.io.truth_files import TruthFile
from imagingsim.modalities.base import AcquisitionContext, Modality, WriteContext
from imagingsim.scenario import SpecModel

NOISE_STREAM = 901  # the example's own noise stream of the subject seed


class PlanarSpec(SpecModel):
    """Settings of the example planar projection."""

    noise_relative_sd: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.05, description="Gaussian noise sd as a fraction of the largest projected value."
    )


class Planar(Modality):
    name = "planar"
    title = "planar projection"
    description = "Planar carrier projection (example external modality, installed from tests/)"
    Spec = PlanarSpec
    bids_datatype = "planar"
    bids_standard = False
    truth_files = (
        TruthFile("sub-<id>/ses-<time>/planar/sub-<id>_ses-<time>_desc-projected_conc", (".nii.gz", ".json"),
                  "Noise-free coronal projection of the first agent's carrier at the session ses-<time>.", "ug/mm^2"),
    )
    example = ("mouse_peg_liposome", ("modalities.enabled=[\"planar\"]",))

    def acquire(self, ctx: AcquisitionContext):
        xp, be = ctx.backend.xp, ctx.backend
        carrier = ctx.delivery.agents[0].carrier_ug_per_ml  # (nx, ny, nz, T)
        dy_mm = ctx.phantom.grid.voxel_size_mm[1]
        truth = xp.sum(carrier, axis=1) * (dy_mm / 1000.0)  # ug/mm^2: ug/mL x mm x (1 mL / 1000 mm^3)
        scale = xp.max(truth) * ctx.spec.noise_relative_sd
        noise = be.rng(ctx.seed, NOISE_STREAM).standard_normal(truth.shape, dtype=truth.dtype)
        return {"truth": truth, "measured": truth + scale * noise, "times_h": tuple(ctx.schedule.times_h)}

    def write(self, stage: Path, acquisition, ctx: WriteContext):
        grid = ctx.phantom.grid
        plane = ImageGrid((grid.shape[0], 1, grid.shape[2]), grid.voxel_size_mm, grid.origin_mm)
        written = []
        for k, time_h in enumerate(acquisition["times_h"]):
            base = ctx.prefix(time_h)  # sub-<id>_ses-<time>: one session per schedule time
            parts = {"images": (ctx.images_dir, f"{base}_planar", "measured"),
                     "truth": (ctx.truth_dir, f"{base}_desc-projected_conc", "truth")}
            for kind, (folder_of, name, key) in parts.items():
                if not ctx.writes(kind):  # --outputs: the kinds left out are not written
                    continue
                folder = folder_of(stage, "planar", time_h)
                data = np.asarray(ctx.backend.to_host(acquisition[key][..., k]), dtype=np.float32)[:, None, :]
                written.append(write_nifti(folder / f"{name}.nii.gz", data, plane, description="imagingsim planar"))
                written.append(write_json(folder / f"{name}.json", {"Units": "ug/mm^2", "Time_h": time_h}))
        return written

    def summary(self, acquisition, subject) -> list[str]:
        peak = [float(subject.backend.scalar(subject.backend.xp.max(acquisition["truth"][..., k])))
                for k in range(len(acquisition["times_h"]))]
        return [f"  planar: peak projected carrier ug/mm^2 [{', '.join(f'{v:.3g}' for v in peak)}]"]


MODALITY = Planar()
