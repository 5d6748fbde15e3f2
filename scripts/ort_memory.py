"""Where the ort engine's peak RSS goes, beside faster-whisper's, and what each memory setting changes.

    python scripts/ort_memory.py [--model base] [--threads 2] [--precisions fp32,int8] [--sessions]

Each configuration runs in a child process of its own, pinned with taskset, and reads /proc/self/status
at stages: libraries imported (the runtime), model loaded (the weights as resident, and the transient
peak while loading), then every corpus file transcribed (the arena and the activations: what the peak
adds over the loaded model). VmHWM is the peak RSS that /usr/bin/time reports in a container. The
configurations: the engine as it runs (`engine`: engines/ort/model.py SessionMemory), with --low-memory,
then one departure at a time (the decoder's arena on, no weight prepacking, no planned activation
blocks, a 128 KiB mmap threshold), and faster-whisper at the same precision. Each graph's
initializer bytes are read from the ONNX files.
With --sessions, each session instead loads alone in a child process: the anonymous memory it adds as the
engine loads it, with prepacking off, and with the heap trimmed after loading (malloc_trim: what is left of
the load-time copies); then the encoder's activations over three windows, under glibc's default mmap
threshold and under `--low-memory`'s, where every large block goes back to the system when freed (what the
activations need at once, against the heap's peak).
Not a test: it prints figures.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engines.cpus import pinned  # noqa: E402
from engines.ort.model import (  # noqa: E402
    CROSS_KV,
    DECODER_WITH_PAST,
    DISABLE_PREPACKING,
    ENCODER,
    LOW_MEMORY_MMAP_THRESHOLD,
    pool_options,
    set_mmap_threshold,
)

# The engine's settings, then each departure from them (SessionMemory's fields).
CONFIGS = {"engine": {}, "low-memory": {"mmap_threshold": LOW_MEMORY_MMAP_THRESHOLD},
           "decoder-arena": {"decoder_arena": True}, "no-prepacking": {"prepacking": False},
           "no-mem-pattern": {"mem_pattern": False}, "mmap-128k": {"mmap_threshold": 128 * 1024}}
STATUS_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def memory_settings(config: str) -> dict:
    """A named configuration, or SessionMemory fields as `field=value+field=value` (sizes in bytes, 0/1)."""
    if config in CONFIGS:
        return CONFIGS[config]
    out = {}
    for item in config.split("+"):
        key, _, value = item.partition("=")
        out[key] = int(value)
    return out


def status() -> dict[str, float]:
    """MiB from /proc/self/status."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_KEYS:
            out[key] = int(value.split()[0]) / 1024
    return out


def child(args: argparse.Namespace) -> None:
    """One configuration: stages as JSON on stdout."""
    stages = {"start": status()}
    import numpy  # noqa: F401

    from engines.audio import load_audio
    from engines.base import DecodingSettings
    from engines.registry import engine_class

    engine_name = "faster-whisper" if args.config == "faster-whisper" else "ort"
    cls = engine_class(engine_name)
    if engine_name == "ort":
        import onnxruntime  # noqa: F401

        from engines.ort.model import SessionMemory
        cls.memory = SessionMemory(**memory_settings(args.config))
    else:
        import ctranslate2  # noqa: F401
    stages["imported"] = status()
    engine = cls(ROOT / "models" / f"whisper-{args.model}", DecodingSettings(), args.threads, args.precision)
    t0 = time.perf_counter()
    engine.load()
    stages["loaded"] = {**status(), "load_s": time.perf_counter() - t0}
    files = sorted(Path(args.audio_dir).glob("*.wav"))
    t0 = time.perf_counter()
    for path in files:
        engine.before_file()
        engine.transcribe(load_audio(path))
    stages["transcribed"] = {**status(), "transcribe_s": time.perf_counter() - t0}
    print(json.dumps(stages))


def session_child(args: argparse.Namespace) -> None:
    """One session file alone under one setting: anonymous MiB added by loading it and, for the encoder,
    the peak over the loaded session across three windows (the peak counter reset after loading)."""
    import ctypes

    setting, path = args.setting, Path(args.child_session)
    if setting == "low-memory":
        set_mmap_threshold(LOW_MEMORY_MMAP_THRESHOLD)
    import numpy as np
    import onnxruntime as ort

    before = status()
    opts = pool_options(ort, args.threads)
    opts.enable_cpu_mem_arena = False  # as engines/ort/model.py
    if setting == "no-prepacking":
        opts.add_session_config_entry(DISABLE_PREPACKING, "1")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    if setting == "trimmed":
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    loaded = status()
    out = {"added": loaded["RssAnon"] - before["RssAnon"]}
    if setting in ("default", "low-memory") and path.name == ENCODER:
        n_mels = session.get_inputs()[0].shape[1]
        features = {"input_features": np.random.default_rng(0).standard_normal((1, n_mels, 3000), np.float32)}
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM restarts from the RSS now (proc(5))
        ready = status()
        for _ in range(3):
            session.run(None, features)
        out["activations"] = status()["VmHWM"] - ready["VmRSS"]
    print(json.dumps(out))


def print_sessions(args: argparse.Namespace, folder: Path, precision: str) -> None:
    sizes = initializer_mib(folder)
    print(f"ort {precision} ({folder.name}), each session alone; anonymous MiB added by loading it\n")
    print("| session | initializers | loaded | prepacking off | heap trimmed after load |\n|---|---|---|---|---|")
    peaks = {}
    for name in (ENCODER, CROSS_KV, DECODER_WITH_PAST):
        row = {}
        for setting in ("default", "no-prepacking", "trimmed", "low-memory"):
            if setting == "low-memory" and name != ENCODER:
                continue
            cmd = [*pinned(args.threads), sys.executable, __file__, "--child-session", str(folder / name),
                   "--setting", setting, "--threads", str(args.threads)]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{name} {setting}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            row[setting] = json.loads(proc.stdout.strip().splitlines()[-1])
        stem = name.removesuffix(".onnx")
        print(f"| {stem} | {sizes[stem]:.1f} | " + " | ".join(f"{row[s]['added']:.1f}" for s in
                                                               ("default", "no-prepacking", "trimmed")) + " |")
        if name == ENCODER:
            peaks = {s: row[s]["activations"] for s in ("default", "low-memory")}
    print(f"\nencoder activations, peak RSS over the loaded session in three windows: {peaks['default']:.0f} MiB "
          f"under glibc's default mmap threshold, {peaks['low-memory']:.0f} MiB with every block above "
          f"{LOW_MEMORY_MMAP_THRESHOLD >> 20} MiB returned when freed\n")


def initializer_mib(onnx_dir: Path) -> dict[str, float]:
    """Each graph's initializers as stored (MiB)."""
    import onnx

    out = {}
    for path in sorted(onnx_dir.glob("*.onnx")):
        model = onnx.load(str(path), load_external_data=False)
        out[path.stem] = sum(len(t.raw_data) for t in model.graph.initializer) / 2**20
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="base")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precisions", default="fp32,int8")
    p.add_argument("--configs", default=",".join([*CONFIGS, "faster-whisper"]),
                   help="names, or SessionMemory fields such as mmap_threshold=4194304+decoder_arena=0")
    p.add_argument("--audio-dir", default=str(ROOT / "audio" / "synth"))
    p.add_argument("--sessions", action="store_true", help="each session alone (see above)")
    p.add_argument("--child", dest="config", help=argparse.SUPPRESS)
    p.add_argument("--child-session", help=argparse.SUPPRESS)
    p.add_argument("--setting", help=argparse.SUPPRESS)
    p.add_argument("--precision", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_session:
        session_child(args)
        return 0
    if args.config:
        child(args)
        return 0

    from engines.registry import spec

    model_dir = ROOT / "models" / f"whisper-{args.model}"
    print(f"model {args.model}, threads {args.threads}, corpus {args.audio_dir}; MiB\n")
    for precision in args.precisions.split(","):
        folder = model_dir / spec("ort").check_variant(precision)
        if args.sessions:
            print_sessions(args, folder, precision)
            continue
        sizes = initializer_mib(folder)
        used = {k: v for k, v in sizes.items() if k != "decoder_model"}  # never loaded (engines/ort/model.py)
        print(f"ort {precision} initializers ({folder.name}): "
              + ", ".join(f"{k} {v:.0f}" for k, v in used.items()) + f"; sum {sum(used.values()):.0f}")
        rows = []
        for config in args.configs.split(","):
            cmd = [*pinned(args.threads), sys.executable, __file__, "--child", config, "--precision", precision,
                   "--model", args.model, "--threads", str(args.threads), "--audio-dir", args.audio_dir]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"  {config}: failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            s = json.loads(proc.stdout.strip().splitlines()[-1])
            imported, loaded, done = s["imported"], s["loaded"], s["transcribed"]
            rows.append((config, imported["VmRSS"], loaded["VmRSS"] - imported["VmRSS"],
                         loaded["VmHWM"] - loaded["VmRSS"], done["VmHWM"] - loaded["VmRSS"],
                         done["VmRSS"] - loaded["VmRSS"], done["VmHWM"], loaded["RssFile"], done["transcribe_s"]))
        print("| config | runtime | weights (resident after load) | load transient | peak over loaded "
              "(arena + activations) | kept after the corpus | peak RSS | of which file-backed after load "
              "| transcribe s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for row in rows:
            print(f"| {row[0]} | " + " | ".join(f"{v:.0f}" for v in row[1:-1]) + f" | {row[-1]:.1f} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
