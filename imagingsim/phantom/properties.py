"""Property maps: per-label defaults, tumour-specific scaling and seeded heterogeneity.

Defaults come from ``data/tissues.toml`` (sources there) and are looked up per voxel with
``xp.take`` on a small table. Inside tissues marked ``heterogeneous``, the perfusion and
metabolism maps are multiplied by mean-1 log-normal fields, each from its own random
stream, so one seed always gives the same phantom and a map's expected value is kept.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from imagingsim.data.materials import MaterialComposition, material_compositions
from imagingsim.data.tables import read_table
from imagingsim.grid import ImageGrid
from imagingsim.phantom.heterogeneity import gaussian_random_field, lognormal_multiplier
from imagingsim.phantom.model import PROPERTY_UNITS, Label
from imagingsim.scenario import PhantomSpec

#: Maps multiplied by a log-normal texture, each with its fixed random stream id: the rng
#: key is (seed, stream). The pH map gets an additive texture from its own stream.
MULTIPLICATIVE_STREAMS: dict[str, int] = {
    "blood_volume_fraction": 101,
    "vessel_permeability": 102,
    "receptor_density_nM": 103,
    "glucose_metabolism": 104,
    "po2_mmHg": 105,
}
PH_STREAM = 106
#: pH standard deviation per unit of ``heterogeneity.relative_sd`` (0.1 pH at the default
#: 0.2): of the order of measured intratumoural pH spread (Gillies et al. 2002) *(check)*.
PH_SD_PER_RELATIVE_SD = 0.5
#: Physical ranges every map is clipped to (min, max); None is unbounded.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "blood_volume_fraction": (0.0, 1.0),
    "vessel_permeability": (0.0, None),
    "receptor_density_nM": (0.0, None),
    "glucose_metabolism": (0.0, None),
    "ph": (6.0, 7.6),
    "po2_mmHg": (0.0, 160.0),
}

Positive = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
MaterialName = Literal[
    "air", "muscle", "adipose", "cortical_bone", "blood", "liver", "spleen", "kidney", "lung", "brain", "tumour"
]


class TissueProperties(BaseModel):
    """Default properties of one label (units in the names, see ``PROPERTY_UNITS``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    material: MaterialName
    heterogeneous: bool
    density_g_per_ml: Annotated[float, Field(gt=0.0, le=3.0)]
    blood_volume_fraction: Annotated[float, Field(ge=0.0, le=1.0)]
    vessel_permeability: Positive
    receptor_density_nM: Positive
    glucose_metabolism: Positive
    ph: Annotated[float, Field(ge=6.0, le=7.6)]
    po2_mmHg: Annotated[float, Field(ge=0.0, le=160.0)]
    proton_density: Annotated[float, Field(gt=0.0, le=1.0)]
    t1_3T_ms: Annotated[float, Field(gt=0.0)]
    t2star_3T_ms: Annotated[float, Field(gt=0.0)]
    mu_a_810nm_per_mm: Positive
    mu_s_prime_810nm_per_mm: Positive


@functools.cache
def tissue_table() -> dict[Label, TissueProperties]:
    """Validated ``data/tissues.toml``: one :class:`TissueProperties` per :class:`Label`."""
    fields = set(TissueProperties.model_fields) - {"material", "heterogeneous"}
    if fields != set(PROPERTY_UNITS):
        raise RuntimeError(f"TissueProperties fields {sorted(fields)} differ from PROPERTY_UNITS")
    raw = read_table("tissues.toml")
    missing = [label.bids_name for label in Label if label.bids_name not in raw]
    extra = sorted(set(raw) - {label.bids_name for label in Label})
    if missing or extra:
        raise RuntimeError(f"tissues.toml: missing labels {missing}, unknown tables {extra}")
    if [int(label) for label in Label] != list(range(len(Label))):
        raise RuntimeError("Label values must be 0..n-1: they index the lookup tables")
    table = {label: TissueProperties.model_validate(raw[label.bids_name]) for label in Label}
    reference = table[Label.TUMOUR_VIABLE]
    if not (reference.receptor_density_nM > 0 and reference.vessel_permeability > 0):
        raise RuntimeError("tissues.toml: tumour_viable is the reference tumour; its receptor and permeability must be > 0")
    return table


def label_materials() -> dict[int, str]:
    """Material name of each label value (``Phantom.materials``)."""
    return {int(label): props.material for label, props in tissue_table().items()}


def lookup(backend, index, values):
    """``values[index]`` voxel by voxel: a table lookup with ``xp.take``.

    Parameters
    ----------
    index : device array of unsigned integers (labels or tumour indices)
    values : sequence of float
        Table, indexed by the values of ``index``.

    Returns
    -------
    device array, float64, ``index.shape``
    """
    xp = backend.xp
    table = xp.asarray(values, dtype=xp.float64, device=backend.device)
    flat = xp.take(table, xp.reshape(index, (-1,)), axis=0)
    return xp.reshape(flat, index.shape)


def _column(name: str) -> list[float]:
    table = tissue_table()
    return [float(getattr(table[label], name)) for label in Label]


def _tumour_scales(spec: PhantomSpec, permeability_scale: float) -> dict[str, list[float]]:
    """Per-tumour-index factors (index 0 = no tumour) that turn table values into spec values."""
    reference = tissue_table()[Label.TUMOUR_VIABLE]
    return {
        "receptor_density_nM": [1.0] + [t.receptor_density_nM / reference.receptor_density_nM for t in spec.tumours],
        "vessel_permeability": [1.0]
        + [t.permeability * permeability_scale / reference.vessel_permeability for t in spec.tumours],
    }


def property_maps(
    backend,
    grid: ImageGrid,
    labels,
    tumour_index,
    spec: PhantomSpec,
    seed: int,
    *,
    tumour_permeability_scale: float = 1.0,
) -> dict[str, Any]:
    """All property maps of a phantom, one float64 device array per ``PROPERTY_UNITS`` key.

    Parameters
    ----------
    backend : Backend
    grid : ImageGrid
        The phantom grid (voxel size in mm for the correlation length).
    labels, tumour_index : device arrays, uint8, ``grid.shape``
        Segmentation and tumour number (``n + 1`` inside ``spec.tumours[n]``).
    spec : PhantomSpec
        Tumour receptor densities and permeabilities; heterogeneity correlation length (mm)
        and relative sd.
    seed : int
        Scenario seed; each heterogeneous map draws from ``backend.rng(seed, stream)``.
    tumour_permeability_scale : float
        Extra factor on tumour permeability (the anatomy's; 0.3 behind the BBB).

    Returns
    -------
    dict of str -> device array (float64, ``grid.shape``)
        Tumour zones take the table value times the tumour's spec value relative to the
        reference tumour (e.g. a hypoxic zone gets 0.5 x ``receptor_density_nM``); maps
        are clipped to :data:`RANGES`.
    """
    maps = {name: lookup(backend, labels, _column(name)) for name in PROPERTY_UNITS}
    for name, scales in _tumour_scales(spec, tumour_permeability_scale).items():
        maps[name] = maps[name] * lookup(backend, tumour_index, scales)
    _add_heterogeneity(backend, grid, labels, maps, spec, seed)
    xp = backend.xp
    for name, (low, high) in RANGES.items():
        maps[name] = xp.clip(maps[name], low, high)
    return maps


def _add_heterogeneity(backend, grid, labels, maps, spec: PhantomSpec, seed: int) -> None:
    """Texture the maps in place inside heterogeneous tissues (nothing when relative_sd = 0)."""
    settings = spec.heterogeneity
    s = settings.relative_sd
    if s == 0.0:
        return
    xp = backend.xp
    textured = lookup(backend, labels, [1.0 if p.heterogeneous else 0.0 for p in tissue_table().values()]) > 0.5
    length = settings.correlation_length_mm
    for name, stream in MULTIPLICATIVE_STREAMS.items():
        field = gaussian_random_field(backend, grid, length, backend.rng(seed, stream))
        maps[name] = xp.where(textured, maps[name] * lognormal_multiplier(field, s), maps[name])
    field = gaussian_random_field(backend, grid, length, backend.rng(seed, PH_STREAM))
    maps["ph"] = xp.where(textured, maps["ph"] + (PH_SD_PER_RELATIVE_SD * s) * field, maps["ph"])


__all__ = [
    "MULTIPLICATIVE_STREAMS",
    "PH_STREAM",
    "RANGES",
    "MaterialComposition",
    "TissueProperties",
    "label_materials",
    "lookup",
    "material_compositions",
    "property_maps",
    "tissue_table",
]
