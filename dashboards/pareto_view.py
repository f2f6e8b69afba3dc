"""Render the Pareto dashboard of a sweep or experiment without writing to MLflow.

`rnnprune pareto NAME` renders the same page and also tags the runs and logs the page to the
parent run; this script only reads, so it is safe on a store you do not own.

    python dashboards/pareto_view.py NAME [--tracking-uri URI] [--output DIR] [--ui-url URL]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnprune.dashboard import write_dashboard
from rnnprune.pareto import default_objectives, task_of
from rnnprune.publish import read_runs
from rnnprune.tracking import resolve_tracking_uri, run_url, ui_base


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="sweep name or MLflow experiment name")
    parser.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here")
    parser.add_argument("--output", type=Path, default=Path("runs/pareto_view"))
    parser.add_argument(
        "--accuracy",
        help="quality metric on the y axis (default: the task's, e.g. test_error_cm for navigation)",
    )
    parser.add_argument("--ui-url", help="MLflow UI base for run links")
    args = parser.parse_args()
    uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
    kind, _, runs = read_runs(uri, args.name)
    base = args.ui_url or ui_base(uri)
    files = write_dashboard(
        runs,
        args.accuracy or default_objectives(task_of(runs))[0],
        lambda r: run_url(base, r.experiment_id, r.run_id),
        f"Pareto view: {kind} {args.name}",
        args.output,
    )
    print("\n".join(str(f) for f in files))


if __name__ == "__main__":
    main()
