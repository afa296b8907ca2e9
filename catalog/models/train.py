"""Train an embedded model: ``python -m catalog.models.train [--recipe deep] --seed 0``.

A 4-layer, 4-head transformer (d_model 128) over a word-level vocabulary of the built-in tasks'
words, trained on CPU in about 45 minutes on one thread. Loss is on answer tokens only (the second
copy for induction). Curriculum: Colored Objects and induction first (Colored Objects stays at
chance until induction heads form), then all four tasks. Same seed and thread count give a
bit-identical checkpoint. Never run by the tests.

``--recipe deep`` makes the deeper model (``catalog-deep``, 6 layers x 8 heads) by growing the
default model (`grow`: its four layers copied in, every added head, neuron and layer starting
silent) and training it on its own curriculum (`curriculum.GROWN_PHASES`, half of the IOI
prompts with a third name), about 18 minutes on one thread. ``--recipe deep-scratch`` is the
from-scratch recipe tried first (`DEEP_RECIPE`; see docs/MODEL.md for why it was left).
``--set key=value`` overrides a recipe field for an experiment and is recorded in the training
record.
"""

from __future__ import annotations

import argparse
import math
import platform
import shutil
import time
from pathlib import Path
from typing import Any

RECIPE: dict[str, Any] = {
    "n_layers": 4, "d_model": 128, "n_heads": 4, "d_head": 32, "d_mlp": 256, "n_ctx": 128,
    "act_fn": "gelu", "normalization_type": "LN", "positional_embedding_type": "standard",
    "steps": 6500, "batch_size": 48, "lr": 1e-3, "betas": [0.9, 0.98], "weight_decay": 0.1,
    "warmup_steps": 100, "final_lr_fraction": 0.1, "grad_clip": 1.0,
}

#: The deeper model. d_head 32 as in the default (8 heads x 32 = 256 > d_model 128 is allowed);
#: the peak learning rate is held for ``hold_fraction`` of the steps before the cosine decay.
DEEP_RECIPE: dict[str, Any] = dict(
    RECIPE, n_layers=6, n_heads=8, d_head=32, d_mlp=512, steps=4000, hold_fraction=0.6,
)

#: The deeper model grown from the default one (`grow`): the same 6 x 8 shape, its first four
#: layers starting as the default model's and every added head, neuron and layer starting silent,
#: then trained on the third-name curriculum at a lower peak learning rate.
GROWN_RECIPE: dict[str, Any] = dict(
    DEEP_RECIPE, steps=2500, lr=5e-4, hold_fraction=0.3, grow_from="catalog-default",
)

#: recipe name -> (recipe, curriculum name, model name, default output folder name)
RECIPES: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "default": (RECIPE, "default", "catalog-default", "default_model"),
    "deep": (GROWN_RECIPE, "grown", "catalog-deep", "deep_model"),
    "deep-scratch": (DEEP_RECIPE, "deep", "catalog-deep", "deep_model"),
}

#: Parameters whose added part starts at zero when growing, so an added head or neuron writes
#: nothing to the residual stream until training gives it a reason to.
_SILENT = ("W_O", "b_O", "W_out", "b_out")


def grow(small: Any, big: Any) -> None:
    """Make ``big`` compute exactly what ``small`` computes (Net2Net-style function-preserving
    growth): ``small``'s layers, heads and neurons are copied into the first of ``big``'s, and
    every added head, MLP neuron and layer gets zero output weights, so it adds nothing to the
    residual stream. Query, key, value and input weights of the added parts keep their random
    initialisation, so they receive gradient once their output weights move. Both models must
    share d_model, d_head, the vocabulary and the normalisation."""
    import torch

    source = small.state_dict()
    with torch.no_grad():
        for name, target in big.state_dict().items():
            if name.rsplit(".", 1)[-1] in _SILENT:
                target.zero_()
            if name not in source:
                continue
            value = source[name]
            if value.dim() != target.dim() or any(a > b for a, b in zip(value.shape, target.shape)):
                raise ValueError(f"cannot grow {name}: {tuple(value.shape)} does not fit in {tuple(target.shape)}")
            target[tuple(slice(0, n) for n in value.shape)] = value


def lr_at(step: int, recipe: dict[str, Any]) -> float:
    """Linear warm-up, the peak held until ``hold_fraction`` of the steps, then cosine decay to
    ``final_lr_fraction`` of the peak."""
    peak, warm, total = recipe["lr"], recipe["warmup_steps"], recipe["steps"]
    if step < warm:
        return peak * (step + 1) / warm
    warm = max(warm, int(recipe.get("hold_fraction", 0.0) * total))
    if step < warm:
        return peak
    progress = (step - warm) / max(1, total - warm)
    floor = recipe["final_lr_fraction"]
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def fast_logits(model: Any, tokens: Any) -> Any:
    """The logits ``model(tokens)`` computes, with fused PyTorch kernels and no hook points.

    Training only: it reads and trains the HookedTransformer's own parameters (so the saved
    state dict is TransformerLens's), but runs several times faster on a CPU than the hooked
    forward. Valid for the recipe's architecture (LayerNorm, GELU, learned positions); a test
    checks it against ``model(tokens)``.
    """
    import torch.nn.functional as F

    cfg = model.cfg
    d = (cfg.d_model,)
    x = model.embed.W_E[tokens] + model.pos_embed.W_pos[: tokens.shape[1]]
    for blk in model.blocks:
        a = blk.attn
        h = F.layer_norm(x, d, blk.ln1.w, blk.ln1.b, cfg.eps)
        q = (h @ a.W_Q.transpose(0, 1).reshape(cfg.d_model, -1)).unflatten(-1, (cfg.n_heads, cfg.d_head))
        k = (h @ a.W_K.transpose(0, 1).reshape(cfg.d_model, -1)).unflatten(-1, (cfg.n_heads, cfg.d_head))
        v = (h @ a.W_V.transpose(0, 1).reshape(cfg.d_model, -1)).unflatten(-1, (cfg.n_heads, cfg.d_head))
        q, k, v = ((t + b).transpose(1, 2) for t, b in ((q, a.b_Q), (k, a.b_K), (v, a.b_V)))
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / cfg.attn_scale)
        x = x + z.transpose(1, 2).flatten(-2) @ a.W_O.reshape(-1, cfg.d_model) + a.b_O
        h = F.layer_norm(x, d, blk.ln2.w, blk.ln2.b, cfg.eps)
        x = x + F.gelu(h @ blk.mlp.W_in + blk.mlp.b_in) @ blk.mlp.W_out + blk.mlp.b_out
    x = F.layer_norm(x, d, model.ln_final.w, model.ln_final.b, cfg.eps)
    return x @ model.unembed.W_U + model.unembed.b_U


def parse_overrides(pairs: list[str], recipe: dict[str, Any]) -> dict[str, Any]:
    """``["d_head=16", "lr=2e-3"]`` -> typed overrides of existing recipe fields."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in recipe:
            raise SystemExit(f"--set {pair}: expected KEY=VALUE with KEY one of {', '.join(sorted(recipe))}")
        out[key] = type(recipe[key])(value) if not isinstance(recipe[key], list) else recipe[key]
    return out


def train(seed: int, out: Path, steps: int | None = None, threads: int = 1,
          eval_every: int = 500, recipe_name: str = "default",
          overrides: dict[str, Any] | None = None, eval_n: int = 128) -> dict[str, Any]:
    """Train, evaluate on the held-out parts, save to ``out``; returns the training record."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from catalog.models import checkpoint, curriculum, seed_variant
    from catalog.models.accuracy import accuracy_of
    from catalog.models.vocab import build_tokenizer, task_words

    base, curriculum_name, model_name, folder = RECIPES[recipe_name]
    model_name, _ = seed_variant(model_name, Path(folder), seed)
    recipe = dict(base, **(overrides or {}))
    recipe["steps"] = steps or recipe["steps"]
    if recipe.get("grow_from"):  # seed N grows from the smaller recipe's seed N: the seeds form families
        recipe["grow_from"] = seed_variant(recipe["grow_from"], Path("model"), seed)[0]
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # AdamW state of rarely used rows decays into slow subnormals
    torch.manual_seed(seed)

    tokenizer = build_tokenizer(task_words())
    cfg = HookedTransformerConfig(
        n_layers=recipe["n_layers"], d_model=recipe["d_model"], n_heads=recipe["n_heads"],
        d_head=recipe["d_head"], d_mlp=recipe["d_mlp"], n_ctx=recipe["n_ctx"], d_vocab=len(tokenizer),
        act_fn=recipe["act_fn"], normalization_type=recipe["normalization_type"],
        positional_embedding_type=recipe["positional_embedding_type"], seed=seed, device="cpu",
    )
    model = HookedTransformer(cfg)
    if recipe.get("grow_from"):
        from catalog.models import EMBEDDED_MODELS, load_model

        source = recipe["grow_from"]
        if source not in EMBEDDED_MODELS:
            raise SystemExit(f"cannot grow seed {seed}: there is no {source} to grow from; train it first "
                             f"(python -m catalog.models.train --seed {seed})")
        small = load_model(source, device="cpu").model
        if small.tokenizer.get_vocab() != tokenizer.get_vocab():
            raise SystemExit(f"cannot grow from {source}: its vocabulary differs from the recipe's")
        grow(small, model)
    model.train()
    data = curriculum.Curriculum(tokenizer, seed, curriculum_name)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], betas=tuple(recipe["betas"]),
                            weight_decay=recipe["weight_decay"])
    start = time.time()
    history = []
    for step in range(recipe["steps"]):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe)
        chunks = data.batches(step, recipe["batch_size"], tokenizer.pad_token_id)
        opt.zero_grad(set_to_none=True)
        loss = torch.zeros(())
        for inputs, labels, weights in chunks:  # gradient of the mean loss per sequence
            logits = fast_logits(model, inputs)
            mask = weights > 0
            per_token = torch.nn.functional.cross_entropy(logits[mask], labels[mask], reduction="none")
            part = (per_token * weights[mask]).sum() / recipe["batch_size"]
            part.backward()
            loss += part.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe["grad_clip"])
        opt.step()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1} loss {float(loss):.4f} {time.time() - start:.0f}s", flush=True)
        if (step + 1) % eval_every == 0 or step + 1 == recipe["steps"]:
            model.eval()
            acc = accuracy_of(model, tokenizer, n=eval_n, seed=10_000)
            model.train()
            summary = {k: round(v["accuracy"], 3) for k, v in acc.items()}
            history.append({"step": step + 1, "loss": round(float(loss), 4), **summary})
            print(f"step {step + 1} loss {float(loss):.4f} {time.time() - start:.0f}s {summary}", flush=True)
            if step + 1 < recipe["steps"]:  # a resumable view of progress; the final save replaces it
                checkpoint.save(model, tokenizer, out / "partial", model_name,
                                {"seed": seed, "step": step + 1, "history": history})
    model.eval()
    training = {
        "seed": seed, "threads": threads, "recipe": recipe,
        "curriculum": [{"from_step": s, "mix": m} for s, m in data.phases],
        "third_name_fraction": data.third_name,
        "seconds": round(time.time() - start, 1), "history": history,
        "torch": torch.__version__, "platform": platform.platform(),
        "command": " ".join(["python -m catalog.models.train",
                             *([f"--recipe {recipe_name}"] if recipe_name != "default" else []),
                             f"--seed {seed} --threads {threads}",
                             *(f"--set {k}={v}" for k, v in (overrides or {}).items()),
                             *([f"--steps {steps}"] if steps else [])]),
    }
    checkpoint.save(model, tokenizer, out, model_name, training)
    shutil.rmtree(out / "partial", ignore_errors=True)
    return training


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                        help="default: the shallow catalog-default; deep: catalog-deep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="default: the recipe's folder under catalog/data/ (seed N > 0: FOLDER_seedN)")
    parser.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field (an experiment; recorded in config.json)")
    parser.add_argument("--eval-n", type=int, default=128, help="prompts per task at each evaluation")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads; one is fastest on a busy machine and fixes the result")
    parser.add_argument("--eval-every", type=int, default=500)
    args = parser.parse_args(argv)
    from catalog.models import seed_variant

    recipe, _, name, folder = RECIPES[args.recipe]
    out = args.out or seed_variant(name, Path(__file__).resolve().parent.parent / "data" / folder, args.seed)[1]
    record = train(args.seed, out, steps=args.steps, threads=args.threads, eval_every=args.eval_every,
                   recipe_name=args.recipe, overrides=parse_overrides(args.overrides, recipe),
                   eval_n=args.eval_n)
    print(f"saved {out} after {record['seconds']} s")


if __name__ == "__main__":
    main()
