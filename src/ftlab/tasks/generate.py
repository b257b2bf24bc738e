"""Greedy decoding through a backbone's ``lm_forward``, for every fine-tuning method.

Prompts are left-padded to one batch; positions count real tokens, so padding shifts
nothing. With the key/value cache, the first step runs the whole prompt (a prompt-tuning
method's virtual tokens go in there, once) and every later step runs one token per
sequence against the cache; prefix tuning's learned keys and values join every layer at
every step without entering the cache. :func:`greedy_uncached` recomputes the whole
sequence at every step instead: the same tokens, which is what the tests hold the cached
path to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.no_grad()
def greedy(
    backbone,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    pad_id: int,
) -> torch.Tensor:
    """``[B, <= max_new_tokens]`` new tokens for left-padded prompts; a sequence that has
    stopped is filled with ``pad_id`` (its stop token kept)."""
    cache = backbone.new_cache()
    logits, mask = backbone.lm_forward(input_ids, attention_mask, cache=cache, logits_to_keep=1)
    stops = torch.tensor(sorted(stop_ids), device=input_ids.device)
    done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    out = []
    for step in range(max_new_tokens):
        token = _next_token(logits, done, stops, pad_id)
        out.append(token)
        if step + 1 == max_new_tokens or bool(done.all()):
            break
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        logits, mask = backbone.lm_forward(token[:, None], mask, cache=cache, logits_to_keep=1)
    return torch.stack(out, dim=1)


@torch.no_grad()
def greedy_uncached(
    backbone,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    pad_id: int,
) -> torch.Tensor:
    """What :func:`greedy` computes, recomputing the whole sequence at every step."""
    stops = torch.tensor(sorted(stop_ids), device=input_ids.device)
    done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    ids, mask, out = input_ids, attention_mask, []
    for _ in range(max_new_tokens):
        logits, _ = backbone.lm_forward(ids, mask)
        token = _next_token(logits, done, stops, pad_id)
        out.append(token)
        if bool(done.all()):
            break
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
    return torch.stack(out, dim=1)


def _next_token(
    logits: torch.Tensor, done: torch.Tensor, stops: torch.Tensor, pad_id: int
) -> torch.Tensor:
    """The greedy token of each row (``pad_id`` where the row has stopped); marks the rows
    that have just stopped in ``done``, in place."""
    token = logits[:, -1].argmax(-1)
    token = torch.where(done, torch.full_like(token, pad_id), token)
    done |= torch.isin(token, stops)
    return token


def decoded(tokenizer, new_tokens: torch.Tensor, stop_ids: Sequence[int]) -> list[str]:
    """Each row's text up to (not including) its first stop token."""
    texts = []
    for row in new_tokens.tolist():
        end = next((i for i, t in enumerate(row) if t in stop_ids), len(row))
        texts.append(tokenizer.decode(row[:end], skip_special_tokens=True))
    return texts
