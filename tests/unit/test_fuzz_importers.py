"""Property-based fuzzing of every importer: whatever the bytes, only `CatalogError`s come out.

Three sources of input: random bytes (under every file name and forced format), structured
mutations of valid documents of each format (replace, delete, rename, insert and duplicate
anywhere in the JSON tree, then optionally truncate), and byte-level damage to GraphML. When a
mutated file is accepted, the circuit it gives must export and read back unchanged.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.errors import CatalogError
from catalog.formats import read_circuits, write_circuit
from catalog.formats.examples import circuit_tracer_document, toy_circuit
from catalog.graph import CircuitGraph, ModelShape
from catalog.provenance import Circuit, Provenance, Source

# CATALOG_FUZZ_EXAMPLES raises the example count for a longer local hunt.
FUZZ = settings(max_examples=int(os.environ.get("CATALOG_FUZZ_EXAMPLES", "120")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TINY = ModelShape("tiny-1l", n_layers=1, n_heads=2, d_model=8)


def tiny_circuit() -> Circuit:
    g = CircuitGraph.build(TINY, ["input", "a0.h0", "a0.h1", "m0", "logits"], [
        ("input", "a0.h0", "q", 0.5), ("input", "a0.h1", "v", -1.0), ("a0.h0", "m0", None, 2.0),
        ("m0", "logits", None, 0.25), ("a0.h1", "logits", None, 0.125)])
    return Circuit(graph=g, task="ioi", provenance=Provenance(source=Source.DISCOVERY), name="tiny")


def _as_json(circuit: Circuit, fmt: str) -> Any:
    buf = io.StringIO()
    write_circuit(circuit, fmt, buf)
    return json.loads(buf.getvalue())


def _legacy(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["nodes"] = {k: v["in_graph"] for k, v in doc["nodes"].items()}
    return doc


# (name, valid document, keyword arguments read_circuits needs for it)
DOCS: list[tuple[str, Any, dict[str, Any]]] = [
    ("catalog-json", _as_json(toy_circuit(), "json"), {}),
    ("eap-ig", _as_json(tiny_circuit(), "eap-ig"), {"model": "tiny-1l", "task": "ioi"}),
    ("eap-ig-legacy", _legacy(_as_json(tiny_circuit(), "eap-ig")), {"model": "tiny-1l", "task": "ioi"}),
    ("circuit-tracer", circuit_tracer_document(), {"task": "capitals"}),
]

INTERESTING = st.sampled_from([
    "input", "logits", "a0.h0", "a0.h1", "m0", "a9.h9", "a0.h99", "m-1", "f3.1200@1[clt]",
    "err5@2[x]", "logits.t5@2", "a0.h0->m0", "m0->a0.h0<q>", "input->logits", "a0.h1->a0.h0<k>",
    "E", "27", "-1", "embedding", "logit", "cross layer transcoder", "mlp reconstruction error",
    "lorsa", "bias", "q", "k", "v", "top-k", "given", "import", "", " ", "\u0000", "é\u2603",
    "schema_version", "in_graph", "score", "nodes", "edges", "cfg", "links", "metadata",
])
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.integers(-3, 40)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | INTERESTING)
VALUES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=3)
                      | st.dictionaries(st.text(max_size=6) | INTERESTING, kids, max_size=3),
                      max_leaves=6)


def _slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) pair in a JSON tree, the root included as (None, None)."""
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            _slots(v, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            _slots(v, out)
    return out


def mutate(data: st.DataObject, doc: Any) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 4), label="n_mutations")):
        slots = _slots(doc, [])
        if not slots:
            return data.draw(VALUES, label="root")
        container, key = data.draw(st.sampled_from(slots), label="where")
        op = data.draw(st.sampled_from(["replace", "delete", "rename", "insert", "duplicate"]), label="op")
        if op == "replace":
            container[key] = data.draw(VALUES, label="value")
        elif op == "delete":
            del container[key]
        elif op == "rename" and isinstance(container, dict):
            new = data.draw(st.text(max_size=8) | INTERESTING, label="new key")
            container[new] = container.pop(key)
        elif op == "insert":
            if isinstance(container, dict):
                container[data.draw(st.text(max_size=8) | INTERESTING, label="key")] = data.draw(VALUES)
            else:
                container.insert(key, data.draw(VALUES, label="item"))
        elif op == "duplicate" and isinstance(container, list):
            container.insert(key, copy.deepcopy(container[key]))
    return doc


def read_only_catalog_errors(path: Path, **kwargs: Any) -> None:
    """The property: reading raises nothing but CatalogError; an accepted circuit round-trips."""
    try:
        circuits = read_circuits(path, **kwargs)
    except CatalogError as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message and len(message) <= 800
        return
    for c in circuits:
        buf = io.StringIO()
        write_circuit(c, "json", buf)
        back = path.with_name("roundtrip.json")
        back.write_text(buf.getvalue(), encoding="utf-8")
        again = read_circuits(back)[0]
        assert again.graph == c.graph and again.provenance == c.provenance


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.binary(max_size=300),
       name=st.sampled_from(["c.json", "c.json.gz", "c.graphml", "ioi.pt", "c", "c.pkl"]),
       fmt=st.sampled_from([None, "catalog-json", "eap-ig", "circuit-tracer", "graphml", "json", "nope"]),
       gz=st.booleans())
def test_random_bytes(workdir, data, name, fmt, gz):
    p = workdir / name
    p.write_bytes(gzip.compress(data) if gz else data)
    read_only_catalog_errors(p, format=fmt, model="tiny-1l", task="ioi")


@pytest.mark.slow
@FUZZ
@given(data=st.data(), which=st.integers(0, len(DOCS) - 1), truncate=st.booleans(),
       force=st.booleans(), top_k=st.none() | st.integers(-1, 5))
def test_structured_mutations(workdir, data, which, truncate, force, top_k):
    fmt, doc, kwargs = DOCS[which]
    text = json.dumps(mutate(data, doc), allow_nan=True)
    if truncate:
        text = text[: data.draw(st.integers(0, len(text)), label="cut")]
    p = workdir / "mutant.json"
    p.write_text(text, encoding="utf-8")
    if force:
        kwargs = dict(kwargs, format=fmt.removesuffix("-legacy"))
    read_only_catalog_errors(p, top_k=top_k, **kwargs)


@pytest.mark.slow
@FUZZ
@given(data=st.data())
def test_graphml_damage(workdir, data):
    buf = io.BytesIO()
    write_circuit(tiny_circuit(), "graphml", buf)
    raw = bytearray(buf.getvalue())
    for _ in range(data.draw(st.integers(1, 3), label="n_edits")):
        op = data.draw(st.sampled_from(["flip", "cut", "splice"]), label="op")
        i = data.draw(st.integers(0, max(0, len(raw) - 1)), label="at")
        if op == "flip" and raw:
            raw[i] = data.draw(st.integers(0, 255), label="byte")
        elif op == "cut":
            del raw[i: i + data.draw(st.integers(1, 40), label="len")]
        else:
            snippet = data.draw(st.sampled_from([
                b'<data key="d0">NaN</data>', b"</graph>", b"<edge source=\"m0\" target=\"a0.h0\"/>",
                b'<node id="a7.h0"/>', b"&amp;", b"<![CDATA[x]]>", b'attr.type="double"', b"True",
            ]), label="snippet")
            raw[i:i] = snippet
    p = workdir / "damaged.graphml"
    p.write_bytes(bytes(raw))
    read_only_catalog_errors(p)
