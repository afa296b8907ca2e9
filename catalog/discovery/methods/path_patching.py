"""Path patching (Wang et al. 2022; Goldowsky-Dill et al. 2023): one sender's effect on receivers.

A query names a sender (``input``, a head or an MLP, optionally at a role) and receivers (the
logits, heads' q/k/v inputs or MLP inputs, optionally at a role). Its effect is how much the task
metric drops when the sender's ablated output reaches the model only through those receivers.
Two patched passes over the clean prompts compute it:

1. The sender's output takes its ablated value at its positions while other components are
   frozen at their clean outputs, and each receiver's input is recorded. Which components are
   frozen is the *freezing convention*: ``wang`` (Wang et al.'s IOI path patching, the default)
   freezes every other attention head and recomputes the MLPs, so paths through MLPs count;
   ``direct`` (Goldowsky-Dill et al.'s strict direct path) freezes every other head and MLP, so
   only the sender's own write to the residual stream reaches the receivers -- for one receiver
   that is exactly patching the edge sender->receiver.
2. The clean run again with each receiver's input, at its positions, replaced by its pass-1
   value; everything downstream is recomputed. The effect is ``m(clean) - m(pass 2)`` per
   example (the catalog's sign: positive = the path helps the task behaviour).

Freezing a head at its clean output is done on the layer's attention output (every head frozen
means ``attn_out`` is the clean one, plus the sender's change when it lives in that layer), so no
per-head result tensor is built. Queries run as copies of the batch: pass 1 once per distinct
sender, pass 2 once per query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict

from catalog.discovery.contract import MethodInputs, SelectedCircuit, number_param
from catalog.discovery.engine import (
    Ablator,
    Metric,
    Progress,
    batches,
    device_of,
    max_rows_for,
    n_examples,
    new_buffer,
    patched_logits,
    prepared,
    source_hooks,
    task_metric,
    valid_mask,
)
from catalog.discovery.layout import QKV_ORDER, Layout, selected_graph
from catalog.errors import DiscoveryError, InvalidInputError, suggest
from catalog.naming import EMBED_HOOK, NodeKind, block_hook, logits_input_hook, parse_node, qkv_input_hook
from catalog.provenance import Ablation

Hook = tuple[str, Callable[..., Any]]


class Freeze(str, Enum):
    """Which components pass 1 freezes at their clean outputs."""

    WANG = "wang"  # every other attention head; MLPs recomputed (Wang et al. 2022)
    DIRECT = "direct"  # every other head and MLP: the strict direct path (Goldowsky-Dill et al. 2023)


FREEZE_DESCRIPTIONS = {
    Freeze.WANG: "every other attention head frozen at its clean output, MLPs recomputed (Wang et al. 2022)",
    Freeze.DIRECT: "every other head and MLP frozen at its clean output: the direct path only "
                   "(Goldowsky-Dill et al. 2023)",
}


def freeze_of(value: Freeze | str) -> Freeze:
    """A `Freeze` from its name, or an error listing the conventions."""
    try:
        return Freeze(value)
    except ValueError:
        raise suggest(str(value), [f.value for f in Freeze], "freezing convention") from None


# --- senders, receivers and their positions ---------------------------------------------------

# a node id (with its optional @ROLE or @index), then an optional <q|k|v...> for a receiving head
_END_RE = re.compile(r"^(?P<node>[^<>]+?)(?:<(?P<qkv>[qkv]{1,3})>)?$")


@dataclass(frozen=True)
class Sender:
    """What is patched: ``input``, a head or an MLP, at a role (None: every position)."""

    node: str
    role: str | None = None

    def __str__(self) -> str:
        return self.node + (f"@{self.role}" if self.role else "")


@dataclass(frozen=True)
class Receiver:
    """Where the sender's change is let in: ``logits``, a head's q/k/v inputs or an MLP's input."""

    node: str
    qkv: tuple[str, ...] = ()
    role: str | None = None

    def __str__(self) -> str:
        text = self.node + (f"@{self.role}" if self.role else "")
        return text + (f"<{''.join(self.qkv)}>" if self.qkv and len(self.qkv) < 3 else "")


def _split(text: str, what: str) -> tuple[Any, str | None, str | None]:
    """(parsed component without its position, role or index as text, q/k/v letters)."""
    m = _END_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InvalidInputError(
            f"'{text}' is not a {what}. Write a component id with an optional role and, for a "
            "receiving head, its inputs: a1.h0, m0@S2, a2.h1@END<q>, logits."
        )
    comp = parse_node(m["node"])
    role = comp.role if comp.role is not None else (None if comp.position is None else str(comp.position))
    return replace(comp, position=None, role=None), role, m["qkv"]


def parse_sender(text: str) -> Sender:
    """A sender from ``NODE[@ROLE]``.

    >>> parse_sender("a1.h0@END")
    Sender(node='a1.h0', role='END')
    """
    comp, role, qkv = _split(text, "sender")
    if comp.kind not in (NodeKind.INPUT, NodeKind.ATTENTION, NodeKind.MLP) or qkv:
        raise InvalidInputError(f"A sender is input, a head (aL.hH) or an MLP (mL), optionally "
                                f"with @ROLE; got '{text}'.")
    return Sender(str(comp), role)


def parse_receiver(text: str) -> Receiver:
    """A receiver from ``NODE[@ROLE][<q|k|v>]``; a head without ``<...>`` receives on q, k and v.

    >>> parse_receiver("a2.h1@END<q>")
    Receiver(node='a2.h1', qkv=('q',), role='END')
    >>> parse_receiver("logits").qkv
    ()
    """
    comp, role, qkv = _split(text, "receiver")
    if comp.kind not in (NodeKind.LOGITS, NodeKind.ATTENTION, NodeKind.MLP) or comp.token is not None:
        raise InvalidInputError(f"A receiver is logits, a head (aL.hH, optionally <q>, <k> or <v>) "
                                f"or an MLP (mL), optionally with @ROLE; got '{text}'.")
    if qkv and comp.kind is not NodeKind.ATTENTION:
        raise InvalidInputError(f"Only a head has q, k and v inputs; drop <{qkv}> from '{text}'.")
    if comp.kind is NodeKind.ATTENTION:
        chosen = tuple(x for x in QKV_ORDER if x in (qkv or "qkv"))
        return Receiver(str(comp), chosen, role)
    return Receiver(str(comp), (), role)


def role_positions(dataset: Any, role: str) -> torch.Tensor:
    """Per-example token index [N] of a role: ``END`` (where the logits are read), a token
    index, or a role the task's dataset names."""
    n, t = dataset.clean.shape
    if role.isdigit():
        if int(role) >= t:
            raise InvalidInputError(f"Position {role} is past the end of the prompts ({t} tokens).")
        return torch.full((n,), int(role), dtype=torch.long)
    if role == "END":
        return dataset.positions.to("cpu", torch.long)
    lookup = getattr(dataset, "role_positions", None)
    if callable(lookup):
        return lookup(role).to("cpu", torch.long)
    raise InvalidInputError(f"Unknown role '{role}': this task's dataset names no roles. Use END "
                            "(where the answer is read) or a token index such as @5.")


def _positions_mask(dataset: Any, role: str | None) -> torch.Tensor | None:
    """``[N, T]`` bool mask of a role's positions, or None for every position."""
    if role is None:
        return None
    pos = role_positions(dataset, role)
    mask = torch.zeros(dataset.clean.shape, dtype=torch.bool)
    mask[torch.arange(mask.shape[0]), pos] = True
    return mask


# --- checking a query against the model --------------------------------------------------------

@dataclass(frozen=True)
class Query:
    """One path-patching question: a sender and the receivers its change may reach."""

    sender: Sender
    receivers: tuple[Receiver, ...]

    def __str__(self) -> str:
        return f"{self.sender} -> {', '.join(map(str, self.receivers))}"


def _check_node(layout: Layout, node: str) -> None:
    comp = parse_node(node)
    if comp.kind in (NodeKind.ATTENTION, NodeKind.MLP) and comp.layer is not None and comp.layer >= layout.n_layers:
        raise InvalidInputError(f"{node} does not exist: the model has layers 0-{layout.n_layers - 1}.")
    if comp.kind is NodeKind.ATTENTION and comp.head is not None and comp.head >= layout.n_heads:
        raise InvalidInputError(f"{node} does not exist: the model has heads 0-{layout.n_heads - 1} per layer.")
    if comp.kind is NodeKind.MLP and not layout.has_mlp:
        raise InvalidInputError(f"{node} does not exist: the model is attention-only.")


def destinations(layout: Layout, receiver: Receiver) -> list[int]:
    """Dense destination indices of a receiver."""
    comp = parse_node(receiver.node)
    if comp.kind is NodeKind.LOGITS:
        return [layout.logits_dest]
    if comp.kind is NodeKind.MLP:
        return [layout.mlp_dest(comp.layer)]  # type: ignore[arg-type]
    return [layout.head_dest(comp.layer, x, comp.head) for x in receiver.qkv]  # type: ignore[arg-type]


def check_query(layout: Layout, query: Query) -> None:
    """Raise a one-line error when a node does not exist or a receiver is not downstream."""
    _check_node(layout, query.sender.node)
    if not query.receivers:
        raise InvalidInputError("Name at least one receiver (logits, a head or an MLP).")
    src = layout.sources.index(query.sender.node)
    for r in query.receivers:
        _check_node(layout, r.node)
        for d in destinations(layout, r):
            if src >= layout.n_upstream(d):
                raise InvalidInputError(f"{r.node} does not read {query.sender.node}'s output (it is not "
                                        "downstream of it); choose a receiver in a later layer.")


# --- the two passes ----------------------------------------------------------------------------

def _hook_name(layout: Layout, dest: int) -> tuple[str, int | None]:
    """(hook name, head index or None) of a destination's input."""
    node, qkv = layout.destinations[dest]
    if node == "logits":
        return logits_input_hook(layout.n_layers), None
    comp = parse_node(node)
    if qkv is None:
        return block_hook(comp.layer or 0, "mlp_in"), None
    return qkv_input_hook(comp.layer or 0, qkv), comp.head


def _rows(mask: torch.Tensor | None, lo: int, hi: int, like: torch.Tensor) -> torch.Tensor:
    """``[B, T, 1]`` 0/1 weights of a positions mask for examples lo:hi (all ones for None)."""
    if mask is None:
        return torch.ones(hi - lo, like.shape[1], 1, dtype=like.dtype, device=like.device)
    return mask[lo:hi].to(like.device, like.dtype).unsqueeze(-1)


@torch.no_grad()
def _clean_run(model: Any, layout: Layout, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """(logits, source outputs ``[B, T, S, D]``, each layer's attention output) of the clean run."""
    buf = new_buffer(model, layout, clean)
    attn: list[torch.Tensor] = [clean] * layout.n_layers

    def keep(layer: int) -> Callable[..., None]:
        def hook(act: torch.Tensor, hook: Any) -> None:
            attn[layer] = act.detach().clone()
        return hook

    hooks = source_hooks(model, layout, buf) + [(block_hook(layer, "attn_out"), keep(layer))
                                                for layer in range(layout.n_layers)]
    with model.hooks(fwd_hooks=hooks):
        logits = model(clean)
    return logits, buf, attn


def _sender_pass(model: Any, layout: Layout, freeze: Freeze, clean: torch.Tensor, clean_buf: torch.Tensor,
                 clean_attn: list[torch.Tensor], ablated: torch.Tensor, senders: list[tuple[int, torch.Tensor]],
                 record: set[str]) -> dict[str, torch.Tensor]:
    """Pass 1 for several senders (copy u: sender ``senders[u] = (source, weights [B,T,1])``);
    returns the recorded inputs ``[U*B, ...]`` of every hook in `record`."""
    b, copies = clean.shape[0], len(senders)
    by_layer: dict[tuple[str, int], list[tuple[int, int, torch.Tensor]]] = {}
    for u, (src, w) in enumerate(senders):
        if src == 0:
            by_layer.setdefault(("input", 0), []).append((u, src, w))
        else:
            layer, rel = (src - 1) // layout.block, (src - 1) % layout.block
            by_layer.setdefault(("head" if rel < layout.n_heads else "mlp", layer), []).append((u, src, w))
    hooks: list[Hook] = []

    def frozen_attn(layer: int) -> Callable[..., torch.Tensor]:
        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
            out = clean_attn[layer].repeat(copies, 1, 1)
            for u, src, w in by_layer.get(("head", layer), []):
                out[u * b:(u + 1) * b] += w * (ablated[:, :, src] - clean_buf[:, :, src])
            return out
        return hook

    def mlp(layer: int) -> Callable[..., torch.Tensor]:
        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
            out = clean_buf[:, :, layout.mlp_source(layer)].repeat(copies, 1, 1) if freeze is Freeze.DIRECT else act
            for u, src, w in by_layer.get(("mlp", layer), []):
                part = out[u * b:(u + 1) * b]
                out[u * b:(u + 1) * b] = part + w * (ablated[:, :, src] - part)
            return out
        return hook

    def embed(act: torch.Tensor, hook: Any) -> torch.Tensor:
        for u, _src, w in by_layer[("input", 0)]:
            part = act[u * b:(u + 1) * b]
            act[u * b:(u + 1) * b] = part + w * (ablated[:, :, 0] - part)
        return act

    if ("input", 0) in by_layer:
        hooks.append((EMBED_HOOK, embed))
    for layer in range(layout.n_layers):
        hooks.append((block_hook(layer, "attn_out"), frozen_attn(layer)))
        if layout.has_mlp and (freeze is Freeze.DIRECT or ("mlp", layer) in by_layer):
            hooks.append((block_hook(layer, "mlp_out"), mlp(layer)))
    seen: dict[str, torch.Tensor] = {}

    def keep(act: torch.Tensor, hook: Any) -> None:
        seen[hook.name] = act.detach().clone()

    hooks += [(name, keep) for name in sorted(record)]
    with model.hooks(fwd_hooks=hooks):
        model(clean.repeat(copies, 1))
    return seen


def _receiver_pass(model: Any, part: Any, clean: torch.Tensor, patches: list[list[tuple[str, int | None, int, torch.Tensor]]],
                   seen: dict[str, torch.Tensor], metric: Metric) -> torch.Tensor:
    """Pass 2: copy c patches ``(hook, head, sender copy u, weights)`` for each of its receivers;
    returns the metric ``[C, B]``."""
    b, copies = clean.shape[0], len(patches)
    by_hook: dict[str, list[tuple[int, int | None, int, torch.Tensor]]] = {}
    for c, items in enumerate(patches):
        for name, head, u, w in items:
            by_hook.setdefault(name, []).append((c, head, u, w))

    def make(items: list[tuple[int, int | None, int, torch.Tensor]]) -> Callable[..., torch.Tensor]:
        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
            rec = seen[hook.name]
            for c, head, u, w in items:
                rows, src = slice(c * b, (c + 1) * b), slice(u * b, (u + 1) * b)
                if head is None:
                    act[rows] = act[rows] + w * (rec[src] - act[rows])
                else:
                    act[rows, :, head] = act[rows, :, head] + w * (rec[src, :, head] - act[rows, :, head])
            return act
        return hook

    with model.hooks(fwd_hooks=[(name, make(items)) for name, items in by_hook.items()]):
        logits = model(clean.repeat(copies, 1))
    return torch.stack([metric(part, logits[c * b:(c + 1) * b]).to(torch.float64) for c in range(copies)])


@torch.no_grad()
def path_patch(model: Any, dataset: Any, queries: Sequence[Query], freeze: Freeze | str = Freeze.WANG,
               ablation: Ablation | str = Ablation.COUNTERFACTUAL, batch_size: int = 32,
               max_rows: int = 1024, progress: Progress | None = None,
               metric: Metric | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example effects ``[Q, N]`` (``m(clean) - m(patched)``) of each query, and the clean
    metric ``[N]``. Every query is checked against the model first. `metric` ``(dataset slice,
    logits) -> [B]`` defaults to the dataset's own."""
    freeze, ablation = freeze_of(freeze), Ablation(ablation)
    metric = metric or task_metric
    with prepared(model, split_qkv=True) as layout:
        for q in queries:
            check_query(layout, q)
        n = n_examples(dataset)
        sender_masks = {q.sender: _positions_mask(dataset, q.sender.role) for q in queries}
        receiver_masks = {r: _positions_mask(dataset, r.role) for q in queries for r in q.receivers}
        ablator = Ablator(model, layout, dataset, ablation, batch_size)
        effects = torch.zeros(len(queries), n, dtype=torch.float64)
        base_all = torch.zeros(n, dtype=torch.float64)
        lo = 0
        for part, clean, corrupt in batches(dataset, batch_size, device_of(model)):
            b = clean.shape[0]
            hi = lo + b
            logits, clean_buf, clean_attn = _clean_run(model, layout, clean)
            base = metric(part, logits).to(torch.float64)
            base_all[lo:hi] = base.cpu()
            ablated = ablator.values(clean, corrupt)
            per_pass = max(1, max_rows_for(model, layout, clean.shape[1], max_rows) // b)
            for start in range(0, len(queries), per_pass):
                chunk = list(range(start, min(start + per_pass, len(queries))))
                senders = list(dict.fromkeys(queries[i].sender for i in chunk))
                sender_rows = [(layout.sources.index(s.node), _rows(sender_masks[s], lo, hi, clean_buf))
                               for s in senders]
                patches, record = [], set()
                for i in chunk:
                    u = senders.index(queries[i].sender)
                    items = []
                    for r in queries[i].receivers:
                        w = _rows(receiver_masks[r], lo, hi, clean_buf)
                        for d in destinations(layout, r):
                            name, head = _hook_name(layout, d)
                            items.append((name, head, u, w))
                            record.add(name)
                    patches.append(items)
                seen = _sender_pass(model, layout, freeze, clean, clean_buf, clean_attn, ablated, sender_rows, record)
                patched = _receiver_pass(model, part, clean, patches, seen, metric)
                effects[chunk, lo:hi] = (base.unsqueeze(0) - patched).cpu()
            lo = hi
            if progress:
                progress("path patching", lo, n)
        return effects, base_all


# --- one question, answered -------------------------------------------------------------------

class PathResult(BaseModel):
    """The answer to one path-patching question, as ``catalog path`` prints it (and ``--json``)."""

    model_config = ConfigDict(frozen=True)

    model: str
    task: str | None
    sender: str
    receivers: list[str]
    freeze: Freeze
    freeze_description: str
    ablation: Ablation
    metric: str | None
    n: int
    effect_mean: float
    effect_std: float
    metric_clean: float
    per_example: list[float]

    def describe(self) -> str:
        """One line: the question and its answer."""
        return (f"{self.sender} -> {', '.join(self.receivers)}: metric drop {self.effect_mean:.4g} "
                f"± {self.effect_std:.4g} (std over {self.n} examples; clean {self.metric or 'metric'} "
                f"{self.metric_clean:.4g}; {self.freeze.value} freezing, {self.ablation.value} ablation)")


def path_effect(loaded_model: Any, dataset: Any, sender: str, receivers: Sequence[str],
                freeze: Freeze | str = Freeze.WANG, ablation: Ablation | str = Ablation.COUNTERFACTUAL,
                batch_size: int = 32, task: str | None = None, progress: Progress | None = None) -> PathResult:
    """The effect of `sender` on `receivers` (ids as ``catalog path`` takes them), per example."""
    from catalog.discovery.scoring import model_and_shape

    freeze = freeze_of(freeze)
    try:
        ablation = Ablation(ablation)
    except ValueError:
        raise suggest(str(ablation), [a.value for a in Ablation], "ablation") from None
    query = Query(parse_sender(sender), tuple(parse_receiver(r) for r in receivers))
    model, shape = model_and_shape(loaded_model)
    effects, base = path_patch(model, dataset, [query], freeze, ablation, batch_size, progress=progress)
    row = effects[0]
    return PathResult(
        model=shape.name, task=task or getattr(dataset, "task", None), sender=str(query.sender),
        receivers=[str(r) for r in query.receivers], freeze=freeze,
        freeze_description=FREEZE_DESCRIPTIONS[freeze], ablation=ablation,
        metric=getattr(dataset, "metric_name", None), n=int(row.shape[0]),
        effect_mean=float(row.mean()), effect_std=float(row.std(unbiased=False)),
        metric_clean=float(base.mean()), per_example=[float(x) for x in row],
    )


# --- a circuit, built backwards from the logits -------------------------------------------------

def _component_destinations(layout: Layout, src: int) -> list[int]:
    """The destinations through which a component reads the residual stream."""
    node = layout.sources[src]
    comp = parse_node(node)
    if comp.kind is NodeKind.MLP:
        return [layout.mlp_dest(comp.layer)]  # type: ignore[arg-type]
    return [layout.head_dest(comp.layer, x, comp.head) for x in QKV_ORDER]  # type: ignore[arg-type]


@torch.no_grad()
def discover_paths(model: Any, dataset: Any, threshold: float = 0.05, freeze: Freeze | str = Freeze.WANG,
                   ablation: Ablation | str = Ablation.COUNTERFACTUAL, batch_size: int = 32,
                   max_rows: int = 1024, progress: Progress | None = None, metric: Metric | None = None,
                   ) -> tuple[list[list[bool]], list[list[float | None]], float]:
    """Grow a circuit backwards from the logits by path patching.

    First every sender (``input``, each head and MLP) is patched with the logits as receiver;
    then, for each component found so far, every upstream sender with each of its inputs (a
    head's q, k and v separately, an MLP's input) as receiver; and so on until no new component
    is found. An edge is kept when its mean effect is at least `threshold` times the full effect
    ``|m(clean) - m(ablated)|`` in absolute value. Returns (kept ``[S][Dst]``, the mean effect of
    every edge asked about ``[S][Dst]`` (None elsewhere), the full effect).
    """
    if not (0.0 <= threshold < float("inf")):
        raise InvalidInputError(f"The path-patching threshold must be a finite number >= 0, got {threshold}.")
    freeze, ablation = freeze_of(freeze), Ablation(ablation)
    metric = metric or task_metric
    full = _full_effect(model, dataset, ablation, batch_size, metric)
    layout = Layout.for_model(model)
    kept = [[False] * layout.n_destinations for _ in range(layout.n_sources)]
    scores: list[list[float | None]] = [[None] * layout.n_destinations for _ in range(layout.n_sources)]
    explored: set[int] = set()
    frontier = [layout.logits_dest]
    level = 0
    while frontier:
        pairs = [(s, d) for d in frontier for s in range(layout.n_upstream(d))]
        queries = [Query(Sender(layout.sources[s]), (_receiver_of(layout, d),)) for s, d in pairs]
        level += 1

        def report(phase: str, done: int, total: int, level: int = level) -> None:
            if progress:
                progress(f"path patching, receivers at depth {level}", done, total)

        effects, _ = path_patch(model, dataset, queries, freeze, ablation, batch_size, max_rows, report, metric)
        frontier = []
        for (s, d), row in zip(pairs, effects):
            scores[s][d] = float(row.mean())
            if abs(scores[s][d]) >= threshold * full:  # type: ignore[arg-type]
                kept[s][d] = True
                if s != 0 and s not in explored:
                    explored.add(s)
                    frontier += _component_destinations(layout, s)
    return kept, scores, full


@torch.no_grad()
def _full_effect(model: Any, dataset: Any, ablation: Ablation, batch_size: int, metric: Metric) -> float:
    """``|m(clean) - m(ablated)|``: the metric with every edge patched against the clean one."""
    total = 0.0
    with prepared(model) as layout:
        ablator = Ablator(model, layout, dataset, ablation, batch_size)
        every = valid_mask(layout, device_of(model)).unsqueeze(0)
        for part, clean, corrupt in batches(dataset, batch_size, device_of(model)):
            base = metric(part, model(clean)).to(torch.float64)
            patched = metric(part, patched_logits(model, layout, clean, ablator.values(clean, corrupt), every))
            total += float((base - patched.to(torch.float64)).sum())
    full = abs(total / n_examples(dataset))
    if full < 1e-9:
        raise DiscoveryError("The clean and ablated runs give the same metric, so no path can carry an "
                             "effect: check the task, the model or the ablation.")
    return full


def _receiver_of(layout: Layout, dest: int) -> Receiver:
    node, qkv = layout.destinations[dest]
    return Receiver(node, (qkv,) if qkv else ())


def run(inputs: MethodInputs, threshold: float = 0.05, freeze: str = Freeze.WANG.value) -> SelectedCircuit:
    """The `Method` entry point: the circuit `discover_paths` grows, edges scored by their
    path-patching effect."""
    from catalog.discovery.scoring import model_and_shape

    model, shape = model_and_shape(inputs.model)
    kept, scores, _ = discover_paths(model, inputs.dataset, number_param(threshold, "The path-patching threshold"),
                                     freeze, inputs.ablation, inputs.batch_size, progress=inputs.progress,
                                     metric=inputs.metric)
    return SelectedCircuit(selected_graph(shape, Layout.for_model(model), kept, scores))

