"""Importers and exporters on small documents the tests write themselves (no ../shared needed)."""

from __future__ import annotations

import gzip
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from catalog.errors import CatalogError, FormatError, InvalidGraphError, InvalidInputError, UnknownKeyError
from catalog.formats import FORMATS, get_format, read_circuits, write_circuit
from catalog.formats.circuit_tracer import cantor_unpair, decimal_unpair
from catalog.formats.eap_ig import implied_edges, implied_nodes
from catalog.formats.examples import circuit_tracer_document, eap_ig_document, example_text, toy_circuit
from catalog.graph import CircuitGraph, ModelShape
from catalog.naming import NodeKind
from catalog.provenance import Circuit, Provenance, SelectionRule, Source


def put(tmp_path: Path, name: str, content: str | bytes | dict) -> Path:
    p = tmp_path / name
    if isinstance(content, dict):
        content = json.dumps(content)
    if isinstance(content, str):
        content = content.encode("utf-8")
    p.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    return p


def same_record(a: Circuit, b: Circuit) -> None:
    assert a.graph == b.graph
    assert a.provenance == b.provenance
    assert (a.task, a.name, a.tags, a.metrics) == (b.task, b.name, b.tags, b.metrics)


# --- registry and detection ----------------------------------------------------------------


def test_registry_names_the_formats_and_suggests_on_typos():
    assert set(FORMATS) == {"catalog-json", "eap-ig", "circuit-tracer", "graphml"}
    assert get_format("json").slug == "catalog-json"
    assert get_format("Neuronpedia").slug == "circuit-tracer"
    with pytest.raises(UnknownKeyError, match="Did you mean 'graphml'"):
        get_format("grapml")


@pytest.mark.parametrize("fmt, name, expected", [
    ("catalog-json", "c.json", "catalog-json"),
    ("graphml", "c.graphml", "graphml"),
    ("eap-ig", "ioi_gpt2.json", "eap-ig"),
    ("eap-ig-legacy", "ioi.json", "eap-ig"),
    ("circuit-tracer", "ioi-graph.json", "circuit-tracer"),
])
def test_format_is_detected_from_content(tmp_path, fmt, name, expected):
    c = read_circuits(put(tmp_path, name, example_text(fmt)))[0]
    assert c.provenance.source_format in (expected, None) or c.provenance.source is Source.DISCOVERY
    if expected in ("eap-ig", "circuit-tracer"):
        assert c.provenance.source_format == expected
        assert c.provenance.source is Source.IMPORT
        assert c.provenance.source_file == name
        assert len(c.provenance.source_sha256 or "") == 64


def test_gzip_is_read_transparently_and_hashed_as_stored(tmp_path):
    import hashlib

    p = put(tmp_path, "ioi.json.gz", example_text("eap-ig"))
    c = read_circuits(p)[0]
    assert c.provenance.source_sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert c.graph.summary()["scored_edges"] == 1108


def test_forced_format_must_match_the_content(tmp_path):
    p = put(tmp_path, "ioi.json", example_text("eap-ig"))
    with pytest.raises(FormatError, match="not a circuit-tracer graph.*'metadata'"):
        read_circuits(p, format="circuit-tracer")
    with pytest.raises(FormatError, match="is JSON, so it cannot be graphml"):
        read_circuits(p, format="graphml")


# --- catalog JSON and GraphML: exact round trips -------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "graphml"])
def test_own_formats_round_trip_exactly(tmp_path, fmt):
    c = toy_circuit()
    p = tmp_path / f"c.{fmt}"
    write_circuit(c, fmt, p, all_edges=True)  # GraphML: every scored edge, not only the circuit
    back = read_circuits(p)
    assert len(back) == 1
    same_record(back[0], c)


@pytest.mark.parametrize("fmt", ["json", "graphml"])
def test_round_trip_through_open_files_and_gzip(tmp_path, fmt):
    c = toy_circuit()
    text, binary = io.StringIO(), io.BytesIO()
    write_circuit(c, fmt, text, all_edges=True)
    write_circuit(c, fmt, binary, all_edges=True)
    assert text.getvalue().encode() == binary.getvalue()
    gz = tmp_path / f"c.{fmt}.gz"
    write_circuit(c, fmt, gz, all_edges=True)
    assert gzip.decompress(gz.read_bytes()) == binary.getvalue()
    same_record(read_circuits(gz)[0], c)


def test_catalog_json_document_is_versioned_and_strict(tmp_path):
    doc = json.loads(example_text("catalog-json"))
    assert doc["schema_version"] == 1 and doc["model"]["name"] == "interpbench-ioi"
    doc["schema_version"] = 2
    with pytest.raises(FormatError, match="schema_version 2.*Upgrade"):
        read_circuits(put(tmp_path, "c.json", doc))
    doc["schema_version"] = 1
    doc["nodes"][0]["colour"] = "red"
    with pytest.raises(FormatError, match="nodes.0.colour"):
        read_circuits(put(tmp_path, "c.json", doc))


def test_catalog_json_holds_several_circuits(tmp_path):
    one = json.loads(example_text("catalog-json"))
    two = dict(one, name="second", task="induction")
    cs = read_circuits(put(tmp_path, "many.json", {"schema_version": 1, "circuits": [one, two]}))
    assert [(c.name, c.task) for c in cs] == [("toy ioi", "ioi"), ("second", "induction")]


def test_overrides_apply_to_own_formats_and_model_must_agree(tmp_path):
    p = put(tmp_path, "c.json", example_text("catalog-json"))
    c = read_circuits(p, task="greater-than", name="renamed", top_k=2)[0]
    assert (c.task, c.name, len(c.graph.circuit_edges)) == ("greater-than", "renamed", 2)
    assert c.provenance.selection.rule is SelectionRule.TOP_K and c.provenance.selection.value == 2
    with pytest.raises(FormatError, match="not gpt2-small"):
        read_circuits(p, model="gpt2-small")


def test_graphml_is_plain_for_gephi_and_cytoscape():
    buf = io.BytesIO()
    write_circuit(toy_circuit(), "graphml", buf, all_edges=True)
    root = ET.fromstring(buf.getvalue())
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    keys = {(k.get("for"), k.get("id")): (k.get("for"), k.get("attr.name"), k.get("attr.type"))
            for k in root.findall("g:key", ns)}
    assert all(scope_id[1] == name for scope_id, (_, name, _) in keys.items())  # readable key ids
    assert {t for _, _, t in keys.values()} <= {"string", "int", "long", "double", "boolean"}
    node_attrs = {name for scope, name, _ in keys.values() if scope == "node"}
    assert {"kind", "layer", "head", "role", "label", "score", "in_circuit"} <= node_attrs
    assert {name for scope, name, _ in keys.values() if scope == "edge"} == {"score", "qkv", "in_circuit"}
    edge_ids = [e.get("id") for e in root.iter("{http://graphml.graphdrawing.org/xmlns}edge")]
    assert len(edge_ids) == 10 and len(set(edge_ids)) == 10
    head = root.find(".//g:node[@id='a5.h2']", ns)
    values = {keys[("node", d.get("key"))][1]: d.text for d in head.findall("g:data", ns)}
    assert values["role"] == "name mover" and values["layer"] == "5" and values["head"] == "2"
    assert "dictionary" not in values  # None is dropped, never written as "None"
    assert values["in_circuit"] == "true"  # xs:boolean spelling, not Python's True
    bools = {d.text for d in root.iter("{http://graphml.graphdrawing.org/xmlns}data")
             if d.get("key") == "in_circuit"}
    assert bools == {"true", "false"}


def test_foreign_graphml_is_refused_with_a_reason(tmp_path):
    import networkx as nx

    p = tmp_path / "other.graphml"
    nx.write_graphml(nx.path_graph(3), p)
    with pytest.raises(FormatError, match="not written by circuit-catalog"):
        read_circuits(p)
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><graphml>&a;</graphml>'
    with pytest.raises(FormatError, match="DOCTYPE"):
        read_circuits(put(tmp_path, "bomb.graphml", bomb))


# --- EAP-IG --------------------------------------------------------------------------------


def test_implied_graph_matches_eap_ig_counts():
    assert sum(1 for _ in implied_edges(12, 12, False)) == 32_491
    assert sum(1 for _ in implied_edges(6, 4, False)) == 1_108
    assert len(list(implied_nodes(12, 12))) == 2 + 12 * 13
    # Parallel attention and MLP: no edge from a layer's heads into its own MLP.
    par = {(s, d) for s, d, _ in implied_edges(2, 2, True)}
    assert ("a0.h0", "m0") not in par and ("a0.h0", "m1") in par and ("m0", "a1.h1") in par


def test_eap_ig_export_lists_the_full_graph_with_flags():
    c = toy_circuit()
    doc = eap_ig_document()
    assert doc["cfg"] == {"n_layers": 6, "n_heads": 4, "parallel_attn_mlp": False, "d_model": 64}
    assert list(doc["nodes"]) == list(implied_nodes(6, 4))
    assert len(doc["edges"]) == 1_108
    assert doc["nodes"]["logits"]["in_graph"] is True and doc["nodes"]["a1.h3"]["in_graph"] is False
    assert doc["nodes"]["a5.h2"] == {"in_graph": True, "score": 0.9}
    assert doc["edges"]["a3.h0->a5.h2<q>"] == {"score": 3.0, "in_graph": True}
    assert doc["edges"]["input->logits"] == {"score": 1e-7, "in_graph": False}
    assert doc["edges"]["a1.h3->logits"] == {"score": 0.0, "in_graph": False}
    assert sum(e["in_graph"] for e in doc["edges"].values()) == len(c.graph.circuit_edges)


@pytest.mark.parametrize("legacy", [False, True])
def test_eap_ig_round_trip_keeps_scores_and_selection(tmp_path, legacy):
    c = toy_circuit()
    p = put(tmp_path, "toy_ioi.json", eap_ig_document(legacy=legacy))
    back = read_circuits(p)[0]
    assert back.model == "interpbench-ioi" and back.task == "ioi"
    assert back.provenance.selection.rule is SelectionRule.GIVEN
    assert back.provenance.method_params["schema"] == ("legacy" if legacy else "current")
    assert {e.key for e in back.graph.circuit_edges} == {e.key for e in c.graph.circuit_edges}
    assert {n.id for n in back.graph.circuit_nodes} == {n.id for n in c.graph.circuit_nodes}
    scores = {e.key: e.score for e in back.graph.edges}
    assert all(scores[e.key] == e.score for e in c.graph.edges)
    assert sum(1 for s in scores.values() if s != 0.0) == len(c.graph.edges)
    if not legacy:
        assert back.graph.node("a5.h2").score == 0.9


def test_importance_file_gets_a_recorded_top_k(tmp_path):
    doc = eap_ig_document()
    for v in doc["nodes"].values():
        v["in_graph"] = False
    for v in doc["edges"].values():
        v["in_graph"] = False
    p = put(tmp_path, "ioi_interpbench.json", doc)
    c = read_circuits(p)[0]
    # ceil(2% of 1,108 scored edges) = 23 edges, by |score|.
    sel = c.provenance.selection
    assert (sel.rule, sel.value, sel.absolute) == (SelectionRule.TOP_K, 23, True)
    assert len(c.graph.circuit_edges) == 23 and len(c.graph.edges) == 1_108
    top = sorted(c.graph.edges, key=lambda e: -abs(e.score))[0]
    assert top.in_circuit and top.score == 4.5
    c5 = read_circuits(p, top_k=5)[0]
    assert c5.provenance.selection.value == 5 and len(c5.graph.circuit_edges) == 5


def test_eap_ig_model_comes_from_cfg_or_override(tmp_path):
    doc = eap_ig_document()
    doc["cfg"].update(n_layers=3, n_heads=3, d_model=48)
    doc["nodes"] = {n: {"in_graph": True} for n in implied_nodes(3, 3)}
    doc["edges"] = {"a0.h0->m0": {"score": 1.0, "in_graph": True}}
    p = put(tmp_path, "ioi.json", doc)
    with pytest.raises(InvalidInputError, match="no known model.*--model"):
        read_circuits(p)
    c = read_circuits(p, model="my-tiny")[0]
    assert c.graph.shape == ModelShape("my-tiny", 3, 3, 48)
    with pytest.raises(InvalidInputError, match="--model gpt2-small has 12 layers"):
        read_circuits(p, model="gpt2-small")


def test_eap_ig_writer_refuses_feature_circuits(tmp_path):
    c = read_circuits(put(tmp_path, "g.json", example_text("circuit-tracer")), task="capitals")[0]
    with pytest.raises(FormatError, match="feature-level.*--format json"):
        write_circuit(c, "eap-ig", tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists() and not list(tmp_path.glob(".out.json*"))


def test_circuit_tracer_writer_refuses_head_level_circuits_and_writes_nothing(tmp_path):
    with pytest.raises(FormatError, match="attribution graph cannot hold"):
        write_circuit(toy_circuit(), "circuit-tracer", tmp_path / "x.json")
    assert not list(tmp_path.iterdir())


# --- circuit-tracer ------------------------------------------------------------------------


def test_feature_codes_decode_both_encodings():
    assert cantor_unpair(15_204_836) == (18, 5495)  # from the Dallas/Austin graph
    assert cantor_unpair(184_425_614) == (0, 19_204)
    assert decimal_unpair(185_495, 18) == 5495 and decimal_unpair(185_495, 7) is None
    for layer, idx in [(0, 0), (25, 16_383), (3, 1200), (1, 0)]:
        z = (layer + idx) * (layer + idx + 1) // 2 + idx
        assert cantor_unpair(z) == (layer, idx)


def test_circuit_tracer_nodes_read_from_meaning_not_ids(tmp_path):
    doc = circuit_tracer_document()
    for i, n in enumerate(doc["nodes"]):
        n["node_id"] = f"opaque-{i}"  # ids carry no meaning: links just refer to them
    ids = {old["node_id"]: f"opaque-{i}" for i, old in enumerate(circuit_tracer_document()["nodes"])}
    for link in doc["links"]:
        link["source"], link["target"] = ids[link["source"]], ids[link["target"]]
    doc["qParams"]["supernodes"] = [["capital", ids["3_1200_1"], ids["7_42_2"]]]
    c = read_circuits(put(tmp_path, "g.json", doc), task="capitals")[0]
    g = c.graph
    assert [n.id for n in g.nodes] == [
        "input@0", "input@1", "f3.1200@1[gemma-scope-transcoders]", "err5@2[gemma-scope-transcoders]",
        "f7.42@2[gemma-scope-transcoders]", "logits.t2135@2"]
    f = g.node("f3.1200@1[gemma-scope-transcoders]")
    assert (f.kind, f.layer, f.feature, f.position) == (NodeKind.FEATURE, 3, 1200, 1)
    assert g.node("logits.t2135@2").token == 2135
    assert g.labels()["f3.1200@1[gemma-scope-transcoders]"] == "capital cities"
    assert g.labels()["input@1"] == 'Input "Paris"'
    groups = [a for a in g.annotations if a.kind.value == "group"]
    assert [(a.value, a.members) for a in groups] == [
        ("capital", ("f3.1200@1[gemma-scope-transcoders]", "f7.42@2[gemma-scope-transcoders]"))]
    w = {(e.src, e.dst): e.score for e in g.edges}
    assert w[("err5@2[gemma-scope-transcoders]", "logits.t2135@2")] == -0.3
    assert c.model == "gemma-2-2b" and c.name == "toy-capital"
    assert c.provenance.selection.rule is SelectionRule.GIVEN
    assert c.provenance.method_params["feature_encoding"] == "cantor"


def test_circuit_tracer_older_decimal_feature_codes(tmp_path):
    doc = circuit_tracer_document()
    doc["nodes"][2]["feature"] = 3 * 10**4 + 1200
    doc["nodes"][3]["feature"] = 7 * 10**4 + 42
    c = read_circuits(put(tmp_path, "g.json", doc), task="capitals")[0]
    assert "f3.1200@1[gemma-scope-transcoders]" in c.graph
    assert c.provenance.method_params["feature_encoding"] == "decimal"
    doc["nodes"][2]["feature"] = 999  # fits neither scheme for layer 3
    with pytest.raises(FormatError, match="neither as a Cantor pairing"):
        read_circuits(put(tmp_path, "g.json", doc), task="capitals")


def test_circuit_tracer_takes_its_task_from_the_file_and_needs_a_known_model(tmp_path):
    doc = circuit_tracer_document()
    assert read_circuits(put(tmp_path, "graph.json", doc))[0].task == "toy-capital"  # the slug
    assert read_circuits(put(tmp_path, "ioi-graph.json", doc))[0].task == "ioi"  # a known task wins
    doc["metadata"]["prompt"] = "a greater-than prompt: The war lasted from 1732 to 17"
    assert read_circuits(put(tmp_path, "graph.json", doc))[0].task == "greater-than"
    doc["metadata"]["prompt"] = "<bos>Paris is"
    del doc["metadata"]["slug"]
    with pytest.raises(InvalidInputError, match="has no slug.*pass --task NAME"):
        read_circuits(put(tmp_path, "graph.json", doc))
    doc["metadata"]["slug"] = "toy-capital"
    doc["metadata"]["scan"] = "someone/unknown-transcoders"
    with pytest.raises(InvalidInputError, match="pass --model"):
        read_circuits(put(tmp_path, "g.json", doc), task="t")
    assert read_circuits(put(tmp_path, "g.json", doc), task="t", model="gemma-2-2b")[0].model == "gemma-2-2b"


def test_circuit_tracer_out_of_range_layer_says_check_model(tmp_path):
    doc = circuit_tracer_document()
    doc["nodes"][3]["layer"] = 30
    with pytest.raises(FormatError, match="layer 30, out of range for gemma-2-2b"):
        read_circuits(put(tmp_path, "g.json", doc), task="t")


# --- safety and limits ---------------------------------------------------------------------


def test_pickles_and_torch_files_are_refused_unopened(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):  # unpickling this would create a file
            return (Path.touch, (tmp_path / "pwned",))

    data = pickle.dumps(Boom(), protocol=4)
    for name in ("graph.json", "graph.pt", "graph.pkl.gz"):
        with pytest.raises(FormatError, match="never unpickles.*to_json"):
            read_circuits(put(tmp_path, name, data))
    assert not (tmp_path / "pwned").exists()


def test_size_limit_applies_after_decompression(tmp_path, monkeypatch):
    monkeypatch.setenv("CATALOG_MAX_IMPORT_MB", "0.01")  # about 10 kB
    small = put(tmp_path, "ioi.json.gz", " " * 200_000 + example_text("catalog-json"))
    assert small.stat().st_size < 10_000
    with pytest.raises(FormatError, match="decompressed size over 0.01 MB.*CATALOG_MAX_IMPORT_MB"):
        read_circuits(small)
    monkeypatch.setenv("CATALOG_MAX_IMPORT_MB", "lots")
    with pytest.raises(InvalidInputError, match="positive number"):
        read_circuits(small)


def test_every_failure_is_a_catalog_error_with_advice(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_circuits(tmp_path / "missing.json")
    with pytest.raises(InvalidInputError, match="folder"):
        read_circuits(tmp_path)
    with pytest.raises(InvalidInputError, match="--top-k"):
        read_circuits(put(tmp_path, "c.json", example_text("catalog-json")), top_k=0)
    bad = json.loads(example_text("catalog-json"))
    bad["edges"][0]["dst"] = "a9.h0"
    with pytest.raises(InvalidGraphError):
        read_circuits(put(tmp_path, "c.json", bad))
    with pytest.raises(CatalogError):
        read_circuits(put(tmp_path, "c.json", b"\xff\xfe not text"))


def test_record_with_catalog_id_round_trips_as_a_new_record(tmp_path):
    c = replace(toy_circuit(), id=41, run_id=7)
    write_circuit(c, "json", tmp_path / "c.json")
    back = read_circuits(tmp_path / "c.json")[0]
    assert back.id is None and back.run_id is None
    same_record(back, c)


def test_feature_circuit_round_trips_in_own_formats(tmp_path):
    c = read_circuits(put(tmp_path, "g.json", example_text("circuit-tracer")), task="capitals")[0]
    for fmt in ("json", "graphml"):
        write_circuit(c, fmt, tmp_path / f"out.{fmt}", all_edges=True)
        same_record(read_circuits(tmp_path / f"out.{fmt}")[0], c)


def test_empty_graph_round_trips(tmp_path):
    g = CircuitGraph(ModelShape("toy", 1, 1), ())
    c = Circuit(graph=g, task="t", provenance=Provenance(source=Source.PUBLISHED))
    for fmt in ("json", "graphml"):
        write_circuit(c, fmt, tmp_path / f"e.{fmt}", all_edges=True)
        same_record(read_circuits(tmp_path / f"e.{fmt}")[0], c)


def test_node_only_circuit_survives_eap_ig(tmp_path):
    """Published circuits list components without edges; the EAP-IG node flags carry them."""
    shape = ModelShape("gpt2-small", 12, 12, 768)
    g = CircuitGraph.build(shape, ["a9.h9", "a10.h0", "m0", "logits"])
    c = Circuit(graph=g, task="ioi", provenance=Provenance(source=Source.PUBLISHED))
    write_circuit(c, "eap-ig", tmp_path / "ioi.json")
    back = read_circuits(tmp_path / "ioi.json")[0]
    assert {n.id for n in back.graph.circuit_nodes} == {"a9.h9", "a10.h0", "m0", "logits"}
    assert back.provenance.selection.rule is SelectionRule.GIVEN
