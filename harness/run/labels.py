"""The labels every benchmark container and volume carries: which cell it runs, which harness process and
which controller (harness/run/lock.py) it belongs to, so that clean-up finds exactly its own leftovers."""
LABEL = "org.whisper-bench.cell"
OWNER_LABEL = "org.whisper-bench.harness-pid"
CONTROLLER_LABEL = "org.whisper-bench.controller"   # the harness (controller) a container or volume belongs to
