"""Tomographic projectors: parallel-beam line integrals (PET, CT) and their adjoints."""

from imagingsim.projectors.geometry import ParallelBeamGeometry
from imagingsim.projectors.parallel import (
    ParallelProjector,
    PixelBackprojector,
    clear_matrix_cache,
)

__all__ = ["ParallelBeamGeometry", "ParallelProjector", "PixelBackprojector", "clear_matrix_cache"]
