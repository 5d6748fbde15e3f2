"""Where everything lives: the repository's data folders, the results layout and their defaults.

    results/<SUT>/plan.json                                  the last run's configuration and host
    results/<SUT>/container_<cores>c<mem>g/<engine>-<model>-<variant>/
        cell.json                                            what the report needs (tracked by git)
        round-<k>/                                           one container run (raw, local only):
            inference_per_file.{jsonl,csv,json}, inference_summary.json, time.txt,
            cgroup_memory.json, container.log, run.json, metrics.json
    results/<SUT>/backups/<stamp>/...                        cells moved aside by a re-run
    results/<SUT>/discovery/container_<c>c<m>g/ort-<model>-<build>/...   `harness discover`'s cells
    results/<SUT>/discovery.{md,csv}, discovery_wer_vs_rtf.png           its ranking of the builds
    results/merged.csv, results/plots/, RESULTS.md           the report
"""
from __future__ import annotations

import re
from pathlib import Path

from engines.results import PER_FILE_JSON, ROWS_FILE, SUMMARY_FILE  # noqa: F401  (the engine's file names)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "results"
DEFAULT_AUDIO = ROOT / "audio" / "synth"
DEFAULT_MODELS = ROOT / "models"
RESULTS_MD = ROOT / "RESULTS.md"

RUN_FILE = "run.json"                 # the host's record of one container run
METRICS_FILE = "metrics.json"
CELL_FILE = "cell.json"
PLAN_FILE = "plan.json"
RUNS_DIR = "runs"                     # results/<SUT>/runs/<run id>.json: every run's plan, kept
DISCOVERY_MD = "discovery.md"         # results/<SUT>/: the ranking of model builds (harness discover)

SHAPE_RE = re.compile(r"container_(\d+)c([\d.]+)g")
ROUND_RE = re.compile(r"round-(\d+)")
SKIP_DIRS = {"backups", "logs", "plots"}


def fmt_gb(gb: float) -> str:
    return str(int(gb)) if float(gb).is_integer() else f"{gb:g}"


def shape_name(cores: int, memory_gb: float) -> str:
    return f"container_{cores}c{fmt_gb(memory_gb)}g"


def cell_name(engine: str, model: str, variant: str, batch: int = 1, replica: int = 0) -> str:
    """engine-model-variant; a throughput cell (BATCH_SIZES) ends in -batch<N>, calibrate's second copy of a
    variant in -aa<N>."""
    return (f"{engine}-{model}-{variant}" + (f"-batch{batch}" if batch > 1 else "")
            + (f"-aa{replica}" if replica else ""))


def cell_label(cell: str, cores: int) -> str:
    """A cell at a core count, as every table, plot and message names it: `ort-tiny.en-int8@2c`."""
    return f"{cell}@{cores}c"


def round_dir(cell_dir: Path, round_index: int) -> Path:
    return cell_dir / f"round-{round_index}"


def round_dirs(cell_dir: Path) -> list[Path]:
    """The cell's round folders in round order."""
    found = [(int(m.group(1)), p) for p in cell_dir.glob("round-*") if (m := ROUND_RE.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def cell_dirs(results: Path) -> list[Path]:
    """results/<SUT>/container_<c>c<m>g/<cell>/ with a cell.json or at least one round; backups excluded."""
    found = set()
    for pattern in (f"*/container_*/*/{CELL_FILE}", f"*/container_*/*/round-*/{RUN_FILE}",
                    f"*/container_*/*/round-*/{SUMMARY_FILE}"):
        for path in results.glob(pattern):
            cell = path.parent if path.name == CELL_FILE else path.parent.parent
            if not SKIP_DIRS & set(cell.relative_to(results).parts):
                found.add(cell)
    return sorted(found)


def run_dirs(results: Path) -> list[Path]:
    """Every round folder that holds an engine summary (what scoring reads)."""
    return sorted(p.parent for p in results.rglob(SUMMARY_FILE) if not SKIP_DIRS & set(p.parts))
