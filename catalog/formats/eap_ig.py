"""EAP-IG ``Graph`` JSON (also MIB circuit submissions): read the current and legacy schemas,
write what EAP-IG's ``Graph.from_json`` reads.

A file lists every edge of the full graph its ``cfg`` implies, each with a score and an
``in_graph`` flag. All scored edges are kept so the circuit can be re-thresholded; the stored
circuit is the file's own ``in_graph`` selection, or, for an importance-score file (MIB
submission type A, where every flag is false), the top-k edges by |score|, with
``k = ceil(DEFAULT_IMPORTANCE_FRACTION * scored edges)`` unless ``top_k`` is given. The rule used
is recorded in the provenance.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from catalog.bounds import FiniteFloat
from catalog.errors import FormatError, InvalidInputError
from catalog.formats.common import import_provenance, require_keys, shape_for_cfg
from catalog.formats.files import RawFile, need_task
from catalog.formats.stream import OBJECT, JsonFile
from catalog.graph import CircuitGraph, Edge, Node
from catalog.naming import QKV, NodeKind, format_edge, parse_edge, parse_node
from catalog.provenance import Circuit, Selection, SelectionRule

FORMAT = "eap-ig"
# Share of scored edges kept when a file carries scores but no selection (MIB importance files):
# 2% of GPT-2 small's 32,491 edges is 650, the size of published IOI circuits in edges.
DEFAULT_IMPORTANCE_FRACTION = 0.02
# The largest full graph `write` produces: ~10 million edges is a ~700 MB file, beyond any model
# EAP-IG is run on (GPT-2 small has 32,491; a 32-layer, 32-head model about 1.7 million).
MAX_EXPORT_EDGES = 10_000_000
_COMPONENT_KINDS = (NodeKind.INPUT, NodeKind.ATTENTION, NodeKind.MLP, NodeKind.LOGITS)


def implied_nodes(n_layers: int, n_heads: int) -> Iterator[str]:
    """Node names of the full EAP-IG graph in its own order: input, per layer heads then MLP, logits."""
    yield "input"
    for layer in range(n_layers):
        for head in range(n_heads):
            yield f"a{layer}.h{head}"
        yield f"m{layer}"
    yield "logits"


def implied_edges(n_layers: int, n_heads: int, parallel_attn_mlp: bool) -> Iterator[tuple[str, str, str | None]]:
    """Every edge (src, dst, qkv) of the full graph, in the order ``Graph.from_model`` builds it.

    >>> sum(1 for _ in implied_edges(12, 12, False))
    32491
    """
    residual = ["input"]
    for layer in range(n_layers):
        heads = [f"a{layer}.h{h}" for h in range(n_heads)]
        mlp = f"m{layer}"
        for src in residual:
            for dst in heads:
                for letter in "qkv":
                    yield src, dst, letter
            if parallel_attn_mlp:
                yield src, mlp, None
        residual += heads
        if not parallel_attn_mlp:
            for src in residual:
                yield src, mlp, None
        residual.append(mlp)
    for src in residual:
        yield src, "logits", None


# --- reading ---------------------------------------------------------------------------------


def _int_field(cfg: dict[str, Any], key: str, raw: RawFile) -> int:
    v = cfg.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v > 10_000:
        raise FormatError(
            f"{raw.display_name}: cfg.{key} must be a positive integer, got {v!r}. "
            "Fix the cfg to match the model the graph was made on."
        )
    return v


def _check_name(name: str, raw: RawFile, n_layers: int, n_heads: int, what: str) -> None:
    """A node name must exist in the graph cfg implies (EAP-IG spells it canonically)."""
    try:
        c = parse_node(name)
    except InvalidInputError:  # reported below with the file's context
        c = None
    ok = (c is not None and c.kind in _COMPONENT_KINDS and c.position is None and c.token is None
          and str(c) == name
          and (c.layer is None or c.layer < n_layers) and (c.head is None or c.head < n_heads))
    if not ok:
        raise FormatError(
            f"{raw.display_name}: {what} '{name}' is not in the graph its cfg implies "
            f"({n_layers} layers 0-{n_layers - 1}, {n_heads} heads 0-{n_heads - 1}; names are "
            "input, aL.hH, mL, logits). Check cfg, or pass the right --format."
        )


class _Record(BaseModel):
    """An EAP-IG node or edge record: the fields the importer reads are typed; others pass through
    (EAP-IG adds neuron masks and scores to nodes)."""

    model_config = ConfigDict(extra="allow", strict=True)


class _NodeDoc(_Record):
    in_graph: bool
    score: FiniteFloat | None = None


class _EdgeDoc(_Record):
    score: FiniteFloat | None
    in_graph: bool


_R = TypeVar("_R", bound=_Record)


def _record(model: type[_R], value: Any, raw: RawFile, what: str, shape: str) -> _R:
    """Validate one record; the message names the record and what is wrong with it."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = err["loc"][0] if err["loc"] else None
        if field is None or err["type"] == "missing":
            raise FormatError(f"{raw.display_name}: {what} maps to {value!r:.80}; expected {shape}.") from None
        got = err.get("input")
        if field == "score":
            rule = "must be finite numbers" if isinstance(got, float) else "must be numbers"
            raise FormatError(f"{raw.display_name}: {what} has score {got!r:.60}; scores {rule}.") from None
        raise FormatError(f"{raw.display_name}: {what} has {field} {got!r:.60}; it must be true or false.") from None


_NODE_SHAPE = '{"in_graph": true|false} (or a bare true/false in the legacy schema)'
_EDGE_SHAPE = '{"score": number, "in_graph": true|false}'


def read(raw: RawFile, doc: JsonFile, model: str | None = None, task: str | None = None,
         name: str | None = None, top_k: int | None = None) -> list[Circuit]:
    """Read an EAP-IG graph (current or legacy node schema) as one circuit.

    The cfg comes from the file's head; nodes, then edges, are streamed record by record, each
    validated through its pydantic model and turned into a `Node` or `Edge` at once."""
    head = require_keys(doc.top, ("cfg", "nodes", "edges"), raw, "EAP-IG graph")
    cfg = head["cfg"]
    if not isinstance(cfg, dict) or head["nodes"] is not OBJECT or head["edges"] is not OBJECT:
        raise FormatError(f"{raw.display_name}: cfg, nodes and edges must each be a JSON object.")
    nl, nh = _int_field(cfg, "n_layers", raw), _int_field(cfg, "n_heads", raw)
    d_model = None if cfg.get("d_model") is None else _int_field(cfg, "d_model", raw)
    parallel = cfg.get("parallel_attn_mlp", False)
    if not isinstance(parallel, bool):
        raise FormatError(f"{raw.display_name}: cfg.parallel_attn_mlp must be true or false, got {parallel!r}.")
    hints = (raw.path.parent.name, raw.stem)
    shape = shape_for_cfg(raw, nl, nh, d_model, parallel, model, hints)
    task = task or need_task(raw, hints)

    legacy = False
    neurons = False
    nodes: dict[str, Node] = {}
    for node_name, value in doc.entries("nodes"):
        _check_name(node_name, raw, nl, nh, "node")
        score = None
        if isinstance(value, bool):
            legacy, flag = True, value
        else:
            node = _record(_NodeDoc, value, raw, f"node '{node_name}'", _NODE_SHAPE)
            flag, score = node.in_graph, node.score
            neurons = neurons or "neurons" in value or "neurons_scores" in value
        nodes[node_name] = Node.of(node_name, score=score, in_circuit=flag)

    edges: list[Edge] = []
    # Duplicate edge names are left to the graph ("Edge ... appears twice"): a set of every name
    # would cost more memory than the edges themselves. Each edge shares its nodes' id strings.
    for edge_name, value in doc.entries("edges", unique=False):
        try:
            src, dst, qkv = parse_edge(edge_name)
        except InvalidInputError:
            raise FormatError(
                f"{raw.display_name}: '{edge_name}' is not an EAP-IG edge name "
                "(SOURCE->DEST, with <q>, <k> or <v> after a head)."
            ) from None
        for end in (src, dst):
            if end not in nodes:
                _check_name(end, raw, nl, nh, f"edge '{edge_name}' endpoint")
                raise FormatError(
                    f"{raw.display_name}: edge '{edge_name}' refers to node '{end}', which the "
                    "file's nodes do not list. The file is incomplete; export it again."
                )
        edge = _record(_EdgeDoc, value, raw, f"edge '{edge_name}'", _EDGE_SHAPE)
        edges.append(Edge(nodes[src].id, nodes[dst].id, qkv, edge.score, edge.in_graph))
    raw.release()

    flagged = any(e.in_circuit for e in edges) or any(
        n.in_circuit for n in nodes.values() if n.id != "logits")
    if "logits" in nodes and not flagged:
        # to_json always writes logits as in the graph (from_json skips the flag): alone, it
        # selects nothing, as in importance-score files.
        nodes["logits"] = Node.of("logits", score=nodes["logits"].score, in_circuit=False)
    n_scored = sum(e.score is not None for e in edges)
    graph = CircuitGraph(shape, tuple(nodes.values()), tuple(edges))
    del edges
    if top_k is not None:
        selection = Selection(rule=SelectionRule.TOP_K, value=top_k, absolute=True)
        graph = graph.top_k(top_k)
    elif flagged:
        selection = Selection(rule=SelectionRule.GIVEN)
    elif n_scored:
        k = max(1, math.ceil(DEFAULT_IMPORTANCE_FRACTION * n_scored))
        selection = Selection(rule=SelectionRule.TOP_K, value=k, absolute=True)
        graph = graph.top_k(k)
    else:
        raise FormatError(
            f"{raw.display_name} marks no node or edge as in the graph and has no edge scores, "
            "so it holds no circuit to import."
        )
    notes = "Neuron-level masks and scores in the file were not imported." if neurons else None
    params = {"schema": "legacy" if legacy else "current", "scored_edges": n_scored}
    prov = import_provenance(raw, FORMAT, selection, method_params=params, notes=notes)
    return [Circuit(graph=graph, task=task, provenance=prov, name=name or raw.stem)]


# --- writing ---------------------------------------------------------------------------------


def implied_edge_count(n_layers: int, n_heads: int, parallel_attn_mlp: bool) -> int:
    """How many edges `implied_edges` yields, without building them.

    >>> implied_edge_count(12, 12, False), implied_edge_count(6, 4, True) == sum(1 for _ in implied_edges(6, 4, True))
    (32491, True)
    """
    total, residual = 0, 1
    for _ in range(n_layers):
        total += residual * n_heads * 3 + (residual if parallel_attn_mlp else residual + n_heads)
        residual += n_heads + 1
    return total + residual


def _has_place(src: str, dst: str, qkv: str, shape: Any) -> bool:
    """Whether edge (src, dst, qkv) is one of the model's implied EAP-IG edges."""
    def where(node: str) -> tuple[str, int] | None:
        try:
            c = parse_node(node)
        except InvalidInputError:
            return None
        if c.position is not None or c.token is not None or c.kind not in _COMPONENT_KINDS:
            return None
        return c.kind.value, -1 if c.layer is None else c.layer

    a, b = where(src), where(dst)
    if a is None or b is None or a[0] == NodeKind.LOGITS.value or b[0] == NodeKind.INPUT.value:
        return False
    if b[0] == NodeKind.LOGITS.value:
        return not qkv
    if b[0] == NodeKind.ATTENTION.value:
        return bool(qkv) and (a[0] == NodeKind.INPUT.value or a[1] < b[1])
    same_layer_head = a[0] == NodeKind.ATTENTION.value and a[1] == b[1] and not shape.parallel_attn_mlp
    return not qkv and (a[0] == NodeKind.INPUT.value or a[1] < b[1] or same_layer_head)


def write(circuit: Circuit, fh: IO[str]) -> None:
    """Write the full graph implied by the model's shape, as ``Graph.from_json`` expects it:
    every node (logits included) and every edge, with score (0.0 where unscored) and in_graph.

    The file is streamed edge by edge (memory stays that of the circuit); a model whose full graph
    has more than `MAX_EXPORT_EDGES` edges is refused, since a file that size is of no use to
    EAP-IG and a declared shape alone must not make the catalog write for hours.
    """
    g = circuit.graph
    for n in g.nodes:
        if n.role is not None:
            raise FormatError(
                f"Circuit {circuit.name or circuit.id or ''} is position-resolved (it has node {n.id}); "
                "EAP-IG graphs hold components at all positions. Export it with --format json or "
                "--format graphml instead."
            )
        if n.kind not in _COMPONENT_KINDS or n.position is not None or n.token is not None:
            raise FormatError(
                f"Circuit {circuit.name or circuit.id or ''} is feature-level (it has node {n.id}); "
                "EAP-IG graphs hold only input, heads, MLPs and logits. Export it with "
                "--format json or --format graphml instead."
            )
    shape = g.shape
    count = implied_edge_count(shape.n_layers, shape.n_heads, shape.parallel_attn_mlp)
    if count > MAX_EXPORT_EDGES:
        raise FormatError(
            f"An EAP-IG graph of {shape.name} ({shape.n_layers} layers, {shape.n_heads} heads) has "
            f"{count:,} edges, over the {MAX_EXPORT_EDGES:,} this exporter writes; export with "
            "--format json or --format graphml instead."
        )
    for e in g.edges:
        if not _has_place(e.src, e.dst, e.qkv.value if e.qkv else "", shape):
            raise FormatError(
                f"Edge {e.id} has no place in an EAP-IG graph of this model; export with --format json "
                "or --format graphml instead."
            )
    in_nodes = {n.id for n in g.circuit_nodes}
    scores = {n.id: n.score for n in g.nodes if n.score is not None}
    by_key = {e.key: e for e in g.edges}
    cfg = {"n_layers": shape.n_layers, "n_heads": shape.n_heads,
           "parallel_attn_mlp": shape.parallel_attn_mlp, "d_model": shape.d_model}
    fh.write('{"cfg": ' + json.dumps(cfg) + ', "nodes": {')
    for i, node_name in enumerate(implied_nodes(shape.n_layers, shape.n_heads)):
        entry: dict[str, Any] = {"in_graph": node_name == "logits" or node_name in in_nodes}
        if node_name in scores:
            entry["score"] = scores[node_name]
        fh.write(("" if i == 0 else ", ") + json.dumps(node_name) + ": " + json.dumps(entry, allow_nan=False))
    fh.write('}, "edges": {')
    for i, (src, dst, qkv) in enumerate(implied_edges(shape.n_layers, shape.n_heads, shape.parallel_attn_mlp)):
        found = by_key.get((src, dst, qkv or ""))
        score = found.score if found is not None and found.score is not None else 0.0
        name = format_edge(src, dst, QKV(qkv) if qkv else None)
        fh.write(f'{", " if i else ""}{json.dumps(name)}: {{"score": {json.dumps(score, allow_nan=False)}, '
                 f'"in_graph": {"true" if found is not None and found.in_circuit else "false"}}}')
    fh.write("}}")
