"""Alembic owns the schema: one head, base -> head works on an empty database, the models match
the migrated DDL, and data written at revision N-1 reads back equal after upgrading."""

from __future__ import annotations

import ast
import re
from dataclasses import replace

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from catalog.store import Catalog
from catalog.store.engine import alembic_config, migrations_dir
from catalog.store.schema import metadata


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def test_one_head_and_a_linear_history():
    script = _scripts()
    assert script.get_heads() == ["0003"]
    assert [r.revision for r in script.walk_revisions()] == ["0003", "0002", "0001"]


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
    assert cat.current_revision() == "0003"
    with cat._db.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert cat.current_revision() is None
    cat.upgrade()
    assert cat.current_revision() == "0003"
    cat.close()


def test_models_match_the_migrated_schema(catalog):
    with catalog._db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_data_written_at_the_previous_revision_reads_back_after_upgrade(catalog_url, hand_circuits):
    old = Catalog.open(catalog_url, check_schema=False)
    old.upgrade("0001")
    ids = {k: old.add(c) for k, c in hand_circuits.items()}  # written by the store against 0001 tables
    run = old.start_run(hand_circuits["ioi"].graph.shape, "ioi", hand_circuits["ioi"].provenance)
    old.fail_run(run, "killed")
    old.upgrade()
    cat = Catalog.open(catalog_url)
    assert cat.current_revision() == "0003"
    for key, cid in ids.items():
        assert cat.get(cid) == replace(hand_circuits[key], id=cid)
    assert cat.get_run(run).error == "killed"
    assert [c.component for c in cat.component_counts(kinds=["attention"]) if c.n_tasks == 2] == \
        ["a0.h0", "a1.h1", "a2.h2", "a2.h3"]
    old.close()
    cat.close()
