"""Edge patching: the exact effect of every edge, each patched alone (slow; for validation).

An edge's score is ``mean m(clean) - mean m(patched)`` with only that edge patched (see
`engine.patch_hooks`). Edges run as copies of the batch, as many per pass as memory allows.
"""

from __future__ import annotations

from typing import Any

import torch

from catalog.discovery.contract import EdgeScores, MethodInputs
from catalog.discovery.engine import (
    DEFAULT_MAX_ROWS,
    Ablator,
    Metric,
    Progress,
    batches,
    chunked,
    copies_per_pass,
    device_of,
    max_rows_for,
    metric_per_copy,
    n_examples,
    patched_logits,
    prepared,
    task_metric,
)
from catalog.provenance import Ablation


def run(inputs: MethodInputs) -> EdgeScores:
    """The `Method` entry point: every edge's exact score."""
    return EdgeScores(edge_patching(inputs.model, inputs.dataset, inputs.ablation, inputs.batch_size,
                                    progress=inputs.progress, metric=inputs.metric))


@torch.no_grad()
def edge_patching(model: Any, dataset: Any, ablation: Ablation = Ablation.COUNTERFACTUAL,
                  batch_size: int = 32, edges_per_pass: int | None = None,
                  max_rows: int = DEFAULT_MAX_ROWS, progress: Progress | None = None,
                  metric: Metric = task_metric) -> list[list[float]]:
    """Exact score of every edge, each patched alone: dense ``[source][destination]`` lists."""
    with prepared(model) as layout:
        dev = device_of(model)
        edges = list(layout.edges())
        ablator = Ablator(model, layout, dataset, ablation, batch_size)
        scores = torch.zeros(layout.n_sources, layout.n_destinations, dtype=torch.float64)
        n = n_examples(dataset)
        done = 0
        for part, clean, corrupt in batches(dataset, batch_size, dev):
            b = clean.shape[0]
            ablated = ablator.values(clean, corrupt)
            base = metric(part, model(clean)).to(torch.float64).sum().cpu()
            rows = max_rows_for(model, layout, clean.shape[1], max_rows)
            per_pass = edges_per_pass or copies_per_pass(b, len(edges), rows)
            for chunk in chunked(edges, per_pass):
                mask = torch.zeros(len(chunk), layout.n_sources, layout.n_destinations, device=dev)
                for c, (s, d) in enumerate(chunk):
                    mask[c, s, d] = 1.0
                logits = patched_logits(model, layout, clean, ablated, mask)
                patched = metric_per_copy(part, logits, len(chunk), metric).sum(1).cpu()
                for c, (s, d) in enumerate(chunk):
                    scores[s, d] += base - patched[c]
            done += b
            if progress:
                progress("edge patching", done, n)
        return (scores / n).tolist()
