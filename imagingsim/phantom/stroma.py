"""Optional stromal maps of a phantom: tumour-associated macrophages and protease activity.

A phantom has these maps only when one of its tumours sets ``macrophage_fraction`` or
``protease_activity_nM`` (:class:`~imagingsim.scenario.TumourSpec`); otherwise nothing is
computed or drawn, so phantoms that do not ask for them are unchanged.

``macrophage_fraction`` (macrophages / all cells)
    Tumour-associated macrophages (TAMs) make up 5-50 % of a solid tumour's cells and gather
    in its hypoxic, perinecrotic regions (Lewis & Pollard, Cancer Res 2006;66:605; Murdoch et
    al., Blood 2004;104:2224). The viable rim takes the tumour's ``macrophage_fraction``,
    the hypoxic zone :data:`MACROPHAGE_ZONE_FACTOR` x 1.5 of it, the necrotic core 0.25 of
    it (check). Outside tumours: resident macrophages, :data:`RESIDENT_MACROPHAGE_FRACTION`
    (Kupffer cells are ~15 % of liver cells, check; other tissues a few %, check).
``protease_activity_nM`` (active MMP-2/9, nmol/L of tissue)
    Matrix metalloproteinases 2 and 9 are secreted by tumour and stromal cells and are most
    active at the invasive rim and in the stroma (Egeblad & Werb, Nat Rev Cancer 2002;2:161).
    The viable rim takes the tumour's ``protease_activity_nM``, the hypoxic zone 0.6 of it,
    the necrotic core 0.2 of it (check); normal tissue :data:`NORMAL_PROTEASE_NM` (check).

Both are textured like the perfusion maps (mean-1 log-normal field inside heterogeneous
tissues), each from its own random stream (:data:`STROMA_STREAMS`), so they vary within the
tumour and adding them draws nothing from the streams of the other maps. Macrophages are
patchier than the vasculature: TAM density ranges several-fold between fields of one tumour
(check), so their texture's log-sd is :data:`STROMA_SD_FACTOR` = 3 times
``heterogeneity.relative_sd`` (0.6 at the default 0.2).
"""

from __future__ import annotations

from typing import Any

from imagingsim.grid import ImageGrid
from imagingsim.phantom.heterogeneity import gaussian_random_field, lognormal_multiplier
from imagingsim.phantom.model import Label
from imagingsim.phantom.properties import lookup, tissue_table
from imagingsim.scenario import PhantomSpec

#: Random stream of each optional map's texture (those of properties.py are 101-106).
STROMA_STREAMS: dict[str, int] = {"macrophage_fraction": 107, "protease_activity_nM": 108}

#: Log-sd of each map's texture per unit of heterogeneity.relative_sd (check).
STROMA_SD_FACTOR: dict[str, float] = {"macrophage_fraction": 3.0, "protease_activity_nM": 1.0}

#: Tumour zone value relative to the viable rim, per map (viable, hypoxic, necrotic). (check)
MACROPHAGE_ZONE_FACTOR = {Label.TUMOUR_VIABLE: 1.0, Label.TUMOUR_HYPOXIC: 1.5, Label.TUMOUR_NECROTIC: 0.25}
PROTEASE_ZONE_FACTOR = {Label.TUMOUR_VIABLE: 1.0, Label.TUMOUR_HYPOXIC: 0.6, Label.TUMOUR_NECROTIC: 0.2}

#: Resident macrophages outside tumours, fraction of cells (check).
RESIDENT_MACROPHAGE_FRACTION = {Label.LIVER: 0.15, Label.SPLEEN: 0.15, Label.AIR: 0.0}
DEFAULT_RESIDENT_MACROPHAGE_FRACTION = 0.02
#: Active MMP-2/9 in normal tissue, nM (check: an order of magnitude below tumour stroma).
NORMAL_PROTEASE_NM = 0.2
#: Largest macrophage fraction after texturing (a fraction of cells).
MAX_MACROPHAGE_FRACTION = 0.9


def stroma_maps(backend, grid: ImageGrid, labels, tumour_index, spec: PhantomSpec, seed: int) -> dict[str, Any]:
    """The optional maps ``spec`` asks for (an empty dict when no tumour sets them).

    Parameters
    ----------
    backend : Backend
    grid : ImageGrid
        Phantom grid (mm; the texture's correlation length).
    labels, tumour_index : device arrays, uint8, ``grid.shape``
    spec : PhantomSpec
        Tumours (rim values) and heterogeneity settings.
    seed : int
        Scenario seed; the texture of map ``k`` draws from ``backend.rng(seed, STROMA_STREAMS[k])``.

    Returns
    -------
    dict of str -> device array (float64, ``grid.shape``)
        ``macrophage_fraction`` (fraction of cells) and/or ``protease_activity_nM`` (nM).
        A tumour that leaves a setting unset gets the normal-tissue value in that map.
    """
    maps: dict[str, Any] = {}
    for key, zone_factor, normal in (
        ("macrophage_fraction", MACROPHAGE_ZONE_FACTOR, None),
        ("protease_activity_nM", PROTEASE_ZONE_FACTOR, NORMAL_PROTEASE_NM),
    ):
        rim = [getattr(t, key) for t in spec.tumours]
        if all(v is None for v in rim):
            continue
        if normal is None:
            base = [RESIDENT_MACROPHAGE_FRACTION.get(label, DEFAULT_RESIDENT_MACROPHAGE_FRACTION) for label in Label]
        else:
            base = [0.0 if label == Label.AIR else normal for label in Label]
        # Voxels of a tumour that sets it: zone factor x its rim value; elsewhere the normal value.
        factor = [zone_factor.get(label, 0.0) for label in Label]
        rim_value = lookup(backend, tumour_index, [0.0] + [v if v is not None else 0.0 for v in rim])
        is_set = lookup(backend, tumour_index, [0.0] + [0.0 if v is None else 1.0 for v in rim]) > 0.5
        zone = lookup(backend, labels, factor) * rim_value
        value = backend.xp.where(is_set, zone, lookup(backend, labels, base))
        maps[key] = _texture(backend, grid, labels, value, spec, seed, key)
    xp = backend.xp
    if "macrophage_fraction" in maps:
        maps["macrophage_fraction"] = xp.clip(maps["macrophage_fraction"], 0.0, MAX_MACROPHAGE_FRACTION)
    return maps


def _texture(backend, grid, labels, value, spec: PhantomSpec, seed: int, key: str):
    """``value`` times a mean-1 log-normal field inside heterogeneous tissues (as properties.py)."""
    s = STROMA_SD_FACTOR[key] * spec.heterogeneity.relative_sd
    if s == 0.0:
        return value
    xp = backend.xp
    textured = lookup(backend, labels, [1.0 if p.heterogeneous else 0.0 for p in tissue_table().values()]) > 0.5
    field = gaussian_random_field(backend, grid, spec.heterogeneity.correlation_length_mm, backend.rng(seed, STROMA_STREAMS[key]))
    return xp.where(textured, value * lognormal_multiplier(field, s), value)


__all__ = ["STROMA_STREAMS", "stroma_maps"]
