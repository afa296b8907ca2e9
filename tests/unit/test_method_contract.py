"""The method contract: every registered method keeps it, and nothing needs to know a method by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_discovery_fixtures import random_model, toy_dataset

from catalog.discovery import METHODS, Granularity, MethodInputs, MethodSpec, score
from catalog.discovery.contract import EdgeScores, NodeScores, SelectedCircuit, task_metric
from catalog.discovery.layout import Layout
from catalog.errors import DiscoveryError

ROOT = Path(__file__).resolve().parents[2]
_TYPES = {Granularity.NODE: NodeScores, Granularity.EDGE: EdgeScores, Granularity.CIRCUIT: SelectedCircuit}


def test_listing_methods_imports_no_torch():
    code = ("import sys; from catalog.discovery import METHODS; "
            "[s.summary for s in METHODS.values()]; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def _given(slug: str, m, tmp_path) -> dict:
    """What a method needs beyond its defaults: attribution graphs read a transcoder set, here a
    random one that fits the toy model."""
    if slug != "attribution-graph":
        return {}
    from catalog.transcoders.model import Transcoder, TranscoderSet

    torch.manual_seed(0)
    layers = [Transcoder(m.cfg.d_model, 32, 4) for _ in range(m.cfg.n_layers)]
    TranscoderSet(m.cfg.model_name, layers).save(tmp_path / "tc")
    return {"transcoders": str(tmp_path / "tc")}


@pytest.mark.parametrize("slug", sorted(METHODS))
def test_every_method_returns_its_declared_type(slug, tmp_path):
    spec = METHODS[slug]
    m = random_model(n_layers=1, n_heads=2, d_model=16, seed=1)
    ds = toy_dataset(n=3, t=5, seed=2)
    result = spec.load()(MethodInputs(m, ds, batch_size=3), **{**spec.defaults, **_given(slug, m, tmp_path)})
    assert isinstance(result, _TYPES[spec.granularity])
    layout = Layout.for_model(m)
    if isinstance(result, EdgeScores):
        assert len(result.values) == layout.n_sources
        assert all(len(row) == layout.n_destinations for row in result.values)
    if isinstance(result, NodeScores):
        assert set(result.values) == set(layout.sources[1:])


def test_a_method_returning_another_type_than_declared_is_an_error():
    wrong = MethodSpec("wrong", "EAP declared as node-level", Granularity.NODE, "catalog.discovery.methods.eap")
    m = random_model(n_layers=1, n_heads=2, d_model=16, seed=1)
    with pytest.raises(DiscoveryError, match="returned EdgeScores, not the NodeScores"):
        score(m, toy_dataset(n=3, t=5, seed=2), wrong)


def test_the_metric_given_is_the_metric_explained():
    """A metric that is the task metric times two doubles every score of every method."""
    m = random_model(n_layers=1, n_heads=2, d_model=16, seed=1)
    ds = toy_dataset(n=4, t=5, seed=3)
    for slug in ("activation-patching", "eap"):
        plain = score(m, ds, slug)
        doubled = score(m, ds, slug, metric=lambda part, logits: 2 * task_metric(part, logits))
        for a, b in zip(plain.nodes, doubled.nodes):
            if a.score is not None:
                assert b.score == pytest.approx(2 * a.score, rel=1e-4, abs=1e-7)


def test_no_caller_names_a_method():
    """The CLI, jobs and sweeps go through the registry: no method slug appears in their code."""
    for path in [*(ROOT / "cli").glob("*.py"), ROOT / "catalog" / "jobs.py", *(ROOT / "catalog" / "sweeps").glob("*.py")]:
        # doctest examples may name a method; code may not
        text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith(">>>"))
        for slug in METHODS:
            assert f'"{slug}"' not in text, (path.name, slug)
