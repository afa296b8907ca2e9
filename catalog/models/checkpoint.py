"""The embedded model's on-disk layout: safetensors weights, config.json, a tokenizer folder.

Weights use TransformerLens's state-dict names (``embed.W_E``, ``blocks.0.attn.W_Q``, ...), so
no conversion or pickle is involved. ``config.json`` holds the `HookedTransformerConfig` fields
under ``"model_config"`` and the training recipe under ``"training"``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from catalog.errors import ModelLoadError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER = "tokenizer"


def is_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` is laid out like the embedded model."""
    return (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file() and (folder / TOKENIZER).is_dir()


def save(model: Any, tokenizer: Any, folder: Path, name: str, training: dict[str, Any]) -> None:
    """Write the model's parameters, its config and recipe, and its tokenizer into ``folder``."""
    from safetensors.torch import save_file

    from catalog.models.vocab import save_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    params = {k: v.detach().to("cpu").contiguous() for k, v in model.named_parameters()}
    save_file(params, str(folder / WEIGHTS))
    cfg = model.cfg
    model_config = {k: getattr(cfg, k) for k in (
        "n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "n_ctx", "act_fn",
        "normalization_type", "positional_embedding_type", "attn_only")}
    doc = {"name": name, "format": "transformerlens-state-dict/safetensors",
           "model_config": model_config, "training": training}
    (folder / CONFIG).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    save_tokenizer(tokenizer, folder / TOKENIZER)


def read_config(folder: Path) -> dict[str, Any]:
    """The parsed config.json of a checkpoint folder."""
    try:
        doc = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{folder / CONFIG} is missing or not JSON ({exc}).") from None
    if not isinstance(doc, dict) or "n_layers" not in doc.get("model_config", {}):
        raise ModelLoadError(f"{folder / CONFIG} is not a catalog model config (no model_config).")
    return doc


def weights_sha256(folder: Path) -> str:
    """sha256 of the weights file: the checkpoint's revision."""
    return hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()


def load(folder: Path, device: str, dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(HookedTransformer, tokenizer, config) from a checkpoint folder."""
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import AutoTokenizer

    doc = read_config(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder / TOKENIZER))
        state = load_file(str(folder / WEIGHTS))
    except Exception as exc:  # noqa: BLE001 - any read failure means a damaged checkpoint
        raise ModelLoadError(f"Cannot read the model in {folder}: {exc}. Re-train it with "
                             "`python -m catalog.models.train` or reinstall the package.") from None
    cfg = HookedTransformerConfig(**doc["model_config"], device=device, dtype=dtype,
                                  default_prepend_bos=True)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    real_missing = [k for k in missing if k in dict(model.named_parameters())]
    if real_missing or unexpected:
        raise ModelLoadError(f"The weights in {folder} do not match its config (missing "
                             f"{real_missing[:3]}, unexpected {list(unexpected)[:3]}); re-train it.")
    model.to(dtype, print_details=False)  # TransformerLens prints each move unless told not to
    model.to(device, print_details=False)
    model.eval()
    return model, tokenizer, doc


def parameter_shapes(folder: Path) -> dict[str, list[int]]:
    """Tensor shapes from the safetensors header (no torch needed)."""
    import struct

    try:
        with open(folder / WEIGHTS, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, ValueError, struct.error) as exc:
        raise ModelLoadError(f"Cannot read {folder / WEIGHTS}: {exc}.") from None
    return {k: list(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def info(folder: Path) -> dict[str, Any]:
    """What a checkpoint is: name, shape, parameter count, vocabulary size and training recipe."""
    import math

    if not is_checkpoint(folder):
        raise ModelLoadError(f"{folder} holds no catalog model (model.safetensors, config.json, tokenizer/).")
    doc = read_config(folder)
    shapes = parameter_shapes(folder)
    training = doc.get("training", {})
    return {
        "name": doc.get("name"),
        "folder": str(folder),
        "revision": weights_sha256(folder)[:12],
        "model_config": doc["model_config"],
        "parameters": sum(math.prod(s) for s in shapes.values()),
        "weights_bytes": (folder / WEIGHTS).stat().st_size,
        "training": {k: training.get(k) for k in ("command", "seed", "threads", "recipe", "curriculum",
                                                   "seconds", "torch")},
        "training_history": training.get("history", []),
    }
