"""Serving under load, inside the engine's container: MLPerf LoadGen drives the engine.

    python -m engines serve <engine> --model-dir DIR --audio-dir DIR --out DIR --threads T --workers W \
        --scenario offline|server --mode performance|accuracy [--qps Q] [--latency-bound-ms B] ...

The corpus becomes LoadGen's query sample library (`queries.py`: utterances of at most 30 s), W worker
processes of T threads each serve the queries (`workers.py`, with dynamic batching for engines that batch
across files), and one LoadGen test runs (`loadgen_run.py`). LoadGen's own logs stay in --out beside
`serve_summary.json` (`logs.py` reads them; the host imports it too).
"""
