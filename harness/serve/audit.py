"""Accuracy of a serving cell, and the TEST01-style audit of what it answered under load.

Accuracy: the accuracy-mode run answers every query once (LoadGen's AccuracyOnly, Offline scenario); a
file's transcript is its windows' transcripts joined in order, scored against the file's reference under
the gate normaliser, and against the baseline engine's single-stream transcripts where such a run exists.

Audit (MLPerf's TEST01 in spirit): during every performance run LoadGen logs a random sample of the
responses (AUDIT_PROBABILITY); each must equal, word for word, the accuracy run's answer to the same query.
A SUT that answered differently under load (skipped work, cached, truncated) fails, and the cell is marked.
"""
from __future__ import annotations

import json
from pathlib import Path

from engines.serve.logs import ACCURACY_LOG, QUERIES_FILE, read_responses

from ..scoring.normalizers import GATE_NORMALIZER, all_normalizers
from ..scoring.wer import score_pairs

EXAMPLES = 3  # mismatches quoted in the audit's record


def _words(text: str) -> str:
    return " ".join(text.split())


def query_table(run_dir: Path) -> list[dict]:
    try:
        return json.loads((run_dir / QUERIES_FILE).read_text())["queries"]
    except (OSError, ValueError, KeyError):
        return []


def accuracy_answers(run_dir: Path) -> dict[int, str]:
    """QSL index -> the accuracy run's transcript."""
    return {r["qsl_idx"]: r["text"] for r in read_responses(run_dir / ACCURACY_LOG)}


def file_transcripts(queries: list[dict], answers: dict[int, str]) -> dict[str, str]:
    """A file's windows joined in order; a window without an answer leaves its file out."""
    parts: dict[str, list[tuple[int, int]]] = {}
    for q in queries:
        parts.setdefault(q["file"], []).append((q["part"], q["index"]))
    return {f: " ".join(answers[i].strip() for _, i in sorted(ps)) for f, ps in parts.items()
            if all(i in answers for _, i in ps)}


def accuracy(run_dir: Path, references: dict[str, str | None], baseline: dict[str, str] | None) -> dict:
    """WER/CER of the accuracy run against references (and the baseline's transcripts), gate normaliser."""
    queries = query_table(run_dir)
    hyps = file_transcripts(queries, accuracy_answers(run_dir))
    norm = next(n for n in all_normalizers() if n.name == GATE_NORMALIZER)
    # every referenced file counts: one the run did not answer is an empty hypothesis
    with_ref = [(f, ref, hyps.get(f, "")) for f, ref in sorted(references.items()) if ref]
    vs_ref = score_pairs(with_ref, norm.normalize)
    out = {"normalizer": GATE_NORMALIZER, "n_queries": len(queries), "n_files": len(hyps),
           "wer": vs_ref["wer"], "cer": vs_ref["cer"], "wer_ci95": vs_ref["wer_ci95"], "n_referenced": len(with_ref),
           "wer_vs_baseline": None}
    if baseline:
        pairs = [(f, text, hyps.get(f, "")) for f, text in sorted(baseline.items()) if norm.normalize(text)]
        out["wer_vs_baseline"] = score_pairs(pairs, norm.normalize)["wer"]
    return out


def audit(accuracy_dir: Path, performance_dirs: list[Path]) -> dict:
    """Every response logged during the performance runs against the accuracy run's answer to that query."""
    answers = accuracy_answers(accuracy_dir)
    compared, mismatches = 0, []
    for run_dir in performance_dirs:
        for r in read_responses(run_dir / ACCURACY_LOG):
            if r["qsl_idx"] not in answers:
                continue
            compared += 1
            if _words(r["text"]) != _words(answers[r["qsl_idx"]]):
                mismatches.append({"run": run_dir.name, "qsl_idx": r["qsl_idx"], "under_load": r["text"],
                                   "accuracy_run": answers[r["qsl_idx"]]})
    if not answers:
        verdict = "not checked: no accuracy run"
    elif compared == 0:
        verdict = "not checked: no response was sampled under load"
    else:
        verdict = "pass" if not mismatches else "FAIL"
    return {"verdict": verdict, "compared": compared, "mismatched": len(mismatches), "examples": mismatches[:EXAMPLES]}
