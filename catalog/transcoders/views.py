"""What `catalog transcoders list|show|evaluate` report, as pydantic models (``--json`` prints them).

`TranscoderSetInfo.read` reads a set's config.json (and counts its labels) without torch, so
listing and showing sets stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field

from catalog.errors import InvalidInputError
from catalog.transcoders.shipped import CONFIG, FORMAT, LABELS, SHIPPED, WEIGHTS, shipped_folder


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class LayerFigures(_View):
    """One layer's transcoder measured on held-out activations."""

    layer: int
    fvu: float
    dead_features: int
    l0: float


class TranscoderSetInfo(_View):
    """A transcoder set: where it is, its shape, how it was trained and how well it does."""

    folder: str
    shipped: bool
    model: str
    model_revision: str | None = None
    activation: str
    n_layers: int
    d_model: int
    n_features: int
    k: int
    layers: tuple[LayerFigures, ...] = ()
    labelled_features: int = 0
    weights_bytes: int = 0
    data: dict[str, Any] = {}
    training: dict[str, Any] = {}

    @property
    def worst_fvu(self) -> float | None:
        return max((f.fvu for f in self.layers), default=None)

    @classmethod
    def read(cls, folder: Path) -> TranscoderSetInfo:
        """The figures of the set in `folder`; a clear error when it is not one."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InvalidInputError(f"{folder}: no such folder. Give a folder written by `catalog transcoders "
                                    f"train` ({WEIGHTS} + {CONFIG}), or a model with a shipped set.")
        if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
            raise InvalidInputError(f"{folder} is not a transcoder folder: it needs {WEIGHTS} and {CONFIG}.")
        try:
            config = json.loads((folder / CONFIG).read_text())
            labels = json.loads((folder / LABELS).read_text()) if (folder / LABELS).is_file() else {}
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"Cannot read {folder / CONFIG}: {exc}.") from None
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise InvalidInputError(f"{folder / CONFIG} is not a {FORMAT} config.")
        try:
            return cls(folder=str(folder), shipped=folder.resolve().parent == SHIPPED.resolve(),
                       model=str(config["model"]), model_revision=config.get("model_revision"),
                       activation=str(config["activation"]), n_layers=int(config["n_layers"]),
                       d_model=int(config["d_model"]), n_features=int(config["n_features"]), k=int(config["k"]),
                       layers=tuple(LayerFigures(**f) for f in config.get("layers") or ()),
                       labelled_features=len(labels) if isinstance(labels, dict) else 0,
                       weights_bytes=(folder / WEIGHTS).stat().st_size,
                       data=dict(config.get("data") or {}), training=dict(config.get("training") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{folder / CONFIG} is incomplete: {exc}.") from None


def set_folder(ref: str | None) -> Path:
    """The folder `ref` names: an existing folder, else the set shipped for the model named `ref`
    (default: the embedded default model)."""
    from catalog.models import DEFAULT_MODEL_NAME

    name = ref or DEFAULT_MODEL_NAME
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    folder = shipped_folder(name)
    if folder.is_dir():
        return folder
    shipped = ", ".join(p.name for p in sorted(SHIPPED.glob("*")) if p.is_dir()) or "none"
    raise InvalidInputError(f"{name} is neither a folder nor a model with a shipped transcoder set "
                            f"(shipped: {shipped}). Train one with `catalog transcoders train --model {name}`.")


def list_sets(folders: Sequence[str | Path] = ()) -> list[TranscoderSetInfo]:
    """The shipped sets, then the sets in `folders`."""
    shipped = [p for p in sorted(SHIPPED.glob("*")) if p.is_dir()] if SHIPPED.is_dir() else []
    return [TranscoderSetInfo.read(p) for p in [*shipped, *map(Path, folders)]]


class TaskComparison(_View):
    """One task suite's accuracy with the real MLPs and with every MLP replaced by its transcoder."""

    task: str
    original: float
    replacement: float
    ratio: float | None
    n: int
    measures: str


class TranscoderEvaluation(_View):
    """`catalog transcoders evaluate`: fresh held-out figures per layer and the replacement model's
    accuracy per task beside the original's, with the targets they are held to."""

    model: str
    folder: str
    layers: tuple[LayerFigures, ...]
    tasks: tuple[TaskComparison, ...]
    fvu_target: float
    accuracy_ratio_target: float
    held_out_seed: int
    accuracy_seed: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def meets_targets(self) -> bool:
        return (all(f.fvu <= self.fvu_target for f in self.layers)
                and all(t.ratio is None or t.ratio >= self.accuracy_ratio_target for t in self.tasks))
