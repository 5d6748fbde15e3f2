"""Accuracy and the TEST01-style audit over the real SUT (ort int8, tiny.en, 1 thread) on the host."""
import json

import pytest

from conftest import LONG_TEXT, SHORT_TEXT, run_cli
from harness.serve.audit import accuracy, audit

pytestmark = pytest.mark.slow


def _serve(model, audio, out, *extra):
    proc = run_cli("-m", "engines", "serve", "ort", "--precision", "int8", "--threads", "1", "--model-dir",
                   str(model), "--audio-dir", str(audio), "--out", str(out), "--seed", "3", *extra)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def accuracy_run(tiny_model, clips, tmp_path_factory):
    return _serve(tiny_model, clips, tmp_path_factory.mktemp("accuracy"), "--scenario", "offline", "--mode",
                  "accuracy", "--qps", "10", "--min-duration-ms", "0")


def _server_run(tiny_model, clips, out, *extra):
    return _serve(tiny_model, clips, out, "--scenario", "server", "--qps", "0.5", "--min-duration-ms", "3000",
                  "--audit-probability", "1", *extra)


def test_a_correct_engine_passes_the_audit_and_is_scored_by_whole_files(accuracy_run, tiny_model, clips, tmp_path):
    result = audit(accuracy_run, [_server_run(tiny_model, clips, tmp_path)])
    assert result["verdict"] == "pass" and result["compared"] >= 1 and result["mismatched"] == 0
    scores = accuracy(accuracy_run, {"short.wav": SHORT_TEXT, "long.wav": LONG_TEXT}, None)
    assert scores["n_referenced"] == 2 and scores["n_files"] == 2 and scores["n_queries"] >= 3
    assert 0 <= scores["wer"] < 0.35  # tiny.en int8 on espeak speech; the windows joined back into files


def test_an_engine_that_answers_differently_under_load_fails_the_audit(accuracy_run, tiny_model, clips, tmp_path):
    result = audit(accuracy_run, [_server_run(tiny_model, clips, tmp_path, "--perturb-performance")])
    assert result["verdict"] == "FAIL" and result["mismatched"] == result["compared"] >= 1
    example = result["examples"][0]
    assert example["under_load"].split() == example["accuracy_run"].split()[:-1]


def test_without_an_accuracy_run_the_audit_says_it_did_not_check(tmp_path):
    assert audit(tmp_path, [tmp_path])["verdict"].startswith("not checked")


def test_dynamic_batching_takes_queued_queries_together_and_answers_as_one_at_a_time(accuracy_run, tiny_model,
                                                                                     clips, tmp_path):
    """Offline issues every query at once: a worker with --max-batch 4 takes them in batches, and ort's batched
    decoding gives the accuracy run's (unbatched) transcripts, so the audit passes."""
    out = _serve(tiny_model, clips, tmp_path, "--scenario", "offline", "--qps", "10", "--min-duration-ms", "0",
                 "--min-query-count", "4", "--max-batch", "4", "--batch-wait-ms", "50", "--audit-probability", "1")
    summary = json.loads((out / "serve_summary.json").read_text())
    assert summary["workers"][0]["batching"] == "engine batch"
    assert max(int(n) for n in summary["sut"]["batch_sizes"]) > 1
    assert audit(accuracy_run, [out])["verdict"] == "pass"
