"""Linear spectral unmixing of multi-wavelength initial-pressure images.

``p0(x, lambda) = Gamma Phi(x, lambda) sum_j E[lambda, j] c_j(x) x 1e4`` (Pa, with ``E`` in
1/mm per unit, ``Phi`` in mJ/cm^2: 1 mJ/cm^2 x 1/mm = 1e4 J/m^3). Given an assumed fluence
``Phi_hat``, the concentrations are the per-pixel least-squares solution
``c = pinv(E) [p0 / (1e4 Gamma Phi_hat)]`` (one pseudo-inverse for all pixels; exact when
``Phi_hat = Phi``, the wavelengths outnumber the endmembers and the spectra are independent).

- **Without fluence compensation** ``Phi_hat = F0`` (the exposure on the skin) everywhere:
  the concentrations are apparent values, and the spectral colouring of the light with depth
  (haemoglobin absorbs more at some wavelengths, so deeper tissue is lit by redder light)
  biases sO2 with depth: the error is shown per depth (``so2_error_by_depth``).
- **With fluence compensation** ``Phi_hat`` is the diffusion-theory fluence of the body
  outline filled with one typical tissue (known outline, unknown optics inside): it removes
  the mean colouring but not that of the actual, heterogeneous absorbers.

sO2 = ``c_HbO2 / (c_HbO2 + c_Hb)`` where the estimated total haemoglobin exceeds
:data:`MIN_HAEMOGLOBIN_MM`, NaN elsewhere (not clipped to [0, 1]: noise shows).

References
----------
B. Cox, J. G. Laufer, S. R. Arridge, P. C. Beard, "Quantitative spectroscopic photoacoustic
imaging: a review", J Biomed Opt 2012;17:061202.
"""

from __future__ import annotations

import math

from imagingsim.backend import Backend

#: Pa per (Grueneisen x 1/mm x mJ/cm^2): 1e3 /m x 10 J/m^2.
PA_PER_UNIT = 1.0e4
#: Total haemoglobin below which sO2 is not defined, mM (0.2 % blood volume).
MIN_HAEMOGLOBIN_MM = 0.005


def initial_pressure(grueneisen: float, mu_a_per_mm, fluence_mJ_per_cm2):
    """``p0 = Gamma mu_a Phi`` in Pa (``mu_a`` 1/mm, ``Phi`` mJ/cm^2; floats or device arrays)."""
    return grueneisen * PA_PER_UNIT * mu_a_per_mm * fluence_mJ_per_cm2


def endmember_matrix(endmembers, backend: Backend):
    """``E`` as a device array ``(L, J)``, 1/mm per unit."""
    xp = backend.xp
    columns = [list(e.per_mm) for e in endmembers]
    return xp.permute_dims(xp.asarray(columns, dtype=xp.float64, device=backend.device), (1, 0))


def unmix(images, endmembers, grueneisen: float, fluence, backend: Backend):
    """Concentrations ``(nx, ny, J)`` from ``images (nx, ny, L)`` [Pa] (module docstring).

    Parameters
    ----------
    images : device array ``(nx, ny, L)``
        Initial pressure at each wavelength, Pa.
    endmembers : sequence of Endmember
    grueneisen : float
    fluence : device array ``(nx, ny, L)`` or float
        The assumed fluence, mJ/cm^2 (pixels where it is 0 give 0).
    backend : Backend

    Returns
    -------
    device array ``(nx, ny, J)``
        In each endmember's unit.
    """
    xp = backend.xp
    matrix = endmember_matrix(endmembers, backend)
    scale = grueneisen * PA_PER_UNIT * fluence
    if isinstance(fluence, float | int):
        absorption = images / scale
    else:
        absorption = xp.where(fluence > 0, images / xp.where(fluence > 0, scale, 1.0), 0.0)
    return absorption @ xp.permute_dims(xp.linalg.pinv(matrix), (1, 0))


def oxygen_saturation(oxy, deoxy, backend: Backend):
    """``oxy / (oxy + deoxy)`` where the total exceeds :data:`MIN_HAEMOGLOBIN_MM`, else NaN."""
    xp = backend.xp
    total = oxy + deoxy
    ok = total > MIN_HAEMOGLOBIN_MM
    return xp.where(ok, oxy / xp.where(ok, total, 1.0), xp.nan)


def condition_number(endmembers) -> float:
    """2-norm condition number of ``E`` with columns scaled to unit norm (host, small)."""
    columns = [list(e.per_mm) for e in endmembers]
    norms = [math.sqrt(sum(v * v for v in c)) or 1.0 for c in columns]
    scaled = [[v / n for v in c] for c, n in zip(columns, norms)]
    gram = [[sum(a * b for a, b in zip(ci, cj)) for cj in scaled] for ci in scaled]
    eig = _symmetric_eigenvalues(gram)
    return math.sqrt(max(eig) / min(eig)) if min(eig) > 0 else math.inf


def _symmetric_eigenvalues(matrix) -> list[float]:
    """Eigenvalues of a small symmetric matrix by cyclic Jacobi rotations (host floats)."""
    a = [row[:] for row in matrix]
    n = len(a)
    for _ in range(100):
        off = sum(a[i][j] ** 2 for i in range(n) for j in range(n) if i != j)
        if off < 1e-30:
            break
        for p in range(n):
            for q in range(p + 1, n):
                if abs(a[p][q]) < 1e-300:
                    continue
                theta = 0.5 * math.atan2(2.0 * a[p][q], a[q][q] - a[p][p])
                c, s = math.cos(theta), math.sin(theta)
                for k in range(n):
                    akp, akq = a[k][p], a[k][q]
                    a[k][p], a[k][q] = c * akp - s * akq, s * akp + c * akq
                for k in range(n):
                    apk, aqk = a[p][k], a[q][k]
                    a[p][k], a[q][k] = c * apk - s * aqk, s * apk + c * aqk
    return [a[i][i] for i in range(n)]


__all__ = ["MIN_HAEMOGLOBIN_MM", "PA_PER_UNIT", "condition_number", "endmember_matrix", "initial_pressure", "oxygen_saturation", "unmix"]
