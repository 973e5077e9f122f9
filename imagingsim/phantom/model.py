"""The :class:`Phantom` object and the label table shared by every stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from imagingsim.grid import ImageGrid
from imagingsim.scenario import PhantomSpec


class Label(IntEnum):
    """Tissue labels of the segmentation (``dseg``). Values are stable: files depend on them."""

    AIR = 0
    SOFT_TISSUE = 1  # muscle and generic soft tissue
    FAT = 2
    BONE = 3  # cortical bone with marrow
    BLOOD_POOL = 4  # heart chambers and great vessels
    LIVER = 5
    SPLEEN = 6
    KIDNEY = 7
    LUNG = 8
    BRAIN = 9
    TUMOUR_VIABLE = 10  # well-perfused viable rim
    TUMOUR_HYPOXIC = 11  # viable but hypoxic zone
    TUMOUR_NECROTIC = 12  # necrotic core

    @property
    def bids_name(self) -> str:
        return self.name.lower()


TUMOUR_LABELS = (Label.TUMOUR_VIABLE, Label.TUMOUR_HYPOXIC, Label.TUMOUR_NECROTIC)

#: Per-voxel property maps every phantom provides, with their units (name -> unit).
PROPERTY_UNITS: dict[str, str] = {
    "density_g_per_ml": "g/mL",
    "blood_volume_fraction": "mL blood / mL tissue",
    "vessel_permeability": "relative to reference tumour rim (1)",
    "receptor_density_nM": "nmol/L tissue",
    "glucose_metabolism": "relative to brain grey matter (1)",
    "ph": "pH units",
    "po2_mmHg": "mmHg",
    "proton_density": "relative to water (1)",
    "t1_3T_ms": "ms",
    "t2star_3T_ms": "ms",
    "mu_a_810nm_per_mm": "1/mm",
    "mu_s_prime_810nm_per_mm": "1/mm",
}

#: BIDS ``desc`` value of each property map (letters and digits; the unit is in the sidecar).
PROPERTY_DESC: dict[str, str] = {
    "density_g_per_ml": "density",
    "blood_volume_fraction": "bloodVolumeFraction",
    "vessel_permeability": "vesselPermeability",
    "receptor_density_nM": "receptorDensity",
    "glucose_metabolism": "glucoseMetabolism",
    "ph": "pH",
    "po2_mmHg": "pO2",
    "proton_density": "protonDensity",
    "t1_3T_ms": "T1at3T",
    "t2star_3T_ms": "T2starAt3T",
    "mu_a_810nm_per_mm": "muA810nm",
    "mu_s_prime_810nm_per_mm": "muSprime810nm",
}


#: Property maps a phantom has only when its spec asks for them (a tumour setting
#: ``macrophage_fraction`` or ``protease_activity_nM``; :mod:`imagingsim.phantom.stroma`).
OPTIONAL_PROPERTY_UNITS: dict[str, str] = {
    "macrophage_fraction": "fraction of cells (macrophages / all cells)",
    "protease_activity_nM": "nmol/L tissue (active MMP-2/9)",
}

#: BIDS ``desc`` value of each optional property map.
OPTIONAL_PROPERTY_DESC: dict[str, str] = {
    "macrophage_fraction": "macrophageFraction",
    "protease_activity_nM": "proteaseActivity",
}


@dataclass(frozen=True, eq=False)
class Phantom:
    """A voxel phantom: labels, property maps and whole-body constants.

    Attributes
    ----------
    spec : PhantomSpec
        The validated specification it was built from.
    grid : ImageGrid
        Voxel grid (RAS+, mm).
    labels : device array, uint8, shape ``grid.shape``
        :class:`Label` values.
    tumour_index : device array, uint8, shape ``grid.shape``
        0 outside tumours, ``n + 1`` inside ``spec.tumours[n]``.
    properties : dict of str -> device array (float64, ``grid.shape``)
        One map per key of :data:`PROPERTY_UNITS`, plus those of
        :data:`OPTIONAL_PROPERTY_UNITS` the spec asks for.
    materials : dict of int -> str
        Material name (ICRU composition key of ``imagingsim.data``) for each label value.
    species : {"mouse", "human"}
    body_mass_g : float
        Whole-body mass, including parts outside the field of view, g.
    blood_volume_ml : float
        Whole-body blood volume, mL.
    seed : int
        Seed the heterogeneity was drawn with.
    """

    spec: PhantomSpec
    grid: ImageGrid
    labels: Any
    tumour_index: Any
    properties: dict[str, Any]
    materials: dict[int, str]
    species: str
    body_mass_g: float
    blood_volume_ml: float
    seed: int
    backend: Any = field(repr=False, default=None)
