"""Canonical ids and peer spellings: the join key must parse, format and map to hooks exactly."""

from __future__ import annotations

import pytest

from catalog.errors import InvalidInputError
from catalog.naming import (
    QKV,
    NodeKind,
    format_edge,
    format_node,
    forward_rank,
    input_hook,
    output_hook,
    parse_component,
    parse_edge,
    parse_node,
)


@pytest.mark.parametrize(
    "text, kind, layer, head",
    [
        ("input", NodeKind.INPUT, None, None),
        ("logits", NodeKind.LOGITS, None, None),
        ("a0.h0", NodeKind.ATTENTION, 0, 0),
        ("a23.h15", NodeKind.ATTENTION, 23, 15),
        ("m11", NodeKind.MLP, 11, None),
        ("f3.1200@1[clt]", NodeKind.FEATURE, 3, None),
        ("err5@2[gemma-scope]", NodeKind.ERROR, 5, None),
        ("logits.t2135@9", NodeKind.LOGITS, None, None),
        ("input@4", NodeKind.INPUT, None, None),
    ],
)
def test_parse_and_format_round_trip(text: str, kind: NodeKind, layer: int | None, head: int | None) -> None:
    c = parse_node(text)
    assert (c.kind, c.layer, c.head) == (kind, layer, head)
    assert format_node(c) == text


def test_feature_fields() -> None:
    c = parse_node("f3.1200@1[mntss/clt-gemma-2-2b-2.5M]")
    assert (c.layer, c.feature, c.position, c.dictionary) == (3, 1200, 1, "mntss/clt-gemma-2-2b-2.5M")


@pytest.mark.parametrize("bad", ["", "a9", "a9.h", "h9.a6", "m", "mx", "logit", "a-1.h2", "f3", "a1.h2@", "input[x]x"])
def test_parse_rejects_garbage_with_a_hint(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="component id"):
        parse_node(bad)


def test_edges() -> None:
    assert parse_edge("a0.h1->a3.h2<q>") == ("a0.h1", "a3.h2", QKV.Q)
    assert parse_edge("m3->logits") == ("m3", "logits", None)
    assert format_edge("input", "a0.h0", QKV.V) == "input->a0.h0<v>"
    for bad in ("a0.h1", "a0.h1->", "->m1", "a0.h1->a3.h2<x>", "a0.h1->zz"):
        with pytest.raises(InvalidInputError):
            parse_edge(bad)


@pytest.mark.parametrize(
    "spelling, canonical",
    [
        ("A9.6", "a9.h6"), ("A0.1.Q", "a0.h1"), ("MLP 2", "m2"), ("Resid Start", "input"),
        ("Resid End", "logits"), ("L9H9", "a9.h9"), ("9.9", "a9.h9"), ("l10h7", "a10.h7"),
        ("MLP10", "m10"), ("blocks.3.attn.hook_result[2]", "a3.h2"),
        ("blocks.1.hook_q_input[0]", "a1.h0"), ("blocks.4.hook_mlp_out", "m4"),
        ("blocks.4.hook_mlp_in", "m4"), ("hook_embed", "input"), ("blocks.0.hook_resid_pre", "input"),
        ("  a9.h9 ", "a9.h9"),
    ],
)
def test_peer_spellings(spelling: str, canonical: str) -> None:
    assert parse_component(spelling) == canonical


def test_resid_post_is_logits_only_at_the_last_layer() -> None:
    assert parse_component("blocks.11.hook_resid_post", n_layers=12) == "logits"
    with pytest.raises(InvalidInputError):
        parse_component("blocks.5.hook_resid_post", n_layers=12)
    with pytest.raises(InvalidInputError):
        parse_component("blocks.11.hook_resid_post")


def test_forward_order() -> None:
    order = ["input", "a0.h3", "m0", "a1.h0", "m1", "logits"]
    ranks = [forward_rank(parse_node(x)) for x in order]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    # parallel attention/MLP (GPT-J, Pythia): the MLP of a layer does not see its heads
    assert forward_rank(parse_node("m0"), True) == forward_rank(parse_node("a0.h0"), True)


def test_hooks() -> None:
    assert output_hook("input", 4) == "blocks.0.hook_resid_pre"
    assert output_hook("a2.h1", 4) == "blocks.2.attn.hook_result"
    assert input_hook("a2.h1", QKV.K, 4) == "blocks.2.hook_k_input"
    assert input_hook("logits", None, 4) == "blocks.3.hook_resid_post"
    with pytest.raises(InvalidInputError, match="q, k or v"):
        input_hook("a2.h1", None, 4)
    with pytest.raises(InvalidInputError):
        output_hook("f1.2[x]", 4)


@pytest.mark.parametrize("text, role", [("a1.h0@END", "END"), ("m0@S2", "S2"), ("m0@S1+2", "S1+2"),
                                        ("input@BOS+1", "BOS+1"), ("f3.1200@QOBJ[clt]", "QOBJ"),
                                        ("a1.h0@ALT_OBJ", "ALT_OBJ")])
def test_a_role_is_a_position_suffix(text: str, role: str) -> None:
    c = parse_node(text)
    assert (c.role, c.position) == (role, None)
    assert format_node(c) == text
    assert parse_component(text) == text


def test_integer_positions_keep_working_beside_roles() -> None:
    assert parse_node("a1.h0@7").position == 7 and parse_node("a1.h0@7").role is None


@pytest.mark.parametrize("bad", ["a1.h0@+1", "a1.h0@END+", "a1.h0@1END", "a1.h0@E-1", "a1.h0@END@S2"])
def test_malformed_roles_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="component id"):
        parse_node(bad)


def test_collapsing_a_role_gives_the_component() -> None:
    from catalog.naming import component_of, role_of, with_role

    assert component_of("a1.h0@S1+1") == "a1.h0" and role_of("a1.h0@S1+1") == "S1+1"
    assert with_role("a1.h0", "END") == "a1.h0@END"
    with pytest.raises(InvalidInputError, match="role name"):
        with_role("a1.h0", "1x")
