"""ACDC (Conmy et al. 2023): a circuit chosen by pruning edges in order from the logits.

Starting from the full graph, destinations are visited in reverse topological order (the
logits, then each layer's MLP input and its heads' q/k/v inputs, from the last layer down). For
each incoming edge, latest source first, the edge is patched on top of every edge removed so
far; if the objective changes by less than the threshold ``tau`` the edge stays removed (for
good), otherwise it is put back. The objective is the KL divergence of the patched model's
next-token distribution from the full model's at the read positions (``metric="kl"``, the
default: an edge is removed when the KL grows by less than ``tau``), or the task metric
(``metric="task"``: removed when the metric moves by less than ``tau`` either way), as ACDC's
``minimize`` and ``off`` modes do. A destination whose component no longer writes to any kept
edge loses its incoming edges without a test: nothing downstream can read them.

Edges are patched by the engine (``clean input - (current - ablated)`` at the destination), the
same patching that `evaluation` uses for faithfulness. The decisions are sequential, but the
passes are batched speculatively: copy ``j`` of a pass removes the next ``j`` candidates
together, so one pass settles a run of removals and the first edge to be kept ends it; the
result equals the one-edge-per-pass loop (tested).
"""

from __future__ import annotations

from typing import Any

import torch

from catalog.discovery.contract import MethodInputs, SelectedCircuit, number_param
from catalog.discovery.engine import (
    Ablator,
    Metric,
    Progress,
    batches,
    device_of,
    max_rows_for,
    n_examples,
    patched_logits,
    prepared,
    task_metric,
    valid_mask,
)
from catalog.discovery.layout import Layout, selected_graph
from catalog.errors import InvalidInputError
from catalog.provenance import Ablation

#: Objectives ACDC can prune by.
OBJECTIVES = ("kl", "task")

class _Objective:
    """The mean objective over the dataset for a stack of patch masks (several per pass)."""

    def __init__(self, model: Any, layout: Layout, dataset: Any, ablation: Ablation, batch_size: int,
                 objective: str, metric: Metric, max_rows: int):
        self.model, self.layout, self.objective, self.metric = model, layout, objective, metric
        self.n, self.max_rows = n_examples(dataset), max_rows
        ablator = Ablator(model, layout, dataset, ablation, batch_size)
        # (slice, clean tokens, ablated sources, clean log-probs at the read positions)
        self.parts: list[tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for part, clean, corrupt in batches(dataset, batch_size, device_of(model)):
            with torch.no_grad():
                logp = self._read(part, model(clean)).log_softmax(-1)
            self.parts.append((part, clean, ablator.values(clean, corrupt), logp))

    @staticmethod
    def _read(part: Any, logits: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, part.positions.to(logits.device)].to(torch.float64)

    @torch.no_grad()
    def __call__(self, masks: torch.Tensor) -> list[float]:
        """Mean objective with each ``[S, Dst]`` mask of ``[K, S, Dst]`` patched."""
        totals = torch.zeros(masks.shape[0], dtype=torch.float64)
        for part, clean, ablated, logp in self.parts:
            b = clean.shape[0]
            per_pass = max(1, max_rows_for(self.model, self.layout, clean.shape[1], self.max_rows) // b)
            for start in range(0, masks.shape[0], per_pass):
                chunk = masks[start:start + per_pass]
                logits = patched_logits(self.model, self.layout, clean, ablated, chunk)
                for c in range(chunk.shape[0]):
                    out = logits[c * b:(c + 1) * b]
                    if self.objective == "kl":
                        q = self._read(part, out).log_softmax(-1)
                        value = (logp.exp() * (logp - q)).sum(-1)
                    else:
                        value = self.metric(part, out).to(torch.float64)
                    totals[start + c] += value.sum().cpu()
        return (totals / self.n).tolist()


def _order(layout: Layout) -> list[int]:
    """Destinations in reverse topological order: logits, then from the last layer down, the
    MLP input before the heads' inputs (the MLP reads the heads; in parallel blocks neither
    reads the other and either order is topological)."""
    out = [layout.logits_dest]
    for layer in reversed(range(layout.n_layers)):
        if layout.has_mlp:
            out.append(layout.mlp_dest(layer))
        out += [layout.head_dest(layer, x, h) for x in ("q", "k", "v") for h in range(layout.n_heads)]
    return out


def _owner(layout: Layout, dest: int) -> int | None:
    """The source index of the component a destination feeds (None for the logits)."""
    node, _ = layout.destinations[dest]
    return None if node == "logits" else layout.sources.index(node)


@torch.no_grad()
def acdc(model: Any, dataset: Any, threshold: float = 0.01, objective: str = "kl",
         ablation: Ablation = Ablation.COUNTERFACTUAL, batch_size: int = 32, metric: Metric | None = None,
         max_rows: int = 1024, speculate: int = 32,
         progress: Progress | None = None) -> tuple[list[list[bool]], list[list[float | None]], dict[str, float]]:
    """Run ACDC; returns (kept ``[S][Dst]``, each tested edge's objective change ``[S][Dst]``
    (None where untested or not an edge), and the objective of the full and the final graph).

    `speculate` bounds how many removals one pass tries in a row (1: the plain sequential loop).
    """
    if objective not in OBJECTIVES:
        raise InvalidInputError(f"ACDC's metric must be one of {', '.join(OBJECTIVES)}, got '{objective}'.")
    if not (threshold >= 0.0) or threshold == float("inf"):
        raise InvalidInputError(f"ACDC's threshold must be a finite number >= 0, got {threshold}.")
    if speculate < 1:
        raise InvalidInputError(f"speculate must be at least 1, got {speculate}.")
    with prepared(model) as layout:
        valid = valid_mask(layout, torch.device("cpu"))
        f = _Objective(model, layout, dataset, Ablation(ablation), batch_size, objective,
                       metric or task_metric, max_rows)
        dev = device_of(model)
        patched = torch.zeros_like(valid)  # True: the edge is removed
        scores: list[list[float | None]] = [[None] * layout.n_destinations for _ in range(layout.n_sources)]
        full = cur = f(patched.unsqueeze(0).to(dev))[0]
        order = _order(layout)
        width = min(8, speculate)
        for step, d in enumerate(order):
            owner = _owner(layout, d)
            if owner is not None and not bool((valid[owner] & ~patched[owner]).any()):
                patched[:, d] = valid[:, d]  # its component reaches nothing any more
                continue
            todo = list(reversed(range(layout.n_upstream(d))))
            while todo:
                run = todo[:width]
                masks = patched.unsqueeze(0).repeat(len(run), 1, 1)
                for j, s in enumerate(run):
                    masks[j:, s, d] = True  # copy j removes run[0..j] together
                values = f(masks.to(dev))
                for j, s in enumerate(run):
                    change = values[j] - cur
                    result = change if objective == "kl" else abs(change)
                    scores[s][d] = float(result)
                    todo.pop(0)
                    if result < threshold:
                        patched[s, d], cur = True, values[j]
                        continue
                    break  # kept: the later copies assumed it removed
                else:
                    width = min(2 * width, speculate)
                    continue
                width = max(1, width // 2)
            if progress:
                progress("acdc", step + 1, len(order))
        kept = (valid & ~patched).tolist()
        return kept, scores, {"objective_full": full, "objective_final": cur}


def run(inputs: MethodInputs, threshold: float = 0.01, metric: str = "kl") -> SelectedCircuit:
    """The `Method` entry point: ACDC's circuit, each tested edge scored by the objective change
    its removal caused (``metric``: ``kl`` or ``task``, the latter being ``inputs.metric``)."""
    from catalog.discovery.scoring import model_and_shape

    model, shape = model_and_shape(inputs.model)
    kept, scores, _ = acdc(model, inputs.dataset, number_param(threshold, "ACDC's threshold"), str(metric),
                           inputs.ablation, inputs.batch_size, metric=inputs.metric, progress=inputs.progress)
    return SelectedCircuit(selected_graph(shape, Layout.for_model(model), kept, scores))

