"""Greedy and beam-search decoding of one 30 s window, in openai-whisper's convention.

The model is anything with `first(tokens, audio) -> (logits, cache)`, `next(tokens, cache) -> (logits,
cache)` and `reorder(cache, rows) -> cache`; logits are those of the last position, (batch, vocab).
Logit filters run in openai-whisper's order: suppress blank at the start, suppress tokens, timestamp rules.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tokenizer import Tokenizer

NEG_INF = -np.inf


@dataclass
class DecodeOptions:
    task: str = "transcribe"
    language: str | None = "en"
    beam_size: int = 1
    patience: float = 1.0
    max_new_tokens: int | None = None  # None: half the text context, as openai-whisper (224)
    timestamps: bool = True


@dataclass
class DecodeResult:
    tokens: list[int]  # sampled tokens, without the prompt and the end-of-text token
    sum_logprob: float
    avg_logprob: float


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    m = np.max(x, axis=-1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def logsumexp(x: np.ndarray) -> float:
    """log(sum(exp(x))) of a 1-D row, -inf when every entry is -inf."""
    m = float(np.max(x))
    return m if m == NEG_INF else m + float(np.log(np.sum(np.exp(x - m))))


def token_logprob(logits_row: np.ndarray, token: int) -> float:
    """log_softmax(logits_row)[token], without the whole row's log-probabilities."""
    return float(logits_row[token]) - logsumexp(logits_row)


class LogitFilter:
    def __init__(self, tok: Tokenizer, sample_begin: int, timestamps: bool):
        self.tok, self.sample_begin, self.timestamps = tok, sample_begin, timestamps
        self.suppress = np.array(sorted(set(tok.suppress_tokens)), dtype=np.int64)
        self.begin_suppress = np.array(tok.begin_suppress_tokens, dtype=np.int64)

    def __call__(self, logits: np.ndarray, tokens: list[list[int]]) -> None:
        tok = self.tok
        if len(tokens[0]) == self.sample_begin:
            logits[:, self.begin_suppress] = NEG_INF
        logits[:, self.suppress] = NEG_INF
        if self.timestamps:
            self._timestamp_rules(logits, tokens)
        # The vocabulary may be padded beyond the tokenizer; those ids never occur.
        logits[:, tok.vocab_size:] = NEG_INF

    def _timestamp_rules(self, logits: np.ndarray, tokens: list[list[int]]) -> None:
        ts = self.tok.timestamp_begin
        eot = self.tok.eot
        logits[:, self.tok.no_timestamps] = NEG_INF
        for k, row in enumerate(tokens):
            sampled = row[self.sample_begin:]
            last_was_ts = len(sampled) >= 1 and sampled[-1] >= ts
            penultimate_was_ts = len(sampled) < 2 or sampled[-2] >= ts
            if last_was_ts:
                if penultimate_was_ts:  # a pair of timestamps: text must follow
                    logits[k, ts:] = NEG_INF
                else:  # a segment just ended: no text before its closing timestamp
                    logits[k, :eot] = NEG_INF
            stamps = [t for t in sampled if t >= ts]
            if stamps:
                # Timestamps never decrease, and each segment has a nonzero length.
                last = stamps[-1] if last_was_ts and not penultimate_was_ts else stamps[-1] + 1
                logits[k, ts:last] = NEG_INF
        if len(tokens[0]) == self.sample_begin:
            logits[:, :ts] = NEG_INF
            logits[:, ts + self.tok.max_initial_timestamp_index + 1:] = NEG_INF
        for k in range(logits.shape[0]):
            # The timestamps' total probability against the likeliest text token's: both log-probabilities
            # share the row's normaliser, so the logits compare alike without a softmax over the vocabulary.
            if logsumexp(logits[k, ts:]) > logits[k, :ts].max():
                logits[k, :ts] = NEG_INF


def initial_tokens(tok: Tokenizer, prompt: list[int], options: DecodeOptions, n_text_ctx: int) -> list[int]:
    tokens = tok.sot_sequence(options.language, options.task)
    if not options.timestamps:
        tokens.append(tok.no_timestamps)
    if prompt:
        tokens = [tok.sot_prev] + prompt[-(n_text_ctx // 2 - 1):] + tokens
    return tokens


def decode(model, audio_features, tok: Tokenizer, prompt: list[int], options: DecodeOptions,
           n_text_ctx: int) -> DecodeResult:
    initial = initial_tokens(tok, prompt, options, n_text_ctx)
    sample_len = options.max_new_tokens or n_text_ctx // 2
    logit_filter = LogitFilter(tok, len(initial), options.timestamps)
    logits, cache = model.first(np.array([initial], dtype=np.int64), audio_features)
    if options.beam_size <= 1:
        return _greedy(model, logits, cache, initial, tok, logit_filter, sample_len, n_text_ctx)
    return _beam(model, logits, cache, initial, tok, logit_filter, sample_len, n_text_ctx, options)


def _greedy(model, logits, cache, initial, tok, logit_filter, sample_len, n_text_ctx) -> DecodeResult:
    tokens = list(initial)
    sum_logprob = 0.0
    for _ in range(sample_len):
        logit_filter(logits, [tokens])
        next_token = int(np.argmax(logits[0]))
        sum_logprob += token_logprob(logits[0], next_token)
        tokens.append(next_token)
        if next_token == tok.eot or len(tokens) > n_text_ctx:
            break
        logits, cache = model.next(np.array([[next_token]], dtype=np.int64), cache)
    sampled = tokens[len(initial):]
    if sampled and sampled[-1] == tok.eot:
        sampled = sampled[:-1]
    return DecodeResult(sampled, sum_logprob, sum_logprob / (len(sampled) + 1))


def _beam(model, logits, cache, initial, tok, logit_filter, sample_len, n_text_ctx, options) -> DecodeResult:
    beam = options.beam_size
    max_candidates = round(beam * options.patience)
    rows = np.zeros(beam, dtype=np.int64)
    cache = model.reorder(cache, rows)
    logits = np.repeat(logits, beam, axis=0)
    seqs = [list(initial) for _ in range(beam)]
    sum_logprobs = np.zeros(beam)
    finished: dict[tuple[int, ...], float] = {}
    for _step in range(sample_len):
        logit_filter(logits, seqs)
        logprobs = log_softmax(logits)
        scores, sources = {}, {}
        for j in range(len(seqs)):
            top = np.argpartition(-logprobs[j], beam + 1)[:beam + 1]
            for token in top[np.argsort(-logprobs[j, top], kind="stable")]:
                seq = tuple(seqs[j]) + (int(token),)
                if seq not in scores:
                    scores[seq], sources[seq] = sum_logprobs[j] + float(logprobs[j, token]), j
        next_seqs, next_scores, source_rows = [], [], []
        for seq in sorted(scores, key=scores.get, reverse=True):
            if seq[-1] == tok.eot:
                finished.setdefault(seq, scores[seq])
            else:
                next_seqs.append(list(seq))
                next_scores.append(scores[seq])
                source_rows.append(sources[seq])
                if len(next_seqs) == beam:
                    break
        if len(finished) >= max_candidates or not next_seqs or len(next_seqs[0]) > n_text_ctx:
            break
        seqs, sum_logprobs = next_seqs, np.array(next_scores)
        cache = model.reorder(cache, np.array(source_rows, dtype=np.int64))
        last = np.array([[s[-1]] for s in seqs], dtype=np.int64)
        logits, cache = model.next(last, cache)
    if len(finished) < beam:
        for seq, score in zip(seqs, sum_logprobs):
            finished.setdefault(tuple(seq), float(score))
            if len(finished) >= beam:
                break

    def rank(item):  # openai-whisper's maximum-likelihood ranker without a length penalty
        seq, score = item
        length = len(seq) - len(initial) - (1 if seq[-1] == tok.eot else 0)
        return score / max(length, 1)

    best, score = max(finished.items(), key=rank)
    sampled = [t for t in best[len(initial):] if t != tok.eot]
    return DecodeResult(sampled, score, score / (len(sampled) + 1))


def decode_batch(model, audio_features, tok: Tokenizer, prompts: list[list[int]], options: DecodeOptions,
                 n_text_ctx: int) -> list[DecodeResult]:
    """Greedy decoding of several windows at once (one row per file), each row exactly as `decode`
    would decode it alone: its own prompt, logit filter and stopping point. The prompts differ in length,
    so each row's first step runs alone; the rows then step together, their caches left-padded to the
    longest and the padding hidden by the model's self-attention bias. A row leaves the batch when it
    ends its window."""
    initials = [initial_tokens(tok, p, options, n_text_ctx) for p in prompts]
    sample_len = options.max_new_tokens or n_text_ctx // 2
    filters = [LogitFilter(tok, len(ini), options.timestamps) for ini in initials]
    firsts = [model.first(np.array([ini], dtype=np.int64), audio_features[k:k + 1]) for k, ini in enumerate(initials)]
    logits = np.concatenate([f[0] for f in firsts])
    cache = model.stack([f[1] for f in firsts])
    tokens = [list(ini) for ini in initials]
    sum_logprobs = [0.0] * len(initials)
    active = list(range(len(initials)))  # the file row behind each batch row
    for _ in range(sample_len):
        keep, next_tokens = [], []
        for i, row in enumerate(active):
            filters[row](logits[i:i + 1], [tokens[row]])
            next_token = int(np.argmax(logits[i]))
            sum_logprobs[row] += token_logprob(logits[i], next_token)
            tokens[row].append(next_token)
            if not (next_token == tok.eot or len(tokens[row]) > n_text_ctx):
                keep.append(i)
                next_tokens.append(next_token)
        if not keep:
            break
        if len(keep) < len(active):
            cache = model.select(cache, np.array(keep, dtype=np.int64))
            active = [active[i] for i in keep]
        logits, cache = model.next(np.array(next_tokens, dtype=np.int64)[:, None], cache)
    out = []
    for row, ini in enumerate(initials):
        sampled = tokens[row][len(ini):]
        if sampled and sampled[-1] == tok.eot:
            sampled = sampled[:-1]
        out.append(DecodeResult(sampled, sum_logprobs[row], sum_logprobs[row] / (len(sampled) + 1)))
    return out
