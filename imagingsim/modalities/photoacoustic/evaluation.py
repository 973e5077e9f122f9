"""What an acquisition reports against its truth: the sO2 error by depth and the tumour means.

Both reduce device maps to a few numbers with one host transfer each (no implicit
synchronisation), for the error table written beside the images and for the CLI summary.
"""

from __future__ import annotations

import math
from typing import Any

from imagingsim.backend import Backend

#: Width of the depth bins of the sO2 error table, mm (at least one voxel).
DEPTH_BIN_MM = 1.0
#: Tumour pixels with less true haemoglobin are left out of the summary's means, mM (~1 % blood).
TUMOUR_MIN_HAEMOGLOBIN_MM = 0.02


def _masked_means(values, masks, backend: Backend):
    """Means of each ``values`` map over each mask, as device 0-d arrays (NaN for an empty mask)."""
    xp = backend.xp
    out = []
    for v in values:
        for m in masks:
            w = xp.astype(m, xp.float64)
            n = xp.sum(w)
            out.append(xp.where(n > 0, xp.sum(xp.where(m, v, 0.0)) / xp.where(n > 0, n, 1.0), xp.nan))
            out.append(n)
    return out


def error_by_depth(depth_mm, slice_grid, times_h, so2_true, estimates: dict[str, Any], backend: Backend):
    """Rows of the sO2 error by depth (``DEPTH_COLUMNS``), one host transfer.

    Parameters
    ----------
    depth_mm : device array ``(nx, ny)``
        Depth below the illuminated skin (inf outside the body), mm.
    slice_grid : ImageGrid
    times_h : tuple of float
    so2_true : device array ``(nx, ny)``
        NaN where undefined.
    estimates : dict of str -> device array ``(nx, ny, T)`` or None
        Error columns to sO2 stacks (None: the column is NaN); a pixel counts where the truth
        and every estimate are defined.
    backend : Backend
    """
    xp = backend.xp
    h = slice_grid.voxel_size_mm[0]
    step = max(DEPTH_BIN_MM, h)
    depth = depth_mm
    n_bins = max(1, math.ceil(max(slice_grid.shape[:2]) * h / step))
    present = {name: est for name, est in estimates.items() if est is not None}
    width = 2 + len(present)
    values = []
    for k in range(len(times_h)):
        valid = ~xp.isnan(so2_true)
        for est in present.values():
            valid = valid & ~xp.isnan(est[..., k])
        for b in range(n_bins):
            mask = valid & (depth >= b * step) & (depth < (b + 1) * step)
            values += [xp.sum(xp.astype(mask, xp.float64)), xp.sum(xp.where(mask, so2_true, 0.0))]
            values += [xp.sum(xp.where(mask, est[..., k] - so2_true, 0.0)) for est in present.values()]
    host = backend.to_host(xp.stack(values)).tolist()
    rows = []
    for k, t in enumerate(times_h):
        for b in range(n_bins):
            n, total, *errors = host[width * (k * n_bins + b): width * (k * n_bins + b + 1)]
            if n == 0:
                continue
            row = {"time_h": t, "depth_mm": (b + 0.5) * step, "pixels": int(n), "so2_true_mean": total / n}
            found = dict(zip(present, errors, strict=True))
            rows.append({**row, **{name: found[name] / n if name in found else math.nan for name in estimates}})
    return rows


def tumour_means(tumour, model, times_h, so2_true, so2_est, so2_comp, agent_truth, unmixed, comp, backend: Backend):
    """Per time, tumour means of true and estimated sO2 and agent concentrations (one host transfer).

    Over the slice's tumour pixels whose true total haemoglobin is at least
    :data:`TUMOUR_MIN_HAEMOGLOBIN_MM` (the necrotic core, ~0.5 % blood, is left out: its sO2
    is noise); each estimate over those of its pixels where it is defined (not NaN).
    """
    xp = backend.xp
    keys = model.keys
    total = model.static["HbO2"] + model.static["Hb"]
    base = tumour & (total >= TUMOUR_MIN_HAEMOGLOBIN_MM)
    agent_keys = [k for k in keys if k in model.agent_terms]
    values, names = [], []
    for k in range(len(times_h)):
        maps = {"so2_true": so2_true, "so2_estimate": so2_est[..., k]}
        if so2_comp is not None:
            maps["so2_compensated"] = so2_comp[..., k]
        for key in agent_keys:
            maps[f"{key}_true"] = agent_truth[key][..., k]
            maps[f"{key}_estimate"] = unmixed[..., keys.index(key), k]
            if comp is not None:
                maps[f"{key}_compensated"] = comp[..., keys.index(key), k]
        names.append(list(maps))
        for v in maps.values():
            values += _masked_means([v], [base & ~xp.isnan(v)], backend)
    host = backend.to_host(xp.stack(values)).tolist()
    rows, at = [], 0
    for k, t in enumerate(times_h):
        row: dict[str, float] = {"time_h": t}
        for name in names[k]:
            row[name] = host[at]
            if name == "so2_true":
                row["pixels"] = host[at + 1]
            at += 2
        if row["pixels"] > 0:
            rows.append(row)
    return rows


__all__ = ["DEPTH_BIN_MM", "TUMOUR_MIN_HAEMOGLOBIN_MM", "error_by_depth", "tumour_means"]
