"""Corpus synthesis determinism, user-corpus layouts and their bad input, resampling."""
import json

import numpy as np
import pytest

from engines.audio import SAMPLE_RATE, load_audio, resample
from harness.audio.corpus import CorpusError, load_corpus
from harness.audio.synth import DEFAULT_CLIPS, synth_corpus


def test_synthesized_corpus_is_deterministic_and_covers_every_bucket(tmp_path):
    first = synth_corpus(tmp_path / "a")
    second = synth_corpus(tmp_path / "b")
    assert [f["sha256"] for f in first["files"]] == [f["sha256"] for f in second["files"]]
    assert 2.5 * 60 <= first["total_s"] <= 4.5 * 60
    buckets = {f["bucket"]: f["duration_s"] for f in first["files"]}
    assert set(buckets) == {c.bucket for c in DEFAULT_CLIPS} == {"5s", "15-30s", "30-60s", "60-90s"}
    assert max(f["duration_s"] for f in first["files"]) > 60  # long-form: several 30 s windows
    for f in first["files"]:
        assert f["sample_rate"] == SAMPLE_RATE
        assert (tmp_path / "a" / f["path"]).with_suffix(".txt").read_text().strip() == f["text"]


def _touch_audio(path):
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(1600, dtype=np.float32), SAMPLE_RATE)


def test_folder_layout_with_and_without_references(tmp_path):
    _touch_audio(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_text("Hello there.\n")
    _touch_audio(tmp_path / "sub" / "b.flac")
    corpus = load_corpus(tmp_path)
    assert [(u.key, u.reference) for u in corpus] == [("a.wav", "Hello there."), ("sub/b.flac", None)]


def test_librispeech_layout(tmp_path):
    chapter = tmp_path / "19" / "198"
    _touch_audio(chapter / "19-198-0000.flac")
    _touch_audio(chapter / "19-198-0001.flac")
    (chapter / "19-198.trans.txt").write_text("19-198-0000 NORTHANGER ABBEY\n19-198-0001 CHAPTER ONE\n")
    corpus = load_corpus(tmp_path)
    assert [(u.key, u.reference) for u in corpus] == [("19/198/19-198-0000.flac", "NORTHANGER ABBEY"),
                                                     ("19/198/19-198-0001.flac", "CHAPTER ONE")]


def test_manifest_layout_and_a_line_pointing_nowhere(tmp_path):
    _touch_audio(tmp_path / "clips" / "x.wav")
    manifest = tmp_path / "set.jsonl"
    manifest.write_text(json.dumps({"path": "clips/x.wav", "text": "an example"}) + "\n")
    assert [(u.key, u.reference) for u in load_corpus(tmp_path)] == [("clips/x.wav", "an example")]
    manifest.write_text(manifest.read_text() + json.dumps({"path": "clips/gone.wav", "text": "t"}) + "\n")
    with pytest.raises(CorpusError, match=r"set\.jsonl:2: clips/gone\.wav does not exist"):
        load_corpus(manifest)


@pytest.mark.parametrize("content, message", [(b"   \n", "is empty"), (b"\xff\xfe\xfa bad", "is not UTF-8")])
def test_bad_reference_files_are_named(tmp_path, content, message):
    _touch_audio(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_bytes(content)
    with pytest.raises(CorpusError, match=f"a.txt {message}"):
        load_corpus(tmp_path)


def test_duplicate_names_are_refused(tmp_path):
    _touch_audio(tmp_path / "a.wav")
    _touch_audio(tmp_path / "a.flac")
    with pytest.raises(CorpusError, match="duplicate name 'a'"):
        load_corpus(tmp_path)


def test_resample_and_downmix(tmp_path):
    import soundfile as sf

    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    sf.write(str(tmp_path / "tone.wav"), np.stack([tone, tone], 1), 44100)
    audio = load_audio(tmp_path / "tone.wav")
    assert audio.shape == (SAMPLE_RATE,) and audio.dtype == np.float32
    peak_hz = np.argmax(np.abs(np.fft.rfft(audio))) * SAMPLE_RATE / len(audio)
    assert abs(peak_hz - 440) < 2
    assert resample(audio, SAMPLE_RATE) is audio
