"""Exact lumping of the entries whose transfer rates are all the same.

Every map state of a :class:`~imagingsim.delivery.network.Network` starts at zero and is
filled only through scalar -> map transfers, each distributing its flux by a weight map (an
input *channel*), and through map -> map transfers within an entry. The step is linear and
acts on each entry with factors that depend only on that entry's rates, so an entry's state is
``sum_c w_c(x) R_c(g(x), t)``: the entries of a group ``g`` of equal rates share the unit
responses ``R_c``. One lumped entry per (channel, group), fed with the group's summed weight
``W_c(g)``, holds ``V_cg = W_cg R_cg``; the sums over entries that feed the scalars are the
same sums taken group by group, and an entry's value is recovered as
``sum_c w_c(x) V_cg(x) / W_cg(x)``. The scheme, its step factors and its step sizes are
unchanged: the lumped solver equals the per-entry one up to rounding
(``tests/delivery/test_solver_equivalence.py``).

A phantom whose rates come from a few labels (the torso: two distinct rate tuples over
634,803 entries) then steps a handful of entries instead of every voxel; one whose rates
vary voxel by voxel (a pH-triggered release on a continuous pH map) is not lumped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagingsim.delivery.network import Network, Transfer

#: Lump only when the lumped entries (channels x groups) are at most this share of the
#: entries: below it the per-step work shrinks by more than the cost of the grouping.
MAX_LUMPED_SHARE = 0.5


@dataclass
class Lumping:
    """How the lumped entries of one component map back to the body's entries.

    Lumped entry ``c * n_groups + g`` holds channel ``c`` of group ``g``.

    Attributes
    ----------
    group : device array of int, (n_entries,)
        Group of equal rates of each entry.
    first : device array of int, (n_groups,)
        One entry of each group (where its rates are read).
    channels : list of device arrays, (n_entries,)
        The distinct weight maps of the scalar -> map transfers into the component.
    group_weight : device array, (n_channels * n_groups,)
        ``W_cg``: each channel's weight summed over each group.
    """

    group: Any
    first: Any
    channels: list
    group_weight: Any
    xp: Any

    @property
    def n_groups(self) -> int:
        """Number of groups of equal rates."""
        return int(self.first.shape[0])

    @property
    def n_blocks(self) -> int:
        """Blocks of lumped entries: one per channel (one when nothing flows in)."""
        return max(len(self.channels), 1)

    @property
    def n_entries(self) -> int:
        """Number of lumped entries."""
        return self.n_blocks * self.n_groups

    def rate(self, rate_map):
        """A rate map over the body's entries as one over the lumped entries."""
        return self.xp.concat([self.xp.take(rate_map, self.first)] * self.n_blocks)

    def weight(self, channel, backend):
        """A channel's weight map: its group sums in its block, zeros in the others."""
        c = next(k for k, w in enumerate(self.channels) if w is channel)
        g = self.n_groups
        pieces = [
            self.group_weight[c * g : (c + 1) * g] if k == c else backend.zeros((g,)) for k in range(len(self.channels))
        ]
        return self.xp.concat(pieces) if len(pieces) > 1 else pieces[0]

    def expand(self, value):
        """A lumped map state as a map over the body's entries."""
        xp, g = self.xp, self.n_groups
        if not self.channels:
            return xp.take(value, self.group)  # nothing ever flows in: zeros
        weight = self.group_weight
        filled = weight > 0.0
        unit = xp.where(filled, value / xp.where(filled, weight, 1.0), 0.0)  # R_cg; 0 where no input
        out = None
        for c, channel in enumerate(self.channels):
            part = xp.take(unit[c * g : (c + 1) * g], self.group) * channel
            out = part if out is None else out + part
        return out


def lump(net: Network, n_entries: int, backend) -> tuple[Network, dict[int, Lumping]] | None:
    """The network with its map states on lumped entries where that pays, or None.

    Map states joined by map -> map transfers form a component (a carrier's E, B, K; its
    payload's encapsulated, free and bound drug); components meet only through scalars, so
    each is grouped by the rates that act on it and lumped on its own entry axis.

    Parameters
    ----------
    net : Network
        A network whose map states are all zero at the start (not yet compiled).
    n_entries : int
        Length of the entry axis of its maps.
    backend : Backend
        Its array backend; one counted download (the group sizes) per call.

    Returns
    -------
    (Network, dict) or None
        The lumped network and the :class:`Lumping` of each lumped map state (by state
        index); None when no component's lumped entries would be at most
        :data:`MAX_LUMPED_SHARE` of ``n_entries``.
    """
    xp = backend.xp
    components = _map_components(net)
    if not components:
        return None
    found = []
    for states in components:
        rate_maps = [
            t.rate for t in net.transfers if (t.src in states or t.dst in states) and not isinstance(t.rate, float)
        ]
        channels: list = []
        for t in net.transfers:
            if t.dst in states and t.weight is not None and not any(t.weight is c for c in channels):
                channels.append(t.weight)
        found.append((states, channels, *_groups(xp, rate_maps, n_entries, backend.device)))
    # The number of groups is a data-dependent shape: reading it waits for the device, so it
    # is one explicit, counted download of every component's group sizes.
    backend.to_host(xp.concat([counts for *_, counts in found]))

    by_state: dict[int, Lumping] = {}
    for states, channels, group, first, counts in found:
        if max(len(channels), 1) * int(counts.shape[0]) > MAX_LUMPED_SHARE * n_entries:
            continue
        weights = [_group_sums(xp, w, group, counts) for w in channels]
        lumping = Lumping(group, first, channels, xp.concat(weights) if weights else None, xp)
        by_state.update({k: lumping for k in states})
    if not by_state:
        return None

    lumped = Network(xp)
    lumped.names, lumped.is_map = list(net.names), list(net.is_map)
    lumped.rate_bound = list(net.rate_bound)
    for t in net.transfers:
        lumping = by_state.get(t.src if net.is_map[t.src] else t.dst)
        rate, weight = t.rate, t.weight
        if lumping is not None:
            if not isinstance(rate, float):
                rate = lumping.rate(rate)
            if weight is not None:
                weight = lumping.weight(weight, backend)
        lumped.transfers.append(Transfer(t.src, t.dst, rate, weight))
    return lumped, by_state


def _map_components(net: Network) -> list[set[int]]:
    """Map states grouped by the map -> map transfers between them (connected components)."""
    parent = {k: k for k, is_map in enumerate(net.is_map) if is_map}

    def root(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    for t in net.transfers:
        if t.src in parent and t.dst in parent:
            parent[root(t.src)] = root(t.dst)
    components: dict[int, set[int]] = {}
    for k in parent:
        components.setdefault(root(k), set()).add(k)
    return list(components.values())


def _groups(xp, rate_maps: list, n_entries: int, device):
    """Group of each entry by its tuple of rates, the first entry of each group, group sizes.

    Each rate map is replaced by its unique-value index and folded into the running key as
    ``key * n_entries + index`` (both below ``n_entries``, so no overflow for any grid that
    fits in memory), renumbered after each fold. Stays on the device; the caller syncs once.
    """
    key = xp.zeros((n_entries,), dtype=xp.int64, device=device)
    for rate in rate_maps:
        index = xp.astype(xp.unique_inverse(rate).inverse_indices, xp.int64)
        key = xp.astype(xp.unique_inverse(key * n_entries + index).inverse_indices, xp.int64)
    found = xp.unique_all(key)
    group = xp.reshape(found.inverse_indices, (-1,))
    return group, found.indices, found.counts


def _group_sums(xp, weight, group, counts):
    """``weight`` summed over each group (entries in group order, one cumulative sum).

    A difference of cumulative sums errs by ~1e-16 of the running total; the lumped values
    are proportional to these sums and divided by them again on expansion, so the maps do
    not see that error, and the mass fed in differs from the weights' own sum by rounding.
    """
    order = xp.argsort(group, stable=True)
    running = xp.cumulative_sum(xp.take(weight, order), include_initial=True)
    ends = xp.cumulative_sum(xp.astype(counts, xp.int64), include_initial=True)
    return xp.take(running, ends[1:]) - xp.take(running, ends[:-1])
