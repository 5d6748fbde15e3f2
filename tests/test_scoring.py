"""WER/CER by hand-computed cases, the normaliser, the bootstrap interval and metrics files."""
import json

import numpy as np
import pytest

from harness.scoring.normalizer import normalize
from harness.scoring.wer import bootstrap_ci, count_errors, score_pairs


@pytest.mark.parametrize("raw, expected", [
    ("Hello, World!", "hello world"),
    ("Twenty-five apples and one hundred and two pears.", "25 apples and 102 pears"),
    ("It costs 1,000 dollars (approximately).", "it costs 1000 dollars"),
    ("one two three", "1 2 3"),
    ("two thousand and twenty six", "2026"),
    ("I won't go; they're here.", "i will not go they are here"),
    ("Um, the colour of the harbour.", "the color of the harbor"),
    ("It rose 3.5%", "it rose 3.5 percent"),
])
def test_normaliser(raw, expected):
    assert normalize(raw) == expected


def test_hand_computed_wer_and_cer():
    # "the cat sat on the mat" vs "the cat sit on mat": 1 substitution, 1 deletion over 6 words.
    c = count_errors("the cat sat on the mat", "the cat sit on mat")
    assert (c.substitutions, c.deletions, c.insertions, c.word_errors, c.ref_words) == (1, 1, 0, 2, 6)
    # Characters: "sat"->"sit" is 1 edit, deleting "the " is 4: 5 over 22 characters.
    assert (c.char_errors, c.ref_chars) == (5, 22)
    assert count_errors("a b", "a x b").insertions == 1
    empty = count_errors("hello world", "")
    assert (empty.deletions, empty.word_errors) == (2, 2)


def test_normaliser_effects_on_wer():
    # Numbers and punctuation written differently are not errors.
    result = score_pairs([("a", "Twenty five dogs, barking!", "25 dogs barking")])
    assert result["wer"] == 0.0 and result["cer"] == 0.0


def test_corpus_wer_is_total_errors_over_total_words_not_a_mean():
    result = score_pairs([("short", "one error here", "one mistake here"),        # 1/3
                          ("long", " ".join(["word"] * 97), " ".join(["word"] * 97))])  # 0/97
    assert result["wer"] == pytest.approx(1 / 100)
    assert [r["wer"] for r in result["per_file"]] == [pytest.approx(1 / 3), 0.0]


def test_bootstrap_interval_brackets_the_corpus_wer():
    errors, words = np.array([1, 5, 0, 2, 8, 3]), np.array([10, 20, 15, 12, 30, 9])
    lo, hi = bootstrap_ci(errors, words)
    assert lo <= errors.sum() / words.sum() <= hi and lo < hi
    assert bootstrap_ci(errors, words) == [lo, hi]  # seeded: the same interval every time


def test_metrics_against_references_and_baseline(tmp_path):
    from harness.audio.corpus import Utterance
    from harness.scoring.metrics import compute_metrics

    def run(name, texts):
        d = tmp_path / name
        d.mkdir()
        (d / "inference_per_file.json").write_text(json.dumps(
            [{"file": f, "text": t, "error": ""} for f, t in texts.items()]))
        return d

    corpus = [Utterance("a.wav", tmp_path / "a.wav", "the cat sat"), Utterance("b.wav", tmp_path / "b.wav", None)]
    base = run("openai-whisper-tiny.en-fp32", {"a.wav": "the cat sat", "b.wav": "no reference here"})
    other = run("ort-tiny.en-int8", {"a.wav": "the cat sad", "b.wav": "no reference there"})
    m = compute_metrics(other, corpus, base, "openai-whisper")
    assert m["normalizer"]["name"] == "whisper-bench-en" and m["n_without_reference"] == 1
    assert m["vs_reference"]["wer"] == pytest.approx(1 / 3) and m["vs_reference"]["n_files"] == 1
    assert m["vs_baseline"]["wer"] == pytest.approx(2 / 6) and m["vs_baseline"]["n_files"] == 2


def test_both_normalisers_are_named_and_missing_files_count_as_errors(tmp_path):
    from harness.audio.corpus import Utterance
    from harness.scoring.metrics import compute_metrics

    d = tmp_path / "ort-tiny.en-fp32"
    d.mkdir()
    (d / "inference_per_file.json").write_text(json.dumps(
        [{"file": "a.wav", "text": "one two three", "error": ""}, {"file": "b.wav", "text": "", "error": "audio: x"}]))
    corpus = [Utterance("a.wav", tmp_path / "a.wav", "one two three"),
              Utterance("b.wav", tmp_path / "b.wav", "four five six seven")]
    m = compute_metrics(d, corpus, None, "openai-whisper")
    assert set(m["normalizers"]) == {"whisper-bench-en", "whisper-en"}
    assert m["normalizers"]["whisper-en"]["version"].startswith("whisper-normalizer ")
    assert m["gate_normalizer"] == "whisper-bench-en" and m["n_missing"] == 1
    # b.wav failed: its 4 reference words are deletions, so WER is 4/7, not 0 over the file that worked
    assert m["vs_reference"]["wer"] == pytest.approx(4 / 7)
    # Whisper's normaliser writes both references as one number each ("123", "4567"): 1 error in 2 words
    assert m["normalizers"]["whisper-en"]["vs_reference"]["wer"] == pytest.approx(1 / 2)
