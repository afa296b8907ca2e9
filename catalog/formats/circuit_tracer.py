"""circuit-tracer / Neuronpedia attribution-graph JSON (``metadata``, ``qParams``, ``nodes``, ``links``).

Meaning is read from each node's ``feature_type``, ``layer``, ``ctx_idx`` and ``feature``, never
from ``node_id`` (generators spell ids differently); ``node_id`` is only the key links use.

============================  =========================================================
``feature_type``              catalog node
============================  =========================================================
``cross layer transcoder``    ``f{layer}.{index}@{ctx_idx}[{dictionary}]``
``mlp reconstruction error``  ``err{layer}@{ctx_idx}[{dictionary}]``
``embedding``                 ``input@{ctx_idx}``
``logit``                     ``logits.t{feature}@{ctx_idx}`` (``feature`` is the token id)
``lorsa`` / ``lorsa error``   as the two above, in the dictionary ``lorsa``
============================  =========================================================

Feature index: circuit-tracer writes ``feature`` as the Cantor pairing of (layer, index) in
current releases and as ``layer * 10**k + index`` in older ones. Each file is decoded with the
one scheme that gives back every feature node's own ``layer``; Cantor wins when both do (only
possible when every feature sits on layer 0), and a file that fits neither is refused.

The dictionary is the last path part of the transcoder set (``metadata.info.transcoder_set``,
else ``metadata.scan`` when it names one), e.g. ``gemma-scope-transcoders``. Links become edges
scored by their ``weight``; every node and link is in the circuit (the file is already pruned,
selection ``given``). ``clerp`` labels become label annotations (embedding nodes are labelled
with their prompt token), ``qParams.supernodes`` group annotations, a node's ``influence`` its score.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from typing import IO, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from catalog.bounds import FiniteFloat, Id, Short, Text
from catalog.errors import FormatError, InvalidInputError
from catalog.formats.common import import_provenance, require_keys, shape_for_name
from catalog.formats.files import KNOWN_TASK_SLUGS, RawFile, infer_task
from catalog.formats.stream import ARRAY, JsonFile
from catalog.graph import Annotation, AnnotationKind, CircuitGraph, Edge, Node
from catalog.naming import ComponentId, NodeKind, format_node
from catalog.provenance import Circuit, Selection, SelectionRule
from catalog.shapes import known_shape

FORMAT = "circuit-tracer"
_FEATURE_TYPES = {"cross layer transcoder": NodeKind.FEATURE, "lorsa": NodeKind.FEATURE,
                  "mlp reconstruction error": NodeKind.ERROR, "lorsa error": NodeKind.ERROR,
                  "embedding": NodeKind.INPUT, "logit": NodeKind.LOGITS}


def cantor_unpair(z: int) -> tuple[int, int]:
    """Invert the Cantor pairing ``(a + b)(a + b + 1)/2 + b``.

    >>> cantor_unpair(15204836)  # layer 18, feature 5495
    (18, 5495)
    """
    w = (math.isqrt(8 * z + 1) - 1) // 2
    b = z - w * (w + 1) // 2
    return w - b, b


def decimal_unpair(z: int, layer: int) -> int | None:
    """The index in the older ``layer * 10**k + index`` encoding, or None if it does not fit.

    >>> decimal_unpair(185495, 18), decimal_unpair(185495, 7)
    (5495, None)
    """
    if layer == 0:
        return z
    k = 1
    while layer * 10**k <= z:
        if z // 10**k == layer:
            return int(z - layer * 10**k)
        k += 1
    return None


def _feature_indices(raw: RawFile, feats: list[tuple[str, int, int]]) -> dict[str, int]:
    """node_id -> per-layer feature index, decoding every feature with one consistent scheme."""
    cantor: dict[str, int] = {}
    for nid, layer, z in feats:
        lay, idx = cantor_unpair(z)
        if lay != layer:
            break
        cantor[nid] = idx
    else:
        return cantor
    older: dict[str, int] = {}
    for nid, layer, z in feats:
        found = decimal_unpair(z, layer)
        if found is None:
            raise FormatError(
                f"{raw.display_name}: feature node '{nid}' has feature {z}, which decodes to layer "
                f"{layer} neither as a Cantor pairing (current circuit-tracer) nor as "
                "layer*10^k+index (older releases). The file is corrupt or from an unknown generator."
            )
        older[nid] = found
    return older


def _checked(raw: RawFile, indices: dict[str, int]) -> dict[str, int]:
    big = [nid for nid, idx in indices.items() if idx > _MAX_INDEX]
    if big:
        raise FormatError(f"{raw.display_name}: feature node '{big[0]}' decodes to an index over 2^31; "
                          "the feature code is corrupt.")
    return indices


MAX_DICTIONARY = 64  # characters of a dictionary name kept in feature ids
_MAX_CODE = 2**63 - 1  # a feature code must fit a 64-bit integer
_MAX_INDEX = 2**31 - 1  # positions, token ids and decoded feature indices


def _int(value: Any, raw: RawFile, what: str, limit: int = _MAX_INDEX) -> int:
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 30:
        value = int(value)
    if not isinstance(value, int):
        raise FormatError(f"{raw.display_name}: {what} must be an integer, got {value!r}.")
    if abs(value) > limit:
        raise FormatError(f"{raw.display_name}: {what} is {value}, far too large to be real.")
    return value


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """parent[key] when it is an object, else {} (optional metadata is read leniently)."""
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _dictionary(meta: dict[str, Any]) -> tuple[str, str | None]:
    info = _obj(meta, "info")
    scan = meta.get("scan")
    tset = info.get("transcoder_set") if isinstance(info.get("transcoder_set"), str) else None
    if tset is None and isinstance(scan, str) and "/" in scan:
        tset = scan
    name = (tset or "transcoder").rstrip("/").rsplit("/", 1)[-1].replace("[", "(").replace("]", ")")
    # The dictionary becomes part of every feature id: keep it printable and id-sized.
    name = "".join(ch for ch in name if ch.isprintable() and ch not in "<>")[:MAX_DICTIONARY]
    return name or "transcoder", tset


class _Record(BaseModel):
    """A circuit-tracer record: the fields the importer reads are typed; others pass through."""

    model_config = ConfigDict(extra="allow", strict=True)


class _NodeDoc(_Record):
    node_id: Id
    feature_type: Short
    clerp: Text | None = None


class _LinkDoc(_Record):
    source: Id
    target: Id
    weight: FiniteFloat | int


_SUPERNODES: TypeAdapter[list[list[Text]]] = TypeAdapter(
    list[Annotated[list[Text], Field(min_length=1)]], config=ConfigDict(strict=True))


def _supernodes(raw: RawFile, value: Any) -> list[list[str]]:
    """``qParams.supernodes``: a list of groups, each a label then node ids (missing: none)."""
    if value is None:
        return []
    try:
        return _SUPERNODES.validate_python(value)
    except ValidationError as exc:
        raise FormatError(f"{raw.display_name}: qParams.supernodes{_where(exc)} must be a list of lists of "
                          "strings: a label, then node ids.") from None


def _where(exc: ValidationError) -> str:
    loc = exc.errors()[0]["loc"]
    return "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in loc)


def _record(model: type[_Record], value: Any, raw: RawFile, where: str) -> None:
    """Check one node or link against its model; the message names the record and the field."""
    try:
        model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise FormatError(f"{raw.display_name}: {where}{_where(exc)}: {err['msg']} (got "
                          f"{repr(err.get('input'))[:60]}).") from None


def read(raw: RawFile, doc: JsonFile, model: str | None = None, task: str | None = None,
         name: str | None = None, top_k: int | None = None) -> list[Circuit]:
    """Read an attribution graph as one feature-level circuit.

    Metadata comes from the file's head; nodes, then links, are streamed record by record."""
    head = require_keys(doc.top, ("metadata", "nodes", "links"), raw, "circuit-tracer graph")
    meta = head["metadata"]
    qparams = head.get("qParams") or {}
    if not isinstance(meta, dict) or head["nodes"] is not ARRAY or head["links"] is not ARRAY \
            or not isinstance(qparams, dict):
        raise FormatError(
            f"{raw.display_name}: metadata and qParams must be objects, nodes and links lists."
        )
    slug = meta.get("slug") if isinstance(meta.get("slug"), str) else None
    info = _obj(meta, "info")
    scan = meta.get("scan") if isinstance(meta.get("scan"), str) else None
    if not model and (scan is None or known_shape(scan) is None) and isinstance(info.get("transcoder_set"), str):
        scan = info["transcoder_set"] if known_shape(info["transcoder_set"]) else scan
    shape = shape_for_name(raw, scan, model, "metadata.scan")
    task = task or task_of(raw, meta)
    dictionary, tset = _dictionary(meta)
    tokens: list[Any] = meta["prompt_tokens"] if isinstance(meta.get("prompt_tokens"), list) else []

    # First pass: validate each node and collect feature codes for one consistent decoding.
    parsed: list[tuple[str, NodeKind, int | None, int, dict[str, Any]]] = []
    feats: list[tuple[str, int, int]] = []
    seen: set[str] = set()
    for i, nd in enumerate(doc.items("nodes")):
        if not isinstance(nd, dict):
            raise FormatError(f"{raw.display_name}: nodes[{i}] is not an object.")
        nid = nd.get("node_id")
        if not isinstance(nid, str) or not nid:
            raise FormatError(f"{raw.display_name}: nodes[{i}] has no node_id string.")
        _record(_NodeDoc, nd, raw, f"nodes[{i}]")
        if nid in seen:
            raise FormatError(f"{raw.display_name}: node_id '{nid}' appears twice; remove the duplicate.")
        seen.add(nid)
        ftype = nd.get("feature_type")
        kind = _FEATURE_TYPES.get(ftype) if isinstance(ftype, str) else None
        if kind is None:
            raise FormatError(
                f"{raw.display_name}: node '{nid}' has feature_type {ftype!r}, which circuit-catalog "
                f"cannot place in a circuit. Supported: {', '.join(sorted(_FEATURE_TYPES))}."
            )
        pos = _int(nd.get("ctx_idx"), raw, f"node '{nid}' ctx_idx")
        if pos < 0:
            raise FormatError(f"{raw.display_name}: node '{nid}' has negative ctx_idx {pos}.")
        layer = None
        if kind in (NodeKind.FEATURE, NodeKind.ERROR):
            layer = _int(nd.get("layer"), raw, f"node '{nid}' layer")
            if not 0 <= layer < shape.n_layers:
                raise FormatError(
                    f"{raw.display_name}: node '{nid}' is on layer {layer}, out of range for "
                    f"{shape.name} (layers 0-{shape.n_layers - 1}). Check --model."
                )
        if kind is NodeKind.FEATURE:
            z = _int(nd.get("feature"), raw, f"node '{nid}' feature", _MAX_CODE)
            if z < 0:
                raise FormatError(f"{raw.display_name}: feature node '{nid}' has negative feature {z}.")
            feats.append((nid, layer or 0, z))
        if kind is NodeKind.LOGITS:
            _int(nd.get("feature"), raw, f"logit node '{nid}' feature (the token id)")
        # Keep only the values export needs (they include every field read below), not the record.
        kept = {"node_id": nid, **{k: nd[k] for k in _NODE_VALUES if k in nd and _plain(nd[k])}}
        parsed.append((nid, kind, layer, pos, kept))
    indices = _checked(raw, _feature_indices(raw, feats))

    ids: dict[str, str] = {}
    file_id: dict[str, str] = {}  # catalog id -> node_id: finds a component listed twice at once
    values: dict[str, dict[str, Any]] = {}  # catalog id -> the file's own id and values, for export
    nodes: list[Node] = []
    annotations: list[Annotation] = []
    for nid, kind, layer, pos, nd in parsed:
        ftype = nd["feature_type"]
        dict_name = "lorsa" if ftype.startswith("lorsa") else dictionary
        token = None
        if kind is NodeKind.FEATURE:
            comp = ComponentId(kind, layer=layer, feature=indices[nid], position=pos, dictionary=dict_name)
        elif kind is NodeKind.ERROR:
            comp = ComponentId(kind, layer=layer, position=pos, dictionary=dict_name)
        elif kind is NodeKind.INPUT:
            comp = ComponentId(kind, position=pos)
        else:
            token = _int(nd.get("feature"), raw, f"logit node '{nid}' feature")
            if token < 0:
                raise FormatError(f"{raw.display_name}: logit node '{nid}' has negative token id {token}.")
            comp = ComponentId(kind, position=pos, token=token)
        cid = format_node(comp)
        if cid in file_id:
            other = file_id[cid]
            raise FormatError(
                f"{raw.display_name}: nodes '{other}' and '{nid}' are the same component {cid} "
                "(same type, layer, feature and position); remove the duplicate."
            )
        ids[nid] = cid
        file_id[cid] = nid
        # A node's influence on the target logit is its score, as attribution graphs made here
        # store it (files without one leave the node unscored).
        influence = nd.get("influence")
        score = float(influence) if isinstance(influence, (int, float)) and not isinstance(influence, bool) \
            and math.isfinite(influence) else None
        nodes.append(Node.of(cid, score=score, token=token))
        values[cid] = nd  # the kept values, node_id first
        clerp = nd.get("clerp")
        if isinstance(clerp, str) and clerp.strip():
            annotations.append(Annotation(AnnotationKind.LABEL, clerp.strip(), node=cid))
        elif kind is NodeKind.INPUT and pos < len(tokens) and isinstance(tokens[pos], str):
            annotations.append(Annotation(AnnotationKind.LABEL, f'Input "{tokens[pos]}"', node=cid))

    # Links are kept as three compact arrays while the file's bytes are still held (node numbers
    # and weights: 16 bytes a link), and become `Edge`s only once the bytes are released, so the
    # file and the edges are never in memory together.
    number = {nid: i for i, nid in enumerate(ids)}
    cids = list(ids.values())
    sources, targets, weights = array("i"), array("i"), array("d")
    for i, link in enumerate(doc.items("links")):
        if not isinstance(link, dict):
            raise FormatError(f"{raw.display_name}: links[{i}] is not an object.")
        src, dst, w = link.get("source"), link.get("target"), link.get("weight")
        for end in (src, dst):
            if not isinstance(end, str) or end not in ids:
                raise FormatError(
                    f"{raw.display_name}: links[{i}] refers to node {end!r}, which is not among "
                    "the nodes. The file is incomplete; export it again."
                )
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise FormatError(
                f"{raw.display_name}: links[{i}] ({src} -> {dst}) has weight {w!r}; weights must "
                "be finite numbers."
            )
        _record(_LinkDoc, link, raw, f"links[{i}]")
        sources.append(number[str(src)])
        targets.append(number[str(dst)])
        weights.append(w)
    raw.release()
    edges = [Edge(cids[s], cids[t], None, w) for s, t, w in zip(sources, targets, weights)]
    del sources, targets, weights

    dropped = 0
    for group in _supernodes(raw, qparams.get("supernodes")):
        members = tuple(dict.fromkeys(ids[m] for m in group[1:] if m in ids))
        dropped += sum(m not in ids for m in group[1:])
        if members:
            annotations.append(Annotation(AnnotationKind.GROUP, group[0], members=members))

    graph = CircuitGraph(shape, tuple(nodes), tuple(edges), tuple(annotations))
    if top_k is not None:
        graph = graph.top_k(top_k)
        selection = Selection(rule=SelectionRule.TOP_K, value=top_k, absolute=True)
    else:
        selection = Selection(rule=SelectionRule.GIVEN)
    pruning = _obj(meta, "pruning_settings")
    generator = _obj(info, "generator")
    params: dict[str, Any] = {
        "slug": slug, "scan": meta.get("scan"), "transcoder_set": tset, "dictionary": dictionary,
        "prompt": meta.get("prompt"), "prompt_tokens": tokens,
        "node_threshold": meta.get("node_threshold", pruning.get("node_threshold")),
        "edge_threshold": pruning.get("edge_threshold"),
        "generator": generator.get("name") and f"{generator.get('name')} {generator.get('version', '')}".strip(),
        "feature_encoding": "cantor" if feats and all(
            cantor_unpair(z)[0] == layer for _, layer, z in feats) else ("decimal" if feats else None),
    }
    params = {k: v for k, v in params.items() if v not in (None, "", [])}
    pinned = [ids[p] for p in qparams.get("pinnedIds") or [] if isinstance(p, str) and p in ids]
    params["attribution"] = {"nodes": values, "pinned": pinned,
                             "metadata": {k: v for k, v in meta.items() if _plain(v)},
                             "qparams": {k: v for k, v in qparams.items()
                                         if k not in ("pinnedIds", "supernodes") and _plain(v)}}
    notes = (f"{dropped} supernode member(s) named nodes not in the graph and were left out."
             if dropped else None)
    prov = import_provenance(raw, FORMAT, selection, method="attribution-graph",
                             method_params=params, notes=notes)
    return [Circuit(graph=graph, task=task, provenance=prov, name=name or slug or raw.stem)]


# Node fields kept for export (node_id, feature, clerp and the values viewers show).
_NODE_VALUES = ("feature", "layer", "ctx_idx", "feature_type", "clerp", "influence", "activation", "token_prob", "is_target_logit",
                "run_idx", "reverse_ctx_idx", "jsNodeId")


def _plain(value: Any) -> bool:
    """JSON scalars, lists and objects of them (what the store and the writer can keep)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def task_of(raw: RawFile, meta: dict[str, Any]) -> str:
    """The task of an attribution graph from its own metadata: a known task named in its slug,
    prompt, description or file name, else its slug (a graph's name on Neuronpedia)."""
    info = _obj(meta, "info")
    texts = [meta.get(k) for k in ("slug", "prompt")] + [info.get("description"), raw.stem]
    found = infer_task(t for t in texts if isinstance(t, str))
    if found:
        return found
    slug = meta.get("slug")
    cleaned = re.sub(r"[^a-z0-9]+", "-", slug.lower()).strip("-") if isinstance(slug, str) else ""
    if cleaned:
        return cleaned
    raise InvalidInputError(
        f"Cannot tell which task {raw.display_name} is for: its metadata has no slug, and no known "
        f"task ({', '.join(KNOWN_TASK_SLUGS)}) is named in its prompt, description or file name. "
        "pass --task NAME (e.g. --task factual-recall)."
    )


def cantor_pair(a: int, b: int) -> int:
    """The Cantor pairing circuit-tracer writes as a feature's ``feature``.

    >>> cantor_pair(18, 5495)
    15204836
    """
    return (a + b) * (a + b + 1) // 2 + b


_EXPORT_TYPES = {NodeKind.FEATURE: "cross layer transcoder", NodeKind.ERROR: "mlp reconstruction error",
                 NodeKind.INPUT: "embedding", NodeKind.LOGITS: "logit"}


def _default_entry(n: Node, n_layers: int) -> dict[str, Any]:
    """A node as circuit-tracer would have written it (ids per its `graph_models.py` scheme)."""
    pos = n.position or 0
    lorsa = n.dictionary == "lorsa"
    if n.kind is NodeKind.FEATURE:
        idx = n.feature or 0
        return {"node_id": f"{n.layer}_{idx}_{pos}", "feature": cantor_pair(n.layer or 0, idx),
                "layer": str(n.layer), "feature_type": "lorsa" if lorsa else _EXPORT_TYPES[n.kind],
                "jsNodeId": f"{n.layer}_{idx}-0"}
    if n.kind is NodeKind.ERROR:
        return {"node_id": f"0_{n.layer}_{pos}", "feature": -1, "layer": str(n.layer),
                "feature_type": "lorsa error" if lorsa else _EXPORT_TYPES[n.kind],
                "jsNodeId": f"{n.layer}_{pos}-0"}
    if n.kind is NodeKind.INPUT:
        tok = n.token if n.token is not None else 0
        return {"node_id": f"E_{tok}_{pos}", "feature": pos, "layer": "E",
                "feature_type": "embedding", "jsNodeId": f"E_{tok}-{pos}"}
    tok = n.token if n.token is not None else 0
    return {"node_id": f"{n_layers + 1}_{tok}_{pos}", "feature": tok, "layer": str(n_layers + 1),
            "feature_type": "logit", "jsNodeId": f"L_{tok}-{pos}"}


def to_document(circuit: Circuit) -> dict[str, Any]:
    """The circuit as circuit-tracer / Neuronpedia graph JSON: its nodes and edges, with the node
    ids, values, pinned ids, supernodes and metadata of the file it came from when it was one."""
    g = circuit.graph
    for n in g.circuit_nodes:
        if n.kind in _EXPORT_TYPES and n.position is None and n.role is not None:
            raise FormatError(
                f"Circuit {circuit.name or circuit.id or ''} holds nodes per role ({n.id}), as a task's feature "
                "circuit does; an attribution graph holds one prompt's positions. Export one prompt's graph "
                "(`catalog export REF --prompt I --format circuit-tracer`), or this circuit with --format json.")
        if n.kind not in _EXPORT_TYPES or n.position is None:
            raise FormatError(
                f"Circuit {circuit.name or circuit.id or ''} has node {n.id}, which an attribution "
                "graph cannot hold (it holds features, error nodes, embeddings and logits, each at "
                "a position). Export it with --format graphml or --format json instead.")
    kept = circuit.provenance.method_params.get("attribution") or {}
    values: dict[str, dict[str, Any]] = kept.get("nodes") or {}
    labels = g.labels()
    nodes, file_id = [], {}
    for n in g.circuit_nodes:
        entry = _default_entry(n, g.shape.n_layers) | {"ctx_idx": n.position}
        if n.id in values:
            entry |= values[n.id]
        if "clerp" not in entry:
            entry["clerp"] = "" if n.kind is NodeKind.INPUT else labels.get(n.id, "")
        file_id[n.id] = entry["node_id"]
        nodes.append(entry)
    links = [{"source": file_id[e.src], "target": file_id[e.dst],
              "weight": e.score if e.score is not None else 0.0} for e in g.circuit_edges]
    supernodes = [[a.value, *(file_id[m] for m in a.members if m in file_id)]
                  for a in g.annotations if a.kind is AnnotationKind.GROUP]
    params = circuit.provenance.method_params
    meta = dict(kept.get("metadata") or {})
    meta.setdefault("slug", circuit.name or circuit.task)
    meta.setdefault("scan", params.get("transcoder_set") or g.shape.name)
    meta.setdefault("prompt_tokens", params.get("prompt_tokens", []))
    meta.setdefault("prompt", params.get("prompt", ""))
    meta.setdefault("schema_version", 1)
    qparams: dict[str, Any] = {"linkType": "both", "clickedId": "", "sg_pos": ""} | dict(kept.get("qparams") or {})
    qparams = {"pinnedIds": [file_id[p] for p in kept.get("pinned", []) if p in file_id],
               "supernodes": [s for s in supernodes if len(s) > 1]} | \
              {k: v for k, v in qparams.items() if k not in ("pinnedIds", "supernodes")}
    return {"metadata": meta, "qParams": qparams, "nodes": nodes, "links": links}


def write(circuit: Circuit, fh: IO[str]) -> None:
    """Write the circuit as a graph file circuit-tracer's and Neuronpedia's viewers load."""
    json.dump(to_document(circuit), fh, indent=1, allow_nan=False)
