"""Merullo-style repair: point heads of a failing task at its wrong answers, as they do on a working task.

Merullo et al. (2024) found that GPT-2 medium's IOI inhibition heads, which attend from the final
position to the repeated name (the wrong answer, S2), are also active on Colored Objects; forcing
those heads (and the negative mover 19.1) to put all their final-position attention uniformly on
the two wrong color tokens lifted Colored Objects from 49.6% to 93.7%. The repair here is that
experiment: the heads are chosen on the working task (those whose END attention falls most on
its wrong-answer tokens: IOI's ``S1``/``S2``), or named with ``--head``; on the failing task each
chosen head's END attention row is overwritten with a uniform distribution over the tokens of the
wrong answers (Colored Objects: every listed color but the asked one). The failing task's
accuracy is reported before and after, per head alone and for the heads together. The
intervention knows each prompt's role positions (as Merullo's knows where the wrong colors are):
it tests whether the heads' working-task function carries over, not a fix the model could apply
by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from catalog.analysis import context
from catalog.analysis.interventions import parse_target
from catalog.analysis.positions import END, locate, role_names
from catalog.analysis.records import RepairResult, SteeredHead
from catalog.errors import InvalidInputError
from catalog.naming import attn_hook

if TYPE_CHECKING:
    import torch

def wrong_answer_roles(task: str, names: Sequence[str]) -> tuple[str, ...]:
    """The roles of a task's prompts that hold a wrong answer: IOI's subject mentions (both givers'
    in the third-name variant), Colored Objects' colors other than the asked object's
    (``ALT_COLOR``, ``OPT_COLOR``, ``OPT2_COLOR``...).

    >>> wrong_answer_roles("colored-objects", ("COLOR", "OBJ", "ALT_COLOR", "OPT_COLOR", "QOBJ", "END"))
    ('ALT_COLOR', 'OPT_COLOR')
    >>> wrong_answer_roles("ioi", ("BOS", "IO", "B1", "C1", "B2", "C2", "END"))
    ('B1', 'C1', 'B2', 'C2')
    """
    if task == "colored-objects":
        return tuple(r for r in names if r.endswith("_COLOR") and "+" not in r)
    found = tuple(r for r in WRONG_ANSWER_ROLES.get(task, ()) if r in names)
    if not found:
        known = ", ".join(sorted({*WRONG_ANSWER_ROLES, "colored-objects"}))
        raise InvalidInputError(f"Task {task} names no wrong-answer tokens to steer heads to; repair works "
                                f"on {known}.")
    return found


#: Roles holding a wrong answer, for tasks whose roles name it directly.
WRONG_ANSWER_ROLES: dict[str, tuple[str, ...]] = {"ioi": ("S1", "S2", "B1", "C1", "B2", "C2")}


def end_attention(pattern: torch.Tensor, roles: dict[str, torch.Tensor], names: Sequence[str]) -> dict[str, float]:
    """Mean attention from END to each role's token (``pattern``: one head's ``[N, Tq, Tk]``),
    over the examples having that role."""
    import torch

    rows = torch.arange(pattern.shape[0], device=pattern.device)
    end = roles[END].to(pattern.device)
    out = {}
    for r in names:
        pos = roles[r].to(pattern.device)
        ok = pos >= 0
        if r != END and bool(ok.any()):
            out[r] = round(float(pattern[rows[ok], end[ok], pos[ok]].double().mean()), 4)
    return out


def steer_hooks(heads: Sequence[tuple[int, int]], roles: dict[str, torch.Tensor], onto: Sequence[str]) -> Any:
    """``hooks(start, stop)`` setting each (layer, head)'s END attention row to a uniform
    distribution over the tokens of roles `onto` (a prompt lacking them keeps its row)."""
    import torch

    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)

    def hooks(start: int, stop: int) -> list[context.Hook]:
        def fn(pattern: torch.Tensor, hook: Any, items: list[int]) -> torch.Tensor:
            rows = torch.arange(pattern.shape[0], device=pattern.device)
            end = roles[END][start:stop].to(pattern.device)
            target = torch.zeros(pattern.shape[0], pattern.shape[-1], dtype=pattern.dtype, device=pattern.device)
            for r in onto:
                pos = roles[r][start:stop].to(pattern.device)
                ok = (pos >= 0) & (pos <= end)
                target[rows[ok], pos[ok]] = 1.0
            mass = target.sum(-1, keepdim=True)
            keep = mass.squeeze(-1) > 0
            for head in items:
                row = pattern[rows, head, end]
                pattern[rows, head, end] = torch.where(keep[:, None], target / mass.clamp(min=1.0), row)
            return pattern

        return [(attn_hook(layer, "pattern"), lambda p, hook, items=items: fn(p, hook, items))
                for layer, items in by_layer.items()]

    return hooks


def repair(failing: str, working: str, model: Any = None, heads: Sequence[str] | None = None,
           max_heads: int = 4, n: int = 256, seed: int = 0, device: str | None = None,
           together: bool = False) -> RepairResult:
    """Point heads' END attention on `failing` at its wrong answers; accuracy before and after.

    Without `heads`, the `max_heads` heads whose END attention on `working` falls most on its
    wrong-answer tokens are chosen (at least `MIN_ATTENTION` of it); with `heads` and
    `together` exactly those are steered. Each candidate is also reported alone.
    """
    if together and not heads:
        raise InvalidInputError("--together steers the heads you name: give them with --head.")
    if max_heads < 1:
        raise InvalidInputError(f"--max-heads must be at least 1, got {max_heads}.")
    loaded = context.load(model, device)
    shape = loaded.shape
    names = [f"a{layer}.h{h}" for layer in range(shape.n_layers) for h in range(shape.n_heads)]
    targets = [parse_target(h, shape) for h in (heads or names)]
    if any(t.head is None or t.role for t in targets):
        raise InvalidInputError("Repair steers attention heads: give heads as aL.hH, without a position.")
    m = loaded.model
    fail, fail_ref = context.build(loaded, failing, n, seed)
    work, work_ref = context.build(loaded, working, n, seed)
    fail_roles, work_roles = locate(fail), locate(work)
    onto = wrong_answer_roles(fail_ref.task, role_names(fail))
    work_wrong = wrong_answer_roles(work_ref.task, role_names(work))
    hooks = {attn_hook(t.layer, "pattern") for t in targets}
    work_patterns, fail_patterns = context.capture(m, work.clean, hooks), context.capture(m, fail.clean, hooks)
    candidates = []
    for t in targets:
        hook, key = attn_hook(t.layer, "pattern"), (t.layer, int(t.head))  # type: ignore[arg-type]
        w = end_attention(work_patterns[hook][:, key[1]], work_roles, work_wrong)
        f = end_attention(fail_patterns[hook][:, key[1]], fail_roles, onto)
        alone = context.outcome(m, fail, steer_hooks([key], fail_roles, onto))
        candidates.append(SteeredHead(node=t.node, working=w, failing=f, accuracy=alone.accuracy))
    if together:
        chosen = [t.node for t in targets]
    else:
        ranked = sorted(candidates, key=lambda c: -sum(c.working.values()))
        chosen = [c.node for c in ranked if sum(c.working.values()) >= MIN_ATTENTION][:max_heads]
    by_node = {t.node: (t.layer, int(t.head)) for t in targets}  # type: ignore[arg-type]
    before = context.outcome(m, fail)
    after = context.outcome(m, fail, steer_hooks([by_node[h] for h in chosen], fail_roles, onto)) if chosen else before
    return RepairResult(model=shape.name, failing=fail_ref, working=work_ref, steered_to=onto,
                        candidates=tuple(candidates), chosen=tuple(chosen), before=before, after=after,
                        working_outcome=context.outcome(m, work))


#: A head is chosen from the working task only if at least this much of its END attention falls
#: on the wrong-answer tokens there (Wang et al.'s S-inhibition heads attend S2 at 0.3-0.6).
MIN_ATTENTION = 0.2
