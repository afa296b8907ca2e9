"""EAP-IG (Hanna et al. 2024): EAP with the gradient averaged over `steps` points on the line from
the ablated to the clean input embeddings (see `attribution`)."""

from __future__ import annotations

from catalog.discovery.attribution import attribution_scores
from catalog.discovery.contract import EdgeScores, MethodInputs


def run(inputs: MethodInputs, steps: int = 5) -> EdgeScores:
    """The `Method` entry point: integrated-gradient attribution with `steps` gradient passes."""
    return EdgeScores(attribution_scores(inputs.model, inputs.dataset, inputs.ablation, inputs.batch_size,
                                         steps=steps, progress=inputs.progress, metric=inputs.metric))
