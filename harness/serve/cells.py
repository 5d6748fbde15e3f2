"""One LoadGen test of one serving cell, in the engine's pinned container (harness/run/container.py).

A serving cell is an engine variant at a core count with a worker layout (W x T, dynamic batch N). Each of
its tests (accuracy, offline, server at a QPS) is one container run into its own folder:
`results/<SUT>/serving/container_<c>c<m>g/<engine>-<model>-<variant>-<layout>/<test>/`, with LoadGen's
summary, detail and accuracy logs, serve_summary.json, serve_queries.json, container.log and run.json.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from engines.serve.logs import SERVE_SUMMARY

from ..files import read_json_object, write_json
from ..layout import RUN_FILE
from ..run.config import Cell, Config
from ..run.container import new_record, run_container
from ..run.loop import wait_until_quiet
from .energy import RaplSampler, energy_figure
from .settings import Layout, ServeSettings

RUN_SLACK_S = 600                 # a test may run this much longer than its minimum duration before a kill


@dataclass(frozen=True)
class Test:
    name: str                     # accuracy | offline | server-<qps>
    scenario: str
    mode: str
    qps: float
    duration_ms: int
    min_queries: int
    audit_probability: float = 0.0


def cell_name(config: Config, cell: Cell, layout: Layout) -> str:
    return f"{cell.name(config.model)}-{layout.name}"


def serve_command(config: Config, cell: Cell, layout: Layout, test: Test, settings: ServeSettings) -> list[str]:
    return ["serve", cell.engine, "--model-dir", "/models", "--model-name", config.model, "--audio-dir", "/audio",
            "--out", "/results", "--precision", cell.variant, "--threads", str(layout.threads),
            "--workers", str(layout.workers), "--scenario", test.scenario, "--mode", test.mode,
            "--qps", f"{test.qps:g}", "--latency-bound-ms", f"{settings.latency_bound_ms:g}",
            "--percentile", f"{settings.percentile:g}", "--min-duration-ms", str(test.duration_ms),
            "--min-query-count", str(test.min_queries), "--max-batch", str(layout.batch),
            "--batch-wait-ms", f"{settings.batch_wait_ms if layout.batch > 1 else 0:g}",
            "--warmup", str(config.warmup), "--audit-probability", f"{test.audit_probability:g}",
            "--seed", str(config.seed)]


@dataclass
class TestRunner:
    """What every test of a run shares: the Docker client, images, host facts, RAPL zones and idle draw."""
    client: object
    config: Config
    settings: ServeSettings
    images: dict
    image_tag: object
    host: dict
    rapl_zones: list
    tdp_w_per_cpu: float
    idle_w: float | None = None

    def run(self, cell: Cell, layout: Layout, test: Test, cell_dir: Path) -> dict:
        """Run one test; returns its point: status, LoadGen's result, the SUT's counts, energy."""
        run_dir = cell_dir / test.name
        image_id, image_error = self.images[cell.engine]
        record = new_record(self.config, cell, self.image_tag(cell.engine), image_id, 1)
        record.cell = f"{cell_dir.name}/{test.name}"
        record.threads = layout.threads
        record.command = serve_command(self.config, cell, layout, test, self.settings)
        record.timeout_s = min(self.config.timeout_s, test.duration_ms / 1000 + RUN_SLACK_S)
        record.host = dict(self.host)
        if image_id is None:
            record.status, record.error = "image_build_failed", image_error or "image missing"
            write_json(run_dir / RUN_FILE, record.to_dict())
            return {"test": test.name, "status": record.status, "error": record.error}
        record.quiet = wait_until_quiet(cell.cpuset, self.config)
        timeout = self.config.timeout_s
        self.config.timeout_s = record.timeout_s  # run_container reads the limit from the config
        try:
            sampler = RaplSampler(self.rapl_zones) if self.rapl_zones else None
            with sampler or contextlib.nullcontext():
                run_container(self.client, self.config, cell, run_dir, record, 0)
        finally:
            self.config.timeout_s = timeout
        summary = read_json_object(run_dir / SERVE_SUMMARY) or {}  # run_container took its status from it
        if record.status == "partial":
            record.error = f"{(summary.get('sut') or {}).get('failures')} queries failed"
            write_json(run_dir / RUN_FILE, record.to_dict())
        point = {"test": test.name, "scenario": test.scenario, "mode": test.mode, "status": record.status,
                 "error": record.error, "loadgen": summary.get("loadgen"), "sut": summary.get("sut"),
                 "quiet": record.quiet, "foreign_busy_share": record.foreign_busy_share}
        if summary.get("sut"):
            point["energy"] = energy_figure(summary["sut"], sampler, self.idle_w, self.tdp_w_per_cpu)
        return point
