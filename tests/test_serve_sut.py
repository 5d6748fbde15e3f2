"""The in-container serving SUT (engines/serve/), run on the host: LoadGen drives the real ort engine."""
import json

import numpy as np
import pytest

from conftest import run_cli
from engines.audio import SAMPLE_RATE, load_audio
from engines.base import DecodingSettings
from engines.ort.engine import OrtEngine
from engines.serve.logs import ACCURACY_LOG, QUERIES_FILE, SERVE_SUMMARY, SUMMARY_LOG, read_responses
from engines.serve.queries import MAX_QUERY_S, cut_points


def test_long_audio_is_cut_at_its_pauses_into_windows_of_at_most_30_s():
    rng = np.random.default_rng(0)
    # 75 s of "speech" (noise) with a 0.4 s pause at 24 s and at 51 s: the cuts fall inside the pauses.
    audio = rng.normal(0, 0.3, 75 * SAMPLE_RATE).astype(np.float32)
    for pause_s in (24.0, 51.0):
        audio[int(pause_s * SAMPLE_RATE):int((pause_s + 0.4) * SAMPLE_RATE)] = 0
    points = cut_points(audio)
    assert points[0] == 0 and points[-1] == audio.shape[0]
    assert all(b - a <= MAX_QUERY_S * SAMPLE_RATE for a, b in zip(points, points[1:]))
    cuts_s = [p / SAMPLE_RATE for p in points[1:-1]]
    assert len(cuts_s) == 2 and 24.0 <= cuts_s[0] <= 24.4 and 51.0 <= cuts_s[1] <= 51.4
    assert cut_points(audio[: 20 * SAMPLE_RATE]) == [0, 20 * SAMPLE_RATE]


def _serve(model, audio, out, *extra):
    return run_cli("-m", "engines", "serve", "ort", "--precision", "int8", "--threads", "1", "--model-dir",
                   str(model), "--audio-dir", str(audio), "--out", str(out), *extra)


@pytest.mark.slow
def test_server_test_on_ort_int8_leaves_loadgens_logs_and_the_suts_counts(tiny_model, clips, tmp_path):
    proc = _serve(tiny_model, clips, tmp_path, "--scenario", "server", "--qps", "0.5", "--min-duration-ms", "3000",
                  "--latency-bound-ms", "5000", "--audit-probability", "1")
    assert proc.returncode == 0, proc.stderr
    assert "Scenario : Server" in (tmp_path / SUMMARY_LOG).read_text()
    summary = json.loads((tmp_path / SERVE_SUMMARY).read_text())
    assert summary["status"] == "ok" and summary["sut"]["completed_samples"] >= 1
    assert summary["loadgen"]["latency_ms"]["p99"] > 0 and summary["loadgen"]["target_qps"] == 0.5
    assert summary["sut"]["cpu_s"] > 0 and summary["sut"]["audio_s"] > 0
    queries = json.loads((tmp_path / QUERIES_FILE).read_text())["queries"]
    assert [q["file"] for q in queries].count("long.wav") >= 2  # the long clip (> 30 s) is windowed
    # every response was logged (probability 1): each is a real transcript of its query
    logged = read_responses(tmp_path / ACCURACY_LOG)
    assert len(logged) == summary["sut"]["completed_samples"] and all(r["text"] for r in logged)


@pytest.mark.slow
def test_accuracy_run_answers_every_query_once_with_its_transcript(tiny_model, clips, tmp_path):
    proc = _serve(tiny_model, clips, tmp_path, "--scenario", "offline", "--mode", "accuracy", "--qps", "10",
                  "--min-duration-ms", "0", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    queries = json.loads((tmp_path / QUERIES_FILE).read_text())["queries"]
    responses = read_responses(tmp_path / ACCURACY_LOG)
    assert sorted(r["qsl_idx"] for r in responses) == [q["index"] for q in queries]
    short = next(q["index"] for q in queries if q["file"] == "short.wav")
    text = next(r["text"] for r in responses if r["qsl_idx"] == short)
    # the SUT answers with exactly what the engine transcribes for that file on its own
    engine = OrtEngine(tiny_model, DecodingSettings(), 1, "int8")
    engine.load()
    assert text == engine.transcribe(load_audio(clips / "short.wav")).text
