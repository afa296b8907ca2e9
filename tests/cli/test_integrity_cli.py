"""The issue's examples through the command line: signals mid-import and mid-run, a run killed
without a word, importing twice, passwords in every URL form, newer, missing and read-only
catalogs. Each of these failed before (a partial import, a run left `running`, a duplicate, a
leaked password, exit 70, a created directory).

The file doubles as the worker script: ``python test_integrity_cli.py MODE ...``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))


def make_toy_circuit(task: str, heads: list[str], name: str | None = None):
    """input -> each head -> logits on a 2-layer toy model (what an import would store)."""
    from catalog.graph import CircuitGraph, ModelShape
    from catalog.provenance import Circuit, Provenance, Selection, Source

    edges = [e for h in heads for e in (("input", h, "v", 1.0), (h, "logits", None, 1.0))]
    graph = CircuitGraph.build(ModelShape("toy-2l", n_layers=2, n_heads=2, d_model=8),
                               ["input", *heads, "logits"], edges)
    prov = Provenance(source=Source.IMPORT, source_format="catalog-json", method="eap-ig",
                      selection=Selection(rule="top-k", value=len(edges)))
    return Circuit(graph=graph, task=task, provenance=prov, name=name)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(HERE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())


def _catalog_cli(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from cli.app import main; main()", *args],
                          capture_output=True, text=True, env=_env(), timeout=120, **kwargs)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, "worker never got there"
        time.sleep(0.05)


def _three_circuit_file(tmp_path: Path) -> Path:
    from catalog.formats.catalog_json import circuit_to_dict

    circuits = [make_toy_circuit(t, ["a0.h0", "a1.h1"], name=t) for t in ("ioi", "greater-than", "induction")]
    path = tmp_path / "three.json"
    path.write_text(json.dumps({"schema_version": 1, "circuits": [circuit_to_dict(c) for c in circuits]}))
    return path


# --- signals -----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, said", [(signal.SIGTERM, 143, "terminated by SIGTERM"),
                                             (signal.SIGHUP, 129, "terminated by SIGHUP"),
                                             (signal.SIGINT, 130, "interrupted by SIGINT")])
def test_a_signal_mid_import_rolls_the_whole_file_back(tmp_path, sig, code, said):
    from catalog.store import Catalog

    db, marker = tmp_path / "c.db", tmp_path / "first-added"
    Catalog.open(str(db)).close()
    proc = _spawn("slow-import", str(db), str(_three_circuit_file(tmp_path)), str(marker))
    _wait_for(marker, proc)  # the first circuit is written, the transaction still open
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().startswith(f"error: {said}") and "Traceback" not in err
    assert Catalog.open(str(db), create=False).circuits() == []  # none of the three


@pytest.mark.slow
@pytest.mark.parametrize("sig, reason", [(signal.SIGTERM, "terminated by SIGTERM"),
                                         (signal.SIGHUP, "terminated by SIGHUP")])
def test_a_signal_mid_discovery_marks_the_run_interrupted(tmp_path, sig, reason):
    from catalog.store import Catalog

    db, marker = tmp_path / "c.db", tmp_path / "running"
    proc = _spawn("slow-run", str(db), str(marker))
    _wait_for(marker, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    (run,) = Catalog.open(str(db)).list_runs()
    assert (run.status, run.error, run.stale) == ("interrupted", reason, False)
    shown = _catalog_cli("--db", str(db), "runs")
    assert "interrupted" in shown.stdout and reason in shown.stdout


@pytest.mark.slow
def test_a_run_killed_without_a_word_shows_as_stale_and_cleanup_fails_it(tmp_path):
    from catalog.store import Catalog

    db, marker = tmp_path / "c.db", tmp_path / "running"
    proc = _spawn("slow-run", str(db), str(marker))
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    listed = json.loads(_catalog_cli("--db", str(db), "runs", "--json").stdout)
    assert [(r["status"], r["stale"]) for r in listed] == [("running", True)]
    assert f"process {proc.pid}" in listed[0]["stale_reason"]
    assert "stale" in _catalog_cli("--db", str(db), "runs").stdout
    cleaned = _catalog_cli("--db", str(db), "runs", "--cleanup")
    assert cleaned.returncode == 0 and "marked failed" in cleaned.stdout
    (run,) = Catalog.open(str(db)).list_runs()
    assert run.status == "failed" and run.error.startswith("stale: its process") and not run.stale
    assert "no stale runs" in _catalog_cli("--db", str(db), "runs", "--cleanup").stdout


# --- deduplication -------------------------------------------------------------------------------------


def test_importing_the_same_file_twice_names_the_existing_circuits(cli, tmp_path):
    path = _three_circuit_file(tmp_path)
    first = cli("import", str(path), "--json")
    assert first.exit_code == 0, first.stderr
    ids = json.loads(first.stdout)["ids"]
    again = cli("import", str(path))
    assert again.exit_code == 0, again.stderr
    for cid in ids:
        assert f"already in the catalog as #{cid}" in again.stdout
    assert len(json.loads(cli("list", "--json").stdout)) == 3
    forced = json.loads(cli("import", str(path), "--allow-duplicate", "--json").stdout)
    assert forced["existing"] == [] and set(forced["ids"]).isdisjoint(ids)
    assert len(json.loads(cli("list", "--json").stdout)) == 6


def test_loading_published_circuits_twice_stores_them_once(cli):
    first = cli("published", "load")
    assert first.exit_code == 0 and "already" not in first.stdout
    again = cli("published", "load")
    assert again.exit_code == 0 and again.stdout.count("(already in the catalog)") == len(first.stdout.splitlines())
    assert len(json.loads(cli("list", "--json").stdout)) == len(first.stdout.splitlines())


# --- passwords, schema revisions, missing and read-only catalogs --------------------------------------


@pytest.mark.parametrize("url", [
    "postgresql://alice:s3cr3t@127.0.0.1:1/nothing",
    "postgresql://alice:s3cr@3t@127.0.0.1:1/nothing",
    "postgresql+psycopg://alice@127.0.0.1:1/nothing?password=s3cr3t",
    "postgresql://alice@127.0.0.1:1/nothing?sslmode=disable&password=s3cr3t",
    "not a url://alice:s3cr3t@host",
])
@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_no_password_in_any_url_form_reaches_the_user(url, debug):
    from typer.testing import CliRunner

    from cli.app import app

    result = CliRunner().invoke(app, [*debug, "--db", url, "list"])
    assert result.exit_code == 1
    out = result.stdout + result.stderr
    assert "s3cr" not in out and "3t@" not in out, out
    assert ("Traceback" in out) == bool(debug)


def test_db_upgrade_on_a_catalog_from_a_newer_version_exits_1_naming_both_revisions(cli, db):
    from sqlalchemy import text

    from catalog.store import Catalog

    cat = Catalog.open(db)
    with cat._db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    head = cat.head_revision()
    cat.close()
    for args in (["db", "upgrade"], ["list"]):
        result = cli(*args)
        assert result.exit_code == 1, result.stderr
        assert "0999" in result.stderr and head in result.stderr and "Upgrade circuit-catalog" in result.stderr


def test_read_commands_on_a_missing_catalog_say_so_and_create_nothing(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    for args in (["list"], ["show", "1"], ["runs"], ["find", "a0.h0"], ["compare", "1", "2"],
                 ["export", "1", "--format", "json"], ["db", "current"]):
        result = _catalog_cli("--db", str(missing), *args)
        assert result.returncode == 1 and "There is no catalog at" in result.stderr, (args, result.stderr)
    assert not (tmp_path / "no").exists()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare to mount a folder read-only")
def test_a_catalog_on_a_read_only_mount_can_be_read(tmp_path):
    from catalog.store import Catalog

    folder = tmp_path / "shared"
    folder.mkdir()
    cat = Catalog.open(str(folder / "c.db"))
    cid = cat.add(make_toy_circuit("ioi", ["a0.h0"], name="ro"))
    cat.close()
    for leftover in folder.glob("c.db-*"):  # copied onto the mount without them
        leftover.unlink()
    # The reader runs in its own mount namespace where the folder is a read-only bind mount:
    # a real read-only file system, which even root cannot write (file modes would not stop root).
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    reader = ["unshare", "-m", "sh", "-c", script, str(folder), sys.executable, "-c",
              "from cli.app import main; main()", "--db", str(folder / "c.db")]
    probe = subprocess.run([*reader, "--help"], capture_output=True, text=True, env=_env())
    if probe.returncode != 0:
        pytest.skip(f"cannot mount read-only here: {probe.stderr.strip()[-200:]}")
    listed = subprocess.run([*reader, "list", "--json"], capture_output=True, text=True, env=_env())
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [cid]
    shown = subprocess.run([*reader, "show", str(cid)], capture_output=True, text=True, env=_env())
    assert shown.returncode == 0 and "ro" in shown.stdout, shown.stderr
    deleted = subprocess.run([*reader, "delete", str(cid), "--yes"], capture_output=True, text=True, env=_env())
    assert deleted.returncode == 1 and "read-only" in deleted.stderr, deleted.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["c.db"]


# --- worker ----------------------------------------------------------------------------------------


def _main(argv: list[str]) -> None:
    from catalog import signals
    from catalog.store import Catalog

    mode = argv[0]
    if mode == "slow-import":  # `catalog import FILE`, slowed after its first circuit is written
        db, file, marker = argv[1:]
        insert = Catalog._insert

        def slow_insert(self, *args, **kwargs):
            cid = insert(self, *args, **kwargs)
            Path(marker).touch()
            time.sleep(60)
            return cid

        Catalog._insert = slow_insert
        sys.argv = ["catalog", "--db", db, "import", file]
        from cli.app import main

        main()
    elif mode == "slow-run":  # a discovery run that takes a minute, as the CLI would run it
        db, marker = argv[1:]
        signals.install()
        c = make_toy_circuit("ioi", ["a0.h0"])
        cat = Catalog.open(db)
        try:
            with cat.tracked_run(c.graph.shape, "ioi", c.provenance) as rid:
                Path(marker).touch()
                time.sleep(60)
                cat.finish_run(rid, c)
        except KeyboardInterrupt as e:
            sys.exit(getattr(e, "exit_code", 130))


if __name__ == "__main__":
    _main(sys.argv[1:])
