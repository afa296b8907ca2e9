"""Property-based fuzzing through the command line: mutated files of every importable format,
generated arguments for every reading command, and circuits with hostile strings.

Properties: the exit code is 0 or 1 (2 for the CLI's own usage errors), never 70; after an exit
1 the catalog is unchanged; ``--json`` output is standard JSON; every circuit that imports also
exports in each format and reads back, and GraphML is always well-formed XML 1.0.

The example count is bounded for CI (``CATALOG_FUZZ_EXAMPLES``, default 25 here); a longer hunt
is ``CATALOG_FUZZ_EXAMPLES=2000 python -m pytest -m slow tests/cli/test_fuzz_cli.py``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.formats import read_circuits, write_circuit
from catalog.formats.examples import example_text, toy_circuit
from catalog.graph import Annotation, AnnotationKind, CircuitGraph
from catalog.provenance import Circuit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_fuzz_importers import DOCS, mutate  # noqa: E402  (one mutation engine for both suites)

FUZZ = settings(max_examples=int(os.environ.get("CATALOG_FUZZ_EXAMPLES", "25")), deadline=None,
                database=None, suppress_health_check=list(HealthCheck))


def _refuse(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """A catalog holding two imported circuits, built once; each example works on a copy."""
    from typer.testing import CliRunner

    from cli.app import app

    folder = tmp_path_factory.mktemp("fuzzcli")
    db = folder / "seed.db"
    for fmt in ("catalog-json", "eap-ig"):
        path = folder / f"ioi_{fmt}.json"
        path.write_text(example_text(fmt), encoding="utf-8")
        result = CliRunner().invoke(app, ["--db", str(db), "import", str(path)])
        assert result.exit_code == 0, result.stderr
    return db


class Fresh:
    """A copy of the seeded catalog and a runner bound to it."""

    def __init__(self, seed: Path, folder: Path) -> None:
        from typer.testing import CliRunner

        from cli.app import app

        self.db = folder / "catalog.db"
        for part in seed.parent.glob(seed.name + "*"):
            shutil.copyfile(part, folder / part.name.replace(seed.name, "catalog.db"))
        self._runner, self._app = CliRunner(), app

    def __call__(self, *args: object) -> Any:
        result = self._runner.invoke(self._app, ["--db", str(self.db), *map(str, args)])
        assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.stderr[-500:])
        assert "error: unexpected" not in result.stderr and "Traceback" not in result.stderr, result.stderr
        if result.exit_code == 0 and result.stdout.lstrip()[:1] in ("[", "{"):  # --json (unless an
            json.loads(result.stdout, parse_constant=_refuse)                # option took it as a value)
        return result

    def snapshot(self) -> dict[str, list[Any]]:
        con = sqlite3.connect(self.db)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"'))) for t in tables}
        finally:
            con.close()


def _fresh(seed: Path, tmp_path_factory) -> Fresh:
    return Fresh(seed, tmp_path_factory.mktemp("ex"))


def _exports_read_back(cli: Fresh, cid: int, folder: Path) -> None:
    for fmt in ("json", "graphml", "eap-ig"):
        out = folder / f"out.{fmt}"
        result = cli("export", cid, "-f", fmt, "-o", out)
        if result.exit_code != 0:  # e.g. a feature-level circuit has no EAP-IG form
            assert fmt == "eap-ig" and not out.exists(), result.stderr
            continue
        if fmt == "graphml":
            ET.parse(out)  # well-formed XML 1.0
        if fmt != "eap-ig":
            back = read_circuits(out)[0]
            assert back.name is not None or back.task


@pytest.mark.slow
@FUZZ
@given(data=st.data(), which=st.integers(0, len(DOCS) - 1), force=st.booleans(),
       top_k=st.none() | st.integers(-2, 6), tag=st.none() | st.text(max_size=8))
def test_importing_mutated_files(seeded, tmp_path_factory, data, which, force, top_k, tag):
    fmt, doc, kwargs = DOCS[which]
    cli = _fresh(seeded, tmp_path_factory)
    before = cli.snapshot()
    path = cli.db.parent / "ioi_mutant.json"
    path.write_text(json.dumps(mutate(data, doc), allow_nan=True), encoding="utf-8", errors="surrogatepass")
    args: list[object] = ["import", path]
    for key, value in kwargs.items():
        args += [f"--{key}", value]
    if force:
        args += ["--format", fmt.removesuffix("-legacy")]
    if top_k is not None:
        args += ["--top-k", top_k]
    if tag is not None:
        args += ["--tag", tag]
    result = cli(*args, "--json")
    if result.exit_code != 0:
        assert cli.snapshot() == before
        return
    for cid in json.loads(result.stdout)["ids"]:
        _exports_read_back(cli, cid, cli.db.parent)


_ARG = (st.sampled_from(["1", "2", "#1", "0", "-1", "ioi", "toy ioi", "a5.h2", "m0", "--json", "99999999999999999999999",
                         "9" * 400, "", " ", "\x1b[31m", "\u202e", "f3.1[\x1b]", "a0.h0@END", "L9H9"])
        | st.text(max_size=12) | st.integers(-(2**70), 2**70).map(str))


@pytest.mark.slow
@FUZZ
@given(command=st.sampled_from([["show"], ["export", "-f", "json"], ["export", "-f", "graphml"], ["compare"],
                                ["find"], ["list", "--task"], ["list", "--tag"], ["reuse", "--model"],
                                ["show", "--edges"], ["compare", "1", "--matched-k"], ["runs"]]),
       args=st.lists(_ARG, min_size=0, max_size=3), as_json=st.booleans())
def test_generated_arguments(seeded, tmp_path_factory, command, args, as_json):
    cli = _fresh(seeded, tmp_path_factory)
    before = cli.snapshot()
    cli(*command, *args, *(["--json"] if as_json and command[0] != "export" else []))
    assert cli.snapshot() == before  # reading commands never write


_HOSTILE = st.lists(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp", "Lu", "Nd", "Po"],
                                  exclude_characters="\x00")
                    | st.sampled_from(["\r", "\ufffe", "\uffff", "\\", "\\u0041", "\x1b]0;x\x07", "<", "&"]),
                    max_size=8).map("".join)


@FUZZ
@given(name=_HOSTILE, task=_HOSTILE.filter(str.strip), label=_HOSTILE.filter(str.strip), tag=_HOSTILE)
def test_graphml_is_well_formed_and_round_trips_any_string(name, task, label, tag):
    base = toy_circuit()
    g = base.graph
    anns = (*g.annotations, Annotation(AnnotationKind.LABEL, label, node="m0"))
    graph = CircuitGraph(g.shape, g.nodes, g.edges, anns)
    c = Circuit(graph=graph, task=task, provenance=base.provenance, name=name or None, tags=(tag,) if tag else ())
    buf = io.BytesIO()
    write_circuit(c, "graphml", buf, all_edges=True)
    ET.fromstring(buf.getvalue())  # well-formed XML 1.0, whatever the strings held
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    path = folder / f"fuzz-{os.getpid()}.graphml"
    path.write_bytes(buf.getvalue())
    try:
        back = read_circuits(path)[0]
    finally:
        path.unlink()
    assert (back.name, back.task, back.tags, back.graph) == (c.name, c.task, c.tags, c.graph)
