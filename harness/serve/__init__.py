"""Serving capacity on the host: scenario cells run through MLPerf LoadGen inside the engine containers.

settings.py (SCENARIOS and the serving settings), cells.py (one LoadGen test in one container), search.py
(the highest Server QPS whose p99 meets the bound), audit.py (accuracy and the TEST01-style audit),
energy.py (energy per audio hour, with its source), run.py (the stage: every cell, its tests, capacity.json).
"""
