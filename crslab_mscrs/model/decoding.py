"""Decoding loops for a prefix-conditioned causal LM: greedy, top-p sampling, beam search.

Written against the ``Cache`` API (not ``generate()``), because the prefix keys in the cache do
not correspond to input tokens, which ``generate()`` assumes. All three modes support HF-style
no-repeat n-gram blocking (over the real context tokens plus the generated ones) and stop at
eos. Beam search scores hypotheses by sum of log-probabilities / length ** length_penalty and
stops a sample once it has ``num_beams`` finished hypotheses (HF ``early_stopping=True``).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from crslab_mscrs.model.prefix_cache import PrefixKeyValues, prefixed_lm_inputs

ABSENT = -1  # marks padding in the n-gram history


def banned_ngram_mask(history: torch.Tensor, ngram_size: int, vocab_size: int) -> torch.Tensor:
    """Bool [N, V]: tokens that would repeat an n-gram of ``history`` [N, T] (ABSENT = padding)."""
    banned = torch.zeros(history.size(0), vocab_size, dtype=torch.bool, device=history.device)
    if ngram_size <= 0 or history.size(1) < ngram_size:
        return banned
    windows = history.unfold(1, ngram_size, 1)  # [N, T-n+1, n]
    current = history[:, history.size(1) - (ngram_size - 1):]
    match = (windows[:, :, :-1] == current.unsqueeze(1)).all(-1) & (windows != ABSENT).all(-1)
    rows, starts = match.nonzero(as_tuple=True)
    banned[rows, windows[rows, starts, -1]] = True
    return banned


def top_p_sample(logits: torch.Tensor, top_p: Optional[float], generator=None) -> torch.Tensor:
    """Sample from the smallest set of tokens whose probability mass reaches ``top_p``."""
    probs = torch.softmax(logits.float(), dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _PrefixedStepper:
    """Runs the LM one token at a time after a prefixed prompt, tracking mask and positions."""

    def __init__(self, lm, input_ids, attention_mask, prefix):
        kwargs = prefixed_lm_inputs(input_ids, attention_mask, prefix)
        self.lm = lm
        kwargs.update(use_cache=True, logits_to_keep=1)  # only the last position's logits are needed
        output = lm(**kwargs)
        self.cache = output.cache
        self.logits = output.logits[:, -1].float()
        self.mask = kwargs["attention_mask"]
        self.positions = kwargs["position_ids"][:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.size(0), 1)], dim=1)
        self.positions = self.positions + 1
        output = self.lm(input_ids=tokens.unsqueeze(1), attention_mask=self.mask,
                         position_ids=self.positions.unsqueeze(1), cache=self.cache, use_cache=True,
                         logits_to_keep=1)
        self.cache = output.cache
        self.logits = output.logits[:, -1].float()
        return self.logits

    def reorder(self, index: torch.Tensor) -> None:
        self.cache.reorder_cache(index)
        self.mask, self.positions = self.mask[index], self.positions[index]


def _history(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return input_ids.masked_fill(attention_mask == 0, ABSENT)


@torch.no_grad()
def decode(lm, input_ids: torch.Tensor, attention_mask: torch.Tensor,
           prefix: Optional[PrefixKeyValues], eos_token_id: int, pad_token_id: int,
           max_new_tokens: int = 50, num_beams: int = 1, do_sample: bool = False,
           top_p: Optional[float] = None, no_repeat_ngram_size: int = 3,
           temperature: float = 1.0, length_penalty: float = 1.0, generator=None) -> torch.Tensor:
    """Generate up to ``max_new_tokens`` after LEFT-padded ``input_ids``; new tokens only.

    Returns ``LongTensor [B, T<=max_new_tokens]``, each row ending with eos then ``pad_token_id``.
    """
    if num_beams > 1:
        if do_sample:
            raise ValueError("beam sampling is not supported: use num_beams=1 with do_sample.")
        return _beam_search(lm, input_ids, attention_mask, prefix, eos_token_id, pad_token_id,
                            max_new_tokens, num_beams, no_repeat_ngram_size, length_penalty)
    stepper = _PrefixedStepper(lm, input_ids, attention_mask, prefix)
    history = _history(input_ids, attention_mask)
    finished = torch.zeros(input_ids.size(0), dtype=torch.bool, device=input_ids.device)
    generated: List[torch.Tensor] = []
    logits = stepper.logits
    for step in range(max_new_tokens):
        logits = logits.masked_fill(banned_ngram_mask(history, no_repeat_ngram_size, logits.size(-1)),
                                    float("-inf"))
        if do_sample:
            tokens = top_p_sample(logits / temperature, top_p, generator)
        else:
            tokens = logits.argmax(-1)
        tokens = tokens.masked_fill(finished, pad_token_id)
        generated.append(tokens)
        history = torch.cat([history, tokens.masked_fill(finished, ABSENT).unsqueeze(1)], dim=1)
        finished = finished | (tokens == eos_token_id)
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        logits = stepper.step(tokens)
    if not generated:
        return input_ids.new_zeros(input_ids.size(0), 0)
    return torch.stack(generated, dim=1)


def _beam_search(lm, input_ids, attention_mask, prefix, eos_token_id, pad_token_id,
                 max_new_tokens, num_beams, no_repeat_ngram_size, length_penalty) -> torch.Tensor:
    batch, beams = input_ids.size(0), num_beams
    device = input_ids.device
    expanded_ids = input_ids.repeat_interleave(beams, 0)
    expanded_mask = attention_mask.repeat_interleave(beams, 0)
    stepper = _PrefixedStepper(lm, expanded_ids, expanded_mask,
                               prefix.repeat_interleave(beams) if prefix is not None else None)
    history = _history(expanded_ids, expanded_mask)
    beam_scores = torch.zeros(batch, beams, device=device)
    beam_scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
    sequences = torch.zeros(batch * beams, 0, dtype=torch.long, device=device)
    finished: List[List[Tuple[float, torch.Tensor]]] = [[] for _ in range(batch)]
    done = [False] * batch
    logits = stepper.logits
    for step in range(max_new_tokens):
        vocab = logits.size(-1)
        logits = logits.masked_fill(banned_ngram_mask(history, no_repeat_ngram_size, vocab), float("-inf"))
        scores = beam_scores.view(-1, 1) + torch.log_softmax(logits, dim=-1)
        top_scores, top_index = scores.view(batch, beams * vocab).topk(2 * beams, dim=1)
        next_beam, next_token, next_score = [], [], []
        for b in range(batch):
            chosen = 0
            for score, index in zip(top_scores[b].tolist(), top_index[b].tolist()):
                source, token = b * beams + index // vocab, index % vocab
                if done[b]:
                    break
                if token == eos_token_id:
                    hypothesis = torch.cat([sequences[source], sequences.new_tensor([token])])
                    finished[b].append((score / (step + 1) ** length_penalty, hypothesis))
                    continue
                next_beam.append(source), next_token.append(token), next_score.append(score)
                chosen += 1
                if chosen == beams:
                    break
            if done[b] or len(finished[b]) >= beams:
                done[b] = True
            while chosen < beams:  # keep shapes fixed: filler beams that can never win
                next_beam.append(b * beams), next_token.append(pad_token_id)
                next_score.append(float("-inf"))
                chosen += 1
        if all(done):
            break
        beam_index = torch.tensor(next_beam, device=device)
        tokens = torch.tensor(next_token, device=device)
        beam_scores = torch.tensor(next_score, device=device).view(batch, beams)
        sequences = torch.cat([sequences[beam_index], tokens.unsqueeze(1)], dim=1)
        history = torch.cat([history[beam_index], tokens.unsqueeze(1)], dim=1)
        if step == max_new_tokens - 1:
            break
        stepper.reorder(beam_index)
        logits = stepper.step(tokens)
    for b in range(batch):
        if not done[b]:
            for k in range(beams):
                score = float(beam_scores[b, k])
                if score > float("-inf"):
                    length = sequences.size(1)
                    finished[b].append((score / max(length, 1) ** length_penalty, sequences[b * beams + k]))
    best = [max(finished[b], key=lambda item: item[0])[1] for b in range(batch)]
    width = max((len(seq) for seq in best), default=0)
    output = torch.full((batch, width), pad_token_id, dtype=torch.long, device=device)
    for b, seq in enumerate(best):
        output[b, :len(seq)] = seq
    return output
