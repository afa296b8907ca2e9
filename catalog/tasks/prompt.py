"""A one-prompt dataset: explain the model's own top next-token logit on a text of your choice.

Used by ``catalog discover --prompt TEXT`` (attribution graphs explain one prompt at a time). The
"answer" is the token the model itself ranks first at the last position, and the metric that
token's logit; there is no counterfactual (the corrupt prompt is the clean one).
"""

from __future__ import annotations

from typing import Any

from catalog.errors import TaskError
from catalog.tasks.base import TaskDataset, top1_is_answer
from catalog.tasks.roles import plain_roles
from catalog.tasks.tokens import Tokens

#: The task name a one-prompt circuit is stored under.
PROMPT_TASK = "prompt"


def top_logit(final: Any, ds: TaskDataset) -> Any:
    """The logit of each example's answer token (its own top token): [B]."""
    import torch

    return final[torch.arange(final.shape[0], device=final.device), ds.answers.to(final.device)]


def prompt_dataset(loaded_model: Any, text: str) -> TaskDataset:
    """`text` (BOS first) with the model's top next token at its end as the answer."""
    import torch

    from catalog.tasks.examples import role_tensor

    if not isinstance(text, str) or not text.strip():
        raise TaskError("--prompt needs some text, e.g. --prompt 'When Mary and John went to the store, John gave a drink to'.")
    model = getattr(loaded_model, "model", loaded_model)
    tokens = Tokens(loaded_model)
    ids = [tokens.bos_id] + tokens.encode(text)
    n_ctx = model.cfg.n_ctx
    if len(ids) > n_ctx:
        raise TaskError(f"The prompt is {len(ids)} tokens; this model reads at most {n_ctx}. Shorten it.")
    row = torch.tensor([ids], dtype=torch.long, device=model.cfg.device)
    with torch.no_grad():
        top = int(model(row)[0, -1].argmax())
    names, role_ids = role_tensor([plain_roles(len(ids))], len(ids))
    return TaskDataset(
        task=PROMPT_TASK, clean=row.cpu(), corrupt=row.cpu().clone(),
        positions=torch.tensor([len(ids) - 1]), answers=torch.tensor([top]), wrong_answers=torch.tensor([top]),
        prompts=[text], corrupt_prompts=[text], metric_name="top_logit", metric_fn=top_logit,
        correct_fn=top1_is_answer, pad_id=tokens.pad_id, spec={"prompt": text},
        role_names=names, role_ids=role_ids)
