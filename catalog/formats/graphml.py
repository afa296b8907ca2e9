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
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any
from xml.parsers import expat

from catalog.bounds import MAX_DEPTH
from catalog.errors import CatalogError, FormatError
from catalog.formats.catalog_json import (
    SCHEMA_VERSION,
    CircuitParts,
    annotation_to_dict,
    circuit_from_parts,
    shape_to_dict,
)
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


_NS = "http://graphml.graphdrawing.org/xmlns "
_BOOLEANS: dict[str, bool] = {"true": True, "false": False, "0": False, "1": True}
_TYPES: dict[str, Callable[[str], Any]] = {"string": str, "int": int, "long": int, "float": float, "double": float,
                                           "boolean": lambda text: _BOOLEANS[text.lower()]}
_XML_CHUNK = 1 << 16


class _GraphmlStream:
    """GraphML read with expat, one element at a time: each node and edge becomes a record for
    `catalog_json.CircuitParts` as its end tag is read, so no document tree is ever built.

    Read as networkx reads it (keys by id, typed ``attr.type`` values, untyped keys as strings,
    data with child elements ignored), except that key defaults are not applied (circuit-catalog
    never writes them) and an edge's ends must be declared nodes. A DOCTYPE or any entity
    declaration is refused before it is expanded, as defusedxml does.
    """

    def __init__(self, raw: RawFile) -> None:
        self.raw = raw
        self.keys: dict[str, tuple[str, Callable[[str], Any]]] = {}
        self.graph: dict[str, Any] = {}
        self.parts = CircuitParts(raw.display_name)
        self.escaped = False
        self.n_graphs = 0
        self._data: dict[str, Any] | None = None  # the data of the node / edge / graph being read
        self._element: dict[str, str] = {}
        self._key: str | None = None  # the key of the <data> being read
        self._text: list[str] = []
        self._children = 0  # elements inside the current <data> (yfiles extensions): ignored
        self._counts = {"nodes": 0, "edges": 0}

    def parse(self) -> None:
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._refuse_dtd
        parser.EntityDeclHandler = self._refuse_dtd
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._chars
        view = memoryview(self.raw.data)
        for at in range(0, len(view), _XML_CHUNK):
            parser.Parse(view[at:at + _XML_CHUNK].tobytes(), False)
        parser.Parse(b"", True)

    def _refuse_dtd(self, *_: Any) -> None:
        raise FormatError(f"{self.raw.display_name}: GraphML with a DOCTYPE or entities is refused; "
                          "export it again with circuit-catalog.")

    def plain(self, value: Any) -> Any:
        return xml_unescape(value) if self.escaped and isinstance(value, str) else value

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        if self._key is not None:
            self._children += 1
            return
        if not name.startswith(_NS):
            return
        tag = name[len(_NS):]
        if tag == "key":
            key_id, attr_name, attr_type = attrs.get("id"), attrs.get("attr.name"), attrs.get("attr.type", "string")
            if key_id is None or attr_name is None or attr_type not in _TYPES:
                raise FormatError(f"{self.raw.display_name} is not readable GraphML (key {key_id!r} has no "
                                  f"name or an unknown type {attr_type!r}). Export it again.")
            self.keys[key_id] = (attr_name, _TYPES[attr_type])
            if attr_name == ESCAPE_ATTR:  # keys come before the graph: its strings are escaped
                self.escaped = True
        elif tag == "graph":
            if not any(attr_name == "catalog_schema_version" for attr_name, _ in self.keys.values()):
                raise _foreign(self.raw)  # keys come first: say so before reading any node
            self.n_graphs += 1
            self._data = self.graph
        elif tag in ("node", "edge"):
            self._element, self._data = attrs, {}
        elif tag == "data" and self._data is not None:
            self._key, self._text, self._children = attrs.get("key", ""), [], 0
        elif tag == "hyperedge":
            raise FormatError(f"{self.raw.display_name} holds GraphML hyperedges, which no circuit has.")

    def _chars(self, text: str) -> None:
        if self._key is not None and not self._children:
            self._text.append(text)

    def _end(self, name: str) -> None:
        if self._key is not None:
            if name != _NS + "data":
                self._children -= 1
                return
            key, self._key = self._key, None
            if key not in self.keys:
                raise FormatError(f"{self.raw.display_name} is not readable GraphML (data for an undeclared "
                                  f"key {key!r}). Export it again.")
            attr_name, convert = self.keys[key]
            if self._text and not self._children and self._data is not None:
                self._data[attr_name] = convert("".join(self._text))
            return
        if name == _NS + "node":
            self._node()
        elif name == _NS + "edge":
            self._edge()
        elif name == _NS + "graph":
            self._data = None

    def _node(self) -> None:
        data, nid = self._data or {}, self._element.get("id")
        entry: dict[str, Any] = {"id": self.plain(nid), "score": data.get("score"),
                                 "in_circuit": data.get("in_circuit", True)}
        if data.get("token") is not None and data.get("kind") != NodeKind.LOGITS.value:
            entry["token"] = data["token"]
        self.parts.add("nodes", entry, self._counts["nodes"])
        self._counts["nodes"] += 1
        self._data = self.graph

    def _edge(self) -> None:
        data, element = self._data or {}, self._element
        entry = {"src": self.plain(element.get("source")), "dst": self.plain(element.get("target")),
                 "qkv": self.plain(data.get("qkv")), "score": data.get("score"),
                 "in_circuit": data.get("in_circuit", True)}
        self.parts.add("edges", entry, self._counts["edges"])
        self._counts["edges"] += 1
        self._data = self.graph


def _foreign(raw: RawFile) -> FormatError:
    return FormatError(
        f"{raw.display_name} is GraphML but was not written by circuit-catalog (no "
        "catalog_schema_version graph attribute); only the catalog's own GraphML can be imported."
    )


def read(raw: RawFile, doc: Any = None, model: str | None = None, task: str | None = None,
         name: str | None = None, top_k: int | None = None) -> list[Circuit]:
    """Read GraphML written by `write` back into the same circuit, streaming its elements."""
    from catalog.formats.catalog_json import apply_overrides

    stream = _GraphmlStream(raw)
    try:
        stream.parse()
    except CatalogError:
        raise
    except (expat.ExpatError, ValueError, KeyError) as exc:  # a bad value of its declared type too
        raise FormatError(f"{raw.display_name} is not readable GraphML ({type(exc).__name__}: "
                          f"{str(exc)[:200]}). Export it again.") from None
    raw.release()
    if not stream.n_graphs:
        raise FormatError(f"{raw.display_name} is not readable GraphML (it holds no graph). Export it again.")
    attrs = stream.graph
    if "catalog_schema_version" not in attrs:
        raise _foreign(raw)
    if attrs.get(ESCAPE_ATTR) not in (None, ESCAPE_SCHEME):
        raise FormatError(f"{raw.display_name} uses string escape {attrs.get(ESCAPE_ATTR)!r}; this "
                          f"circuit-catalog reads {ESCAPE_SCHEME!r}. Upgrade circuit-catalog.")
    annotations = _json_attr(attrs, "annotations", raw, [])
    if isinstance(annotations, list):
        for i, item in enumerate(annotations):
            stream.parts.add("annotations", item, i)
        annotations = []
    head = {
        "schema_version": attrs.get("catalog_schema_version"),
        "model": _json_attr(attrs, "model", raw, None),
        "task": stream.plain(attrs.get("task")),
        "name": stream.plain(attrs.get("name")),
        "tags": _json_attr(attrs, "tags", raw, []),
        "metrics": _json_attr(attrs, "metrics", raw, {}),
        "provenance": _json_attr(attrs, "provenance", raw, None),
        "nodes": [], "edges": [], "annotations": annotations,
    }
    circuit = circuit_from_parts(head, stream.parts)
    return [apply_overrides(circuit, raw.display_name, model, task, name, top_k)]
