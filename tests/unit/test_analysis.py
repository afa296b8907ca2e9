"""Head-role evidence and interventions on tiny models whose answers can be worked out by hand."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformer_lens = pytest.importorskip("transformer_lens")

from catalog.analysis import context  # noqa: E402
from catalog.analysis.interventions import edit_hooks, parse_scale, parse_target, plan  # noqa: E402
from catalog.analysis.positions import key_roles, locate  # noqa: E402
from catalog.analysis.records import Composition, HeadEvidence  # noqa: E402
from catalog.analysis.repair import steer_hooks, wrong_answer_roles  # noqa: E402
from catalog.analysis.roles import _score, label, measure  # noqa: E402
from catalog.errors import InvalidInputError  # noqa: E402
from catalog.graph import ModelShape  # noqa: E402
from catalog.provenance import Ablation  # noqa: E402
from catalog.tasks.base import TaskDataset, logit_diff, top1_is_answer  # noqa: E402
from catalog.tasks.examples import role_tensor  # noqa: E402
from catalog.tasks.roles import slot_roles  # noqa: E402

SHAPE = ModelShape("tiny", n_layers=2, n_heads=2, d_model=16)


class Loaded:
    """The parts of a `LoadedModel` the analyses use."""

    def __init__(self, model):
        self.model = model
        self.shape = SHAPE


def tiny_model(seed: int = 0, d_vocab: int = 12):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    # CPU, as the datasets these tests build: without a device TransformerLens picks CUDA when present
    cfg = HookedTransformerConfig(n_layers=2, n_heads=2, d_model=16, d_head=8, d_mlp=32, d_vocab=d_vocab,
                                  n_ctx=16, act_fn="gelu", normalization_type="LN", seed=seed, device="cpu")
    model = HookedTransformer(cfg)
    with torch.no_grad():  # non-trivial LN weights and biases, so folding them is tested too
        for name, p in model.named_parameters():
            if name.endswith(("ln1.w", "ln2.w", "ln_final.w")):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif name.endswith(("ln1.b", "ln2.b", "ln_final.b", "b_O", "b_V")):
                p.copy_(0.1 * torch.randn_like(p))
    return model.eval()


def ioi_like(n: int = 6, seed: int = 0) -> TaskDataset:
    """IOI-shaped prompts over a 12-token vocabulary: BOS IO x S y S z -> IO (same length)."""
    g = torch.Generator().manual_seed(seed)
    rows, corrupt, io, s = [], [], [], []
    for _ in range(n):
        a, b, c = (torch.randperm(6, generator=g)[:3] + 5).tolist()
        rows.append([0, a, 1, b, 2, b, 3])
        corrupt.append([0, a, 1, b, 2, c, 3])
        io.append(a)
        s.append(b)
    t = torch.tensor
    # Roles as the IOI task names them: BOS IO IO+1 S1 S1+1 S2 END.
    names, ids = role_tensor([slot_roles(7, {1: "IO", 3: "S1", 4: "S1+1", 5: "S2"})] * n, 7)
    return TaskDataset(task="ioi", clean=t(rows), corrupt=t(corrupt), positions=t([6] * n), answers=t(io),
                       wrong_answers=t(s), prompts=["p"] * n, corrupt_prompts=["c"] * n, metric_name="logit_diff",
                       metric_fn=logit_diff, correct_fn=top1_is_answer, pad_id=0, role_names=names, role_ids=ids)


def test_roles_are_read_from_the_dataset():
    ds = ioi_like(3)
    # A role's position differs per prompt: the analysis must read each prompt's own.
    ds.role_ids[1] = ds.role_ids[1][[0, 2, 1, 3, 4, 5, 6]]
    roles = locate(ds)
    assert roles["IO"].tolist() == [1, 2, 1] and roles["IO+1"].tolist() == [2, 1, 2]
    assert roles["S1"].tolist() == [3, 3, 3] and roles["S1+1"].tolist() == [4, 4, 4]
    assert roles["S2"].tolist() == [5, 5, 5] and roles["END"].tolist() == [6, 6, 6]
    assert key_roles(ds.role_names) == ("IO", "IO+1", "S1", "S1+1", "S2", "END")


def test_a_dataset_without_roles_has_end_and_other():
    ds = ioi_like(2)
    plain = TaskDataset(task="ioi", clean=ds.clean, corrupt=ds.corrupt, positions=ds.positions, answers=ds.answers,
                        wrong_answers=ds.wrong_answers, prompts=ds.prompts, corrupt_prompts=ds.corrupt_prompts,
                        metric_name="logit_diff", metric_fn=logit_diff, correct_fn=top1_is_answer, pad_id=0)
    roles = locate(plain)
    assert roles["END"].tolist() == [6, 6] and roles["OTHER"].tolist() == [0, 0]


def test_repair_points_the_end_row_uniformly_at_the_wrong_answers():
    ds = ioi_like(3)
    model = tiny_model()
    hooks = steer_hooks([(1, 0)], locate(ds), wrong_answer_roles("ioi", ds.role_names))
    with model.hooks(fwd_hooks=hooks(0, 3)):
        _, cache = model.run_with_cache(ds.clean, names_filter=lambda n: n == "blocks.1.attn.hook_pattern")
    row = cache["blocks.1.attn.hook_pattern"][:, 0, 6]
    expected = torch.zeros(3, 7)
    expected[:, [3, 5]] = 0.5  # S1 and S2 hold the wrong answer
    torch.testing.assert_close(row, expected)
    other = cache["blocks.1.attn.hook_pattern"][:, 1, 6]
    assert float(other[:, [3, 5]].sum(-1).min()) < 0.99  # the other head keeps its own row


def test_dla_equals_the_hand_computation_and_transformer_lens_decomposition():
    model, ds = tiny_model(), ioi_like()
    evidence, metric, _ = measure(Loaded(model), ds, ["a1.h0", "a0.h1"], "ioi")
    _, cache = model.run_with_cache(ds.clean)
    torch.set_grad_enabled(False)
    for layer, head in ((1, 0), (0, 1)):
        # By hand: the head's output at END, centred, over the final LN scale, times the LN weight,
        # onto the unembedding's answer-minus-wrong direction.
        out = cache[f"blocks.{layer}.attn.hook_z"][:, 6, head] @ model.blocks[layer].attn.W_O[head]
        out = (out - out.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"][:, 6]
        out = out * model.ln_final.w
        direction = model.W_U[:, ds.answers].T - model.W_U[:, ds.wrong_answers].T
        hand = float((out * direction).sum(-1).mean())
        # Independently: TransformerLens's per-head results with the final LN applied.
        stack = cache.stack_head_results(layer=-1, pos_slice=6, apply_ln=True)  # [heads, batch, d]
        tl = float((stack[layer * 2 + head] * model.ln_final.w * direction).sum(-1).mean())
        assert evidence[f"a{layer}.h{head}"].dla == pytest.approx(hand, abs=1e-5)
        assert evidence[f"a{layer}.h{head}"].dla == pytest.approx(tl, abs=1e-5)
    assert metric == pytest.approx(float(ds.metric(model(ds.clean)).mean()), abs=1e-5)
    torch.set_grad_enabled(True)


def test_attention_between_roles_is_the_pattern_at_those_tokens():
    model, ds = tiny_model(1), ioi_like()
    evidence, _, names = measure(Loaded(model), ds, ["a1.h1"], "ioi")
    _, cache = model.run_with_cache(ds.clean)
    pattern = cache["blocks.1.attn.hook_pattern"][:, 1]
    assert names == ("IO", "IO+1", "S1", "S1+1", "S2", "END")
    assert evidence["a1.h1"].attention["END"]["S2"] == pytest.approx(float(pattern[:, 6, 5].mean()), abs=1e-4)
    assert evidence["a1.h1"].attention["S2"]["S1"] == pytest.approx(float(pattern[:, 5, 3].mean()), abs=1e-4)
    assert "END" not in evidence["a1.h1"].attention["S2"]  # a later token is never attended to


def test_a_head_whose_ov_is_the_identity_copies_and_never_negatively_copies():
    """d_model = vocabulary, embeddings and unembedding the identity, layer 0 writing nothing:
    the residual after layer 0 at IO is IO's one-hot vector, and an identity OV circuit maps it to
    IO's own logit, the largest."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, n_heads=1, d_model=12, d_head=12, d_mlp=8, d_vocab=12, n_ctx=16,
                                  act_fn="gelu", normalization_type="LN", device="cpu")
    model = HookedTransformer(cfg).eval()
    eye = torch.eye(12)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.W_E.copy_(eye)
        model.unembed.W_U.copy_(eye)
        for block in model.blocks:
            block.ln1.w.fill_(1.0)
            block.ln2.w.fill_(1.0)
        model.ln_final.w.fill_(1.0)
        model.blocks[1].attn.W_V[0].copy_(eye)
        model.blocks[1].attn.W_O[0].copy_(eye)
    evidence, _, _ = measure(Loaded(model), ioi_like(), ["a1.h0"], "ioi")
    assert evidence["a1.h0"].copy_score == 1.0
    assert evidence["a1.h0"].negative_copy_score == 0.0


def test_composition_scores_match_transformer_lens():
    model = tiny_model(2)
    with torch.no_grad():  # TransformerLens's scores ignore LN weights: make them 1 to compare
        for block in model.blocks:
            block.ln1.w.fill_(1.0)
    evidence, _, _ = measure(Loaded(model), ioi_like(), ["a0.h1", "a1.h0"], "ioi")
    comp = {c.mode: c.score for c in evidence["a1.h0"].composition if c.upstream == "a0.h1"}
    for mode in ("q", "k", "v"):
        tl = model.all_composition_scores(mode.upper())[0, 1, 1, 0]
        assert comp[mode] == pytest.approx(float(tl), abs=1e-4)
    # The normalised Frobenius norm of I @ I over d dimensions is 1 / sqrt(d).
    assert _score(torch.eye(16), torch.eye(16)) == pytest.approx(0.25)


def test_labels_follow_the_thresholds():
    base = dict(attention={"END": {"S2": 0.29, "END": 0.7}}, dla=-0.5, dla_fraction=-0.05,
                copy_score=0.49, negative_copy_score=0.6)
    assert label(HeadEvidence(**base), "ioi") == "negatively copies (score 0.60)"
    strong = HeadEvidence(**{**base, "attention": {"END": {"S2": 0.3}}, "dla": -2.0, "dla_fraction": -0.2,
                             "composition": (Composition(upstream="a0.h0", mode="k", score=0.3, baseline=0.1),)})
    assert label(strong, "ioi") == ("attends END->S2 (0.30); promotes S (against the answer) (DLA -2, 20% of "
                                    "the metric); negatively copies (score 0.60); K-composes with a0.h0 (0.30, "
                                    "3.0x random)")


def test_zero_ablating_a_head_equals_deleting_its_output_weights():
    model, ds = tiny_model(3), ioi_like()
    t = parse_target("a1.h0", SHAPE)
    edits = plan(model, ds, locate(ds), ablate=[t], ablation=Ablation.ZERO)
    after = context.outcome(model, ds, edit_hooks(edits))
    with torch.no_grad():
        model.blocks[1].attn.W_O[0].zero_()
    assert after.metric == pytest.approx(context.outcome(model, ds).metric, abs=1e-5)


def test_ablating_a_head_the_metric_reads_changes_it_and_identity_edits_do_not():
    model, ds = tiny_model(4), ioi_like()
    roles = locate(ds)
    before = context.outcome(model, ds)
    same = context.outcome(model, ds, edit_hooks(plan(model, ds, roles, scale=[parse_scale("a1.h0=1", SHAPE)])))
    assert same.metric == pytest.approx(before.metric, abs=1e-6)
    patched = plan(model, ds, roles, patch=[parse_target("a1.h0@END", SHAPE)])
    ablated = plan(model, ds, roles, ablate=[parse_target("a1.h0@END", SHAPE)])
    a = context.outcome(model, ds, edit_hooks(patched))
    b = context.outcome(model, ds, edit_hooks(ablated))
    assert a.metric == pytest.approx(b.metric, abs=1e-6)  # patching from the counterfactual = ablating
    assert abs(a.metric - before.metric) > 1e-4


@pytest.mark.parametrize("text, message", [
    ("a2.h0", "does not exist in the model"),
    ("a0.h5", "does not exist in the model"),
    ("a0.h0@NOPE", "Role 'NOPE' is not a position of task ioi"),
    ("logits", "only attention heads"),
    ("head3", "is not a head or MLP"),
])
def test_bad_targets_say_what_to_give(text, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_target(text, SHAPE, "ioi", ioi_like(2))


def test_a_scale_that_is_not_a_number_is_refused():
    with pytest.raises(InvalidInputError, match="is not a number"):
        parse_scale("a1.h1=big", SHAPE)
    with pytest.raises(InvalidInputError, match="COMPONENT=FACTOR"):
        parse_scale("a1.h1", SHAPE)
