"""Position-resolved discovery: score (component, role) nodes such as ``a1.h0@END`` and ``m0@S2``.

A task names every position of each prompt by a role (`catalog.tasks.roles`); roles align
positions across prompts of different lengths. A node ``u@r`` is component ``u``'s output at the
position whose role is ``r``, in every example that has that role (one position per example).
Its score is, like every score here, the mean over all examples of the metric drop (examples
without the role add 0), so a component's scores summed over its roles are the mean over
examples of the sum over positions.

- ``activation-patching``: exact. ``u@r`` is patched alone, at that one position per example
  (components of one layer and several roles share a pass as copies of the batch).
- ``eap`` / ``eap-ig``: ``(a_u,ablated - a_u,clean) . dL/da_u`` at each position, aggregated per
  role. Attribution is linear, so the sum over roles equals the all-position node score exactly.
- Per-position edges are not scored: see docs/DISCOVERY.md for the edge set they would need.

Under counterfactual ablation, positions before the first token where the clean and corrupt
prompts differ are identical in both runs (attention only looks back), so nothing there can be
patched: a role that lies before it in every example gets no node.

The graph a position-resolved method returns holds scored nodes and no edges; selection keeps
nodes and `RoleEvaluator` measures faithfulness by patching, at each position, every component
whose node there is outside the circuit.
"""

from __future__ import annotations

from typing import Any

import torch

from catalog.discovery.engine import (
    DEFAULT_MAX_ROWS,
    Ablator,
    Progress,
    batches,
    copies_per_pass,
    device_of,
    max_rows_for,
    metric_per_copy,
    n_examples,
    prepared,
    record,
    source_hooks,
)
from catalog.discovery.evaluation import Evaluator
from catalog.discovery.layout import Layout
from catalog.discovery.methods.activation_patching import _replace_hooks, components, patching_totals
from catalog.errors import DiscoveryError, InvalidInputError
from catalog.graph import CircuitGraph, ModelShape, Node
from catalog.naming import NodeKind, block_hook, component_of, with_role
from catalog.provenance import Ablation

#: Methods that can score (component, role) nodes.
POSITION_METHODS = ("activation-patching", "eap", "eap-ig")


def role_ids_of(dataset: Any) -> tuple[tuple[str, ...], torch.Tensor]:
    """(role names, ``[N, T]`` role index per position, -1 on padding) of a dataset.

    A dataset without roles (any object with the `TaskDataset` tensors) gets ``END`` at its read
    position and ``OTHER`` before it, as a task that names no positions does.
    """
    ids = getattr(dataset, "role_ids", None)
    if ids is not None:
        return tuple(dataset.role_names), ids
    from catalog.tasks.base import _plain_role_ids

    return _plain_role_ids(dataset.positions, dataset.clean.shape[1])


def scored_roles(dataset: Any, ablation: Ablation) -> tuple[list[str], torch.Tensor]:
    """(the roles to score, ``[N, T]`` role index with -1 wherever nothing can be patched).

    Under counterfactual ablation positions before the first clean/corrupt difference are -1;
    a role left with no position in any example is not scored.
    """
    names, ids = role_ids_of(dataset)
    ids = ids.clone()
    if Ablation(ablation) is Ablation.COUNTERFACTUAL:
        differs = (dataset.clean != dataset.corrupt).to(ids.device)
        t = torch.arange(ids.shape[1], device=ids.device)[None, :]  # a dataset may sit on the model's device
        first = torch.where(differs, t, ids.shape[1]).min(dim=1).values
        ids[t < first[:, None]] = -1
    present = set(int(i) for i in ids.unique().tolist() if i >= 0)
    keep = [r for i, r in enumerate(names) if i in present]
    if not keep:
        raise DiscoveryError("Clean and counterfactual prompts never differ, so no position can be "
                             "patched; check the task's counterfactual.")
    return keep, ids


def _role_index(names: tuple[str, ...], roles: list[str]) -> dict[int, int]:
    """Dataset role index -> column in the scored-roles list."""
    return {names.index(r): j for j, r in enumerate(roles)}


# --- activation patching by role ---------------------------------------------------------------


def activation_patching_by_role(model: Any, dataset: Any, ablation: Ablation = Ablation.COUNTERFACTUAL,
                                batch_size: int = 32, max_rows: int = DEFAULT_MAX_ROWS,
                                progress: Progress | None = None) -> dict[str, float]:
    """Exact score of every (head or MLP, role): its output patched at that role's position only.

    Returns ``{"a1.h0@END": score, ...}``; score = mean over examples of m(clean) - m(patched).
    """
    names, _ = role_ids_of(dataset)
    roles, ids = scored_roles(dataset, ablation)
    column = _role_index(names, roles)

    def where(first: int, b: int, device: torch.device, dtype: torch.dtype) -> dict[int, torch.Tensor]:
        part_ids = ids[first:first + b].to(device)
        return {j: (part_ids == i).to(dtype) for i, j in column.items() if bool((part_ids == i).any())}

    layout, comps, totals = patching_totals(model, dataset, ablation, batch_size, "activation patching by role",
                                            max_rows=max_rows, progress=progress, where=where, columns=len(roles))
    n = n_examples(dataset)
    return {with_role(layout.sources[src], r): float(totals[k, j] / n)
            for k, src in enumerate(comps) for j, r in enumerate(roles)}


# --- attribution by role -----------------------------------------------------------------------


def _output_grad_hooks(layout: Layout, grads: dict[int, torch.Tensor]) -> list[tuple[str, Any]]:
    """Forward hooks that keep dL/d(output) of every layer's attention and MLP output.

    Every head of a layer adds its output into ``hook_attn_out``, so each head's output
    gradient is that hook's gradient.
    """

    def keep(key: int) -> Any:
        def hook(act: torch.Tensor, hook: Any) -> None:
            if act.requires_grad:
                act.register_hook(lambda g: grads.__setitem__(key, g.detach()))

        return hook

    hooks = []
    for layer in range(layout.n_layers):
        hooks.append((block_hook(layer, "attn_out"), keep(2 * layer)))
        if layout.has_mlp:
            hooks.append((block_hook(layer, "mlp_out"), keep(2 * layer + 1)))
    return hooks


def attribution_by_role(model: Any, dataset: Any, ablation: Ablation = Ablation.COUNTERFACTUAL,
                        batch_size: int = 32, steps: int = 1,
                        progress: Progress | None = None) -> dict[str, float]:
    """EAP (``steps=1``) or EAP-IG node attribution of every (head or MLP, role).

    ``score(u@r) = mean over examples of (a_u,ablated - a_u,clean) . dL/da_u`` at the position of
    role r, L = -metric, the gradient averaged over the integrated-gradient points as EAP-IG does.
    """
    from catalog.discovery.attribution import _input_hook

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be a positive integer, got {steps!r}.")
    names, _ = role_ids_of(dataset)
    roles, ids = scored_roles(dataset, ablation)
    column = _role_index(names, roles)
    with prepared(model, split_qkv=False) as layout:
        dev = device_of(model)
        comps = components(layout)
        ablator = Ablator(model, layout, dataset, ablation, batch_size)
        totals = torch.zeros(len(comps), len(roles), dtype=torch.float64, device=dev)
        alphas = [1.0] + [k / steps for k in range(1, steps)]
        n = n_examples(dataset)
        done = 0
        start = 0
        for part, clean, corrupt in batches(dataset, batch_size, dev):
            b = clean.shape[0]
            part_ids = ids[start:start + b].to(dev)
            start += b
            onehot = torch.zeros(b, clean.shape[1], len(roles), dtype=torch.float64, device=dev)
            for i, j in column.items():
                onehot[..., j] = (part_ids == i).to(torch.float64)
            ablated = ablator.values(clean, corrupt)
            diff: torch.Tensor | None = None
            for alpha in alphas:
                grads: dict[int, torch.Tensor] = {}
                hooks = [_input_hook(alpha, ablated[:, :, 0])] + _output_grad_hooks(layout, grads)
                buf = None
                if alpha == 1.0:
                    buf = torch.zeros_like(ablated)
                    hooks += source_hooks(model, layout, buf)
                with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
                    loss = -part.metric(model(clean)).sum()
                    loss.backward()
                if buf is not None:  # alpha = 1 runs first: the clean run the differences need
                    diff = (ablated - buf)[:, :, 1:]  # components only: [B, T, C, D]
                if diff is None:
                    raise DiscoveryError("Internal error: the clean pass did not run first.")
                grad = torch.stack([grads[2 * ((src - 1) // layout.block)
                                          + int((src - 1) % layout.block >= layout.n_heads)]
                                    for src in comps], dim=2)  # [B, T, C, D]
                per_pos = (diff * grad).sum(-1).to(torch.float64)  # [B, T, C]
                totals += torch.einsum("btc,btr->cr", per_pos, onehot)
            done += b
            if progress:
                progress("attribution by role", done, n)
        scores = (totals / (n * steps)).cpu()
        return {with_role(layout.sources[src], r): float(scores[k, j])
                for k, src in enumerate(comps) for j, r in enumerate(roles)}


def eap_by_role(model: Any, dataset: Any, ablation: Ablation = Ablation.COUNTERFACTUAL,
                batch_size: int = 32, progress: Progress | None = None) -> dict[str, float]:
    """EAP node attribution by role (one gradient at the clean input)."""
    return attribution_by_role(model, dataset, ablation, batch_size, steps=1, progress=progress)


# --- graphs and evaluation ---------------------------------------------------------------------


def role_graph(shape: ModelShape, scores: dict[str, float]) -> CircuitGraph:
    """A position-resolved result as a graph: every scored (component, role) node, no edges."""
    return CircuitGraph(shape, tuple(Node.of(nid, score=s, in_circuit=False) for nid, s in scores.items()))


def collapse(scores: dict[str, float]) -> dict[str, float]:
    """Per-role scores summed into per-component scores.

    >>> collapse({"a1.h0@END": 0.5, "a1.h0@S2": 0.25, "m0@S2": 1.0})
    {'a1.h0': 0.75, 'm0': 1.0}
    """
    out: dict[str, float] = {}
    for nid, s in scores.items():
        key = component_of(nid)
        out[key] = out.get(key, 0.0) + s
    return out


class RoleEvaluator(Evaluator):
    """Faithfulness of position-resolved circuits: at every position, each head and MLP whose
    (component, role) node is outside the circuit is patched (its output replaced by the
    ablated one). With every node outside, that is the fully ablated run; with every node in, the
    clean run (positions that can not be patched are identical in both), so f(full) = 1 and
    f(empty) = 0 as for component circuits."""

    def __init__(self, model: Any, dataset: Any, ablation: Ablation = Ablation.COUNTERFACTUAL,
                 batch_size: int = 32, max_rows: int = 1024, progress: Progress | None = None):
        self.model, self.dataset, self.batch_size, self.max_rows = model, dataset, batch_size, max_rows
        self.progress = progress
        self.n = n_examples(dataset)
        self.ablation = Ablation(ablation)
        self.names, self.ids = role_ids_of(dataset)
        with prepared(model, split_qkv=False) as layout:
            self.layout = layout
            self.comps = components(layout)
            self.ablator = Ablator(model, layout, dataset, ablation, batch_size)
            clean_total = 0.0
            for part, clean, _ in batches(dataset, batch_size, device_of(model)):
                clean_total += float(part.metric(record(model, layout, clean)[0]).to(torch.float64).sum())
        self.metric_clean = clean_total / self.n
        self.metric_ablated = self._metric_of([set()])[0]
        if abs(self.metric_clean - self.metric_ablated) < 1e-9:
            raise DiscoveryError(
                f"The clean and ablated runs give the same metric ({self.metric_clean:.4g}), so "
                "faithfulness is undefined: the model does not do this task, or the ablation "
                "removes nothing. Check the task, the model or the ablation."
            )

    def _kept(self, graph: CircuitGraph) -> set[tuple[str, str]]:
        self.layout.check_shape(graph.shape)
        out = set()
        for node in graph.circuit_nodes:
            if node.kind in (NodeKind.ATTENTION, NodeKind.MLP):
                if node.role is None:
                    raise DiscoveryError(f"Node {node.id} has no role; this circuit is not position-resolved.")
                out.add((component_of(node.id), node.role))
        return out

    @torch.no_grad()
    def _metric_of(self, kept: list[set[tuple[str, str]]]) -> list[float]:
        """Mean metric with, per circuit, every (component, position) outside it patched."""
        totals = torch.zeros(len(kept), dtype=torch.float64)
        with prepared(self.model, split_qkv=False) as layout:
            dev = device_of(self.model)
            start = 0
            for part, clean, corrupt in batches(self.dataset, self.batch_size, dev):
                b = clean.shape[0]
                part_ids = self.ids[start:start + b].to(dev)
                start += b
                ablated = self.ablator.values(clean, corrupt)
                rows = max_rows_for(self.model, layout, clean.shape[1], self.max_rows)
                per_pass = copies_per_pass(b, len(kept), rows)
                for first in range(0, len(kept), per_pass):
                    chunk = kept[first:first + per_pass]
                    # Every copy patches every component, each at the positions outside its circuit.
                    hooks = []
                    for src in self.comps:
                        comp = layout.sources[src]
                        where = []
                        for keep in chunk:
                            mask = part_ids >= 0
                            for i, r in enumerate(self.names):
                                if (comp, r) in keep:
                                    mask &= part_ids != i
                            where.append(mask.to(ablated.dtype))
                        hooks += _replace_hooks(self.model, layout, ablated, [src] * len(chunk), b, where)
                    with self.model.hooks(fwd_hooks=hooks):
                        logits = self.model(clean.repeat(len(chunk), 1))
                    totals[first:first + len(chunk)] += metric_per_copy(part, logits, len(chunk)).sum(1).cpu()
        return (totals / self.n).tolist()

    def faithfulness_many(self, graphs: list[CircuitGraph]) -> list[float]:
        if not graphs:
            return []
        return [self.normalise(m) for m in self._metric_of([self._kept(g) for g in graphs])]
