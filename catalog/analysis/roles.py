"""Head roles from evidence: what each head of a circuit does on its task's data, in numbers.

For each attention head of a circuit, on the task's clean prompts:

- **attention** ``[q][k]``: mean attention weight from role q's token to role k's token (roles
  from `catalog.analysis.positions`; examples lacking either role are skipped);
- **direct logit attribution** (DLA): the head's output at END, through the final LayerNorm
  (centred, divided by the clean run's final-LN scale at END, times the LN weight) and the
  unembedding, onto logit(answer) - logit(wrong answer); averaged. It is the head's share of
  the logit difference that no later component mediates;
- **OV copying score** (Wang et al. 2022, appendix): the residual stream after layer 0 at the
  token a task's answer is copied from (IOI: the IO and S1 names; Colored Objects: the
  queried object's and the other object's color in the list), through the head's layer's
  LN1, its OV circuit (W_V, b_V, W_O) and the final LN and unembedding as if the head attended
  only there: the fraction of cases where the answer (wrong answer) token is among the top 5
  logits. The negative score does the same with the OV output negated (a head that suppresses
  what it attends to);
- **composition scores** with every upstream head of the circuit (Elhage et al. 2021):
  Q: ||W_OV^u W_QK|| / (||W_OV^u|| ||W_QK||), K: the same with W_QK^T, V: with W_OV of this
  head (Frobenius norms; LN1 weights folded in; W_QK = W_Q W_K^T, W_OV = W_V W_O, row-vector
  convention). Each is reported with the mean score of random Gaussian matrices of the same
  shapes as a baseline.

`label` turns the numbers into a role with the documented `THRESHOLDS`; nothing else is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from catalog.analysis import context
from catalog.analysis.positions import ANSWER_NAMES, COPY_SOURCES, END, key_roles, locate, role_names
from catalog.analysis.records import Composition, HeadEvidence, HeadRole, RoleReport
from catalog.errors import InvalidInputError
from catalog.naming import FINAL_NORM_SCALE_HOOK, NodeKind, attn_hook, block_hook, parse_node

if TYPE_CHECKING:
    import torch

    from catalog.store import Catalog

#: Thresholds the labels use (all on the numbers above):
#: ``attention``: a role pair is named ("attends END->S2") when the mean weight is at least this;
#: ``dla_fraction``: a head "promotes"/"suppresses" the answer when |DLA| is at least this
#: fraction of the clean mean metric; ``copy``: "copies" / "negatively copies" when the copying
#: score is at least this; ``composition``: a composition is named when its score is at least
#: this multiple of the random baseline.
THRESHOLDS: dict[str, float] = {"attention": 0.3, "dla_fraction": 0.1, "copy": 0.5, "composition": 2.0}
#: Tokens considered for the copying score (Wang et al. use the top 5).
TOP_K = 5
#: Random draws for the composition baseline.
BASELINE_DRAWS = 8


def label(ev: HeadEvidence, task: str, thresholds: dict[str, float] | None = None) -> str:
    """A role label from a head's evidence and the thresholds; pure, so it can be checked by hand.

    >>> ev = HeadEvidence(attention={"END": {"S2": 0.62, "IO": 0.1}}, dla=3.0, dla_fraction=0.23,
    ...                   copy_score=0.1, negative_copy_score=0.0)
    >>> label(ev, "ioi")
    'attends END->S2 (0.62); promotes IO (DLA 3, 23% of the metric)'
    """
    t = {**THRESHOLDS, **(thresholds or {})}
    answer, wrong = ANSWER_NAMES.get(task, ("the answer", "the wrong answer"))
    parts = []
    for q, row in ev.attention.items():
        for k, w in sorted(row.items(), key=lambda kv: -kv[1]):
            if k != q and w >= t["attention"]:
                parts.append(f"attends {q}->{k} ({w:.2f})")
    if ev.dla_fraction is not None and abs(ev.dla_fraction) >= t["dla_fraction"]:
        verb = f"promotes {answer}" if ev.dla > 0 else f"promotes {wrong} (against the answer)"
        parts.append(f"{verb} (DLA {ev.dla:.3g}, {abs(ev.dla_fraction):.0%} of the metric)")
    if ev.copy_score is not None and ev.copy_score >= t["copy"]:
        parts.append(f"copies (copy score {ev.copy_score:.2f})")
    if ev.negative_copy_score is not None and ev.negative_copy_score >= t["copy"]:
        parts.append(f"negatively copies (score {ev.negative_copy_score:.2f})")
    strong = [c for c in ev.composition if c.baseline > 0 and c.score >= t["composition"] * c.baseline]
    for c in sorted(strong, key=lambda c: -c.score / c.baseline):
        parts.append(f"{c.mode.upper()}-composes with {c.upstream} ({c.score:.2f}, {c.score / c.baseline:.1f}x random)")
    return "; ".join(parts) if parts else "no role evident at these thresholds"


# --- measuring ----------------------------------------------------------------------------------


def heads_of(circuit: Any) -> list[str]:
    """The attention heads in a circuit, in forward order."""
    return [n.id for n in circuit.graph.circuit_nodes if n.kind is NodeKind.ATTENTION]


def measure(loaded: Any, ds: Any, heads: Sequence[str], task: str,
            batch_size: int = context.DEFAULT_BATCH_SIZE) -> tuple[dict[str, HeadEvidence], float, tuple[str, ...]]:
    """Evidence for each head on `ds`; also the clean mean metric and the roles used."""
    import torch

    with torch.no_grad():
        return _measure(loaded.model, ds, heads, task, batch_size)


def _measure(model: Any, ds: Any, heads: Sequence[str], task: str,
             batch_size: int) -> tuple[dict[str, HeadEvidence], float, tuple[str, ...]]:
    import torch

    parsed = {h: parse_node(h) for h in heads}
    for h, c in parsed.items():
        if c.kind is not NodeKind.ATTENTION or c.layer is None or c.layer >= model.cfg.n_layers \
                or c.head is None or c.head >= model.cfg.n_heads:
            raise InvalidInputError(f"{h} is not an attention head of this model.")
    roles = locate(ds)
    names = key_roles(role_names(ds))
    layers = sorted({c.layer for c in parsed.values()})  # type: ignore[misc]
    hooks = [attn_hook(layer, w) for layer in layers for w in ("pattern", "z")]
    hooks += [block_hook(0, "resid_post"), FINAL_NORM_SCALE_HOOK]
    acts = context.capture(model, ds.clean, hooks, batch_size)
    metric_clean = context.outcome(model, ds, batch_size=batch_size).metric
    n = len(ds)
    rows = torch.arange(n, device=ds.clean.device)
    end = roles[END].to(rows.device)
    w_u = model.W_U
    direction = (w_u[:, ds.answers] - w_u[:, ds.wrong_answers]).T  # [N, d_model]
    ln_w = getattr(model.ln_final, "w", None)
    centred = model.cfg.normalization_type in ("LN", "LNPre")
    scale = acts["ln_final.hook_scale"][rows, end]  # [N, 1]
    baselines = _baselines(model)
    out: dict[str, HeadEvidence] = {}
    for h, c in parsed.items():
        layer, head = c.layer, c.head
        pattern = acts[attn_hook(layer, "pattern")][:, head]  # [N, Tq, Tk]
        attention = _attention(pattern, roles, names)
        z = acts[attn_hook(layer, "z")][rows, end, head]  # [N, d_head]
        written = z @ model.blocks[layer].attn.W_O[head]  # [N, d_model]
        if centred:
            written = written - written.mean(-1, keepdim=True)
        written = written / scale
        if ln_w is not None:
            written = written * ln_w
        dla = float((written * direction).sum(-1).double().mean())
        copy, neg = _copy_scores(model, layer, head, ds, roles, acts[block_hook(0, "resid_post")], task)
        comp = tuple(_compositions(model, h, c, parsed, baselines))
        out[h] = HeadEvidence(attention=attention, dla=dla,
                              dla_fraction=dla / metric_clean if metric_clean else None,
                              copy_score=copy, negative_copy_score=neg, composition=comp)
    return out, metric_clean, names


def _attention(pattern: torch.Tensor, roles: dict[str, torch.Tensor], names: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{q: {k: mean weight}}`` over examples that have both roles (and k at or before q)."""
    import torch

    out: dict[str, dict[str, float]] = {}
    rows = torch.arange(pattern.shape[0], device=pattern.device)
    for q in names:
        qp = roles[q].to(pattern.device)
        row: dict[str, float] = {}
        for k in names:
            kp = roles[k].to(pattern.device)
            ok = (qp >= 0) & (kp >= 0) & (kp <= qp)
            if bool(ok.any()):
                row[k] = round(float(pattern[rows[ok], qp[ok], kp[ok]].double().mean()), 4)
        if row:
            out[q] = row
    return out


def _copy_scores(model: Any, layer: int, head: int, ds: Any, roles: dict[str, torch.Tensor],
                 resid0: torch.Tensor, task: str) -> tuple[float | None, float | None]:
    """Wang et al.'s copying score and its negative (fractions of cases in the top 5)."""
    import torch

    sources = COPY_SOURCES.get(task)
    if not sources:
        return None, None
    attn = model.blocks[layer].attn
    hits = neg_hits = total = 0
    with torch.no_grad():
        for role, which in sources:
            if role not in roles:
                continue
            pos = roles[role].to(resid0.device)
            ok = torch.nonzero(pos >= 0).flatten()
            if ok.numel() == 0:
                continue
            tokens = (ds.answers if which == "answer" else ds.wrong_answers).to(resid0.device)[ok]
            x = model.blocks[layer].ln1(resid0[ok, pos[ok]].unsqueeze(1))  # [M, 1, d_model]
            v = x @ attn.W_V[head] + attn.b_V[head]
            o = v @ attn.W_O[head]
            for sign in (1.0, -1.0):
                logits = model.unembed(model.ln_final(sign * o))[:, 0]  # [M, vocab]
                top = logits.topk(TOP_K, dim=-1).indices
                found = int((top == tokens[:, None]).any(-1).sum())
                if sign > 0:
                    hits += found
                else:
                    neg_hits += found
            total += int(ok.numel())
    if total == 0:
        return None, None
    return hits / total, neg_hits / total


def _ln1_weight(model: Any, layer: int) -> Any:
    w = getattr(model.blocks[layer].ln1, "w", None)
    return w if w is not None else 1.0


def _qk_ov(model: Any, layer: int, head: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(W_QK, W_OV) of a head as d_model x d_model maps, LN1 weights folded in."""
    attn, w = model.blocks[layer].attn, _ln1_weight(model, layer)
    wq = attn.W_Q[head] * (w[:, None] if not isinstance(w, float) else w)
    wk = attn.W_K[head] * (w[:, None] if not isinstance(w, float) else w)
    wv = attn.W_V[head] * (w[:, None] if not isinstance(w, float) else w)
    return wq @ wk.T, wv @ attn.W_O[head]


def _score(left: torch.Tensor, right: torch.Tensor) -> float:
    return float((left @ right).norm() / (left.norm() * right.norm()))


def _compositions(model: Any, h: str, c: Any, heads: dict[str, Any], baselines: dict[str, float]) -> list[Composition]:
    import torch

    out: list[Composition] = []
    with torch.no_grad():
        qk, ov = _qk_ov(model, c.layer, c.head)
        for u, cu in heads.items():
            if cu.layer >= c.layer:
                continue
            _, ov_u = _qk_ov(model, cu.layer, cu.head)
            for mode, right in (("q", qk), ("k", qk.T), ("v", ov)):
                out.append(Composition(upstream=u, mode=mode, score=round(_score(ov_u, right), 4),
                                       baseline=round(baselines[mode], 4)))
    return out


def _baselines(model: Any) -> dict[str, float]:
    """Mean composition score of random Gaussian factors with this model's shapes, per mode."""
    import torch

    d, dh = model.cfg.d_model, model.cfg.d_head
    gen = torch.Generator().manual_seed(0)
    sums = {"q": 0.0, "k": 0.0, "v": 0.0}
    with torch.no_grad():
        for _ in range(BASELINE_DRAWS):
            a, b, q, k, v, o = (torch.randn(*s, generator=gen) for s in
                                ((d, dh), (dh, d), (d, dh), (d, dh), (d, dh), (dh, d)))
            ov_u, qk, ov = a @ b, q @ k.T, v @ o
            sums["q"] += _score(ov_u, qk)
            sums["k"] += _score(ov_u, qk.T)
            sums["v"] += _score(ov_u, ov)
    return {k: v / BASELINE_DRAWS for k, v in sums.items()}


# --- the command's entry point ---------------------------------------------------------------


def measure_roles(cat: Catalog, ref: str | int, model: Any = None, task: str | None = None,
                  n: int = context.DEFAULT_N, seed: int = 0, device: str | None = None,
                  store: bool = True) -> RoleReport:
    """Measure the roles of a stored circuit's heads on its task (or `task`) and store them."""
    circuit = cat.get(cat.resolve(ref, model=model if isinstance(model, str) else None))
    heads = heads_of(circuit)
    if not heads:
        raise InvalidInputError(f"Circuit #{circuit.id} has no attention heads, so it has no head roles to measure.")
    loaded = context.model_for(circuit, model, device)
    task_ref = task or circuit.task
    ds, ds_ref = context.build(loaded, task_ref, n, seed)
    evidence, metric_clean, names = measure(loaded, ds, heads, ds_ref.task)
    report = RoleReport(
        circuit_id=circuit.id, model=loaded.shape.name, dataset=ds_ref, metric_clean=metric_clean,
        roles=names, thresholds=dict(THRESHOLDS),
        heads=tuple(HeadRole(node=h, label=label(ev, ds_ref.task), evidence=ev) for h, ev in evidence.items()))
    if store and circuit.id is not None:
        aid = cat.add_roles(circuit.id, report)
        report = cat.roles(circuit.id) or report.model_copy(update={"id": aid})
    return report
