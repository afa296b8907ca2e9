"""Safe output: text from files never reaches the terminal as control characters, GraphML is
always well-formed XML 1.0 and gives every string back, and exports never write through a
planted symlink, a FIFO, a device or a folder."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from catalog.formats import read_circuits, write_circuit
from catalog.formats.examples import example_text, toy_circuit
from catalog.graph import Annotation, CircuitGraph
from catalog.provenance import Circuit

EVIL = "\x1b[31mred\x1b[0m\x1b]0;pwned\x07\u202eevil\x9b2J\r"
_RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]")


def _evil_circuit() -> Circuit:
    c = toy_circuit()
    g = c.graph
    anns = tuple(Annotation(a.kind, EVIL + a.value, a.node, a.members) for a in g.annotations)
    return Circuit(graph=CircuitGraph(g.shape, g.nodes, g.edges, anns), task="ioi" + EVIL,
                   provenance=c.provenance.model_copy(update={"notes": EVIL, "method": "eap" + EVIL}),
                   name="toy" + EVIL, tags=("t" + EVIL,), metrics=c.metrics)


@pytest.fixture
def evil(cli, catalog_with, toy_circuit):
    ids = catalog_with(_evil_circuit(), toy_circuit("ioi", ["a0.h0"], name="plain"))
    return cli, ids


@pytest.mark.parametrize("args", [("list",), ("show", "1"), ("show", "1", "--edges", "5"), ("compare", "1", "2"),
                                  ("find", "a5.h2"), ("reuse",), ("runs",), ("delete", "1")])
def test_text_from_files_is_escaped_in_every_human_readable_command(evil, args):
    cli, _ = evil
    result = cli(*args, input="n\n")
    text = result.stdout + result.stderr
    assert not _RAW.search(text), repr(text[:400])
    if args[0] in ("list", "show", "find"):
        assert "\\x1b[31mred" in text  # shown, visibly escaped


def test_error_messages_quoting_file_content_are_escaped(cli, tmp_path):
    bad = tmp_path / "ioi_x.json"
    doc = json.loads(example_text("eap-ig"))
    doc["nodes"]["z\x1b[2J"] = True
    bad.write_text(json.dumps(doc), encoding="utf-8")
    result = cli("import", bad)
    assert result.exit_code == 1 and not _RAW.search(result.stderr), repr(result.stderr)


def test_graphml_of_hostile_strings_is_well_formed_and_round_trips(tmp_path):
    c = _evil_circuit()
    c = Circuit(graph=c.graph, task=c.task + "\ufffe\uffff\\u0041", provenance=c.provenance,
                name=c.name + "\x01\\", tags=c.tags, metrics=c.metrics)
    path = tmp_path / "evil.graphml"
    write_circuit(c, "graphml", path, all_edges=True)
    ET.parse(path)  # well-formed XML 1.0
    back = read_circuits(path)[0]
    assert (back.name, back.task, back.tags, back.graph, back.provenance) == (c.name, c.task, c.tags, c.graph,
                                                                              c.provenance)
    assert "\r" in back.name  # a carriage return no longer comes back as a newline


@pytest.mark.parametrize("fmt", ["json", "graphml", "eap-ig"])
def test_export_never_follows_a_planted_symlink(cli, catalog_with, toy_circuit, tmp_path, fmt):
    catalog_with(toy_circuit("ioi", ["a0.h0"]))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out.file"
    for name in (f".{out.name}.part", f".{out.name}.tmp", f"{out.name}.part"):
        (tmp_path / name).symlink_to(victim)
    result = cli("export", "1", "-f", fmt, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert victim.read_text() == "precious" and out.is_file() and not out.is_symlink()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part") and not p.is_symlink()]


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "empty", "symlink-to-device"])
def test_export_refuses_targets_that_are_not_regular_files(cli, catalog_with, toy_circuit, tmp_path, kind):
    catalog_with(toy_circuit("ioi", ["a0.h0"]))
    if kind == "fifo":
        target = str(tmp_path / "pipe")
        os.mkfifo(target)
    elif kind == "device":
        target = os.devnull
    elif kind == "folder":
        target = str(tmp_path)
    elif kind == "empty":
        target = ""
    else:
        target = str(tmp_path / "link")
        os.symlink(os.devnull, target)
    result = cli("export", "1", "-f", "json", "-o", target)
    assert result.exit_code == 1, result.stderr
    assert "error:" in result.stderr and len(result.stderr.splitlines()) == 1
    assert os.path.exists(os.devnull) and Path(os.devnull).is_char_device()


def test_export_dash_is_standard_output(cli, catalog_with, toy_circuit):
    catalog_with(toy_circuit("ioi", ["a0.h0"]))
    result = cli("export", "1", "-f", "json", "-o", "-")
    assert result.exit_code == 0 and json.loads(result.stdout)["task"] == "ioi"
    assert not Path("-").exists()


def test_export_replaces_an_existing_file_whole(cli, catalog_with, toy_circuit, tmp_path):
    catalog_with(toy_circuit("ioi", ["a0.h0"]))
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "c.json.gz"
    out.write_bytes(b"old")
    assert cli("export", "1", "-f", "json", "-o", out).exit_code == 0
    assert read_circuits(out)[0].task == "ioi"
    assert sorted(p.name for p in folder.iterdir()) == ["c.json.gz"]


def test_reuse_plot_writes_atomically_and_refuses_a_fifo(cli, catalog_with, toy_circuit, tmp_path):
    pytest.importorskip("matplotlib")
    catalog_with(toy_circuit("ioi", ["a0.h0"]), toy_circuit("induction", ["a0.h0", "m1"]))
    fifo = tmp_path / "plot.png"
    os.mkfifo(fifo)
    result = cli("reuse", "--plot", fifo)
    assert result.exit_code == 1 and "named pipe" in result.stderr
    fifo.unlink()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / ".plot.png.part").symlink_to(victim)
    assert cli("reuse", "--plot", fifo).exit_code == 0
    assert victim.read_text() == "precious" and fifo.read_bytes()[:4] == b"\x89PNG"
