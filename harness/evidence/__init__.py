"""The evidence behind an answer: cell records (a cell's rounds reduced), statistics on runs, the accuracy
gate, verdicts, and the racing schedule that decides which cells get another round.

Both the run loop (which cells run next) and the report (what the answer says) read this package; it
imports neither of them.
"""
