"""How stable a task's circuit is across discovery seeds (prompt samples) and across models.

For each model, the newest discovered circuit per seed is taken (one method: the one with the
most seeds unless given). Components are heads, MLPs and features with positions collapsed
(``a1.h0@END`` counts as ``a1.h0``), input and logits left aside. Reported: every pair of seeds'
Jaccard index, and which components are found in every seed, in most (more than half), and in
only one. Across models of one shape, the components found in most seeds are compared pairwise.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from statistics import mean
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from catalog.errors import InvalidInputError, NotFoundError
from catalog.naming import component_of
from catalog.queries.overlap import SetOverlap
from catalog.queries.reuse import DEFAULT_KINDS

if TYPE_CHECKING:
    from catalog.store import Catalog


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True)


class ComponentStability(_Value):
    """A component and in how many of the seeds' circuits it was found."""

    component: str
    seeds: int
    fraction: float


class SeedStability(_Value):
    """One model's circuits for a task across seeds."""

    model: str
    method: str
    seeds: tuple[int, ...]
    circuits: tuple[int, ...]
    jaccard: tuple[float, ...]  # every pair of seeds, in (seed i, seed j) order, i < j
    jaccard_mean: float | None
    jaccard_min: float | None
    jaccard_max: float | None
    in_every: tuple[str, ...]
    in_most: tuple[str, ...]
    in_one: tuple[str, ...]
    components: tuple[ComponentStability, ...]

    def stable(self, fraction: float) -> frozenset[str]:
        """Components found in at least `fraction` of the seeds."""
        return frozenset(c.component for c in self.components if c.fraction >= fraction)


class ModelPair(_Value):
    """Two models' components found in most seeds, compared."""

    a: str
    b: str
    overlap: SetOverlap


class Stability(_Value):
    """`catalog stability`: per model across seeds, and between models."""

    task: str
    models: tuple[SeedStability, ...]
    across_models: tuple[ModelPair, ...]


def stability(cat: Catalog, task: str, model: str | None = None, method: str | None = None) -> Stability:
    """How stable `task`'s discovered circuits are across seeds on each model (or on `model`)."""
    rows = [r for r in cat.circuits(task=task, model=model, method=method, source="discovery")]
    if not rows:
        where = f" on {model}" if model else ""
        how = f" with {method}" if method else ""
        raise NotFoundError(f"No discovered circuit for task '{task}'{where}{how}. Run `catalog sweep --task "
                            f"{task} --seed 0 --seed 1 --seed 2` (or discover with several --seed) first.")
    by_model: dict[str, list] = {}
    for r in rows:
        by_model.setdefault(r.model, []).append(r)
    out = []
    for m, found in sorted(by_model.items()):
        out.append(_per_model(cat, m, found, method))
    pairs = tuple(ModelPair(a=x.model, b=y.model, overlap=SetOverlap.of(x.stable(0.5 + 1e-9), y.stable(0.5 + 1e-9)))
                  for x, y in combinations(out, 2))
    return Stability(task=task, models=tuple(out), across_models=pairs)


def _per_model(cat: Catalog, model: str, rows: list, method: str | None) -> SeedStability:
    seeds_by_method: dict[str, dict[int, int]] = {}
    for r in sorted(rows, key=lambda r: r.id):  # newest circuit per seed wins
        seed = cat.get_run(r.run_id).provenance.seed if r.run_id is not None else None
        if seed is None or r.method is None:
            continue
        seeds_by_method.setdefault(r.method, {})[int(seed)] = r.id
    if not seeds_by_method:
        raise InvalidInputError(f"The discovered circuits for this task on {model} record no seed.")
    chosen = method or max(seeds_by_method, key=lambda k: (len(seeds_by_method[k]), k))
    circuits = seeds_by_method[chosen]
    seeds = tuple(sorted(circuits))
    ids = tuple(circuits[s] for s in seeds)
    members = cat.membership(model=model, kinds=DEFAULT_KINDS, circuit_ids=ids).circuits
    sets = [frozenset(component_of(c) for c in members.get(i, frozenset())) for i in ids]
    jacc = tuple(SetOverlap.of(a, b).jaccard or 0.0 for a, b in combinations(sets, 2))
    counts = Counter(c for s in sets for c in s)
    n = len(sets)
    comps = tuple(ComponentStability(component=c, seeds=k, fraction=k / n)
                  for c, k in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return SeedStability(
        model=model, method=chosen, seeds=seeds, circuits=ids, jaccard=jacc,
        jaccard_mean=mean(jacc) if jacc else None, jaccard_min=min(jacc, default=None),
        jaccard_max=max(jacc, default=None),
        in_every=tuple(c.component for c in comps if c.seeds == n),
        in_most=tuple(c.component for c in comps if c.seeds > n / 2),
        in_one=tuple(c.component for c in comps if c.seeds == 1 and n > 1),
        components=comps)
