"""`engine dashboard`: results/*.json -> one self-contained, offline HTML page.

Charts are drawn with matplotlib (the ``dashboard`` extra) and embedded as inline SVG: no
script, no stylesheet, font or image is fetched, the page has no http(s) reference at all.
Per suite: the engine-vs-peer advantage of the latest run and the geometric mean across runs;
per scenario: absolute figures of engine and its peers (latency: percentiles and histogram),
the engine/peer ratios, and their history across runs (x = commit and date).
Standard library only at import time; matplotlib is imported by render().
"""
from __future__ import annotations

import argparse
import html
import io
import re
import sys
from pathlib import Path
from typing import Any

from . import results as R
from .results import Doc
from .suites import HarnessError, checkout

IMPL_COLORS = {"engine": "#1f77b4", "uvloop": "#ff7f0e", "asyncio": "#2ca02c"}
OTHER_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
PEER_MARKERS = ("o", "s", "^", "D", "v")
# matplotlib objects (Figure, Axes) stay untyped here: the core package must type-check without
# the dashboard extra installed
Axes = Any
History = list[tuple[str, Doc]]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0 auto;max-width:1280px;padding:1rem 1.5rem;color:#222;background:#fff}
h1{font-size:1.6rem;margin:.4rem 0}h2{font-size:1.3rem;margin-top:2rem;border-bottom:2px solid #ddd}
h3{font-size:1.05rem;margin:1.4rem 0 .3rem}p.note,.small{color:#555;font-size:.85rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.2rem .5rem;text-align:right;white-space:nowrap}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
tr.sep td{border:0;height:.4rem}thead th{background:#f4f4f4}
table.meta td,table.meta th{text-align:left;white-space:normal}
figure{margin:.4rem 0 1rem}figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:.8rem;color:#555}code{background:#f4f4f4;padding:0 .2rem}
.warn{color:#a40}
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", metavar="DIR",
                   help="results directory (default: results/ of the checkout around the cwd, "
                        "else ./results)")
    p.add_argument("--out", metavar="PATH", help="HTML file to write (default: DIR/index.html)")
    p.add_argument("--include-quick", action="store_true",
                   help="also put quick/custom runs in the history charts (default: full runs; "
                        "all runs when a suite has no full run)")
    p.add_argument("--no-readme", action="store_true",
                   help="don't refresh the latest-results table of DIR/README.md (the one "
                        "place the table lives)")
    p.add_argument("--headline", metavar="PATH",
                   help="also draw the small headline chart (SVG) for a README: engine's "
                        "geometric-mean advantage over each peer in the newest full run of "
                        "each suite, each bar labelled with its results file")
    p.add_argument("--title", default="engine benchmarks", help="page title")


def _results_dir(arg: str | None) -> Path:
    root = checkout()
    d = Path(arg) if arg else (root / "results" if root is not None else Path("results"))
    if not d.is_dir():
        raise HarnessError(f"results directory {d} does not exist (pass --results DIR)")
    return d


def main(args: argparse.Namespace) -> int:
    d = _results_dir(args.results)
    runs, problems = R.load_results(d)
    for p in problems:
        print(f"WARNING: skipped {p}", file=sys.stderr)
    if not runs:
        raise HarnessError(f"no results files in {d}: run `engine bench` first")
    out = Path(args.out) if args.out else d / "index.html"
    try:
        page = render(runs, include_quick=args.include_quick, title=args.title,
                      problems=problems)
    except ImportError as exc:
        raise HarnessError(f"the dashboard needs matplotlib ({exc}): pip install "
                           "'engine[dashboard]' (in a checkout: '.[dashboard]')") from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    nsvg = page.count("<svg")
    print(f"wrote {out} ({len(page) // 1024} KiB, {nsvg} charts, {len(runs)} runs)")
    if args.headline:
        svg = headline(runs)
        target = Path(args.headline)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(svg, encoding="utf-8")
        print(f"wrote {target} ({len(svg.encode()) // 1024} KiB)")
    readme = d / "README.md"
    if not args.no_readme and readme.exists():
        try:
            if R.update_readme(readme, runs):
                print(f"updated the latest-results table of {readme}")
        except (OSError, ValueError) as exc:
            print(f"WARNING: {exc}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- charts

class _Charts:
    def __init__(self) -> None:
        import matplotlib
        from matplotlib.figure import Figure

        self.matplotlib = matplotlib
        self.Figure = Figure
        self.n = 0

    def figure(self, ncols: int, width: float = 12.0,
               height: float = 3.3) -> tuple[Any, list[Axes]]:
        fig = self.Figure(figsize=(width, height), layout="constrained")
        axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
        return fig, axes

    def svg(self, fig: Any, label: str) -> str:
        self.n += 1
        prefix = f"c{self.n}"
        buf = io.StringIO()
        with self.matplotlib.rc_context({"svg.hashsalt": prefix, "svg.fonttype": "path"}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
        text = buf.getvalue()
        text = text[text.index("<svg"):]
        # no namespace URIs or RDF metadata: the page holds no http(s) string at all (the HTML
        # parser puts inline <svg> in the SVG namespace and maps xlink:href by itself)
        text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
        text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
        # unique ids per chart: several inline SVGs share one document
        text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', text)
        text = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', text)
        text = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", text)
        text = text.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" '
                                    f'class="chart" ', 1)
        return text


def _color(impl: str, order: list[str]) -> str:
    if impl in IMPL_COLORS:
        return IMPL_COLORS[impl]
    return OTHER_COLORS[order.index(impl) % len(OTHER_COLORS)] if impl in order else "#444"


def _fmt_axis_si(ax: Axes, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter

    f = FuncFormatter(lambda v, _: R.si(v) if v else "0")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(f)


def _history_axes(ax: Axes, labels: list[str]) -> None:
    ax.set_xticks(range(len(labels)))
    step = max(1, len(labels) // 10)
    ax.set_xticklabels([lab if i % step == 0 or i == len(labels) - 1 else ""
                        for i, lab in enumerate(labels)], rotation=30, ha="right", fontsize=7)
    if len(labels) == 1:
        ax.set_xlim(-0.5, 0.5)


def _ratio_panel(ax: Axes, sc: Doc, peers: list[str], subject: str, order: list[str]) -> None:
    vals, errs, names = [], [], []
    for peer in peers:
        r = sc["ratios"].get(peer)
        if r is None:
            continue
        names.append(peer)
        vals.append(r["value"])
        errs.append(r["value"] * r["rel_stdev"] if r.get("rel_stdev") is not None else 0.0)
    if not names:
        ax.text(0.5, 0.5, "no peer in this run", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return
    bars = ax.bar(names, vals, yerr=errs, capsize=3, color=[_color(p, order) for p in names],
                  alpha=0.85)
    ax.axhline(1.0, color="#333", lw=0.8, ls="--")
    for b, v, e in zip(bars, vals, errs, strict=True):
        ax.annotate(f"{v:.2f}x", (b.get_x() + b.get_width() / 2, v + e), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    better = "higher" if sc["higher_is_better"] else "lower"
    ax.set_ylabel(f"{subject} / peer ({better} is better)", fontsize=8)
    ax.set_title("ratio, latest run", fontsize=9)
    ax.set_ylim(0, max(v + e for v, e in zip(vals, errs, strict=True)) * 1.25)


def _history_panel(ax: Axes, hist: History, name: str, peers: list[str],
                   subject: str, order: list[str], pct: str | None = None) -> None:
    labels = [lab for lab, _ in hist]
    plotted = False
    for i, peer in enumerate(peers):
        ys = []
        for _, doc in hist:
            sc = doc["scenarios"].get(name)
            r = sc["ratios"].get(peer) if sc else None
            if r is not None and pct:
                ys.append((r.get("percentiles") or {}).get(pct, float("nan")))
            else:
                ys.append(r["value"] if r else float("nan"))
        if all(y != y for y in ys):
            continue
        ax.plot(range(len(hist)), ys, marker=PEER_MARKERS[i % len(PEER_MARKERS)],
                color=_color(peer, order), label=f"vs {peer}")
        plotted = True
    ax.axhline(1.0, color="#333", lw=0.8, ls="--")
    _history_axes(ax, labels)
    sc_any = next((d["scenarios"][name] for _, d in hist if name in d["scenarios"]), None)
    better = "higher" if (sc_any or {}).get("higher_is_better", True) else "lower"
    ax.set_ylabel(f"{subject} / peer{' ' + pct if pct else ''} ({better} better)", fontsize=8)
    ax.set_title(f"history ({len(hist)} run{'s' if len(hist) != 1 else ''})", fontsize=9)
    if plotted:
        ax.legend(fontsize=7, loc="best")
    ax.set_ylim(0, max(ax.get_ylim()[1], 1.15))


def _absolute_panel(ax: Axes, sc: Doc, impls: list[str], order: list[str]) -> None:
    names = [i for i in impls if i in sc["impls"]]
    vals = [sc["impls"][i]["value"] for i in names]
    if sc["kind"] == "throughput":
        errs = [sc["impls"][i]["value"] * (sc["impls"][i].get("rel_stdev") or 0) for i in names]
        _fmt_axis_si(ax)
    else:
        errs = [sc["impls"][i].get("stdev") or 0 for i in names]
    ax.bar(names, vals, yerr=errs, capsize=3, color=[_color(i, order) for i in names])
    for x, (v, e) in enumerate(zip(vals, errs, strict=True)):
        ax.annotate(R.si(v) if sc["kind"] == "throughput" else R.num(v), (x, v + e), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    top = max(v + e for v, e in zip(vals, errs, strict=True)) * 1.2
    thr = sc.get("threshold")
    if thr is not None and thr < top * 3:
        ax.axhline(thr, color="#c00", lw=0.8, ls=":", label="threshold")
        ax.legend(fontsize=7)
        top = max(top, thr * 1.1)
    better = "higher" if sc["higher_is_better"] else "lower"
    ax.set_ylabel(f"{sc['unit']} ({better} is better)", fontsize=8)
    ax.set_title("latest run", fontsize=9)
    ax.set_ylim(0, top or 1)


def _latency_panels(ax_pct: Axes, ax_hist: Axes, sc: Doc, impls: list[str],
                    order: list[str]) -> None:
    import numpy as np

    names = [i for i in impls if i in sc["impls"]]
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(R.PERCENTILES))
    for k, impl in enumerate(names):
        pv = [sc["impls"][impl]["percentiles"][p] for p in R.PERCENTILES]
        ax_pct.bar(x + (k - (len(names) - 1) / 2) * width, pv, width, label=impl,
                   color=_color(impl, order))
    ax_pct.set_xticks(x)
    ax_pct.set_xticklabels(R.PERCENTILES)
    ax_pct.set_ylabel(f"{sc['unit']} (lower is better)", fontsize=8)
    ax_pct.set_title("percentiles, latest run", fontsize=9)
    ax_pct.legend(fontsize=7)
    log = False
    for impl in names:
        h = sc["impls"][impl]["histogram"]
        edges, counts = h["edges"], h["counts"]
        total = sum(counts) or 1
        ax_hist.stairs([c / total for c in counts], edges, color=_color(impl, order),
                       label=impl, lw=1.4)
        log = log or h.get("scale") == "log"
    if log:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax_hist.set_xscale("log")
        ax_hist.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax_hist.xaxis.set_major_formatter(FuncFormatter(lambda v, _: R.num(v)))
        ax_hist.xaxis.set_minor_formatter(NullFormatter())
    ax_hist.set_xlabel(sc["unit"], fontsize=8)
    ax_hist.set_ylabel("fraction of samples", fontsize=8)
    ax_hist.set_title("histogram, latest run", fontsize=9)
    ax_hist.legend(fontsize=7)


def _overview(charts: _Charts, latest_doc: Doc, hist: History,
              order: list[str]) -> str:
    subject, peers = latest_doc["subject"], latest_doc["peers"]
    names = list(latest_doc["scenarios"])
    fig, (ax, ax2) = charts.figure(2, height=max(2.8, 0.42 * len(names) + 1.2))
    import numpy as np

    y = np.arange(len(names))
    h = 0.8 / max(len(peers), 1)
    xs_all = []
    for k, peer in enumerate(peers):
        xs = [(latest_doc["scenarios"][n]["ratios"].get(peer) or {}).get("advantage", np.nan)
              for n in names]
        xs_all += [v for v in xs if v == v]
        ax.barh(y + (k - (len(peers) - 1) / 2) * h, xs, h, label=f"vs {peer}",
                color=_color(peer, order))
    ax.axvline(1.0, color="#333", lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels([latest_doc["scenarios"][n]["label"] for n in names], fontsize=8)
    ax.invert_yaxis()
    if xs_all and max(xs_all) / min(xs_all) > 8:
        ax.set_xscale("log")
    ax.set_xlabel(f"{subject} advantage (> 1 = {subject} better)", fontsize=8)
    ax.set_title("advantage per scenario, latest run", fontsize=9)
    ax.legend(fontsize=7)
    labels = [lab for lab, _ in hist]
    for k, peer in enumerate(peers):
        ys = [((d.get("geomean") or {}).get(peer) or {}).get("value") or np.nan for _, d in hist]
        ax2.plot(range(len(hist)), ys, marker=PEER_MARKERS[k % len(PEER_MARKERS)],
                 color=_color(peer, order), label=f"vs {peer}")
    ax2.axhline(1.0, color="#333", lw=0.8, ls="--")
    _history_axes(ax2, labels)
    ax2.set_ylim(0, max(ax2.get_ylim()[1], 1.15))
    ax2.set_ylabel(f"geomean {subject} / peer (throughput)", fontsize=8)
    ax2.set_title(f"geometric mean, history ({len(hist)} run{'s' if len(hist) != 1 else ''})",
                  fontsize=9)
    ax2.legend(fontsize=7)
    return charts.svg(fig, f"{latest_doc['suite']}: advantage per scenario and geomean history")


def _scenario_chart(charts: _Charts, name: str, doc: Doc, hist: History,
                    order: list[str]) -> str:
    sc = doc["scenarios"][name]
    impls = R.impl_order(doc)
    if sc["kind"] == "latency":
        fig, (a1, a2, a3, a4) = charts.figure(4, width=15.0)
        _latency_panels(a1, a2, sc, impls, order)
        _ratio_panel(a3, sc, doc["peers"], doc["subject"], order)
        a3.set_title("ratio of p50, latest run", fontsize=9)
        _history_panel(a4, hist, name, doc["peers"], doc["subject"], order, pct="p50")
    else:
        fig, (a1, a2, a3) = charts.figure(3)
        _absolute_panel(a1, sc, impls, order)
        _ratio_panel(a2, sc, doc["peers"], doc["subject"], order)
        _history_panel(a3, hist, name, doc["peers"], doc["subject"], order)
    fig.suptitle(f"{sc['label']} ({sc['kind']})", fontsize=10, fontweight="bold")
    return charts.svg(fig, f"{doc['suite']} {name}: {sc['label']}")


# --------------------------------------------------------------------------- headline

def headline_bars(runs: list[tuple[Path, Doc]]) -> list[tuple[str, str, str, float]]:
    """(suite, peer, results file name, geomean advantage) of the newest full run of each
    suite, for each peer with a geometric mean; variants of the subject itself (e.g.
    engine-nopoll) are not peers here, and a suite whose subject is a variant of engine (the
    backends A/B: engine-io_uring) is engine against itself, not part of the headline."""
    bars = []
    order = {"loop": 0, "net": 1, "http": 2}           # bottom of the stack up; others after
    for suite in sorted({doc["suite"] for _, doc in runs}, key=lambda x: (order.get(x, 9), x)):
        found = R.latest(runs, suite, ("full",))
        if found is None:
            continue
        path, doc = found
        if doc["subject"].startswith("engine-"):
            continue
        for peer in doc["peers"]:
            g = (doc.get("geomean") or {}).get(peer) or {}
            if g.get("value") and not peer.startswith(doc["subject"] + "-"):
                bars.append((suite, peer, path.name, float(g["value"])))
    return bars


def headline(runs: list[tuple[Path, Doc]], subject: str = "engine") -> str:
    """One small standalone SVG: a horizontal bar per (suite, peer) from headline_bars()."""
    import matplotlib
    from matplotlib.figure import Figure

    bars = headline_bars(runs)
    if not bars:
        raise HarnessError("no full run with a geometric mean: nothing for the headline chart")
    suites = list(dict.fromkeys(b[0] for b in bars))
    colors = dict(zip(suites, ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"),
                      strict=False))
    fig = Figure(figsize=(7.0, 0.32 * len(bars) + 1.5), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    y = list(range(len(bars)))
    ax.barh(y, [b[3] for b in bars], color=[colors.get(b[0], "#444") for b in bars])
    for yi, b in zip(y, bars, strict=True):
        ax.annotate(f"{b[3]:.2f}x", (b[3], yi), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.axvline(1.0, color="#333", lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{b[0]}: vs {b[1]}" for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(b[3] for b in bars) * 1.15)
    ax.set_xlabel(f"{subject} advantage, geometric mean of the throughput scenarios "
                  f"(> 1 = {subject} faster)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    files = {b[0]: b[2] for b in bars}
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=colors.get(s, "#444"), label=f"results/{files[s]}")
                       for s in suites], fontsize=7, loc="best", title_fontsize=7,
              title="newest full run of each suite")
    ax.set_title(f"{subject} vs its peers (same machine, same run per suite)", fontsize=9)
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "headline", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


# --------------------------------------------------------------------------- page

def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _html_table(doc: Doc) -> str:
    head, rows = R.table_rows(doc)
    out = ["<table class='results'><thead><tr>"
           + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        if r is None:
            out.append(f"<tr class='sep'><td colspan='{len(head)}'></td></tr>")
        else:
            out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _meta_table(path: Path, doc: Doc) -> str:
    m = doc["meta"]
    git = m.get("git") or {}
    impls = ", ".join(f"{k} {v.get('version')}" for k, v in (m.get("impls") or {}).items())
    pin = ", ".join(f"{k}={v}" for k, v in (m.get("pinning") or {}).items()) or "none"
    rows = [
        ("file", path.name), ("mode", doc["mode"]), ("date (UTC)", m["date"]),
        ("commit", f"{git.get('describe') or git.get('commit')} ({git.get('branch')})"
         + (" — uncommitted changes" if git.get("dirty") else "")),
        ("CPU", f"{m.get('cpu_model')} ({m.get('cpu_count')} CPUs), pinning {pin}"),
        ("kernel", m["kernel"]), ("Python", f"{m['python_version']} "
                                            f"({m.get('python_implementation')})"),
        ("implementations", impls), ("command", doc.get("command")),
    ]
    return ("<table class='meta'>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
                                             for k, v in rows) + "</table>")


def _runs_table(runs: list[tuple[Path, Doc]]) -> str:
    out = ["<table class='runs'><thead><tr><th>file</th><th>suite</th><th>mode</th>"
           "<th>commit</th><th>date (UTC)</th><th>CPU</th><th>Python</th><th>geomean</th>"
           "</tr></thead><tbody>"]
    for path, doc in reversed(runs):
        geo = ", ".join(f"vs {p} {g['value']:.2f}x" for p, g in (doc.get("geomean") or {}).items()
                        if g and g.get("value"))
        git = doc["meta"].get("git") or {}
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in (
            path.name, doc["suite"], doc["mode"],
            (git.get("short") or "?") + ("+" if git.get("dirty") else ""),
            doc["meta"]["date"], doc["meta"].get("cpu_model"), doc["meta"]["python_version"],
            geo or "n/a")) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render(runs: list[tuple[Path, Doc]], *, include_quick: bool = False,
           title: str = "engine benchmarks", problems: list[str] | None = None) -> str:
    charts = _Charts()
    suites = sorted({doc["suite"] for _, doc in runs})
    body = [f"<h1>{_e(title)}</h1>",
            f"<p class='note'>{len(runs)} result file(s), suites: {_e(', '.join(suites))}. "
            "Newest run first in the list at the bottom. Regenerate with "
            "<code>engine dashboard</code>; new runs with <code>engine bench</code> "
            "(results/README.md).</p>"]
    toc = []
    sections = []
    for suite in suites:
        srun = [(p, d) for p, d in runs if d["suite"] == suite]
        found = R.latest(srun, suite, ("full",)) or R.latest(srun, suite, R.MODES)
        assert found is not None          # srun holds at least one run of this suite
        path, doc = found
        modes = R.MODES if include_quick else ("full",)
        hist_runs = [(p, d) for p, d in srun if d["mode"] in modes] or srun
        hist = [(R.short_label(d), d) for _, d in hist_runs]
        order = R.impl_order(doc)
        anchor = f"suite-{R.slug(suite)}"
        toc.append(f"<li><a href='#{anchor}'>{_e(suite)}</a></li>")
        s = [f"<h2 id='{anchor}'>suite {_e(suite)}</h2>"]
        if doc.get("suite_description"):
            s.append(f"<p>{_e(doc['suite_description'])}</p>")
        if doc["mode"] != "full":
            s.append(f"<p class='warn'>No full run of this suite: the latest run is a "
                     f"{_e(doc['mode'])} run (rough numbers).</p>")
        s.append(_meta_table(path, doc))
        s.append(_html_table(doc))
        s.append("<p class='small'>" + "<br>".join(_e(n) for n in R.table_notes(doc)) + "</p>")
        s.append("<figure>" + _overview(charts, doc, hist, order)
                 + "<figcaption>Left: advantage of the latest run per scenario and peer "
                   "(throughput: engine/peer; latency and cost: peer/engine). Right: geometric "
                   "mean of the throughput ratios across runs.</figcaption></figure>")
        for name, sc in doc["scenarios"].items():
            s.append(f"<h3 id='{anchor}-{R.slug(name)}'>{_e(sc['label'])} "
                     f"<span class='small'>({_e(name)}, {_e(sc['kind'])})</span></h3>")
            if sc.get("description"):
                s.append(f"<p class='small'>{_e(sc['description'])}</p>")
            s.append("<figure>" + _scenario_chart(charts, name, doc, hist, order) + "</figure>")
        sections.append("\n".join(s))
    body.append("<ul>" + "".join(toc) + "<li><a href='#runs'>all runs</a></li></ul>")
    body += sections
    body.append("<h2 id='runs'>all runs</h2>")
    body.append(_runs_table(runs))
    if problems:
        body.append("<h3>skipped files</h3><ul>"
                    + "".join(f"<li class='warn'>{_e(p)}</li>" for p in problems) + "</ul>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


if __name__ == "__main__":   # pragma: no cover
    p = argparse.ArgumentParser()
    add_arguments(p)
    sys.exit(main(p.parse_args()))
