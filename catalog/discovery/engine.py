"""Hooked forward passes shared by every method.

Three things happen here and nowhere else: recording what each source writes to the residual
stream (into one ``[batch, pos, source, d_model]`` buffer), patching destination inputs edge by
edge, and computing the ablation values that stand in for a patched source. An edge u->v is
patched by giving v the input ``clean input - (a_u - a_u_ablated)``, where ``a_u`` is what u wrote
in the current pass; patching every edge out of u is therefore the same as patching u itself.

Several patterns can run in one forward pass: the batch is repeated ``C`` times and copy ``c``
uses mask ``c`` (``mask[c, source, destination] = 1`` patches that edge in that copy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from catalog.discovery.contract import Metric, Progress, task_metric
from catalog.discovery.layout import QKV_ORDER, Layout
from catalog.errors import DiscoveryError
from catalog.naming import EMBED_HOOK, attn_hook, block_hook, logits_input_hook, qkv_input_hook
from catalog.provenance import Ablation

Hook = tuple[str, Callable[..., Any]]
__all__ = ["Hook", "Metric", "Progress", "task_metric"]


@contextmanager
def prepared(model: Any, split_qkv: bool = True) -> Iterator[Layout]:
    """Expose split q/k/v inputs (when `split_qkv`) and MLP inputs; freeze parameters; eval mode.

    Per-head outputs are computed from ``hook_z`` by the source hooks rather than with
    TransformerLens's ``use_attn_result``, whose broadcast product is several times slower.
    Everything is restored on exit, so a user's model is left as it was given.
    """
    cfg = model.cfg
    saved = (cfg.use_split_qkv_input, cfg.use_attn_result, cfg.use_hook_mlp_in)
    grads = [p.requires_grad for p in model.parameters()]
    training = model.training
    layout = Layout.for_model(model)
    cfg.use_split_qkv_input = split_qkv
    cfg.use_attn_result = False
    cfg.use_hook_mlp_in = not cfg.attn_only
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    try:
        yield layout
    finally:
        cfg.use_split_qkv_input, cfg.use_attn_result, cfg.use_hook_mlp_in = saved
        for p, g in zip(model.parameters(), grads):
            p.requires_grad_(g)
        model.train(training)


def device_of(model: Any) -> torch.device:
    return next(model.parameters()).device


def n_examples(dataset: Any) -> int:
    return int(dataset.clean.shape[0])


def batches(dataset: Any, batch_size: int, device: torch.device) -> Iterator[tuple[Any, torch.Tensor, torch.Tensor]]:
    """(dataset slice, clean tokens, corrupt tokens) for consecutive batches, on `device`."""
    if batch_size < 1:
        raise DiscoveryError(f"--batch-size must be at least 1, got {batch_size}.")
    n = n_examples(dataset)
    if n == 0:
        raise DiscoveryError("The task dataset is empty; ask for at least one example (--n).")
    if dataset.clean.shape != dataset.corrupt.shape:
        raise DiscoveryError(
            f"Clean and counterfactual prompts differ in shape ({tuple(dataset.clean.shape)} vs "
            f"{tuple(dataset.corrupt.shape)}); patching needs token-aligned pairs."
        )
    for i in range(0, n, batch_size):
        part = dataset[i:i + batch_size]
        yield part, part.clean.to(device), part.corrupt.to(device)


def metric_per_copy(part: Any, logits: torch.Tensor, copies: int, metric: Metric = task_metric) -> torch.Tensor:
    """The metric of each copy of a repeated batch: ``[copies, batch]``."""
    b = logits.shape[0] // copies
    return torch.stack([metric(part, logits[c * b:(c + 1) * b]).to(torch.float64) for c in range(copies)])


# --- recording sources -----------------------------------------------------------------------


def head_outputs(model: Any, layer: int, z: torch.Tensor) -> torch.Tensor:
    """What each head of `layer` writes to the residual stream: ``z_h @ W_O[h]``, ``[B, T, H, D]``."""
    return torch.einsum("bthk,hkd->bthd", z, model.blocks[layer].attn.W_O)


def source_hooks(model: Any, layout: Layout, buf: torch.Tensor) -> list[Hook]:
    """Hooks writing each source's output into ``buf[:, :, source]`` (detached)."""

    def put(index: int | slice) -> Callable[..., None]:
        def hook(act: torch.Tensor, hook: Any) -> None:
            buf[:, :, index] = act.detach()

        return hook

    def put_heads(layer: int, first: int) -> Callable[..., None]:
        def hook(z: torch.Tensor, hook: Any) -> None:
            with torch.no_grad():
                buf[:, :, first:first + layout.n_heads] = head_outputs(model, layer, z.detach())

        return hook

    hooks: list[Hook] = [(EMBED_HOOK, put(0))]
    for layer in range(layout.n_layers):
        hooks.append((attn_hook(layer, "z"), put_heads(layer, layout.head_source(layer, 0))))
        if layout.has_mlp:
            hooks.append((block_hook(layer, "mlp_out"), put(layout.mlp_source(layer))))
    return hooks


def new_buffer(model: Any, layout: Layout, tokens: torch.Tensor, source_major: bool = False) -> torch.Tensor:
    """A zero ``[B, T, S, D]`` source buffer; with `source_major` it is a view of ``[S, B, T, D]``
    memory, so that each source's outputs are one contiguous block (EAP's differences)."""
    b, t = tokens.shape
    shape = (layout.n_sources, b, t, model.cfg.d_model) if source_major else (b, t, layout.n_sources, model.cfg.d_model)
    buf = torch.zeros(*shape, dtype=model.cfg.dtype, device=tokens.device)
    return buf.permute(1, 2, 0, 3) if source_major else buf


@torch.no_grad()
def record(model: Any, layout: Layout, tokens: torch.Tensor,
           source_major: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, source outputs ``[B, T, S, D]``) of a plain forward pass."""
    buf = new_buffer(model, layout, tokens, source_major)
    with model.hooks(fwd_hooks=source_hooks(model, layout, buf)):
        logits = model(tokens)
    return logits, buf


@torch.no_grad()
def mean_sources(model: Any, layout: Layout, dataset: Any, batch_size: int) -> torch.Tensor:
    """Per-position mean of every source's output over the clean prompts: ``[T, S, D]``."""
    total: torch.Tensor | None = None
    for _, clean, _ in batches(dataset, batch_size, device_of(model)):
        _, buf = record(model, layout, clean)
        part = buf.to(torch.float64).sum(0)
        total = part if total is None else total + part
    if total is None:  # batches() raises on an empty dataset; kept for type checkers
        raise DiscoveryError("The task dataset is empty.")
    return (total / n_examples(dataset)).to(model.cfg.dtype)


class Ablator:
    """Source values that replace a patched source, per batch, for one ablation."""

    def __init__(self, model: Any, layout: Layout, dataset: Any, ablation: Ablation, batch_size: int):
        self.model, self.layout, self.ablation = model, layout, Ablation(ablation)
        self.mean = mean_sources(model, layout, dataset, batch_size) if self.ablation is Ablation.MEAN else None

    def values(self, clean: torch.Tensor, corrupt: torch.Tensor, source_major: bool = False) -> torch.Tensor:
        """``[B, T, S, D]``: the counterfactual run's outputs, the dataset mean, or zeros."""
        if self.ablation is Ablation.COUNTERFACTUAL:
            return record(self.model, self.layout, corrupt, source_major)[1]
        if self.ablation is Ablation.MEAN:
            if self.mean is None or self.mean.shape[0] != clean.shape[1]:
                raise DiscoveryError("Mean ablation needs every prompt of the dataset to have the same length.")
            return self.mean.unsqueeze(0).expand(clean.shape[0], -1, -1, -1)
        return new_buffer(self.model, self.layout, clean, source_major)


# --- patching destination inputs -------------------------------------------------------------


def patch_hooks(layout: Layout, ablated: torch.Tensor, current: torch.Tensor, mask: torch.Tensor) -> list[Hook]:
    """Hooks giving each destination ``input + sum_u mask[c,u,v] * (ablated_u - current_u)``.

    `ablated` is ``[B, T, S, D]``, `current` the buffer the source hooks of this pass fill
    (``[C*B, T, S, D]``), `mask` ``[C, S, Dst]`` in the activations' dtype.
    """
    copies = mask.shape[0]

    def make(first: int, count: int, upto: int) -> Hook | None:
        m = mask[:, :upto, first:first + count]
        if not bool(m.any()):
            return None
        mt = m.transpose(1, 2).unsqueeze(1)  # [C, 1, count, upto]

        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
            # delta[c, bt] = m[c]^T @ (ablated - current)[bt], as two batched products over the
            # (upto x d_model) blocks, without materialising the difference for every copy.
            b, t = ablated.shape[:2]
            abl = ablated[:, :, :upto].reshape(b * t, upto, -1)
            cur = current[:, :, :upto].reshape(copies, b * t, upto, -1)
            delta = torch.matmul(mt, abl) - torch.matmul(mt, cur)  # [C, B*T, count, D]
            return act + delta.reshape(act.shape)

        return hook  # type: ignore[return-value]

    hooks: list[Hook] = []
    for layer in range(layout.n_layers):
        for qkv in QKV_ORDER:
            first = layout.head_dest(layer, qkv, 0)
            fn = make(first, layout.n_heads, layout.n_upstream(first))
            if fn is not None:
                hooks.append((qkv_input_hook(layer, qkv), fn))  # type: ignore[arg-type]
        if layout.has_mlp:
            d = layout.mlp_dest(layer)
            fn = make(d, 1, layout.n_upstream(d))
            if fn is not None:
                hooks.append((block_hook(layer, "mlp_in"), fn))  # type: ignore[arg-type]
    d = layout.logits_dest
    fn = make(d, 1, layout.n_upstream(d))
    if fn is not None:
        hooks.append((logits_input_hook(layout.n_layers), fn))  # type: ignore[arg-type]
    return hooks


@torch.no_grad()
def patched_logits(model: Any, layout: Layout, clean: torch.Tensor, ablated: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """Logits ``[C*B, T, V]`` of the clean batch repeated once per mask, each copy patched by its mask."""
    copies = mask.shape[0]
    tokens = clean.repeat(copies, 1)
    current = new_buffer(model, layout, tokens)
    hooks = source_hooks(model, layout, current) + patch_hooks(layout, ablated, current, mask.to(ablated.dtype))
    with model.hooks(fwd_hooks=hooks):
        return model(tokens)


def valid_mask(layout: Layout, device: torch.device) -> torch.Tensor:
    """``[S, Dst]`` bool: True where an edge exists."""
    m = torch.zeros(layout.n_sources, layout.n_destinations, dtype=torch.bool, device=device)
    for d in range(layout.n_destinations):
        m[:layout.n_upstream(d), d] = True
    return m


#: Rows (examples x copies) per patched forward pass when the caller does not say.
DEFAULT_MAX_ROWS = 1024

#: Memory budget for one pass's ``[rows, T, sources, d_model]`` source buffer and its logits.
BUFFER_BYTES = 256 * 2**20


def max_rows_for(model: Any, layout: Layout, seq_len: int, max_rows: int) -> int:
    """Rows (copies x examples) per patched pass: `max_rows`, fewer if the buffers need it."""
    width = layout.n_sources * model.cfg.d_model + model.cfg.d_vocab
    per_row = seq_len * width * torch.tensor([], dtype=model.cfg.dtype).element_size()
    return max(1, min(max_rows, BUFFER_BYTES // per_row))


def copies_per_pass(batch: int, wanted: int, max_rows: int) -> int:
    """How many repeated copies of a batch of `batch` examples fit in `max_rows` rows."""
    return max(1, min(wanted, max_rows // max(batch, 1)))


def chunked(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
