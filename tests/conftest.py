"""Shared fixtures: a fresh catalog migrated to head (SQLite, and PostgreSQL when
``CATALOG_TEST_POSTGRES_URL`` is set), and small circuits whose overlaps are easy to compute by hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from catalog.graph import Annotation, AnnotationKind, CircuitGraph, Edge, ModelShape, Node
from catalog.provenance import Ablation, Circuit, Provenance, Selection, Source


@pytest.fixture(autouse=True)
def _terminal_width_as_in_a_plain_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist workers export COLUMNS=80, which the CLI honours like a user's setting; drop
    it so command output is the same under ``-n auto`` as in a plain run."""
    monkeypatch.delenv("COLUMNS", raising=False)

PG_ENV = "CATALOG_TEST_POSTGRES_URL"
TOY = ModelShape("toy-3l", n_layers=3, n_heads=4, d_model=16)
OTHER = ModelShape("toy-other", n_layers=2, n_heads=2, d_model=8)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """URL of a database that does not hold a catalog yet: a temp SQLite file, or a fresh
    PostgreSQL database (created on the server named by CATALOG_TEST_POSTGRES_URL, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL store tests need {PG_ENV} (run `. .ci/postgres.sh` to start a server and set it)")
    from catalog.store.testing import fresh_postgres_database

    with fresh_postgres_database(base) as url:
        yield url


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Any]:
    """A fresh, empty catalog migrated to head."""
    from catalog.store import Catalog

    cat = Catalog.open(catalog_url)
    yield cat
    cat.close()


def make_circuit(task: str, heads: list[str] = (), mlps: list[str] = (), *, shape: ModelShape = TOY,
                 name: str | None = None, tags: tuple[str, ...] = (), scores: dict[str, float] | None = None,
                 roles: dict[str, str] | None = None, scored_only: list[str] = (),
                 metrics: dict[str, Any] | None = None, method: str = "eap-ig") -> Circuit:
    """A circuit ``input -> c -> logits`` for each component c in `heads` + `mlps` (edges into heads
    read v). `scores[c]` is c's node score and the score of ``c -> logits`` (default 1.0).
    `scored_only` components get the same edges, scored but outside the circuit."""
    scores = scores or {}
    nodes = [Node.of("input"), Node.of("logits")]
    edges: list[Edge] = []
    for comp, member in [(c, True) for c in (*heads, *mlps)] + [(c, False) for c in scored_only]:
        s = scores.get(comp, 1.0)
        nodes.append(Node.of(comp, score=s, in_circuit=member))
        qkv = "v" if comp.startswith("a") else None
        edges.append(Edge("input", comp, qkv, 0.5, member))
        edges.append(Edge(comp, "logits", None, s, member))
    anns = tuple(Annotation(AnnotationKind.ROLE, r, node=n) for n, r in (roles or {}).items())
    prov = Provenance(
        source=Source.DISCOVERY, method=method, method_params={"steps": 5}, dataset_hash="abc123",
        dataset_size=64, seed=0, metric="logit-diff", ablation=Ablation.COUNTERFACTUAL,
        selection=Selection(rule="top-k", value=float(len(heads) + len(mlps))),
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
    )
    return Circuit(graph=CircuitGraph(shape, tuple(nodes), tuple(edges), anns), task=task, provenance=prov,
                   name=name, tags=tags, metrics=dict(metrics or {"faithfulness": 0.8}))


@pytest.fixture
def circuit_factory() -> Callable[..., Circuit]:
    """`make_circuit(task, heads, mlps, ...)`: see its docstring."""
    return make_circuit


@pytest.fixture
def toy_shape() -> ModelShape:
    """The 3-layer, 4-head model of `make_circuit`'s default circuits."""
    return TOY


@pytest.fixture
def other_shape() -> ModelShape:
    """A second model, for cross-model references."""
    return OTHER


@pytest.fixture
def hand_circuits() -> dict[str, Circuit]:
    """Three circuits on TOY whose overlaps are worked out by hand (input/logits left aside):

    - ``ioi``:  a0.h0 a1.h1 a2.h2 | m0          (4 components, 8 edges)
    - ``gt``:   a1.h1 a2.h2 a2.h3 | m0 m1       (5 components, 10 edges)
    - ``ind``:  a0.h0 a2.h3       |             (2 components)

    ioi & gt share a1.h1 a2.h2 m0: Jaccard 3/6, overlap coefficient 3/4; heads 2/4; MLPs 1/2;
    edges 6/12. ioi & ind share a0.h0; gt & ind share a2.h3. a1.h1 is a "name mover" in ioi.
    """
    return {
        "ioi": make_circuit("ioi", ["a0.h0", "a1.h1", "a2.h2"], ["m0"], name="ioi-toy",
                            roles={"a1.h1": "name mover", "a0.h0": "duplicate token"},
                            scores={"a0.h0": 0.9, "a1.h1": 2.0, "a2.h2": -0.5, "m0": 0.1},
                            scored_only=["a2.h3"]),
        "gt": make_circuit("gt", ["a1.h1", "a2.h2", "a2.h3"], ["m0", "m1"], name="gt-toy",
                           roles={"a2.h3": "amplifier"}, scores={"a1.h1": 1.0, "a2.h2": 0.5, "a2.h3": -3.0,
                                                                  "m0": 0.2, "m1": 1.5}, tags=("toy", "gt")),
        "ind": make_circuit("ind", ["a0.h0", "a2.h3"], [], name="ind-toy"),
    }
