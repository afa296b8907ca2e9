"""Malformed files through the real `catalog import`: one clear line on stderr, exit code 1, no
traceback, and the catalog's content unchanged (its listing and every table's row count)."""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from catalog.formats.examples import circuit_tracer_document, eap_ig_document, example_text


def _eap(edit: Callable[[dict[str, Any]], Any]) -> bytes:
    doc = eap_ig_document()
    edit(doc)
    return json.dumps(doc, allow_nan=True).encode()


def _own(edit: Callable[[dict[str, Any]], Any]) -> bytes:
    doc = json.loads(example_text("catalog-json"))
    edit(doc)
    return json.dumps(doc, allow_nan=True).encode()


def _ct(edit: Callable[[dict[str, Any]], Any]) -> bytes:
    doc = circuit_tracer_document()
    edit(doc)
    return json.dumps(doc, allow_nan=True).encode()


def _set(d: dict[str, Any], key: str, value: Any) -> None:
    d[key] = value


def _cfg(**kw: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["cfg"].update(kw)


def _node(name: str, value: Any = True) -> Callable[[dict[str, Any]], None]:
    return lambda d: _set(d["nodes"], name, value)


def _edge(name: str, value: Any = None) -> Callable[[dict[str, Any]], None]:
    return lambda d: _set(d["edges"], name, value if value is not None else {"score": 1.0, "in_graph": True})


def _edge_score(score: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: _set(d["edges"], "input->m0", {"score": score, "in_graph": True})


def _duplicate_edge_text() -> bytes:
    text = example_text("eap-ig")
    return text.replace('"input->m0": ', '"input->m0": {"score": 9.0, "in_graph": true}, "input->m0": ', 1).encode()


def _torch_zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"cfg": {}}))
        z.writestr("archive/version", "3")
    return buf.getvalue()


def _drop_first_node(d: dict[str, Any]) -> None:
    d["nodes"].pop(next(k for k in d["nodes"] if k != "input"))


@dataclass
class Case:
    id: str
    file: str
    content: bytes | Callable[[], bytes]
    expect: str  # a fragment the one-line message must contain
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


CASES = [
    # damaged or not-a-circuit files
    Case("truncated-json", "ioi.json", lambda: example_text("eap-ig")[:5000].encode(), "not valid JSON"),
    Case("truncated-own-json", "c.json", lambda: example_text("catalog-json")[:-40].encode(), "not valid JSON"),
    Case("empty-file", "ioi.json", b"", "is empty"),
    Case("whitespace-only", "ioi.json", b" \n\t\n", "is empty"),
    Case("binary-file", "ioi.json", bytes(range(256)) * 4, "binary data"),
    Case("not-utf8", "ioi.json", '{"cfg": "caf\u00e9"}'.encode("latin-1"), "not UTF-8"),
    Case("plain-text", "ioi.txt", b"hello circuits", "neither JSON nor GraphML"),
    Case("json-array", "ioi.json", b"[1, 2, 3]", "Cannot tell the format"),
    Case("unknown-json-object", "ioi.json", b'{"hello": "world"}', "Cannot tell the format"),
    Case("deep-nesting", "ioi.json", b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    Case("pickle", "graph.pkl", lambda: pickle.dumps({"edges": [1, 2]}, protocol=4), "never unpickles"),
    Case("pickle-named-json", "ioi.json", lambda: pickle.dumps([1], protocol=2), "never unpickles"),
    Case("torch-file", "graph.pt", _torch_zip, "PyTorch file"),
    Case("not-gzip", "ioi.json.gz", lambda: example_text("eap-ig").encode(), "not gzip data"),
    Case("corrupt-gzip", "ioi.json.gz", b"\x1f\x8b\x08\x00" + b"garbage" * 20, "gzip"),
    Case("truncated-gzip", "ioi.json.gz", lambda: gzip.compress(example_text("eap-ig").encode())[:2000],
         "truncated or corrupt gzip"),
    Case("far-too-large", "ioi.json", lambda: example_text("eap-ig").encode(), "larger than the import limit",
         env={"CATALOG_MAX_IMPORT_MB": "0.01"}),
    Case("gzip-bomb", "ioi.json.gz", lambda: gzip.compress(b" " * 5_000_000 + b"{}"), "decompressed size",
         env={"CATALOG_MAX_IMPORT_MB": "1"}),
    # wrong or impossible --format
    Case("wrong-format", "ioi.json", lambda: example_text("eap-ig").encode(), "not a circuit-tracer graph",
         ("--format", "circuit-tracer")),
    Case("unknown-format", "ioi.json", lambda: example_text("eap-ig").encode(), "Unknown format 'eap_ig'",
         ("--format", "eap_ig")),
    Case("json-forced-graphml", "ioi.json", lambda: example_text("eap-ig").encode(), "cannot be graphml",
         ("--format", "graphml")),
    Case("own-json-forced-eap-ig", "c.json", lambda: example_text("catalog-json").encode(), "no 'cfg'",
         ("--format", "eap-ig")),
    # EAP-IG: cfg, names, ranges, scores, duplicates
    Case("cfg-layers-string", "ioi.json", lambda: _eap(_cfg(n_layers="6")), "cfg.n_layers must be a positive integer"),
    Case("cfg-heads-missing", "ioi.json", lambda: _eap(lambda d: d["cfg"].pop("n_heads")), "cfg.n_heads"),
    Case("cfg-layers-negative", "ioi.json", lambda: _eap(_cfg(n_layers=-6)), "cfg.n_layers"),
    Case("cfg-parallel-not-bool", "ioi.json", lambda: _eap(_cfg(parallel_attn_mlp="no")), "parallel_attn_mlp"),
    Case("cfg-unknown-model", "ioi.json", lambda: _eap(_cfg(d_model=96)), "Pass --model"),
    Case("model-disagrees-with-cfg", "ioi.json", lambda: example_text("eap-ig").encode(),
         "--model gpt2-small has 12 layers", ("--model", "gpt2-small")),
    Case("unknown-node", "ioi.json", lambda: _eap(_node("z9")), "'z9' is not in the graph its cfg implies"),
    Case("head-out-of-range", "ioi.json", lambda: _eap(_node("a0.h7")), "'a0.h7' is not in the graph"),
    Case("layer-out-of-range", "ioi.json", lambda: _eap(_node("m6")), "'m6' is not in the graph"),
    Case("edge-to-missing-node", "ioi.json", lambda: _eap(_drop_first_node), "which the file's nodes do not list"),
    Case("edge-unknown-endpoint", "ioi.json", lambda: _eap(_edge("input->a9.h0<q>")), "'a9.h0' is not in the graph"),
    Case("edge-backwards", "ioi.json", lambda: _eap(_edge("m3->a1.h0<q>")), "goes backwards"),
    Case("edge-into-head-without-qkv", "ioi.json", lambda: _eap(_edge("input->a2.h0")), "names no q, k or v"),
    Case("edge-name-garbage", "ioi.json", lambda: _eap(_edge("input=>m0")), "not an EAP-IG edge name"),
    Case("nan-score", "ioi.json", lambda: _eap(_edge_score(float("nan"))), "finite"),
    Case("infinite-score", "ioi.json", lambda: _eap(_edge_score(float("inf"))), "finite"),
    Case("string-score", "ioi.json", lambda: _eap(_edge_score("0.5")), "scores must be numbers"),
    Case("in-graph-not-bool", "ioi.json", lambda: _eap(_edge("input->m0", {"score": 1.0, "in_graph": "yes"})),
         "must be true or false"),
    Case("duplicate-edge", "ioi.json", _duplicate_edge_text, "appears twice"),
    Case("legacy-node-not-bool", "ioi.json", lambda: _eap(_node("a0.h0", "true")), "expected {\"in_graph\""),
    Case("no-task", "graph.json", lambda: example_text("eap-ig").encode(), "pass --task"),
    # catalog JSON
    Case("own-schema-too-new", "c.json", lambda: _own(lambda d: _set(d, "schema_version", 99)), "Upgrade"),
    Case("own-duplicate-node", "c.json", lambda: _own(lambda d: d["nodes"].append(d["nodes"][1])), "appears twice"),
    Case("own-edge-to-missing-node", "c.json",
         lambda: _own(lambda d: d["edges"].append({"src": "a1.h0", "dst": "logits"})), "not in the graph"),
    Case("own-head-out-of-range", "c.json", lambda: _own(lambda d: d["nodes"].append({"id": "a0.h9"})),
         "out of range"),
    Case("own-nan-metric", "c.json", lambda: _own(lambda d: _set(d["metrics"], "cpr", float("nan"))), "finite"),
    Case("own-no-provenance", "c.json", lambda: _own(lambda d: d.pop("provenance")), "provenance"),
    Case("own-bad-provenance", "c.json", lambda: _own(lambda d: _set(d["provenance"], "source", "magic")),
         "provenance is invalid"),
    # circuit-tracer
    Case("ct-unknown-feature-type", "g.json",
         lambda: _ct(lambda d: _set(d["nodes"][2], "feature_type", "bias")), "cannot place", ("--task", "t")),
    Case("ct-link-to-missing-node", "g.json",
         lambda: _ct(lambda d: d["links"].append({"source": "nope", "target": "7_42_2", "weight": 1.0})),
         "not among the nodes", ("--task", "t")),
    Case("ct-nan-weight", "g.json", lambda: _ct(lambda d: _set(d["links"][0], "weight", float("nan"))),
         "finite numbers", ("--task", "t")),
    Case("ct-duplicate-link", "g.json", lambda: _ct(lambda d: d["links"].append(dict(d["links"][0]))),
         "appears twice", ("--task", "t")),
    Case("ct-duplicate-node-id", "g.json", lambda: _ct(lambda d: d["nodes"].append(dict(d["nodes"][0]))),
         "appears twice", ("--task", "t")),
    Case("ct-layer-out-of-range", "g.json", lambda: _ct(lambda d: _set(d["nodes"][3], "layer", 40)),
         "out of range for gemma-2-2b", ("--task", "t")),
    Case("ct-bad-feature-code", "g.json", lambda: _ct(lambda d: _set(d["nodes"][2], "feature", 7)),
         "neither as a Cantor pairing", ("--task", "t")),
    Case("ct-unknown-model", "g.json", lambda: _ct(lambda d: _set(d["metadata"], "scan", "x/unknown")),
         "pass --model", ("--task", "t")),
    Case("ct-no-task", "graph.json", lambda: _ct(lambda d: d["metadata"].pop("slug")), "pass --task"),
    # GraphML
    Case("foreign-graphml", "g.graphml", b'<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
         b'<graph edgedefault="directed"><node id="a"/></graph></graphml>', "not written by circuit-catalog"),
    Case("truncated-graphml", "g.graphml", lambda: example_text("graphml")[:3000].encode(), "not readable GraphML"),
    Case("graphml-entities", "g.graphml",
         b'<?xml version="1.0"?><!DOCTYPE g [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
         b"<graphml>&b;</graphml>", "DOCTYPE"),
    # values no circuit holds: each used to end in an internal error (exit 70) or be stored
    Case("own-metric-1e400", "c.json", lambda: _own_text('"faithfulness": 0.875', '"faithfulness": 1e400'),
         "only finite numbers"),
    Case("own-metric-wider-than-64-bits", "c.json",
         lambda: _own_text('"faithfulness": 0.875', '"faithfulness": 123456789012345678901234567890'),
         "30 digits long"),
    Case("own-metric-5000-digits", "c.json", lambda: _own_text('"faithfulness": 0.875', '"faithfulness": ' + "9" * 5000),
         "5000 digits long"),
    Case("own-metric-int-over-int64", "c.json", lambda: _own(lambda d: _set(d["metrics"], "n", 2**64)),
         "wider than 64 bits"),
    Case("own-metrics-950-deep", "c.json", lambda: _own_text('"faithfulness": 0.875', '"deep": ' + "[" * 950 + "]" * 950),
         "nests"),
    Case("own-metrics-40-deep", "c.json", lambda: _own_text('"faithfulness": 0.875', '"deep": ' + "[" * 40 + "]" * 40),
         "nests deeper than 32"),
    Case("own-annotations-950-deep", "c.json",
         lambda: _own_text('"annotations": [', '"annotations": [' + "[" * 950 + "]" * 950 + ","), "nests"),
    Case("own-name-lone-surrogate", "c.json", lambda: _own_text('"toy ioi"', '"toy \\ud800 ioi"'), "lone UTF-16 surrogate"),
    Case("own-tag-lone-surrogate", "c.json", lambda: _own_text('"toy"', '"\\udfff"'), "lone UTF-16 surrogate"),
    Case("own-tag-over-long", "c.json", lambda: _own(lambda d: _set(d, "tags", ["t" * 201])), "at most 200"),
    Case("own-name-over-long", "c.json", lambda: _own(lambda d: _set(d, "name", "n" * 301)), "at most 300"),
    Case("own-task-over-long", "c.json", lambda: _own(lambda d: _set(d, "task", "t" * 201)), "at most 200"),
    Case("own-method-over-long", "c.json", lambda: _own(lambda d: _set(d["provenance"], "method", "m" * 101)),
         "at most 100"),
    Case("own-dataset-size-over-int32", "c.json",
         lambda: _own(lambda d: _set(d["provenance"], "dataset_size", 2**40)), "out of range"),
    Case("eap-score-1e400", "ioi.json", lambda: _eap_text('"score": 0.25', '"score": 1e400'), "only finite numbers"),
    Case("eap-cfg-layers-over-64-bits", "ioi.json", lambda: _eap(_cfg(n_layers=2**70)), "digits long"),
    Case("eap-infinity-token", "ioi.json", lambda: _eap_text('"score": 0.25', '"score": Infinity'), "not JSON"),
    Case("ct-supernodes-string", "g.json", lambda: _ct(lambda d: _set(d["qParams"], "supernodes", "abc")),
         "supernodes", ("--task", "t")),
    Case("ct-supernodes-object", "g.json", lambda: _ct(lambda d: _set(d["qParams"], "supernodes", {"a": 1})),
         "supernodes", ("--task", "t")),
    Case("ct-supernodes-number", "g.json", lambda: _ct(lambda d: _set(d["qParams"], "supernodes", 5)),
         "supernodes", ("--task", "t")),
    Case("ct-supernode-label-not-string", "g.json",
         lambda: _ct(lambda d: _set(d["qParams"], "supernodes", [[1, "3_1200_1"]])), "supernodes", ("--task", "t")),
    Case("ct-ctx-idx-over-64-bits", "g.json", lambda: _ct(lambda d: _set(d["nodes"][2], "ctx_idx", 2**80)),
         "digits long", ("--task", "t")),
    Case("ct-clerp-lone-surrogate", "g.json",
         lambda: _ct_text('"capital cities"', '"capital \\udbff cities"'), "lone UTF-16 surrogate", ("--task", "t")),
    Case("ct-node-id-over-long", "g.json", lambda: _ct(lambda d: _set(d["nodes"][0], "node_id", "E" * 201)),
         "at most 200", ("--task", "t")),
    Case("ct-clerp-not-text", "g.json", lambda: _ct(lambda d: _set(d["nodes"][2], "clerp", ["x"])),
         "clerp", ("--task", "t")),
    Case("graphml-deep-json-attribute", "g.graphml",
         lambda: _graphml_attr("metrics", "[" * 950 + "]" * 950), "nests"),
    Case("graphml-json-attribute-1e400", "g.graphml",
         lambda: _graphml_attr("metrics", '{"faithfulness": 1e400}'), "only finite numbers"),
    Case("graphml-json-attribute-huge-int", "g.graphml",
         lambda: _graphml_attr("metrics", '{"n": ' + "7" * 5000 + "}"), "5000 digits long"),
]


def _own_text(old: str, new: str) -> bytes:
    text = example_text("catalog-json")
    assert old in text
    return text.replace(old, new, 1).encode()


def _eap_text(old: str, new: str) -> bytes:
    text = example_text("eap-ig")
    assert old in text
    return text.replace(old, new, 1).encode()


def _ct_text(old: str, new: str) -> bytes:
    text = json.dumps(circuit_tracer_document())
    assert old in text
    return text.replace(old, new, 1).encode()


def _graphml_attr(key: str, value: str) -> bytes:
    """Our own GraphML with one JSON-valued graph attribute replaced by `value`."""
    import re
    from xml.sax.saxutils import escape

    text = example_text("graphml")
    key_id = re.search(rf'<key id="([^"]+)" for="graph" attr.name="{key}"', text)
    assert key_id, text[:2000]
    out, n = re.subn(rf'(<data key="{key_id.group(1)}">)[^<]*(</data>)',
                     lambda m: m.group(1) + escape(value) + m.group(2), text, count=1)
    assert n == 1
    return out.encode()


def test_the_table_is_large_enough():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


def _snapshot(cli, db: str) -> tuple[str, dict[str, int]]:
    listing = cli("list", "--json")
    assert listing.exit_code == 0, listing.stderr
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        counts = {t: con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()
    return listing.stdout, counts


def _runner(db: str) -> Callable[..., Any]:
    from typer.testing import CliRunner

    from cli.app import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["--db", db, *map(str, args)])


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory) -> tuple[Path, tuple[str, dict[str, int]]]:
    """A catalog that already holds one imported circuit, so 'unchanged' is not trivially true.
    Built (and migrated) once; each test works on its own copy."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CATALOG_DB", raising=False)
        folder = tmp_path_factory.mktemp("seeded")
        db = folder / "catalog.db"
        good = folder / "good_ioi.json"
        good.write_text(example_text("eap-ig"), encoding="utf-8")
        result = _runner(str(db))("import", good)
        assert result.exit_code == 0, result.stderr
        return db, _snapshot(_runner(str(db)), str(db))


@pytest.fixture
def seeded(seeded_db, tmp_path, monkeypatch):
    """(run the CLI on a fresh copy of the seeded catalog, its path, its snapshot)."""
    monkeypatch.delenv("CATALOG_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    db = tmp_path / "catalog.db"
    # the file and its WAL, if any; not the -shm index, which SQLite rebuilds and which vanishes
    # whenever the last connection to the seeded file closes
    for name in ("catalog.db", "catalog.db-wal"):
        try:
            shutil.copyfile(seeded_db[0].parent / name, tmp_path / name)
        except FileNotFoundError:
            if name == "catalog.db":
                raise
    return _runner(str(db)), str(db), seeded_db[1]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_changes_nothing(case, seeded, tmp_path, monkeypatch):
    cli, db, before = seeded
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "in" / case.file
    path.parent.mkdir()
    path.write_bytes(case.content() if callable(case.content) else case.content)
    result = cli("import", path, *case.args)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stderr.endswith("\n"), result.stderr
    assert lines[0].startswith("error: ")
    assert case.expect in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    monkeypatch.delenv("CATALOG_MAX_IMPORT_MB", raising=False)
    assert _snapshot(cli, db) == before


def test_missing_file_and_folder(seeded, tmp_path):
    cli, db, before = seeded
    for target, expect in ((tmp_path / "nope.json", "does not exist"), (tmp_path, "is a folder")):
        result = cli("import", target)
        assert result.exit_code == 1 and expect in result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert _snapshot(cli, db) == before


@pytest.mark.slow
def test_a_real_process_prints_one_line(tmp_path):
    """The installed entry point, not just the in-process runner: a pickle is refused cleanly."""
    bad = tmp_path / "graph.pt"
    bad.write_bytes(pickle.dumps({"x": 1}, protocol=4))
    proc = subprocess.run(
        [sys.executable, "-c", "from cli.app import main; main()", "--db", str(tmp_path / "c.db"),
         "import", str(bad)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "never unpickles" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
