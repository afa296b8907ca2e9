"""Transcoders: one sparse dictionary per layer that stands in for that layer's MLP.

A transcoder reads what the MLP reads (the normalised residual stream, TransformerLens's
``blocks.L.ln2.hook_normalized``) and predicts what the MLP writes (``blocks.L.hook_mlp_out``)
through ``n_features`` sparse features (Dunefsky et al. 2024; Ameisen et al. 2025):

    acts = sparsify(x @ W_enc + b_enc)        # [..., n_features], at most k non-zero (TopK)
    out  = acts @ W_dec + b_dec               # [..., d_model]

``sparsify`` is TopK (keep the k largest pre-activations, then ReLU) or JumpReLU (keep a
pre-activation where it exceeds a learned per-feature threshold). A `TranscoderSet` holds one
transcoder per layer with its provenance and its feature labels, and is stored as a folder:

    <folder>/transcoders.safetensors   tensors "L.W_enc", "L.b_enc", "L.W_dec", "L.b_dec"
                                       (and "L.threshold" for JumpReLU), one group per layer L
    <folder>/config.json               {"format": "catalog-transcoders/1", "model": ...,
                                        "d_model", "n_features", "activation", "k",
                                        "layers": [per-layer figures], "training": {...}}
    <folder>/labels.json               optional: {"L.I": {"promotes": [...], ...}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from catalog import naming
from catalog.errors import InvalidInputError
from catalog.transcoders.shipped import CONFIG, FORMAT, LABELS, WEIGHTS

__all__ = ["CONFIG", "FORMAT", "LABELS", "WEIGHTS", "Activation", "Transcoder", "TranscoderSet"]

Activation = Literal["topk", "jumprelu"]


def input_hook(layer: int) -> str:
    """The hook a layer's transcoder reads: the MLP's normalised input.

    >>> input_hook(2)
    'blocks.2.ln2.hook_normalized'
    """
    return naming.block_hook(layer, "ln2.normalized")


def output_hook(layer: int) -> str:
    """The hook a layer's transcoder predicts: the MLP's output.

    >>> output_hook(2)
    'blocks.2.hook_mlp_out'
    """
    return naming.block_hook(layer, "mlp_out")


class Transcoder(torch.nn.Module):
    """One layer's transcoder (see the module docstring for the equations)."""

    def __init__(self, d_model: int, n_features: int, k: int, activation: Activation = "topk") -> None:
        super().__init__()
        if activation not in ("topk", "jumprelu"):
            raise InvalidInputError(f"Unknown transcoder activation '{activation}': use topk or jumprelu.")
        if not 0 < k <= n_features:
            raise InvalidInputError(f"k must be between 1 and the number of features ({n_features}); got {k}.")
        self.d_model, self.n_features, self.k, self.activation = d_model, n_features, k, activation
        self.W_enc = torch.nn.Parameter(torch.empty(d_model, n_features))
        self.b_enc = torch.nn.Parameter(torch.zeros(n_features))
        self.W_dec = torch.nn.Parameter(torch.empty(n_features, d_model))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_model))
        self.threshold = torch.nn.Parameter(torch.zeros(n_features), requires_grad=activation == "jumprelu")
        torch.nn.init.kaiming_uniform_(self.W_dec)
        with torch.no_grad():
            self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True))
            self.W_enc.copy_(self.W_dec.T)

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W_enc + b_enc``: affine in ``x``, which is what attribution differentiates."""
        return x @ self.W_enc + self.b_enc

    def sparsify(self, pre: torch.Tensor) -> torch.Tensor:
        """The features' activations from their pre-activations (TopK or JumpReLU)."""
        if self.activation == "jumprelu":
            return pre * (pre > self.threshold).to(pre.dtype)
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations, ``[..., n_features]``, at most ``k`` non-zero for TopK."""
        return self.sparsify(self.pre_activations(x))

    def decode(self, acts: torch.Tensor) -> torch.Tensor:
        """The predicted MLP output, ``acts @ W_dec + b_dec``."""
        return acts @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def _feature_order(key: str) -> tuple[int, ...] | tuple[float, str]:
    """Sort ``"L.I"`` keys by layer, then feature (numerically); anything else after them.

    >>> sorted(["1.2", "0.10", "0.9"], key=_feature_order)
    ['0.9', '0.10', '1.2']
    """
    parts = key.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (float("inf"), key)


@dataclass
class TranscoderSet:
    """One transcoder per layer of ``model``, with provenance and (optionally) feature labels.

    ``config`` holds what `config.json` holds (see the module docstring); ``labels`` maps a
    feature key ``"L.I"`` to its label record.
    """

    model: str
    layers: list[Transcoder]
    config: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.layers[0].n_features

    def label(self, layer: int, feature: int) -> str | None:
        """A feature's short label (``None`` when it has none)."""
        record = self.labels.get(f"{layer}.{feature}")
        return None if record is None else record.get("label")

    def save(self, folder: Path) -> None:
        """Write the set into ``folder`` (created), in the layout of the module docstring."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for layer, tc in enumerate(self.layers):
            names = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if tc.activation == "jumprelu" else [])
            tensors.update({f"{layer}.{n}": getattr(tc, n).detach().cpu().contiguous() for n in names})
        save_file(tensors, str(folder / WEIGHTS))
        first = self.layers[0]
        config = dict(self.config, format=FORMAT, model=self.model, d_model=first.d_model,
                      n_features=first.n_features, activation=first.activation, k=first.k,
                      n_layers=len(self.layers))
        (folder / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if self.labels:
            # one feature a line: a diff shows which features' labels changed, at little size
            lines = [f"{json.dumps(key)}: {json.dumps(self.labels[key], sort_keys=True, separators=(',', ':'))}"
                     for key in sorted(self.labels, key=_feature_order)]
            (folder / LABELS).write_text("{\n" + ",\n".join(lines) + "\n}\n")

    @classmethod
    def load(cls, folder: Path) -> TranscoderSet:
        """Read a set written by `save`; a clear `InvalidInputError` for anything else."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
            raise InvalidInputError(f"{folder} is not a transcoder folder: it needs {WEIGHTS} and {CONFIG}.")
        try:
            config = json.loads((folder / CONFIG).read_text())
            tensors = load_file(str(folder / WEIGHTS))
            labels = json.loads((folder / LABELS).read_text()) if (folder / LABELS).is_file() else {}
        except (OSError, ValueError, SafetensorError) as exc:
            raise InvalidInputError(f"Cannot read the transcoders in {folder}: {exc}.") from None
        if not isinstance(config, Mapping) or config.get("format") != FORMAT:
            raise InvalidInputError(f"{folder / CONFIG} is not a {FORMAT} config.")
        layers = []
        try:
            for layer in range(int(config["n_layers"])):
                tc = Transcoder(int(config["d_model"]), int(config["n_features"]), int(config["k"]),
                                config["activation"])
                state = {n: tensors[f"{layer}.{n}"] for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
                state["threshold"] = tensors.get(f"{layer}.threshold", torch.zeros(tc.n_features))
                tc.load_state_dict(state)
                tc.requires_grad_(False)
                layers.append(tc)
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"The transcoders in {folder} do not match their config: {exc}.") from None
        return cls(str(config["model"]), layers, dict(config), dict(labels))
