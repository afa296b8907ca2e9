"""Attribution graphs (Ameisen et al. 2025): feature circuits through transcoders.

For each prompt: build the local replacement model (attention patterns and normalisation scales
frozen, each MLP replaced by its transcoder's active features plus an error node), compute every
direct effect between embeddings, features, error nodes and the target logit, and prune by
influence (`catalog.transcoders.attribution`, `catalog.transcoders.pruning`). The target is the
task metric read as a direction in logit space at the read position (for the built-in tasks the
logit difference, exactly; for ``--prompt`` the model's top logit).

One prompt gives its own graph. Several give the task's feature circuit, aggregated by role
(`catalog.transcoders.circuits.aggregate`), with each prompt's graph returned as a part that the
job stores with the run. Parameters: `transcoders` (a folder; default the set shipped for the
model), `prompts` (how many of the dataset's prompts, default 16), `node_threshold` (0.8) and
`edge_threshold` (0.98), `min_fraction` (0.25: the share of prompts a feature must appear in),
`max_feature_nodes` (none: every active feature gets its row; a number caps them, visited in
order of influence, for models and prompts whose full graph would not fit in memory).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from catalog.discovery.contract import MethodInputs, SelectedCircuit
from catalog.discovery.scoring import model_and_shape
from catalog.errors import InvalidInputError
from catalog.transcoders.attribution import attribute
from catalog.transcoders.circuits import aggregate, dictionary_of, prompt_graph
from catalog.transcoders.model import TranscoderSet
from catalog.transcoders.pruning import prune
from catalog.transcoders.shipped import transcoder_folder


def prompt_target(model: Any, part: Any, metric: Callable[[Any, torch.Tensor], torch.Tensor]
                  ) -> tuple[int, torch.Tensor, torch.Tensor]:
    """A one-prompt slice's read position, its tokens up to there (on the CPU) and its target
    logit as a direction (`metric_direction`), from one forward pass."""
    position = int(part.positions[0])
    tokens = part.clean[0, :position + 1].cpu()
    with torch.no_grad():
        logits = model(tokens[None].to(model.cfg.device))[0]
    return position, tokens, metric_direction(metric, part, logits, position)


def metric_direction(metric: Callable[[Any, torch.Tensor], torch.Tensor], part: Any, logits: torch.Tensor,
                     position: int) -> torch.Tensor:
    """The gradient of `metric` (``(part, logits) -> values``, e.g. `task_metric`) with respect to
    the logits at `position` ([V]): the target logit as a direction. For a logit difference it is
    exactly ``+1`` answer, ``-1`` wrong answer."""
    x = logits.detach().float().clone().requires_grad_(True)
    value = metric(part, x[None]).sum()
    (grad,) = torch.autograd.grad(value, x)
    return grad[position].double()


def _text(tokenizer: Any, token: int) -> str:
    """A token's text (its id when the model carries no tokenizer)."""
    return str(tokenizer.decode([token])) if tokenizer is not None else str(token)


def _label(tokenizer: Any, direction: torch.Tensor) -> str:
    """The target node's label: ``logit ' Mary' - ' John'`` for a logit difference."""
    def text(sign: float) -> str:
        ids = (direction * sign > 0).nonzero().flatten().tolist()
        return " + ".join(repr(_text(tokenizer, int(i))) for i in ids)

    down = text(-1.0)
    return f"logit {text(1.0)}" + (f" - {down}" if down else "")


def run(inputs: MethodInputs, transcoders: str | None = None, prompts: int = 16, node_threshold: float = 0.8,
        edge_threshold: float = 0.98, min_fraction: float = 0.25,
        max_feature_nodes: int | None = None) -> SelectedCircuit:
    """The `Method` entry point (see the module docstring)."""
    model, shape = model_and_shape(inputs.model)
    shape = inputs.shape or shape
    ds = inputs.dataset
    if not isinstance(prompts, int) or prompts < 1:
        raise InvalidInputError(f"prompts must be a positive number of prompts, got {prompts!r}.")
    folder = transcoder_folder(transcoders, shape.name)
    tset = TranscoderSet.load(folder)
    tokenizer = getattr(model, "tokenizer", None)
    count = min(prompts, len(ds))
    parts, roles = [], []
    for i in range(count):
        part = ds[i:i + 1]
        position, tokens, direction = prompt_target(model, part, inputs.metric)
        att = attribute(model, tset, tokens, position, direction, max_feature_nodes)
        kept = prune(att, node_threshold, edge_threshold)
        pg = prompt_graph(att, kept, shape, tset, lambda t: _text(tokenizer, t), _label(tokenizer, direction))
        roles.append([role_at(part, p) for p in range(position + 1)])
        details = _details(pg, _prompt_text(ds, i), folder, tset, node_threshold, edge_threshold, shape.name,
                           max_feature_nodes)
        parts.append(SelectedCircuit(pg.graph, details=details, metrics=pg.figures))
        inputs.report("prompts", i + 1, count)
    params = {"transcoder_set": str(folder), "dictionary": dictionary_of(tset), "prompts_used": count,
              "max_feature_nodes": max_feature_nodes}
    if count == 1 and len(ds) == 1:  # one prompt: its own graph is the result
        only = parts[0]
        return SelectedCircuit(only.graph, details={**only.details, **params}, metrics=only.metrics)
    graph, values = aggregate([(p.graph, p.details["attribution"]["nodes"]) for p in parts], roles, shape,
                              min_fraction)
    metrics = {k: sum(p.metrics[k] for p in parts) / count for k in parts[0].metrics}
    details = {**params, "attribution": {"nodes": values}, "prompts": [_prompt_text(ds, i) for i in range(count)]}
    return SelectedCircuit(graph, details=details, metrics=metrics, parts=tuple(parts))


def role_at(part: Any, position: int) -> str:
    """The role the task names position `position` of this one-prompt slice."""
    ids = getattr(part, "role_ids", None)
    if ids is None or not part.role_names:
        return "END" if position == int(part.positions[0]) else "OTHER"
    index = int(ids[0, position])
    return part.role_names[index] if index >= 0 else "OTHER"


def _details(pg: Any, prompt: str, folder: Any, tset: TranscoderSet, node_threshold: float,
             edge_threshold: float, model: str, max_feature_nodes: int | None) -> dict[str, Any]:
    """A prompt graph's method parameters, in the layout circuit-tracer files import to, so that
    it exports (and imports back) as a circuit-tracer / Neuronpedia graph."""
    dictionary = dictionary_of(tset)
    return {
        "prompt": prompt, "prompt_tokens": pg.tokens, "dictionary": dictionary,
        "transcoder_set": str(folder), "max_feature_nodes": max_feature_nodes,
        "attribution": {
            "nodes": pg.values, "pinned": [],
            "metadata": {"scan": model, "prompt": prompt, "prompt_tokens": pg.tokens,
                         "node_threshold": node_threshold,
                         "pruning_settings": {"node_threshold": node_threshold, "edge_threshold": edge_threshold},
                         "info": {"transcoder_set": f"{model}/{dictionary}",
                                  "generator": {"name": "circuit-catalog attribution-graph"}}},
            "qparams": {},
        },
    }


def _prompt_text(ds: Any, i: int) -> str:
    """Prompt `i`'s text (its token ids for a dataset that keeps no text)."""
    prompts = getattr(ds, "prompts", None)
    return str(prompts[i]) if prompts is not None else " ".join(map(str, ds.clean[i].tolist()))
