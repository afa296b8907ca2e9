"""Relate a task's feature circuit to a head circuit of the same task: which heads write to, and
which read from, the feature circuit's top features.

On each prompt the feature circuit was built from (the same task dataset, rebuilt from its
provenance and checked by hash), in the frozen local replacement model of the attribution graph
(`catalog.transcoders.heads`):

* a head **writes** a feature by its direct contribution to the feature's pre-activation (what
  the head's output adds to ``x @ W_enc[:, i]`` through the frozen normalisation);
* a head **reads** a feature by the share of the feature's direct effect on the target logit that
  passes through that head first (the feature -> logit edge splits exactly over heads, plus the
  residual-only rest at the read position).

A feature node of the circuit is a feature at a role (``f2.17@S2[tc]``): on each prompt its
figures are summed over the positions holding that role where it is active, then averaged over
all the prompts (0 where it is inactive), as the circuit's influence is. Writes are in units of
the pre-activation, reads in units of the target logit (the task's logit difference).

The summary figure is the share of all heads' absolute writes (reads) into the top features that
comes from the head circuit's heads, next to the share those heads are of the model's heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from catalog.analysis import context
from catalog.errors import InvalidInputError
from catalog.naming import NodeKind, component_of, head_id, parse_node
from catalog.provenance import PART_TAG, Circuit
from catalog.queries.features import require_feature_circuit, resolve_circuit
from catalog.queries.overlap import Side, side_of

if TYPE_CHECKING:
    from catalog.store import Catalog

#: Top features related when the caller does not say.
DEFAULT_TOP = 10
#: Heads listed per feature.
HEADS_PER_FEATURE = 3


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class HeadLink(_Record):
    """One head's mean write into and read from one feature (see the module docstring)."""

    head: str
    writes: float
    reads: float
    in_head_circuit: bool


class FeatureHeads(_Record):
    """A top feature of the circuit with the heads that write it and read it most.

    ``prompts`` is how many prompts it is active in at its role; ``direct`` the part of its edge
    to the target that passes through no head; ``writers`` and ``readers`` the heads with the
    largest absolute writes and reads."""

    feature: str
    label: str | None
    influence: float
    prompts: int
    edge: float
    direct: float
    writers: tuple[HeadLink, ...]
    readers: tuple[HeadLink, ...]


class HeadTotals(_Record):
    """A head's summed absolute writes into, and reads from, the top features."""

    head: str
    in_head_circuit: bool
    writes: float
    reads: float


class FeatureHeadRelation(_Record):
    """`relate`'s result: the two circuits, the top features with their heads, every head's
    totals (largest first), and the share of writes and reads that the head circuit holds."""

    feature_circuit: Side
    head_circuit: Side
    prompts: int
    transcoders: str
    features: tuple[FeatureHeads, ...]
    heads: tuple[HeadTotals, ...]
    write_share: float | None
    read_share: float | None
    head_share: float


def _require_heads(circuit: Circuit, feature_circuit: Circuit) -> set[str]:
    heads = {component_of(n.id) for n in circuit.graph.circuit_nodes if n.kind is NodeKind.ATTENTION}
    if not heads:
        raise InvalidInputError(
            f"Circuit #{circuit.id} ({circuit.task}, {circuit.provenance.method or circuit.provenance.source.value}) "
            "holds no attention heads; a head circuit is expected second. Discover one with "
            f"`catalog discover --task {feature_circuit.task}`.")
    return heads


def _circuits(cat: Catalog, feature_ref: str | int, head_ref: str | int,
              model: str | None) -> tuple[Circuit, Circuit]:
    fc = cat.get(resolve_circuit(cat, feature_ref, NodeKind.FEATURE, model))
    hc = cat.get(resolve_circuit(cat, head_ref, NodeKind.ATTENTION, model))
    require_feature_circuit(fc, "a feature circuit (an attribution graph of a task) is expected first")
    if PART_TAG in fc.tags:
        raise InvalidInputError(f"Circuit #{fc.id} is one prompt's graph; relate the task's feature circuit it "
                                "belongs to (the circuit its run stored last).")
    if fc.provenance.method != "attribution-graph" or fc.task == "prompt":
        raise InvalidInputError(f"Circuit #{fc.id} was not found by `catalog discover --method attribution-graph "
                                "--task T`, so its prompts and transcoders are unknown; relate one that was.")
    _require_heads(hc, fc)
    if hc.model != fc.model:
        raise InvalidInputError(f"Circuit #{fc.id} is on {fc.model} and #{hc.id} on {hc.model}: relate circuits "
                                "of the same model.")
    if hc.task != fc.task:
        raise InvalidInputError(f"Circuit #{fc.id} is for {fc.task} and #{hc.id} for {hc.task}: relate a feature "
                                "circuit to a head circuit of the same task.")
    return fc, hc


def _chosen(fc: Circuit, features: Sequence[str]) -> set[str]:
    """The feature nodes of `fc` that `features` name (with a role: that node; without: the
    feature at each of its roles); a name matching none is a one-line error."""
    nodes = [nd.id for nd in fc.graph.circuit_nodes if nd.kind is NodeKind.FEATURE]
    out: set[str] = set()
    for name in features:
        c = parse_node(name)
        if c.kind is not NodeKind.FEATURE:
            raise InvalidInputError(f"'{name}' is not a feature id; name features as fL.I[dictionary], "
                                    "e.g. f1.275[tc] or f1.275@END[tc].")
        hits = [i for i in nodes if i == name or (c.role is None and c.position is None and component_of(i) == name)]
        if not hits:
            raise InvalidInputError(f"Circuit #{fc.id} holds no feature {name} (`catalog show {fc.id}` lists its features).")
        out.update(hits)
    return out


def _transcoder_folder(fc: Circuit, transcoders: str | Path | None) -> Path:
    from catalog.transcoders.shipped import transcoder_folder

    if transcoders is not None:
        return transcoder_folder(transcoders, fc.model)
    stored = fc.provenance.method_params.get("transcoder_set")
    if not isinstance(stored, str) or not Path(stored).is_dir():
        raise InvalidInputError(f"The transcoders circuit #{fc.id} was found with ({stored}) are not there any "
                                "more; pass the same set with --transcoders PATH.")
    return Path(stored)


def relate(cat: Catalog, feature_ref: str | int, head_ref: str | int, model: str | None = None,
           top: int = DEFAULT_TOP, transcoders: str | Path | None = None, device: str | None = None,
           loaded: Any = None, features: Sequence[str] = ()) -> FeatureHeadRelation:
    """Which heads write to and read from the `top` most influential features of a feature
    circuit (or the named `features`: its node ids, ``f1.275@END[tc]``, or features without a
    role, ``f1.275[tc]``, meaning the feature at each of its roles), with the heads of a head
    circuit of the same task marked (module docstring)."""
    if not isinstance(top, int) or top < 1:
        raise InvalidInputError(f"--top must be a positive number of features, got {top!r}.")
    fc, hc = _circuits(cat, feature_ref, head_ref, model)
    circuit_heads = _require_heads(hc, fc)
    chosen = _chosen(fc, features) if features else None
    folder = _transcoder_folder(fc, transcoders)
    import torch  # only once the circuits and transcoders are known to fit

    from catalog.discovery.contract import task_metric
    from catalog.discovery.methods.attribution_graph import prompt_target, role_at
    from catalog.transcoders.heads import head_links
    from catalog.transcoders.model import TranscoderSet

    tset = TranscoderSet.load(folder)
    loaded = context.model_for(fc, loaded, device)
    p = fc.provenance
    n, seed = int(p.dataset_size or 0), int(p.seed or 0)
    ds, ref = context.build(loaded, fc.task, n, seed)
    if p.dataset_hash and ref.dataset_hash != p.dataset_hash:
        raise InvalidInputError(f"The {fc.task} prompts built now differ from those circuit #{fc.id} was found on "
                                "(dataset hash); rediscover it with this version of the catalog.")
    used = min(int(p.method_params.get("prompts_used") or 0), len(ds))
    feats = sorted((nd for nd in fc.graph.circuit_nodes if nd.kind is NodeKind.FEATURE),
                   key=lambda nd: (-(nd.score or 0.0), nd.id))
    feats = [nd for nd in feats if nd.id in chosen] if chosen is not None else feats[:top]
    labels = fc.graph.labels()
    shape = loaded.shape
    write = torch.zeros(len(feats), shape.n_layers, shape.n_heads, dtype=torch.float64)
    read = torch.zeros_like(write)
    direct, edge, active = [0.0] * len(feats), [0.0] * len(feats), [0] * len(feats)
    model_ = loaded.model
    for i in range(used):
        part = ds[i:i + 1]
        position, tokens, direction = prompt_target(model_, part, task_metric)
        roles = [role_at(part, q) for q in range(position + 1)]
        wanted = {}
        for k, nd in enumerate(feats):
            c = parse_node(nd.id)
            for q in range(position + 1):
                if (c.position == q) if c.position is not None else roles[q] == c.role:
                    wanted[(c.layer, q, c.feature)] = k
        seen = set()
        for link in head_links(model_, tset, tokens, position, direction, list(wanted)):  # type: ignore[arg-type]
            k = wanted[link.feature]
            write[k] += link.writes
            read[k] += link.reads
            direct[k] += link.direct
            edge[k] += link.edge
            seen.add(k)
        for k in seen:
            active[k] += 1
    if used:
        write, read = write / used, read / used
        direct, edge = [d / used for d in direct], [e / used for e in edge]
    return _relation(fc, hc, folder, used, feats, labels, write, read, direct, edge, active, circuit_heads)


def _relation(fc: Circuit, hc: Circuit, folder: Path, used: int, feats: list[Any], labels: dict[str, str],
              write: Any, read: Any, direct: list[float], edge: list[float], active: list[int],
              circuit_heads: set[str]) -> FeatureHeadRelation:
    n_layers, n_heads = write.shape[1], write.shape[2]
    names = [head_id(layer, h) for layer in range(n_layers) for h in range(n_heads)]

    def links(values: Any, other: Any, k: int, by_write: bool) -> tuple[HeadLink, ...]:
        flat, rest = values[k].flatten(), other[k].flatten()
        order = flat.abs().argsort(descending=True).tolist()[:HEADS_PER_FEATURE]
        return tuple(HeadLink(head=names[j], writes=float(flat[j] if by_write else rest[j]),
                              reads=float(rest[j] if by_write else flat[j]), in_head_circuit=names[j] in circuit_heads)
                     for j in order if float(flat[j]) != 0.0)

    features = tuple(FeatureHeads(feature=nd.id, label=labels.get(nd.id), influence=float(nd.score or 0.0),
                                  prompts=active[k], edge=edge[k], direct=direct[k],
                                  writers=links(write, read, k, True), readers=links(read, write, k, False))
                     for k, nd in enumerate(feats))
    wt, rt = write.abs().sum(0).flatten(), read.abs().sum(0).flatten()
    totals = [HeadTotals(head=names[j], in_head_circuit=names[j] in circuit_heads, writes=float(wt[j]),
                         reads=float(rt[j])) for j in range(len(names))]
    totals.sort(key=lambda t: (-(t.writes + t.reads), t.head))

    def share(total: Any) -> float | None:
        mass = float(total.sum())
        inside = sum(float(total[j]) for j in range(len(names)) if names[j] in circuit_heads)
        return inside / mass if mass > 0 else None

    return FeatureHeadRelation(feature_circuit=side_of(fc), head_circuit=side_of(hc), prompts=used,
                               transcoders=str(folder), features=features, heads=tuple(totals),
                               write_share=share(wt), read_share=share(rt),
                               head_share=len(circuit_heads & set(names)) / len(names))
