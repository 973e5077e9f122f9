"""Linear operators with matched adjoints: the building blocks of every forward model.

Every operator here maps device arrays of a fixed ``in_shape`` to ``out_shape`` on one
backend, has an exact adjoint, and passes :func:`check_adjoint` (the dot test) on every
backend. Modalities assemble their system models from them (``A = D @ P @ B``) and the EM
and FBP reconstructions take them as they are.
"""

from imagingsim.operators.base import (
    Composition,
    Diagonal,
    FrameWise,
    LinearOperator,
    Reshape,
    Sum,
    check_adjoint,
)
from imagingsim.operators.blur import Blur

__all__ = ["Blur", "Composition", "Diagonal", "FrameWise", "LinearOperator", "Reshape",
           "Sum", "check_adjoint"]
