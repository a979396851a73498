"""Results: environment, targets, markdown tables, JSON and the ratio chart."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from importlib import metadata
from typing import Any

from .common import Sizes

LABELS = {
    "raw": "raw driver",
    "core": "SA Core",
    "orm": "SA ORM",
    "dsg_lib": "dsg_lib",
    "dsg_lib_observed": "dsg_lib traced+metrics",
    "advanced_alchemy": "advanced-alchemy",
    "fastcrud": "fastcrud",
}
PACKAGES = ("sqlalchemy", "asyncpg", "aiomysql", "asyncmy", "aiosqlite", "advanced-alchemy", "fastcrud")


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        import psutil

        env["ram_gb"] = round(psutil.virtual_memory().total / 1024**3, 1)
    except ImportError:  # pragma: no cover - psutil is part of the bench extra
        env["ram_gb"] = None
    for package in PACKAGES:
        try:
            env[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            env[package] = None
    return env


def _targets(run: dict[str, Any], workloads: list[Any], sizes: Sizes) -> list[dict[str, Any]]:
    med = run["median_s"]
    rows: list[dict[str, Any]] = []
    for w in workloads:
        if w.target is None:
            continue
        dsg, ref = med.get(w.key, {}).get("dsg_lib"), med.get(w.key, {}).get(w.reference)
        if dsg is None or not ref:
            continue
        ratio = dsg / ref
        rows.append({"workload": w.key, "against": w.reference, "target": w.target,
                     "value": ratio, "met": ratio <= w.target, "unit": "x"})
    stream = run["stream"].get("dsg_lib")
    if stream is not None:
        rss = stream["rss_growth_mb"]
        rows.append({"workload": "stream", "against": "RSS growth", "target": 100.0,
                     "value": rss, "met": rss < 100.0, "unit": "MB"})
    p1, deep = med.get("keyset_page1", {}).get("dsg_lib"), med.get("keyset_deep", {}).get("dsg_lib")
    if p1 and deep is not None:
        ratio = deep / p1
        rows.append({"workload": "keyset_deep", "against": "keyset page 1", "target": 2.0,
                     "value": ratio, "met": ratio <= 2.0, "unit": "x"})
    return rows


def build(runs: list[dict[str, Any]], *, workloads: list[Any], sizes: Sizes, repeats: int,
          stream_repeats: int, contenders: list[str], elapsed: float, quick: bool) -> dict[str, Any]:
    for run in runs:
        run["targets"] = _targets(run, workloads, sizes)
    return {
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
        "environment": environment(),
        "sizes": asdict(sizes),
        "quick": quick,
        "repeats": repeats,
        "stream_repeats": stream_repeats,
        "contenders": contenders,
        "workloads": [{"key": w.key, "title": w.title(sizes), "reference": w.reference,
                       "target": w.target} for w in workloads],
        "runs": runs,
        "elapsed_s": elapsed,
    }


def _fmt_ms(seconds: float) -> str:
    ms = seconds * 1000.0
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


def markdown(results: dict[str, Any]) -> str:
    out: list[str] = []
    names = results["contenders"]
    titles = {w["key"]: w["title"] for w in results["workloads"]}
    out.append(f"Median of {results['repeats']} interleaved repeats (stream: {results['stream_repeats']}); "
               "cells are `ms (ratio to raw driver)`; `-` = not offered by that library.\n")
    for run in results["runs"]:
        med, errors = run["median_s"], run["errors"]
        out.append(f"### {run['backend']} ({run['driver']}, {run.get('server_version', '?')})\n")
        if "backend" in errors:
            out.append(f"Stopped early (results so far below): {errors['backend']['all']}\n")
            if not med:
                continue
        out.append("| workload | " + " | ".join(LABELS.get(n, n) for n in names) + " |")
        out.append("|---|" + "---:|" * len(names))
        for w in results["workloads"]:
            key = w["key"]
            if key not in med and key not in errors:
                continue
            raw = med.get(key, {}).get("raw")
            cells = []
            for n in names:
                t = med.get(key, {}).get(n)
                if n in errors.get(key, {}) or n in errors.get("open", {}):
                    cells.append("error")
                elif t is None:
                    cells.append("-")
                else:
                    ratio = f" ({t / raw:.2f}x)" if raw else ""
                    cells.append(_fmt_ms(t) + ratio)
            out.append(f"| {titles[key]} | " + " | ".join(cells) + " |")
        if run["stream"]:
            out.append("| stream peak RSS growth (MB) | " + " | ".join(
                f"{run['stream'][n]['rss_growth_mb']:.1f}" if n in run["stream"] else "-" for n in names
            ) + " |")
        out.append("")
        if run["targets"]:
            out.append("| dsg_lib target | measured | target | met |")
            out.append("|---|---:|---:|:---:|")
            for t in run["targets"]:
                value = f"{t['value']:.2f}{'x' if t['unit'] == 'x' else ' MB'} vs {t['against']}"
                limit = f"<= {t['target']:g}x" if t["unit"] == "x" else f"< {t['target']:g} MB"
                out.append(f"| {titles.get(t['workload'], t['workload'])} | {value} | {limit} | "
                           f"{'yes' if t['met'] else '**no**'} |")
            out.append("")
        shown = {(w, c): e for w, cs in errors.items() for c, e in cs.items()}
        if shown:
            out.append("Errors: " + "; ".join(f"{w}/{c}: {e}" for (w, c), e in shown.items()) + "\n")
    return "\n".join(out)


def chart(results: dict[str, Any], path: str) -> None:
    """Ratio to the raw driver, per workload, one panel per backend, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in results["runs"] if r["median_s"]]
    names = [n for n in results["contenders"] if n != "raw"]
    keys = [w["key"] for w in results["workloads"]]
    titles = {w["key"]: w["title"] for w in results["workloads"]}
    fig, axes = plt.subplots(len(runs) or 1, 1, figsize=(14, 3.6 * max(len(runs), 1)), squeeze=False)
    width = 0.8 / max(len(names), 1)
    for ax, run in zip(axes[:, 0], runs, strict=False):
        med = run["median_s"]
        present = [k for k in keys if med.get(k, {}).get("raw")]
        for i, name in enumerate(names):
            xs, ys = [], []
            for j, key in enumerate(present):
                t = med[key].get(name)
                if t is not None:
                    xs.append(j + (i - (len(names) - 1) / 2) * width)
                    ys.append(t / med[key]["raw"])
            ax.bar(xs, ys, width=width, label=LABELS.get(name, name))
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("x raw driver (log)")
        ax.set_title(f"{run['backend']} ({run['driver']})")
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels([titles[k] for k in present], rotation=25, ha="right", fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0, 0].legend(ncol=len(names), fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], markdown_text: str, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2, default=str)
    with open(os.path.join(directory, "results.md"), "w") as fh:
        fh.write(markdown_text + "\n")
    chart(results, os.path.join(directory, "benchmarks.png"))
