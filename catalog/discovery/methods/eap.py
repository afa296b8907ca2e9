"""EAP (edge attribution patching, Syed et al. 2023): every edge from one gradient at the clean
input, ``score(u->v) = sum (a_u,ablated - a_u,clean) . dL/d(input of v)`` (see `attribution`)."""

from __future__ import annotations

from catalog.discovery.attribution import attribution_scores
from catalog.discovery.contract import EdgeScores, MethodInputs


def run(inputs: MethodInputs) -> EdgeScores:
    """The `Method` entry point: attribution scores from one forward and one backward pass."""
    return EdgeScores(attribution_scores(inputs.model, inputs.dataset, inputs.ablation, inputs.batch_size,
                                         steps=1, progress=inputs.progress, metric=inputs.metric))
