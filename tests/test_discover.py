"""`harness discover`: model builds for ort, their ranking, and the baseline's reuse."""
import json
from argparse import Namespace

import pytest
from results_fixture import DECODING, make_cell

from conftest import ROOT, run_cli
from harness.report.discovery import BUILDS_FILE


@pytest.mark.slow
def test_every_build_kind_loads_and_transcribes_a_clip(tiny_model, clips):
    from engines.audio import load_audio
    from engines.base import DecodingSettings
    from engines.ort.engine import OrtEngine
    from harness.discover.builds import RECIPE_NAMES, generate

    made = generate(tiny_model, log=lambda m: None)
    assert sorted(made) == sorted(RECIPE_NAMES) and len(made) >= 12
    assert not [n for n, info in made.items() if info.get("skipped")]
    audio = load_audio(clips / "short.wav")

    def tokens(precision):
        engine = OrtEngine(tiny_model, DecodingSettings(), threads=2, precision=precision)
        engine.load()
        return engine.transcribe(audio)

    reference = tokens("fp32").tokens
    for name in RECIPE_NAMES:
        info = json.loads((tiny_model / "variants" / name / "variant.json").read_text())
        assert info["how"] and info["targets"] and info["size_mb"] > 0, name
        result = tokens(name)
        assert result.text.strip(), name
        if name.startswith(("opt-", "fused")):  # graph rewrites that change no arithmetic result's token
            assert result.tokens == reference, name
    import onnx

    config = json.loads((tiny_model / "onnx" / "config.json").read_text())
    table = (config["vocab_size"], config["d_model"])
    decoder = onnx.load(str(tiny_model / "variants" / "q8-b128-emb8" / "decoder_with_past_model.onnx"))
    kinds = {(tuple(i.dims), i.data_type) for i in decoder.graph.initializer}
    assert (table, onnx.TensorProto.INT8) in kinds and (table, onnx.TensorProto.FLOAT) not in kinds
    assert made["opt-all"]["targets"].startswith("this CPU")
    assert made["q4-b64"]["targets"].startswith("any x86-64")
    with pytest.raises(FileNotFoundError, match="no such build"):
        OrtEngine(tiny_model, DecodingSettings(), threads=1, precision="not-made").load()


def _config(tmp_path, **kw):
    from harness.run.config import Config

    return Config(sut="vm", model="tiny.en", engines=[], cores_list=[1], cpu_pool=[0], memory_gb=4.0,
                  results_dir=tmp_path / "results", models_dir=tmp_path / "models", area="discovery", **kw)


def _build(results, name, how):
    """The build's facts as `harness discover` copies them into the results (discovery/builds.json)."""
    path = results / "vm" / "discovery" / BUILDS_FILE
    facts = json.loads(path.read_text()) if path.is_file() else {}
    facts[name] = {"name": name, "how": how, "targets": "any", "size_mb": 50}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(facts))


def test_ranking_names_the_recommended_build_ties_and_gate_failures(tmp_path):
    from harness.report.discovery import write_ranking

    results = tmp_path / "results"
    area = "vm/discovery"
    for name, rtf, wer, seed in (("q8-b32", 0.050, 0.10, 1), ("q8-b64", 0.0502, 0.10, 2), ("q4-b32", 0.030, 0.30, 3),
                                 ("opt-all", 0.080, 0.10, 4)):
        _build(results, name, f"made as {name}")
        make_cell(results, "container_1c4g", f"ort-tiny.en-{name}", rtf=rtf, wer=wer, seed=seed, sut=area)
    make_cell(results, "container_1c4g", "ort-tiny.en-user-broken", status="failed", rounds=1, sut=area)
    make_cell(results, "container_1c4g", "faster-whisper-tiny.en-int8", rtf=0.060, wer=0.10, seed=5, sut=area)
    make_cell(results, "container_1c4g", "openai-whisper-tiny.en-fp32", rtf=0.1, wer=0.10, seed=6, sut="vm")  # gate
    _build(results, "fused", "")
    facts = json.loads((results / area / BUILDS_FILE).read_text())
    facts["fused"] = {"name": "fused", "skipped": "ValueError: nothing to fuse"}
    (results / area / BUILDS_FILE).write_text(json.dumps(facts))
    md = write_ranking(results, "vm")["md"]
    text = md.read_text()
    # q4-b32 is fastest but fails the gate (WER 30 % against 10 %); q8-b32 and q8-b64 cannot be told apart
    [line] = [ln for ln in text.splitlines() if ln.startswith("At 1 core(s)")]
    assert "is fastest" in line and "tied within the 95 % intervals with" in line
    assert {"**q8-b32**", "**q8-b64**"} & set(line.split()) and "q8-b32" in line and "q8-b64" in line
    assert "q4-b32" not in line and "time vs faster-whisper int8 0.8" in line
    assert "`fused`: ValueError: nothing to fuse" in text
    rows = {r["build"]: r for r in __import__("csv").DictReader(open(md.with_suffix(".csv")))}
    assert rows["q4-b32"]["accuracy_gate"] == "FAIL" and rows["q4-b32"]["rank"] == "1"
    assert rows["user-broken"]["status"] == "failed" and rows["user-broken"]["rank"] == ""
    assert rows["q8-b32"]["how"] == "made as q8-b32"
    assert (md.parent / "discovery_wer_vs_rtf.png").stat().st_size > 0
    assert (results / area / "container_1c4g" / "ort-tiny.en-q8-b32" / "cell.json").is_file()


def test_a_baseline_is_reused_only_for_the_same_corpus_and_decoding(tmp_path):
    from harness.discover.run import requested_decoding, reusable_baseline

    results = tmp_path / "results"
    make_cell(results, "container_2c4g", "openai-whisper-tiny.en-fp32", rounds=1, sut="vm", corpus="c1")
    config = _config(tmp_path)
    assert requested_decoding([]) == DECODING
    found = reusable_baseline(config, "c1", DECODING)
    assert found == results / "vm" / "container_2c4g" / "openai-whisper-tiny.en-fp32" / "round-1"
    assert reusable_baseline(config, "c2", DECODING) is None
    assert reusable_baseline(config, "c1", requested_decoding(["--beam-size", "5"])) is None


def test_unknown_builds_and_a_missing_variants_folder_are_one_line(tmp_path):
    proc = run_cli("-m", "harness", "discover", "--builds", "q3-b7", "--results", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: --builds: unknown build q3-b7")


@pytest.mark.docker
@pytest.mark.slow
def test_discover_runs_builds_in_containers_ranks_a_broken_one_and_reuses_the_baseline(
        tmp_path, open_clips, tiny_model, ort_image):
    from harness.discover.run import discover
    from harness.run.config import build_config

    broken = tmp_path / "mine" / "broken"
    broken.mkdir(parents=True)
    (broken / "encoder_model.onnx").write_bytes(b"not a graph")
    args = Namespace(cores_list="1", cpuset="0", sut="test", memory_gb="2", engines=None, model="tiny.en",
                     repeats="1", max_rounds="1", seed="7", warmup="0", timeout="300", heartbeat="5",
                     quiet_busy="1.0", quiet_wait="0", results=str(tmp_path / "results"),
                     models_dir=str(ROOT / "models"), audio_dir=str(open_clips), engine_args=[])
    config = build_config(args, env={})

    def once():
        return discover(config, ["q8-b32"], tmp_path / "mine", force=False, build_images=False,
                        references="ort:int8", baseline="ort")

    sut_plan = tmp_path / "results" / "test" / "plan.json"  # as a `make compare` of this SUT left it
    sut_plan.parent.mkdir(parents=True)
    sut_plan.write_text('{"config": {"engines": "the SUT\'s own comparison"}}')
    md = once()
    assert "the SUT's own comparison" in sut_plan.read_text()  # the baseline's run did not replace it
    assert "ort-tiny.en-fp32@1c" in (md.parent / "discovery" / "baseline-plan.json").read_text()
    rows = {r["build"]: r for r in __import__("csv").DictReader(open(md.with_suffix(".csv")))}
    assert rows["q8-b32"]["status"] == "ok" and rows["q8-b32"]["wer_vs_baseline"] != ""
    assert rows["user-broken"]["status"] == "failed"
    assert "variants/user-broken/cross_kv_model.onnx: model file is missing" in rows["user-broken"]["error"]
    assert "reused when it exists" in md.read_text()
    baseline_cell = tmp_path / "results" / "test" / "container_1c2g" / "ort-tiny.en-fp32"
    assert [p.name for p in baseline_cell.glob("round-*")] == ["round-1"]
    first = (baseline_cell / "round-1" / "run.json").stat().st_mtime
    once()  # the baseline's transcripts exist now: not run again
    assert (baseline_cell / "round-1" / "run.json").stat().st_mtime == first
    assert not (tmp_path / "results" / "test" / "backups").exists()
