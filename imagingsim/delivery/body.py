"""The body as the kinetics sees it: tissue voxels on one entry axis plus lumped compartments.

Non-air voxels are gathered (sorted by label) onto a 1-D entry axis; organs that receive
clearance but lie wholly or partly outside the field of view, and the rest of the body, are
appended as lumped compartments with reference masses. Per-label and per-region sums are
contiguous slices, so no dense one-hot matrix is ever built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imagingsim.delivery.result import REGIONS
from imagingsim.phantom.model import TUMOUR_LABELS, Label, Phantom

BLOOD_DENSITY_G_PER_ML = 1.06  # whole blood (ICRP 89), for the "blood" region's mass
DIFFUSIBLE_REFERENCE_VB = 0.05  # "diffusible" access = v_b / 5 %, capped at 2 (carriers.toml)
DIFFUSIBLE_MAX_ACCESS = 2.0

#: Reference masses of the clearance organs, fraction of body mass: used for the part of an
#: organ outside the field of view. Mouse: Brown et al., Toxicol Ind Health 1997;13:407
#: (liver 5.49 %, kidneys 1.67 %, spleen 0.35 %, skeleton 10.73 %) (check). Human: ICRP
#: Publication 89 reference male (73 kg: liver 1.8 kg, spleen 0.15 kg, kidneys 0.31 kg,
#: skeleton with marrow 10.5 kg) (check). "marrow" is the whole skeleton, bone with marrow,
#: because the BONE label that receives marrow clearance is bone with marrow: red marrow is
#: taken as spread over the skeleton in proportion to its mass. The head phantom's skull
#: thus gets ~9 % of the marrow clearance, near the ~8 % of adult red marrow in the cranium
#: and mandible (ICRP Publication 70) (check).
REFERENCE_ORGAN_MASS_FRACTION: dict[str, dict[str, float]] = {
    "mouse": {"liver": 0.0549, "spleen": 0.0035, "kidneys": 0.0167, "marrow": 0.1073},
    "human": {"liver": 0.0247, "spleen": 0.0021, "kidneys": 0.0042, "marrow": 0.144},
}

#: Properties of lumped compartments: resting skeletal muscle (blood fraction ~3 %,
#: normal-vessel permeability ~1 % of a leaky tumour rim, glucose use ~0.1 of grey matter,
#: pH 7.4, pO2 ~40 mmHg) (check).
LUMPED_TISSUE: dict[str, float] = {
    "blood_volume_fraction": 0.03,
    "vessel_permeability": 0.01,
    "receptor_density_nM": 0.0,
    "glucose_metabolism": 0.1,
    "ph": 7.4,
    "po2_mmHg": 40.0,
    "density_g_per_ml": 1.05,
}

REGION_LABELS: dict[str, tuple[int, ...]] = {
    "liver": (Label.LIVER,),
    "spleen": (Label.SPLEEN,),
    "kidneys": (Label.KIDNEY,),
    "marrow": (Label.BONE,),
    "tumour": tuple(TUMOUR_LABELS),
}
REGION_LABELS["other_tissue"] = tuple(
    int(label)
    for label in Label
    if label != Label.AIR and all(int(label) not in values for values in REGION_LABELS.values())
)
#: Voxels whose macrophages take the rest of the MPS clearance: other tissue except blood
#: pool (no tissue) and brain (behind the blood-brain barrier).
REST_LABELS = tuple(v for v in REGION_LABELS["other_tissue"] if v not in (Label.BLOOD_POOL, Label.BRAIN))
ORGANS = ("liver", "spleen", "kidneys", "marrow")  # clearance destinations, lumped when absent
MPS_ORGANS = ("liver", "spleen", "marrow")
_ENTRY_PROPERTIES = (
    "blood_volume_fraction",
    "vessel_permeability",
    "receptor_density_nM",
    "glucose_metabolism",
    "ph",
    "po2_mmHg",
)
_AIR_SORT_KEY = 255  # air sorts after every tissue label (uint8)


# --- the body: tissue voxels compressed to one entry axis, plus lumped compartments --------


@dataclass(frozen=True, eq=False)
class Body:
    """Non-air voxels gathered onto a 1-D entry axis, followed by the lumped compartments.

    Entries ``[0, n_voxels)`` are voxels sorted by label (``label_range[label]`` is the slice
    of that label); the rest are lumped compartments (``lumped_index``: one per organ
    remainder outside the field of view, then ``outside_fov``; each is named after the ledger
    region it counts under). ``inverse`` maps every grid voxel to its entry, or to
    ``n_voxels`` (a zero pad) for air.
    """

    backend: Any
    shape: tuple[int, int, int]
    voxel_volume_ml: float
    blood_volume_ml: float
    n_voxels: int
    n_entries: int
    inverse: Any
    volume_ml: Any
    props: dict[str, Any]
    label_range: dict[int, tuple[int, int]]
    lumped_index: dict[str, int]
    organ_fraction: dict[str, float]
    organ_weighting: dict[str, tuple[str, float]]
    rest_blood_ml: float
    access_sum: dict[tuple[str, bool], float]
    region_mass_g: dict[str, float]
    region_blood_ml: dict[str, float]
    label_mass_g: dict[int, float]
    label_blood_ml: dict[int, float]
    max_property: dict[str, float]
    label_to_region: Any  # (len(Label), len(REGIONS)) 0/1, device
    lumped_to_region: Any  # (n_lumped, len(REGIONS)) 0/1, device
    voxel_index: Any = None  # (n_voxels,) flat grid index of each voxel entry, device

    def from_grid(self, grid_map, lumped_value: float = 0.0):
        """A map on the image grid as a vector over entries; the lumped entries get ``lumped_value``.

        For fields that exist only in the field of view (a heating focus, a magnet's pull)
        the lumped compartments, outside it, take 0; a tissue map takes its normal value.
        """
        xp, dev = self.backend.xp, self.backend.device
        voxels = xp.take(xp.reshape(grid_map, (-1,)), self.voxel_index)
        lumped = xp.full((self.n_entries - self.n_voxels,), lumped_value, dtype=xp.float64, device=dev)
        return xp.concat([voxels, lumped])

    def indicator(self, labels: Sequence[int] = (), lumped: Sequence[str] = ()):
        """Float 0/1 vector over entries: the voxels of ``labels`` and the ``lumped`` entries.

        Built from contiguous ranges (voxels are sorted by label), so no per-entry label
        array is kept.
        """
        xp, dev, f64 = self.backend.xp, self.backend.device, self.backend.xp.float64
        ranges = [self.label_range[int(v)] for v in labels]
        ranges += [(self.lumped_index[k], self.lumped_index[k] + 1) for k in lumped if k in self.lumped_index]
        ranges = sorted({r for r in ranges if r[1] > r[0]})  # disjoint: labels and entries differ
        pieces, at = [], 0
        for lo, hi in ranges:
            if lo > at:
                pieces.append(xp.zeros((lo - at,), dtype=f64, device=dev))
            pieces.append(xp.ones((hi - lo,), dtype=f64, device=dev))
            at = hi
        if at < self.n_entries:
            pieces.append(xp.zeros((self.n_entries - at,), dtype=f64, device=dev))
        return xp.concat(pieces) if len(pieces) > 1 else pieces[0]

    def region(self, name: str):
        """Float indicator (0/1) of the entries belonging to ``name`` (voxels and lumped)."""
        return self.indicator(REGION_LABELS.get(name, ()), (name,))

    def label_sums(self, values):
        """(len(Label),) device vector: ``values`` summed over each label's voxels."""
        xp = self.backend.xp
        return xp.stack([xp.sum(values[lo:hi]) for lo, hi in (self.label_range[int(label)] for label in Label)])

    def region_sums(self, values, label_sums):
        """(len(REGIONS),) device vector: ``values`` summed over each ledger region."""
        xp = self.backend.xp
        return xp.matmul(label_sums, self.label_to_region) + xp.matmul(
            values[self.n_voxels :], self.lumped_to_region
        )

    def to_grid(self, values):
        """Scatter per-voxel entry values onto the image grid (air = 0)."""
        xp, be = self.backend.xp, self.backend
        padded = xp.concat([values[: self.n_voxels], xp.zeros((1,), dtype=xp.float64, device=be.device)])
        return xp.reshape(xp.take(padded, self.inverse), self.shape)


def diffusible_access(xp, vb):
    return xp.minimum(vb / DIFFUSIBLE_REFERENCE_VB, DIFFUSIBLE_MAX_ACCESS)


def _phantom_sums(phantom: Phantom, backend) -> dict[str, float]:
    """Label counts and the phantom sums the solver needs on the host, in one download."""
    xp = backend.xp
    f64 = xp.float64
    labels = xp.reshape(phantom.labels, (-1,))
    vol = phantom.grid.voxel_volume_ml
    dens = xp.reshape(phantom.properties["density_g_per_ml"], (-1,))
    vb = xp.reshape(phantom.properties["blood_volume_fraction"], (-1,))
    named: dict[str, Any] = {}
    organ_labels = {int(v) for organ in ORGANS for v in REGION_LABELS[organ]}
    for label in Label:  # one float mask at a time: no (n, n_labels) matrix
        mask = xp.astype(labels == int(label), f64)
        named[f"count_{label.value}"] = xp.sum(mask)
        named[f"label_mass_{label.value}"] = vol * xp.sum(dens * mask)
        named[f"label_blood_{label.value}"] = vol * xp.sum(vb * mask)
        if int(label) in organ_labels:  # organ means, for the organ's remainder outside the FOV
            for key in _ENTRY_PROPERTIES:
                named[f"sum_{key}_{label.value}"] = xp.sum(xp.reshape(phantom.properties[key], (-1,)) * mask)
    # Extravasation capacity sum(access (1 - v_b) V) for both transports, with and without brain.
    tissue = labels != int(Label.AIR)
    brain = labels == int(Label.BRAIN)
    zero = xp.zeros((), dtype=f64, device=backend.device)
    for transport, access in (
        ("epr", xp.reshape(phantom.properties["vessel_permeability"], (-1,))),
        ("diffusible", diffusible_access(xp, vb)),
    ):
        weight = access * (1.0 - vb) * vol
        named[f"access_{transport}_all"] = xp.sum(xp.where(tissue, weight, zero))
        named[f"access_{transport}_brain"] = xp.sum(xp.where(brain, weight, zero))
    # Host bounds of the maps that scale rates (non-negative maps: max over the body).
    for key in ("glucose_metabolism", "receptor_density_nM"):
        named[f"max_{key}"] = xp.max(xp.where(tissue, xp.reshape(phantom.properties[key], (-1,)), zero))
    keys = list(named)
    host = backend.to_host(xp.stack([xp.asarray(named[k], dtype=f64, device=backend.device) for k in keys]))
    sums = dict(zip(keys, (float(v) for v in host.tolist())))
    for region, values in REGION_LABELS.items():
        sums[f"mass_{region}"] = sum(sums[f"label_mass_{int(v)}"] for v in values)
        sums[f"blood_{region}"] = sum(sums[f"label_blood_{int(v)}"] for v in values)
    return sums


def _lumped_compartments(phantom: Phantom, sums: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """In-FOV fraction of each clearance organ, and the lumped masses (g) in entry order.

    Lumped entries: the remainder ``(1 - f) x reference mass`` of every organ with
    ``f < 1``, then ``outside_fov`` (the rest of the body, clipped at 0).
    """
    reference = REFERENCE_ORGAN_MASS_FRACTION[phantom.species]
    fraction, masses = {}, {}
    for organ in ORGANS:
        ref_g = reference[organ] * phantom.body_mass_g
        fraction[organ] = min(1.0, sums[f"mass_{organ}"] / ref_g)
        if fraction[organ] < 1.0:
            masses[organ] = (1.0 - fraction[organ]) * ref_g
    fov_mass = sum(sums[f"mass_{r}"] for r in REGIONS if r != "outside_fov")
    masses["outside_fov"] = max(0.0, phantom.body_mass_g - fov_mass - sum(masses.values()))
    return fraction, masses


def _lumped_properties(sums, fraction, virtual, counts, vol) -> dict[str, dict[str, float]]:
    """Tissue properties of each lumped compartment (host values).

    The remainder of an organ partly in the field of view takes the mean of the organ's
    voxels (so its carrier per gram matches theirs); an absent organ and ``outside_fov``
    exchange like resting muscle (:data:`LUMPED_TISSUE`).
    """
    out = {}
    for name in virtual:
        labels = REGION_LABELS.get(name, ())
        if name in ORGANS and fraction[name] > 0.0 and len(labels) == 1:
            label, count = int(labels[0]), counts[int(labels[0])]
            props = {key: sums[f"sum_{key}_{label}"] / count for key in _ENTRY_PROPERTIES}
            props["density_g_per_ml"] = sums[f"label_mass_{label}"] / (count * vol)
            out[name] = props
        else:
            out[name] = dict(LUMPED_TISSUE)
    return out


def _compress(labels_flat, n_voxels: int, backend):
    """Indices of the non-air voxels sorted by label, and the inverse map (air -> n_voxels)."""
    xp = backend.xp
    # A stable sort by label (air last) puts each label's voxels in one contiguous run
    # without a data-dependent shape; ties keep grid order.
    last = xp.asarray(_AIR_SORT_KEY, dtype=xp.uint8, device=backend.device)
    key = xp.where(labels_flat == int(Label.AIR), last, labels_flat)
    order = xp.argsort(key, stable=True)
    position = xp.argsort(order, stable=True)
    pad = xp.asarray(n_voxels, dtype=position.dtype, device=backend.device)
    return order[:n_voxels], xp.where(position < n_voxels, position, pad)


def _organ_weighting(sums, counts, fraction, vol) -> dict[str, tuple[str, float]]:
    """How each organ's in-FOV share is spread over its voxels: (kind, normalising sum)."""
    weighting = {}
    for organ in ORGANS:
        organ_volume = vol * sum(counts[int(v)] for v in REGION_LABELS[organ])
        if fraction[organ] == 0.0:
            weighting[organ] = ("none", 1.0)  # no voxel: all goes to the lumped organ
        elif organ == "kidneys":
            weighting[organ] = ("volume", organ_volume)  # filtration per kidney volume
        elif sums[f"blood_{organ}"] > 0.0:
            weighting[organ] = ("blood", sums[f"blood_{organ}"])  # MPS uptake follows perfusion
        else:
            weighting[organ] = ("volume", organ_volume)  # no blood in the map there: by volume
    return weighting


def _access_sums(sums, lumped_props: list[dict[str, float]], lumped_volume_ml: list[float]):
    """sum(access (1 - v_b) V) over all entries, per (transport, crosses_bbb), mL."""
    out = {}
    for transport in ("epr", "diffusible"):
        total = sums[f"access_{transport}_all"]
        for props, volume in zip(lumped_props, lumped_volume_ml):
            vb = props["blood_volume_fraction"]
            if transport == "epr":
                access = props["vessel_permeability"]
            else:
                access = min(vb / DIFFUSIBLE_REFERENCE_VB, DIFFUSIBLE_MAX_ACCESS)
            total += access * (1.0 - vb) * volume
        out[(transport, True)] = total
        out[(transport, False)] = max(0.0, total - sums[f"access_{transport}_brain"])
    return out


def build_body(phantom: Phantom, backend) -> Body:
    """Compress the phantom's non-air voxels and append the lumped compartments."""
    xp, dev, f64 = backend.xp, backend.device, backend.xp.float64
    sums = _phantom_sums(phantom, backend)
    vol = phantom.grid.voxel_volume_ml
    counts = {int(label): round(sums[f"count_{label.value}"]) for label in Label}
    n_voxels = phantom.grid.n_voxels - counts[int(Label.AIR)]
    fraction, lumped_mass = _lumped_compartments(phantom, sums)
    virtual = tuple(lumped_mass)
    lumped_props = _lumped_properties(sums, fraction, virtual, counts, vol)
    virtual_props = [lumped_props[name] for name in virtual]
    virtual_volume = [lumped_mass[name] / lumped_props[name]["density_g_per_ml"] for name in virtual]
    n_entries = n_voxels + len(virtual)

    label_range, at = {}, 0
    for label in sorted(int(v) for v in Label if v != Label.AIR):
        label_range[label] = (at, at + counts[label])
        at += counts[label]
    label_range[int(Label.AIR)] = (0, 0)
    lumped_index = {name: n_voxels + j for j, name in enumerate(virtual)}

    labels = xp.reshape(phantom.labels, (-1,))
    index, inverse = _compress(labels, n_voxels, backend)

    def entries(voxel_values, lumped_values):
        return xp.concat([voxel_values, xp.asarray(lumped_values, dtype=f64, device=dev)])

    props = {
        key: entries(
            xp.take(xp.reshape(phantom.properties[key], (-1,)), index), [q[key] for q in virtual_props]
        )
        for key in _ENTRY_PROPERTIES
    }
    region_of = {int(v): region for region, values in REGION_LABELS.items() for v in values}
    label_to_region = [[float(region_of.get(int(label)) == region) for region in REGIONS] for label in Label]
    lumped_to_region = [[float(name == region) for region in REGIONS] for name in virtual]

    region_mass = {r: sums.get(f"mass_{r}", 0.0) for r in REGIONS}
    region_blood = {r: sums.get(f"blood_{r}", 0.0) for r in REGIONS}
    for name, volume_ml in zip(virtual, virtual_volume):
        region_mass[name] += lumped_mass[name]
        region_blood[name] += lumped_props[name]["blood_volume_fraction"] * volume_ml
    region_mass["blood"] = phantom.blood_volume_ml * BLOOD_DENSITY_G_PER_ML
    region_blood["blood"] = 0.0
    rest_blood = sum(sums[f"label_blood_{v}"] for v in REST_LABELS)
    rest_blood += lumped_props["outside_fov"]["blood_volume_fraction"] * virtual_volume[-1]
    return Body(
        backend=backend,
        shape=phantom.grid.shape,
        voxel_volume_ml=vol,
        blood_volume_ml=phantom.blood_volume_ml,
        n_voxels=n_voxels,
        n_entries=n_entries,
        inverse=inverse,
        volume_ml=entries(xp.full((n_voxels,), vol, dtype=f64, device=dev), virtual_volume),
        props=props,
        label_range=label_range,
        lumped_index=lumped_index,
        organ_fraction=fraction,
        organ_weighting=_organ_weighting(sums, counts, fraction, vol),
        rest_blood_ml=rest_blood,
        access_sum=_access_sums(sums, virtual_props, virtual_volume),
        region_mass_g=region_mass,
        region_blood_ml=region_blood,
        label_mass_g={int(label): sums[f"label_mass_{label.value}"] for label in Label if label != Label.AIR},
        label_blood_ml={
            int(label): sums[f"label_blood_{label.value}"] for label in Label if label != Label.AIR
        },
        max_property={
            key: max([sums[f"max_{key}"]] + [q[key] for q in virtual_props])
            for key in ("glucose_metabolism", "receptor_density_nM")
        },
        label_to_region=xp.asarray(label_to_region, dtype=f64, device=dev),
        lumped_to_region=xp.asarray(lumped_to_region, dtype=f64, device=dev),
        voxel_index=index,
    )
