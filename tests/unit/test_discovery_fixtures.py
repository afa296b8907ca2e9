"""Small models and datasets for the discovery tests (no downloads, seeded).

`ToyDataset` has the `TaskDataset` interface discovery uses: token-aligned clean and
counterfactual prompts, the read-out positions, and a per-example logit-difference metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

torch_available = pytest.importorskip("torch")


@dataclass
class ToyDataset:
    clean: torch.Tensor
    corrupt: torch.Tensor
    positions: torch.Tensor
    answers: torch.Tensor
    wrong: torch.Tensor
    metric_name: str = "logit_diff"
    dataset_hash: str = "toy"

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def __getitem__(self, sl: slice) -> ToyDataset:
        return ToyDataset(self.clean[sl], self.corrupt[sl], self.positions[sl], self.answers[sl],
                          self.wrong[sl], self.metric_name, self.dataset_hash)

    @property
    def prompts(self) -> list[str]:
        return [" ".join(map(str, row.tolist())) for row in self.clean]

    def metric(self, logits: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(logits.shape[0], device=logits.device)
        at = logits[rows, self.positions.to(logits.device)]
        return at[rows, self.answers.to(logits.device)] - at[rows, self.wrong.to(logits.device)]


def random_model(n_layers: int = 2, n_heads: int = 2, d_model: int = 16, d_vocab: int = 12,
                 n_ctx: int = 8, attn_only: bool = False, seed: int = 0, parallel: bool = False):
    """A seeded random-weight HookedTransformer."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=n_layers, n_heads=n_heads, d_model=d_model, d_head=d_model // n_heads,
        d_mlp=None if attn_only else 4 * d_model, d_vocab=d_vocab, n_ctx=n_ctx, act_fn=None if attn_only else "gelu",
        attn_only=attn_only, normalization_type="LN", seed=seed, model_name=f"toy-{n_layers}l{n_heads}h",
        parallel_attn_mlp=parallel, device="cpu",
    )
    return HookedTransformer(cfg)


def toy_dataset(n: int = 12, t: int = 6, d_vocab: int = 12, seed: int = 0) -> ToyDataset:
    """Random prompts; the counterfactual swaps the first token; the answer is that first token."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(2, d_vocab, (n, t), generator=g)
    corrupt = clean.clone()
    corrupt[:, 0] = (clean[:, 0] + 1 + torch.randint(0, d_vocab - 3, (n,), generator=g)) % (d_vocab - 2) + 2
    corrupt[:, 0] = torch.where(corrupt[:, 0] == clean[:, 0], (clean[:, 0] - 2 + 1) % (d_vocab - 2) + 2, corrupt[:, 0])
    return ToyDataset(clean, corrupt, torch.full((n,), t - 1), clean[:, 0].clone(), corrupt[:, 0].clone())


COPY_HEAD = "a1.h0"


def copy_head_model(d_vocab: int = 8, n_ctx: int = 6, gain: float = 5.0, distractor_gain: float = 0.1):
    """A 2-layer attention-only model built by hand in which head a1.h0 carries the answer.

    The residual stream is [one-hot token | one-hot position]. Head a1.h0 attends from every
    position to position 0 and copies its token to the unembedding with weight `gain`, so the
    final position predicts the first token. The other heads attend to their own position and
    copy its token with weight `distractor_gain` (a small, real but minor effect). No LayerNorm.
    """
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    d_model, d_head = d_vocab + n_ctx, 8
    cfg = HookedTransformerConfig(
        n_layers=2, n_heads=2, d_model=d_model, d_head=d_head, d_vocab=d_vocab, n_ctx=n_ctx,
        attn_only=True, normalization_type=None, act_fn=None, model_name="copy-head-2l",
        device="cpu", seed=0,
    )
    model = HookedTransformer(cfg)
    sd = {k: torch.zeros_like(v) for k, v in model.state_dict().items() if not k.endswith(("IGNORE", ".mask"))}
    tok = slice(0, d_vocab)
    sd["embed.W_E"][:, tok] = torch.eye(d_vocab)
    sd["pos_embed.W_pos"][:, d_vocab:] = torch.eye(n_ctx)
    sd["unembed.W_U"][tok, :] = torch.eye(d_vocab)
    for layer in range(2):
        for head in range(2):
            w_v = torch.zeros(d_model, d_head)
            w_v[tok, :d_vocab] = torch.eye(d_vocab)
            sd[f"blocks.{layer}.attn.W_V"][head] = w_v
            w_o = torch.zeros(d_head, d_model)
            copy = layer == 1 and head == 0
            w_o[:d_vocab, tok] = torch.eye(d_vocab) * (gain if copy else distractor_gain)
            sd[f"blocks.{layer}.attn.W_O"][head] = w_o
            w_k = torch.zeros(d_model, d_head)
            if copy:  # constant query, key large at position 0: attend to the first token
                sd[f"blocks.{layer}.attn.b_Q"][head, 0] = 1.0
                w_k[d_vocab, 0] = 30.0
            else:  # query and key are the position: attend to yourself
                w_q = torch.zeros(d_model, d_head)
                w_q[d_vocab:, :n_ctx] = torch.eye(n_ctx)
                sd[f"blocks.{layer}.attn.W_Q"][head] = w_q
                w_k[d_vocab:, :n_ctx] = torch.eye(n_ctx) * 30.0
            sd[f"blocks.{layer}.attn.W_K"][head] = w_k
    model.load_state_dict(sd, strict=False)
    return model


def copy_dataset(n: int = 16, t: int = 6, d_vocab: int = 8, seed: int = 1) -> ToyDataset:
    """First token = answer; the counterfactual changes it; the last token differs from both."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        a, b, last = torch.randperm(d_vocab, generator=g)[:3].tolist()
        mid = torch.randint(0, d_vocab, (t - 2,), generator=g).tolist()
        rows.append(([a] + mid + [last], [b] + mid + [last], a, b))
    clean = torch.tensor([r[0] for r in rows])
    corrupt = torch.tensor([r[1] for r in rows])
    return ToyDataset(clean, corrupt, torch.full((n,), t - 1), torch.tensor([r[2] for r in rows]),
                      torch.tensor([r[3] for r in rows]))


def per_position_reference(model, data, ablation: str = "counterfactual", start: int = 0) -> dict[str, float]:
    """Independent per-position activation patching: one component at one position per forward
    pass, with plain TransformerLens hooks (per-head results), each example's metric drop filed
    under the role its prompt gives that position (``data.role_names`` / ``data.role_ids``).
    Positions before `start` are not patched. Shares no code with catalog.discovery."""
    model.set_use_attn_result(True)
    try:
        with torch.no_grad():
            n, t = data.clean.shape
            base = data.metric(model(data.clean)).double()
            _, cache = model.run_with_cache(data.corrupt if ablation == "counterfactual" else data.clean)
            out: dict[str, float] = {}
            for layer in range(model.cfg.n_layers):
                for head in [*range(model.cfg.n_heads), None]:
                    name = f"blocks.{layer}.attn.hook_result" if head is not None else f"blocks.{layer}.hook_mlp_out"
                    ref = cache[name] if ablation != "zero" else torch.zeros_like(cache[name])
                    if ablation == "mean":
                        ref = ref.mean(0, keepdim=True).expand_as(ref)
                    comp = f"a{layer}.h{head}" if head is not None else f"m{layer}"
                    for pos in range(start, t):
                        def hook(act, hook, head=head, ref=ref, pos=pos):
                            if head is None:
                                act[:, pos] = ref[:, pos]
                            else:
                                act[:, pos, head] = ref[:, pos, head]
                            return act

                        drop = base - data.metric(model.run_with_hooks(data.clean, fwd_hooks=[(name, hook)])).double()
                        for b in range(n):
                            r = int(data.role_ids[b, pos])
                            if r >= 0:
                                key = f"{comp}@{data.role_names[r]}"
                                out[key] = out.get(key, 0.0) + float(drop[b]) / n
            return out
    finally:
        model.set_use_attn_result(False)
