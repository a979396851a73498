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

from .common import POOL_SIZE, SQLITE_PRAGMAS, Sizes

RSS_LIMIT_MB = 100.0
KEYSET_DEPTH_LIMIT = 2.0  # keyset page 1,000 at most twice keyset page 1
FAST_ORMS = "fast_orms"  # a target's ``against``: the faster of these two, per workload and backend
FAST_ORM_NAMES = ("tortoise", "piccolo")
KEYSET_PAGE1 = "keyset page 1"
BY_HAND = "dsg_lib_by_hand"  # dsg_lib's find + Schema.model_validate per object (issue 27's reference)

LABELS = {
    "raw": "raw driver",
    "core": "SA Core",
    "orm": "SA ORM",
    "dsg_lib": "dsg_lib",
    "dsg_lib_observed": "dsg_lib traced+metrics",
    BY_HAND: "dsg_lib find + model_validate",
    "advanced_alchemy": "advanced-alchemy",
    "fastcrud": "fastcrud",
    "tortoise": "Tortoise ORM",
    "piccolo": "Piccolo",
    FAST_ORMS: "the faster of Tortoise ORM and Piccolo",
}
PACKAGES = (
    "sqlalchemy",
    "asyncpg",
    "aiomysql",
    "asyncmy",
    "aiosqlite",
    "advanced-alchemy",
    "fastcrud",
    "tortoise-orm",
    "piccolo",
)


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


def reference(times: dict[str, float], against: str) -> tuple[float, str] | None:
    """The reference time of a target and whose it is (``fast_orms``: the faster peer ORM)."""
    names = FAST_ORM_NAMES if against == FAST_ORMS else (against,)
    found = [(times[n], n) for n in names if times.get(n)]
    return min(found) if found else None


def _paired(a: list[float], b: list[float]) -> list[float]:
    """Per-repeat ratios ``a[i] / b[i]``: the repeats are interleaved, so sample i of each was
    measured in the same round, moments apart (none when the lists do not line up). Their lowest
    and highest are a target's spread; its figure stays the ratio of the medians, the ÷ columns'."""
    if not a or len(a) != len(b):
        return []
    return [x / y for x, y in zip(a, b, strict=True) if y]


def _ratio(
    med: dict[str, dict[str, float]], samples: dict[str, dict[str, list[float]]], workload: str, against: str
) -> dict[str, Any]:
    """dsg_lib's median ratio to the reference, the reference's name and the per-repeat spread."""
    if against == KEYSET_PAGE1:
        deep, first = med.get("keyset_deep", {}).get("dsg_lib"), med.get("keyset_page1", {}).get("dsg_lib")
        value = deep / first if deep is not None and first else None
        ratios = _paired(
            samples.get("keyset_deep", {}).get("dsg_lib", []),
            samples.get("keyset_page1", {}).get("dsg_lib", []),
        )
        return {"value": value, "ref": "dsg_lib", "spread": [min(ratios), max(ratios)] if ratios else None}
    times = med.get(workload, {})
    dsg, ref = times.get("dsg_lib"), reference(times, against)
    value = dsg / ref[0] if dsg is not None and ref else None
    mine = samples.get(workload, {})
    ratios = _paired(mine.get("dsg_lib", []), mine.get(ref[1], []) if ref else [])
    return {
        "value": value,
        "ref": ref[1] if ref else None,
        "spread": [min(ratios), max(ratios)] if ratios and value is not None else None,
    }


def targets(run: dict[str, Any], workloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every target that applies to this backend, with dsg_lib's measured ratio (or MB).

    A ratio target carries its per-repeat spread (min, max), and, when it was within the close
    margin and rerun (``run["confirm"]``), the rerun's ratio and spread: the rerun decides ``met``.
    """
    med, samples, dialect = run["median_s"], run.get("samples_s", {}), run.get("dialect", "")
    confirm = run.get("confirm") or {}
    rerun = {tuple(t) for t in confirm.get("targets", [])}
    rows: list[dict[str, Any]] = []

    def ratio_row(workload: str, against: str, limit: float) -> dict[str, Any]:
        first = _ratio(med, samples, workload, against)
        row = {
            "workload": workload,
            "against": against,
            "target": limit,
            "unit": "x",
            **first,
            "first_met": first["value"] is not None and first["value"] <= limit,
            "confirm": None,
        }
        if (workload, against) in rerun:
            again = _ratio(confirm.get("median_s", {}), confirm.get("samples_s", {}), workload, against)
            if again["value"] is not None:
                row["confirm"] = {**again, "repeats": confirm["repeats"], "met": again["value"] <= limit}
        row["met"] = row["confirm"]["met"] if row["confirm"] else row["first_met"]
        return row

    for w in workloads:
        for t in w["targets"]:
            if _applies(t, dialect):
                rows.append(ratio_row(w["key"], t["against"], t["limit"]))
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
                    "confirm": None,
                }
            )
    p1, deep = med.get("keyset_page1", {}).get("dsg_lib"), med.get("keyset_deep", {}).get("dsg_lib")
    if p1 and deep is not None:
        rows.append(ratio_row("keyset_deep", KEYSET_PAGE1, KEYSET_DEPTH_LIMIT))
    return rows


def refresh(results: dict[str, Any]) -> dict[str, Any]:
    """Recompute every run's targets from its times (a saved results.json made by an older
    version of the benchmark renders with today's tables)."""
    for run in results["runs"]:
        run["targets"] = targets(run, results["workloads"])
    return results


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
    confirm_repeats: int = 0,
    close_margin: float = 0.1,
) -> dict[str, Any]:
    meta = [
        {"key": w.key, "title": w.title(sizes), "call": w.call, "targets": [asdict(t) for t in w.targets]}
        for w in workloads
    ]
    for run in runs:
        run["targets"] = targets(run, meta)
    return {
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": environment(),
        "sizes": asdict(sizes),
        "quick": quick,
        "repeats": repeats,
        "stream_repeats": stream_repeats,
        "confirm_repeats": confirm_repeats,
        "close_margin": close_margin,
        "settings": settings(),
        "contenders": contenders,
        "workloads": meta,
        "runs": runs,
        "elapsed_s": elapsed,
    }


def settings() -> dict[str, Any]:
    """What every contender shares, recorded with the results (the page's method line)."""
    return {
        "pool_size": POOL_SIZE,
        "sqlite_pragmas": [p.removeprefix("PRAGMA ") for p in SQLITE_PRAGMAS],
        "rss_limit_mb": RSS_LIMIT_MB,
        "keyset_depth_limit": KEYSET_DEPTH_LIMIT,
    }


def _fmt_ms(seconds: float) -> str:
    ms = seconds * 1000.0
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


SHORT = {
    "orm": "ORM",
    "core": "Core",
    "raw": "raw",
    "tortoise": "Tortoise",
    "piccolo": "Piccolo",
    "advanced_alchemy": "adv.-alchemy",
    "fastcrud": "fastcrud",
    FAST_ORMS: "Tortoise/Piccolo",
    BY_HAND: "find+validate",
}
PEER_COLUMNS = ("orm", "core", "raw", "tortoise", "piccolo", "advanced_alchemy", "fastcrud", BY_HAND)


def _x(value: float) -> str:
    return f"{value:.2f}x"


def _spread(spread: list[float] | None) -> str:
    return f" ({spread[0]:.2f}-{spread[1]:.2f})" if spread else ""


def _goal(t: dict[str, Any]) -> str:
    if t["unit"] == "MB":
        return f"< {t['target']:g} MB"
    return f"≤ {t['target']:g}x {SHORT.get(t['against'], t['against'])}"


def _target_result(t: dict[str, Any]) -> str:
    """``≤ 0.9x ORM: pass`` / ``≤ 1x Tortoise/Piccolo: pass (rerun)`` / ``< 100 MB: **FAIL** (120.3 MB)``."""
    goal = _goal(t)
    if t["value"] is None:
        return f"{goal}: n/a"
    verdict = "pass" if t["met"] else "**FAIL**"
    if t["unit"] == "MB" and not t["met"]:
        verdict += f" ({t['value']:.1f} MB)"
    if t.get("confirm"):
        verdict += " (rerun)"
    return f"{goal}: {verdict}"


def _unsupported(run: dict[str, Any], name: str) -> bool:
    return name in run.get("unsupported", [])


def summary_table(results: dict[str, Any], run: dict[str, Any], sep: str = "; ") -> list[str]:
    """dsg_lib against every contender, per workload, with the targets and pass/fail.

    A cell is ``n/a`` when the library has no engine for this backend, ``-`` when it has no such call.
    """
    others = [n for n in PEER_COLUMNS if n in results["contenders"]]
    med, errors = run["median_s"], run["errors"]
    by_workload: dict[str, list[dict[str, Any]]] = {}
    for t in run["targets"]:
        by_workload.setdefault(t["workload"], []).append(t)
    out = [
        "| workload | dsg_lib call | dsg_lib ms | "
        + " | ".join(f"÷ {SHORT[n]}" for n in others)
        + " | target |",
        "|---|---|---:|" + "---:|" * len(others) + "---|",
    ]
    for w in results["workloads"]:
        key = w["key"]
        times = med.get(key, {})
        mine = by_workload.get(key, [])
        if not times and not mine:
            continue
        dsg = times.get("dsg_lib")
        cells = ["error" if "dsg_lib" in errors.get(key, {}) else "-"] if dsg is None else [_fmt_ms(dsg)]
        for n in others:
            if _unsupported(run, n):
                cells.append("n/a")
            elif dsg is not None and times.get(n):
                cells.append(_x(dsg / times[n]))
            else:
                cells.append("error" if n in errors.get(key, {}) else "-")
        mem = run["memory"].get(key, {}).get("dsg_lib")
        if mem is not None:
            cells[0] += f" ({mem['rss_growth_mb']:.1f} MB)"
        goal = sep.join(_target_result(t) for t in mine) or "-"
        out.append(f"| {w['title']} | `{w['call']}` | " + " | ".join(cells) + f" | {goal} |")
    return out


def _repeats(n: int) -> str:
    return f"{n} repeat" + ("" if n == 1 else "s")


def close_calls(results: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """The targets that were within the close margin and rerun: both figures, each with its spread."""
    rows = [t for t in run["targets"] if t.get("confirm")]
    if not rows:
        return []
    titles = {w["key"]: w["title"] for w in results["workloads"]}
    first, again = _repeats(results["repeats"]), _repeats(rows[0]["confirm"]["repeats"])
    out = [
        f"| workload | target | {first}: ratio (min-max) | {again}: ratio (min-max) | verdict |",
        "|---|---|---:|---:|---|",
    ]
    for t in rows:
        c = t["confirm"]
        out.append(
            f"| {titles.get(t['workload'], t['workload'])} | {_goal(t)} "
            f"| {_x(t['value'])}{_spread(t['spread'])} | {_x(c['value'])}{_spread(c['spread'])} "
            f"| {'pass' if t['met'] else '**FAIL**'} |"
        )
    return out


def peers_table(results: dict[str, Any]) -> list[str]:
    """Issue 28's view: dsg_lib's time ÷ the faster of Tortoise ORM and Piccolo, per workload and
    backend (the rerun's figure where there was one; bold: over the line)."""
    runs = [r for r in results["runs"] if r["median_s"]]
    cells: dict[str, dict[str, str]] = {}
    for run in runs:
        for t in run["targets"]:
            if t["against"] != FAST_ORMS:
                continue
            final = t["confirm"] or t
            if final["value"] is None:
                text = "n/a" if all(_unsupported(run, n) for n in FAST_ORM_NAMES) else "-"
            else:
                shown = _x(final["value"])
                text = (shown if t["met"] else f"**{shown}**") + f" {SHORT[final['ref']]}"
                if t["confirm"]:
                    text += " (rerun)"
            cells.setdefault(t["workload"], {})[run["backend"]] = text
    if not cells:
        return []
    out = [
        "| workload | dsg_lib call | " + " | ".join(r["backend"] for r in runs) + " |",
        "|---|---|" + "---:|" * len(runs),
    ]
    for w in results["workloads"]:
        if w["key"] in cells:
            row = cells[w["key"]]
            out.append(
                f"| {w['title']} | `{w['call']}` | "
                + " | ".join(row.get(r["backend"], "-") for r in runs)
                + " |"
            )
    return out


# the workloads and contenders that show what the MySQL driver changes
DRIVER_ROWS = (
    ("read_rows", "raw"),
    ("read_objects", "dsg_lib"),
    ("get_pk", "dsg_lib"),
    ("bulk_insert", "dsg_lib"),
)


def drivers_table(results: dict[str, Any]) -> list[str]:
    """MariaDB on aiomysql and on asyncmy side by side (when the run has both)."""
    runs = {r["backend"]: r for r in results["runs"]}
    aio, amy = runs.get("mariadb"), runs.get("mariadb-asyncmy")
    if not aio or not amy:
        return []
    titles = {w["key"]: w["title"] for w in results["workloads"]}
    out = [
        "| workload | contender | aiomysql ms | asyncmy ms | asyncmy ÷ aiomysql |",
        "|---|---|---:|---:|---:|",
    ]
    for key, name in DRIVER_ROWS:
        a, b = aio["median_s"].get(key, {}).get(name), amy["median_s"].get(key, {}).get(name)
        if a and b:
            out.append(f"| {titles[key]} | {LABELS[name]} | {_fmt_ms(a)} | {_fmt_ms(b)} | {_x(b / a)} |")
    return out if len(out) > 2 else []


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
            if _unsupported(run, n):
                cells.append("n/a")
            elif n in errors.get(key, {}) or n in errors.get("open", {}):
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
    reran = sum(1 for t in known if t.get("confirm"))
    return f"{sum(t['met'] for t in known)} of {len(known)} targets met" + (
        f" ({reran} decided by a rerun)" if reran else ""
    )


def caption(results: dict[str, Any]) -> str:
    if results["quick"]:
        kind = "**quick smoke run** (tiny sizes, 1 repeat: indicative only)"
    else:
        kind = f"median of {_repeats(results['repeats'])}, interleaved"
        if results.get("confirm_repeats"):
            kind += (
                f"; every target within {results['close_margin']:.0%} of its line rerun with "
                f"{results['confirm_repeats']} repeats, and the rerun decides"
            )
    env = results["environment"]
    return (
        f"`{results['command'].strip()}`, {results.get('date', '')}, {kind}; Python {env['python']}, "
        f"SQLAlchemy {env['sqlalchemy']}, {env['cpus']} CPUs. Ratios are dsg_lib's time divided by "
        "the other contender's: below 1.00x dsg_lib is faster."
    )


def versions(results: dict[str, Any]) -> str:
    env = results["environment"]
    shown = [f"{p} {env[p]}" for p in PACKAGES if env.get(p)]
    return "Versions: " + ", ".join(shown) + "."


def _calls(workloads: list[dict[str, Any]], keys: list[str]) -> str:
    calls: list[str] = []
    for w in workloads:
        if w["key"] in keys and f"`{w['call']}`" not in calls:
            calls.append(f"`{w['call']}`")
    return ", ".join(calls)


REFERENCE_TEXT = {
    "orm": "the hand-written SQLAlchemy ORM code",
    "core": "SQLAlchemy Core",
    "raw": "the raw driver",
    FAST_ORMS: "the faster of Tortoise ORM and Piccolo",
    BY_HAND: "dsg_lib's `find` then `Schema.model_validate(obj, from_attributes=True)` per object",
}


def method_lines(results: dict[str, Any]) -> list[str]:
    """The run's targets and shared settings, generated (the prose around them holds no figures)."""
    s = {**settings(), **results.get("settings", {})}
    groups: dict[tuple[str, float, tuple[str, ...]], list[str]] = {}
    for w in results["workloads"]:
        for t in w["targets"]:
            groups.setdefault((t["against"], t["limit"], tuple(t["dialects"])), []).append(w["key"])
    order = {name: i for i, name in enumerate(("orm", "core", "raw", FAST_ORMS, BY_HAND))}
    out = ["**Targets** (dsg_lib's time ÷ the reference's):", ""]
    for (against, limit, dialects), keys in sorted(groups.items(), key=lambda g: order.get(g[0][0], 9)):
        where = f" on {', '.join(dialects)}" if dialects else ""
        ref = REFERENCE_TEXT.get(against, against)
        if against == FAST_ORMS:
            out.append(f"- at most **{limit:g}x** {ref}{where}: every workload either can run;")
        else:
            out.append(f"- at most **{limit:g}x** {ref}{where}: {_calls(results['workloads'], keys)};")
    out += [
        f"- the deep keyset page at most **{s['keyset_depth_limit']:g}x** keyset page 1;",
        f"- `stream` and `insert_many` from a generator grow the process by less than "
        f"**{s['rss_limit_mb']:g} MB** RSS.",
        "",
        f"**Settings**: every server contender has a pool of **{s['pool_size']}** connections"
        f" (min = max); SQLite contenders get `{'`, `'.join(s['sqlite_pragmas'])}` where the library"
        " lets a user set them. " + versions(results),
    ]
    return out


def markdown(results: dict[str, Any]) -> str:
    out = [caption(results) + "\n"]
    peers = peers_table(results)
    if peers:
        out += ["### dsg_lib ÷ the faster of Tortoise ORM and Piccolo\n", *peers, ""]
    for run in results["runs"]:
        out.append(f"### {_heading(run)}\n")
        if "backend" in run["errors"]:
            out.append(f"Stopped early (results so far below): {run['errors']['backend']['all']}\n")
            if not run["median_s"]:
                continue
        out += [score(run) + ".\n", *summary_table(results, run), ""]
        close = close_calls(results, run)
        if close:
            out += ["Close calls, rerun:\n", *close, ""]
        out += ["All contenders, ms (ratio to raw):\n", *times_table(results, run), ""]
        shown = {(w, c): e for w, cs in run["errors"].items() for c, e in cs.items()}
        if shown:
            out.append("Errors: " + "; ".join(f"{w}/{c}: {e}" for (w, c), e in shown.items()) + "\n")
    return "\n".join(out)


def _final(t: dict[str, Any]) -> Any:
    """The deciding ratio of a target: the rerun's when there was one."""
    return (t.get("confirm") or t)["value"]


def chart_alt(results: dict[str, Any], run: dict[str, Any]) -> str:
    failed = [
        f"{t['workload']} {_final(t):.2f}{'x' if t['unit'] == 'x' else ' MB'}"
        + ("" if t["against"] in ("orm", "core", "raw") else f" vs {SHORT.get(t['against'], t['against'])}")
        for t in run["targets"]
        if t["value"] is not None and not t["met"]
    ]
    return (
        f"{run['backend']}: dsg_lib time divided by the hand-written SQLAlchemy ORM (object workloads) "
        f"or SQLAlchemy Core (Core-shaped workloads), one bar per workload, and by the faster of "
        f"Tortoise ORM and Piccolo (diamonds), {score(run)}"
        + (f"; missed: {', '.join(failed)}" if failed else "")
    )


def chart(results: dict[str, Any], run: dict[str, Any], path: str) -> bool:
    """One backend: dsg_lib's ratio to its ORM/Core reference per workload (bars, green = target met)
    and to the faster peer ORM (diamonds, target 1x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for w in results["workloads"]:
        mine = [t for t in run["targets"] if t["workload"] == w["key"] and _final(t) is not None]
        goal = next((t for t in mine if t["against"] in ("orm", "core")), None)
        peer = next((t for t in mine if t["against"] == FAST_ORMS), None)
        if goal is not None:
            bars.append((f"{w['title']}: {w['call']}", goal, peer))
    if not bars:
        return False
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(bars) + 1.3))
    ys = range(len(bars))[::-1]
    right = 1.6
    for y, (_label, t, peer) in zip(ys, bars, strict=True):
        value = _final(t)
        ax.barh(y, value, color="#2e7d32" if t["met"] else "#c62828", height=0.6)
        ax.plot([t["target"], t["target"]], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
        label, end = f"{value:.2f}x {LABELS[t['against']]}", max(value, t["target"])
        if peer is not None:
            p = _final(peer)
            ax.plot([p], [y], marker="D", markersize=5, color="#1565c0" if peer["met"] else "#ef6c00")
            label += f"; {p:.2f}x {SHORT[peer['ref']]}"
            end = max(end, p)
        ax.text(end + 0.03, y, label, va="center", fontsize=8)
        right = max(right, end * 1.45)
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([b[0] for b in bars], fontsize=8)
    ax.set_xlim(0, right)
    ax.set_xlabel(
        "dsg_lib time ÷ reference time (bars: ORM/Core, black tick = target, green = met, red = missed;"
        "\ndiamonds: faster of Tortoise and Piccolo, target 1x, blue = met, orange = missed)"
    )
    ax.set_title(
        f"{run['backend']} ({run['driver']}): dsg_lib vs hand-written ORM / SQLAlchemy Core / peer ORMs",
        fontsize=10,
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
