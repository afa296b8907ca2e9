"""The typed circuit graph: an immutable, validated value.

A `CircuitGraph` holds every scored node and edge a method or file produced; the ``in_circuit``
flag marks the ones in the stored circuit, so a circuit can be re-thresholded later without
re-running discovery. Construction checks the invariants (edges reference existing nodes, edges
into heads name q/k/v, layers and heads fit the model, scores are finite) and raises
`InvalidGraphError` naming the first offence. Operations return new graphs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from catalog.errors import InvalidGraphError, InvalidInputError
from catalog.naming import (
    QKV,
    ComponentId,
    NodeKind,
    format_edge,
    format_node,
    forward_rank,
    parse_node,
)

if TYPE_CHECKING:
    import networkx as nx


_QKV_ORDER = {None: 0, QKV.K: 1, QKV.Q: 2, QKV.V: 3}  # "" < "k" < "q" < "v", as ids sort


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What a circuit's ids are validated against: the model's name and shape."""

    name: str
    n_layers: int
    n_heads: int
    d_model: int | None = None
    revision: str | None = None
    parallel_attn_mlp: bool = False

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise InvalidGraphError("A model needs a name (e.g. gpt2-small).")
        for attr in ("n_layers", "n_heads"):
            v = getattr(self, attr)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1 or v > 10_000:
                raise InvalidGraphError(f"Model {self.name}: {attr} must be a positive integer, got {v!r}.")
        if self.d_model is not None and (not isinstance(self.d_model, int) or self.d_model < 1):
            raise InvalidGraphError(f"Model {self.name}: d_model must be a positive integer, got {self.d_model!r}.")


@dataclass(frozen=True, slots=True)
class Node:
    """One component. Build with `Node.of(id)`; the kind and coordinates come from the id."""

    id: str
    kind: NodeKind
    layer: int | None = None
    head: int | None = None
    feature: int | None = None
    position: int | None = None
    token: int | None = None
    dictionary: str | None = None
    score: float | None = None
    in_circuit: bool = True
    role: str | None = None

    @classmethod
    def of(cls, node_id: str, score: float | None = None, in_circuit: bool = True,
           token: int | None = None) -> Node:
        """Example:

        >>> Node.of("a9.h6", score=0.5).layer, Node.of("a1.h0@END").role
        (9, 'END')
        """
        c = parse_node(node_id)
        return cls(id=format_node(c), kind=c.kind, layer=c.layer, head=c.head, feature=c.feature,
                   position=c.position, token=c.token if c.token is not None else token,
                   dictionary=c.dictionary, score=score, in_circuit=in_circuit, role=c.role)

    @property
    def component(self) -> ComponentId:
        return ComponentId(self.kind, self.layer, self.head, self.feature, self.position,
                           self.token if self.kind is NodeKind.LOGITS else None, self.dictionary,
                           self.role)


@dataclass(frozen=True, slots=True)
class Edge:
    """A directed edge with its effect size; ``qkv`` names the head input it feeds."""

    src: str
    dst: str
    qkv: QKV | None = None
    score: float | None = None
    in_circuit: bool = True

    @property
    def id(self) -> str:
        return format_edge(self.src, self.dst, self.qkv)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.src, self.dst, self.qkv.value if self.qkv else "")


class AnnotationKind(str, Enum):
    """What an annotation says. ``group`` has members (a supernode); the others one value."""

    ROLE = "role"
    LABEL = "label"
    GROUP = "group"
    CITATION = "citation"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Annotation:
    """A human statement about a node (role, label) or the circuit (group, citation, note)."""

    kind: AnnotationKind
    value: str
    node: str | None = None
    members: tuple[str, ...] = ()


def _check_score(what: str, score: float | None) -> float | None:
    if score is None:
        return None
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise InvalidGraphError(f"{what} has a non-numeric score {score!r}; scores must be numbers.")
    score = float(score)
    if not math.isfinite(score):
        raise InvalidGraphError(f"{what} has score {score}; scores must be finite numbers.")
    return score


@dataclass(frozen=True)
class CircuitGraph:
    """Nodes, edges and annotations of one circuit over one model shape.

    Nodes and edges are kept in a canonical order (forward order, then id) so that two graphs
    with the same content compare equal however they were built.
    """

    shape: ModelShape
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    _index: Mapping[str, Node] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shape = self.shape
        if not isinstance(shape, ModelShape):
            raise InvalidGraphError("A circuit graph needs a ModelShape.")
        index: dict[str, Node] = {}
        for node in self.nodes:
            if not isinstance(node, Node):
                raise InvalidGraphError(f"{node!r} is not a Node.")
            if node.id in index:
                raise InvalidGraphError(f"Node {node.id} appears twice.")
            _check_node_fits(node, shape)
            score = _check_score(f"Node {node.id}", node.score)
            if score != node.score:
                node = replace(node, score=score)
            index[node.id] = node
        ranks = {nid: forward_rank(n.component, shape.parallel_attn_mlp) for nid, n in index.items()}
        edges: list[Edge] = []
        for edge in self.edges:
            if not isinstance(edge, Edge):
                raise InvalidGraphError(f"{edge!r} is not an Edge.")
            qkv = QKV(edge.qkv) if edge.qkv is not None else None
            label = format_edge(edge.src, edge.dst, qkv)
            src, dst = index.get(edge.src), index.get(edge.dst)
            if src is None or dst is None:
                missing = edge.src if src is None else edge.dst
                raise InvalidGraphError(f"Edge {label} refers to node {missing}, which is not in the graph.")
            if dst.kind is NodeKind.ATTENTION and qkv is None:
                raise InvalidGraphError(f"Edge {label} goes into attention head {dst.id} but names no q, k or v input.")
            if dst.kind is not NodeKind.ATTENTION and qkv is not None:
                raise InvalidGraphError(f"Edge {label} names a {qkv.value} input, but {dst.id} is not an attention head.")
            if ranks[edge.src] >= ranks[edge.dst]:
                raise InvalidGraphError(f"Edge {label} goes backwards: {edge.src} does not come before {edge.dst} in the forward pass.")
            if src.position is not None and dst.position is not None and src.position > dst.position:
                raise InvalidGraphError(f"Edge {label} goes from position {src.position} back to position {dst.position}.")
            score = _check_score(f"Edge {label}", edge.score)
            if qkv is not edge.qkv or score != edge.score:
                edge = replace(edge, qkv=qkv, score=score)
            edges.append(edge)
        for ann in self.annotations:
            if not isinstance(ann, Annotation):
                raise InvalidGraphError(f"{ann!r} is not an Annotation.")
            for ref in ((ann.node,) if ann.node else ()) + tuple(ann.members):
                if ref not in index:
                    raise InvalidGraphError(f"Annotation '{ann.value}' refers to node {ref}, which is not in the graph.")
        order = sorted(index.values(), key=lambda n: (ranks[n.id], _sort_key(n)))
        # Edges sort by (destination, source, q/k/v) in node order, as one integer per edge: the
        # same order as comparing the nodes' sort keys, without a key tuple per edge (an import
        # of a full EAP-IG graph holds tens of thousands). Duplicates end up side by side.
        pos = {n.id: i for i, n in enumerate(order)}
        width = len(order)

        def edge_key(e: Edge) -> int:
            return (pos[e.dst] * width + pos[e.src]) * 4 + _QKV_ORDER[e.qkv]

        edges.sort(key=edge_key)
        previous = -1
        for edge in edges:
            current = edge_key(edge)
            if current == previous:
                raise InvalidGraphError(f"Edge {edge.id} appears twice.")
            previous = current
        anns = sorted(set(self.annotations), key=lambda a: (a.kind.value, a.node or "", a.value, a.members))
        object.__setattr__(self, "nodes", tuple(order))
        object.__setattr__(self, "edges", tuple(edges))
        object.__setattr__(self, "annotations", tuple(anns))
        object.__setattr__(self, "_index", {n.id: n for n in order})

    # --- lookup -------------------------------------------------------------------------------

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._index

    def node(self, node_id: str) -> Node:
        try:
            return self._index[node_id]
        except KeyError:
            raise InvalidInputError(f"Node {node_id} is not in this graph.") from None

    @property
    def circuit_nodes(self) -> tuple[Node, ...]:
        """Nodes in the circuit: flagged ones plus the endpoints of in-circuit edges."""
        touched = {e.src for e in self.edges if e.in_circuit} | {e.dst for e in self.edges if e.in_circuit}
        return tuple(n for n in self.nodes if n.in_circuit or n.id in touched)

    @property
    def circuit_edges(self) -> tuple[Edge, ...]:
        return tuple(e for e in self.edges if e.in_circuit)

    def component_ids(self, kind: NodeKind | None = None) -> frozenset[str]:
        """Ids of in-circuit nodes, optionally of one kind."""
        return frozenset(n.id for n in self.circuit_nodes if kind is None or n.kind is kind)

    @property
    def heads(self) -> frozenset[str]:
        return self.component_ids(NodeKind.ATTENTION)

    @property
    def mlps(self) -> frozenset[str]:
        return self.component_ids(NodeKind.MLP)

    def roles(self) -> dict[str, str]:
        """Node id -> role, from role annotations (several roles are joined with '; ')."""
        out: dict[str, list[str]] = {}
        for a in self.annotations:
            if a.kind is AnnotationKind.ROLE and a.node:
                out.setdefault(a.node, []).append(a.value)
        return {k: "; ".join(v) for k, v in out.items()}

    def position_roles(self) -> tuple[str, ...]:
        """The role names the graph's nodes are resolved by, in first-seen order (empty when the
        graph is not position-resolved)."""
        return tuple(dict.fromkeys(n.role for n in self.nodes if n.role is not None))

    def at_role(self, role: str) -> CircuitGraph:
        """Only the nodes at `role` (and the edges among them); a role the graph does not have is
        an error listing those it has.

        >>> s = ModelShape("toy", n_layers=2, n_heads=2)
        >>> sorted(CircuitGraph.build(s, ["a1.h0@END", "m0@S2"]).at_role("END").heads)
        ['a1.h0@END']
        """
        roles = self.position_roles()
        if not roles:
            raise InvalidInputError("This circuit is not position-resolved (its nodes have no roles); "
                                    "discover it with --positions to compare per role.")
        if role not in roles:
            raise InvalidInputError(f"The circuit has no role {role}. Its roles: {', '.join(roles)}.")
        return self.restrict_to(n.id for n in self.nodes if n.role == role)

    def collapse_positions(self) -> CircuitGraph:
        """Components instead of (component, position) nodes: a component's score is the sum of its
        scores over positions and roles, and it is in the circuit when any of them is. Edges between
        positioned nodes collapse likewise (scores summed); annotations on them are dropped.

        >>> s = ModelShape("toy", n_layers=2, n_heads=2)
        >>> g = CircuitGraph.build(s, ["a1.h0@END", "a1.h0@S2"], node_scores={"a1.h0@END": 1.0, "a1.h0@S2": 0.5})
        >>> [(n.id, n.score) for n in g.collapse_positions().nodes]
        [('a1.h0', 1.5)]
        """
        from catalog.naming import component_of

        if not any(n.role is not None or n.position is not None for n in self.nodes):
            return self
        nodes: dict[str, Node] = {}
        for n in self.nodes:
            cid = component_of(n.id)
            old = nodes.get(cid)
            score = n.score if old is None else (
                None if old.score is None and n.score is None else (old.score or 0.0) + (n.score or 0.0))
            flagged = n.in_circuit or (old is not None and old.in_circuit)
            nodes[cid] = replace(Node.of(cid, token=n.token if n.kind is NodeKind.LOGITS else None),
                                 score=score, in_circuit=flagged)
        members = {component_of(n.id) for n in self.circuit_nodes}
        nodes = {k: replace(v, in_circuit=v.in_circuit or k in members) for k, v in nodes.items()}
        edges: dict[tuple[str, str, str], Edge] = {}
        for e in self.edges:
            src, dst = component_of(e.src), component_of(e.dst)
            if src == dst:  # one component at two positions: nothing left to connect
                continue
            key = (src, dst, e.qkv.value if e.qkv else "")
            old_e = edges.get(key)
            score = e.score if old_e is None else (
                None if old_e.score is None and e.score is None else (old_e.score or 0.0) + (e.score or 0.0))
            edges[key] = Edge(src, dst, e.qkv, score, e.in_circuit or (old_e is not None and old_e.in_circuit))
        anns = tuple(a for a in self.annotations if a.node is None and not a.members)
        return CircuitGraph(self.shape, tuple(nodes.values()), tuple(edges.values()), anns)

    def labels(self) -> dict[str, str]:
        return {a.node: a.value for a in self.annotations if a.kind is AnnotationKind.LABEL and a.node}

    # --- operations (each returns a new graph) -------------------------------------------------

    def with_selection(self, edge_keys: Iterable[tuple[str, str, str]]) -> CircuitGraph:
        """Mark exactly `edge_keys` as the circuit; nodes are their endpoints."""
        keep = set(edge_keys)
        edges = tuple(replace(e, in_circuit=e.key in keep) for e in self.edges)
        touched = {e.src for e in edges if e.in_circuit} | {e.dst for e in edges if e.in_circuit}
        nodes = tuple(replace(n, in_circuit=n.id in touched) for n in self.nodes)
        return CircuitGraph(self.shape, nodes, edges, self.annotations)

    def top_k(self, k: int, absolute: bool = True) -> CircuitGraph:
        """The circuit made of the `k` highest-scoring edges (by |score| when `absolute`)."""
        if k < 0:
            raise InvalidInputError(f"top-k needs k >= 0, got {k}.")
        scored = [e for e in self.edges if e.score is not None]
        scored.sort(key=lambda e: (-(abs(e.score or 0.0) if absolute else (e.score or 0.0)), e.key))
        return self.with_selection(e.key for e in scored[:k])

    def threshold(self, t: float, absolute: bool = True) -> CircuitGraph:
        """The circuit made of the edges scoring at least `t` (|score| when `absolute`)."""
        return self.with_selection(
            e.key for e in self.edges
            if e.score is not None and ((abs(e.score) if absolute else e.score) >= t)
        )

    def restrict_to(self, node_ids: Iterable[str]) -> CircuitGraph:
        """The subgraph on `node_ids` (unknown ids are an error), annotations kept where valid."""
        keep = set(node_ids)
        unknown = keep - self._index.keys()
        if unknown:
            raise InvalidInputError(f"Not in this graph: {', '.join(sorted(unknown))}.")
        nodes = tuple(n for n in self.nodes if n.id in keep)
        edges = tuple(e for e in self.edges if e.src in keep and e.dst in keep)
        anns = tuple(a for a in self.annotations
                     if (a.node is None or a.node in keep) and all(m in keep for m in a.members))
        return CircuitGraph(self.shape, nodes, edges, anns)

    def circuit(self) -> CircuitGraph:
        """Only the in-circuit nodes and edges."""
        ids = {n.id for n in self.circuit_nodes}
        g = self.restrict_to(ids)
        return CircuitGraph(g.shape, g.nodes, tuple(e for e in g.edges if e.in_circuit), g.annotations)

    def prune_dangling(self) -> CircuitGraph:
        """Drop in-circuit edges and nodes that lie on no path from an input to a logits node."""
        circ = [e for e in self.edges if e.in_circuit]
        fwd: dict[str, set[str]] = {}
        bwd: dict[str, set[str]] = {}
        for e in circ:
            fwd.setdefault(e.src, set()).add(e.dst)
            bwd.setdefault(e.dst, set()).add(e.src)
        starts = [n.id for n in self.nodes if n.kind is NodeKind.INPUT]
        ends = [n.id for n in self.nodes if n.kind is NodeKind.LOGITS]
        alive = _reach(starts, fwd) & _reach(ends, bwd)
        return self.with_selection(e.key for e in circ if e.src in alive and e.dst in alive)

    def to_networkx(self) -> nx.MultiDiGraph:
        """A networkx MultiDiGraph (q/k/v edges between the same pair are parallel edges)."""
        import networkx as nx

        g = nx.MultiDiGraph(model=self.shape.name)
        roles, labels = self.roles(), self.labels()
        for n in self.nodes:
            g.add_node(n.id, kind=n.kind.value, layer=n.layer, head=n.head, feature=n.feature,
                       position=n.position, dictionary=n.dictionary, score=n.score,
                       in_circuit=n.in_circuit, role=roles.get(n.id), label=labels.get(n.id))
        for e in self.edges:
            g.add_edge(e.src, e.dst, key=e.qkv.value if e.qkv else "", qkv=e.qkv.value if e.qkv else None,
                       score=e.score, in_circuit=e.in_circuit)
        return g

    @classmethod
    def build(cls, shape: ModelShape, node_ids: Iterable[str],
              edges: Iterable[tuple[str, str, str | None, float | None]] = (),
              node_scores: Mapping[str, float] | None = None,
              annotations: Iterable[Annotation] = ()) -> CircuitGraph:
        """Convenience constructor from plain ids.

        >>> s = ModelShape("toy", n_layers=2, n_heads=2)
        >>> g = CircuitGraph.build(s, ["input", "a0.h0", "logits"],
        ...                        [("input", "a0.h0", "v", 1.0), ("a0.h0", "logits", None, 2.0)])
        >>> sorted(g.heads), len(g.edges)
        (['a0.h0'], 2)
        """
        scores = node_scores or {}
        nodes = tuple(Node.of(i, score=scores.get(i)) for i in dict.fromkeys(node_ids))
        es = tuple(Edge(s, d, QKV(q) if q else None, sc) for s, d, q, sc in edges)
        return cls(shape, nodes, es, tuple(annotations))

    def summary(self) -> dict[str, Any]:
        """Sizes of the circuit part, for listings."""
        circ = self.circuit_nodes
        return {
            "nodes": len(circ),
            "edges": len(self.circuit_edges),
            "heads": sum(n.kind is NodeKind.ATTENTION for n in circ),
            "mlps": sum(n.kind is NodeKind.MLP for n in circ),
            "features": sum(n.kind is NodeKind.FEATURE for n in circ),
            "scored_edges": len(self.edges),
        }


def _sort_key(n: Node) -> tuple[Any, ...]:
    return (n.position if n.position is not None else -1, n.role or "", n.head if n.head is not None else -1,
            n.feature if n.feature is not None else -1, n.token if n.token is not None else -1,
            n.dictionary or "", n.id)


def _reach(starts: Iterable[str], adj: Mapping[str, set[str]]) -> set[str]:
    seen = set(starts)
    stack = list(seen)
    while stack:
        for nxt in adj.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _check_node_fits(node: Node, shape: ModelShape) -> None:
    if node.layer is not None and not (0 <= node.layer < shape.n_layers):
        raise InvalidGraphError(
            f"Node {node.id}: layer {node.layer} is out of range for {shape.name} "
            f"({shape.n_layers} layers, 0-{shape.n_layers - 1})."
        )
    if node.head is not None and not (0 <= node.head < shape.n_heads):
        raise InvalidGraphError(
            f"Node {node.id}: head {node.head} is out of range for {shape.name} "
            f"({shape.n_heads} heads per layer, 0-{shape.n_heads - 1})."
        )
