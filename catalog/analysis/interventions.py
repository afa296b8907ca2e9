"""Interventions: ablate, patch or scale heads and MLPs, and measure metric and accuracy.

A target is a component id with an optional position role: ``a1.h1`` (every position),
``a1.h0@END`` (each example's END token), ``m0@S2`` or ``a0.h3@5`` (token index 5). A head is
edited through its ``hook_z`` slice (its output is ``z_h @ W_O[h]``, so replacing z replaces
exactly what the head writes); an MLP through ``hook_mlp_out``.

- ablate: the component's value replaced by its counterfactual-run value (default), its mean
  over the clean prompts at that position, or zero;
- patch: replaced by its value on another prompt set: the task's counterfactual prompts, or with
  ``patch_from`` another task's clean prompts (example i takes example i's value; with a role,
  from that role's position in the other prompt);
- scale: multiplied by a factor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalog.analysis import context
from catalog.analysis.positions import check_role, locate, role_positions
from catalog.analysis.records import InterventionResult
from catalog.errors import InvalidInputError
from catalog.graph import ModelShape
from catalog.naming import NodeKind, attn_hook, block_hook, format_node, parse_node, with_role
from catalog.provenance import Ablation
from catalog.tasks.base import parse_task_ref

if TYPE_CHECKING:
    import torch

    from catalog.store import Catalog


@dataclass(frozen=True)
class Target:
    """A head or MLP, at every position (`role` None) or at one role / token index."""

    node: str
    kind: NodeKind
    layer: int
    head: int | None
    role: str | None

    @property
    def hook(self) -> str:
        return attn_hook(self.layer, "z") if self.head is not None else block_hook(self.layer, "mlp_out")

    def __str__(self) -> str:
        return self.node + (f"@{self.role}" if self.role else "")


def parse_target(text: str, shape: ModelShape, task: str | None = None, dataset: Any = None) -> Target:
    """A `Target` from ``a1.h0``, ``a1.h0@END``, ``m0@S2`` or ``a0.h3@5``, checked against the
    model's shape and the task's roles."""
    try:
        comp = parse_node(text)
    except InvalidInputError:
        raise InvalidInputError(
            f"'{text}' is not a head or MLP: use aL.hH (e.g. a1.h0) or mL (e.g. m0), optionally "
            "at a position role or token index (a1.h0@END, m0@5)."
        ) from None
    node = with_role(format_node(comp), None)
    role = comp.role or (str(comp.position) if comp.position is not None else None)
    if comp.kind not in (NodeKind.ATTENTION, NodeKind.MLP) or comp.layer is None:
        raise InvalidInputError(f"'{text}': only attention heads (aL.hH) and MLPs (mL) can be edited.")
    dims = f"{shape.name} has {shape.n_layers} layers x {shape.n_heads} heads"
    if comp.layer >= shape.n_layers or (comp.head is not None and comp.head >= shape.n_heads):
        raise InvalidInputError(
            f"{node} does not exist in the model: {dims} (layers 0-{shape.n_layers - 1}, heads "
            f"0-{shape.n_heads - 1})."
        )
    if role and task is not None and dataset is not None:
        check_role(task, role, dataset)
    return Target(node=node, kind=comp.kind, layer=comp.layer, head=comp.head, role=role or None)


def parse_scale(text: str, shape: ModelShape, task: str | None = None, dataset: Any = None) -> tuple[Target, float]:
    """``(target, factor)`` from ``a2.h1=2.0``."""
    target, eq, value = text.partition("=")
    if not eq:
        raise InvalidInputError(f"--scale '{text}': give COMPONENT=FACTOR, e.g. a2.h1=2.0.")
    try:
        factor = float(value)
    except ValueError:
        raise InvalidInputError(
            f"--scale '{text}': the scale '{value}' is not a number; give COMPONENT=FACTOR, e.g. a2.h1=2.0."
        ) from None
    if factor != factor or factor in (float("inf"), float("-inf")):
        raise InvalidInputError(f"--scale '{text}': the scale must be a finite number.")
    return parse_target(target, shape, task, dataset), factor


# --- edits as hooks ---------------------------------------------------------------------------


@dataclass
class Edit:
    """One edit on one hook: rows of `value` (or a factor) written at `positions` ([N], -1 skips;
    None: every position)."""

    target: Target
    positions: torch.Tensor | None
    value: torch.Tensor | None = None  # [N, T, (H,) d] aligned with the dataset's rows
    source_positions: torch.Tensor | None = None  # where to read `value` (default: `positions`)
    factor: float | None = None

    def apply(self, act: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        import torch

        idx = (slice(None),) if self.target.head is None else (slice(None), self.target.head)
        if self.positions is None:
            if self.factor is not None:
                act[(slice(None), slice(None), *idx[1:])] *= self.factor
            else:
                val = self.value[start:stop]  # type: ignore[index]
                act[(slice(None), slice(None), *idx[1:])] = val[(slice(None), slice(None), *idx[1:])].to(act.dtype)
            return act
        pos = self.positions[start:stop].to(act.device)
        rows = torch.nonzero(pos >= 0).flatten()
        if rows.numel() == 0:
            return act
        at = pos[rows]
        sel = (rows, at, *idx[1:])
        if self.factor is not None:
            act[sel] = act[sel] * self.factor
        else:
            src = (self.source_positions if self.source_positions is not None else self.positions)[start:stop]
            src_at = src.to(act.device)[rows]
            val = self.value[start:stop].to(act.device)  # type: ignore[index]
            act[sel] = val[(rows, src_at, *idx[1:])].to(act.dtype)
        return act


def edit_hooks(edits: Sequence[Edit]) -> Any:
    """``hooks(start, stop)`` for `context.outcome`: each hook applies its edits in order."""
    by_hook: dict[str, list[Edit]] = {}
    for e in edits:
        by_hook.setdefault(e.target.hook, []).append(e)

    def hooks(start: int, stop: int) -> list[context.Hook]:
        out = []
        for name, group in by_hook.items():
            def fn(act: Any, hook: Any, group: list[Edit] = group) -> Any:
                for e in group:
                    act = e.apply(act, start, stop)
                return act

            out.append((name, fn))
        return out

    return hooks


def ablation_values(model: Any, ds: Any, targets: Iterable[Target], ablation: Ablation) -> dict[str, torch.Tensor]:
    """Per hook, the ablated activations ``[N, T, ...]``: counterfactual run, clean mean, or 0."""
    import torch

    names = sorted({t.hook for t in targets})
    if not names:
        return {}
    if ablation is Ablation.COUNTERFACTUAL:
        return context.capture(model, ds.corrupt, names)
    clean = context.capture(model, ds.clean, names)
    if ablation is Ablation.MEAN:
        return {k: v.mean(0, keepdim=True).expand_as(v) for k, v in clean.items()}
    return {k: torch.zeros_like(v) for k, v in clean.items()}


def plan(model: Any, ds: Any, roles: Mapping[str, Any], ablate: Sequence[Target] = (),
         patch: Sequence[Target] = (), scale: Sequence[tuple[Target, float]] = (),
         ablation: Ablation = Ablation.COUNTERFACTUAL, source: Any = None,
         source_roles: Mapping[str, Any] | None = None) -> list[Edit]:
    """The edits for these ablations, patches and scalings on dataset `ds` (rows aligned)."""
    n = len(ds)

    def where(t: Target, rs: Mapping[str, Any]) -> Any:
        return None if t.role is None else role_positions(dict(rs), t.role, n)

    edits: list[Edit] = []
    abl = ablation_values(model, ds, ablate, ablation)
    edits += [Edit(t, where(t, roles), value=abl[t.hook]) for t in ablate]
    if patch:
        if source is None:  # the task's own counterfactual prompts, position for position
            vals = context.capture(model, ds.corrupt, {t.hook for t in patch})
            edits += [Edit(t, where(t, roles), value=vals[t.hook]) for t in patch]
        else:
            if len(source) < n:
                raise InvalidInputError(f"The patch source has {len(source)} examples; it needs at least {n}.")
            vals = context.capture(model, source.clean[:n], {t.hook for t in patch})
            for t in patch:
                if t.role is None and source.clean.shape[1] != ds.clean.shape[1]:
                    raise InvalidInputError(
                        f"Patching {t.node} at every position from another task needs prompts of the same "
                        f"length; name a position role instead, e.g. {t.node}@END."
                    )
                edits.append(Edit(t, where(t, roles), value=vals[t.hook],
                                  source_positions=where(t, source_roles or {})))
    edits += [Edit(t, where(t, roles), factor=f) for t, f in scale]
    return edits


def intervene(cat: Catalog | None, ref: str | int | None = None, *, model: Any = None, task: str | None = None,
              ablate: Sequence[str] = (), patch: Sequence[str] = (), patch_from: str | None = None,
              scale: Sequence[str] = (), ablation: Ablation | str = Ablation.COUNTERFACTUAL,
              n: int = context.DEFAULT_N, seed: int = 0, device: str | None = None,
              store: bool = True) -> InterventionResult:
    """Edit a model and measure its task metric and accuracy before and after.

    With `ref`, the circuit's model and task are used (and the result is stored with the circuit
    when `store`); without, `model` and `task` say what to run.
    """
    circuit = cat.get(cat.resolve(ref, model=model if isinstance(model, str) else None)) if (
        cat is not None and ref is not None) else None
    if circuit is None and task is None:
        raise InvalidInputError("Name a circuit (REF) or a task to intervene on.")
    if not (ablate or patch or scale):
        raise InvalidInputError("Nothing to do: give at least one --ablate, --patch or --scale.")
    if patch_from and not patch:
        raise InvalidInputError("--from says where --patch takes its values; give --patch COMPONENT too.")
    try:
        ablation = Ablation(ablation)
    except ValueError:
        raise InvalidInputError(f"Unknown ablation '{ablation}'; use counterfactual, mean or zero.") from None
    task_ref = task or circuit.task  # type: ignore[union-attr]
    slug = parse_task_ref(task_ref)[0]
    # Check every argument against the model's shape before loading anything heavy.
    shape = circuit.graph.shape if circuit is not None else None
    if shape is not None:
        _targets(ablate, patch, scale, shape, slug)
    loaded = context.model_for(circuit, model, device) if circuit is not None else context.load(model, device)
    ds, ref_ds = context.build(loaded, task_ref, n, seed)
    a, p, s = _targets(ablate, patch, scale, loaded.shape, slug, ds)
    src = src_roles = None
    if patch_from:
        src, _ = context.build(loaded, patch_from, n, seed)
        src_slug = parse_task_ref(patch_from)[0]
        for t in p:
            if t.role:
                check_role(src_slug, t.role, src)
        src_roles = locate(src)
    m = loaded.model
    before = context.outcome(m, ds)
    edits = plan(m, ds, locate(ds), a, p, s, ablation, src, src_roles)
    after = context.outcome(m, ds, edit_hooks(edits))
    result = InterventionResult(
        circuit_id=circuit.id if circuit is not None else None, model=loaded.shape.name, dataset=ref_ds,
        ablation=ablation.value, ablate=tuple(map(str, a)), patch=tuple(map(str, p)), patch_from=patch_from,
        scale={str(t): f for t, f in s}, before=before, after=after)
    if store and cat is not None and circuit is not None and circuit.id is not None:
        aid = cat.add_intervention(circuit.id, result)
        result = result.model_copy(update={"id": aid})
    return result


def _targets(ablate: Sequence[str], patch: Sequence[str], scale: Sequence[str], shape: ModelShape,
             task: str, ds: Any = None) -> tuple[list[Target], list[Target], list[tuple[Target, float]]]:
    return ([parse_target(x, shape, task, ds) for x in ablate], [parse_target(x, shape, task, ds) for x in patch],
            [parse_scale(x, shape, task, ds) for x in scale])
