"""Where each circuit component lives in a TransformerLens forward pass, in dense index form.

Discovery works on dense ``[sources, destinations]`` tensors; this module is the one place that
maps those indices to the catalog's ids and to TransformerLens hooks. Sources (what writes to the
residual stream) are ``input``, every head and every MLP, in forward order. Destinations (what
reads it) are each head's q, k and v inputs, each MLP's input and ``logits``. Because sources are
in forward order, the sources upstream of any destination are a prefix of the source list.
No torch here: the layout is plain integers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from catalog.errors import DiscoveryError
from catalog.graph import CircuitGraph, Edge, ModelShape, Node
from catalog.naming import QKV, head_id, mlp_id

QKV_ORDER = ("q", "k", "v")


@dataclass(frozen=True)
class Layout:
    """Dense indices of a model's sources and destinations, and the edges between them.

    >>> lay = Layout(n_layers=2, n_heads=2, has_mlp=True)
    >>> lay.sources
    ('input', 'a0.h0', 'a0.h1', 'm0', 'a1.h0', 'a1.h1', 'm1')
    >>> lay.n_destinations, lay.n_edges
    (15, 46)
    >>> lay.n_upstream(lay.mlp_dest(0)), lay.n_upstream(lay.head_dest(1, "k", 0))
    (3, 4)
    """

    n_layers: int
    n_heads: int
    has_mlp: bool = True
    parallel_attn_mlp: bool = False
    sources: tuple[str, ...] = field(init=False)
    destinations: tuple[tuple[str, str | None], ...] = field(init=False)

    def __post_init__(self) -> None:
        srcs = ["input"]
        dsts: list[tuple[str, str | None]] = []
        for layer in range(self.n_layers):
            srcs.extend(head_id(layer, h) for h in range(self.n_heads))
            dsts.extend((head_id(layer, h), qkv) for qkv in QKV_ORDER for h in range(self.n_heads))
            if self.has_mlp:
                srcs.append(mlp_id(layer))
                dsts.append((mlp_id(layer), None))
        dsts.append(("logits", None))
        object.__setattr__(self, "sources", tuple(srcs))
        object.__setattr__(self, "destinations", tuple(dsts))

    @classmethod
    def for_model(cls, model: object) -> Layout:
        """The layout of a TransformerLens `HookedTransformer` (read from its ``cfg``)."""
        cfg = getattr(model, "cfg", None)
        if cfg is None:
            raise DiscoveryError("Discovery needs a TransformerLens HookedTransformer (it has no .cfg).")
        if getattr(cfg, "n_key_value_heads", None) not in (None, cfg.n_heads) and not getattr(
            cfg, "ungroup_grouped_query_attention", False
        ):
            raise DiscoveryError(
                f"{cfg.model_name} uses grouped-query attention; edge-level discovery needs one key "
                "and value input per head. Load it with ungroup_grouped_query_attention=True."
            )
        return cls(cfg.n_layers, cfg.n_heads, not cfg.attn_only, bool(cfg.parallel_attn_mlp))

    # --- sizes and indices ----------------------------------------------------------------------

    @property
    def block(self) -> int:
        """Sources per layer: the heads, plus the MLP when there is one."""
        return self.n_heads + int(self.has_mlp)

    @property
    def n_sources(self) -> int:
        return len(self.sources)

    @property
    def n_destinations(self) -> int:
        return len(self.destinations)

    def head_source(self, layer: int, head: int) -> int:
        return 1 + layer * self.block + head

    def mlp_source(self, layer: int) -> int:
        return 1 + layer * self.block + self.n_heads

    def head_dest(self, layer: int, qkv: str, head: int) -> int:
        per_layer = 3 * self.n_heads + int(self.has_mlp)
        return layer * per_layer + QKV_ORDER.index(qkv) * self.n_heads + head

    def mlp_dest(self, layer: int) -> int:
        return layer * (3 * self.n_heads + 1) + 3 * self.n_heads

    @property
    def logits_dest(self) -> int:
        return self.n_destinations - 1

    def n_upstream(self, dest: int) -> int:
        """How many sources (a prefix of `sources`) feed destination index `dest`."""
        node, _ = self.destinations[dest]
        if node == "logits":
            return self.n_sources
        layer = int(node[1:].split(".")[0])
        if node.startswith("m") and not self.parallel_attn_mlp:
            return 1 + layer * self.block + self.n_heads
        return 1 + layer * self.block

    @property
    def n_edges(self) -> int:
        return sum(self.n_upstream(d) for d in range(self.n_destinations))

    def edges(self) -> Iterator[tuple[int, int]]:
        """Every valid (source index, destination index) pair, destinations in forward order."""
        for d in range(self.n_destinations):
            for s in range(self.n_upstream(d)):
                yield s, d

    def edge_key(self, s: int, d: int) -> tuple[str, str, str]:
        """The `Edge.key` of a dense edge: (source id, destination id, q/k/v or '')."""
        node, qkv = self.destinations[d]
        return self.sources[s], node, qkv or ""

    def edge_index(self) -> dict[tuple[str, str, str], tuple[int, int]]:
        """`Edge.key` -> (source index, destination index) for every valid edge."""
        return {self.edge_key(s, d): (s, d) for s, d in self.edges()}

    def check_shape(self, shape: ModelShape) -> None:
        """Raise when a graph's model shape is not this layout's model."""
        if (shape.n_layers, shape.n_heads) != (self.n_layers, self.n_heads):
            raise DiscoveryError(
                f"The circuit is for {shape.name} ({shape.n_layers} layers x {shape.n_heads} heads) "
                f"but the model has {self.n_layers} layers x {self.n_heads} heads; evaluate it on "
                "the model it was found on."
            )


# --- dense scores -> CircuitGraph ---------------------------------------------------------------


def edge_graph(shape: ModelShape, layout: Layout, scores: list[list[float]]) -> CircuitGraph:
    """A graph holding every valid edge with its score ``scores[source][destination]``.

    Node scores are the sums of their outgoing edge scores: a source's output reaches the metric
    only through its outgoing edges, so for attribution methods this sum is exactly the node's
    own attribution. Nothing is selected yet (every ``in_circuit`` flag is False).
    """
    layout.check_shape(shape)
    out_sum = [0.0] * layout.n_sources
    edges = []
    for s, d in layout.edges():
        src, dst, qkv = layout.edge_key(s, d)
        value = float(scores[s][d])
        out_sum[s] += value
        edges.append(Edge(src, dst, QKV(qkv) if qkv else None, value, in_circuit=False))
    nodes = [Node.of(n, score=out_sum[i], in_circuit=False) for i, n in enumerate(layout.sources)]
    nodes.append(Node.of("logits", in_circuit=False))
    return CircuitGraph(shape, tuple(nodes), tuple(edges))


def node_graph(shape: ModelShape, layout: Layout, node_scores: dict[str, float]) -> CircuitGraph:
    """A node-level result as a graph: heads and MLPs scored, every valid edge present, unscored.

    Selection then keeps components by node score and the edges among kept nodes (plus
    ``input`` and ``logits``), so node- and edge-level circuits are evaluated the same way.
    """
    layout.check_shape(shape)
    nodes = [Node.of(n, score=node_scores.get(n), in_circuit=False) for n in layout.sources]
    nodes.append(Node.of("logits", in_circuit=False))
    edges = []
    for s, d in layout.edges():
        src, dst, qkv = layout.edge_key(s, d)
        edges.append(Edge(src, dst, QKV(qkv) if qkv else None, None, in_circuit=False))
    return CircuitGraph(shape, tuple(nodes), tuple(edges))


def selected_graph(shape: ModelShape, layout: Layout, kept: list[list[bool]],
                   scores: list[list[float | None]]) -> CircuitGraph:
    """The graph of a method that chooses its own circuit: every valid edge, with the score the
    method gave it (None where it asked nothing), ``in_circuit`` where it kept the edge, and
    dangling edges (on no input->logits path) pruned from the circuit.

    Node scores are the sums of their scored outgoing edges (None when none is scored).
    """
    layout.check_shape(shape)
    out_sum: list[float | None] = [None] * layout.n_sources
    edges = []
    for s, d in layout.edges():
        src, dst, qkv = layout.edge_key(s, d)
        value = scores[s][d]
        if value is not None:
            out_sum[s] = (out_sum[s] or 0.0) + float(value)
        edges.append(Edge(src, dst, QKV(qkv) if qkv else None, None if value is None else float(value),
                          in_circuit=bool(kept[s][d])))
    alive = {e.src for e in edges if e.in_circuit} | {e.dst for e in edges if e.in_circuit}
    nodes = [Node.of(n, score=out_sum[i], in_circuit=n in alive) for i, n in enumerate(layout.sources)]
    nodes.append(Node.of("logits", in_circuit="logits" in alive))
    return CircuitGraph(shape, tuple(nodes), tuple(edges)).prune_dangling()
