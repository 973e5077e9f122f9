"""Summary lines of the delivery: what happened in each tumour, for the CLI.

Written only where they show something the whole-tumour %ID/g line does not: a phantom with
several tumours (a treated one and its control), an agent an external field acted on, or a
receptor-targeted agent (its tumour-to-blood ratio and receptor-bound share over time).
Means are taken on the device; only the per-tumour numbers are downloaded.
"""

from __future__ import annotations

from imagingsim.delivery.result import DeliveryResult


def _means(backend, values, masks: list) -> list[list[float]]:
    """Mean over each mask's voxels of a (nx, ny, nz[, T]) device array: one list per mask."""
    xp = backend.xp
    rows = []
    for mask in masks:
        weight = xp.astype(mask, xp.float64)
        count = xp.sum(weight)
        total = xp.sum(values * weight[..., None], axis=(0, 1, 2)) if values.ndim == 4 else xp.sum(values * weight)
        rows.append(xp.reshape(total / count, (-1,)))
    host = backend.to_host(xp.stack(rows))
    return [[float(v) for v in row] for row in host.tolist()]


def tumour_lines(delivery: DeliveryResult, phantom, backend) -> list[str]:
    """Per tumour: mean carrier, free and bound drug (ug/mL) at each time, and the field in it.

    For a targeted agent, the tumour-to-blood concentration ratio and the cell-associated
    (receptor-bound and internalised) share of the tumour's carrier.

    Parameters
    ----------
    delivery : DeliveryResult
    phantom : Phantom
        Its ``tumour_index`` and ``spec.tumours`` (names).
    backend : Backend
        Where the maps live.

    Returns
    -------
    list of str
        Empty when no agent is targeted, the phantom has at most one tumour and no field
        acted on any agent.
    """
    tumours = [t.name for t in phantom.spec.tumours]
    if not tumours:
        return []
    masks = [phantom.tumour_index == k + 1 for k in range(len(tumours))]
    lines: list[str] = []
    for item in delivery.agents:
        name = item.agent.name
        times = ", ".join(f"{t:g}" for t in item.times_h)
        if item.agent.targeting is not None:
            carrier, bound = _means(backend, item.carrier_ug_per_ml, [phantom.tumour_index > 0]) + _means(
                backend, item.bound_carrier_ug_per_ml, [phantom.tumour_index > 0]
            )
            ratio = [c / b if b > 0.0 else float("nan") for c, b in zip(carrier, item.blood_ug_per_ml)]
            share = [b / c if c > 0.0 else float("nan") for b, c in zip(bound, carrier)]
            lines.append(
                f"  {name}: targeted, tumour-to-blood ratio at t = [{times}] h: [{', '.join(f'{v:.3g}' for v in ratio)}], "
                f"cell-associated share of tumour carrier [{', '.join(f'{v:.2f}' for v in share)}]"
            )
        if len(tumours) < 2 and not item.field_maps:
            continue
        quantities = [("carrier", item.carrier_ug_per_ml)]
        if item.free_drug_ug_per_ml is not None:
            quantities += [("free drug", item.free_drug_ug_per_ml), ("bound drug", item.bound_drug_ug_per_ml)]
        for what, maps in quantities:
            per = "; ".join(f"{t} [{', '.join(f'{v:.3g}' for v in m)}]" for t, m in zip(tumours, _means(backend, maps, masks)))
            lines.append(f"  {name}: {what} ug/mL per tumour at t = [{times}] h: {per}")
        for field, fmap in sorted(item.field_maps.items()):
            per = ", ".join(f"{t} {m[0]:.3g}" for t, m in zip(tumours, _means(backend, fmap.values, masks)))
            lines.append(f"  {name}: {field} ({fmap.units}) mean per tumour: {per}")
    return lines


__all__ = ["tumour_lines"]
