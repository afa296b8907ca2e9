"""`--format circuit-tracer` export: an imported attribution graph written again keeps its nodes
(ids, influence, activation, labels), links, pinned ids, supernodes and metadata, directly and
after a trip through the catalog."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from catalog.errors import FormatError
from catalog.formats import read_circuits, write_circuit
from catalog.formats.examples import circuit_tracer_document, toy_circuit
from catalog.graph import CircuitGraph
from catalog.provenance import Circuit, Provenance, Source
from catalog.shapes import KNOWN_SHAPES

PEER = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "peer-formats"
FILES = ["circuit-tracer_dallas-austin_gemma-2-2b.json", "neuronpedia-circuit-tracer_son-clt-hp_gemma-2-2b.json"]


def exported(circuit: Circuit) -> dict:
    buf = io.StringIO()
    write_circuit(circuit, "circuit-tracer", buf)
    return json.loads(buf.getvalue())


def assert_same_graph_file(original: dict, again: dict) -> None:
    """Everything a viewer reads: nodes with their fields, links, pinned ids, supernodes, metadata."""
    by_id = {n["node_id"]: n for n in original["nodes"]}
    assert {n["node_id"]: n for n in again["nodes"]} == by_id
    assert sorted((x["source"], x["target"], x["weight"]) for x in again["links"]) == \
        sorted((x["source"], x["target"], x["weight"]) for x in original["links"])
    assert again["qParams"] == original["qParams"]
    assert again["metadata"] == original["metadata"]


def small_document() -> dict:
    doc = circuit_tracer_document()
    doc["qParams"]["pinnedIds"] = ["3_1200_1", "27_2135_2"]
    doc["qParams"]["clickedId"] = "3_1200_1"
    return doc


def test_a_small_graph_survives_import_and_export(tmp_path):
    doc = small_document()
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(doc))
    (c,) = read_circuits(path)
    again = exported(c)
    assert_same_graph_file(doc, again)
    assert {n["node_id"]: n.get("influence") for n in again["nodes"]}["3_1200_1"] == 0.42
    assert {n["node_id"]: n.get("activation") for n in again["nodes"]}["3_1200_1"] == 7.5
    (path2 := tmp_path / "again.json").write_text(json.dumps(again))
    (back,) = read_circuits(path2)
    assert back.graph == c.graph and back.task == c.task == "toy-capital"


def test_the_values_survive_a_trip_through_the_catalog(tmp_path):
    from catalog.formats import import_file
    from catalog.store import Catalog

    doc = small_document()
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(doc))
    cat = Catalog.open(str(tmp_path / "c.db"))
    (added,) = import_file(cat, path)
    assert_same_graph_file(doc, exported(cat.get(added.id)))


@pytest.mark.skipif(not PEER.is_dir(), reason="the shared peer-format fixtures (../shared) are absent")
@pytest.mark.parametrize("name", FILES)
def test_peer_graphs_survive_import_and_export(name, tmp_path):
    original = json.loads((PEER / name).read_text())
    (c,) = read_circuits(PEER / name)
    assert c.task == original["metadata"]["slug"]  # taken from the file, no --task needed
    again = exported(c)
    assert_same_graph_file(original, again)
    (tmp_path / "again.json").write_text(json.dumps(again))
    assert read_circuits(tmp_path / "again.json")[0].graph == c.graph


def test_a_feature_circuit_built_here_gets_circuit_tracer_ids():
    shape = KNOWN_SHAPES["gemma-2-2b"]
    g = CircuitGraph.build(shape, ["input@0", "f3.1200@1[clt]", "err5@1[clt]", "logits.t2135@1"],
                           [("input@0", "f3.1200@1[clt]", None, 1.0), ("f3.1200@1[clt]", "err5@1[clt]", None, 0.5),
                            ("err5@1[clt]", "logits.t2135@1", None, -0.2)])
    doc = exported(Circuit(graph=g, task="capitals", provenance=Provenance(source=Source.DISCOVERY)))
    nodes = {n["node_id"]: n for n in doc["nodes"]}
    assert set(nodes) == {"E_0_0", "3_1200_1", "0_5_1", "27_2135_1"}
    assert nodes["3_1200_1"]["feature"] == 725406 and nodes["27_2135_1"]["feature_type"] == "logit"
    assert {"source": "3_1200_1", "target": "0_5_1", "weight": 0.5} in doc["links"]
    assert doc["metadata"]["slug"] == "capitals" and doc["qParams"]["pinnedIds"] == []


def test_a_head_level_circuit_is_refused_with_the_formats_that_fit():
    with pytest.raises(FormatError, match="--format graphml or --format json"):
        exported(toy_circuit())


def test_graphs_of_the_embedded_model_import(tmp_path):
    from catalog.models import DEFAULT_MODEL_DIR
    from catalog.models.checkpoint import is_checkpoint, read_config

    shape = KNOWN_SHAPES["catalog-default"]
    if is_checkpoint(DEFAULT_MODEL_DIR):  # the known shape is the shipped model's
        cfg = read_config(DEFAULT_MODEL_DIR)["model_config"]
        assert (shape.n_layers, shape.n_heads, shape.d_model) == (cfg["n_layers"], cfg["n_heads"], cfg["d_model"])
    g = CircuitGraph.build(shape, ["input", "a0.h1", "m3", "logits"],
                           [("input", "a0.h1", "v", 1.0), ("a0.h1", "m3", None, 0.5), ("m3", "logits", None, 2.0)])
    c = Circuit(graph=g, task="ioi", provenance=Provenance(source=Source.DISCOVERY))
    write_circuit(c, "eap-ig", tmp_path / "ioi.json")  # names no model: its cfg gives the shape
    (back,) = read_circuits(tmp_path / "ioi.json")
    assert back.model == "catalog-default" and back.graph.circuit_edges == g.circuit_edges
    doc = circuit_tracer_document()
    doc["metadata"]["scan"] = "catalog-default"
    for n in doc["nodes"]:
        if n["feature_type"] == "logit":
            n["layer"] = "5"
    doc["nodes"] = [n for n in doc["nodes"] if n["feature_type"] in ("embedding", "logit")]
    doc["links"] = [{"source": "E_9876_1", "target": "27_2135_2", "weight": 1.0}]
    (tmp_path / "g.json").write_text(json.dumps(doc))
    assert read_circuits(tmp_path / "g.json")[0].model == "catalog-default"
