"""The store under hostile use: one transaction per file, content-hash deduplication, runs that
tell the truth (interrupted, stale, cleaned up), driver errors translated, schema edge cases."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from catalog.errors import (
    InvalidInputError,
    NotFoundError,
    SchemaOutOfDateError,
    StoreUnavailableError,
)
from catalog.provenance import Source
from catalog.signals import Terminated
from catalog.store import Added, Catalog
from catalog.store.schema import CircuitRow, EdgeRow, NodeRow, RunRow


def _counts(cat: Catalog) -> tuple[int, int, int]:
    with cat._db.session_scope() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (CircuitRow, NodeRow, EdgeRow))


def _from_file(c, sha: str = "f" * 64):
    return replace(c, provenance=c.provenance.model_copy(update={"source": Source.IMPORT, "source_sha256": sha}))


# --- one writer, one transaction ------------------------------------------------------------------


def test_add_many_is_all_or_none(catalog, hand_circuits):
    good = list(hand_circuits.values())
    bad = replace(good[1], task=" ")  # refused by the store after the first circuit is written
    with pytest.raises(InvalidInputError):
        catalog.add_many([good[0], bad, good[2]])
    assert _counts(catalog) == (0, 0, 0)
    added = catalog.add_many(good)
    assert [a.duplicate for a in added] == [False] * 3
    assert [catalog.get(a.id) for a in added] == [replace(c, id=a.id) for c, a in zip(good, added)]


def test_an_interrupt_between_circuits_rolls_the_whole_file_back(catalog, hand_circuits, monkeypatch):
    insert = Catalog._insert
    calls = []

    def insert_then_signal(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Terminated(15)  # what catalog.signals raises on SIGTERM
        return insert(self, *args, **kwargs)

    monkeypatch.setattr(Catalog, "_insert", insert_then_signal)
    with pytest.raises(Terminated):
        catalog.add_many(list(hand_circuits.values()))
    assert _counts(catalog) == (0, 0, 0)


# --- deduplication by content -----------------------------------------------------------------------


def test_the_same_content_is_stored_once_and_names_the_existing_id(catalog, hand_circuits):
    ioi, gt = _from_file(hand_circuits["ioi"]), _from_file(hand_circuits["gt"])
    first = catalog.add_many([ioi, gt])
    renamed = replace(ioi, name="another name", tags=("x",))  # labels do not make it new
    again = catalog.add_many([renamed, gt, gt])
    assert again == [Added(id=first[0].id, duplicate=True), Added(id=first[1].id, duplicate=True),
                     Added(id=first[1].id, duplicate=True)]
    assert len(catalog.circuits()) == 2
    other_task = catalog.add_many([replace(ioi, task="ioi-2")])  # different content: new
    assert not other_task[0].duplicate
    deliberate = catalog.add_many([ioi], allow_duplicate=True)
    assert not deliberate[0].duplicate and deliberate[0].id not in {a.id for a in first}
    assert len(catalog.circuits()) == 4


def test_a_circuit_stored_without_a_hash_is_matched_and_given_one(catalog, hand_circuits):
    ioi = _from_file(hand_circuits["ioi"])
    old = catalog.add(ioi)  # as before revision 0003 (or a deliberate duplicate): no hash stored
    assert catalog.add_many([ioi]) == [Added(id=old, duplicate=True)]
    with catalog._db.session_scope() as s:
        assert s.scalar(select(CircuitRow.content_hash).where(CircuitRow.id == old)) is not None


def test_the_unique_constraint_backs_the_hash(catalog, hand_circuits):
    from catalog.errors import AlreadyExistsError

    ioi = _from_file(hand_circuits["ioi"])
    (first,) = catalog.add_many([ioi])
    with catalog._db.session_scope() as s:
        h = s.scalar(select(CircuitRow.content_hash).where(CircuitRow.id == first.id))
    with pytest.raises(AlreadyExistsError), catalog._db.session_scope(write=True) as s:
        catalog._insert(s, ioi, None, h)  # a writer that skipped the lookup still cannot duplicate


# --- runs ----------------------------------------------------------------------------------------


def test_tracked_run_records_failure_and_interruption_with_the_reason(catalog, hand_circuits):
    c = hand_circuits["ioi"]
    with pytest.raises(ZeroDivisionError), catalog.tracked_run(c.graph.shape, "ioi", c.provenance):
        raise ZeroDivisionError("boom")
    with pytest.raises(Terminated), catalog.tracked_run(c.graph.shape, "ioi", c.provenance):
        raise Terminated(1)  # SIGHUP
    with pytest.raises(KeyboardInterrupt), catalog.tracked_run(c.graph.shape, "ioi", c.provenance):
        raise KeyboardInterrupt
    with catalog.tracked_run(c.graph.shape, "ioi", c.provenance) as rid:
        cid = catalog.finish_run(rid, c)
    runs = catalog.list_runs()
    assert [(r.status, r.error) for r in runs] == [
        ("failed", "ZeroDivisionError: boom"), ("interrupted", "terminated by SIGHUP"),
        ("interrupted", "interrupted (Ctrl-C)"), ("done", None)]
    assert runs[-1].circuit_ids == (cid,)
    assert all(r.host and r.pid == os.getpid() and r.heartbeat_at and not r.stale for r in runs)


def test_heartbeat_keeps_a_long_run_fresh(catalog, hand_circuits):
    import time

    c = hand_circuits["ioi"]
    with catalog.tracked_run(c.graph.shape, "ioi", c.provenance, heartbeat_s=0.05) as rid:
        first = catalog.get_run(rid).heartbeat_at
        deadline = time.monotonic() + 10
        while catalog.get_run(rid).heartbeat_at == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert catalog.get_run(rid).heartbeat_at > first
        catalog.finish_run(rid, c)


def _set_owner(cat: Catalog, rid: int, host: str, pid: int, heartbeat: datetime) -> None:
    with cat._db.session_scope(write=True) as s:
        s.execute(RunRow.__table__.update().where(RunRow.id == rid)
                  .values(host=host, pid=pid, heartbeat_at=heartbeat))


def test_runs_whose_process_is_gone_are_stale_and_cleanup_fails_them(catalog, hand_circuits):
    from catalog.store.runs import this_host

    c = hand_circuits["ioi"]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    now = datetime.now(timezone.utc)
    same_host_dead = catalog.start_run(c.graph.shape, "ioi", c.provenance)
    _set_owner(catalog, same_host_dead, this_host(), int(dead.stdout), now)
    elsewhere_silent = catalog.start_run(c.graph.shape, "ioi", c.provenance)
    _set_owner(catalog, elsewhere_silent, "another-host", 4242, now - timedelta(hours=1))
    elsewhere_alive = catalog.start_run(c.graph.shape, "ioi", c.provenance)
    _set_owner(catalog, elsewhere_alive, "another-host", 4243, now)
    mine = catalog.start_run(c.graph.shape, "ioi", c.provenance)  # this process: alive

    states = {r.id: r.state for r in catalog.list_runs()}
    assert states == {same_host_dead: "stale", elsewhere_silent: "stale", elsewhere_alive: "running",
                      mine: "running"}
    assert [r.id for r in catalog.list_runs(status="stale")] == [same_host_dead, elsewhere_silent]
    assert "is gone" in catalog.get_run(same_host_dead).stale_reason
    assert "no heartbeat since" in catalog.get_run(elsewhere_silent).stale_reason

    cleaned = catalog.cleanup_runs()
    assert [(r.id, r.status) for r in cleaned] == [(same_host_dead, "failed"), (elsewhere_silent, "failed")]
    assert all(r.error.startswith("stale: ") for r in cleaned)
    assert {r.id: r.state for r in catalog.list_runs()}[mine] == "running"
    assert catalog.cleanup_runs() == []


# --- driver errors, passwords, schema and storage edge cases ----------------------------------------


def test_over_long_values_get_a_clear_error_not_a_driver_error(catalog, hand_circuits):
    c = hand_circuits["ioi"]
    for bad in (replace(c, tags=("t" * 5000,)), replace(c, name="n" * 5000), replace(c, task="k" * 5000)):
        with pytest.raises(InvalidInputError, match="Shorten") as info:
            catalog.add(bad)
        assert "psycopg" not in str(info.value) and "sqlalchemy" not in str(info.value).lower()
    assert _counts(catalog) == (0, 0, 0)


def test_driver_errors_from_bulk_copy_are_translated(catalog, hand_circuits, monkeypatch):
    from catalog.store import convert

    # Skip the store's own length check, as a value it does not know about would: PostgreSQL's
    # COPY then refuses it, and that raw driver error must still come out as the catalog's own.
    monkeypatch.setattr(convert, "check_lengths", lambda circuit: None)
    monkeypatch.setattr("catalog.store.writes.check_lengths", lambda circuit: None)
    bad = replace(hand_circuits["ioi"], tags=("t" * 201,))
    if catalog.backend == "sqlite":
        catalog.add(bad)  # SQLite does not enforce VARCHAR lengths: nothing to translate
        return
    with pytest.raises(InvalidInputError, match="Shorten"):
        catalog.add(bad)
    assert _counts(catalog) == (0, 0, 0)


@pytest.mark.parametrize("url", [
    "postgresql://alice:s3cret@127.0.0.1:1/nothing",
    "postgresql://alice:s3@cret@127.0.0.1:1/nothing",
    "postgresql+psycopg://alice@127.0.0.1:1/nothing?password=s3cret",
    "postgresql://alice:s3cret@127.0.0.1:1/nothing?password=s3cret&sslmode=disable",
    "postgresql://alice:s3/cret@127.0.0.1:1/nothing",
    "postgres://alice:s3%40cret@127.0.0.1:1/nothing",
])
def test_passwords_never_appear_in_errors(url):
    with pytest.raises(StoreUnavailableError) as info:
        Catalog.open(url)
    chain, exc = [], info.value
    while exc is not None:
        chain.append(str(exc) + repr(exc))
        exc = exc.__cause__ or exc.__context__
    text_ = "\n".join(chain)
    assert "s3" not in text_.replace("127.0.0.1", "") and "cret" not in text_


def test_a_newer_catalog_names_both_revisions(catalog_url):
    cat = Catalog.open(catalog_url)
    with cat._db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    for attempt in (lambda: Catalog.open(catalog_url), lambda: Catalog.open(catalog_url, check_schema=False).upgrade()):
        with pytest.raises(SchemaOutOfDateError) as info:
            attempt()
        message = str(info.value)
        assert "0999" in message and cat.head_revision() in message and "Upgrade circuit-catalog" in message
    cat.close()


def test_reading_a_missing_catalog_says_so_and_creates_nothing(tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "x.db"
    with pytest.raises(NotFoundError, match="no catalog at"):
        Catalog.open(str(target), create=False)
    assert not (tmp_path / "no").exists()
    Catalog.open(str(target)).close()  # writers still create it
    assert target.exists()


def test_a_read_only_catalog_can_be_read_not_written(tmp_path, hand_circuits, monkeypatch):
    path = tmp_path / "ro" / "c.db"
    cat = Catalog.open(str(path))
    cid = cat.add(hand_circuits["ioi"])
    cat.close()
    for leftover in path.parent.glob("c.db-*"):  # as copied onto a read-only mount
        leftover.unlink()
    before = path.read_bytes()
    real_access = os.access
    # Root ignores file modes, so the not-writable file and folder are told by os.access here;
    # tests/cli/test_integrity_cli.py checks a genuinely read-only folder as an ordinary user.
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode & os.W_OK else real_access(p, mode, **kw))
    ro = Catalog.open(str(path))
    assert ro.read_only
    assert ro.get(cid) == replace(hand_circuits["ioi"], id=cid)
    assert [r.id for r in ro.circuits()] == [cid]
    with pytest.raises(StoreUnavailableError, match="read-only"):
        ro.add(hand_circuits["gt"])
    with pytest.raises(StoreUnavailableError, match="read-only"):
        ro.upgrade()
    ro.close()
    assert path.read_bytes() == before


def test_ids_wider_than_any_database_integer_are_not_found(catalog):
    for ref in (2**63, "99999999999999999999999", "#99999999999999999999999"):
        with pytest.raises(NotFoundError, match="ids are at most"):
            catalog.get(ref)
        with pytest.raises(NotFoundError, match="ids are at most"):
            catalog.resolve(ref)
    with pytest.raises(NotFoundError, match="ids are at most"):
        catalog.delete(2**64)
    with pytest.raises(NotFoundError, match="ids are at most"):
        catalog.get_run(2**64)


def test_a_fifo_or_device_is_refused_as_a_catalog(tmp_path):
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    (tmp_path / "null.db").symlink_to("/dev/null")
    for path in (fifo, tmp_path / "null.db"):
        for create in (True, False):
            with pytest.raises(StoreUnavailableError, match="not a regular file"):
                Catalog.open(str(path), create=create)
