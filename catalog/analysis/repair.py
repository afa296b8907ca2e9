"""Merullo-style repair: steer heads on a failing task toward a working task's attention pattern.

Merullo et al. (2024) lifted GPT-2 medium's Colored Objects accuracy from 49.6% to 93.7% by
overwriting, at the final position, the attention of four heads with the pattern those heads show
on IOI. Here the pattern is moved by role: for a head, the working task's mean attention from END
to each role (``QOBJ``, ``COLOR``, ...) is measured; on the failing task that head's END row is
rewritten so that each role's token gets that mass, and the mass left over is spread over the
other tokens in proportion to the head's own pattern there. Heads are chosen greedily on one
sample of the failing task (each head alone first, then adding heads while accuracy rises by at
least one example) and the result is reported on a fresh sample, so the choice is not fitted to
the prompts it is judged on. The intervention knows each prompt's role positions (as Merullo's
knows where the wrong colors are): it is a test of whether the working pattern would suffice,
not a fix a model could apply by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from catalog.analysis import context
from catalog.analysis.interventions import parse_target
from catalog.analysis.positions import END, locate, role_names
from catalog.analysis.records import RepairResult, SteeredHead
from catalog.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

#: The fresh evaluation sample's seed is the selection seed plus this.
EVAL_SEED_OFFSET = 1000


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


def steer_hooks(targets: dict[tuple[int, int], dict[str, float]], roles: dict[str, torch.Tensor]) -> Any:
    """``hooks(start, stop)`` rewriting each (layer, head)'s END attention row to the role masses."""
    import torch

    by_layer: dict[int, list[tuple[int, dict[str, float]]]] = {}
    for (layer, head), masses in targets.items():
        by_layer.setdefault(layer, []).append((head, masses))

    def hooks(start: int, stop: int) -> list[context.Hook]:
        out = []
        for layer, items in by_layer.items():
            def fn(pattern: torch.Tensor, hook: Any, items: list = items) -> torch.Tensor:
                rows = torch.arange(pattern.shape[0], device=pattern.device)
                end = roles[END][start:stop].to(pattern.device)
                for head, masses in items:
                    row = pattern[rows, head, end]  # [B, T]: END's attention (0 after END)
                    fixed = torch.zeros_like(row)
                    named = torch.zeros_like(row, dtype=torch.bool)
                    for r, m in masses.items():
                        pos = roles[r][start:stop].to(pattern.device)
                        ok = (pos >= 0) & (pos <= end)
                        fixed[rows[ok], pos[ok]] += m
                        named[rows[ok], pos[ok]] = True
                    # What the named roles leave over goes to the other tokens, in proportion
                    # to the head's own attention there.
                    free = torch.where(named, torch.zeros_like(row), row)
                    rest = (1.0 - fixed.sum(-1, keepdim=True)).clamp(min=0.0)
                    fixed = fixed + free / free.sum(-1, keepdim=True).clamp(min=1e-12) * rest
                    pattern[rows, head, end] = fixed / fixed.sum(-1, keepdim=True)
                return pattern

            out.append((f"blocks.{layer}.attn.hook_pattern", fn))
        return out

    return hooks


def repair(failing: str, working: str, model: Any = None, heads: Sequence[str] | None = None,
           max_heads: int = 4, n: int = 256, seed: int = 0, device: str | None = None,
           together: bool = False) -> RepairResult:
    """Steer heads' END attention on `failing` toward `working`'s pattern; accuracy before/after.

    With `together`, the given heads are all steered at once instead of chosen greedily.
    """
    if together and not heads:
        raise InvalidInputError("--together steers the heads you name: give them with --head.")
    if max_heads < 1:
        raise InvalidInputError(f"--max-heads must be at least 1, got {max_heads}.")
    fslug, wslug = context.parse_task_ref(failing)[0], context.parse_task_ref(working)[0]
    loaded = context.load(model, device)
    shape = loaded.shape
    names = [f"a{layer}.h{h}" for layer in range(shape.n_layers) for h in range(shape.n_heads)]
    targets = [parse_target(h, shape) for h in (heads or names)]
    if any(t.head is None or t.role for t in targets):
        raise InvalidInputError("Repair steers attention heads: give heads as aL.hH, without a position.")
    m = loaded.model
    sel, sel_ref = context.build(loaded, failing, n, seed)
    work, work_ref = context.build(loaded, working, n, seed)
    ev, ev_ref = context.build(loaded, failing, n, seed + EVAL_SEED_OFFSET)
    sel_roles, work_roles, ev_roles = locate(sel), locate(work), locate(ev)
    shared = [r for r in role_names(wslug, work) if r in role_names(fslug, sel) and r != END]
    if not shared:
        raise InvalidInputError(f"{failing} and {working} share no position roles, so a pattern cannot be moved.")
    patterns: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    candidates = []
    base = context.outcome(m, sel)
    hooks = {f"blocks.{t.layer}.attn.hook_pattern" for t in targets}
    work_patterns, sel_patterns = context.capture(m, work.clean, hooks), context.capture(m, sel.clean, hooks)
    for t in targets:
        key = (t.layer, int(t.head))  # type: ignore[arg-type]
        hook = f"blocks.{t.layer}.attn.hook_pattern"
        w = end_attention(work_patterns[hook][:, key[1]], work_roles, shared)
        f = end_attention(sel_patterns[hook][:, key[1]], sel_roles, shared)
        patterns[t.node] = (w, f)
        alone = context.outcome(m, sel, steer_hooks({key: w}, sel_roles))
        candidates.append(SteeredHead(node=t.node, working=w, failing=f, accuracy=alone.accuracy))
    chosen: list[str] = []
    best = base.accuracy
    by_node = {t.node: t for t in targets}
    for c in sorted(candidates, key=lambda c: -c.accuracy) if not together else ():
        if len(chosen) >= max_heads:
            break
        trial = chosen + [c.node]
        acc = context.outcome(m, sel, steer_hooks(_steer(trial, by_node, patterns), sel_roles)).accuracy
        if acc >= best + 1.0 / n:
            chosen, best = trial, acc
    if together:
        chosen = [t.node for t in targets]
    before = context.outcome(m, ev)
    after = context.outcome(m, ev, steer_hooks(_steer(chosen, by_node, patterns), ev_roles)) if chosen else before
    return RepairResult(model=shape.name, failing=sel_ref, working=work_ref, evaluation=ev_ref,
                        candidates=tuple(candidates), chosen=tuple(chosen), before=before, after=after,
                        working_outcome=context.outcome(m, work))


def _steer(nodes: Sequence[str], by_node: dict[str, Any],
           patterns: dict[str, tuple[dict[str, float], dict[str, float]]]) -> dict[tuple[int, int], dict[str, float]]:
    return {(by_node[h].layer, by_node[h].head): patterns[h][0] for h in nodes}
