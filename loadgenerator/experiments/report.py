"""An experiment's report: ``results.json`` (every number), ``report.md``, ``report.html`` and
``timeline.png`` (latency and errors over time, the phases shaded)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from . import measure
from .runner import Outcome

CHART = "timeline.png"
SHADE = {"steady": "#e8f0e8", "fault": "#f6dcdc", "recovery": "#e3e9f5"}
COLUMNS = ("requests", "error rate", "p50", "p95", "p99")


def write(outcome: Outcome) -> dict[str, Path]:
    out = outcome.results
    paths = {
        "json": out / "results.json",
        "md": out / "report.md",
        "html": out / "report.html",
        "chart": out / CHART,
    }
    paths["json"].write_text(json.dumps(as_json(outcome), indent=2) + "\n")
    chart(outcome, paths["chart"])
    paths["md"].write_text(markdown(outcome))
    paths["html"].write_text(as_html(outcome))
    return paths


def as_json(o: Outcome) -> dict[str, Any]:
    exp = o.experiment
    return {
        "experiment": exp.name,
        "fault": exp.fault_text(),
        "target": o.target.kind,
        "how": o.target.how,
        "expected": exp.expected,
        "verdict": o.verdict,
        "phases": [{"name": w.name, "start": w.start, "end": w.end} for w in o.windows],
        "hypotheses": [v.__dict__ for v in o.verdicts],
        "shoppers": o.shoppers,
        "envoy": o.envoy,
        "books": o.books,
        "traces": o.traces,
        "settle_s": round(o.settle_s, 2),
    }


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric.endswith("error rate"):
        return f"{value:.2f}%"
    if metric.split()[-1] in ("p50", "p95", "p99"):
        return f"{value:.0f}"
    return f"{value:g}"


def tables(o: Outcome) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) for the report's tables."""
    verdicts = [[v.text, v.shown, "held" if v.held else "**broken**"] for v in o.verdicts]
    groups = [g for g in ("shoppers", *measure.GROUP_PREFIX, "pages")
              if any(o.shoppers[w.name].get(f"{g} requests") for w in o.windows)]  # fmt: skip
    shoppers = [
        [w.name, g, *(_fmt(f"{g} {c}", o.shoppers[w.name].get(f"{g} {c}")) for c in COLUMNS)]
        for g in groups
        for w in o.windows
    ]
    counters = list(next(iter(o.envoy.values())))
    envoy = [[w.name, *(_fmt(c, o.envoy[w.name].get(c)) for c in counters)] for w in o.windows]
    books = [[k, "not readable here" if v is None else f"{v:g}"] for k, v in o.books.items()]
    traces = [[t["trace_id"], t["flag"], t["span"], t["status"], f"{t['ms']:g}"] for t in o.traces]
    return [
        ("Hypotheses", ["hypothesis", "measured", "verdict"], verdicts),
        ("Shoppers per phase (ms)", ["phase", "group", *COLUMNS], shoppers),
        (f"Envoy's counters per phase (for {o.experiment.destination})", ["phase", *counters],
         envoy),
        ("The books, after recovery", ["check", "value"], books),
        ("Example traces showing the fault", ["trace", "flag", "span", "status", "ms"], traces),
    ]  # fmt: skip


def markdown(o: Outcome) -> str:
    exp = o.experiment
    expectation = "as expected" if o.verdict == exp.expected else f"expected {exp.expected}"
    lines = [
        f"# Experiment {exp.name}: {o.verdict.upper()} ({expectation})",
        "",
        f"{exp.description}",
        "",
        f"- fault: {exp.fault_text()}",
        f"- load: {exp.load.users} shoppers (+{exp.load.page_probers} on the pages), phases "
        + ", ".join(f"{w.name} {w.end - w.start:g} s" for w in o.windows),
        f"- target: {o.target.kind} ({o.target.how})",
        f"- what it teaches: {exp.teaches}",
        "",
        f"![latency and errors over time]({CHART})",
        "",
    ]
    for title, headers, rows in tables(o):
        lines += [f"## {title}", ""]
        if not rows:
            lines += ["none found", ""]
            continue
        lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    if o.traces and o.target.traces_url:
        lines += ["Open a trace: " + ", ".join(f"[{t['trace_id'][:8]}]({t['url']})"
                                               for t in o.traces), ""]  # fmt: skip
    if exp.notes:
        lines += ["## Notes", "", exp.notes, ""]
    return "\n".join(lines)


def as_html(o: Outcome) -> str:
    exp = o.experiment
    esc = html.escape
    body = [
        f"<h1>Experiment {esc(exp.name)}: "
        f"<span class='{o.verdict}'>{o.verdict.upper()}</span></h1>",
        f"<p>{esc(exp.description)} <em>Expected: {exp.expected}.</em></p>",
        f"<p><b>Fault:</b> {esc(exp.fault_text())}. <b>Target:</b> {esc(o.target.how)}.</p>",
        f"<p><b>What it teaches:</b> {esc(exp.teaches)}</p>",
        f"<img src='{CHART}' alt='latency and errors over time, phases shaded'>",
    ]
    links = {t["trace_id"]: t["url"] for t in o.traces}
    for title, headers, rows in tables(o):
        body.append(f"<h2>{esc(title)}</h2>")
        if not rows:
            body.append("<p>none found</p>")
            continue
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        cells = []
        for r in rows:
            tds = []
            for c in r:
                text = esc(c.replace("**", ""))
                if c in links:
                    text = f"<a href='{esc(links[c])}'>{text}</a>"
                cls = " class='broken'" if c == "**broken**" else ""
                tds.append(f"<td{cls}>{text}</td>")
            cells.append("<tr>" + "".join(tds) + "</tr>")
        body.append(f"<table><tr>{head}</tr>{''.join(cells)}</table>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}.held{color:#17733a}.broken{color:#b3261e;font-weight:bold}"
        "img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(exp.name)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def chart(o: Outcome, path: Path) -> None:
    """Per-bucket p95 latency (top) and errors (bottom) over time, each phase shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0, t1 = o.windows[0].start, o.windows[-1].end
    step = max(0.5, (t1 - t0) / 120)
    n = max(1, math.ceil((t1 - t0) / step))
    buckets: list[list[measure.Request]] = [[] for _ in range(n)]
    for r in o.requests:
        i = int((r.t - t0) // step)
        if 0 <= i < n:
            buckets[i].append(r)
    xs = [i * step for i in range(n)]
    p95 = [measure.percentile(sorted(r.ms for r in b), 95) for b in buckets]
    errors = [sum(1 for r in b if not r.ok) / step for b in buckets]
    ok = [sum(1 for r in b if r.ok) / step for b in buckets]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    for ax in (top, bottom):
        for w in o.windows:
            ax.axvspan(w.start - t0, w.end - t0, color=SHADE.get(w.name, "#eee"), lw=0)
    for w in o.windows:
        top.text((w.start + w.end) / 2 - t0, 1.01, w.name, transform=top.get_xaxis_transform(),
                 ha="center", va="bottom", fontsize=9)  # fmt: skip
    top.plot(xs, [math.nan if v is None else v for v in p95], color="#333", lw=1.2)
    top.set_ylabel("p95 latency (ms)")
    bottom.plot(xs, ok, color="#17733a", lw=1, label="succeeded / s")
    bottom.plot(xs, errors, color="#b3261e", lw=1.4, label="failed / s")
    bottom.set_ylabel("requests / s")
    bottom.set_xlabel("seconds since the start")
    bottom.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{o.experiment.name}: {o.experiment.fault_text()}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
