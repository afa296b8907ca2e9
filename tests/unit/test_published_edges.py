"""Published circuits carry the edges their papers describe, so their exports are connected graphs.

EAP-IG's `Graph.from_json` is re-implemented here from its documented format (FORMATS.md §1),
independently of the catalog's own reader, and must read every published circuit's export as a
non-empty graph with edges; the catalog's EAP-IG importer must read back the same edges.
"""

from __future__ import annotations

import io
import json

import networkx as nx
import pytest

from catalog.formats import read_circuits, write_circuit
from catalog.published import PAPER_EDGES, expand_class_edges, published_circuits

PUBLISHED = {e.name: e.circuit for e in published_circuits()}
# The docstring circuit's authors place these heads in the circuit but on none of its edges.
UNCONNECTED = {"docstring-heimersheim2023": {"a0.h2", "a0.h4", "a1.h0"}}


def eap_ig_from_json(doc: dict) -> tuple[set[str], set[str]]:
    """What EAP-IG's ``Graph.from_json`` keeps of a file: the names of the in-graph nodes and
    edges. Written from FORMATS.md: the full graph is rebuilt from ``cfg``, every name in the
    file must belong to it, node entries are indexed by ``in_graph`` and logits are skipped."""
    cfg = doc["cfg"]
    layers, heads, parallel = cfg["n_layers"], cfg["n_heads"], cfg["parallel_attn_mlp"]
    forward: list[str] = ["input"]
    for layer in range(layers):
        forward += [f"a{layer}.h{h}" for h in range(heads)] + [f"m{layer}"]
    graph_edges: set[str] = set()
    for i, dst in enumerate(forward + ["logits"]):
        if dst == "input":
            continue
        sources = forward[:i] if dst != "logits" else forward
        if parallel and dst.startswith("m"):  # a parallel MLP does not read its own layer's heads
            sources = [s for s in sources if not s.startswith(f"a{dst[1:]}.")]
        for src in sources:
            if dst.startswith("a"):
                if src.startswith("a") and src.split(".")[0] == dst.split(".")[0]:
                    continue  # heads of one layer do not read each other
                if src.startswith("m") and src[1:] == dst[1:].split(".")[0]:
                    continue  # nor the MLP after them
                graph_edges |= {f"{src}->{dst}<{x}>" for x in "qkv"}
            else:
                graph_edges.add(f"{src}->{dst}")
    nodes: set[str] = set()
    for name, entry in doc["nodes"].items():
        assert name in forward or name == "logits", name
        if name != "logits" and entry["in_graph"]:  # from_json indexes node["in_graph"]
            nodes.add(name)
    edges: set[str] = set()
    for name, entry in doc["edges"].items():
        assert name in graph_edges, name
        float(entry["score"])
        if entry["in_graph"]:
            edges.add(name)
    assert set(doc["edges"]) == graph_edges  # every edge of the full graph is listed
    return nodes, edges


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_circuit_has_paper_edges_and_is_connected(name):
    g = PUBLISHED[name].graph
    assert g.circuit_edges, name
    notes = [a.value for a in g.annotations if a.node is None and a.value.startswith(PAPER_EDGES)]
    assert len(notes) == 1 and len(notes[0]) > len(PAPER_EDGES) + 20
    G = g.to_networkx()
    loose = {n for n in G.nodes if G.degree(n) == 0}
    assert loose == UNCONNECTED.get(name, set())
    G.remove_nodes_from(loose)
    assert nx.is_weakly_connected(G)
    # every edge lies on a path from the input to the logits
    assert all(nx.has_path(G, "input", e.src) and nx.has_path(G, e.dst, "logits") for e in g.circuit_edges)


def test_ioi_edges_follow_the_papers_class_arrows():
    g = PUBLISHED["ioi-wang2022"].graph
    ids = {e.id for e in g.circuit_edges}
    assert {"a2.h2->a5.h5<k>", "a2.h2->a5.h5<v>",  # previous token -> induction (k, v)
            "a5.h5->a7.h3<v>", "a0.h1->a8.h10<k>",  # induction, duplicate token -> S-inhibition
            "a7.h3->a9.h9<q>", "a8.h10->a10.h7<q>", "a8.h6->a11.h9<q>",  # S-inhibition -> movers' queries
            "input->a9.h9<v>", "a9.h9->logits", "a10.h7->logits"} <= ids
    assert "a7.h3->a9.h9<v>" not in ids and "a2.h2->a5.h5<q>" not in ids
    assert not any(e.src == "a9.h9" and e.dst != "logits" for e in g.circuit_edges)  # no arrow out of movers
    # class sizes: 2 + 3 heads with q,k,v from input; 4 S-inhibition (q); 13 movers (k, v); ...
    assert len(ids) == 3 * 5 + 4 + 2 * 13 + 2 * 2 * 4 + 2 * (4 + 3) * 4 + 13 * 4 + 13


def test_docstring_edges_are_the_authors_edge_list():
    g = PUBLISHED["docstring-heimersheim2023"].graph
    ids = {e.id for e in g.circuit_edges}
    assert len(ids) == 24
    assert {"a1.h4->a3.h0<q>", "a2.h0->a3.h6<k>", "a1.h2->a3.h0<k>", "input->a3.h6<v>", "a3.h0->logits"} <= ids


def test_class_arrows_expand_forward_only_and_refuse_unknown_classes():
    from catalog.errors import InvalidInputError

    roles = {"early": ["m0", "a1.h0", "m2"]}
    within = {e.id for e in expand_class_edges([{"from": "early", "to": "early", "qkv": "k"}], roles)}
    assert within == {"m0->a1.h0<k>", "m0->m2", "a1.h0->m2"}
    with pytest.raises(InvalidInputError, match="Did you mean 'early'"):
        expand_class_edges([{"from": "eraly", "to": "logits"}], roles)
    with pytest.raises(InvalidInputError, match="q, k, v"):
        expand_class_edges([{"from": "early", "to": "logits", "qkv": "x"}], roles)


# GPT-2's full EAP-IG graphs have 32,491 (small) and 246,000-odd (medium) edges: slow to write.
FAST = "docstring-heimersheim2023"


@pytest.mark.parametrize("name", [n if n == FAST else pytest.param(n, marks=pytest.mark.slow) for n in sorted(PUBLISHED)])
def test_eap_ig_reads_every_published_export_as_a_graph_with_edges(name, tmp_path):
    c = PUBLISHED[name]
    buf = io.StringIO()
    write_circuit(c, "eap-ig", buf)
    nodes, edges = eap_ig_from_json(json.loads(buf.getvalue()))
    assert edges == {e.id for e in c.graph.circuit_edges} and len(edges) > 0
    assert nodes == {n.id for n in c.graph.circuit_nodes if n.id != "logits"}
    path = tmp_path / f"{name}.json"
    path.write_text(buf.getvalue())
    (back,) = read_circuits(path, format="eap-ig", task=c.task)
    assert {e.id for e in back.graph.circuit_edges} == edges


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_graphml_export_of_a_published_circuit_is_connected_and_marks_paper_edges(name, tmp_path):
    c = PUBLISHED[name]
    path = tmp_path / f"{name}.graphml"
    write_circuit(c, "graphml", path)
    G = nx.read_graphml(path)
    assert G.number_of_edges() == len(c.graph.circuit_edges)
    assert {d.get("origin") for _, _, d in G.edges(data=True)} == {"paper"}
    G.remove_nodes_from(UNCONNECTED.get(name, set()))
    assert nx.is_weakly_connected(G)
