"""The published circuits shipped as data: content checked against the papers, and loading."""

from __future__ import annotations

import json

import pytest

from catalog.errors import FormatError
from catalog.provenance import SelectionRule, Source
from catalog.published import parse_published, published_circuits

WANG_IOI = {
    "name mover": {"a9.h9", "a10.h0", "a9.h6"},
    "negative name mover": {"a10.h7", "a11.h10"},
    "backup name mover": {"a10.h10", "a10.h6", "a10.h2", "a10.h1", "a11.h2", "a9.h7", "a9.h0",
                          "a11.h9"},
    "S-inhibition": {"a7.h3", "a7.h9", "a8.h6", "a8.h10"},
    "induction": {"a5.h5", "a5.h8", "a5.h9", "a6.h9"},
    "duplicate token": {"a0.h1", "a0.h10", "a3.h0"},
    "previous token": {"a2.h2", "a4.h11"},
}
MERULLO_SHARED = {"a15.h14", "a16.h15", "a17.h4", "a18.h5", "a19.h15", "a9.h3", "a6.h4"}


def by_name() -> dict:
    return {e.name: e.circuit for e in published_circuits()}


def by_role(circuit) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for node, roles in circuit.graph.roles().items():
        for role in roles.split("; "):
            out.setdefault(role, set()).add(node)
    return out


def test_ioi_is_wang_et_al_26_heads_in_7_classes():
    ioi = by_name()["ioi-wang2022"]
    assert (ioi.task, ioi.model) == ("ioi", "gpt2-small")
    assert by_role(ioi) == WANG_IOI
    assert len(ioi.graph.heads) == 26 and not ioi.graph.mlps
    assert {"input", "logits"} <= ioi.graph.component_ids()


def test_greater_than_has_year_heads_comparison_mlps_and_upstream():
    gt = by_role(by_name()["greater-than-hanna2023"])
    assert gt["attends to YY from the end"] == {"a5.h1", "a5.h5", "a6.h9", "a7.h10", "a8.h8",
                                                "a8.h11", "a9.h1"}
    assert gt["greater-than comparison"] == {"m8", "m9", "m10", "m11"}
    assert gt["upstream at YY"] == {"m0", "m1", "m2", "m3", "a0.h1", "a0.h3", "a0.h5"}


def test_docstring_heads_and_output_heads():
    doc = by_name()["docstring-heimersheim2023"]
    assert doc.model == "attn-only-4l"
    assert doc.graph.heads == {"a0.h2", "a0.h4", "a0.h5", "a1.h0", "a1.h2", "a1.h4", "a2.h0",
                               "a3.h0", "a3.h6"}
    assert by_role(doc)["argument mover (output)"] == {"a3.h0", "a3.h6"}


def test_merullo_circuits_share_movers_and_keep_task_specific_heads_apart():
    c = by_name()
    ioi, co = c["ioi-merullo2023"], c["colored-objects-merullo2023"]
    assert ioi.model == co.model == "gpt2-medium"
    assert ioi.graph.heads & co.graph.heads == MERULLO_SHARED
    assert ioi.graph.heads - co.graph.heads == {"a12.h3", "a13.h4", "a13.h13", "a19.h1"}
    assert co.graph.heads - ioi.graph.heads == {"a11.h6", "a11.h7", "a12.h15"}
    for circuit in (ioi, co):
        assert "low-confidence" in circuit.tags
        assert "LOW CONFIDENCE" in (circuit.provenance.notes or "")


def test_every_published_circuit_has_citation_and_given_selection():
    arxiv = {"ioi-wang2022": "2211.00593", "greater-than-hanna2023": "2305.00586",
             "ioi-merullo2023": "2310.08744", "colored-objects-merullo2023": "2310.08744",
             "docstring-heimersheim2023": "2304.14997"}
    entries = published_circuits()
    assert {e.name for e in entries} == set(arxiv)
    for e in entries:
        p = e.circuit.provenance
        assert p.source is Source.PUBLISHED
        assert p.selection is not None and p.selection.rule is SelectionRule.GIVEN
        assert f"arXiv:{arxiv[e.name]}" in (p.citation or "")
        assert p.source_sha256 == e.sha256 and len(e.sha256) == 64


def good_doc(**change) -> dict:
    doc = {"schema_version": 1, "name": "x", "task": "ioi", "model": "gpt2-small",
           "citation": "A (2020). T. arXiv:1", "arxiv": "1", "confidence": "high",
           "components": {"mover": ["a9.h9"]}, "other_nodes": ["input", "logits"]}
    doc.update(change)
    return {k: v for k, v in doc.items() if v is not None}


@pytest.mark.parametrize("doc, message", [
    (b"{not json", "not valid JSON"),
    (b"[]", "JSON object"),
    (good_doc(schema_version=2), "schema_version"),
    (good_doc(citation=None), "lacks citation"),
    (good_doc(confidence="medium"), "confidence"),
    (good_doc(model="no-such-model"), "no known shape"),
    (good_doc(components={"mover": ["a12.h0"]}), "out of range"),
    (good_doc(components={"mover": ["L9 H9 ?"]}), "not a component id"),
    (good_doc(edges=["a9.h9->input"]), "backwards"),
    (good_doc(class_edges=[{"from": "movers", "to": "logits"}], edges_source="x"), "Did you mean 'mover'"),
])
def test_malformed_published_file_is_a_format_error(doc, message):
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(FormatError, match=message):
        parse_published("bad.json", raw)


def test_a_well_formed_file_parses():
    entry = parse_published("ok.json", json.dumps(good_doc(edges=["a9.h9->logits"])).encode())
    assert entry.circuit.graph.roles() == {"a9.h9": "mover"}
    assert [e.id for e in entry.circuit.graph.circuit_edges] == ["a9.h9->logits"]
    assert "edges from the paper" in [a.value for a in entry.circuit.graph.annotations]
