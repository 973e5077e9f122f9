"""CT forward kernels: basis-material density maps, their mass attenuation per energy, one projection per basis map, and the polyenergetic expected counts; the true mu maps."""

from __future__ import annotations

from typing import Any

from imagingsim.backend import Backend
from imagingsim.physics.attenuation import (
    CONTRAST_ELEMENTS,
    contrast_density_g_per_ml,
    element_mass_attenuation_cm2_per_g,
    linear_attenuation_per_mm,
    material_mass_attenuation_cm2_per_g,
)
from imagingsim.projectors import ParallelBeamGeometry, ParallelProjector

#: Sets the energy groups of the polyenergetic sum: ``MAX_CHUNK_ELEMENTS // n_rays`` energies
#: (at least 1) are summed per group. This was the bound on the (rays x energies) temporary
#: when all rays were summed at once; the rays now go in pieces, and the grouping is kept
#: because it fixes the order of the float32 partial sums, so counts keep their bits.
MAX_CHUNK_ELEMENTS = 2**25
#: Rays per piece of the polyenergetic sum: a piece's (rays x energies of a group) exponent,
#: about 1 MB, stays in the cache between the matrix product, exp() and the energy sum
#: instead of going through memory three times; pieces run on the backend's workers.
RAYS_PER_PIECE = 32768


#: (mu/rho) in cm^2/g times a density in g/mL (= g/cm^3) is 1/cm; this makes it 1/mm.
_PER_CM_TO_PER_MM = 0.1


def material_basis_maps(phantom, backend: Backend) -> tuple[tuple[str, ...], Any]:
    """Density maps of the materials present in a phantom, g/mL.

    Returns
    -------
    materials : tuple of str
        Material names (``data/materials.toml``) that occupy at least one voxel, in label order.
    maps : device array, float32, ``(nx, ny, nz, n_materials)``
        Voxel density where the voxel's label is made of that material, 0 elsewhere.

    Notes
    -----
    One explicit host transfer: the voxel count of each label (so absent materials cost no
    projection).
    """
    xp = backend.xp
    labels = xp.astype(phantom.labels, xp.int64)
    values = sorted(phantom.materials)
    counts = backend.to_host(xp.stack([xp.sum(xp.astype(labels == v, xp.int64)) for v in values])).tolist()
    materials = tuple(dict.fromkeys(phantom.materials[v] for v, n in zip(values, counts) if n > 0))
    density = phantom.properties["density_g_per_ml"]
    maps = []
    for name in materials:
        inside = xp.zeros(labels.shape, dtype=xp.bool, device=backend.device)
        for v in values:
            if phantom.materials[v] == name:
                inside = inside | (labels == v)
        maps.append(xp.astype(xp.where(inside, density, 0.0), xp.float32))
    return materials, xp.stack(maps, axis=-1)


#: Density of each contrast element present, g/mL, ``(nx, ny, nz, T)`` (shared with SPECT,
#: whose photons the same gold and iodine attenuate).
contrast_maps_g_per_ml = contrast_density_g_per_ml


def attenuation_coefficients(materials, elements, energies_keV) -> list[list[float]]:
    """``(mu/rho)(E) / 10`` of each basis, 1/mm per g/mL: rows energies, columns materials then elements.

    Multiplying a basis map's line integral (g/mL x mm) by its column gives the
    dimensionless ``p(E)`` contribution.
    """
    energies = tuple(float(e) for e in energies_keV)
    columns = [material_mass_attenuation_cm2_per_g(m, energies) for m in materials]
    columns += [element_mass_attenuation_cm2_per_g(CONTRAST_ELEMENTS[e], energies) for e in elements]
    return [[c[i] * _PER_CM_TO_PER_MM for c in columns] for i in range(len(energies))]


def project_basis(maps, geometry: ParallelBeamGeometry, backend: Backend):
    """Line integrals of a stack of basis maps ``(nx, ny, nz, K)`` -> ``(n_views * n_bins * nz, K)``, float32.

    All ``nz * K`` planes go through one sparse product (the projector's matrix is cached per
    geometry, so the column count is free).
    """
    xp = backend.xp
    nx, ny, nz, k = maps.shape
    projector = ParallelProjector(geometry, nz * k, backend)
    sinogram = projector.apply(xp.reshape(xp.astype(maps, xp.float32), (nx, ny, nz * k)))
    return xp.reshape(sinogram, (-1, k))


def polyenergetic_counts(line_integrals, coefficients, photons, backend: Backend, *,
                         max_chunk_elements: int = MAX_CHUNK_ELEMENTS, rays_per_piece: int = RAYS_PER_PIECE):
    """Expected photon-counting detector counts ``sum_E N0(E) exp(-sum_k A[E, k] L[:, k])``.

    Parameters
    ----------
    line_integrals : sequence of device arrays ``(n_rays, K_i)``, float32
        Basis line integrals (g/mL x mm); several blocks (static tissue, one time's contrast)
        are summed without being concatenated.
    coefficients : sequence of lists ``[n_energies][K_i]``
        The matching blocks of :func:`attenuation_coefficients`, 1/mm per g/mL.
    photons : sequence of float
        ``N0(E)``, unattenuated photons per ray in each energy bin.
    backend : Backend
    max_chunk_elements : int, keyword-only
        Energies are summed in groups of ``max_chunk_elements // n_rays`` (at least 1).
    rays_per_piece : int, keyword-only
        Rays summed together (a piece of work for :meth:`Backend.map_ordered`). The pieces
        are fixed by this size, not by the worker count, so the counts have the same bits
        with any number of workers; another size can change the last bit (BLAS sums the
        rows of a short block with other kernels).

    Returns
    -------
    device array ``(n_rays,)``, float32
        Expected counts per ray.
    """
    xp, dev = backend.xp, backend.device
    n_rays = line_integrals[0].shape[0]
    n_energies = len(photons)
    size = max(1, min(n_energies, max_chunk_elements // max(n_rays, 1)))
    groups = []
    for start in range(0, n_energies, size):
        stop = min(n_energies, start + size)
        # (K, group): one column of attenuation coefficients per energy of the group.
        tables = [xp.asarray([list(col) for col in zip(*table[start:stop])], dtype=xp.float32, device=dev)
                  for table in coefficients]
        groups.append((tables, xp.asarray(list(photons[start:stop]), dtype=xp.float32, device=dev)))

    def piece(first: int):
        rays = slice(first, min(n_rays, first + rays_per_piece))
        total = None
        for tables, weights in groups:
            exponent = None
            for block, table in zip(line_integrals, tables, strict=True):
                term = xp.matmul(block[rays, ...], table)  # (rays, group)
                exponent = term if exponent is None else exponent + term
            counts = xp.matmul(xp.exp(-exponent), weights)
            total = counts if total is None else total + counts
        return total

    return xp.concat(backend.map_ordered(piece, range(0, n_rays, max(1, rays_per_piece))))


def true_attenuation(phantom, contrast: dict[str, Any], energy_keV: float, n_scans: int, backend: Backend):
    """True mu at ``energy_keV`` per scan (tissue + contrast), 1/mm, and contrast in mg/mL.

    Returns
    -------
    mu : device array, float32, ``(nx, ny, nz, n_scans)``
    contrast_mg_per_ml : dict of str -> device array, float32, ``(nx, ny, nz, n_scans)``
    """
    xp = backend.xp
    tissue = linear_attenuation_per_mm(phantom, energy_keV, backend)
    mu = xp.stack([tissue] * n_scans, axis=-1)
    out = {}
    for element, density in contrast.items():
        per_g = element_mass_attenuation_cm2_per_g(CONTRAST_ELEMENTS[element], (float(energy_keV),))[0]
        mu = mu + density * (per_g * _PER_CM_TO_PER_MM)
        out[element] = xp.astype(density * 1000.0, xp.float32)  # g/mL -> mg/mL
    return xp.astype(mu, xp.float32), out
