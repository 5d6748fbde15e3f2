"""The serving stage as the command line calls it: settings, the cells, then the capacity report."""
from __future__ import annotations

import sys

from ..errors import UserError
from ..run.config import build_config
from .settings import SERVE_SCENARIOS, SINGLE_STREAM, build_serve_settings


def serve(args) -> None:
    from ..report.capacity import write_capacity_report
    from .run import run_serving

    settings = build_serve_settings(args, default_scenarios=SERVE_SCENARIOS)
    wanted = tuple(s for s in settings.scenarios if s != SINGLE_STREAM)
    if not wanted:
        raise UserError("SCENARIOS: `harness serve` runs offline and server; single-stream is `harness run`")
    settings.scenarios = wanted
    config = build_config(args)
    records = run_serving(config, settings, build=not args.no_build)
    if not getattr(args, "no_report", False):
        out = write_capacity_report(config.sut_dir)
        print(f"capacity: {out}", file=sys.stderr)
    if records and all(r["offline"]["status"] != "ok" for r in records):
        sys.exit(1)
