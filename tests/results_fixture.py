"""Result folders as the harness writes them (round folders with run.json, the engine's files and
metrics.json), made from a few numbers, for the report tests."""
import json

import numpy as np

N_FILES = 10
FILE_S = 60.0
DECODING = {"language": "en", "task": "transcribe", "beam_size": 1, "temperature": 0.0, "timestamps": True,
            "condition_on_previous_text": True, "max_new_tokens": None, "vad": False,
            "no_speech_threshold": None, "batch_size": 1}
OOM_ERROR = "killed by the kernel: out of memory under the container's limit"


def make_cell(results, shape, cell, rtf=0.1, rounds=3, status="ok", wer=0.10, noise=0.01, seed=0, sut="box",
              decoding=None, applied=None, notes=(), convention="openai", failed_files=0, run=True,
              memory_gb=4.0, corpus="c1", model="tiny.en", per_file_spread=0.3, variant=None, cpu="Test CPU",
              loaded=(), first_round=1, run_id=None, round_factors=None):
    """One cell: `rounds` rounds at about `rtf` (per-file RTF varies by per_file_spread across files, and by
    `noise` between rounds, or by the given round_factors). status applies to the last round; earlier rounds
    are ok. Rounds in `loaded` ran while their CPUs were busy."""
    engine = cell.split(f"-{model}-")[0]
    variant = variant or cell.split(f"-{model}-")[1]
    cores = int(shape.split("_")[1].split("c")[0])
    rng = np.random.default_rng(seed)
    file_factor = 1 + per_file_spread * np.linspace(-1, 1, N_FILES)
    cell_dir = results / sut / shape / cell
    for k in range(first_round, first_round + rounds):
        d = cell_dir / f"round-{k}"
        d.mkdir(parents=True)
        st = status if k == first_round + rounds - 1 else "ok"
        round_factor = round_factors[k - first_round] if round_factors else 1 + noise * rng.standard_normal()
        rows = []
        for i in range(N_FILES):
            failed = st == "partial" and i < failed_files
            t = rtf * FILE_S * file_factor[i] * round_factor
            rows.append({"file": f"f{i}.wav", "repeat": 0, "audio_s": FILE_S, "end_to_end_s": None if failed else t,
                         "rtf": None if failed else t / FILE_S, "n_tokens": 10, "text": "" if failed else "x",
                         "error": "audio: broken" if failed else ""})
        ok = [r for r in rows if not r["error"]]
        if st in ("ok", "partial"):
            proc = sum(r["end_to_end_s"] for r in ok)
            audio = FILE_S * len(ok)
            e2e = sorted(r["end_to_end_s"] for r in ok)
            summary = {"engine": engine, "model": model, "variant": variant, "precision": variant,
                       "convention": convention, "threads": cores, "cpuset": list(range(cores)),
                       "decoding": {**DECODING, **(decoding or {})},
                       "decoding_applied": {**DECODING, **(decoding or {}), **(applied or {})},
                       "notes": list(notes), "status": st, "n_files": N_FILES, "n_ok": len(ok),
                       "failures": N_FILES - len(ok), "failed_files": [r["file"] for r in rows if r["error"]],
                       "total_audio_s": audio, "total_processing_s": proc, "rtf": proc / audio, "rtfx": audio / proc,
                       "model_load_s": 0.5, "end_to_end_s": {"p50": e2e[len(e2e) // 2], "p95": e2e[-1],
                                                             "mean": proc / len(ok)}}
            (d / "inference_summary.json").write_text(json.dumps(summary))
            (d / "inference_per_file.json").write_text(json.dumps(rows))
            if wer is not None:
                metrics = {"gate_normalizer": "whisper-bench-en",
                           "normalizers": {"whisper-bench-en": {"vs_reference": {"wer": wer, "cer": wer / 2},
                                                                "vs_baseline": {"wer": 0.005}},
                                           "whisper-en": {"vs_reference": {"wer": wer * 0.9, "cer": wer / 3},
                                                          "vs_baseline": {"wer": 0.004}}}}
                (d / "metrics.json").write_text(json.dumps(metrics))
        elif st == "running":
            (d / "inference_summary.json").write_text(json.dumps({"engine": engine, "status": "running"}))
        if run and st != "running":
            record = {"engine": engine, "model": model, "variant": variant, "cores": cores, "memory_gb": memory_gb,
                      "cpuset": f"0-{cores - 1}" if cores > 1 else "0", "status": st, "round": k,
                      "error": OOM_ERROR if st == "oom" else None, "host_wall_s": 10.0,
                      "time_v": {"max_rss_mb": 700.0, "elapsed_s": 9.0}, "cgroup_peak_bytes": 900 * 2**20,
                      "container_overhead_s": 0.3, "host": {"corpus_id": corpus, "cpu_model": cpu},
                      "run_id": run_id, "quiet": {"loaded": k in loaded, "busy_share": 0.5 if k in loaded else 0.0,
                                                  "threshold": 0.1}}
            (d / "run.json").write_text(json.dumps(record))
    return cell_dir
