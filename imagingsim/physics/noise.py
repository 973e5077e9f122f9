"""Measurement noise, drawn only through an explicit generator (operators never draw).

Generators come from :meth:`imagingsim.backend.Backend.rng` with a key built from the
scenario seed and a fixed stream constant of the modality, so one seed always gives the same
noise on the same backend (ARCHITECTURE habit 5).
"""

from __future__ import annotations

from imagingsim.backend import backend_of


def check_nonnegative(expected, what: str = "expected counts") -> None:
    """Raise a one-line ValueError unless every entry of ``expected`` is finite and >= 0.

    One explicit host synchronisation (the number of bad entries); a second one, for the
    message, only when something is wrong.
    """
    backend = backend_of(expected)
    xp = backend.xp
    if expected.size == 0:
        return
    bad = ~(xp.isfinite(expected) & (expected >= 0))
    n_bad = backend.scalar(xp.sum(xp.astype(bad, xp.float64)))
    if n_bad > 0:
        low = backend.scalar(xp.min(xp.where(bad, expected, xp.zeros_like(expected))))
        raise ValueError(
            f"{what} must be finite and >= 0; {int(n_bad)} of {expected.size} entries are not (lowest {low:g})"
        )


def poisson_counts(expected, rng, *, validate: bool = True):
    """Poisson counts with mean ``expected``.

    Parameters
    ----------
    expected : device array
        Expected counts, finite and >= 0 (a 0 gives exactly 0 counts).
    rng : imagingsim.backend.Generator
        Seeded generator of the same backend (``backend.rng(seed, stream, ...)``).
    validate : bool
        Check ``expected`` first (:func:`check_nonnegative`, one host synchronisation).
        A caller that draws many arrays from one checked volume may check once and pass False.

    Returns
    -------
    device array, float64, shape of ``expected``
        Integer-valued counts.

    Raises
    ------
    ValueError
        When ``validate`` and an entry is negative, NaN or infinite.
    """
    if validate:
        check_nonnegative(expected)
    return rng.poisson(expected)


def gaussian_noise(mean, sigma, rng):
    """``mean + sigma * N(0, 1)``, drawn in the dtype of ``mean``.

    Parameters
    ----------
    mean : device array
        Noise-free signal.
    sigma : float or device array broadcastable to ``mean``
        Standard deviation (>= 0), in the units of ``mean``.
    rng : imagingsim.backend.Generator

    Returns
    -------
    device array, shape and dtype of ``mean``
    """
    if isinstance(sigma, (int, float)):
        if not sigma >= 0:
            raise ValueError(f"gaussian_noise: sigma must be >= 0, got {sigma}")
    else:
        check_nonnegative(sigma, "gaussian_noise: sigma")
    return mean + sigma * rng.standard_normal(tuple(mean.shape), dtype=mean.dtype)


__all__ = ["check_nonnegative", "gaussian_noise", "poisson_counts"]
