"""A linear first-order compartment network stepped by exponential splitting.

Generic: it knows states (scalars or maps over body entries) and first-order transfers,
nothing about carriers. See :mod:`imagingsim.delivery.kinetics` for the scheme's accuracy
and conservation properties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

PASS_THROUGH_MIN_DECAY = 0.01  # see Network.compile
#: A step is split over the workers only when it passes over at least this many entries in
#: all (about a millisecond of array passes; a hand-off to a thread costs ~50 us).
PARALLEL_MIN_PASSES = 1_000_000


# --- a linear first-order compartment network on the entry axis --------------------------


@dataclass
class Transfer:
    src: int
    dst: int
    rate: Any  # host float, or device array over entries
    weight: Any = None  # scalar source -> map destination: device distribution summing to 1
    frac: Any = None  # rate / (total outflow of src), set by compile


class Network:
    """Linear compartments (scalars or per-entry maps) stepped by exponential splitting.

    A state is a scalar (0-d device array) or a map over the body entries. A transfer is a
    first-order rate from one state to another; from a scalar to a map it is distributed by
    a weight map summing to 1; from a map to a scalar it is summed over entries.
    """

    def __init__(self, xp):
        self.xp = xp
        self.names: list[str] = []
        self.is_map: list[bool] = []
        self.transfers: list[Transfer] = []
        self.total_rate: list[Any] = []
        self.rate_bound: list[float] = []
        self.pass_through: list[bool] = []

    def state(self, name: str, is_map: bool) -> int:
        self.names.append(name)
        self.is_map.append(is_map)
        self.rate_bound.append(0.0)
        return len(self.names) - 1

    def flow(self, src: int, dst: int, rate, weight=None, *, bound: float | None = None) -> None:
        """Add the transfer ``src -> dst`` at ``rate`` (1/h).

        ``rate`` is a host float or a map over entries; a map needs ``bound``, a host upper
        bound of its values (it decides where the in-step pass-through is worth its cost).
        """
        if isinstance(rate, float):
            if rate == 0.0:
                return  # host-known zero: no work per step
            bound = rate
        elif bound is None:
            raise ValueError(
                f"transfer {self.names[src]} -> {self.names[dst]}: a rate map needs a host bound"
            )
        if bound == 0.0:
            return
        if self.is_map[dst] and not self.is_map[src] and weight is None:
            raise ValueError(f"transfer {self.names[src]} -> {self.names[dst]} needs a weight map")
        self.transfers.append(Transfer(src, dst, rate, weight))
        self.rate_bound[src] += bound

    def compile(self, max_step_h: float) -> None:
        """Step-invariant parts: total outflow rates, each transfer's share, pass-through.

        The in-step pass-through costs a second pass over the transfers; it is used only for
        states whose fastest outflow drains more than ``PASS_THROUGH_MIN_DECAY`` of a step's
        arrivals (otherwise its first-order error, about half that fraction, is negligible).
        """
        xp = self.xp
        self.total_rate = [0.0] * len(self.names)
        for t in self.transfers:
            self.total_rate[t.src] = self.total_rate[t.src] + t.rate
        safe = [r if isinstance(r, float) else xp.where(r > 0.0, r, 1.0) for r in self.total_rate]
        for t in self.transfers:
            t.frac = t.rate / safe[t.src]
        self.pass_through = [bound * max_step_h > PASS_THROUGH_MIN_DECAY for bound in self.rate_bound]

    def _phi(self, x, leave=None):
        """``(1 - exp(-x)) / x`` (1 at x = 0) for a host float or a device map, x >= 0.

        ``leave``, when given, is ``1 - exp(-x)`` already computed (``-expm1(-x)``: the same
        bits), which saves a transcendental pass over the map.
        """
        if isinstance(x, float):
            return -math.expm1(-x) / x if x > 0.0 else 1.0
        xp = self.xp
        positive = x > 0.0
        one_minus_exp = -xp.expm1(-x) if leave is None else leave
        return xp.where(positive, one_minus_exp / xp.where(positive, x, 1.0), 1.0)

    def _kept(self, x_src, x_dst, phi_src):
        """Share of a source's start-of-step outflow still in the destination at step end.

        Bateman two-stage solution: the source drains as ``exp(-x_src s / dt)``, the arrivals
        leave the destination at ``x_dst / dt``; the kept share is
        ``exp(-min) phi(|x_src - x_dst|) / phi(x_src)`` with ``phi(z) = (1 - e^-z) / z``
        (-> the uniform-arrival ``phi(x_dst)`` for a slow source), clipped to [0, 1];
        ``phi_src`` is ``phi(x_src)``, computed once per source.
        """
        if isinstance(x_src, float) and isinstance(x_dst, float):
            kept = math.exp(-min(x_src, x_dst)) * self._phi(abs(x_src - x_dst)) / phi_src
            return min(kept, 1.0)
        xp = self.xp
        lo = xp.minimum(x_dst, x_src) if isinstance(x_src, float) else xp.minimum(x_src, x_dst)
        gap = xp.abs(x_src - x_dst)
        return xp.minimum(xp.exp(-lo) * self._phi(gap) / phi_src, 1.0)

    def factors(self, dt: float) -> StepFactors:
        """Step factors for a step of ``dt`` hours."""
        xp = self.xp
        stay, leave, x = [], [], []
        for rate in self.total_rate:
            xk = rate * dt
            x.append(xk)
            if isinstance(rate, float):
                stay.append(math.exp(-xk))
                leave.append(-math.expm1(-xk))
            else:
                stay.append(xp.exp(-xk))
                leave.append(-xp.expm1(-xk))
        keep, onward, route = [], [], []
        phi: dict[int, Any] = {}  # phi(x_src) per source state: shared by its transfers
        for t in self.transfers:
            a = leave[t.src] * t.frac
            if self.pass_through[t.dst]:
                if t.src not in phi:
                    phi[t.src] = self._phi(x[t.src], leave[t.src])
                kept = self._kept(x[t.src], x[t.dst], phi[t.src])
                k, h = a * kept, a * (1.0 - kept)
            else:
                k, h = a, None
            if t.weight is not None:
                k = k * t.weight
                h = None if h is None else h * t.weight
            keep.append(k)
            onward.append(h)
            # Mass passed on by a pass-through source leaves it along its shares.
            if self.pass_through[t.src]:
                route.append(t.frac if t.weight is None else t.frac * t.weight)
            else:
                route.append(None)
        return StepFactors(stay=stay, keep=keep, onward=onward, route=route)

    def _move(self, amount, factor, t: Transfer):
        """Mass moved along ``t`` from ``amount`` (of the source's shape) with ``factor``."""
        if self.is_map[t.src] and not self.is_map[t.dst]:
            if isinstance(factor, float):
                return self.xp.sum(amount) * factor
            return self.xp.vecdot(amount, factor)
        return amount * factor

    def step(self, values: list, f: StepFactors) -> list:
        """Advance all states by one step (returns new state values; inputs are not modified).

        First pass: each transfer moves its share of the source's start-of-step content; the
        destination keeps the part that has not left it again by the end of the step (the
        Bateman share) and the rest is passed on. Second pass: what was passed on leaves
        along the destination's own shares (arriving late in the step, it stays there).
        """
        # Accumulators are fresh arrays owned here, so they are updated in place: large maps
        # cost mostly their allocation, and in-place sums halve the temporaries.
        n = len(values)
        kept: list[Any] = [None] * n
        passing: list[Any] = [None] * n
        for t, k, h in zip(self.transfers, f.keep, f.onward):
            _accumulate(kept, t.dst, self._move(values[t.src], k, t))
            if h is not None:
                _accumulate(passing, t.dst, self._move(values[t.src], h, t))
        for t, r in zip(self.transfers, f.route):
            arrived = passing[t.src]
            if arrived is not None and r is not None:
                _accumulate(kept, t.dst, self._move(arrived, r, t))
        out = []
        for k in range(n):
            stay = f.stay[k]
            if isinstance(stay, float) and stay == 1.0:
                value = values[k] if kept[k] is None else values[k] + kept[k]  # never alias the input
            else:
                value = values[k] * stay
                if kept[k] is not None:
                    value += kept[k]
            out.append(value)
        return out


    def linear_step(self, f: StepFactors) -> LinearStep:
        """The step of :meth:`step` with factors ``f`` as one linear map per destination.

        :meth:`step` makes two passes over the transfers and a temporary per move (three
        times as many array passes as there are transfers). The step is linear in the start
        values, so every path from a source to a destination (directly, or passed on through
        a map in the same step) folds into one coefficient per (destination, source) pair,
        computed once per step size. Passing on through a scalar couples every entry of a
        map to every other (map -> scalar -> map); that part stays a two-stage product
        through the scalar's arrivals. Equal to :meth:`step` up to rounding (products taken
        in another order); ``tests/delivery`` compares the two on every built-in scenario.
        """
        n = len(self.names)
        terms: list[dict[tuple[str, int], Any]] = [{} for _ in range(n)]
        arrivals: dict[int, dict[int, Any]] = {}  # scalar pass-through state -> {source: factor}

        def add(table: dict, key, coefficient) -> None:
            table[key] = coefficient if key not in table else table[key] + coefficient

        for t, keep in zip(self.transfers, f.keep):
            add(terms[t.dst], ("state", t.src), keep)
        for t_in, onward in zip(self.transfers, f.onward):
            if onward is None:
                continue
            middle = t_in.dst
            if not self.is_map[middle]:
                add(arrivals.setdefault(middle, {}), t_in.src, onward)
                continue
            for t_out, route in zip(self.transfers, f.route):
                if t_out.src == middle and route is not None:
                    coefficient = onward * route
                    if not (self.is_map[t_in.src] or self.is_map[t_out.dst]):
                        coefficient = self._total(coefficient)  # scalar -> map -> scalar: a number
                    add(terms[t_out.dst], ("state", t_in.src), coefficient)
        for middle in arrivals:
            for t_out, route in zip(self.transfers, f.route):
                if t_out.src == middle and route is not None:
                    add(terms[t_out.dst], ("arrivals", middle), route)
        return LinearStep(
            is_map=list(self.is_map),
            stay=list(f.stay),
            arrivals={m: list(sources.items()) for m, sources in arrivals.items()},
            terms=[list(table.items()) for table in terms],
            xp=self.xp,
        )

    def _total(self, coefficient):
        """Sum of a per-entry coefficient (a host float stays as it is)."""
        return coefficient if isinstance(coefficient, float) else self.xp.sum(coefficient)


@dataclass
class LinearStep:
    """One step as ``y_d = stay_d x_d + sum_j c_dj x_j + sum_m a_m r_dm`` (:meth:`Network.linear_step`).

    ``terms[d]`` lists ``(("state", j), c_dj)`` and ``(("arrivals", m), r_dm)``; ``arrivals[m]``
    lists ``(j, h_mj)``, with ``a_m = sum_j h_mj x_j`` what reaches the scalar pass-through
    state ``m`` during the step. A product of a map and a map is elementwise, of a map into a
    scalar a sum over entries (``vecdot``).
    """

    is_map: list
    stay: list
    arrivals: dict
    terms: list
    xp: Any
    #: Destination groups per worker count, made at the first step (the states' sizes do not change).
    _grouped: dict = field(default_factory=dict, repr=False)

    def _apply(self, coefficient, x, source_is_map: bool, target_is_map: bool):
        if source_is_map and not target_is_map:
            if isinstance(coefficient, float):
                return self.xp.sum(x) * coefficient
            return self.xp.vecdot(x, coefficient)
        return x * coefficient

    def apply(self, values: list, backend=None) -> list:
        """The states after the step (new arrays; ``values`` is not modified).

        With a ``backend`` (:class:`~imagingsim.backend.Backend`) of several workers, the
        destinations are computed in groups of about equal work on its workers
        (:meth:`Backend.map_ordered`): each destination's value is made by the same operations
        in the same order as in series, so the bits do not change. A step of a mouse's network
        makes four maps of 174k entries, each a chain of 5 to 6 array passes: large enough
        pieces for a thread each.
        """
        arrived = {
            m: sum(self._apply(h, values[j], self.is_map[j], False) for j, h in sources)
            for m, sources in self.arrivals.items()
        }

        def destination(d: int):
            value = values[d] * self.stay[d]
            for (kind, j), coefficient in self.terms[d]:
                if kind == "state":
                    value += self._apply(coefficient, values[j], self.is_map[j], self.is_map[d])
                else:
                    value += arrived[j] * coefficient
            return value

        groups = []
        if backend is not None and backend.workers > 1:
            if backend.workers not in self._grouped:
                self._grouped[backend.workers] = self._groups(values, backend.workers)
            groups = self._grouped[backend.workers]
        if len(groups) <= 1:
            return [destination(d) for d in range(len(self.stay))]
        out: list[Any] = [None] * len(self.stay)
        for group, results in zip(groups, backend.map_ordered(lambda g: [destination(d) for d in g], groups)):
            for d, value in zip(group, results):
                out[d] = value
        return out

    def _groups(self, values: list, workers: int) -> list[list[int]]:
        """Destinations in ``workers`` groups of about equal work (entries passed over), largest first.

        One group when the step passes over fewer than :data:`PARALLEL_MIN_PASSES` entries
        in all (a lumped network: handing pieces to threads would cost more than it saves).
        """
        def size(j: int) -> int:
            return math.prod(values[j].shape) if self.is_map[j] else 1

        def work(d: int) -> int:
            passes = size(d) * (1 + len(self.terms[d]))
            return passes + sum(size(j) for (kind, j), _ in self.terms[d] if kind == "state" and not self.is_map[d])

        if sum(work(d) for d in range(len(self.stay))) < PARALLEL_MIN_PASSES:
            return [list(range(len(self.stay)))]
        groups: list[list[int]] = [[] for _ in range(workers)]
        load = [0] * workers
        for d in sorted(range(len(self.stay)), key=work, reverse=True):
            k = load.index(min(load))
            groups[k].append(d)
            load[k] += work(d)
        return [sorted(g) for g in groups if g]


def _accumulate(slots: list, index: int, amount) -> None:
    """``slots[index] += amount``, in place once the slot holds an array made here."""
    if slots[index] is None:
        slots[index] = amount
    else:
        slots[index] += amount


@dataclass
class StepFactors:
    stay: list  # per state: exp(-R dt)
    keep: list  # per transfer: share of the source moved and kept by the destination
    onward: list  # per transfer: share moved and passed on within the step (or None)
    route: list  # per transfer: how a pass-through source passes arrivals on (or None)
