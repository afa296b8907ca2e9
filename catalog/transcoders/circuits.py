"""Attribution graphs as catalog circuits: one prompt's pruned graph, and a task's feature circuit.

A prompt's graph keeps the pruned nodes with their positions: ``input@p``, features
``fL.I@p[dictionary]``, error nodes ``errL@p[dictionary]`` and the target ``logits.tTOKEN@p``.
A node's score is its influence on the target logit; its activation (features) and influence are
also kept per node in the values `catalog.formats.circuit_tracer` reads and writes, so the graph
exports to circuit-tracer / Neuronpedia JSON with them. Feature labels become label annotations.

A task's feature circuit aggregates its prompts' graphs by **role** (the named position a task
gives each token: ``S1``, ``IO``, ``END``...): feature ``f2.17`` at the ``END`` of every prompt is
the one node ``f2.17@END[dictionary]``. Each aggregated node records the fraction of prompts
whose pruned graph holds it and its influence averaged over all prompts (0 where absent, so the
average is also the expected influence); it is in the circuit when its fraction reaches
`min_fraction`. Aggregated edges carry the mean weight over prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.graph import Annotation, AnnotationKind, CircuitGraph, Edge, ModelShape, Node
from catalog.naming import NodeKind, feature_id, format_node, parse_node, with_role
from catalog.transcoders.attribution import Attribution
from catalog.transcoders.model import TranscoderSet
from catalog.transcoders.pruning import Pruned

#: The dictionary name feature ids carry when a transcoder set names none.
DICTIONARY = "tc"
#: Aggregated nodes kept when they appear in at least this fraction of the prompts.
MIN_FRACTION = 0.25


def dictionary_of(transcoders: TranscoderSet) -> str:
    """The name feature ids use for this set's features (``config["dictionary"]``, else ``tc``)."""
    name = transcoders.config.get("dictionary")
    return str(name) if isinstance(name, str) and name.strip() else DICTIONARY


@dataclass(frozen=True)
class PromptGraph:
    """One prompt's pruned attribution graph, with its per-node values and figures."""

    graph: CircuitGraph
    values: dict[str, dict[str, Any]]
    tokens: list[str]
    figures: dict[str, float] = field(default_factory=dict)


def _id(att: Attribution, node: int, dictionary: str, answer: int) -> str:
    kind = att.kind(node)
    if kind == "input":
        return f"input@{node}"
    if kind == "feature":
        layer, pos, idx = att.features[node - att.n_inputs]
        return feature_id(layer, idx, dictionary, pos)
    if kind == "error":
        layer, pos = att.errors[node - att.n_inputs - len(att.features)]
        return format_node(parse_node(f"err{layer}@{pos}[{dictionary}]"))
    return f"logits.t{answer}@{att.position}"


def prompt_graph(att: Attribution, pruned: Pruned, shape: ModelShape, transcoders: TranscoderSet,
                 token_text: Callable[[int], str], target_label: str) -> PromptGraph:
    """The pruned graph of one prompt as a `CircuitGraph` (see the module docstring)."""
    dictionary = dictionary_of(transcoders)
    answer = int(att.direction.argmax())
    kept = [int(i) for i in pruned.nodes.nonzero().flatten().tolist()]
    ids = {i: _id(att, i, dictionary, answer) for i in kept}
    tokens = [token_text(t) for t in att.tokens]
    nodes, values, annotations = [], {}, []
    for i in kept:
        nid, kind = ids[i], att.kind(i)
        # A node's score is its influence on the target; the target itself has none.
        influence = round(float(pruned.influence[i]), 9)
        nodes.append(Node.of(nid, score=None if kind == "logit" else influence))
        values[nid] = {} if kind == "logit" else {"influence": influence}
        if kind == "feature":
            f = i - att.n_inputs
            values[nid]["activation"] = round(float(att.activations[f]), 9)
            layer, _, idx = att.features[f]
            label = transcoders.label(layer, idx)
            if label:
                annotations.append(Annotation(AnnotationKind.LABEL, label, node=nid))
        elif kind == "input":
            annotations.append(Annotation(AnnotationKind.LABEL, f'Input "{tokens[i]}"', node=nid))
        elif kind == "logit":
            annotations.append(Annotation(AnnotationKind.LABEL, target_label, node=nid))
    edges = [Edge(ids[int(s)], ids[int(t)], None, float(att.adjacency[t, s]))
             for t, s in pruned.edges.nonzero().tolist()]
    graph = CircuitGraph(shape, tuple(nodes), tuple(edges), tuple(annotations))
    figures = figures_of(att, pruned)
    return PromptGraph(graph, values, tokens, figures)


def figures_of(att: Attribution, pruned: Pruned) -> dict[str, float]:
    """How well the graph explains the target: the paper's completeness (the share of the logit's
    influence that comes from inputs rather than error nodes), its size, and how far the
    replacement model's logits are from the real ones (0 up to rounding: error nodes close the gap)."""
    first_err = att.n_inputs + len(att.features)
    inputs = float(pruned.influence[:att.n_inputs].sum())
    errors = float(pruned.influence[first_err:att.logit_index].sum())
    return {
        "target": float(att.values[att.logit_index]),
        "completeness": inputs / (inputs + errors) if inputs + errors > 0 else 0.0,
        "active_features": float(att.n_active),
        "attributed_features": float(len(att.features)),  # fewer under a max_feature_nodes cap
        "kept_features": float(pruned.nodes[att.n_inputs:first_err].sum()),
        "kept_edges": float(pruned.edges.sum()),
        "replacement_logit_error": float((att.replacement_logits - att.real_logits).abs().max()),
    }


def _collapsed(node_id: str, role: str) -> str:
    """A positioned id at its prompt's role; target logits of all prompts are one node."""
    c = parse_node(node_id)
    if c.kind is NodeKind.LOGITS:
        return f"logits@{role}"
    return with_role(node_id, role)


def aggregate(graphs: Sequence[tuple[CircuitGraph, dict[str, dict[str, Any]]]], roles: Sequence[Sequence[str]], shape: ModelShape,
              min_fraction: float = MIN_FRACTION) -> tuple[CircuitGraph, dict[str, dict[str, Any]]]:
    """A task's feature circuit from its prompts' graphs (see the module docstring).

    `graphs` holds each prompt's graph and node values; `roles[i][p]` names position ``p`` of
    prompt ``i``. Returns the graph and each node's values
    (``fraction``, ``influence``, mean ``activation`` where it appears).
    """
    n = len(graphs)
    seen: dict[str, set[int]] = {}
    influence: dict[str, float] = {}
    activation: dict[str, list[float]] = {}
    edge_sum: dict[tuple[str, str], float] = {}
    labels: dict[str, str] = {}
    for i, (graph, node_values) in enumerate(graphs):
        where = {nd.id: _collapsed(nd.id, roles[i][nd.position or 0]) for nd in graph.nodes}
        for nd in graph.nodes:
            cid = where[nd.id]
            seen.setdefault(cid, set()).add(i)
            influence[cid] = influence.get(cid, 0.0) + node_values[nd.id].get("influence", 0.0)
            if "activation" in node_values[nd.id]:
                activation.setdefault(cid, []).append(node_values[nd.id]["activation"])
        for ann in graph.annotations:
            if ann.kind is AnnotationKind.LABEL and ann.node and parse_node(ann.node).kind is NodeKind.FEATURE:
                labels[where[ann.node]] = ann.value
        for e in graph.edges:
            key = (where[e.src], where[e.dst])
            if key[0] != key[1]:
                edge_sum[key] = edge_sum.get(key, 0.0) + (e.score or 0.0)
    values: dict[str, dict[str, Any]] = {}
    nodes = []
    for cid, prompts in seen.items():
        fraction = len(prompts) / n
        kind = parse_node(cid).kind
        keep = kind is not NodeKind.FEATURE or fraction >= min_fraction
        values[cid] = {"fraction": round(fraction, 6), "influence": round(influence[cid] / n, 9)}
        if cid in activation:
            values[cid]["activation"] = round(sum(activation[cid]) / len(activation[cid]), 9)
        score = values[cid]["influence"] if kind is not NodeKind.LOGITS else None
        nodes.append(Node.of(cid, score=score, in_circuit=keep))
    kept = {nd.id for nd in nodes if nd.in_circuit}
    edges = [Edge(s, d, None, w / n, in_circuit=s in kept and d in kept) for (s, d), w in edge_sum.items()]
    annotations = [Annotation(AnnotationKind.LABEL, text, node=cid) for cid, text in labels.items()]
    graph = CircuitGraph(shape, tuple(nodes), tuple(edges), tuple(annotations))
    return graph, values
