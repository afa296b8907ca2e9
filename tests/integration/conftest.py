"""Fixtures for the model tests: a tiny GPT-2 saved in Hugging Face format, built offline."""

from __future__ import annotations

from pathlib import Path

import pytest

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="session")
def tiny_hf_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer GPT-2 (random weights, seeded) with a word-level tokenizer, saved with
    ``save_pretrained`` into a folder, exactly as a downloaded model is laid out."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    from catalog.models.vocab import build_tokenizer, task_words

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tok = build_tokenizer(task_words())
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(tok), n_positions=128, n_ctx=128, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_hub_cache(tiny_hf_gpt2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HF_HOME whose hub cache holds the tiny model as the snapshot of ``gpt2``: with
    HF_HUB_OFFLINE=1, ``load_model("gpt2-small")`` then takes the same path as on a networked machine
    that has downloaded GPT-2."""
    home = tmp_path_factory.mktemp("hf-home")
    repo = home / "hub" / "models--gpt2"
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    for f in tiny_hf_gpt2.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return home
