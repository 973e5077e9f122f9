"""The linear-operator interface, composition, elementwise weights and the dot test."""

from __future__ import annotations

import abc
import math

from imagingsim.backend import Backend


class LinearOperator(abc.ABC):
    """A linear map between device arrays of fixed shapes, with its adjoint.

    Subclasses implement :meth:`_apply` and :meth:`_adjoint`; the public methods check the
    input shape and name the operator when it is wrong. ``A @ B`` composes (apply ``B``
    first), ``A @ x`` on an array applies.

    Parameters
    ----------
    in_shape, out_shape : tuple of int
        Shapes of the input and output arrays.
    backend : Backend
        Where inputs and outputs live.
    """

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], backend: Backend):
        self.in_shape = tuple(int(n) for n in in_shape)
        self.out_shape = tuple(int(n) for n in out_shape)
        self.backend = backend

    @abc.abstractmethod
    def _apply(self, x): ...

    @abc.abstractmethod
    def _adjoint(self, y): ...

    def apply(self, x):
        """``A x`` for ``x`` of shape :attr:`in_shape`."""
        self._check(x, self.in_shape, "input")
        return self._apply(x)

    def adjoint(self, y):
        """``A^H y`` for ``y`` of shape :attr:`out_shape`."""
        self._check(y, self.out_shape, "adjoint input")
        return self._adjoint(y)

    def __call__(self, x):
        return self.apply(x)

    def __matmul__(self, other):
        if isinstance(other, LinearOperator):
            return Composition(self, other)
        return self.apply(other)

    def _check(self, array, shape: tuple[int, ...], what: str) -> None:
        if tuple(array.shape) != shape:
            raise ValueError(f"{self!r}: {what} has shape {tuple(array.shape)}, expected {shape}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_shape} -> {self.out_shape})"


class Composition(LinearOperator):
    """``outer @ inner``: apply ``inner`` then ``outer``; the adjoint runs in reverse."""

    def __init__(self, outer: LinearOperator, inner: LinearOperator):
        if outer.in_shape != inner.out_shape:
            raise ValueError(
                f"cannot compose {outer!r} after {inner!r}: {inner.out_shape} does not match {outer.in_shape}"
            )
        if outer.backend is not inner.backend:
            raise ValueError(f"cannot compose {outer!r} ({outer.backend.name}) with {inner!r} ({inner.backend.name})")
        super().__init__(inner.in_shape, outer.out_shape, inner.backend)
        self.outer, self.inner = outer, inner

    def _apply(self, x):
        return self.outer.apply(self.inner.apply(x))

    def _adjoint(self, y):
        return self.inner.adjoint(self.outer.adjoint(y))

    def __repr__(self) -> str:
        return f"{self.outer!r} @ {self.inner!r}"


class Diagonal(LinearOperator):
    """Elementwise multiplication by weights (attenuation factors, sensitivities, masks, coil maps).

    Parameters
    ----------
    weights : device array
        Real or complex weights; the operator maps arrays of ``weights.shape`` to the same
        shape. The adjoint multiplies by the complex conjugate.
    backend : Backend
    """

    def __init__(self, weights, backend: Backend):
        super().__init__(weights.shape, weights.shape, backend)
        self.weights = weights
        xp = backend.xp
        self._conj = xp.conj(weights) if xp.isdtype(weights.dtype, "complex floating") else weights

    def _apply(self, x):
        return self.weights * x

    def _adjoint(self, y):
        return self._conj * y


class Sum(LinearOperator):
    """``sum_i w_i A_i`` of operators with the same shapes (scalar weights, default 1).

    SPECT uses it for nuclides with several photopeaks: each peak has its own attenuation
    and collimator response, and the detector adds their counts.
    """

    def __init__(self, ops, weights=None):
        ops = list(ops)
        if not ops:
            raise ValueError("Sum needs at least one operator")
        first = ops[0]
        for op in ops[1:]:
            if (op.in_shape, op.out_shape) != (first.in_shape, first.out_shape):
                raise ValueError(f"Sum: {op!r} has shapes {op.in_shape} -> {op.out_shape}, not those of {first!r}")
            if op.backend is not first.backend:
                raise ValueError(f"Sum: {op!r} is on backend {op.backend.name}, {first!r} on {first.backend.name}")
        super().__init__(first.in_shape, first.out_shape, first.backend)
        self.ops = ops
        self.weights = [1.0] * len(ops) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(ops):
            raise ValueError(f"Sum: {len(self.weights)} weights for {len(ops)} operators")

    def _apply(self, x):
        return _weighted_total([op.apply(x) for op in self.ops], self.weights)

    def _adjoint(self, y):
        return _weighted_total([op.adjoint(y) for op in self.ops], self.weights)


def _weighted_total(terms, weights):
    total = terms[0] * weights[0]
    for term, weight in zip(terms[1:], weights[1:]):
        total = total + term * weight
    return total


class Reshape(LinearOperator):
    """The same numbers in another shape (C order); the adjoint reshapes back."""

    def __init__(self, in_shape, out_shape, backend: Backend):
        super().__init__(in_shape, out_shape, backend)
        if math.prod(self.in_shape) != math.prod(self.out_shape):
            raise ValueError(f"Reshape: {self.in_shape} and {self.out_shape} hold different numbers of elements")

    def _apply(self, x):
        return self.backend.xp.reshape(x, self.out_shape)

    def _adjoint(self, y):
        return self.backend.xp.reshape(y, self.in_shape)


class FrameWise(LinearOperator):
    """Apply an operator to each frame of a stack: ``in_shape + (n_frames,)``, last axis frames.

    Looping keeps each frame's transform on a contiguous block (with NumPy about twice as
    fast as one transform over the leading axes of the whole stack). The frames are
    independent, so the backend's workers may transform several at once
    (:meth:`Backend.map_ordered`: the same operations per frame, the same bits).
    """

    def __init__(self, op: LinearOperator, n_frames: int):
        super().__init__(op.in_shape + (int(n_frames),), op.out_shape + (int(n_frames),), op.backend)
        self.op = op

    def _apply(self, x):
        frames = self.backend.map_ordered(lambda t: self.op.apply(x[..., t]), range(x.shape[-1]))
        return self.backend.xp.stack(frames, axis=-1)

    def _adjoint(self, y):
        frames = self.backend.map_ordered(lambda t: self.op.adjoint(y[..., t]), range(y.shape[-1]))
        return self.backend.xp.stack(frames, axis=-1)


def check_adjoint(op: LinearOperator, *, seed: int = 0, dtype=None) -> float:
    """The dot test: relative mismatch of ``<A x, y>`` and ``<x, A^H y>`` for random x, y.

    Parameters
    ----------
    op : LinearOperator
    seed : int
        Seed of the random test vectors.
    dtype : array dtype, optional
        Dtype of the test vectors (float64 unless given); a complex dtype draws complex
        vectors and uses the Hermitian inner product ``<a, b> = sum(conj(a) b)``.

    Returns
    -------
    float
        ``|<Ax, y> - <x, A^H y>| / (||Ax|| rms(y))``: 0 up to rounding for a matched pair
        (about 1e-16 in float64, 1e-7 in float32); a mismatched adjoint gives O(1).

    Notes
    -----
    The scale ``||Ax|| rms(y)`` is the typical size of ``<Ax, y>`` for a random ``y``.
    The Cauchy-Schwarz bound ``||Ax|| ||y||`` is larger by ``sqrt(y.size)``: relative to it
    even a wrong adjoint (``A^H`` off by a factor 2) scores only about ``1 / sqrt(y.size)``
    (1e-3 for a 64^3 volume), which a size-blind tolerance can miss.
    """
    backend = op.backend
    xp = backend.xp
    dtype = dtype or xp.float64
    rng = backend.rng(seed, 0xAD)
    x, y = (_random(rng, shape, dtype, xp) for shape in (op.in_shape, op.out_shape))
    ax, aty = op.apply(x), op.adjoint(y)
    lhs = _inner(ax, y, backend)
    rhs = _inner(x, aty, backend)
    scale = math.sqrt(abs(_inner(ax, ax, backend)) * abs(_inner(y, y, backend)) / math.prod(op.out_shape))
    return abs(lhs - rhs) / scale if scale > 0 else abs(lhs - rhs)


def _random(rng, shape, dtype, xp):
    """Uniform [-1, 1) test vectors; complex dtypes get independent real and imaginary parts."""
    if not xp.isdtype(dtype, "complex floating"):
        return rng.uniform(shape, -1.0, 1.0, dtype=dtype)
    real = xp.float32 if dtype == xp.complex64 else xp.float64
    parts = [rng.uniform(shape, -1.0, 1.0, dtype=real) for _ in range(2)]
    return xp.astype(parts[0], dtype) + 1j * xp.astype(parts[1], dtype)


def _inner(a, b, backend: Backend) -> complex:
    """``sum(conj(a) * b)`` as a Python complex (one explicit synchronisation per part)."""
    xp = backend.xp
    if not xp.isdtype(a.dtype, "complex floating") and not xp.isdtype(b.dtype, "complex floating"):
        return complex(backend.scalar(xp.sum(a * b)))
    product = xp.sum(xp.conj(a) * b)
    return complex(backend.scalar(xp.real(product)), backend.scalar(xp.imag(product)))
