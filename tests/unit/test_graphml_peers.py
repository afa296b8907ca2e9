"""GraphML exports read back with named attributes in networkx, igraph and Cytoscape.js.

By default an export holds only the circuit (its nodes and the edges among them); every node has
a ``layer`` (input -1, logits n_layers) and a ``label``. Cytoscape.js is run under Node with the
packages pinned in tests/js/package.json (`npm ci --prefix tests/js`); that test skips, saying so,
where Node or those packages are missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from catalog.formats import read_circuits, write_circuit
from catalog.formats.examples import toy_circuit

JS = Path(__file__).resolve().parents[1] / "js"
NODE_ATTRS = {"kind", "layer", "label"}


@pytest.fixture
def exported(tmp_path) -> tuple[Path, object]:
    c = toy_circuit()
    assert len(c.graph.edges) > len(c.graph.circuit_edges)  # the toy has scored, unselected edges
    path = tmp_path / "toy.graphml"
    write_circuit(c, "graphml", path)
    return path, c


def test_default_export_is_the_circuit_and_all_edges_is_everything(exported, tmp_path):
    path, c = exported
    back = read_circuits(path)[0]
    assert back.graph == c.graph.circuit()
    write_circuit(c, "graphml", tmp_path / "all.graphml", all_edges=True)
    assert read_circuits(tmp_path / "all.graphml")[0].graph == c.graph


def test_networkx_reads_named_attributes_layers_and_labels(exported):
    import networkx as nx

    path, c = exported
    text = path.read_text()
    assert 'key="d0"' not in text and '<data key="kind">' in text
    G = nx.read_graphml(path)
    assert set(G.nodes) == {n.id for n in c.graph.circuit_nodes}
    assert G.number_of_edges() == len(c.graph.circuit_edges)
    for nid, data in G.nodes(data=True):
        assert NODE_ATTRS <= set(data), nid
    assert G.nodes["input"]["layer"] == -1 and G.nodes["logits"]["layer"] == c.graph.shape.n_layers
    assert G.nodes["a5.h2"]["role"] == "name mover" and G.nodes["a5.h2"]["label"] == "writes the IO name"
    assert G.nodes["m0"]["label"] == "m0"
    assert {d["qkv"] for _, _, d in G.edges(data=True) if "qkv" in d} <= {"q", "k", "v"}


def test_igraph_reads_named_attributes(exported):
    igraph = pytest.importorskip("igraph", reason="python-igraph is not installed (it is in the dev extra)")
    path, c = exported
    g = igraph.Graph.Read_GraphML(str(path))
    assert NODE_ATTRS | {"score", "head", "role"} <= set(g.vs.attributes())
    assert {"score", "qkv"} <= set(g.es.attributes())
    by_id = {v["id"]: v for v in g.vs}
    assert by_id["a5.h2"]["layer"] == 5 and by_id["a5.h2"]["head"] == 2
    assert by_id["logits"]["layer"] == c.graph.shape.n_layers
    assert g.ecount() == len(c.graph.circuit_edges)


def test_cytoscape_js_reads_named_attributes(exported):
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed; Cytoscape.js cannot be run")
    if not (JS / "node_modules" / "cytoscape-graphml").is_dir():
        pytest.skip("the Cytoscape.js packages are not installed: run `npm ci --prefix tests/js`")
    path, c = exported
    proc = subprocess.run([node, str(JS / "read_graphml.js"), str(path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout)
    nodes = {n["id"]: n for n in loaded["nodes"]}
    assert set(nodes) == {n.id for n in c.graph.circuit_nodes}
    assert all(NODE_ATTRS <= set(n) for n in nodes.values())
    assert (nodes["a5.h2"]["kind"], nodes["a5.h2"]["layer"], nodes["a5.h2"]["role"]) == ("attention", "5", "name mover")
    assert nodes["input"]["layer"] == "-1"
    edges = loaded["edges"]
    assert len(edges) == len(c.graph.circuit_edges)
    assert all("score" in e for e in edges) and {e["qkv"] for e in edges if "qkv" in e} <= {"q", "k", "v"}
