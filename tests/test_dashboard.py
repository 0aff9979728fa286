"""`engine dashboard`: the page is self-contained and offline, and it renders in headless
Chromium without console errors, with every chart drawn (screenshot saved in tmp_path); the
headline chart (`--headline`) is one small SVG labelled with the results files it came from;
the latest-results table is written into the results directory's README.md only.

Needs matplotlib + selenium (the test extra) and Debian's chromium + chromium-driver
(`apt-get install -y chromium chromium-driver`; .ci/run installs them). A missing browser is a
failure with that command, not a skip.
"""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from harness_data import make_doc, make_results_dir

from engine.bench import dashboard
from engine.bench import results as R

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver",)
REPO = Path(__file__).resolve().parents[1]
HEADLINE_MAX = 100 * 1024          # the committed chart stays small
INSTALL = ("install it with: apt-get update && apt-get install -y chromium chromium-driver "
           "(and pip install '.[test]' for selenium)")


def render_dir(tmp_path: Path, n_full: int = 4) -> tuple[Path, str]:
    d = tmp_path / "results"
    make_results_dir(d, n_full=n_full)
    runs, problems = R.load_results(d)
    page = dashboard.render(runs, problems=problems)
    out = d / "index.html"
    out.write_text(page, encoding="utf-8")
    return out, page


# --------------------------------------------------------------------------- static checks

def test_page_is_self_contained(tmp_path):
    _, page = render_dir(tmp_path)
    assert page.startswith("<!DOCTYPE html>")
    # no network reference of any kind: no URL, no external script/style/font/image
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"""\bsrc\s*=""", page)
    # charts: one overview + one per scenario (4) for the single suite
    assert page.count("<svg") == 5
    # ids stay unique although several matplotlib SVGs share the document
    ids = Counter(re.findall(r'\bid="([^"]+)"', page))
    assert ids and max(ids.values()) == 1, ids.most_common(3)
    refs = set(re.findall(r'href="#([^"]+)"', page)) | set(re.findall(r"url\(#([^)]+)\)", page))
    assert refs and refs <= set(ids), sorted(refs - set(ids))[:5]
    for s in ("suite loop", "call_soon chain", "threadsafe wake-up", "idle loop CPU",
              "Synthetic CPU", "loop-broken.json", "all runs", "geometric mean"):
        assert s in page, s


def test_dashboard_cli_writes_page_and_readme(tmp_path):
    d = tmp_path / "results"
    make_results_dir(d, n_full=2)
    out = tmp_path / "site" / "dash.html"
    r = subprocess.run([sys.executable, "-m", "engine", "dashboard", "--results", str(d),
                        "--out", str(out)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    assert out.exists() and out.read_text().count("<svg") == 5
    assert "WARNING: skipped loop-broken.json" in r.stderr
    readme = (d / "README.md").read_text()
    assert "old table" not in readme and "| call_soon chain | calls/s |" in readme
    assert "](loop-20260102T120000Z-aaaaaa1.json)" in readme     # links relative to it
    # the table has one home: no option writes it into another Markdown file
    top = tmp_path / "TOP.md"
    top.write_text(f"# top\n{R.README_START}\n{R.README_END}\n")
    r = subprocess.run([sys.executable, "-m", "engine", "dashboard", "--results", str(d),
                        "--readme", str(top)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 2 and "--readme" in r.stderr
    assert top.read_text() == f"# top\n{R.README_START}\n{R.README_END}\n"


def _bars(svg: str) -> list[str]:
    """The y tick labels of a headline SVG (``suite: vs peer``), top to bottom."""
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    return [t for t in texts if ": vs " in t]


def test_headline_chart(tmp_path):
    d = tmp_path / "results"
    make_results_dir(d, n_full=2)                      # loop: 2 full runs + a newer quick one
    R.write_result(make_doc(1, suite="net"), d)
    svg_path = tmp_path / "charts" / "headline.svg"
    r = subprocess.run([sys.executable, "-m", "engine", "dashboard", "--results", str(d),
                        "--out", str(tmp_path / "page.html"), "--no-readme",
                        "--headline", str(svg_path)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    svg = svg_path.read_text()
    assert svg_path.stat().st_size < HEADLINE_MAX
    assert "<script" not in svg and "<image" not in svg
    # a bar per (suite, peer) of the newest FULL run of each suite, labelled with its file
    assert _bars(svg) == ["loop: vs uvloop", "loop: vs asyncio",
                          "net: vs uvloop", "net: vs asyncio"]
    runs, _ = R.load_results(d)
    newest_loop = R.latest(runs, "loop")[0].name
    assert newest_loop == "loop-20260102T120000Z-aaaaaa1.json"
    assert f"results/{newest_loop}" in svg and "results/net-20260102T120000Z-aaaaaa1.json" in svg
    assert "-quick.json" not in svg
    bars = {(s, p): v for s, p, _, v in dashboard.headline_bars(runs)}
    doc = R.load_result(d / newest_loop)
    assert bars["loop", "uvloop"] == pytest.approx(doc["geomean"]["uvloop"]["value"])
    assert f"{bars['loop', 'asyncio']:.2f}x" in svg
    # a variant of the subject (engine-nopoll) is not a peer of the headline
    doc["peers"].append("engine-nopoll")
    doc["geomean"]["engine-nopoll"] = {"value": 1.1, "scenarios": ["call_soon"]}
    assert ("loop", "engine-nopoll") not in {
        (s, p) for s, p, _, _ in dashboard.headline_bars([(d / newest_loop, doc)])}
    # nor is a suite whose subject is a variant of engine (the io_uring/epoll A/B)
    variant = dict(doc, suite="backends", subject="engine-io_uring",
                   peers=["engine-epoll", "uvloop"])
    assert dashboard.headline_bars([(d / "backends-x.json", variant)]) == []


def test_committed_headline_is_small_and_current():
    """results/headline.svg (for the READMEs) shows the newest full runs committed in results/."""
    svg_path = REPO / "results" / "headline.svg"
    assert svg_path.stat().st_size < HEADLINE_MAX
    runs, _ = R.load_results(REPO / "results")
    bars = dashboard.headline_bars(runs)
    svg = svg_path.read_text()
    assert _bars(svg) == [f"{s}: vs {p}" for s, p, _, _ in bars]
    for _, _, name, value in bars:
        assert f"results/{name}" in svg and f"{value:.2f}x" in svg
    assert not (REPO / "results" / "index.html").exists() or \
        "results/index.html" in (REPO / ".gitignore").read_text()


def test_dashboard_without_results_is_an_error(tmp_path):
    (tmp_path / "results").mkdir()
    r = subprocess.run([sys.executable, "-m", "engine", "dashboard", "--results",
                        str(tmp_path / "results")], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "no results files" in r.stderr


# --------------------------------------------------------------------------- headless Chromium

def _which(names):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = _which(CHROMIUM), _which(DRIVER)
    if not chromium or not driver_path:
        pytest.fail(f"headless Chromium is needed for this test and was not found: {INSTALL}",
                    pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed: {INSTALL}", pytrace=False)
    opts = Options()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--disable-extensions", "--no-first-run",
              "--disable-background-networking", "--disable-component-update"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver + browser: Selenium Manager never goes online
    drv = webdriver.Chrome(options=opts, service=Service(driver_path))
    try:
        yield drv
    finally:
        drv.quit()


def _errors(log):
    return [e for e in log if e.get("level") == "SEVERE"]


def test_console_error_detection_works(browser, tmp_path):
    """The check below would see an error: a page that throws is reported."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><title>x</title><script>throw new Error('boom')</script>")
    browser.get(bad.as_uri())
    errs = _errors(browser.get_log("browser"))
    assert any("boom" in e["message"] for e in errs), errs


def test_dashboard_renders_in_chromium(browser, tmp_path):
    out, page = render_dir(tmp_path)
    browser.get_log("browser")                        # drop entries of earlier pages
    browser.get(out.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.title == "engine benchmarks"
    errs = _errors(browser.get_log("browser"))
    assert not errs, errs
    # offline: the page loaded nothing besides itself
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    charts = browser.execute_script("""
        return Array.from(document.querySelectorAll('svg.chart')).map(function (s) {
            var r = s.getBoundingClientRect();
            return {w: r.width, h: r.height, label: s.getAttribute('aria-label'),
                    shapes: s.querySelectorAll('path, use, rect').length};
        });""")
    assert len(charts) == page.count("<svg") == 5
    for c in charts:
        assert c["w"] > 300 and c["h"] > 150, c
        assert c["shapes"] > 20, c                    # axes, bars, glyphs were drawn
    tables = browser.execute_script("return document.querySelectorAll('table.results tr').length")
    assert tables > 5
    # full-page screenshot into the test's temp dir
    height = browser.execute_script("return document.documentElement.scrollHeight")
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1400, "height": height, "scale": 1}})
    png = tmp_path / "dashboard.png"
    png.write_bytes(base64.b64decode(shot["data"]))
    assert png.stat().st_size > 50_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {png}")


def test_headline_renders_in_chromium(browser, tmp_path):
    d = tmp_path / "results"
    make_results_dir(d, n_full=2)
    runs, _ = R.load_results(d)
    svg = tmp_path / "headline.svg"
    svg.write_text(dashboard.headline(runs), encoding="utf-8")
    browser.get_log("browser")
    browser.get(svg.as_uri())
    assert not _errors(browser.get_log("browser"))
    box = browser.execute_script("""
        var s = document.documentElement, r = s.getBoundingClientRect();
        return {tag: s.tagName, w: r.width, h: r.height,
                bars: s.querySelectorAll('path, rect').length,
                text: s.querySelectorAll('text').length};""")
    assert box["tag"] == "svg" and box["w"] > 300 and box["h"] > 100, box
    assert box["bars"] > 10 and box["text"] > 5, box
