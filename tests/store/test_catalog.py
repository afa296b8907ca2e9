"""The store's CRUD, filters, reference resolution, transactions and error messages,
on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from catalog.errors import (
    AmbiguousReferenceError,
    InvalidInputError,
    NotFoundError,
    SchemaOutOfDateError,
    StoreUnavailableError,
)
from catalog.graph import Annotation, AnnotationKind, CircuitGraph, Edge, ModelShape, Node
from catalog.provenance import Circuit, Provenance, Selection, Source
from catalog.store import Catalog, resolve_url
from catalog.store.schema import AnnotationRow, CircuitRow, EdgeRow, ModelRow, NodeRow, TagRow, TaskRow


def _row_counts(cat: Catalog) -> dict[str, int]:
    with cat._db.session_scope() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t))
                for t in (CircuitRow, NodeRow, EdgeRow, AnnotationRow, TagRow, ModelRow, TaskRow)}


def test_get_round_trips_a_circuit_exactly(catalog, hand_circuits):
    for circuit in hand_circuits.values():
        cid = catalog.add(circuit)
        assert catalog.get(cid) == replace(circuit, id=cid)


def test_round_trip_keeps_features_positions_tokens_groups_and_provenance(catalog):
    shape = ModelShape("feat-model", n_layers=4, n_heads=2, d_model=32, revision="step-100",
                       parallel_attn_mlp=True)
    nodes = (Node.of("input@0", token=464), Node.of("f1.1200@0[clt]", score=0.25),
             Node.of("err2@0[clt]", score=-1e-9, in_circuit=False), Node.of("logits.t318@0", score=3.5))
    edges = (Edge("input@0", "f1.1200@0[clt]", None, 0.1), Edge("f1.1200@0[clt]", "logits.t318@0", None, 1 / 3),
             Edge("err2@0[clt]", "logits.t318@0", None, None, in_circuit=False))
    anns = (Annotation(AnnotationKind.LABEL, "capital cities", "f1.1200@0[clt]"),
            Annotation(AnnotationKind.GROUP, "supernode", None, ("f1.1200@0[clt]", "err2@0[clt]")),
            Annotation(AnnotationKind.CITATION, "Ameisen et al. 2025"))
    graph = CircuitGraph(shape, nodes, edges, anns)
    prov = Provenance(source=Source.IMPORT, source_format="circuit-tracer", source_file="/x/g.json",
                      source_sha256="ab" * 32, method="clt-attribution", method_params={"k": [1, 2.5], "x": None},
                      seed=2**40, selection=Selection(rule="threshold", value=0.8, absolute=False),
                      library_versions={"python": "3.11"}, created_by="someone",
                      created_at=datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5))),
                      citation="doi:10/x", notes="hand-checked")
    circuit = Circuit(graph, "capitals", prov, name="dallas", tags=("z", "a", "z"),
                      metrics={"faithfulness": 0.1 + 0.2, "faithfulness_curve": [[0.01, 0.5], [1.0, 1.0]]})
    cid = catalog.add(circuit)
    back = catalog.get(cid)
    assert back.graph == circuit.graph
    assert back.provenance == circuit.provenance
    assert (back.tags, back.metrics, back.name, back.task) == (circuit.tags, circuit.metrics, "dallas", "capitals")
    assert back.graph.shape == shape and back.graph.node("input@0").token == 464


def test_list_summaries_and_filters(catalog, hand_circuits, circuit_factory, other_shape):
    ids = {k: catalog.add(c) for k, c in hand_circuits.items()}
    other = catalog.add(circuit_factory("ioi", ["a1.h1"], shape=other_shape, method="eap", tags=("toy",)))
    rows = catalog.circuits()
    assert [r.id for r in rows] == [ids["ioi"], ids["gt"], ids["ind"], other]
    gt = rows[1]
    assert (gt.model, gt.task, gt.n_nodes, gt.n_edges, gt.n_heads, gt.n_mlps, gt.n_features) == \
        ("toy-3l", "gt", 7, 10, 3, 2, 0)
    assert rows[0].n_scored_edges == 10 and rows[0].n_edges == 8  # a2.h3 is scored, not in the circuit
    assert gt.tags == ("toy", "gt") and gt.metrics == {"faithfulness": 0.8}
    assert [r.id for r in catalog.circuits(model="toy-other")] == [other]
    assert [r.id for r in catalog.circuits(task="ioi")] == [ids["ioi"], other]
    assert [r.id for r in catalog.circuits(method="eap")] == [other]
    assert [r.id for r in catalog.circuits(tag="toy")] == [ids["gt"], other]
    assert [r.id for r in catalog.circuits(task="ioi", model="toy-3l")] == [ids["ioi"]]
    assert catalog.circuits(source="published") == []
    assert catalog.circuits(task="nope") == []
    assert catalog.tasks() == ["gt", "ind", "ioi"]
    assert [m.name for m in catalog.models()] == ["toy-3l", "toy-other"]


def test_resolve_ids_task_names_and_circuit_names(catalog, hand_circuits, circuit_factory, other_shape):
    first = catalog.add(hand_circuits["ioi"])
    newer = catalog.add(replace(hand_circuits["ioi"], name="ioi-v2"))
    assert catalog.resolve(str(first)) == first and catalog.resolve(f"#{newer}") == newer
    assert catalog.resolve("ioi") == newer  # a task name means its newest circuit
    assert catalog.resolve("ioi-toy") == first  # else a circuit name
    other = catalog.add(circuit_factory("ioi", ["a1.h1"], shape=other_shape))
    with pytest.raises(AmbiguousReferenceError) as err:
        catalog.resolve("ioi")
    assert f"#{newer} on toy-3l" in str(err.value) and f"#{other} on toy-other" in str(err.value)
    assert "--model" in str(err.value)
    assert catalog.resolve("ioi", model="toy-other") == other
    with pytest.raises(NotFoundError, match="Did you mean 'ioi'"):
        catalog.resolve("ioj")
    with pytest.raises(NotFoundError, match="No circuit #999"):
        catalog.resolve("999")
    with pytest.raises(NotFoundError, match="on model toy-3l"):
        catalog.resolve("gt", model="toy-3l")


def test_delete_removes_every_row_of_the_circuit(catalog, hand_circuits):
    keep = catalog.add(hand_circuits["gt"])
    before = _row_counts(catalog)
    gone = catalog.add(hand_circuits["ioi"])
    catalog.delete(gone)
    assert _row_counts(catalog) == {**before, "tasks": before["tasks"] + 1}  # the task name stays known
    with pytest.raises(NotFoundError, match="catalog list"):
        catalog.get(gone)
    with pytest.raises(NotFoundError):
        catalog.delete(gone)
    assert catalog.get(keep) == replace(hand_circuits["gt"], id=keep)


def test_a_failed_add_leaves_nothing(catalog, hand_circuits, monkeypatch):
    import catalog.store.writes as store

    def boom(*_a, **_k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "edge_rows", boom)  # fails after the circuit and node rows are written
    with pytest.raises(RuntimeError):
        catalog.add(hand_circuits["ioi"])
    monkeypatch.undo()
    bad = replace(hand_circuits["gt"], metrics={"faithfulness": float("nan")})
    with pytest.raises(InvalidInputError, match="finite"):
        catalog.add(bad)
    assert all(n == 0 for n in _row_counts(catalog).values())
    assert catalog.circuits() == []


def test_a_model_name_cannot_change_shape(catalog, hand_circuits, circuit_factory):
    catalog.add(hand_circuits["ind"])
    clash = circuit_factory("ioi", ["a0.h0"], shape=ModelShape("toy-3l", n_layers=3, n_heads=8, d_model=16))
    with pytest.raises(InvalidInputError, match="already in the catalog with 3 layers x 4 heads"):
        catalog.add(clash)
    assert len(catalog.circuits()) == 1


def test_runs_record_status_and_the_circuit(catalog, hand_circuits, toy_shape):
    circuit = hand_circuits["ioi"]
    rid = catalog.start_run(toy_shape, "ioi", circuit.provenance)
    run = catalog.get_run(rid)
    assert (run.status, run.task, run.model, run.finished_at, run.circuit_ids) == ("running", "ioi", "toy-3l", None, ())
    assert run.provenance == circuit.provenance
    cid = catalog.finish_run(rid, circuit)
    run = catalog.get_run(rid)
    assert run.status == "done" and run.circuit_ids == (cid,) and run.seconds is not None and run.seconds >= 0
    assert catalog.get(cid) == replace(circuit, id=cid, run_id=rid)
    with pytest.raises(InvalidInputError, match="already done"):
        catalog.fail_run(rid, "late")
    failed = catalog.start_run(toy_shape, "gt", circuit.provenance)
    catalog.fail_run(failed, "out of memory")
    assert (catalog.get_run(failed).status, catalog.get_run(failed).error) == ("failed", "out of memory")
    assert [r.id for r in catalog.list_runs(status="failed")] == [failed]
    assert [r.id for r in catalog.list_runs(task="ioi")] == [rid]
    assert len(catalog.circuits()) == 1  # the failed run stored nothing
    with pytest.raises(NotFoundError):
        catalog.get_run(999)
    with pytest.raises(InvalidInputError, match="running, done, failed, interrupted"):
        catalog.list_runs(status="finished")


def test_finish_run_is_one_transaction(catalog, hand_circuits, toy_shape):
    rid = catalog.start_run(toy_shape, "ioi", hand_circuits["ioi"].provenance)
    with pytest.raises(InvalidInputError):
        catalog.finish_run(rid, replace(hand_circuits["ioi"], metrics={"cpr": float("inf")}))
    assert catalog.get_run(rid).status == "running" and catalog.circuits() == []


def test_bad_ids_are_clear_errors(catalog):
    for bad in ("abc", "0", "-3", True):
        with pytest.raises(InvalidInputError, match="not a circuit id"):
            catalog.get(bad)


def test_an_old_schema_says_to_upgrade(catalog_url):
    old = Catalog.open(catalog_url, check_schema=False)
    old.upgrade("0001")
    assert old.current_revision() == "0001"
    with pytest.raises(SchemaOutOfDateError, match="catalog db upgrade"):
        Catalog.open(catalog_url)
    old.upgrade()
    assert Catalog.open(catalog_url).current_revision() == old.head_revision()
    old.close()


def test_a_new_database_is_migrated_on_open(catalog):
    assert catalog.current_revision() == catalog.head_revision()


def test_unusable_databases_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreUnavailableError):
        Catalog.open(str(junk))
    with pytest.raises(StoreUnavailableError, match="is a directory"):
        Catalog.open(str(tmp_path))
    import sqlite3

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(StoreUnavailableError, match="not a circuit-catalog database"):
        Catalog.open(str(foreign))


def test_passwords_never_appear_in_errors():
    with pytest.raises(StoreUnavailableError) as err:
        Catalog.open("postgresql://alice:s3cr3t-pw@127.0.0.1:1/nowhere")
    assert "s3cr3t-pw" not in str(err.value) and "***" in str(err.value)


def test_url_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("CATALOG_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_url() == f"sqlite:///{tmp_path / 'xdg' / 'circuit-catalog' / 'catalog.db'}"
    monkeypatch.setenv("CATALOG_DB", str(tmp_path / "env.db"))
    assert resolve_url() == f"sqlite:///{tmp_path / 'env.db'}"
    assert resolve_url(str(tmp_path / "explicit.db")) == f"sqlite:///{tmp_path / 'explicit.db'}"
    assert resolve_url("postgres://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    with pytest.raises(InvalidInputError, match="not a database URL"):
        resolve_url("nonsense://::")
    cat = Catalog.open()
    assert cat.url.endswith("env.db") and (tmp_path / "env.db").exists()


def test_position_resolved_nodes_round_trip_and_are_found_per_role_or_collapsed(catalog):
    shape = ModelShape("toy", n_layers=2, n_heads=2)
    nodes = (Node.of("a1.h0@END", score=0.5), Node.of("a1.h0@S2", score=0.25, in_circuit=False),
             Node.of("m0@S2", score=1.0), Node.of("a0.h1@S1+1", score=-0.1))
    circuit = Circuit(CircuitGraph(shape, nodes), "ioi", Provenance(source=Source.DISCOVERY))
    cid = catalog.add(circuit)
    back = catalog.get(cid)
    assert back.graph == circuit.graph
    assert back.graph.node("m0@S2").role == "S2"
    assert set(back.graph.position_roles()) == {"S1+1", "S2", "END"}
    assert [h.node_id for h in catalog.find("a1.h0@END")] == ["a1.h0@END"]
    assert [h.node_id for h in catalog.find("m0@S2")] == ["m0@S2"]
    assert catalog.find("a1.h0@S2") == []  # scored, but not in the circuit
    assert [h.node_id for h in catalog.find("a1.h0")] == ["a1.h0@END"]


def test_attention_patterns_are_kept_with_a_finished_run_only(catalog, hand_circuits):
    from catalog.attention import AttentionPatterns, PromptAttention

    c = hand_circuits["ioi"]
    patterns = AttentionPatterns(heads=("a1.h1",), prompts=(PromptAttention(
        prompt="A B C", tokens=("A", "B", "C"), read_position=2,
        heads={"a1.h1": ((1.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.125, 0.75, 0.125))}),))
    run = catalog.start_run(c.graph.shape, c.task, c.provenance)
    cid = catalog.finish_run(run, c, patterns)
    assert catalog.attention(cid) == patterns
    assert catalog.attention(cid).prompts[0].top("a1.h1", k=1) == [(1, "B", 0.75)]
    assert catalog.attention(catalog.add(hand_circuits["gt"])) is None
