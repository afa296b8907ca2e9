"""Shapes of models circuits are commonly published for, so imports can name and validate them.

Light on purpose: no torch, no TransformerLens. Aliases map the names peer tools write
(``gpt2``, ``mntss/gemma-scope-transcoders``) to the catalog's model names.
"""

from __future__ import annotations

import dataclasses

from catalog.errors import InvalidInputError
from catalog.graph import ModelShape

KNOWN_SHAPES: dict[str, ModelShape] = {
    s.name: s
    for s in (
        # the embedded default model (catalog/data/default_model), as `catalog model info` shows it
        ModelShape("catalog-default", n_layers=4, n_heads=4, d_model=128),
        # the deeper embedded model (catalog/data/deep_model, when built)
        ModelShape("catalog-deep", n_layers=6, n_heads=8, d_model=128),
        ModelShape("gpt2-small", n_layers=12, n_heads=12, d_model=768),
        ModelShape("gpt2-medium", n_layers=24, n_heads=16, d_model=1024),
        ModelShape("gpt2-large", n_layers=36, n_heads=20, d_model=1280),
        ModelShape("gpt2-xl", n_layers=48, n_heads=25, d_model=1600),
        ModelShape("pythia-70m", n_layers=6, n_heads=8, d_model=512, parallel_attn_mlp=True),
        ModelShape("pythia-160m", n_layers=12, n_heads=12, d_model=768, parallel_attn_mlp=True),
        ModelShape("pythia-410m", n_layers=24, n_heads=16, d_model=1024, parallel_attn_mlp=True),
        ModelShape("attn-only-4l", n_layers=4, n_heads=8, d_model=512),
        ModelShape("interpbench-ioi", n_layers=6, n_heads=4, d_model=64),
        ModelShape("gemma-2-2b", n_layers=26, n_heads=8, d_model=2304),
        ModelShape("qwen2.5-0.5b", n_layers=24, n_heads=14, d_model=896),
        ModelShape("llama-3.1-8b", n_layers=32, n_heads=32, d_model=4096),
    )
}

ALIASES: dict[str, str] = {
    "gpt2": "gpt2-small",
    "openai-community/gpt2": "gpt2-small",
    "gpt2-medium": "gpt2-medium",
    "openai-community/gpt2-medium": "gpt2-medium",
    "eleutherai/pythia-70m": "pythia-70m",
    "eleutherai/pythia-70m-deduped": "pythia-70m",
    "eleutherai/pythia-160m": "pythia-160m",
    "eleutherai/pythia-410m": "pythia-410m",
    "default": "catalog-default",
    "interpbench": "interpbench-ioi",
    "google/gemma-2-2b": "gemma-2-2b",
    "gemma-2-2b": "gemma-2-2b",
    "mntss/gemma-scope-transcoders": "gemma-2-2b",
    "mntss/clt-gemma-2-2b-2.5m": "gemma-2-2b",
    "mntss/clt-gemma-2-2b-426k": "gemma-2-2b",
    "gemma": "gemma-2-2b",
    "qwen2.5": "qwen2.5-0.5b",
    "llama3": "llama-3.1-8b",
}


def canonical_model_name(name: str) -> str:
    """Map a peer tool's model name to the catalog's.

    Example:

    >>> canonical_model_name("openai-community/gpt2"), canonical_model_name("my-model")
    ('gpt2-small', 'my-model')
    """
    return ALIASES.get(name.strip().lower(), name.strip())


def split_seed(name: str) -> tuple[str, int]:
    """An embedded model's recipe name and training seed (0 when the name has no ``-seedN``); the
    inverse of `catalog.models.seed_variant`'s naming.

    >>> split_seed("catalog-deep-seed2"), split_seed("catalog-default"), split_seed("my-seedling")
    (('catalog-deep', 2), ('catalog-default', 0), ('my-seedling', 0))
    """
    base, sep, seed = name.rpartition("-seed")
    return (base, int(seed)) if sep and base and seed.isdigit() else (name, 0)


def known_shape(name: str) -> ModelShape | None:
    """The shape of a known model by any of its names, or None.

    An embedded recipe trained with another seed (``catalog-default-seed1``) has its recipe's
    shape under its own name; it is found by name only, so that a file giving just the
    dimensions still names one model (`shape_from_dims`).

    >>> known_shape("catalog-default-seed2")
    ModelShape(name='catalog-default-seed2', n_layers=4, n_heads=4, d_model=128, revision=None, parallel_attn_mlp=False)
    >>> known_shape("gpt2-small-seed2") is None
    True
    """
    canonical = canonical_model_name(name)
    base, seed = split_seed(canonical)
    if seed and base.startswith("catalog-") and base in KNOWN_SHAPES:
        return dataclasses.replace(KNOWN_SHAPES[base], name=canonical)
    return KNOWN_SHAPES.get(canonical)


def shape_from_dims(n_layers: int, n_heads: int, d_model: int | None = None) -> ModelShape | None:
    """The one known model with these dimensions, or None when there is none or several."""
    hits = [s for s in KNOWN_SHAPES.values()
            if s.n_layers == n_layers and s.n_heads == n_heads and (d_model is None or s.d_model == d_model)]
    return hits[0] if len(hits) == 1 else None


def require_shape(name: str) -> ModelShape:
    """The shape of a known model, or an error saying how to give the shape explicitly."""
    shape = known_shape(name)
    if shape is None:
        raise InvalidInputError(
            f"Model '{name}' has no known shape. Known: {', '.join(sorted(KNOWN_SHAPES))}. "
            "Pass --model with one of them, or use a file that states n_layers and n_heads."
        )
    return shape
