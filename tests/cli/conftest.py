"""Fixtures for command-line tests: a fresh catalog file per test and a runner bound to it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import CliRunner, Result

from catalog.graph import Annotation, AnnotationKind, CircuitGraph, ModelShape
from catalog.provenance import Circuit, Provenance, Selection, Source

TOY = ModelShape("toy-2l", n_layers=2, n_heads=2, d_model=8)

Invoke = Callable[..., Result]


@pytest.fixture
def db(catalog_url, tmp_path, monkeypatch) -> str:
    """URL of a catalog that does not exist yet: a SQLite file, and a fresh PostgreSQL database
    when CATALOG_TEST_POSTGRES_URL is set (`catalog_url`, tests/conftest.py). $CATALOG_DB is
    cleared and the default location moved into the test's folder, so nothing leaks in."""
    monkeypatch.delenv("CATALOG_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return catalog_url


@pytest.fixture
def cli(db) -> Invoke:
    """Run `catalog --db DB ARGS...` in-process; returns the click Result (stdout/stderr apart)."""
    from cli.app import app

    runner = CliRunner()

    def invoke(*args: object, input: str | None = None) -> Result:
        return runner.invoke(app, ["--db", db, *map(str, args)], input=input)

    return invoke


def make_toy_circuit(task: str, heads: list[str], mlps: list[str] = (), scores: dict[str, float] | None = None,
                roles: dict[str, str] | None = None, name: str | None = None,
                tags: tuple[str, ...] = ()) -> Circuit:
    """A circuit on a 2-layer, 2-head toy model: input -> each component -> logits.

    Edge scores default to 1.0; `scores` maps a component to the score of its edge into logits.
    """
    scores = scores or {}
    comps = list(heads) + list(mlps)
    edges = []
    for c in comps:
        edges.append(("input", c, "v" if c.startswith("a") else None, 1.0))
        edges.append((c, "logits", None, scores.get(c, 1.0)))
    anns = [Annotation(AnnotationKind.ROLE, r, node=n) for n, r in (roles or {}).items()]
    graph = CircuitGraph.build(TOY, ["input", *comps, "logits"], edges, annotations=anns)
    prov = Provenance(source=Source.IMPORT, source_format="catalog-json", method="eap-ig",
                      selection=Selection(rule="top-k", value=len(edges)))
    return Circuit(graph=graph, task=task, provenance=prov, name=name, tags=tags)


@pytest.fixture
def toy_circuit() -> Callable[..., Circuit]:
    """`make_toy_circuit`, for tests to build small circuits with."""
    return make_toy_circuit


@pytest.fixture
def catalog_with(db):
    """Add circuits to the test's catalog through the store; returns their ids."""
    from catalog.store import Catalog

    def add(*circuits: Circuit) -> list[int]:
        cat = Catalog.open(db)
        return [cat.add(c) for c in circuits]

    return add
