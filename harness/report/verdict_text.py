"""The answer in words, rendered from answer.json's comparisons: the verdict lines (RESULTS.md and the
terminal) and the leaderboard (RESULTS.md). One renderer, so both say the same thing."""
from __future__ import annotations

from tabulate import tabulate

from ..evidence.verdicts import MIN_EFFECT


def _times(o: dict) -> str:
    if o.get("times_leader") is None:
        return "no interval"
    if o.get("low") is None:
        return f"{o['times_leader']:.3f}x (one run: no interval)"
    paired = "paired " if o["paired"] else ""
    return f"{o['times_leader']:.3f}x [{o['low']:.3f}-{o['high']:.3f}], {o['rounds']} {paired}" \
           f"round{'s' if o['rounds'] != 1 else ''}"


def _value(q: dict) -> str:
    lead = q["leader"]
    if q["per_core"]:
        return f"{lead['audio_h_per_core_h']:.1f} audio hours per core-hour" if lead.get("audio_h_per_core_h") \
            else f"RTF x cores {lead['rtf'] * lead['cores']:.4f}"
    ci = f" [{1 / lead['rtf_high']:.1f}-{1 / lead['rtf_low']:.1f}]" if lead.get("rtf_low") else ""
    return f"RTFx {lead['rtfx']:.1f}{ci}"


def verdict_lines(q: dict) -> list[str]:
    """The question's line, then one indented line per caveat."""
    lead = q["leader"]
    others = q["others"]
    if q["status"] == "one candidate":
        line = f"{q['question']}: one candidate ({lead['cell']}, {_value(q)}), nothing compared."
    elif q["status"] == "winner":
        runner = others[0]
        rest = len(others) - 1
        line = (f"{q['question']}: **{lead['cell']}**, {_value(q)}; the runner-up {runner['cell']} takes "
                f"{_times(runner)} of its {'cost' if q['per_core'] else 'time'}"
                + (f" ({runner['relation']})" if runner["relation"] == "out" else "")
                + (f"; {rest} other(s) beaten or out of contention" if rest else "") + ".")
    else:
        tied = [o for o in others if o["relation"] == "tied"]
        resolvable = [o["smallest_resolvable"] for o in tied if o.get("smallest_resolvable")]
        line = (f"{q['question']}: tie: {lead['cell']} ({_value(q)}) and "
                + ", ".join(f"{o['cell']} ({_times(o)})" for o in tied)
                + f"; the intervals do not put them {100 * MIN_EFFECT:g} % apart"
                + (f" (at this noise and these rounds, about {100 * (max(resolvable) - 1):.0f} % would have been "
                   f"resolved)" if resolvable else "") + ".")
    return [line] + [f"  note: {c}" for c in q["caveats"]]


def answer_text(comparison: dict) -> list[str]:
    out = [f"Accuracy gate: {comparison['gate']['rule']}."]
    for q in comparison["questions"]:
        out += verdict_lines(q)
    if not comparison["questions"]:
        out.append("No run completed cleanly within the accuracy gate; see the table.")
    return out


def leaderboard(comparison: dict) -> str:
    rows = []
    for e in comparison["leaderboard"]:
        ci = f" [{1 / e['rtf_high']:.1f}-{1 / e['rtf_low']:.1f}]" if e.get("rtf_low") else ""
        rows.append([e["cell"], f"{e['rtfx']:.1f}{ci}" if e.get("rtfx") else "",
                     f"{e['audio_h_per_core_h']:.1f}" if e.get("audio_h_per_core_h") else "",
                     f"{100 * e['wer']:.2f}" if e.get("wer") is not None else "", e.get("gate") or "",
                     str(e.get("rounds") or 0)])
    return tabulate(rows, headers=["variant@cores", "RTFx [95 %]", "audio h / core h", "WER %", "gate", "rounds"],
                    tablefmt="github", disable_numparse=True)


def comparison_title(c: dict) -> str:
    dec = ", ".join(f"{k}={v}" for k, v in c["decoding"].items()) or "unrecorded"
    scenario = f"throughput at batch {c['batch']}, " if c["batch"] > 1 else ""
    audio = f" ({c['audio_s'] / 60:.1f} min)" if c.get("audio_s") else ""
    runs = "; ".join(f"run {r['run_id']} (commit {r.get('commit') or '?'}, seed {r.get('seed')})" for r in c["runs"]) \
        or "runs unrecorded"
    return (f"{scenario}model {c['model']}, corpus {c.get('corpus_id') or 'unnamed'}{audio}, memory limit "
            f"{c['memory_gb']:g} GiB, on {c['host'].get('cpu_model') or 'an unknown CPU'} (fingerprint "
            f"{c.get('fingerprint') or '?'}); {runs}; decoding applied by most rows: {dec}")
