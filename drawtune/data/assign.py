"""Where each drawing goes: a stable train/val/test assignment that keeps linked drawings together.

A drawing's split depends on its key (the image's content hash, or a configured group value so
that sheets of one drawing set stay together) and the split fractions. Drawings linked by
``data.leakage`` (near-duplicate fingerprints, one file-name key, one group value) form a group
that goes to one split. With a ledger (drawtune.data.ledger: content hash -> split of the
drawings split before), adding drawings never moves an existing one: a newcomer joining a group
goes to the group's split, and a newcomer linking groups already in different splits moves
nothing, is reported with both groups' drawings and is placed with the nearest one or held out.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field

from .leakage import Link, drawing

SPLITS = ("train", "val", "test")


def split_of(key: str, val: float, test: float, salt: str = "drawtune") -> str:
    """``test`` for the first ``test`` fraction of the hash space, then ``val``, else ``train``."""
    h = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    if u < test:
        return "test"
    if u < test + val:
        return "val"
    return "train"


@dataclass
class Assignment:
    """Where each drawing went: ``where[k]`` is record ``k``'s split (None: held out)."""

    where: list
    bridges: list = field(default_factory=list)
    held_out: list = field(default_factory=list)


def _components(n: int, links: list[Link]) -> list[int]:
    """Union-find over the links: a root index per record."""
    parent = list(range(n))

    def root(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for ln in links:
        a, b = root(ln.i), root(ln.j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [root(k) for k in range(n)]


def _group_key(members: list[dict]) -> str:
    """The key a group new to the ledger is split by: its smallest configured group value, else
    its smallest content hash (a drawing on its own: its content hash, as ever)."""
    groups = [str(r["group"]) for r in members if r.get("group") is not None]
    return min(groups) if groups else min(r["sha256"] for r in members)


def _weight(ln: Link) -> int:
    return ln.distance if ln.distance is not None else 0  # a name or group key: no distance


def _reach(adj: dict, sources: list[int], known: set) -> dict:
    """Shortest link distance from ``sources`` to the records of their group, passing only through
    newcomers (a drawing of the ledger relays nothing: it belongs to its own group):
    ``{k: (distance, source)}``."""
    best = {k: (0, k) for k in sources}
    start = set(sources)
    heap = [(0, k, k) for k in sorted(sources)]
    while heap:
        d, k, src = heapq.heappop(heap)
        if best[k] != (d, src) or (k in known and k not in start):
            continue
        for j, w in adj.get(k, ()):
            cand = (d + w, src)
            if j not in best or cand < best[j]:
                best[j] = cand
                heapq.heappush(heap, (d + w, j, src))
    return best


def assign(
    records: list[dict],
    links: list[Link],
    val: float,
    test: float,
    salt: str,
    ledger: dict | None = None,
    on_bridge: str = "place",
    datasets: list | None = None,
    train_only: frozenset | set = frozenset(),
) -> Assignment:
    """The split of every record: a group (records joined by ``links``) with drawings in the
    ``ledger`` (content hash -> split) keeps their split and takes its newcomers along; a new
    group goes where its :func:`_group_key` hashes to. A newcomer linked (through newcomers
    only) to ledger drawings of more than one split is a bridge: nothing moves, it is reported
    with the nearest drawing of each split and goes to the nearest one's split
    (``on_bridge: place``) or into no split (``hold_out``).

    Drawings of the ``train_only`` datasets (names, as in ``datasets``) go to train, and the
    other drawings of their groups are split as if they were not there: adding a train-only
    dataset moves nothing. A train-only drawing whose group has drawings in val or test is held
    out instead, so that it leaks nothing."""
    ledger = ledger or {}
    datasets = datasets or [None] * len(records)
    roots = _components(len(records), links)
    comps: dict[int, list[int]] = {}
    for k, r in enumerate(roots):
        comps.setdefault(r, []).append(k)
    adj: dict[int, list] = {}
    for ln in links:
        adj.setdefault(ln.i, []).append((ln.j, _weight(ln)))
        adj.setdefault(ln.j, []).append((ln.i, _weight(ln)))
    known = {k for k, r in enumerate(records) if r["sha256"] in ledger}
    out = Assignment(where=[None] * len(records))
    for _, members in sorted(comps.items()):
        comp = [k for k in members if datasets[k] not in train_only]
        if not comp:
            continue
        prior = {}
        for k in comp:
            if k in known:
                prior.setdefault(ledger[records[k]["sha256"]], []).append(k)
        if not prior:
            s = split_of(_group_key([records[k] for k in comp]), val, test, salt)
            for k in comp:
                out.where[k] = s
            continue
        for s, ks in prior.items():
            for k in ks:
                out.where[k] = s
        newcomers = [k for k in comp if k not in known]
        if not newcomers:
            continue
        if len(prior) == 1:
            (s,) = prior
            for k in newcomers:
                out.where[k] = s
            continue
        reach = {s: _reach(adj, ks, known) for s, ks in sorted(prior.items())}
        for k in newcomers:
            near = sorted(
                (reach[s][k][0], SPLITS.index(s), s, reach[s][k][1]) for s in reach if k in reach[s]
            )
            if len(near) == 1:
                out.where[k] = near[0][2]
                continue
            placed = near[0][2] if on_bridge == "place" else None
            out.where[k] = placed
            row = {
                "newcomer": drawing(records[k], datasets[k], placed),
                "links": [
                    dict(drawing(records[src], datasets[src], s), distance=d)
                    for d, _, s, src in near
                ],
                "placed": placed or "held out",
            }
            out.bridges.append(row)
            if placed is None:
                out.held_out.append(
                    dict(
                        drawing(records[k], datasets[k], None),
                        reason="links drawings of "
                        + " and ".join(s for _, _, s, _ in near)
                        + " (leakage.on_bridge: hold_out)",
                    )
                )
    for _, members in sorted(comps.items()):
        pinned = [k for k in members if datasets[k] in train_only]
        if not pinned:
            continue
        held = {out.where[k] for k in members if k not in pinned} - {None, "train"}
        held = sorted(held, key=SPLITS.index)
        for k in pinned:
            if not held:
                out.where[k] = "train"
                continue
            out.held_out.append(
                dict(
                    drawing(records[k], datasets[k], None),
                    reason=f"dataset {datasets[k]} is train-only (holdout: false) but this "
                    f"drawing is a near-duplicate of drawings in {' and '.join(held)}",
                )
            )
    return out
