"""W worker processes of T threads each (W x T = the container's CPUs), each with its own loaded engine.

Processes rather than threads: the engines' Python decoding loops hold the GIL, so two workers in one
process would take turns. Each worker is pinned to its own T CPUs, so workers do not trade caches or
preempt each other. They are forked before the parent imports any runtime, and share one task queue.

Dynamic batching (engines whose `transcribe_batch` batches across files): a worker takes the first task
waiting, then whatever else arrives within `batch_wait_s`, up to `max_batch`, and transcribes them together.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..base import DecodingSettings, Engine
from ..registry import spec
from .queries import Query

READY, DONE, FAILED = "ready", "done", "failed"


@dataclass(frozen=True)
class Layout:
    workers: int
    threads: int          # per worker
    max_batch: int = 1
    batch_wait_s: float = 0.0

    def cpu_groups(self, cpus: list[int]) -> list[list[int]]:
        if self.workers * self.threads > len(cpus):
            raise ValueError(f"{self.workers} workers x {self.threads} threads need {self.workers * self.threads} "
                             f"CPUs; {len(cpus)} are visible ({cpus})")
        return [cpus[i * self.threads:(i + 1) * self.threads] for i in range(self.workers)]


def batches_across_files(engine_name: str) -> bool:
    """Whether the engine's class has its own transcribe_batch (several files in one pass); the others
    would transcribe a batch in turn, which is no batching at all."""
    return spec(engine_name).engine_class().transcribe_batch is not Engine.transcribe_batch


def perturb(text: str) -> str:
    """What a SUT that skimps under load would return: the transcript without its last word. Only the
    audit test asks for it (--perturb-performance)."""
    return " ".join(text.split()[:-1])


class WorkerPool:
    def __init__(self, engine_name: str, model_dir: Path, precision: str, layout: Layout, queries: list[Query],
                 warmup: int, perturbed: bool = False):
        self.engine_name, self.model_dir, self.precision = engine_name, Path(model_dir), precision
        self.layout, self.queries, self.warmup, self.perturbed = layout, queries, warmup, perturbed
        ctx = mp.get_context("fork")  # before the parent loads any runtime; the audio is shared copy-on-write
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        self.procs = [ctx.Process(target=self._serve, args=(i, cpus), daemon=True)
                      for i, cpus in enumerate(layout.cpu_groups(sorted(os.sched_getaffinity(0))))]
        self.ready: list[dict] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid]

    def start(self, timeout_s: float = 600) -> list[dict]:
        """Start every worker and wait until each has loaded and warmed up; raises with a worker's error."""
        for p in self.procs:
            p.start()
        while len(self.ready) < len(self.procs):
            try:
                kind, payload = self.results.get(timeout=timeout_s)
            except queue.Empty:
                raise RuntimeError(f"workers not ready after {timeout_s:.0f} s") from None
            if kind == FAILED:
                raise RuntimeError(payload["error"])
            self.ready.append(payload)
        return self.ready

    def submit(self, items: list[tuple[int, int]]) -> None:
        """(LoadGen sample id, QSL index) pairs."""
        for item in items:
            self.tasks.put(item)

    def stop(self) -> None:
        for _ in self.procs:
            self.tasks.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()

    # --- inside a worker process ---
    def _serve(self, worker: int, cpus: list[int]) -> None:
        try:
            os.sched_setaffinity(0, cpus)
            engine = self._load(worker, cpus)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            self.results.put((FAILED, {"worker": worker, "error": f"worker {worker}: {type(exc).__name__}: {exc}"}))
            return
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            if not batch:
                continue
            start = time.time()
            try:
                engine.before_file()
                audios = [self.queries[index].audio for _, index in batch]
                results = engine.transcribe_batch(audios) if len(batch) > 1 else [engine.transcribe(audios[0])]
                texts, errors = [r.text for r in results], [None] * len(batch)
            except Exception as exc:  # a failed batch answers each of its samples with an empty text
                traceback.print_exc(file=sys.stderr)
                texts, errors = [""] * len(batch), [f"{type(exc).__name__}: {exc}"] * len(batch)
            if self.perturbed:
                texts = [perturb(t) for t in texts]
            self.results.put((DONE, {"worker": worker, "samples": [(sid, idx) for sid, idx in batch],
                                     "texts": texts, "errors": errors, "start": start, "end": time.time()}))

    def _load(self, worker: int, cpus: list[int]):
        layout = self.layout
        cross = layout.max_batch > 1 and batches_across_files(self.engine_name)
        settings = DecodingSettings(batch_size=layout.max_batch if cross else 1)
        engine = spec(self.engine_name).engine_class()(self.model_dir, settings, layout.threads, self.precision)
        spec(self.engine_name).check_variant(self.precision)
        t0 = time.perf_counter()
        engine.load()
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        by_length = sorted(self.queries, key=lambda q: q.audio.shape[0])
        picks = [by_length[0].audio, by_length[-1].audio] if by_length else []
        for _ in range(self.warmup):
            for audio in picks:
                engine.before_file()
                engine.transcribe(audio)
            if cross:  # the batched path too
                engine.before_file()
                engine.transcribe_batch([q.audio for q in by_length[-layout.max_batch:]])
        self.results.put((READY, {"worker": worker, "cpus": cpus, "model_load_s": load_s,
                                  "warmup_s": time.perf_counter() - t0, "notes": engine.notes,
                                  "versions": engine.versions(), "batching": "engine batch" if cross else
                                  ("in turn (the engine batches within a file only)" if layout.max_batch > 1
                                   else "none")}))
        return engine

    def _next_batch(self) -> tuple[list[tuple[int, int]], bool]:
        first = self.tasks.get()
        if first is None:
            return [], True
        batch, stopping = [first], False
        deadline = time.monotonic() + self.layout.batch_wait_s
        while len(batch) < self.layout.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self.tasks.get(timeout=remaining) if remaining > 0 else self.tasks.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stopping = True
                break
            batch.append(item)
        return batch, stopping
