"""Where each node of a circuit goes in a layered drawing: a pure function of the graph.

Input sits at the bottom (row 0), each layer is one row (layer L on row L + 1) and the logits are
at the top (row ``n_layers + 1``). Within a row, heads keep their index as their column, so the
same head lines up across layers, and the MLP (then features and error nodes) sits beside them.
Position-resolved graphs (``a1.h0@3``, ``f3.12@4[clt]``, or a named position such as
``a1.h0@END``) get one block of columns per position, in token order (integer positions
ascending, then named positions in the order they first appear).

No matplotlib and no torch here, so a web page can use the same coordinates as `catalog.draw`.
A comparison layout (`compare_layout`) marks each node and edge as shared or in one circuit only.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from catalog.errors import InvalidInputError
from catalog.naming import NodeKind, parse_node

if TYPE_CHECKING:
    from catalog.graph import CircuitGraph, Edge, Node

Side = Literal["shared", "only_a", "only_b"]

# Within one position block: heads first (by index), then the MLP, features, error nodes.
_KIND_ORDER = {NodeKind.INPUT: 0, NodeKind.ATTENTION: 1, NodeKind.MLP: 2, NodeKind.FEATURE: 3,
               NodeKind.ERROR: 4, NodeKind.LOGITS: 5}
_BLOCK_GAP = 1.0  # empty columns between two position blocks


class PlacedNode(BaseModel):
    """A node with its place: ``x`` (column units) and ``y`` (the row: 0 input, L+1 layer L)."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    layer: int | None
    head: int | None
    position: str | None
    row: int
    x: float
    y: float
    score: float | None
    weight: float  # |score|, or the largest |score| of its circuit edges when the node has none
    role: str | None
    label: str | None
    side: Side | None = None


class PlacedEdge(BaseModel):
    """A circuit edge to draw between two placed nodes."""

    model_config = ConfigDict(frozen=True)

    src: str
    dst: str
    qkv: str | None
    score: float | None
    side: Side | None = None


class Layout(BaseModel):
    """A whole layered drawing: nodes with coordinates, edges, and what the rows and position
    blocks are called (``rows[i]`` names row i; ``positions`` the blocks left to right)."""

    model_config = ConfigDict(frozen=True)

    model: str
    n_layers: int
    n_heads: int
    rows: tuple[str, ...]
    positions: tuple[str, ...]
    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]

    def node(self, node_id: str) -> PlacedNode:
        """The placed node with this id (KeyError if absent)."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)


def row_of(node: Node, n_layers: int) -> int:
    """The row of a node: 0 for the input, layer + 1 for a layer's components, n_layers + 1 for
    the logits.

    >>> from catalog.graph import Node
    >>> [row_of(Node.of(i), 4) for i in ("input", "a0.h3", "m3", "f2.7@1[clt]", "logits")]
    [0, 1, 4, 3, 5]
    """
    if node.kind is NodeKind.INPUT:
        return 0
    if node.kind is NodeKind.LOGITS:
        return n_layers + 1
    return (node.layer or 0) + 1


def position_key(node: Node) -> str | None:
    """The position a node is resolved at, as text: ``"3"``, a named position such as ``"END"``,
    or None for a node over all positions.

    >>> from catalog.graph import Node
    >>> position_key(Node.of("a1.h0@3")), position_key(Node.of("a1.h0"))
    ('3', None)
    """
    if node.position is not None:
        return str(node.position)
    named = getattr(parse_node(node.id), "role", None)  # named positions (a1.h0@END), where known
    return str(named) if named else None


def _order_positions(keys: list[str]) -> list[str]:
    numeric = sorted({k for k in keys if k.isdigit()}, key=int)
    named = list(dict.fromkeys(k for k in keys if not k.isdigit()))
    return numeric + named


def _slot(node: Node, n_heads: int) -> tuple[int, float]:
    """(ordering key, column inside a block for a graph over all positions)."""
    if node.kind is NodeKind.ATTENTION:
        return (_KIND_ORDER[node.kind], float(node.head or 0))
    if node.kind is NodeKind.MLP:
        return (_KIND_ORDER[node.kind], float(n_heads))
    return (_KIND_ORDER[node.kind], float(n_heads) / 2.0 - 0.5)


def _weights(nodes: list[Node], edges: list[Edge]) -> dict[str, float]:
    best: dict[str, float] = defaultdict(float)
    for e in edges:
        s = abs(e.score or 0.0)
        best[e.src] = max(best[e.src], s)
        best[e.dst] = max(best[e.dst], s)
    return {n.id: abs(n.score) if n.score is not None else best.get(n.id, 0.0) for n in nodes}


def layout(graph: CircuitGraph, all_nodes: bool = False,
           sides: dict[str, Side] | None = None, edge_sides: dict[tuple[str, str, str], Side] | None = None) -> Layout:
    """Place the circuit's nodes (every scored node with ``all_nodes``) and its edges.

    >>> from catalog.graph import CircuitGraph, ModelShape
    >>> g = CircuitGraph.build(ModelShape("toy", 2, 2), ["input", "a0.h1", "m1", "logits"],
    ...     [("input", "a0.h1", "v", 1.0), ("a0.h1", "m1", None, 0.5), ("m1", "logits", None, 2.0)])
    >>> [(n.id, n.row, n.x) for n in layout(g).nodes]
    [('input', 0, 0.5), ('a0.h1', 1, 1.0), ('m1', 2, 2.0), ('logits', 3, 0.5)]
    """
    shape = graph.shape
    nodes = list(graph.nodes if all_nodes else graph.circuit_nodes)
    keep = {n.id for n in nodes}
    edges = [e for e in (graph.edges if all_nodes else graph.circuit_edges)
             if e.src in keep and e.dst in keep]
    weights = _weights(nodes, edges)
    roles, labels = graph.roles(), graph.labels()
    positions = {n.id: position_key(n) for n in nodes}
    ordered_positions = _order_positions([p for p in positions.values() if p is not None])
    coords = (_place_positional(nodes, positions, ordered_positions, shape.n_layers, shape.n_heads)
              if ordered_positions else
              {n.id: _slot(n, shape.n_heads)[1] for n in nodes})
    placed = tuple(
        PlacedNode(id=n.id, kind=n.kind.value, layer=n.layer, head=n.head, position=positions[n.id],
                   row=row_of(n, shape.n_layers), x=coords[n.id], y=float(row_of(n, shape.n_layers)),
                   score=n.score, weight=weights[n.id], role=roles.get(n.id), label=labels.get(n.id),
                   side=(sides or {}).get(n.id))
        for n in nodes)
    placed_edges = tuple(
        PlacedEdge(src=e.src, dst=e.dst, qkv=e.qkv.value if e.qkv else None, score=e.score,
                   side=(edge_sides or {}).get(e.key))
        for e in edges)
    rows = ("input", *(f"layer {i}" for i in range(shape.n_layers)), "logits")
    return Layout(model=shape.name, n_layers=shape.n_layers, n_heads=shape.n_heads, rows=rows,
                  positions=tuple(ordered_positions), nodes=placed, edges=placed_edges)


def _place_positional(nodes: list[Node], positions: dict[str, str | None], order: list[str],
                      n_layers: int, n_heads: int) -> dict[str, float]:
    """Columns for a position-resolved graph: one block per position, as wide as its fullest
    row; nodes over all positions (e.g. a plain ``logits``) go in the middle of the drawing."""
    cells: dict[tuple[str, int], list[Node]] = defaultdict(list)
    floating: list[Node] = []
    for n in nodes:
        p = positions[n.id]
        if p is None:
            floating.append(n)
        else:
            cells[(p, row_of(n, n_layers))].append(n)
    width = {p: max((len(v) for (q, _), v in cells.items() if q == p), default=1) for p in order}
    start, offset = {}, 0.0
    for p in order:
        start[p] = offset
        offset += width[p] + _BLOCK_GAP
    total = max(offset - _BLOCK_GAP, 1.0)
    out: dict[str, float] = {}
    for (p, _), members in cells.items():
        members.sort(key=lambda n: (_KIND_ORDER[n.kind], n.head or 0, n.feature or 0, n.token or 0, n.id))
        pad = (width[p] - len(members)) / 2.0
        for i, n in enumerate(members):
            out[n.id] = start[p] + pad + i
    for n in floating:
        out[n.id] = (total - 1.0) / 2.0
    return out


def compare_layout(a: CircuitGraph, b: CircuitGraph) -> Layout:
    """One layout of two circuits on the same model: the union of their circuit nodes and edges,
    each marked ``shared``, ``only_a`` or ``only_b`` (scores from `a` where both have one)."""
    from catalog.graph import CircuitGraph

    if (a.shape.n_layers, a.shape.n_heads) != (b.shape.n_layers, b.shape.n_heads):
        raise InvalidInputError(
            f"Cannot draw {a.shape.name} ({a.shape.n_layers} layers x {a.shape.n_heads} heads) "
            f"against {b.shape.name} ({b.shape.n_layers} x {b.shape.n_heads}): compare circuits "
            "of the same model.")
    na, nb = {n.id: n for n in a.circuit_nodes}, {n.id: n for n in b.circuit_nodes}
    ea, eb = {e.key: e for e in a.circuit_edges}, {e.key: e for e in b.circuit_edges}
    sides: dict[str, Side] = {i: _side(i in na, i in nb) for i in na.keys() | nb.keys()}
    edge_sides: dict[tuple[str, str, str], Side] = {k: _side(k in ea, k in eb) for k in ea.keys() | eb.keys()}
    nodes = [na.get(i) or nb[i] for i in sides]
    edges = [ea.get(k) or eb[k] for k in edge_sides]
    roles = [ann for ann in (*a.annotations, *b.annotations) if ann.node in sides and not ann.members]
    union = CircuitGraph(shape=a.shape, nodes=tuple(nodes), edges=tuple(edges),
                         annotations=tuple(dict.fromkeys(roles)))
    return layout(union, sides=sides, edge_sides=edge_sides)


def _side(in_a: bool, in_b: bool) -> Side:
    return "shared" if in_a and in_b else ("only_a" if in_a else "only_b")
