"""Plug-ins written from the README's protocol alone, for the benchmark tests (imported by
``module:name`` from this folder; the README's own MLEM example is run from the README itself)."""

from __future__ import annotations


class MLEMClass:
    """The same MLEM in the class protocol: ``__init__(problem)``, ``update()``, ``image``."""

    def __init__(self, problem):
        xp = self.xp = problem.xp
        self.problem = problem
        sensitivity = problem.adjoint(problem.multiplicative * xp.ones_like(problem.data))
        seen = sensitivity > 0
        self.inverse = xp.where(seen, 1.0 / xp.where(seen, sensitivity, 1.0), 0.0)
        self.image = xp.ones_like(sensitivity)

    def update(self):
        p, xp = self.problem, self.xp
        expected = p.multiplicative * p.forward(self.image) + p.additive
        ratio = xp.where(expected > 0, p.data / xp.where(expected > 0, expected, 1.0), 0.0)
        self.image = self.image * p.adjoint(p.multiplicative * ratio) * self.inverse


def zeros(problem, *, callback=None):
    image = problem.xp.zeros_like(problem.adjoint(problem.data))
    problem.data[...] = 0.0  # a careless plug-in that writes into the data: the next one must not see it
    return image


def raises(problem, *, callback=None):
    raise RuntimeError("this plug-in always fails")


def wrong_shape(problem, *, callback=None):
    return problem.xp.zeros((3, 4, 5))


def not_a_number(problem, *, callback=None):
    return problem.adjoint(problem.data) * float("nan")


def slow(problem, *, callback=None):
    import time

    image = problem.adjoint(problem.data)
    for iteration in range(1, 1000):
        time.sleep(0.02)
        if callback is not None:
            callback(image, iteration)
    return image


slow.modalities = ("ct",)


def mlem_in_place(problem, *, callback=None):
    """MLEM that updates one image array in place (``x *= ...``): every callback gets the same
    array, so the harness must copy it at each checkpoint."""
    xp = problem.xp
    y, a, b = problem.data, problem.multiplicative, problem.additive
    sensitivity = problem.adjoint(a * xp.ones_like(y))
    seen = sensitivity > 0
    inverse = xp.where(seen, 1.0 / xp.where(seen, sensitivity, 1.0), 0.0)
    x = xp.ones_like(sensitivity)
    for iteration in range(1, problem.iterations + 1):
        expected = a * problem.forward(x) + b
        ratio = xp.where(expected > 0, y / xp.where(expected > 0, expected, 1.0), 0.0)
        x *= problem.adjoint(a * ratio) * inverse
        if callback is not None:
            callback(x, iteration)
    return x


mlem_in_place.modalities = ("pet",)
