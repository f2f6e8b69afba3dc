"""How fast the `rnnprune` command answers: `--help`, and a sweep spec with an error in it.

Whole processes, as a user starts them (the console script's interpreter), median of
`--repeats` runs each; the spec error is fixture 06 (an unknown method), which must fail
before Ray or MLflow load.

    .venv/bin/python -m benchmarks.cli_startup [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import write_result

ROOT = Path(__file__).parents[1]
CASES = {
    "help": (["--help"], 0, 1.0),
    "spec_error": (["sweep", str(ROOT / "tests/fixtures/bad_specs/06_unknown_method.yaml")], 2, 2.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    figures = {}
    for name, (arguments, expected_exit, target) in CASES.items():
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "rnnprune.cli", *arguments], capture_output=True)
            seconds.append(time.perf_counter() - started)
            if done.returncode != expected_exit:
                raise SystemExit(
                    f"{name}: exit {done.returncode}, expected {expected_exit}: {done.stderr[-500:]!r}"
                )
        median = statistics.median(seconds)
        runs = [round(s, 3) for s in seconds]
        figures[name] = {"median_s": round(median, 3), "runs_s": runs, "target_s": target}
        print(f"{name:<11} median {median:.2f} s over {args.repeats} runs (target < {target:g} s)")
    command = f"python -m benchmarks.cli_startup --repeats {args.repeats}"
    path = write_result("cli_startup", {"command": command, **figures})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
