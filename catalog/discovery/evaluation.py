"""Faithfulness of a circuit and MIB's CPR and CMD.

Normalised faithfulness ``f(C) = (m(C) - m(empty)) / (m(N) - m(empty))``, with ``m`` the task
metric averaged over the dataset, ``m(N)`` the clean model's, and ``m(C)`` that of the model in
which every edge outside C is patched: each destination reads its clean input minus the
``(current - ablated)`` outputs of its out-of-circuit sources. ``m(empty)`` patches every edge,
which with the counterfactual ablation is exactly the counterfactual run; so ``f(N) = 1`` and
``f(empty) = 0`` by construction.

CPR is the area under f(x) and CMD the area under |1 - f(x)|, by the trapezoid rule over the edge
fractions x in `FRACTIONS` (0.001 ... 1; no point at 0), where the circuit at x is the top
``round(x * n)`` edges (components, for node-level graphs) with dangling edges pruned. The x
axis is the fraction of edges asked for, as in MIB, so the areas lie in [0, 0.999] for f in
[0, 1]; f can leave [0, 1], and so can the areas.
"""

from __future__ import annotations

from typing import Any

import torch

from catalog.discovery.engine import (
    Ablator,
    Progress,
    batches,
    device_of,
    max_rows_for,
    metric_per_copy,
    n_examples,
    patched_logits,
    prepared,
    record,
    valid_mask,
)
from catalog.discovery.layout import Layout
from catalog.discovery.selection import n_candidates, top_k
from catalog.errors import DiscoveryError
from catalog.graph import CircuitGraph
from catalog.provenance import Ablation

#: MIB's edge fractions, as fractions of 1 (0.1% ... 100%).
FRACTIONS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)

#: Cache the ablated source outputs between evaluations up to this many bytes.
CACHE_BYTES = 512 * 2**20


def trapezoid(xs: list[float], ys: list[float]) -> float:
    """Area under a piecewise-linear curve.

    >>> trapezoid([0.0, 0.5, 1.0], [0.0, 1.0, 1.0])
    0.75
    """
    return float(sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(xs) - 1)))


class Evaluator:
    """Evaluates circuits on one model, dataset and ablation (several per forward pass)."""

    def __init__(self, model: Any, dataset: Any, ablation: Ablation = Ablation.COUNTERFACTUAL,
                 batch_size: int = 32, max_rows: int = 1024, progress: Progress | None = None):
        self.model, self.dataset, self.batch_size, self.max_rows = model, dataset, batch_size, max_rows
        self.progress = progress
        self.n = n_examples(dataset)
        # Progress counts forward batches over every pass so far: the bar moves per batch, and
        # its total grows as selection asks for more passes (each a batch of candidate circuits).
        self._n_batches = -(-self.n // batch_size)
        self._done = 0
        self._expected = self._n_batches
        with prepared(model) as layout:
            self.layout: Layout = layout
            self.ablator = Ablator(model, layout, dataset, ablation, batch_size)
            self._valid = valid_mask(layout, device_of(model))
            self._index = layout.edge_index()
            self._cache: list[torch.Tensor] | None = None
            per_example = (dataset.clean.shape[1] * layout.n_sources * model.cfg.d_model
                           * torch.tensor([], dtype=model.cfg.dtype).element_size())
            keep = per_example * self.n <= CACHE_BYTES
            cache: list[torch.Tensor] = []
            clean_total = 0.0
            for part, clean, corrupt in batches(dataset, batch_size, device_of(model)):
                clean_total += float(part.metric(record(model, layout, clean)[0]).to(torch.float64).sum())
                if keep:
                    cache.append(self.ablator.values(clean, corrupt))
                self._step()
            self._cache = cache if keep else None
        self.metric_clean = clean_total / self.n
        self.metric_ablated = self.metric_of_masks(self._valid.unsqueeze(0))[0]
        if abs(self.metric_clean - self.metric_ablated) < 1e-9:
            raise DiscoveryError(
                f"The clean and ablated runs give the same metric ({self.metric_clean:.4g}), so "
                "faithfulness is undefined: the model does not do this task, or the ablation "
                "removes nothing. Check the task, the model or the ablation."
            )

    # --- masks ----------------------------------------------------------------------------------

    def patch_mask(self, graph: CircuitGraph) -> torch.Tensor:
        """``[S, Dst]`` bool: the edges to patch (every valid edge outside the circuit)."""
        self.layout.check_shape(graph.shape)
        keep = torch.zeros_like(self._valid)
        for e in graph.circuit_edges:
            idx = self._index.get(e.key)
            if idx is None:
                raise DiscoveryError(
                    f"Edge {e.id} is not an edge of this model's residual graph, so it cannot be evaluated here."
                )
            keep[idx] = True
        return self._valid & ~keep

    # --- metrics -------------------------------------------------------------------------------

    @torch.no_grad()
    def metric_of_masks(self, masks: torch.Tensor) -> list[float]:
        """Mean task metric with each ``[S, Dst]`` patch mask in `masks` (``[K, S, Dst]``)."""
        totals = torch.zeros(masks.shape[0], dtype=torch.float64)
        self._expected += self._n_batches
        with prepared(self.model) as layout:
            dev = device_of(self.model)
            for i, (part, clean, corrupt) in enumerate(batches(self.dataset, self.batch_size, dev)):
                ablated = self._cache[i] if self._cache is not None else self.ablator.values(clean, corrupt)
                per_pass = max(1, max_rows_for(self.model, layout, clean.shape[1], self.max_rows) // clean.shape[0])
                for start in range(0, masks.shape[0], per_pass):
                    chunk = masks[start:start + per_pass].to(dev)
                    logits = patched_logits(self.model, layout, clean, ablated, chunk)
                    totals[start:start + chunk.shape[0]] += metric_per_copy(part, logits, chunk.shape[0]).sum(1).cpu()
                self._step()
        return (totals / self.n).tolist()

    def _step(self) -> None:
        self._done += 1
        if self.progress is not None:
            self.progress("evaluating (forward batches)", self._done, max(self._expected, self._done))

    def normalise(self, m: float) -> float:
        return (m - self.metric_ablated) / (self.metric_clean - self.metric_ablated)

    def faithfulness_many(self, graphs: list[CircuitGraph]) -> list[float]:
        """Normalised faithfulness of each graph's circuit, evaluated together."""
        if not graphs:
            return []
        masks = torch.stack([self.patch_mask(g) for g in graphs])
        return [self.normalise(m) for m in self.metric_of_masks(masks)]

    def faithfulness(self, graph: CircuitGraph) -> float:
        """Normalised faithfulness of the graph's circuit (its ``in_circuit`` edges)."""
        return self.faithfulness_many([graph])[0]

    def curve(self, graph: CircuitGraph, absolute: bool = True,
              fractions: tuple[float, ...] = FRACTIONS,
              also: tuple[CircuitGraph, ...] = ()) -> tuple[list[list[float]], list[float]]:
        """``[[fraction, f], ...]`` for the top fraction of the scored edges (or components), and
        the faithfulness of the `also` graphs, all evaluated in the same passes."""
        n = n_candidates(graph)
        graphs = [top_k(graph, round(x * n), absolute) for x in fractions]
        fs = self.faithfulness_many(graphs + list(also))
        return [[x, f] for x, f in zip(fractions, fs)], fs[len(fractions):]


def evaluate(circuit: CircuitGraph, evaluator: Evaluator, absolute: bool = True) -> dict[str, Any]:
    """Metrics stored with a circuit: faithfulness, cpr, cmd, faithfulness_curve, raw metrics."""
    curve, (own,) = evaluator.curve(circuit, absolute, also=(circuit,))
    xs = [x for x, _ in curve]
    return {
        "faithfulness": own,
        "cpr": trapezoid(xs, [f for _, f in curve]),
        "cmd": trapezoid(xs, [abs(1.0 - f) for _, f in curve]),
        "faithfulness_curve": curve,
        "metric_clean": evaluator.metric_clean,
        "metric_ablated": evaluator.metric_ablated,
    }
