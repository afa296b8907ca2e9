"""Record the attention patterns of a circuit's heads on a few of its task's prompts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from catalog.attention import DECIMALS, AttentionPatterns, PromptAttention
from catalog.discovery.engine import device_of
from catalog.naming import component_of, parse_node, pattern_hook


def record_attention(model: Any, dataset: Any, heads: Iterable[str], n_prompts: int = 4) -> AttentionPatterns:
    """The patterns of `heads` on the first `n_prompts` clean prompts of `dataset`, each cut at the
    position where the task reads its answer (what comes after it is padding or the answer)."""
    # position-resolved heads (a1.h0@END) share one pattern: the head's, over the whole prompt
    heads = sorted({component_of(h) for h in heads}, key=lambda h: (parse_node(h).layer, parse_node(h).head))
    n = min(n_prompts, len(dataset))
    if not heads or n == 0:
        return AttentionPatterns(heads=tuple(heads), prompts=())
    hooks = sorted({pattern_hook(h) for h in heads})
    part = dataset[0:n]
    with torch.no_grad():
        _, cache = model.run_with_cache(part.clean.to(device_of(model)), names_filter=lambda name: name in hooks)
    prompts = []
    for i in range(n):
        end = int(part.positions[i]) + 1
        ids = part.clean[i, :end]
        # a model built without a tokenizer (a hand-made test model) shows token ids instead
        tokens = tuple(str(t) for t in (model.to_str_tokens(ids) if getattr(model, "tokenizer", None)
                                        else ids.tolist()))
        patterns = {}
        for h in heads:
            c = parse_node(h)
            weights = cache[pattern_hook(h)][i, c.head, :end, :end].to(torch.float64).cpu()
            patterns[h] = tuple(tuple(round(float(w), DECIMALS) for w in row) for row in weights)
        prompts.append(PromptAttention(prompt=part.prompts[i], tokens=tokens, read_position=end - 1,
                                       heads=patterns))
    return AttentionPatterns(heads=tuple(heads), prompts=tuple(prompts))
