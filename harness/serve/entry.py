"""The serving stage as the command line calls it: settings, then the cells. The capacity report is the
command line's next step (harness/report reads what this stage writes; this stage imports no report)."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..run.config import build_config
from .settings import SERVE_SCENARIOS, SINGLE_STREAM, build_serve_settings


def serve(args) -> tuple[Path, list[dict]]:
    """Run the serving cells the flags ask for: the SUT's folder and one record per cell."""
    from .run import run_serving

    settings = build_serve_settings(args, default_scenarios=SERVE_SCENARIOS)
    wanted = tuple(s for s in settings.scenarios if s != SINGLE_STREAM)
    if not wanted:
        raise UserError("SCENARIOS: `harness serve` runs offline and server; single-stream is `harness run`")
    settings.scenarios = wanted
    config = build_config(args)
    records = run_serving(config, settings, build=not args.no_build)
    return config.sut_dir, records  # the serving area's folder: run_serving points the config at it
