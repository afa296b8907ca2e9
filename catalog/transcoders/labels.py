"""Feature labels made offline, from the model and the project's own data.

For each feature of a set, two kinds of evidence:

* **What it writes.** The tokens its decoder direction promotes and suppresses through the
  unembedding: ``logit_effect = (centre(W_dec[i]) * w_ln_final) @ W_U``. The direction is read
  as the final LayerNorm reads a residual-stream vector, *without* its scale: centring (for
  LayerNorm; RMSNorm does not centre) and the learned per-dimension weight are linear and apply
  to every position alike, so they are part of the direction's effect, while the division by the
  residual's norm is a positive factor shared by every token at a position and cannot change
  which tokens come top. The biases add the same amount whatever the feature and are left out.
* **What it reads.** Its top-activating contexts on held-out sequences of the training mix
  (`catalog.transcoders.data`): a few tokens before the one it fires on, which is marked
  ``[[token]]``.

A short ``label`` joins the most frequent tokens it fires on with the tokens it promotes, e.g.
``on Mary | John -> +Mary +John``. The records (``label``, ``promotes``, ``suppresses``,
``contexts``, ``density``) are stored with the set in labels.json, keyed ``"L.I"``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from catalog.transcoders.data import TokenStream, curriculum_for, padded
from catalog.transcoders.model import TranscoderSet, input_hook

#: Tokens kept per direction, contexts kept per feature, tokens of context before the marked one.
TOP_TOKENS = 5
TOP_CONTEXTS = 4
CONTEXT_BEFORE = 6
#: Held-out sequences labels are read from (seed offset from the training seed).
LABEL_SEED_OFFSET = 2_000_003


def logit_effects(model: Any, tset: TranscoderSet, layer: int) -> torch.Tensor:
    """``[n_features, d_vocab]``: each feature's decoder direction read through the final norm's
    linear part and the unembedding (see the module docstring)."""
    w_dec = tset.layers[layer].W_dec.detach().float()
    if str(getattr(model.cfg, "normalization_type", "")).startswith("LN"):
        w_dec = w_dec - w_dec.mean(-1, keepdim=True)
    ln_w = getattr(getattr(model, "ln_final", None), "w", None)
    if ln_w is not None:
        w_dec = w_dec * ln_w.detach().float().cpu()
    return w_dec @ model.W_U.detach().float().cpu()


def token_text(tokenizer: Any, token: int) -> str:
    """A token as labels show it: its text without surrounding spaces (quoted when only spaces)."""
    return str(tokenizer.decode([int(token)])).strip() or repr(tokenizer.decode([int(token)]))


def _context(tokenizer: Any, seq: list[int], pos: int) -> str:
    before = [token_text(tokenizer, t) for t in seq[max(1, pos - CONTEXT_BEFORE):pos]]
    return " ".join([*before, f"[[{token_text(tokenizer, seq[pos])}]]"])


def top_activations(model: Any, tset: TranscoderSet, sequences: list[list[int]], pad_id: int,
                    batch_size: int = 32, keep: int = 16) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Per layer: the `keep` highest activations of each feature ``[keep, F]``, where they were
    (flat index ``sequence * width + position``, width = the longest sequence) ``[keep, F]``, and
    how many tokens each feature fired on ``[F]``."""
    width = max(len(s) for s in sequences)
    n_layers, n_features = len(tset.layers), tset.n_features
    best = [torch.zeros(0, n_features) for _ in range(n_layers)]
    where = [torch.zeros(0, n_features, dtype=torch.long) for _ in range(n_layers)]
    counts = [torch.zeros(n_features) for _ in range(n_layers)]
    names = {input_hook(layer) for layer in range(n_layers)}
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        ids, mask = padded(chunk, pad_id)
        flat = (torch.arange(start, start + len(chunk))[:, None] * width + torch.arange(ids.shape[1])[None])[mask]
        with torch.no_grad():
            _, cache = model.run_with_cache(ids.to(model.cfg.device), names_filter=lambda n: n in names,
                                            return_type=None)
            for layer in range(n_layers):
                acts = tset.layers[layer].encode(cache[input_hook(layer)][mask.to(model.cfg.device)].float().cpu())
                counts[layer] += (acts > 0).sum(0)
                values = torch.cat([best[layer], acts])
                spots = torch.cat([where[layer], flat[:, None].expand(-1, n_features)])
                top = values.topk(min(keep, values.shape[0]), dim=0)
                best[layer], where[layer] = top.values, spots.gather(0, top.indices)
    return best, where, counts


def feature_labels(loaded: Any, tset: TranscoderSet, seed: int = 0, sequences: int = 2048,
                   progress: Any = None) -> dict[str, dict[str, Any]]:
    """A label record per feature of `tset` (see the module docstring), keyed ``"L.I"``."""
    from catalog.tasks.tokens import Tokens

    model, tokenizer = loaded.model, loaded.model.tokenizer
    stream = TokenStream(tokenizer, seed + LABEL_SEED_OFFSET, curriculum_for(loaded.name))
    seqs = stream.batch(sequences)
    best, where, counts = top_activations(model, tset, seqs, Tokens(tokenizer).pad_id)
    width = max(len(s) for s in seqs)
    total = sum(len(s) for s in seqs)
    labels: dict[str, dict[str, Any]] = {}
    for layer in range(len(tset.layers)):
        effects = logit_effects(model, tset, layer)
        up, down = effects.topk(TOP_TOKENS, dim=-1), (-effects).topk(TOP_TOKENS, dim=-1)
        for f in range(tset.n_features):
            promotes = [[token_text(tokenizer, t), round(float(v), 4)]
                        for t, v in zip(up.indices[f].tolist(), up.values[f].tolist(), strict=True)]
            suppresses = [[token_text(tokenizer, t), round(-float(v), 4)]
                          for t, v in zip(down.indices[f].tolist(), down.values[f].tolist(), strict=True)]
            contexts, fired_on = [], []
            for value, spot in zip(best[layer][:, f].tolist(), where[layer][:, f].tolist(), strict=True):
                if value <= 0:
                    break
                seq, pos = seqs[spot // width], spot % width
                fired_on.append(token_text(tokenizer, seq[pos]))
                text = _context(tokenizer, seq, pos)
                if len(contexts) < TOP_CONTEXTS and all(c["text"] != text for c in contexts):
                    contexts.append({"text": text, "activation": round(value, 4)})
            labels[f"{layer}.{f}"] = {
                "label": short_label([t for t, _ in Counter(fired_on).most_common(2)], [t for t, _ in promotes[:3]]),
                "promotes": promotes, "suppresses": suppresses, "contexts": contexts,
                "density": round(float(counts[layer][f]) / max(total, 1), 6),
            }
        if progress:
            progress("labels", layer + 1, len(tset.layers))
    return labels


def short_label(fires_on: list[str], promotes: list[str]) -> str:
    """The one-line label: tokens it fires on, then the tokens it promotes.

    >>> short_label(["Mary", ","], ["Mary", "the", "."])
    'on Mary | , -> +Mary +the +.'
    >>> short_label([], ["red"])
    'never active -> +red'
    """
    read = f"on {' | '.join(fires_on)}" if fires_on else "never active"
    return f"{read} -> " + " ".join(f"+{t}" for t in promotes)
