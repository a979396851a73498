"""Results: environment, targets, markdown tables, JSON and the ratio chart."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from .common import Sizes

RSS_LIMIT_MB = 100.0

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


def _applies(target: dict[str, Any], dialect: str) -> bool:
    return not target["dialects"] or dialect in target["dialects"]


def _targets(run: dict[str, Any], workloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every target that applies to this backend, with dsg_lib's measured ratio (or MB)."""
    med, dialect = run["median_s"], run.get("dialect", "")
    rows: list[dict[str, Any]] = []
    for w in workloads:
        for t in w["targets"]:
            if not _applies(t, dialect):
                continue
            dsg, ref = med.get(w["key"], {}).get("dsg_lib"), med.get(w["key"], {}).get(t["against"])
            value = dsg / ref if dsg is not None and ref else None
            rows.append(
                {
                    "workload": w["key"],
                    "against": t["against"],
                    "target": t["limit"],
                    "unit": "x",
                    "value": value,
                    "met": value is not None and value <= t["limit"],
                }
            )
    for key in ("stream", "insert_memory"):
        mem = run["memory"].get(key, {}).get("dsg_lib")
        if mem is not None:
            rss = mem["rss_growth_mb"]
            rows.append(
                {
                    "workload": key,
                    "against": "RSS growth",
                    "target": RSS_LIMIT_MB,
                    "unit": "MB",
                    "value": rss,
                    "met": rss < RSS_LIMIT_MB,
                }
            )
    p1, deep = med.get("keyset_page1", {}).get("dsg_lib"), med.get("keyset_deep", {}).get("dsg_lib")
    if p1 and deep is not None:
        rows.append(
            {
                "workload": "keyset_deep",
                "against": "keyset page 1",
                "target": 2.0,
                "unit": "x",
                "value": deep / p1,
                "met": deep / p1 <= 2.0,
            }
        )
    return rows


def build(
    runs: list[dict[str, Any]],
    *,
    workloads: list[Any],
    sizes: Sizes,
    repeats: int,
    stream_repeats: int,
    contenders: list[str],
    elapsed: float,
    quick: bool,
) -> dict[str, Any]:
    meta = [
        {"key": w.key, "title": w.title(sizes), "call": w.call, "targets": [asdict(t) for t in w.targets]}
        for w in workloads
    ]
    for run in runs:
        run["targets"] = _targets(run, meta)
    return {
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": environment(),
        "sizes": asdict(sizes),
        "quick": quick,
        "repeats": repeats,
        "stream_repeats": stream_repeats,
        "contenders": contenders,
        "workloads": meta,
        "runs": runs,
        "elapsed_s": elapsed,
    }


def _fmt_ms(seconds: float) -> str:
    ms = seconds * 1000.0
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


SHORT = {
    "orm": "ORM",
    "core": "Core",
    "raw": "raw",
    "advanced_alchemy": "adv.-alchemy",
    "fastcrud": "fastcrud",
}


def _target_result(t: dict[str, Any]) -> str:
    """``<= 0.9x ORM: pass`` / ``< 100 MB: **FAIL** (120.3 MB)``."""
    if t["unit"] == "MB":
        goal, shown = f"< {t['target']:g} MB", f"{t['value']:.1f} MB"
    else:
        goal = f"≤ {t['target']:g}x {SHORT.get(t['against'], t['against'])}"
        shown = "" if t["value"] is None else f"{t['value']:.2f}x"
    if t["value"] is None:
        return f"{goal}: n/a"
    return f"{goal}: pass" if t["met"] else f"{goal}: **FAIL**" + (f" ({shown})" if t["unit"] == "MB" else "")


def summary_table(results: dict[str, Any], run: dict[str, Any], sep: str = "; ") -> list[str]:
    """dsg_lib against every contender, per workload, with issue 15's targets and pass/fail."""
    others = [n for n in ("orm", "core", "raw", "advanced_alchemy", "fastcrud") if n in results["contenders"]]
    med, errors = run["median_s"], run["errors"]
    targets: dict[str, list[dict[str, Any]]] = {}
    for t in run["targets"]:
        targets.setdefault(t["workload"], []).append(t)
    out = [
        "| workload | dsg_lib call | dsg_lib ms | "
        + " | ".join(f"÷ {SHORT[n]}" for n in others)
        + " | target |",
        "|---|---|---:|" + "---:|" * len(others) + "---|",
    ]
    for w in results["workloads"]:
        key = w["key"]
        times = med.get(key, {})
        mine = targets.get(key, [])
        if not times and not mine:
            continue
        dsg = times.get("dsg_lib")
        if dsg is None:
            cells = ["error" if "dsg_lib" in errors.get(key, {}) else "-"] + ["-"] * len(others)
        else:
            cells = [_fmt_ms(dsg)] + [f"{dsg / times[n]:.2f}x" if times.get(n) else "-" for n in others]
        mem = run["memory"].get(key, {}).get("dsg_lib")
        if mem is not None:
            cells[0] += f" ({mem['rss_growth_mb']:.1f} MB)"
        goal = sep.join(_target_result(t) for t in mine) or "-"
        out.append(f"| {w['title']} | `{w['call']}` | " + " | ".join(cells) + f" | {goal} |")
    return out


def times_table(results: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """Every contender's median time, with the ratio to the raw driver."""
    names, med, errors = results["contenders"], run["median_s"], run["errors"]
    titles = {w["key"]: w["title"] for w in results["workloads"]}
    out = [
        "| workload | " + " | ".join(LABELS.get(n, n) for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
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
                cells.append(_fmt_ms(t) + (f" ({t / raw:.2f}x)" if raw else ""))
        out.append(f"| {w['title']} | " + " | ".join(cells) + " |")
    for key, mem in run["memory"].items():
        out.append(
            f"| {titles.get(key, key)}: peak RSS growth (MB) | "
            + " | ".join(f"{mem[n]['rss_growth_mb']:.1f}" if n in mem else "-" for n in names)
            + " |"
        )
    return out


def _heading(run: dict[str, Any]) -> str:
    return f"{run['backend']} ({run['driver']}, {run.get('server_version', '?')})"


def score(run: dict[str, Any]) -> str:
    known = [t for t in run["targets"] if t["value"] is not None]
    return f"{sum(t['met'] for t in known)} of {len(known)} targets met"


def caption(results: dict[str, Any]) -> str:
    kind = (
        "**quick smoke run** (tiny sizes, 1 repeat: indicative only)"
        if results["quick"]
        else f"median of {results['repeats']} interleaved repeats"
    )
    env = results["environment"]
    return (
        f"`{results['command'].strip()}`, {results.get('date', '')}, {kind}; Python {env['python']}, "
        f"SQLAlchemy {env['sqlalchemy']}, {env['cpus']} CPUs. Ratios are dsg_lib's time divided by "
        "the other contender's: below 1.00x dsg_lib is faster."
    )


def markdown(results: dict[str, Any]) -> str:
    out = [caption(results) + "\n"]
    for run in results["runs"]:
        out.append(f"### {_heading(run)}\n")
        if "backend" in run["errors"]:
            out.append(f"Stopped early (results so far below): {run['errors']['backend']['all']}\n")
            if not run["median_s"]:
                continue
        out += [
            score(run) + ".\n",
            *summary_table(results, run),
            "",
            "All contenders, ms (ratio to raw):\n",
            *times_table(results, run),
            "",
        ]
        shown = {(w, c): e for w, cs in run["errors"].items() for c, e in cs.items()}
        if shown:
            out.append("Errors: " + "; ".join(f"{w}/{c}: {e}" for (w, c), e in shown.items()) + "\n")
    return "\n".join(out)


def chart_alt(results: dict[str, Any], run: dict[str, Any]) -> str:
    failed = [
        f"{t['workload']} {t['value']:.2f}{'x' if t['unit'] == 'x' else ' MB'}"
        for t in run["targets"]
        if t["value"] is not None and not t["met"]
    ]
    return (
        f"{run['backend']}: dsg_lib time divided by the hand-written SQLAlchemy ORM (object workloads) "
        f"or SQLAlchemy Core (Core-shaped workloads), one bar per workload, {score(run)}"
        + (f"; missed: {', '.join(failed)}" if failed else "")
    )


def chart(results: dict[str, Any], run: dict[str, Any], path: str) -> bool:
    """One backend: dsg_lib's ratio to its target reference per workload, green = target met."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = []
    for w in results["workloads"]:
        goal = next(
            (t for t in run["targets"] if t["workload"] == w["key"] and t["against"] in ("orm", "core")), None
        )
        if goal is not None and goal["value"] is not None:
            bars.append((f"{w['title']}: {w['call']}", goal))
    if not bars:
        return False
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(bars) + 1.3))
    ys = range(len(bars))[::-1]
    for y, (_label, t) in zip(ys, bars, strict=True):
        color = "#2e7d32" if t["met"] else "#c62828"
        ax.barh(y, t["value"], color=color, height=0.6)
        ax.plot([t["target"], t["target"]], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
        ax.text(
            max(t["value"], t["target"]) + 0.03,
            y,
            f"{t['value']:.2f}x {LABELS[t['against']]}",
            va="center",
            fontsize=8,
        )
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([b[0] for b in bars], fontsize=8)
    ax.set_xlim(0, max(1.6, max(t["value"] for _, t in bars) * 1.35))
    ax.set_xlabel("dsg_lib time ÷ reference time (black tick = target; green = met, red = missed)")
    ax.set_title(
        f"{run['backend']} ({run['driver']}): dsg_lib vs hand-written ORM / SQLAlchemy Core", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    from PIL import Image  # matplotlib's own dependency

    with Image.open(path) as image:  # a few flat colours: a palette PNG is a third of the size
        small = image.convert("RGB").quantize(colors=64)
    small.save(path, optimize=True)
    return True


def write(results: dict[str, Any], markdown_text: str, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2, default=str)
    with open(os.path.join(directory, "results.md"), "w") as fh:
        fh.write(markdown_text + "\n")
    if importlib.util.find_spec("matplotlib") is None:  # the bench extra is not installed: no charts
        sys.stderr.write("matplotlib is not installed: no charts (pip install -e '.[bench]')\n")
        return
    for run in results["runs"]:
        if run["median_s"]:
            chart(results, run, os.path.join(directory, f"benchmarks-{run['backend']}.png"))
