"""Alembic owns the schema: one head, base -> head works on an empty database, the models match
the migrated DDL, and data written at revision N-1 reads back equal after upgrading."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from catalog.store import Added, Catalog
from catalog.store.engine import alembic_config, migrations_dir
from catalog.store.schema import metadata

HEAD = "0008"


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def test_one_head_and_a_linear_history():
    script = _scripts()
    assert script.get_heads() == [HEAD]
    assert [r.revision for r in script.walk_revisions()] == [f"{n:04d}" for n in range(int(HEAD), 0, -1)]


def test_revision_files_are_numbered_and_say_what_and_why():
    files = sorted((migrations_dir() / "versions").glob("*.py"))
    assert files, "no migration scripts found"
    for i, path in enumerate(files, start=1):
        assert re.fullmatch(rf"{i:04d}_[a-z0-9_]+\.py", path.name), path.name
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc.splitlines()[0]) > 20, f"{path.name} needs a docstring saying what and why"


def test_base_to_head_and_back_on_an_empty_database(catalog_url):
    cat = Catalog.open(catalog_url, check_schema=False)
    assert cat.current_revision() is None
    cat.upgrade()
    assert cat.current_revision() == HEAD
    with cat._db.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert cat.current_revision() is None
    cat.upgrade()
    assert cat.current_revision() == HEAD
    cat.close()


def test_models_match_the_migrated_schema(catalog):
    with catalog._db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def _old_run(cat: Catalog, status: str, error: str | None, started: datetime) -> int:
    """A run row as a store at revision 0001/0002 wrote it (no owner, no heartbeat)."""
    with cat._db.engine.begin() as conn:
        model_id = conn.execute(text("SELECT id FROM models ORDER BY id LIMIT 1")).scalar_one()
        task_id = conn.execute(text("SELECT id FROM tasks ORDER BY id LIMIT 1")).scalar_one()
        conn.execute(text(
            "INSERT INTO runs (model_id, task_id, status, started_at, finished_at, error, source, method_params, "
            "library_versions, created_by, created_at) VALUES (:m, :t, :status, :at, :fin, :error, 'discovery', "
            "'{}', '{}', 'test', :at)"),
            {"m": model_id, "t": task_id, "status": status, "at": started, "error": error,
             "fin": None if status == "running" else started})
        return int(conn.execute(text("SELECT max(id) FROM runs")).scalar_one())


@pytest.mark.parametrize("previous", ["0001", "0002", "0003", "0004"])
def test_data_written_at_the_previous_revision_reads_back_after_upgrade(catalog_url, hand_circuits, previous):
    old = Catalog.open(catalog_url, check_schema=False)
    old.upgrade(previous)
    ids = {k: old.add(c) for k, c in hand_circuits.items()}  # written by the store against the old tables
    long_ago = datetime(2026, 1, 1, tzinfo=timezone.utc)
    failed = _old_run(old, "failed", "killed", long_ago)
    running = _old_run(old, "running", None, long_ago)  # its process died long ago
    with old._db.engine.begin() as conn:  # a circuit that came from a run: the link must survive
        conn.execute(text("UPDATE circuits SET run_id = :r WHERE id = :c"), {"r": failed, "c": ids["ioi"]})
    old.upgrade()
    cat = Catalog.open(catalog_url)
    assert cat.current_revision() == HEAD
    for key, cid in ids.items():
        assert cat.get(cid) == replace(hand_circuits[key], id=cid, run_id=failed if key == "ioi" else None)
    assert cat.get_run(failed).error == "killed"
    assert cat.get_run(failed).circuit_ids == (ids["ioi"],)
    assert cat.get_run(failed).status == "failed" and not cat.get_run(failed).stale
    legacy = cat.get_run(running)
    assert (legacy.status, legacy.host, legacy.pid, legacy.heartbeat_at) == ("running", None, None, None)
    assert legacy.stale and legacy.state == "stale"  # no heartbeat since it started, long ago
    assert [c.component for c in cat.component_counts(kinds=["attention"]) if c.n_tasks == 2] == \
        ["a0.h0", "a1.h1", "a2.h2", "a2.h3"]
    # What 0003 adds works on the upgraded data: the new status, and deduplication.
    cat.interrupt_run(running, "terminated by SIGTERM")
    assert cat.get_run(running).status == "interrupted"
    first = cat.add_many([hand_circuits["ioi"]])
    assert cat.add_many([hand_circuits["ioi"]]) == [Added(id=first[0].id, duplicate=True)]
    old.close()
    cat.close()


def test_downgrade_from_head_keeps_interrupted_runs_as_failed(catalog_url, hand_circuits):
    cat = Catalog.open(catalog_url)
    run = cat.start_run(hand_circuits["ioi"].graph.shape, "ioi", hand_circuits["ioi"].provenance)
    cat.interrupt_run(run, "terminated by SIGHUP")
    with cat._db.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
    with cat._db.engine.connect() as conn:
        assert conn.execute(text("SELECT status, error FROM runs")).one() == ("failed", "terminated by SIGHUP")
    cat.close()


def test_a_greedy_selection_reads_back_and_older_rows_are_not_greedy(catalog_url, hand_circuits):
    from catalog.provenance import Selection

    circuit = hand_circuits["ioi"]
    cat = Catalog.open(catalog_url, check_schema=False)
    cat.upgrade("0006")
    before = cat.add(circuit)
    cat.upgrade()
    greedy = replace(circuit, name="grown", provenance=circuit.provenance.model_copy(
        update={"selection": Selection(rule="top-k", value=8, greedy=True)}))
    cid = cat.add(greedy)
    assert cat.get(cid).provenance.selection == Selection(rule="top-k", value=8, greedy=True)
    assert cat.get(before).provenance.selection == circuit.provenance.selection
    assert not cat.get(before).provenance.selection.greedy
    cat.close()


def test_circuits_stored_before_content_hashes_get_the_writers_hash_on_upgrade(catalog_url, hand_circuits):
    from catalog.formats.examples import toy_circuit
    from catalog.store.identity import content_hash

    imported = toy_circuit()  # scores, every kind of annotation, a group with members, a source file
    old = Catalog.open(catalog_url, check_schema=False)
    old.upgrade("0002")  # before revision 0003 added the content_hash column
    first, again = old.add(imported), old.add(imported)  # the same file imported twice, as 0002 allowed
    other = old.add(hand_circuits["gt"])
    old.upgrade()
    cat = Catalog.open(catalog_url)
    with cat._db.engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT id, content_hash FROM circuits")).all())
    assert stored == {first: content_hash(imported), again: None, other: content_hash(hand_circuits["gt"])}
    # Deduplication now finds the old circuits: importing either again stores nothing new.
    assert cat.add_many([imported, hand_circuits["gt"]]) == [Added(id=first, duplicate=True),
                                                             Added(id=other, duplicate=True)]
    old.close()
    cat.close()
