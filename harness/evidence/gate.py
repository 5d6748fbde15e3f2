"""Like with like, and one declared accuracy reference per comparison.

- Rows are compared only within a comparison: same SUT, host fingerprint, model, corpus, requested
  decoding settings (batch size included: a throughput comparison is its own) and memory limit.
- The gate's reference is declared and does not depend on which engines a run chose: the baseline
  engine's own complete run of this model, corpus and decoding on this host (its batch-1 run, also for
  throughput comparisons). With references, a row passes when its word accuracy (mean over its rounds) is
  at least 99 % of the reference's; without references, when its transcripts agree with the reference's
  to within 1 % WER. With no reference run, accuracy is not gated and the answer says so.
"""
from __future__ import annotations

import json
from collections import Counter

from engines.registry import BASELINE_ENGINE, SPECS
from engines.results import Status

from ..scoring.normalizers import GATE_NORMALIZER

ACCURACY_GATE = 0.99          # share of the reference's word accuracy a row must keep
BASELINE_AGREEMENT = 0.01     # without references: WER against the reference's transcripts


def comparison_key(row: dict) -> tuple:
    return (row["sut"], row.get("fingerprint"), row["model"], row.get("corpus_id"), row.get("decoding_key"),
            row["memory_gb"])


def reference_key(row: dict) -> tuple:
    """What a reference must share with a row: all of the comparison but the batch size."""
    decoding = {k: v for k, v in (row.get("decoding") or {}).items() if k != "batch_size"}
    return (row["sut"], row.get("fingerprint"), row["model"], row.get("corpus_id"),
            json.dumps(decoding, sort_keys=True))


def group_rows(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(comparison_key(row), []).append(row)
    return groups


def is_reference(row: dict) -> bool:
    return (row["engine"] == BASELINE_ENGINE and row["variant"] == SPECS[BASELINE_ENGINE].default_variant
            and row["status"] == Status.OK and (row.get("batch") or 1) == 1)


def find_reference(row: dict, rows: list[dict]) -> dict | None:
    """The declared reference for row: the baseline's complete batch-1 run on the same inputs, at the
    fewest cores where it ran at several."""
    key = reference_key(row)
    found = [r for r in rows if is_reference(r) and reference_key(r) == key]
    return min(found, key=lambda r: (r["cores"] or 0, r["cell"])) if found else None


def apply_gate(group: list[dict], rows: list[dict]) -> tuple[str, dict | None]:
    """Sets each finished row's `accuracy_gate` (pass, FAIL, reference, or None when not gated); returns the
    rule in words and the reference row."""
    for row in group:
        row["accuracy_gate"] = None
    reference = find_reference(group[0], rows)
    name = f"{BASELINE_ENGINE} {SPECS[BASELINE_ENGINE].default_variant}"
    if reference is None:
        return (f"accuracy is not gated: no complete run of the reference ({name}) for this model, corpus and "
                f"decoding on this host"), None
    where = f"{name}'s run at {reference['cores']}c ({_runs_text(reference)})"
    finished = [r for r in group if r["status"] in (Status.OK, Status.PARTIAL)]
    if reference.get("wer") is not None:
        point = reference["wer"]
        for row in finished:
            if row is reference or row["cell"] == reference["cell"] and row["shape"] == reference["shape"]:
                row["accuracy_gate"] = "reference"
            elif row["wer"] is not None:
                row["accuracy_gate"] = "pass" if 1 - row["wer"] >= ACCURACY_GATE * (1 - point) else "FAIL"
        return (f"word accuracy against the references ({GATE_NORMALIZER} normaliser, mean over each row's rounds) "
                f"at least {100 * ACCURACY_GATE:.0f} % of {where}, WER {100 * point:.2f} %"), reference
    for row in finished:
        if row["cell"] == reference["cell"] and row["shape"] == reference["shape"]:
            row["accuracy_gate"] = "reference"
        elif row["wer_vs_baseline"] is not None:
            row["accuracy_gate"] = "pass" if row["wer_vs_baseline"] <= BASELINE_AGREEMENT else "FAIL"
    return f"no references: transcripts within {100 * BASELINE_AGREEMENT:.0f} % WER of {where}", reference


def _runs_text(row: dict) -> str:
    n = row.get("n_rounds") or 0
    return f"{n} round{'s' if n != 1 else ''}"


def gated(group: list[dict]) -> list[dict]:
    """The rows an answer ranks: complete runs within the gate (every complete run when nothing is gated)."""
    ok = [r for r in group if r["status"] == Status.OK and r.get("rtf")]
    if any(r.get("accuracy_gate") for r in ok):
        return [r for r in ok if r.get("accuracy_gate") in ("pass", "reference")]
    return ok


def add_scaling(group: list[dict]) -> None:
    """Speed-up and efficiency from RTF against the same variant's fewest-cores ok run, named in `scaling_base`."""
    by_cell: dict[str, list[dict]] = {}
    for row in group:
        row["speedup"] = row["efficiency"] = None
        row["scaling_base"] = ""
        ok = row["status"] == Status.OK and row.get("rtf")
        row["audio_h_per_core_h"] = row["rtfx"] / row["cores"] if ok and row["rtfx"] and row["cores"] else None
        if ok and row["cores"]:
            by_cell.setdefault(row["cell"], []).append(row)
    for cells in by_cell.values():
        base = min(cells, key=lambda r: r["cores"])
        for row in cells:
            row["speedup"] = base["rtf"] / row["rtf"]
            row["efficiency"] = row["speedup"] / (row["cores"] / base["cores"])
            row["scaling_base"] = f"{base['cores']}c"


def add_decoding_diff(group: list[dict]) -> dict:
    """The comparison's most common applied settings; each row lists where its applied settings differ."""
    applied = [r["decoding_applied"] for r in group if r.get("decoding_applied")]
    keys = sorted({k for a in applied for k in a})
    common = {k: Counter(json.dumps(a.get(k)) for a in applied).most_common(1)[0][0] for k in keys}
    for row in group:
        a = row.get("decoding_applied") or {}
        row["decoding_diff"] = "; ".join(f"{k}={a.get(k)}" for k in sorted(a) if json.dumps(a.get(k)) != common.get(k))
    return {k: json.loads(v) for k, v in common.items()}


def add_derived(rows: list[dict]) -> dict[tuple, dict]:
    """Gate, scaling and decoding differences per comparison; returns comparison -> {rule, reference, common}."""
    out = {}
    for key, group in group_rows(rows).items():
        rule, reference = apply_gate(group, rows)
        add_scaling(group)
        out[key] = {"gate_rule": rule, "reference": reference, "common_decoding": add_decoding_diff(group)}
    return out
