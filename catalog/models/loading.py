"""The adapter between the catalog and TransformerLens: every model is loaded here.

Three sources: the embedded default model (a checkpoint folder shipped in the package), a
TransformerLens model name (weights from the Hugging Face cache, or the hub when online: see
`catalog.models.hub`), and a local Hugging Face model folder. Models load without weight
processing (no LayerNorm folding or centring), so their logits equal the original model's and
hooks see its real activations.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import sys
from pathlib import Path
from typing import Any

from catalog.errors import ModelLoadError
from catalog.graph import ModelShape
from catalog.models import (
    DEEP_MODEL_NAME,
    DEFAULT_MODEL_NAME,
    LoadedModel,
    ModelSource,
    checkpoint,
    embedded_model_dir,
    hub,
)
from catalog.shapes import canonical_model_name, split_seed

DTYPES = ("float32", "float16", "bfloat16")


def resolve_device(device: str | None) -> str:
    """``device`` as given, or CUDA when available, else CPU."""
    import torch

    if device:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"Device {device!r} was asked for but CUDA is not available; use --device cpu.")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise ModelLoadError(f"Unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}.")
    return getattr(torch, dtype)


def _shape(name: str, cfg: Any, revision: str | None) -> ModelShape:
    return ModelShape(name, n_layers=int(cfg.n_layers), n_heads=int(cfg.n_heads), d_model=int(cfg.d_model),
                      revision=revision, parallel_attn_mlp=bool(getattr(cfg, "parallel_attn_mlp", False)))


def load_checkpoint_folder(folder: Path, device: str, dtype: str, is_default: bool,
                           embedded_name: str | None = None) -> LoadedModel:
    """A model saved in the embedded model's layout (safetensors + config.json + tokenizer/);
    ``embedded_name`` is the short name of a model shipped in the package."""
    model, tokenizer, doc = checkpoint.load(folder, device, resolve_dtype(dtype))
    name = embedded_name or str(doc.get("name") or folder.name)
    revision = checkpoint.weights_sha256(folder)[:12]
    return LoadedModel(model=model, tokenizer=tokenizer, shape=_shape(name, model.cfg, revision), name=name,
                       is_default=is_default,
                       source=ModelSource.EMBEDDED if embedded_name else ModelSource.LOCAL,
                       device=device, dtype=dtype)


def load_hf_folder(folder: Path, device: str, dtype: str) -> LoadedModel:
    """A local Hugging Face model folder (config.json + weights + tokenizer files)."""
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = resolve_dtype(dtype)
    try:
        cfg = loading.get_pretrained_model_config(str(folder), device=device, dtype=torch_dtype)
        hf_model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype)
        state = loading.get_pretrained_state_dict(str(folder), cfg, hf_model, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError, AttributeError, TypeError, NotImplementedError) as exc:
        raise ModelLoadError(
            f"Cannot load {folder} as a Hugging Face model: {exc}. The folder needs config.json, the "
            "weights and tokenizer files of an architecture TransformerLens supports."
        ) from None
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False,
                                      center_unembed=False, fold_value_biases=False,
                                      refactor_factored_attn_matrices=False)
    model.to(device, print_details=False)  # TransformerLens prints each move unless told not to
    model.eval()
    name = folder.resolve().name
    return LoadedModel(model=model, tokenizer=model.tokenizer, shape=_shape(name, cfg, None), name=name,
                       is_default=False, source=ModelSource.LOCAL, device=device, dtype=dtype)


def official_name(name: str) -> str:
    """TransformerLens's official name for ``name``, or an error naming the nearest ones."""
    from transformer_lens import loading_from_pretrained as loading

    try:
        return loading.get_official_model_name(name)
    except ValueError:
        known = list(loading.make_model_alias_map())
        near = difflib.get_close_matches(name.lower(), known, n=3)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        raise ModelLoadError(
            f"Unknown model {name!r}.{hint} Give a TransformerLens model name (e.g. gpt2-small, "
            "pythia-70m), a local Hugging Face model folder, or nothing for the embedded default model."
        ) from None


def cached_revision(repo_id: str) -> str | None:
    """The commit of the cached snapshot of ``repo_id``, when it is in the Hugging Face cache."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True)).name
    except Exception:  # noqa: BLE001 - no cached snapshot is not an error here
        return None


# What a failed `from_pretrained` raises: missing files, no network, unsupported configs.
_LOAD_ERRORS = (OSError, ConnectionError, ValueError)


def load_transformerlens(name: str, device: str, dtype: str) -> LoadedModel:
    """A TransformerLens model by name: from the Hugging Face cache without network when it is
    there, else from the hub when it can be reached, else a fast error that says what to run."""
    official = official_name(name)
    model = None
    if hub.is_cached(official):
        try:
            with hub.offline_mode():
                model = _from_pretrained(official, device, dtype)
        except _LOAD_ERRORS:
            model = None  # a partial cache (e.g. config only): fetch the rest when online
    if model is None:
        reason = hub.offline_reason()
        if reason is not None:
            raise ModelLoadError(hub.not_cached_message(name, official, reason))
        try:
            model = _from_pretrained(official, device, dtype)
        except _LOAD_ERRORS as exc:
            raise ModelLoadError(
                f"Cannot load {name} ({official}) from the Hugging Face hub: {type(exc).__name__}: {exc}. "
                f"Fetch it with `{hub.download_command(official)}`, or pass --model PATH with a local "
                "Hugging Face model folder."
            ) from None
    model.eval()
    catalog_name = canonical_model_name(name)
    return LoadedModel(model=model, tokenizer=model.tokenizer,
                       shape=_shape(catalog_name, model.cfg, cached_revision(official)),
                       name=catalog_name, is_default=False, source=ModelSource.TRANSFORMERLENS,
                       device=device, dtype=dtype)


def _from_pretrained(official: str, device: str, dtype: str) -> Any:
    from transformer_lens import HookedTransformer

    # It prints "Loaded pretrained model ..." on standard output, which would break `--json`.
    with contextlib.redirect_stdout(io.StringIO()):
        return HookedTransformer.from_pretrained_no_processing(official, device=device,
                                                               dtype=resolve_dtype(dtype))


def load(name_or_path: str | None, device: str | None = None, dtype: str = "float32") -> LoadedModel:
    """See `catalog.models.load_model`. TransformerLens's progress prints go to stderr, so that
    stdout stays clean for ``--json`` output."""
    with contextlib.redirect_stdout(sys.stderr):
        return _load(name_or_path, device, dtype)


def _load(name_or_path: str | None, device: str | None, dtype: str) -> LoadedModel:
    resolve_dtype(dtype)
    dev = resolve_device(device)
    folder = embedded_model_dir(name_or_path)
    if folder is not None:
        is_default = folder == embedded_model_dir(None)
        name = DEFAULT_MODEL_NAME if is_default else str(name_or_path)
        if not checkpoint.is_checkpoint(folder):
            recipe = " --recipe deep" if name.startswith(DEEP_MODEL_NAME) else ""
            seed = split_seed(name)[1]
            raise ModelLoadError(
                f"The embedded model {name} is missing from {folder}. Reinstall circuit-catalog, or "
                f"rebuild it with `python -m catalog.models.train{recipe} --seed {seed}`."
            )
        return load_checkpoint_folder(folder, dev, dtype, is_default=is_default, embedded_name=name)
    path = Path(str(name_or_path)).expanduser()  # None named the default model above
    if path.is_dir():
        if checkpoint.is_checkpoint(path):
            return load_checkpoint_folder(path, dev, dtype, is_default=False)
        if (path / "config.json").is_file():
            return load_hf_folder(path, dev, dtype)
        raise ModelLoadError(f"{path} is a folder but holds no config.json: not a model folder.")
    if path.suffix or os.sep in str(name_or_path):
        raise ModelLoadError(f"Model folder {path} does not exist.")
    return load_transformerlens(str(name_or_path), dev, dtype)
