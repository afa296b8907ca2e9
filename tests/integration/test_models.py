"""Model loading: the embedded default model, a local Hugging Face folder, and TransformerLens
names through the Hugging Face cache exactly as on a networked machine (offline here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from catalog.errors import ModelLoadError
from catalog.models import DEEP_MODEL_DIR, DEFAULT_MODEL_DIR, ModelSource, checkpoint, load_model

ROOT = Path(__file__).resolve().parents[2]
IDS = [[0, 5, 6, 7, 8, 9, 10], [0, 40, 41, 42, 43, 44, 45]]


def test_local_hf_folder_matches_hf_logits(tiny_hf_gpt2: Path) -> None:
    from transformers import AutoModelForCausalLM

    loaded = load_model(str(tiny_hf_gpt2), device="cpu")
    assert loaded.source is ModelSource.LOCAL and not loaded.is_default
    assert (loaded.shape.n_layers, loaded.shape.n_heads, loaded.shape.d_model) == (2, 2, 32)
    hf = AutoModelForCausalLM.from_pretrained(str(tiny_hf_gpt2)).eval()
    ids = torch.tensor(IDS)
    with torch.no_grad():
        assert torch.allclose(loaded.model(ids), hf(ids).logits, atol=1e-5)


_HUB_SCRIPT = """
import json, torch
from transformers import AutoModelForCausalLM
from catalog.errors import ModelLoadError
from catalog.models import load_model
loaded = load_model("gpt2-small", device="cpu")
hf = AutoModelForCausalLM.from_pretrained("gpt2", local_files_only=True).eval()
ids = torch.tensor(%r)
with torch.no_grad():
    diff = float((loaded.model(ids) - hf(ids).logits).abs().max())
try:
    load_model("pythia-70m", device="cpu")
    missing = "loaded"
except ModelLoadError as e:
    missing = str(e)
print(json.dumps({"name": loaded.name, "source": loaded.source.value, "revision": loaded.shape.revision,
                  "layers": loaded.shape.n_layers, "diff": diff, "missing": missing}))
"""


@pytest.mark.slow
def test_transformerlens_name_through_the_hub_cache(tiny_hub_cache: Path) -> None:
    """A cached model loads without HF_HUB_OFFLINE and without the hub (an endpoint that refuses
    connections, on any machine): the cache is read first and nothing is retried."""
    env = dict(os.environ, HF_HOME=str(tiny_hub_cache), HF_ENDPOINT="http://127.0.0.1:9")
    for key in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-c", _HUB_SCRIPT % (IDS,)], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["name"] == "gpt2-small" and out["source"] == "transformerlens"
    assert out["layers"] == 2 and out["revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert out["diff"] < 1e-5
    assert "not in the Hugging Face cache" in out["missing"] and "appears offline" in out["missing"]
    assert "hf download EleutherAI/pythia-70m" in out["missing"]


def test_bad_names_and_folders(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="Unknown model 'gpt-7'"):
        load_model("gpt-7", device="cpu")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path), device="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nope" / "model"), device="cpu")
    with pytest.raises(ModelLoadError, match="dtype"):
        load_model(None, dtype="float8")


def test_checkpoint_round_trip_and_fast_training_forward(tmp_path: Path) -> None:
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from catalog.models.train import fast_logits
    from catalog.models.vocab import build_tokenizer

    tok = build_tokenizer(["a", "b", "c", "d", "e", "f"])
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=16,
                                  d_vocab=len(tok), act_fn="gelu", normalization_type="LN", seed=1,
                                  device="cpu")
    model = HookedTransformer(cfg).eval()
    ids = torch.tensor([[0, 3, 4, 5, 6, 7], [0, 8, 3, 3, 4, 5]])
    with torch.no_grad():
        assert torch.allclose(fast_logits(model, ids), model(ids), atol=1e-5)
    checkpoint.save(model, tok, tmp_path / "m", "tiny", {"seed": 1})
    loaded = load_model(str(tmp_path / "m"), device="cpu")
    assert loaded.name == "tiny" and loaded.source is ModelSource.LOCAL
    with torch.no_grad():
        assert torch.equal(loaded.model(ids), model(ids))
    info = checkpoint.info(tmp_path / "m")
    assert info["parameters"] == sum(p.numel() for p in model.parameters())


def test_growing_keeps_the_function_and_gives_added_parts_gradient() -> None:
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from catalog.models.train import grow

    def build(layers: int, heads: int, d_mlp: int, seed: int) -> Any:
        return HookedTransformer(HookedTransformerConfig(
            n_layers=layers, d_model=16, n_heads=heads, d_head=8, d_mlp=d_mlp, n_ctx=16, d_vocab=12,
            act_fn="gelu", normalization_type="LN", seed=seed, device="cpu")).eval()

    small, big = build(2, 2, 32, 1), build(3, 4, 64, 2)
    ids = torch.tensor([[0, 3, 4, 5, 6, 7], [0, 8, 3, 3, 4, 5]])
    with torch.no_grad():
        assert not torch.allclose(small(ids), big(ids), atol=1e-3)
        grow(small, big)
        assert torch.allclose(small(ids), big(ids), atol=1e-5)
    big(ids).logsumexp(-1).sum().backward()
    assert big.blocks[2].attn.W_O.grad.abs().sum() > 0  # an added layer can start to write
    assert big.blocks[0].mlp.W_out.grad[32:].abs().sum() > 0  # so can an added neuron
    with pytest.raises(ValueError, match="does not fit"):
        grow(big, small)


needs_default = pytest.mark.skipif(not checkpoint.is_checkpoint(DEFAULT_MODEL_DIR),
                                   reason="the embedded default model is not built in this checkout")


def _seed_model(name: str | None) -> Any:
    """A parameter for an embedded model (None: the default) or one of its shipped seed variants,
    skipped where this checkout does not hold that model's checkpoint."""
    from catalog import models

    folder = models.embedded_model_dir(name)
    built = folder is not None and checkpoint.is_checkpoint(folder)
    return pytest.param(name, id=name or "catalog-default",
                        marks=pytest.mark.skipif(not built, reason=f"{name} is not built in this checkout"))


@needs_default
@pytest.mark.slow
@pytest.mark.parametrize("name", [_seed_model(None), _seed_model("catalog-default-seed1"),
                                  _seed_model("catalog-default-seed2")])
def test_default_model_beats_chance_on_every_task(name: str | None) -> None:
    """The default recipe's targets, for the shipped checkpoint and for each extra training seed."""
    from catalog.models.accuracy import evaluate_accuracy

    loaded = load_model(name, device="cpu")
    assert loaded.source is ModelSource.EMBEDDED and loaded.is_default == (name is None)
    assert loaded.name == (name or "catalog-default")
    assert "default" in loaded.describe() or not loaded.is_default
    results = evaluate_accuracy(loaded, n=48, seed=7)
    for key, r in results.items():
        if key == "colored-objects/5-objects":  # a count never trained: reported, not required
            continue
        if key.startswith("ioi/third-name"):  # never trained; the shallow model's shortcut fails it
            continue
        # the held-out-template variants must beat chance; the main parts clearly
        margin = 0.0 if "/" in key else 0.3
        assert r["accuracy"] > r["chance"] + margin, (key, r)
    # the shipped checkpoint meets the targets on held-out names and object combinations
    assert results["ioi"]["accuracy"] >= 0.95 and results["colored-objects"]["accuracy"] >= 0.9, results
    for key in ("ioi", "colored-objects", "greater-than", "induction"):
        assert results[key]["mean_metric"] > 0, (key, results[key])


def test_deep_curriculum_trains_the_lookup_and_the_third_name_variant() -> None:
    from catalog.models import curriculum
    from catalog.models.train import DEEP_RECIPE, lr_at
    from catalog.models.vocab import build_tokenizer, task_words

    tok = build_tokenizer(task_words())
    data = curriculum.Curriculum(tok, 0, "deep")
    end = data.question_end
    for _ in range(20):
        s = data.lookback()
        query = s.ids[-2 - len(end)]
        # the answer is the body token just before the query's first copy, read after "?\nA:"
        assert s.ids[-1 - len(end):-1] == end and s.targets == [len(s.ids) - 2]
        assert s.ids.index(query) >= 2 and s.ids[-1] == s.ids[s.ids.index(query) - 1]
    texts = [tok.decode(data.ioi().ids) for _ in range(200)]
    three = [t for t in texts if sum(w.strip(",.") in curriculum.ioi.NAMES for w in t.split()) == 6]
    assert 0.3 < len(three) / len(texts) < 0.7  # about DEEP_THIRD_NAME of the IOI prompts
    assert curriculum.mix_at(0, data.phases)["lookback"] > 0
    # the peak learning rate is held before the cosine decay
    hold = int(DEEP_RECIPE["hold_fraction"] * DEEP_RECIPE["steps"])
    assert lr_at(hold - 1, DEEP_RECIPE) == DEEP_RECIPE["lr"] > lr_at(hold + 100, DEEP_RECIPE)


def test_embedded_names_and_a_missing_deep_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog import models

    assert models.embedded_model_dir(None) == models.embedded_model_dir("default") == DEFAULT_MODEL_DIR
    assert models.embedded_model_dir("catalog-deep") == models.DEEP_MODEL_DIR
    assert models.embedded_model_dir("gpt2-small") is None
    monkeypatch.setitem(models.EMBEDDED_MODELS, "catalog-deep", tmp_path / "absent")
    with pytest.raises(ModelLoadError, match=r"catalog-deep is missing .*--recipe deep --seed 0"):
        load_model("catalog-deep", device="cpu")
    # the seed variants have their own folders, and a missing one names its own seed
    assert models.embedded_model_dir("catalog-default-seed2") == DEFAULT_MODEL_DIR.with_name("default_model_seed2")
    monkeypatch.setitem(models.EMBEDDED_MODELS, "catalog-default-seed2", tmp_path / "absent")
    with pytest.raises(ModelLoadError, match=r"catalog-default-seed2 is missing .*train --seed 2`"):
        load_model("catalog-default-seed2", device="cpu")


needs_deep = pytest.mark.skipif(not checkpoint.is_checkpoint(DEEP_MODEL_DIR),
                                reason="the deeper embedded model is not built in this checkout")


@needs_deep
def test_deep_model_loads_by_short_name_and_answers_each_task() -> None:
    from catalog.models.accuracy import evaluate_accuracy

    loaded = load_model("catalog-deep", device="cpu")
    assert loaded.name == "catalog-deep" and loaded.source is ModelSource.EMBEDDED and not loaded.is_default
    assert (loaded.shape.n_layers, loaded.shape.n_heads, loaded.shape.d_model) == (6, 8, 128)
    results = evaluate_accuracy(loaded, n=8, seed=3)
    for key in ("ioi", "ioi/third-name-ABC", "ioi/third-name-BAC", "ioi/third-name-BCA",
                "colored-objects", "greater-than", "induction"):
        assert results[key]["accuracy"] >= 0.75, (key, results[key])


@pytest.mark.slow
@pytest.mark.parametrize("name", [_seed_model("catalog-deep"), _seed_model("catalog-deep-seed1"),
                                  _seed_model("catalog-deep-seed2")])
def test_deep_model_meets_its_targets(name: str) -> None:
    """The deep recipe's targets, for the shipped checkpoint and for each extra training seed."""
    from catalog.models.accuracy import evaluate_accuracy

    loaded = load_model(name, device="cpu")
    assert loaded.name == name and (loaded.shape.n_layers, loaded.shape.n_heads) == (6, 8)
    results = evaluate_accuracy(loaded, n=64, seed=7)
    for key in ("ioi", "ioi/third-name-ABC", "ioi/third-name-BAC", "ioi/third-name-BCA"):
        assert results[key]["accuracy"] >= 0.9, (key, results[key])
    assert results["colored-objects"]["accuracy"] >= 0.9, results["colored-objects"]
    # held-out templates: every seed beats chance, the shipped seed 0 clearly (seed 2 generalises
    # least: 68% on IOI's held-out templates at 256 prompts)
    margin = 0.3 if name == "catalog-deep" else 0.0
    for key in ("ioi/heldout-templates", "colored-objects/heldout-templates"):
        assert results[key]["accuracy"] > results[key]["chance"] + margin, (key, results[key])
