"""The values that ``--json``, the Python API and a web view return about circuits and models.

Each is a frozen pydantic model built from a domain value by a ``.of(...)`` constructor, so the
command line only renders and ``model_dump(mode="json")`` is what ``--json`` prints. Nothing here
imports torch or SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from catalog.analysis.records import InterventionResult, RoleReport
from catalog.attention import AttentionPatterns
from catalog.provenance import Circuit, Provenance

if TYPE_CHECKING:
    from catalog.discovery.contract import MethodSpec
    from catalog.graph import CircuitGraph, Edge, Node
    from catalog.published import PublishedCircuit


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


def by_score(items: list[Any]) -> list[Any]:
    """Nodes or edges ordered by |score|, highest first; unscored ones last, then by id.

    >>> from catalog.graph import Node
    >>> [n.id for n in by_score([Node.of("m0", 0.1), Node.of("m1"), Node.of("a0.h0", -2.0)])]
    ['a0.h0', 'm0', 'm1']
    """
    return sorted(items, key=lambda x: (x.score is None, -abs(x.score or 0.0), x.id))


class NodeView(_View):
    """One circuit node: id, kind, coordinates, score, and the role or label people gave it."""

    id: str
    kind: str
    layer: int | None
    head: int | None
    position: int | None
    score: float | None
    role: str | None
    label: str | None

    @classmethod
    def of(cls, node: Node, roles: dict[str, str], labels: dict[str, str]) -> NodeView:
        return cls(id=node.id, kind=node.kind.value, layer=node.layer, head=node.head,
                   position=node.position, score=node.score, role=roles.get(node.id),
                   label=labels.get(node.id))


class EdgeView(_View):
    """One circuit edge: its id (``src->dst<q>``), ends, head input and score."""

    id: str
    src: str
    dst: str
    qkv: str | None
    score: float | None

    @classmethod
    def of(cls, edge: Edge) -> EdgeView:
        return cls(id=edge.id, src=edge.src, dst=edge.dst,
                   qkv=edge.qkv.value if edge.qkv else None, score=edge.score)


class GraphSize(_View):
    """Sizes of a circuit: its nodes, edges, heads, MLPs, features, and every scored edge."""

    nodes: int
    edges: int
    heads: int
    mlps: int
    features: int
    scored_edges: int

    @classmethod
    def of(cls, graph: CircuitGraph) -> GraphSize:
        return cls(**graph.summary())


class CircuitDetail(_View):
    """What `catalog show` says about a circuit; nodes and edges ordered by |score|."""

    id: int | None
    name: str | None
    model: str
    task: str
    tags: tuple[str, ...]
    run_id: int | None
    provenance: Provenance
    metrics: dict[str, Any]
    summary: GraphSize
    nodes: tuple[NodeView, ...]
    edges: tuple[EdgeView, ...]
    attention: AttentionPatterns | None = None  # only when asked for (`show --attention`)
    head_roles: RoleReport | None = None  # the newest measured head roles (`catalog roles`)
    interventions: tuple[InterventionResult, ...] = ()
    parts: tuple[int, ...] = ()  # the per-prompt graphs stored with it, in prompt order (`show --prompt I`)

    @classmethod
    def of(cls, c: Circuit, attention: AttentionPatterns | None = None, head_roles: RoleReport | None = None,
           interventions: Sequence[InterventionResult] = (), parts: Sequence[int] = ()) -> CircuitDetail:
        roles, labels = c.graph.roles(), c.graph.labels()
        return cls(id=c.id, name=c.name, model=c.model, task=c.task, tags=tuple(c.tags),
                   run_id=c.run_id, provenance=c.provenance, metrics=dict(c.metrics),
                   summary=GraphSize.of(c.graph),
                   nodes=tuple(NodeView.of(n, roles, labels) for n in by_score(list(c.graph.circuit_nodes))),
                   edges=tuple(EdgeView.of(e) for e in by_score(list(c.graph.circuit_edges))),
                   attention=attention, head_roles=head_roles, interventions=tuple(interventions),
                   parts=tuple(parts))


class DiscoveryResult(GraphSize):
    """What `catalog discover` reports for each circuit it stored (its sizes, flat)."""

    id: int | None
    run_id: int | None
    model: str
    task: str
    method: str | None
    selection: str | None
    heads_in_circuit: tuple[str, ...]
    faithfulness: float | None
    cpr: float | None
    cmd: float | None
    seconds: float

    @classmethod
    def of(cls, c: Circuit) -> DiscoveryResult:
        m, p = c.metrics, c.provenance
        return cls(id=c.id, run_id=c.run_id, model=c.model, task=c.task, method=p.method,
                   selection=p.selection.describe() if p.selection else None,
                   **c.graph.summary(), heads_in_circuit=tuple(sorted(c.graph.heads)),
                   faithfulness=m.get("faithfulness"), cpr=m.get("cpr"), cmd=m.get("cmd"),
                   seconds=float(sum(m.get("timings", {}).values())))


class Imported(_View):
    """What `catalog import` stored: the circuit ids, in the file's order; `existing` lists
    those that were already in the catalog (same content) and so were not added again."""

    file: str
    ids: tuple[int, ...]
    existing: tuple[int, ...] = ()


class ModelInfo(_View):
    """A catalog model checkpoint: name, shape (``architecture``), size and training recipe."""

    name: str | None
    folder: str
    revision: str
    architecture: dict[str, Any]
    parameters: int
    weights_bytes: int
    training: dict[str, Any]
    training_history: list[Any]

    @classmethod
    def of_checkpoint(cls, folder: Path) -> ModelInfo:
        """Read a checkpoint folder's description (no weights are loaded, no torch imported)."""
        from catalog.models.checkpoint import info

        data = info(folder)
        data["architecture"] = data.pop("model_config")
        return cls(**data)


class TaskAccuracy(_View):
    """Top-1 accuracy on one held-out suite, its chance level and mean metric."""

    accuracy: float
    mean_metric: float
    metric: str
    chance: float
    n: int
    seed: int
    measures: str


class AccuracyReport(_View):
    """`catalog model accuracy`: the model measured and each suite's result."""

    model: str
    is_default: bool
    results: dict[str, TaskAccuracy]


class PublishedInfo(_View):
    """One circuit shipped from the literature: what, where, how sure, and the paper."""

    name: str
    task: str
    model: str
    confidence: str
    heads: tuple[str, ...]
    mlps: tuple[str, ...]
    edges: int
    arxiv: str
    citation: str | None
    file: str

    @classmethod
    def of(cls, entry: PublishedCircuit) -> PublishedInfo:
        c = entry.circuit
        return cls(name=entry.name, task=c.task, model=c.model, confidence=entry.confidence,
                   heads=tuple(sorted(c.graph.heads)), mlps=tuple(sorted(c.graph.mlps)),
                   edges=len(c.graph.circuit_edges), arxiv=entry.arxiv,
                   citation=c.provenance.citation, file=entry.file)


class MethodInfo(_View):
    """A registered discovery method: slug, what it returns, its parameters and their defaults."""

    method: str
    returns: str
    exact: bool
    default: bool
    parameters: dict[str, Any]
    summary: str

    @classmethod
    def of(cls, spec: MethodSpec, default: bool = False) -> MethodInfo:
        return cls(method=spec.slug, returns=spec.granularity.value, exact=spec.exact, default=default,
                   parameters=dict(spec.defaults), summary=spec.summary)
