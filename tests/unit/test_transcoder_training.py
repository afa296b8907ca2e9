"""The transcoder trainer on the embedded model, for a few steps, and the labels it writes.

Small dictionaries (32 features) and short runs: the trainer is tested, not the shipped set.
"""

from __future__ import annotations

import json

import pytest
import torch

from catalog.transcoders.data import TokenStream
from catalog.transcoders.labels import TOP_TOKENS, feature_labels, token_text
from catalog.transcoders.model import Transcoder, TranscoderSet
from catalog.transcoders.train import measure, train_transcoders

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def loaded():
    from catalog.models import load_model

    return load_model(None, device="cpu")


@pytest.fixture(scope="module")
def trained(loaded):
    lines: list[str] = []
    tset = train_transcoders(loaded, features=32, k=4, steps=30, seed=3, batch_size=8, report=lines.append,
                             report_every=10, held_out_batches=2)
    return tset, lines


def test_training_lowers_the_unexplained_variance(loaded, trained):
    tset, lines = trained
    # the same held-out sequences, through untrained transcoders (seed 3's initialisation) and trained
    torch.manual_seed(3)
    untrained = TranscoderSet(loaded.name, [Transcoder(128, 32, 4) for _ in range(4)])
    for tc, trained_tc in zip(untrained.layers, tset.layers, strict=True):
        with torch.no_grad():
            tc.b_dec.copy_(trained_tc.b_dec)  # even at the trained bias, untrained features explain less
    before = measure(loaded.model, untrained, TokenStream(loaded.tokenizer, 99), batches=2, batch_size=8)
    after = measure(loaded.model, tset, TokenStream(loaded.tokenizer, 99), batches=2, batch_size=8)
    for b, a in zip(before, after, strict=True):
        assert a["fvu"] < b["fvu"], (b, a)
    assert [float(line.split()[-1]) for line in lines][-1] < 1.0  # layer 3's training FVU, last report


def test_provenance_is_complete(loaded, trained):
    tset, _ = trained
    c = tset.config
    assert c["model_revision"] == loaded.shape.revision
    assert len(c["data"]["sha256"]) == 64 and c["data"]["tokens"] > 0 and c["data"]["mix"]
    assert c["training"]["steps"] == 30 and c["training"]["seed"] == 3 and c["training"]["seconds"] > 0
    assert [f["layer"] for f in c["layers"]] == [0, 1, 2, 3]
    for f in c["layers"]:
        assert 0 < f["fvu"] < 2 and 0 <= f["dead_features"] <= 32 and 0 < f["l0"] <= 4


def test_same_seed_same_data_hash(loaded, trained):
    tset, _ = trained
    again = train_transcoders(loaded, features=32, k=4, steps=2, seed=3, batch_size=8, held_out_batches=1)
    other = train_transcoders(loaded, features=32, k=4, steps=2, seed=4, batch_size=8, held_out_batches=1)
    # the hash covers the token ids consumed: 2 steps of seed 3 are a prefix, not the same data
    assert again.config["data"]["sha256"] != tset.config["data"]["sha256"]
    assert again.config["data"]["sha256"] != other.config["data"]["sha256"]
    twice = train_transcoders(loaded, features=32, k=4, steps=2, seed=3, batch_size=8, held_out_batches=1)
    assert twice.config["data"]["sha256"] == again.config["data"]["sha256"]
    for a, b in zip(twice.layers, again.layers, strict=True):
        assert torch.equal(a.W_dec, b.W_dec)


def test_written_set_reloads_equal(loaded, trained, tmp_path):
    tset, _ = trained
    tset.labels = feature_labels(loaded, tset, seed=3, sequences=64)
    tset.save(tmp_path / "set")
    assert {p.name for p in (tmp_path / "set").iterdir()} == {"transcoders.safetensors", "config.json",
                                                              "labels.json"}
    back = TranscoderSet.load(tmp_path / "set")
    assert back.model == loaded.name and back.labels == tset.labels
    assert back.config["data"] == tset.config["data"] and back.config["layers"] == tset.config["layers"]
    x = torch.randn(5, 128)
    for a, b in zip(back.layers, tset.layers, strict=True):
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            assert torch.equal(getattr(a, name), getattr(b, name))
        assert torch.equal(a(x), b(x))


def test_jumprelu_trains_towards_k_active_features(loaded):
    tset = train_transcoders(loaded, features=32, k=4, steps=20, seed=0, batch_size=8, activation="jumprelu",
                             held_out_batches=2)
    for f in tset.config["layers"]:
        assert 0 < f["l0"] < 16 and f["fvu"] < 1.5
    assert float(tset.layers[0].threshold.min()) >= 0


def test_promoted_tokens_are_the_top_of_the_unembedded_decoder(loaded, trained):
    """Independently of `logit_effects`: push each decoder row through TransformerLens's own final
    LayerNorm and unembedding, minus what the norm's bias alone gives; the positive scale the norm
    divides by cannot change the order."""
    tset, _ = trained
    labels = feature_labels(loaded, tset, seed=3, sequences=32)
    model, tok = loaded.model, loaded.tokenizer
    with torch.no_grad():
        bias_only = model.unembed(model.ln_final.b[None, None].expand(1, 1, -1))[0, 0]
        for layer in (0, 3):
            rows = tset.layers[layer].W_dec[:, None, :]  # [F, 1, d]: one position per feature
            effect = model.unembed(model.ln_final(rows))[:, 0] - bias_only
            for f in range(0, 32, 5):
                record = labels[f"{layer}.{f}"]
                want = [token_text(tok, t) for t in effect[f].topk(TOP_TOKENS).indices.tolist()]
                assert [t for t, _ in record["promotes"]] == want
                worst = [token_text(tok, t) for t in (-effect[f]).topk(TOP_TOKENS).indices.tolist()]
                assert [t for t, _ in record["suppresses"]] == worst
                assert record["label"].endswith(" ".join(f"+{t}" for t in want[:3]))


def test_contexts_mark_a_token_the_feature_fires_on(loaded, trained):
    tset, _ = trained
    labels = feature_labels(loaded, tset, seed=3, sequences=32)
    active = [r for r in labels.values() if r["contexts"]]
    assert active, "no feature fired on 32 sequences"
    for r in active:
        assert all("[[" in c["text"] and c["text"].endswith("]]") and c["activation"] > 0 for c in r["contexts"])
        acts = [c["activation"] for c in r["contexts"]]
        assert acts == sorted(acts, reverse=True) and r["density"] > 0
    json.dumps(labels)  # stored as JSON
