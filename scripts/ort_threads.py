"""Where the ort engine's second thread goes: each part of a decoding step at 1 and N threads.

    python scripts/ort_threads.py [--model base] [--precision int8] [--threads 2] [--steps 150] [--repeats 5]

First the decoder as the engine runs it (engines/ort/model.py: the cross-attention K/V from cross_kv, then
decoder_with_past fed its own cache, greedy, batch 1) for --steps steps on random encoder output, under
ONNX Runtime's profiler, in a child process pinned to 1 and then N CPUs. Per step: each part's kernel time
(the vocabulary projection, the layers' products, self- and cross-attention, every other operator) and the
Run call's time outside the kernels, with the speed-up of each: medians of --repeats child runs, 1 and N
threads alternating, so that both share the machine's drift. Then one product of each shape the
decoder's layers use, alone, microseconds per call at 1 and N threads, quantised as the store quantises
(harness/models/onnx_format.py) for int8. docs/ort.md (Targets) reads these figures.
Not a test: it prints figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engines.cpus import NUMPY_BLAS_ENV, pinned, visible_cpus  # noqa: E402
from engines.ort.model import pool_options  # noqa: E402

PARTS = ("vocabulary projection", "layer products", "self-attention", "cross-attention", "other operators",
         "Run outside the kernels")
PRODUCT_CALLS = 200  # per timing of one product
REPLICAS = 16  # copies of the product in its graph, as the decoder runs several of a shape in a row


def part(op: str, node: str) -> str:
    """The part of a decoder step a profiled node belongs to, from its operator and its export name."""
    if op == "MultiHeadAttention":
        return "cross-attention" if "encoder_attn" in node else "self-attention"
    if "MatMul" in op or op == "Gemm":
        return "layer products" if "/layers." in node else "vocabulary projection"
    return "other operators"


def decoder_child(args: argparse.Namespace) -> dict:
    """ms per step of each part, from one profiled run of --steps steps (the first step, the prompt's, apart)."""
    from engines.ort.model import OrtWhisper

    with tempfile.TemporaryDirectory(prefix="ort-threads-") as folder:
        return step_parts(args, OrtWhisper(onnx_dir(args), args.child_threads, profile_prefix=Path(folder) / "p"))


def step_parts(args: argparse.Namespace, model) -> dict:
    d_model = model.config["d_model"]
    features = np.random.default_rng(0).standard_normal((1, 1500, d_model)).astype(np.float32)
    start = model.generation_config["decoder_start_token_id"]
    logits, cache = model.first(np.array([[start]], dtype=np.int64), features)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        token = np.array([[int(np.argmax(logits[0]))]], dtype=np.int64)
        logits, cache = model.next(token, cache)
    wall_ms = (time.perf_counter() - t0) * 1000 / args.steps
    events = json.loads(model.end_profiling()["decoder"].read_text())
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])[1:]
    kernel, run_us = Counter(), sum(e["dur"] for e in runs)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= runs[0]["ts"]:
            kernel[part(event["args"]["op_name"], event["name"])] += event["dur"]
    out = {name: kernel[name] / len(runs) / 1000 for name in PARTS[:-1]}
    out[PARTS[-1]] = (run_us - sum(kernel.values())) / len(runs) / 1000
    return {"parts": out, "step_ms": wall_ms}


def product_child(args: argparse.Namespace) -> dict:
    """us per call of one product of each of the decoder layers' shapes at batch 1."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from harness.models.onnx_format import quantize_int8_file

    config = json.loads((onnx_dir(args) / "config.json").read_text())
    d, ff = config["d_model"], config["decoder_ffn_dim"]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, n in ((d, d), (d, ff), (ff, d)):
            rng = np.random.default_rng(0)
            weights = [numpy_helper.from_array((rng.standard_normal((k, n)) * 0.05).astype(np.float32), f"w{i}")
                       for i in range(REPLICAS)]
            graph = helper.make_graph(
                [helper.make_node("MatMul", ["x", f"w{i}"], [f"y{i}"]) for i in range(REPLICAS)], "product",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, k])],
                [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, 1, n]) for i in range(REPLICAS)],
                weights)
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            model.ir_version = 9  # what this onnxruntime reads
            path = Path(tmp) / f"{k}x{n}.onnx"
            onnx.save(model, str(path))
            if args.precision == "int8":
                quantize_int8_file(path, path)
            session = ort.InferenceSession(str(path), pool_options(ort, args.child_threads),
                                           providers=["CPUExecutionProvider"])
            x = {"x": rng.standard_normal((1, 1, k)).astype(np.float32)}
            for _ in range(PRODUCT_CALLS // 4):
                session.run(None, x)
            t0 = time.perf_counter()
            for _ in range(PRODUCT_CALLS):
                session.run(None, x)
            out[f"{k} x {n}"] = (time.perf_counter() - t0) * 1e6 / PRODUCT_CALLS / REPLICAS
    return out


def onnx_dir(args: argparse.Namespace) -> Path:
    from engines.registry import spec

    return ROOT / "models" / f"whisper-{args.model}" / spec("ort").check_variant(args.precision)


def run_child(args: argparse.Namespace, what: str, threads: int) -> dict:
    cmd = [*pinned(threads), sys.executable, __file__, "--child-threads", str(threads), "--what", what,
           "--model", args.model, "--precision", args.precision, "--steps", str(args.steps)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, NUMPY_BLAS_ENV: "1"})
    if proc.returncode != 0:
        raise SystemExit(f"{what} at {threads} threads failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def speedup(one: float, many: float) -> str:
    return f"{one / many:.2f}x" if many > 0 else "-"  # "-": the part has no operator in this build


def medians(args: argparse.Namespace, what: str, n: int) -> tuple[dict, dict]:
    """Each figure's median over --repeats child runs at 1 and at n threads, the two alternating."""
    runs: dict[int, list[dict]] = {1: [], n: []}
    for _ in range(args.repeats):
        for threads in (1, n):
            out = run_child(args, what, threads)
            if what == "decoder":
                out = {**out["parts"], "step, wall (profiling on)": out["step_ms"]}
            runs[threads].append(out)
    return tuple({k: statistics.median(r[k] for r in runs[t]) for k in runs[t][0]} for t in (1, n))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="base")
    p.add_argument("--precision", default="int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    p.add_argument("--what", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_threads:
        print(json.dumps(decoder_child(args) if args.what == "decoder" else product_child(args)))
        return 0
    if len(visible_cpus()) < args.threads:
        raise SystemExit(f"--threads {args.threads}: only {len(visible_cpus())} CPUs here")
    n = args.threads
    one, many = medians(args, "decoder", n)
    print(f"ort {args.model} {args.precision}, {args.steps} decoder steps, ms per step at 1 -> {n} threads "
          f"(kernel times from onnxruntime's profiler; medians of {args.repeats} runs)\n")
    print(f"| part | 1 thread | {n} threads | speed-up |\n|---|---|---|---|")
    for name in [*PARTS, "step, wall (profiling on)"]:
        print(f"| {name} | {one[name]:.2f} | {many[name]:.2f} | {speedup(one[name], many[name])} |")
    one, many = medians(args, "products", n)
    print(f"\none product alone (K x N, batch 1), us per call at 1 -> {n} threads\n")
    print(f"| product | 1 thread | {n} threads | speed-up |\n|---|---|---|---|")
    for shape in one:
        print(f"| {shape} | {one[shape]:.1f} | {many[shape]:.1f} | {speedup(one[shape], many[shape])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
