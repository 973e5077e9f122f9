"""Maximum-likelihood expectation maximisation for Poisson data: MLEM and OSEM.

The model is ``y ~ Poisson(A x + b)`` with ``A`` any :class:`~imagingsim.operators.LinearOperator`
with non-negative entries (projector, attenuation, PSF, sensitivities) and ``b`` the expected
scatter + randoms. Every step is an array-namespace operation on the operator's backend:
nothing leaves the device inside the iterations.

References
----------
L. A. Shepp and Y. Vardi, Maximum likelihood reconstruction for emission tomography,
IEEE Trans. Med. Imaging 1 (1982) 113-122.
H. M. Hudson and R. S. Larkin, Accelerated image reconstruction using ordered subsets of
projection data, IEEE Trans. Med. Imaging 13 (1994) 601-609.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

from imagingsim.backend import Backend
from imagingsim.operators import LinearOperator


def poisson_log_likelihood(data, expected, backend: Backend) -> float:
    """Poisson log-likelihood ``sum(y log(ybar) - ybar)``, without the constant ``-log(y!)``.

    Parameters
    ----------
    data : device array
        Measured counts ``y`` (>= 0), any shape.
    expected : device array
        Expected counts ``ybar = A x + b`` (>= 0), same shape as ``data``.
    backend : Backend

    Returns
    -------
    float
        The log-likelihood, summed in float64 (one explicit host synchronisation). Bins with
        ``y == 0`` contribute ``-ybar`` (0 when ``ybar == 0`` too); a bin with ``y > 0`` and
        ``ybar <= 0`` is impossible under the model and gives ``-inf``.
    """
    xp = backend.xp
    if tuple(data.shape) != tuple(expected.shape):
        raise ValueError(f"poisson_log_likelihood: data {tuple(data.shape)} and expected {tuple(expected.shape)} differ in shape")
    y = xp.astype(data, xp.float64)
    ybar = xp.astype(expected, xp.float64)
    positive = ybar > 0
    # log() only where ybar > 0, so no warning or NaN is ever formed.
    log_ybar = xp.log(xp.where(positive, ybar, 1.0))
    term = xp.where(y > 0, y * log_ybar, 0.0) - ybar
    term = xp.where((y > 0) & ~positive, -xp.inf, term)
    return backend.scalar(xp.sum(term))


def mlem(
    data,
    model: LinearOperator,
    background,
    n_iterations: int,
    *,
    x0=None,
    callback: Callable[[int, object], None] | None = None,
):
    """MLEM reconstruction: :func:`osem` with a single subset.

    Parameters
    ----------
    data : device array, shape ``model.out_shape``
        Measured counts.
    model : LinearOperator
        System model ``A`` (counts per image unit), non-negative.
    background : device array of ``data``'s shape, or None
        Expected additive counts ``b`` (scatter + randoms); None means 0.
    n_iterations : int
        Number of iterations, >= 1.
    x0, callback
        As in :func:`osem`.

    Returns
    -------
    device array, shape ``model.in_shape``
        The image in image units.
    """
    return osem([data], [model], [background], n_iterations, x0=x0, callback=callback)


def osem(
    data_subsets: Sequence,
    models: Sequence[LinearOperator],
    backgrounds: Sequence,
    n_iterations: int,
    *,
    x0=None,
    callback: Callable[[int, object], None] | None = None,
):
    """Ordered-subsets EM reconstruction (Hudson & Larkin).

    For each subset ``k`` in turn: ``x <- x / s_k * A_k^T (y_k / (A_k x + b_k))`` with the
    sensitivity image ``s_k = A_k^T 1`` (computed once). Voxels with ``s_k == 0`` are set to
    0 (no subset data sees them) and bins with ``A_k x + b_k == 0`` contribute no ratio. Each
    update is also clipped at 0, which only removes round-off of FFT-based operators (the EM
    update is non-negative in exact arithmetic).

    Parameters
    ----------
    data_subsets : sequence of device arrays
        Measured counts of each subset, ``data_subsets[k].shape == models[k].out_shape``.
    models : sequence of LinearOperator
        Subset system models ``A_k``, all with the same ``in_shape`` and backend.
    backgrounds : sequence of (device array or None)
        Expected additive counts ``b_k`` of each subset (scatter + randoms); None means 0.
    n_iterations : int
        Number of iterations, >= 1; one iteration is one pass over all subsets.
    x0 : device array, optional
        Non-negative initial image of shape ``in_shape``; default ones in the dtype of the
        model output (that of ``A_0 x``).
    callback : callable, optional
        ``callback(iteration, image)`` after each iteration, ``iteration`` counting from 1.
        The image is the live iterate: copy it to keep it.

    Returns
    -------
    device array, shape ``in_shape``
        The image in image units.

    Raises
    ------
    ValueError
        For ``n_iterations < 1``, unequal numbers of data, models and backgrounds, or
        shapes that do not match the models.
    TypeError
        When ``models`` is a single operator or holds something that is not one.
    """
    n_iterations = _check_iterations(n_iterations)
    _check_lengths(data_subsets, models, backgrounds)
    first = models[0]
    xp, dev = first.backend.xp, first.backend.device
    for k, (data, model, background) in enumerate(zip(data_subsets, models, backgrounds)):
        _check_subset(k, data, model, background, first)

    inverse_sensitivity = []
    for data, model in zip(data_subsets, models):
        dtype = data.dtype if xp.isdtype(data.dtype, "real floating") else xp.float64
        sensitivity = model.adjoint(xp.ones(model.out_shape, dtype=dtype, device=dev))
        # Stored as 1/s (0 where s == 0): the update multiplies, and only one image is kept.
        inverse_sensitivity.append(xp.where(sensitivity > 0, 1.0 / xp.where(sensitivity > 0, sensitivity, 1.0), 0.0))
        del sensitivity

    pending = None  # a forward projection A_0 x already computed for the first update
    if x0 is None:
        ones = xp.ones(first.in_shape, dtype=inverse_sensitivity[0].dtype, device=dev)
        pending = first.apply(ones)
        del ones
        image = xp.ones(first.in_shape, dtype=pending.dtype, device=dev)
    else:
        if tuple(x0.shape) != first.in_shape:
            raise ValueError(f"osem: x0 has shape {tuple(x0.shape)}, the models take {first.in_shape}")
        image = x0

    for iteration in range(1, n_iterations + 1):
        for data, model, background, inv_s in zip(data_subsets, models, backgrounds, inverse_sensitivity):
            expected = pending if pending is not None else model.apply(image)
            pending = None
            if background is not None:
                expected = expected + background
            positive = expected > 0
            ratio = xp.where(positive, data / xp.where(positive, expected, 1.0), 0.0)
            del expected, positive
            update = image * model.adjoint(ratio) * inv_s
            del ratio
            image = xp.where(update > 0, update, 0.0)
            del update
        if callback is not None:
            callback(iteration, image)
    return image


def _check_iterations(n_iterations) -> int:
    try:
        n = operator.index(n_iterations)
    except TypeError:
        raise ValueError(f"n_iterations must be an integer >= 1, got {n_iterations!r}") from None
    if n < 1:
        raise ValueError(f"n_iterations must be >= 1, got {n}")
    return n


def _check_lengths(data_subsets, models, backgrounds) -> None:
    if isinstance(models, LinearOperator):
        raise TypeError("osem: models must be a sequence of LinearOperator (one per subset); use mlem for one model")
    lengths = (len(data_subsets), len(models), len(backgrounds))
    if len(set(lengths)) != 1 or lengths[0] == 0:
        raise ValueError(f"osem: need one data array, model and background (or None) per subset, got {lengths[0]}, {lengths[1]}, {lengths[2]}")
    for k, model in enumerate(models):
        if not isinstance(model, LinearOperator):
            raise TypeError(f"osem: models[{k}] is a {type(model).__name__}, not a LinearOperator")


def _check_subset(k: int, data, model, background, first: LinearOperator) -> None:
    if model.in_shape != first.in_shape or model.backend is not first.backend:
        raise ValueError(f"osem: models[{k}] {model!r} does not share the image shape/backend of {first!r}")
    if tuple(data.shape) != model.out_shape:
        raise ValueError(f"osem: data[{k}] has shape {tuple(data.shape)}, {model!r} gives {model.out_shape}")
    if background is not None and tuple(background.shape) != model.out_shape:
        raise ValueError(f"osem: background[{k}] has shape {tuple(background.shape)}, expected {model.out_shape}")
