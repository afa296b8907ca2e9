"""GraphML written by circuit-catalog, for Gephi, Cytoscape and networkx, and read back exactly.

Plain GraphML through networkx: string ids, typed scalar attributes only (networkx refuses None,
lists and dicts, so None is dropped and structured values are JSON-encoded strings). Attribute
keys have readable ids (``<key id="kind" ...>``, ``<data key="kind">``), because some readers
(Cytoscape.js's GraphML extension) name attributes by key id.

By default only the circuit is written (its nodes and the edges among them), which is what Gephi
and Cytoscape should open; ``all_edges=True`` writes every scored node and edge, and then the file
reads back into exactly the same circuit.

- node attributes: ``kind``, ``layer``, ``head``, ``feature``, ``position``, ``dictionary``,
  ``token``, ``role``, ``label``, ``score``, ``in_circuit`` (absent when they do not apply).
  Every node has a ``layer``: ``input`` is -1 and ``logits`` is ``n_layers`` (one past the last
  block), so sorting by layer gives the forward order. Every node has a ``label``: its label
  annotation, else its role, else its id;
- edge attributes: ``score``, ``qkv``, ``in_circuit``, and ``origin="paper"`` on a published
  circuit's edges (drawn from the paper's arrows, not measured); the edge id is the catalog edge id
  (``a0.h1->a3.h2<q>``), unique in the file;
- graph attributes: ``catalog_schema_version``, ``model_name``, ``task``, ``name`` and, as JSON
  strings, ``model``, ``tags``, ``metrics``, ``provenance``, ``annotations``, from which the file
  reads back into the same circuit.
"""

from __future__ import annotations

import io
import json
import re
from typing import IO, TYPE_CHECKING, Any

from catalog.bounds import MAX_DEPTH
from catalog.errors import FormatError
from catalog.formats.catalog_json import SCHEMA_VERSION, annotation_to_dict, circuit_from_dict, shape_to_dict
from catalog.formats.files import RawFile, loads_bounded
from catalog.naming import NodeKind
from catalog.provenance import Circuit, Source

if TYPE_CHECKING:
    from catalog.graph import Node

FORMAT = "graphml"


def to_networkx(circuit: Circuit, all_edges: bool = False) -> Any:
    """A networkx MultiDiGraph carrying only GraphML-safe attribute values: the circuit's nodes
    and edges, or every scored one with `all_edges`."""
    import networkx as nx

    g = circuit.graph if all_edges else circuit.graph.circuit()
    attrs = {
        "catalog_schema_version": SCHEMA_VERSION,
        "model_name": g.shape.name,
        "task": circuit.task,
        "name": circuit.name,
        "model": json.dumps(shape_to_dict(g.shape)),
        "tags": json.dumps(list(circuit.tags)),
        "metrics": json.dumps(circuit.metrics, allow_nan=False),
        "provenance": circuit.provenance.model_dump_json(),
        "annotations": json.dumps([annotation_to_dict(a) for a in g.annotations]),
    }
    attrs = {k: (v if k in _JSON_ATTRS or not isinstance(v, str) else xml_escape(v)) for k, v in attrs.items()}
    attrs[ESCAPE_ATTR] = ESCAPE_SCHEME
    G = nx.MultiDiGraph(**{k: v for k, v in attrs.items() if v is not None})
    roles, labels = g.roles(), g.labels()
    for n in g.nodes:
        data = {"kind": n.kind.value, "layer": _layer(n, g.shape.n_layers), "head": n.head,
                "feature": n.feature, "position": n.position, "dictionary": n.dictionary,
                "token": n.token, "role": roles.get(n.id),
                "label": labels.get(n.id) or roles.get(n.id) or n.id, "score": n.score,
                "in_circuit": n.in_circuit}
        G.add_node(xml_escape(n.id), **{k: _escaped(v) for k, v in data.items() if v is not None})
    origin = "paper" if circuit.provenance.source is Source.PUBLISHED else None
    for e in g.edges:
        data = {"qkv": e.qkv.value if e.qkv else None, "score": e.score, "in_circuit": e.in_circuit,
                "origin": origin}
        G.add_edge(xml_escape(e.src), xml_escape(e.dst), key=xml_escape(e.id),
                   **{k: _escaped(v) for k, v in data.items() if v is not None})
    return G


# Strings are written so the file is always well-formed XML 1.0 and reads back exactly: a
# backslash becomes two, and each character XML 1.0 cannot carry (C0 controls other than tab and
# newline, lone surrogates, U+FFFE, U+FFFF) or would not return unchanged (carriage return, which
# parsers turn into a newline) becomes \uXXXX. Strings without those characters are unchanged.
# The JSON-valued graph attributes are ASCII JSON already and are left alone.
ESCAPE_ATTR = "catalog_string_escape"
ESCAPE_SCHEME = "backslash-u"
_JSON_ATTRS = frozenset({"model", "tags", "metrics", "provenance", "annotations"})
_XML_UNSAFE = re.compile("[\\\\\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_ESCAPE = re.compile(r"\\(\\|u[0-9a-fA-F]{4})")


def xml_escape(text: str) -> str:
    r"""`text` in a form XML 1.0 carries unchanged (the scheme above).

    >>> print(xml_escape("a\rb\\c\ufffe"))
    a\u000db\\c\ufffe
    >>> xml_unescape(xml_escape("x\r\x1b\ud800\\u0041")) == "x\r\x1b\ud800\\u0041"
    True
    """
    return _XML_UNSAFE.sub(lambda m: "\\\\" if m.group() == "\\" else f"\\u{ord(m.group()):04x}", text)


def xml_unescape(text: str) -> str:
    """Undo `xml_escape`."""
    return _XML_ESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1)[1:], 16)), text)


def _escaped(value: Any) -> Any:
    return xml_escape(value) if isinstance(value, str) else value


def _layer(node: Node, n_layers: int) -> int:
    """A node's layer, with the input before block 0 (-1) and the logits after the last."""
    if node.kind is NodeKind.INPUT:
        return -1
    if node.kind is NodeKind.LOGITS:
        return n_layers
    return node.layer if node.layer is not None else -1


_KEY_RE = re.compile(r"<key\b[^>]*>")


def _lowercase_booleans(xml: str) -> str:
    """networkx writes booleans as True/False; GraphML (xs:boolean) spells them true/false."""
    ids = [re.search(r'\bid="([^"]+)"', k) for k in _KEY_RE.findall(xml) if 'attr.type="boolean"' in k]
    for m in ids:
        if m is not None:
            key = re.escape(m.group(1))
            xml = re.sub(rf'(<data key="{key}">)(True|False)(</data>)',
                         lambda d: d.group(1) + d.group(2).lower() + d.group(3), xml)
    return xml


def write(circuit: Circuit, fh: IO[bytes], all_edges: bool = False) -> None:
    """Write GraphML to a binary file handle: the circuit, or every scored edge with `all_edges`."""
    import networkx as nx

    buf = io.BytesIO()
    nx.write_graphml_xml(to_networkx(circuit, all_edges), buf, encoding="utf-8", prettyprint=True,
                         named_key_ids=True)
    fh.write(_lowercase_booleans(buf.getvalue().decode("utf-8")).encode("utf-8"))


def _json_attr(attrs: dict[str, Any], key: str, raw: RawFile, default: Any) -> Any:
    if key not in attrs:
        return default
    value = attrs[key]
    if not isinstance(value, str):
        raise FormatError(f"{raw.display_name}: graph attribute '{key}' must be a JSON string.")
    return loads_bounded(value, f"{raw.display_name}: graph attribute '{key}'", max_depth=MAX_DEPTH)


def read(raw: RawFile, doc: Any = None, model: str | None = None, task: str | None = None,
         name: str | None = None, top_k: int | None = None) -> list[Circuit]:
    """Read GraphML written by `write` back into the same circuit."""
    import networkx as nx

    from catalog.formats.catalog_json import apply_overrides

    head = raw.text[:4096]
    if "<!DOCTYPE" in head or "<!ENTITY" in raw.text:
        raise FormatError(f"{raw.display_name}: GraphML with a DOCTYPE or entities is refused; "
                          "export it again with circuit-catalog.")
    try:
        G = nx.read_graphml(io.BytesIO(raw.text.encode("utf-8")), node_type=str,
                            edge_key_type=str, force_multigraph=True)
    except Exception as exc:  # noqa: BLE001 - the XML parser raises many kinds on bad input
        raise FormatError(f"{raw.display_name} is not readable GraphML ({type(exc).__name__}: "
                          f"{str(exc)[:200]}). Export it again.") from None
    attrs = dict(G.graph)
    if "catalog_schema_version" not in attrs:
        raise FormatError(
            f"{raw.display_name} is GraphML but was not written by circuit-catalog (no "
            "catalog_schema_version graph attribute); only the catalog's own GraphML can be imported."
        )
    if attrs.get(ESCAPE_ATTR) not in (None, ESCAPE_SCHEME):
        raise FormatError(f"{raw.display_name} uses string escape {attrs.get(ESCAPE_ATTR)!r}; this "
                          f"circuit-catalog reads {ESCAPE_SCHEME!r}. Upgrade circuit-catalog.")
    escaped = ESCAPE_ATTR in attrs  # files written before the scheme hold raw strings

    def plain(value: Any) -> Any:
        return xml_unescape(value) if escaped and isinstance(value, str) else value

    nodes = []
    for nid, data in G.nodes(data=True):
        nid = plain(nid)
        entry: dict[str, Any] = {"id": nid, "score": data.get("score"),
                                 "in_circuit": data.get("in_circuit", True)}
        if data.get("token") is not None and data.get("kind") != NodeKind.LOGITS.value:
            entry["token"] = data["token"]
        nodes.append(entry)
    edges = [{"src": plain(u), "dst": plain(v), "qkv": plain(data.get("qkv")), "score": data.get("score"),
              "in_circuit": data.get("in_circuit", True)}
             for u, v, _key, data in G.edges(keys=True, data=True)]
    doc_dict = {
        "schema_version": attrs.get("catalog_schema_version"),
        "model": _json_attr(attrs, "model", raw, None),
        "task": plain(attrs.get("task")),
        "name": plain(attrs.get("name")),
        "tags": _json_attr(attrs, "tags", raw, []),
        "metrics": _json_attr(attrs, "metrics", raw, {}),
        "provenance": _json_attr(attrs, "provenance", raw, None),
        "nodes": nodes, "edges": edges,
        "annotations": _json_attr(attrs, "annotations", raw, []),
    }
    circuit = circuit_from_dict(doc_dict, raw.display_name)
    return [apply_overrides(circuit, raw.display_name, model, task, name, top_k)]
