"""Regenerate the FastAPI service section of ``docs/performance.md`` from a saved run.

``python -m benchmarks.service.page`` reads ``benchmarks/results/service.json`` (written by
``python -m benchmarks.service --out benchmarks/results``), redraws ``docs/img/bench-service.png``
and replaces only the text between the section's two markers.
"""

from __future__ import annotations

import argparse
import json
import os

from . import report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.service.page", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--results", default=os.path.join("benchmarks", "results", "service.json"))
    parser.add_argument("--page", default=os.path.join("docs", "performance.md"))
    parser.add_argument("--img-dir", default=os.path.join("docs", "img"))
    args = parser.parse_args(argv)
    with open(args.results, encoding="utf-8") as fh:
        results = json.load(fh)
    for run in results["runs"]:  # recomputed: a file from an older version renders with today's tables
        run["targets"] = report.targets(run, results["target_lines"])
    report.update_page(args.page, results, args.img_dir)
    print(f"updated the FastAPI service section of {args.page} and {args.img_dir}/bench-service.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
