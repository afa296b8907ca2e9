"""compare, reuse and find on circuits whose overlap is computed by hand."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def two(catalog_with, toy_circuit) -> list[int]:
    """A: heads a0.h0 a1.h1, MLP m0 (6 edges); B: heads a1.h1 a1.h0, MLPs m0 m1 (8 edges).

    Shared: a1.h1 and m0, and the 4 edges through them.
    """
    a = toy_circuit("ioi", ["a0.h0", "a1.h1"], ["m0"], roles={"a1.h1": "mover"}, name="A",
                    scores={"a1.h1": 3.0, "a0.h0": 0.1, "m0": 0.2})
    b = toy_circuit("induction", ["a1.h1", "a1.h0"], ["m0", "m1"], roles={"a1.h1": "induction"},
                    name="B", scores={"a1.h0": 5.0, "m1": 0.1})
    return catalog_with(a, b)


def test_compare_json_has_the_hand_computed_overlaps(cli, two):
    out = cli("compare", *two, "--json")
    assert out.exit_code == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["nodes"] == {"size_a": 3, "size_b": 4, "shared": 2, "jaccard": 0.4,
                          "overlap": pytest.approx(2 / 3)}
    assert (r["heads"]["jaccard"], r["heads"]["overlap"]) == (pytest.approx(1 / 3), 0.5)
    assert (r["mlps"]["jaccard"], r["mlps"]["overlap"]) == (0.5, 1.0)
    assert (r["edges"]["shared"], r["edges"]["jaccard"]) == (4, 0.4)
    shared = {c["id"]: (c["role_a"], c["role_b"]) for c in r["shared"]}
    assert shared == {"a1.h1": ("mover", "induction"), "m0": (None, None)}
    assert {c["id"] for c in r["only_a"]} == {"a0.h0"}
    assert {c["id"] for c in r["only_b"]} == {"a1.h0", "m1"}


def test_compare_by_task_name_and_human_output(cli, two):
    out = cli("compare", "ioi", "induction")
    assert out.exit_code == 0, out.stderr
    text = out.stdout
    assert "A: circuit" in text and "B: circuit" in text
    assert "0.400" in text and "shared (2)" in text and "a1.h1" in text and "mover / induction" in text


def test_compare_matched_size(cli, two):
    r = json.loads(cli("compare", *two, "--matched-k", "2", "--json").stdout)
    m = r["matched"]
    assert m["k"] == 2 and m["unit"] == "edges"
    # top-2 edges by |score|, ties broken by edge key: A keeps a1.h1->logits (3.0) and
    # input->a0.h0<v>; B keeps a1.h0->logits (5.0) and a1.h1->logits. They share a1.h1->logits,
    # and of the nodes a1.h1, out of a0.h0, a1.h0 and a1.h1.
    assert (m["edges"]["size_a"], m["edges"]["size_b"], m["edges"]["shared"]) == (2, 2, 1)
    assert [c["id"] for c in m["shared"]] == ["a1.h1"]
    assert m["nodes"]["jaccard"] == pytest.approx(1 / 3)


def test_compare_across_models_is_refused(cli, catalog_with, toy_circuit):
    from dataclasses import replace

    from catalog.graph import CircuitGraph, ModelShape

    other = toy_circuit("ioi", ["a0.h0"])
    shape = ModelShape("toy-other", n_layers=2, n_heads=2)
    other = replace(other, graph=CircuitGraph(shape, other.graph.nodes, other.graph.edges))
    ids = catalog_with(toy_circuit("ioi", ["a0.h0"]), other)
    out = cli("compare", *ids)
    assert out.exit_code == 1 and "same model" in out.stderr
    ambiguous = cli("compare", "ioi", "ioi")
    assert ambiguous.exit_code == 1 and "toy-2l" in ambiguous.stderr and "toy-other" in ambiguous.stderr


def test_reuse_counts_tasks_and_draws_the_heatmap(cli, two, tmp_path):
    png = tmp_path / "reuse.png"
    out = cli("reuse", "--plot", png, "--json")
    assert out.exit_code == 0, out.stderr
    r = json.loads(out.stdout)
    counts = {c["component"]: c["n_tasks"] for c in r["components"]}
    assert counts == {"a0.h0": 1, "a1.h1": 2, "a1.h0": 1, "m0": 2, "m1": 1}
    assert r["tasks"] == ["induction", "ioi"]
    assert r["shared"] == [[4, 2], [2, 3]]
    assert png.read_bytes().startswith(b"\x89PNG")
    text = cli("reuse").stdout
    assert "a1.h1" in text and "induction, ioi" in text


def test_find_accepts_peer_spellings(cli, two):
    for spelling in ("a1.h1", "A1.1", "L1H1", "blocks.1.attn.hook_result[1]"):
        hits = json.loads(cli("find", spelling, "--json").stdout)
        assert sorted((h["circuit_name"], h["role"]) for h in hits) == [("A", "mover"),
                                                                        ("B", "induction")]
    text = cli("find", "m1").stdout
    assert "B" in text and "induction" in text
    none = cli("find", "a0.h1")
    assert none.exit_code == 0 and "no circuit contains" in none.stdout
    bad = cli("find", "not-a-component")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ")


def test_published_load_is_idempotent_and_comparable(cli):
    first = json.loads(cli("published", "load", "--json").stdout)
    again = json.loads(cli("published", "load", "--json").stdout)
    assert [r["id"] for r in first] == [r["id"] for r in again]
    assert len(json.loads(cli("list", "--json").stdout)) == len(first) == 5
    one = json.loads(cli("published", "load", "ioi-wang2022", "--json").stdout)
    assert [r["name"] for r in one] == ["ioi-wang2022"]
    r = json.loads(cli("compare", "ioi", "colored-objects", "--model", "gpt2-medium",
                       "--json").stdout)
    assert (r["heads"]["shared"], r["heads"]["size_a"], r["heads"]["size_b"]) == (7, 11, 10)
    hits = json.loads(cli("find", "a0.h1", "--model", "gpt2-small", "--json").stdout)
    assert {(h["task"], h["role"]) for h in hits} == {("ioi", "duplicate token"),
                                                     ("greater-than", "upstream at YY")}
    unknown = cli("published", "load", "ioi-wang")
    assert unknown.exit_code == 1 and "ioi-wang2022" in unknown.stderr
