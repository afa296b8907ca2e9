"""Models circuits are found in: the embedded default, TransformerLens names, local HF folders.

`load_model` returns a `LoadedModel`: a TransformerLens `HookedTransformer` with its tokenizer and
the `ModelShape` circuits are validated against. torch and TransformerLens load only when a
model is loaded; importing this package is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.graph import ModelShape

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

#: Where the default model ships inside the package.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "default_model"
#: The catalog's name for the embedded default model.
DEFAULT_MODEL_NAME = "catalog-default"
#: Where the deeper embedded model ships, and its name (``--model catalog-deep``).
DEEP_MODEL_DIR = DEFAULT_MODEL_DIR.parent / "deep_model"
DEEP_MODEL_NAME = "catalog-deep"
#: Training seeds shipped beside seed 0 of each recipe, for questions across models trained the
#: same way (``--model catalog-default-seed1``, ``catalog-deep-seed1``, grown from
#: ``catalog-default-seed1``; `seed_variant` names their folders).
EXTRA_SEEDS = (1, 2)


def seed_variant(name: str, folder: Path, seed: int) -> tuple[str, Path]:
    """The name and folder of an embedded model trained with `seed` instead of seed 0.

    >>> seed_variant("catalog-deep", Path("deep_model"), 2)
    ('catalog-deep-seed2', PosixPath('deep_model_seed2'))
    >>> seed_variant("catalog-deep", Path("deep_model"), 0)
    ('catalog-deep', PosixPath('deep_model'))
    """
    if seed == 0:
        return name, folder
    return f"{name}-seed{seed}", folder.with_name(f"{folder.name}_seed{seed}")


#: Embedded models by the short name ``--model`` takes; the first is the default.
EMBEDDED_MODELS: dict[str, Path] = {
    DEFAULT_MODEL_NAME: DEFAULT_MODEL_DIR, DEEP_MODEL_NAME: DEEP_MODEL_DIR,
    **dict(seed_variant(DEFAULT_MODEL_NAME, DEFAULT_MODEL_DIR, s) for s in EXTRA_SEEDS),
    **dict(seed_variant(DEEP_MODEL_NAME, DEEP_MODEL_DIR, s) for s in EXTRA_SEEDS),
}


class ModelSource(str, Enum):
    """Where a loaded model came from."""

    EMBEDDED = "embedded"
    LOCAL = "local"
    TRANSFORMERLENS = "transformerlens"


@dataclass
class LoadedModel:
    """A model ready for discovery: the hooked model, its tokenizer and its catalog identity."""

    model: HookedTransformer
    tokenizer: Any
    shape: ModelShape
    name: str
    is_default: bool
    source: ModelSource
    device: str
    dtype: str

    def describe(self) -> str:
        """One line naming the model, saying when it is the embedded default."""
        s = self.shape
        what = ("the embedded default model" if self.is_default
                else "an embedded model" if self.source is ModelSource.EMBEDDED else f"{self.source.value} model")
        return (f"{self.name} ({what}; {s.n_layers} layers x {s.n_heads} heads, d_model {s.d_model}, "
                f"{self.device}, {self.dtype})")


def embedded_model_dir(name: str | None) -> Path | None:
    """The folder of the embedded model ``name`` (``None`` and ``default``: the default model), or
    ``None`` when ``name`` names no embedded model. Needs no torch."""
    if name is None or name == "default":
        return DEFAULT_MODEL_DIR
    return EMBEDDED_MODELS.get(name)


def load_model(name_or_path: str | None = None, device: str | None = None,
               dtype: str = "float32") -> LoadedModel:
    """Load a model for discovery.

    ``None`` loads the embedded default model; ``catalog-deep`` the deeper embedded model (see
    `EMBEDDED_MODELS`); a TransformerLens name (``gpt2-small``,
    ``pythia-70m``, ...) loads cached Hugging Face weights through TransformerLens; a path loads a
    local Hugging Face model folder (or a folder laid out like the default model). ``device``
    defaults to CUDA when available. Raises `ModelLoadError` with what to do on failure.
    """
    from catalog.models.loading import load

    return load(name_or_path, device=device, dtype=dtype)


__all__ = ["DEEP_MODEL_DIR", "DEEP_MODEL_NAME", "DEFAULT_MODEL_DIR", "DEFAULT_MODEL_NAME", "EMBEDDED_MODELS", "EXTRA_SEEDS",
           "LoadedModel", "ModelSource", "embedded_model_dir", "load_model", "seed_variant"]
