"""Hostile files, odd stored rows and odd arguments: exit 0 or a clear exit 1, never 70 or a hang,
and one odd circuit never breaks the commands that list, show, compare or find the others."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from catalog.formats.examples import eap_ig_document, example_text

ROOT = Path(__file__).resolve().parents[2]


def _strict_json(text: str) -> Any:
    """Parse output as standard JSON: NaN and Infinity tokens are refused."""
    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def sqlite_cli(tmp_path, monkeypatch):
    """(invoke, db path) for a SQLite catalog the test may tamper with directly."""
    from typer.testing import CliRunner

    from cli.app import app

    monkeypatch.delenv("CATALOG_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    db = tmp_path / "catalog.db"
    runner = CliRunner()
    return (lambda *args: runner.invoke(app, ["--db", str(db), *map(str, args)])), db


def _odd_catalog(sqlite_cli, tmp_path) -> Any:
    """Five imported circuits, four then altered in the database as an older release could have
    left them: infinite/NaN metrics, metrics nested 950 and 5,000 levels deep, a group whose
    members are a 950-deep list, method parameters 950 levels deep."""
    cli, db = sqlite_cli
    good = tmp_path / "good.json"
    good.write_text(example_text("catalog-json"), encoding="utf-8")
    for i in range(5):
        assert cli("import", good, "--name", f"c{i}", "--allow-duplicate").exit_code == 0
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE circuits SET metrics = ? WHERE id = 1", ('{"faithfulness": 1e400, "cpr": NaN}',))
        con.execute("UPDATE circuits SET metrics = ? WHERE id = 2", ('{"d": ' + "[" * 950 + "]" * 950 + "}",))
        con.execute("UPDATE annotations SET members = ? WHERE circuit_id = 3 AND kind = 'group'",
                    ("[" * 950 + "]" * 950,))
        con.execute("UPDATE circuits SET method_params = ? WHERE id = 4", ('{"d": ' + "[" * 950 + "]" * 950 + "}",))
        con.execute("UPDATE circuits SET metrics = ? WHERE id = 5", ('{"d": ' + "[" * 5000 + "]" * 5000 + "}",))
    con.close()
    return cli


@pytest.mark.parametrize("args", [
    ("list",), ("list", "--json"), *[("show", str(i)) for i in range(1, 6)],
    *[("show", str(i), "--json") for i in range(1, 6)], ("compare", "1", "2"), ("compare", "3", "4", "--json"),
    ("compare", "2", "5"), ("find", "a5.h2"), ("find", "a5.h2", "--json"), ("reuse",), ("reuse", "--json"),
    ("export", "2", "-f", "graphml"), ("export", "3", "-f", "eap-ig"), ("export", "4", "-f", "json"),
])
def test_an_odd_stored_circuit_breaks_nothing(sqlite_cli, tmp_path, args):
    cli = _odd_catalog(sqlite_cli, tmp_path)
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    if "--json" in args:
        _strict_json(result.stdout)


def test_an_infinite_stored_metric_lists_as_null_and_exports_with_a_clear_error(sqlite_cli, tmp_path):
    cli = _odd_catalog(sqlite_cli, tmp_path)
    rows = _strict_json(cli("list", "--json").stdout)
    assert rows[0]["metrics"] == {"faithfulness": None, "cpr": None} and len(rows) == 5
    result = cli("export", "1", "-f", "json")
    assert result.exit_code == 1 and "finite" in result.stderr


@pytest.mark.parametrize("ref", ["99999999999999999999999", "9" * 5000, "#0", "-5", "0", "#-1"])
def test_odd_ids_are_a_clear_error(sqlite_cli, tmp_path, ref):
    cli, _ = sqlite_cli
    for args in (("show", ref), ("export", ref, "-f", "json"), ("compare", ref, ref), ("delete", ref, "-y")):
        result = cli(*args)
        assert result.exit_code in (1, 2), (args, result.stderr)  # 2: the CLI's own usage error
        assert "unexpected" not in result.stderr and len(result.stderr) < 600


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from cli.app import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_importing_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "ioi.json"
    os.mkfifo(fifo)
    proc = _run("--db", str(tmp_path / "c.db"), "import", str(fifo), timeout=60)
    assert proc.returncode == 1 and "named pipe" in proc.stderr, proc.stderr


@pytest.mark.parametrize("target,expect", [("/dev/null", "device"), (".", "folder"), ("", "No file given")])
def test_importing_what_is_not_a_regular_file_is_refused(sqlite_cli, target, expect):
    cli, _ = sqlite_cli
    result = cli("import", target)
    assert result.exit_code == 1 and expect in result.stderr, result.stderr


def test_a_huge_limit_does_not_preallocate(tmp_path, monkeypatch):
    """With the import limit raised to a terabyte, reading a small file allocates about the file."""
    import tracemalloc

    from catalog.formats import read_circuits

    monkeypatch.setenv("CATALOG_MAX_IMPORT_MB", str(1024 * 1024))
    path = tmp_path / "c.json"
    path.write_text(example_text("catalog-json"), encoding="utf-8")
    tracemalloc.start()
    try:
        read_circuits(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, peak


def test_a_huge_declared_shape_is_bounded_by_the_file(sqlite_cli, tmp_path):
    """A graph declaring 10,000 layers x 10,000 heads imports what the file holds; exporting the
    full implied EAP-IG graph (10^16 edges) is refused at once, not attempted."""
    cli, _ = sqlite_cli
    doc = eap_ig_document()
    doc["cfg"].update(n_layers=10_000, n_heads=10_000, d_model=None)
    path = tmp_path / "ioi_huge.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = cli("import", path, "--model", "my-huge-model")
    assert result.exit_code == 0, result.stderr
    result = cli("export", "1", "-f", "eap-ig")
    assert result.exit_code == 1 and "edges, over the" in result.stderr, result.stderr
