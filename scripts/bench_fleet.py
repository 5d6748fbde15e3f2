"""Time a fleet run against the same cells run one SUT after the other, and print the ratio.

    python scripts/bench_fleet.py [--model tiny.en] [--engines "ort:int8 ort:fp32"] [--repeats 2]

Two SUTs on this machine: the local Docker engine pinned to CPU 0 and a second dockerd (its own socket, data
root and bridge) pinned to CPU 1. A first fleet run puts the images and inputs on the second engine and is
not timed; then the same fleet runs in parallel and with --one-at-a-time, each into fresh results, and the
wall times come from each run's results/fleet.json. Not a test: it prints figures. Run nothing else
meanwhile: both SUTs share this host.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

FLEET = """
[defaults]
model = "{model}"
engines = "{engines}"
repeats = {repeats}
warmup = 0

[sut.cpu0]
docker = "unix:///var/run/docker.sock"
cpuset = "0"
memory_gb = 4
cores_list = "1"

[sut.cpu1]
docker = "unix://{socket}"
cpuset = "1"
memory_gb = 4
cores_list = "1"
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny.en")
    p.add_argument("--engines", default="ort:int8 ort:fp32")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--audio-dir", default=str(ROOT / "audio" / "synth"))
    args = p.parse_args()

    from second_dockerd import available, second_dockerd

    from harness.fleet.config import load_fleet
    from harness.fleet.run import FLEET_FILE, run_fleet

    if (why := available()):
        print(f"bench_fleet: a second Docker engine cannot start here: {why}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    with second_dockerd(work / "dockerd2") as (socket, _):
        (work / "fleet.toml").write_text(FLEET.format(model=args.model, engines=args.engines, repeats=args.repeats,
                                                      socket=socket))
        fleet = load_fleet(work / "fleet.toml")
        walls = {}
        for name, parallel in (("warm-up", True), ("parallel", True), ("one at a time", False)):
            out = work / name.replace(" ", "-")
            outcomes = run_fleet(fleet, out, ROOT / "models", Path(args.audio_dir), build=False, parallel=parallel)
            if any(o["status"] != "ok" for o in outcomes):
                print(f"bench_fleet: the {name} run failed: {outcomes}", file=sys.stderr)
                return 1
            walls[name] = json.loads((out / FLEET_FILE).read_text())
    cells = len(args.engines.split()) * args.repeats
    print(f"\nfleet of 2 SUTs (1 core each), {args.model}, {args.engines}, {args.repeats} round(s): "
          f"{cells} runs per SUT")
    print("| run | wall s | per SUT s |\n|---|---|---|")
    for name, data in walls.items():
        print(f"| {name} | {data['wall_s']:.1f} | " + ", ".join(f"{s['sut']} {s['seconds']:.1f}"
                                                            for s in data["suts"]) + " |")
    ratio = walls["parallel"]["wall_s"] / walls["one at a time"]["wall_s"]
    print(f"\nparallel / one at a time: {ratio:.2f}x the wall time (1.00 = no gain, 0.50 = two SUTs fully overlapped)")
    print(f"results under {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
