"""Canonical component ids: the join key between discovery, the store, exports and the CLI.

The scheme is EAP-IG/MIB's, extended for feature-level graphs:

==========================  ==============================================================
id                          meaning
==========================  ==============================================================
``input``                   token + position embeddings (``input@3``: at position 3)
``a9.h6``                   attention head 6 of layer 9
``m3``                      MLP of layer 3
``logits``                  the unembedding (``logits.t2135@9``: token 2135 at position 9)
``f3.1200@1[clt]``          feature 1200 of layer 3's dictionary ``clt`` at position 1
``err5@2[clt]``             reconstruction error of layer 5's dictionary at position 2
``a0.h1->a3.h2<q>``         an edge into head a3.h2's query input
``a3.h2->m5``               an edge into an MLP (or ``logits``): no q/k/v suffix
``a1.h0@END``               head a1.h0 at the positions a task names ``END`` (a role)
``m0@S1+2``                 MLP 0 two tokens after the role ``S1``
==========================  ==============================================================

Position (``@p``) and dictionary (``[name]``) suffixes are optional everywhere they make sense.
A position is either an integer token index (``@3``) or a **role**: a name a task gives to a
position in each of its prompts (``END``, ``S2``, ``QOBJ``, or a slot such as ``S1+2``, two tokens
after ``S1``). Roles align positions across prompts of different lengths; a role name starts with
a letter (so it never reads as an index) and may end in ``+N``.
`parse_component` also reads the spellings of peer tools (auto-circuit, ACDC/TransformerLens
hooks, ``L9H9``) and returns the canonical id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum

from catalog.errors import InvalidInputError


class NodeKind(str, Enum):
    """What a circuit node is. Stored as its string value."""

    INPUT = "input"
    ATTENTION = "attention"
    MLP = "mlp"
    LOGITS = "logits"
    FEATURE = "feature"
    ERROR = "error"


class QKV(str, Enum):
    """Which input of an attention head an edge feeds."""

    Q = "q"
    K = "k"
    V = "v"


@dataclass(frozen=True, slots=True)
class ComponentId:
    """A parsed node id. Fields that do not apply to the kind are None."""

    kind: NodeKind
    layer: int | None = None
    head: int | None = None
    feature: int | None = None
    position: int | None = None
    token: int | None = None
    dictionary: str | None = None
    role: str | None = None

    def __str__(self) -> str:
        return format_node(self)


#: A role name: a letter, then letters, digits or underscores, optionally ``+N`` (a slot N tokens
#: after a named role).
ROLE_PATTERN = r"[A-Za-z][A-Za-z0-9_]*(?:\+\d+)?"
_ROLE_RE = re.compile(rf"^{ROLE_PATTERN}$")
_DICT = r"(?:\[(?P<dict>[^\[\]<>]+)\])?"
_POS = rf"(?:@(?:(?P<pos>\d+)|(?P<role>{ROLE_PATTERN})))?"
_NODE_RE = re.compile(
    r"^(?:(?P<input>input)"
    r"|logits(?:\.t(?P<tok>\d+))?"
    r"|a(?P<al>\d+)\.h(?P<ah>\d+)"
    r"|m(?P<ml>\d+)"
    r"|f(?P<fl>\d+)\.(?P<fi>\d+)"
    r"|err(?P<el>\d+))" + _POS + _DICT + r"$"
)
_EDGE_RE = re.compile(r"^(?P<src>.+?)->(?P<dst>.+?)(?:<(?P<qkv>[qkv])>)?$")


def format_node(c: ComponentId) -> str:
    """Format a parsed id back to its canonical string.

    >>> format_node(ComponentId(NodeKind.ATTENTION, layer=9, head=6))
    'a9.h6'
    >>> format_node(ComponentId(NodeKind.FEATURE, layer=3, feature=1200, position=1, dictionary="clt"))
    'f3.1200@1[clt]'
    """
    if c.kind is NodeKind.INPUT:
        base = "input"
    elif c.kind is NodeKind.LOGITS:
        base = "logits" if c.token is None else f"logits.t{c.token}"
    elif c.kind is NodeKind.ATTENTION:
        base = f"a{c.layer}.h{c.head}"
    elif c.kind is NodeKind.MLP:
        base = f"m{c.layer}"
    elif c.kind is NodeKind.FEATURE:
        base = f"f{c.layer}.{c.feature}"
    else:
        base = f"err{c.layer}"
    if c.position is not None:
        base += f"@{c.position}"
    elif c.role is not None:
        base += f"@{c.role}"
    if c.dictionary is not None and c.kind in (NodeKind.FEATURE, NodeKind.ERROR):
        base += f"[{c.dictionary}]"
    return base


def head_id(layer: int, head: int) -> str:
    """Example:

    >>> head_id(9, 6)
    'a9.h6'
    """
    return f"a{layer}.h{head}"


def mlp_id(layer: int) -> str:
    """Example:

    >>> mlp_id(3)
    'm3'
    """
    return f"m{layer}"


def feature_id(
    layer: int, feature: int, dictionary: str | None = None, position: int | None = None
) -> str:
    """Example:

    >>> feature_id(3, 1200, "clt", 1)
    'f3.1200@1[clt]'
    """
    return format_node(ComponentId(NodeKind.FEATURE, layer=layer, feature=feature,
                                   position=position, dictionary=dictionary))


def parse_node(text: str) -> ComponentId:
    """Parse a canonical node id; raise `InvalidInputError` on anything else.

    >>> parse_node("a9.h6")
    ComponentId(kind=<NodeKind.ATTENTION: 'attention'>, layer=9, head=6, feature=None, position=None, token=None, dictionary=None, role=None)
    >>> parse_node("err5@2[clt]").kind
    <NodeKind.ERROR: 'error'>
    >>> parse_node("a1.h0@END").role, parse_node("m0@S1+2").role, parse_node("a1.h0@7").position
    ('END', 'S1+2', 7)
    """
    m = _NODE_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InvalidInputError(
            f"'{text}' is not a component id. Use input, aL.hH (e.g. a9.h6), mL (e.g. m3), "
            "logits, fL.I[dictionary] for a feature, or errL for a reconstruction error, optionally "
            "at a position or role (a9.h6@7, a9.h6@END)."
        )
    g = m.groupdict()
    pos = int(g["pos"]) if g["pos"] is not None else None
    role = g["role"]
    dictionary = g["dict"]
    if g["input"]:
        return ComponentId(NodeKind.INPUT, position=pos, role=role)
    if g["al"] is not None:
        return ComponentId(NodeKind.ATTENTION, layer=int(g["al"]), head=int(g["ah"]), position=pos, role=role)
    if g["ml"] is not None:
        return ComponentId(NodeKind.MLP, layer=int(g["ml"]), position=pos, role=role)
    if g["fl"] is not None:
        return ComponentId(NodeKind.FEATURE, layer=int(g["fl"]), feature=int(g["fi"]),
                           position=pos, dictionary=dictionary, role=role)
    if g["el"] is not None:
        return ComponentId(NodeKind.ERROR, layer=int(g["el"]), position=pos, dictionary=dictionary,
                           role=role)
    tok = int(g["tok"]) if g["tok"] is not None else None
    return ComponentId(NodeKind.LOGITS, position=pos, token=tok, role=role)


def check_role(role: str) -> str:
    """Return `role` if it is a valid role name, else raise `InvalidInputError` saying the form.

    >>> check_role("S1+2")
    'S1+2'
    """
    if not isinstance(role, str) or not _ROLE_RE.match(role):
        raise InvalidInputError(
            f"'{role}' is not a role name. A role starts with a letter, then letters, digits or "
            "underscores, optionally ending in +N (e.g. END, S2, QOBJ, S1+2)."
        )
    return role


def with_role(node: str, role: str | None) -> str:
    """The id of `node` at `role` (None: at every position, i.e. without a suffix).

    >>> with_role("a1.h0", "END"), with_role("m0@S2", None), with_role("f3.1200[clt]", "QOBJ")
    ('a1.h0@END', 'm0', 'f3.1200@QOBJ[clt]')
    """
    c = parse_node(node)
    return format_node(replace(c, position=None, role=None if role is None else check_role(role)))


def role_of(node: str) -> str | None:
    """The role suffix of a node id, or None (no suffix, or an integer position). Cheap: only ids
    with an ``@`` are parsed.

    >>> role_of("a1.h0@END"), role_of("a1.h0@3"), role_of("m0")
    ('END', None, None)
    """
    return parse_node(node).role if "@" in node else None


def component_of(node: str) -> str:
    """The component a node id names, without its position or role: how positions collapse.

    >>> component_of("a1.h0@END"), component_of("input@3"), component_of("f3.1200@QOBJ[clt]")
    ('a1.h0', 'input', 'f3.1200[clt]')
    """
    if "@" not in node:
        return node
    return format_node(replace(parse_node(node), position=None, role=None))


def format_edge(src: str, dst: str, qkv: QKV | str | None = None) -> str:
    """Example:

    >>> format_edge("a0.h1", "a3.h2", "q")
    'a0.h1->a3.h2<q>'
    >>> format_edge("m0", "logits")
    'm0->logits'
    """
    if qkv is None:
        return f"{src}->{dst}"
    return f"{src}->{dst}<{QKV(qkv).value}>"


def parse_edge(text: str) -> tuple[str, str, QKV | None]:
    """Split an edge id into (source id, destination id, q/k/v or None).

    >>> parse_edge("a0.h1->a3.h2<q>")
    ('a0.h1', 'a3.h2', <QKV.Q: 'q'>)
    >>> parse_edge("input->m0")
    ('input', 'm0', None)
    """
    m = _EDGE_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InvalidInputError(
            f"'{text}' is not an edge id. Write SOURCE->DEST, with <q>, <k> or <v> after a "
            "head destination, e.g. a0.h1->a3.h2<q>."
        )
    src, dst = m["src"], m["dst"]
    parse_node(src)
    parse_node(dst)
    return src, dst, (QKV(m["qkv"]) if m["qkv"] else None)


# --- other tools' spellings -------------------------------------------------------------------

_ALIASES: list[tuple[re.Pattern[str], str]] = [
    # auto-circuit
    (re.compile(r"^resid start$", re.I), "input"),
    (re.compile(r"^resid end$", re.I), "logits"),
    (re.compile(r"^A(?P<l>\d+)\.(?P<h>\d+)(?:\.[QKV])?$"), "head"),
    (re.compile(r"^mlp ?(?P<l>\d+)$", re.I), "mlp"),
    # L9H9, L9.H9, 9.9, a9h9, 9H9
    (re.compile(r"^(?:L|a)?(?P<l>\d+)\.?H(?P<h>\d+)$", re.I), "head"),
    (re.compile(r"^(?P<l>\d+)\.(?P<h>\d+)$"), "head"),
    (re.compile(r"^(?:M|MLP)(?P<l>\d+)$", re.I), "mlp"),
    # TransformerLens / ACDC / InterpBench hooks
    (re.compile(r"^(?:hook_embed|hook_pos_embed|hook_tokens|embed|blocks\.0\.hook_resid_pre)$"),
     "input"),
    (re.compile(r"^(?:ln_final\.hook_normalized|unembed)$"), "logits"),
    (re.compile(r"^blocks\.(?P<l>\d+)\.attn\.hook_(?:result|z|q|k|v|pattern)\[(?P<h>\d+)\]$"), "head"),
    (re.compile(r"^blocks\.(?P<l>\d+)\.hook_[qkv]_input\[(?P<h>\d+)\]$"), "head"),
    (re.compile(r"^blocks\.(?P<l>\d+)\.(?:hook_mlp_in|hook_mlp_out|mlp\.hook_(?:pre|post))$"), "mlp"),
    (re.compile(r"^blocks\.(?P<l>\d+)\.hook_resid_post$"), "resid_post"),
]


def parse_component(text: str, n_layers: int | None = None) -> str:
    """Read a component in any known spelling and return its canonical id.

    ``blocks.{L-1}.hook_resid_post`` means ``logits`` only when `n_layers` says it is the last
    layer.

    >>> parse_component("A9.9.Q"), parse_component("MLP 2"), parse_component("L9H9")
    ('a9.h9', 'm2', 'a9.h9')
    >>> parse_component("blocks.0.attn.hook_result[2]"), parse_component("Resid Start")
    ('a0.h2', 'input')
    >>> parse_component("blocks.11.hook_resid_post", n_layers=12)
    'logits'
    """
    raw = text.strip() if isinstance(text, str) else text
    try:
        return format_node(parse_node(raw))
    except InvalidInputError:
        pass
    for pattern, kind in _ALIASES:
        m = pattern.match(raw)
        if m is None:
            continue
        if kind in ("input", "logits"):
            return kind
        layer = int(m["l"])
        if kind == "head":
            return head_id(layer, int(m["h"]))
        if kind == "mlp":
            return mlp_id(layer)
        if n_layers is not None and layer == n_layers - 1:
            return "logits"
        break
    raise InvalidInputError(
        f"'{text}' is not a component this tool can read. Use a canonical id such as a9.h6, "
        "m3, input, logits or f3.1200[dictionary] (auto-circuit's A9.6 / MLP 3 and "
        "TransformerLens hook names are also accepted)."
    )


# --- ordering and TransformerLens hooks -------------------------------------------------------


def forward_rank(c: ComponentId, parallel_attn_mlp: bool = False) -> float:
    """Position of a component in the forward pass; an edge must go from lower to higher.

    Heads of layer L come before the MLP of layer L unless attention and MLP run in parallel.
    Features and errors sit where their layer's MLP output sits.

    >>> forward_rank(parse_node("a1.h0")) < forward_rank(parse_node("m1")) < forward_rank(parse_node("a2.h0"))
    True
    """
    if c.kind is NodeKind.INPUT:
        return -1.0
    if c.kind is NodeKind.LOGITS:
        return float("inf")
    layer = c.layer or 0  # the parser always sets a layer for the remaining kinds
    if c.kind is NodeKind.ATTENTION:
        return 2.0 * layer
    return 2.0 * layer + (0.0 if parallel_attn_mlp else 1.0)


def block_hook(layer: int, name: str) -> str:
    """A TransformerLens hook of block `layer`: ``resid_pre``, ``mlp_in``, ``q_input``, ``attn.z``...

    Every hook name discovery uses is built here (or by the helpers below), so the spelling of
    TransformerLens's names lives in one place.

    >>> block_hook(3, "resid_pre"), block_hook(0, "attn.z"), block_hook(2, "mlp.post")
    ('blocks.3.hook_resid_pre', 'blocks.0.attn.hook_z', 'blocks.2.mlp.hook_post')
    """
    owner, _, leaf = name.rpartition(".")
    return f"blocks.{layer}.{owner + '.' if owner else ''}hook_{leaf}"


def attn_hook(layer: int, name: str) -> str:
    """An attention hook of block `layer` (``z``, ``q``, ``k``, ``v``, ``pattern``, ``result``...).

    >>> attn_hook(1, "pattern")
    'blocks.1.attn.hook_pattern'
    """
    return block_hook(layer, f"attn.{name}")


def qkv_input_hook(layer: int, qkv: QKV | str) -> str:
    """The split q, k or v input of block `layer`'s heads (needs ``use_split_qkv_input``).

    >>> qkv_input_hook(2, "k")
    'blocks.2.hook_k_input'
    """
    return block_hook(layer, f"{QKV(qkv).value}_input")


#: Where ``input`` (token + position embeddings) enters the residual stream.
EMBED_HOOK = "blocks.0.hook_resid_pre"
#: The scale (standard deviation) the final LayerNorm divides by.
FINAL_NORM_SCALE_HOOK = "ln_final.hook_scale"


def logits_input_hook(n_layers: int) -> str:
    """The residual stream the unembedding reads (before the final normalisation).

    >>> logits_input_hook(12)
    'blocks.11.hook_resid_post'
    """
    return block_hook(n_layers - 1, "resid_post")


def output_hook(node: str, n_layers: int) -> str:
    """The TransformerLens hook holding a component's output (index heads on their axis).

    >>> output_hook("a9.h6", 12), output_hook("m3", 12), output_hook("logits", 12)
    ('blocks.9.attn.hook_result', 'blocks.3.hook_mlp_out', 'blocks.11.hook_resid_post')
    """
    c = parse_node(node)
    if c.kind is NodeKind.INPUT:
        return EMBED_HOOK
    if c.kind is NodeKind.LOGITS:
        return logits_input_hook(n_layers)
    if c.kind is NodeKind.ATTENTION:
        return attn_hook(c.layer or 0, "result")
    if c.kind is NodeKind.MLP:
        return block_hook(c.layer or 0, "mlp_out")
    raise InvalidInputError(f"'{node}' has no TransformerLens hook: it is a dictionary {c.kind.value}.")


def input_hook(node: str, qkv: QKV | str | None, n_layers: int) -> str:
    """The TransformerLens hook holding what a component reads (split q/k/v for heads).

    >>> input_hook("a3.h2", "q", 12), input_hook("m3", None, 12)
    ('blocks.3.hook_q_input', 'blocks.3.hook_mlp_in')
    """
    c = parse_node(node)
    if c.kind is NodeKind.ATTENTION:
        if qkv is None:
            raise InvalidInputError(f"An edge into head {node} must name its q, k or v input.")
        return qkv_input_hook(c.layer or 0, qkv)
    if c.kind is NodeKind.MLP:
        return block_hook(c.layer or 0, "mlp_in")
    if c.kind is NodeKind.LOGITS:
        return logits_input_hook(n_layers)
    raise InvalidInputError(f"'{node}' reads no TransformerLens hook.")


def pattern_hook(node: str) -> str:
    """The TransformerLens hook holding a head's attention pattern (``[batch, head, query, key]``;
    index the head on axis 1).

    >>> pattern_hook("a1.h3")
    'blocks.1.attn.hook_pattern'
    """
    c = parse_node(node)
    if c.kind is not NodeKind.ATTENTION:
        raise InvalidInputError(f"'{node}' is not an attention head: only heads have attention patterns.")
    return f"blocks.{c.layer}.attn.hook_pattern"
