"""What MLflow's UI shows of WordNet's runs, seen in a real browser (headless Chromium).

    python tools/ui_check.py --out ui-shots/

starts an MLflow server on a free loopback port with a new store, logs three
quick runs at different learning rates and a two-run sweep to it through the
command line, then opens, in Chromium through Selenium, the experiment's runs
page, a run's page and its charts, the compare page of the three runs, the
sweep's parent and the logged model's page.  It saves a screenshot of each
into --out and prints what it read from the pages: the run names, the
description, which charts are bar charts and which line charts.

Needs Chromium and its driver (Debian: ``apt-get install chromium
chromium-driver``) and Selenium (in the test extras).  tests/test_ui.py runs
the same checks (marked ``browser``).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
RECIPE = ["--pipeline", "quick", "--set", "early_stop=1500", "--set", "validation_period=500"]
RATES = ("0.05", "0.2", "0.5")
PAGE_TIMEOUT = 60            # seconds a page may take to draw its charts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(folder: Path, timeout: float = 120):
    """An MLflow server on loopback with a new SQLite store in ``folder``; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = open(folder / "server.log", "wb")
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the MLflow server did not answer at {url} within "
                                       f"{timeout:.0f} s; see {folder / 'server.log'}")
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=40)            # it drains its workers first
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
        log.close()


def log_runs(url: str, folder: Path) -> None:
    """Three quick runs at different learning rates, and a sweep of two."""
    cli = [str(BIN / "wordnet-pipeline")]
    common = ["--tracking-uri", url, "--experiment", "ui-check"]
    for lr in RATES:
        subprocess.run(cli + ["run", "--stage", "train", "--stage", "validate", "--stage", "test",
                              *RECIPE, "--set", f"learning_rate={lr}", "--out",
                              str(folder / f"lr{lr}"), *common],
                       check=True, capture_output=True, timeout=600)
    subprocess.run(cli + ["sweep", "--pipeline", "quick", "--set", "hidden_size=50,100",
                          "--set", "early_stop=300", "--out", str(folder / "sweep"), *common],
                   check=True, capture_output=True, timeout=600)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1200"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    return webdriver.Chrome(options=options, service=Service(DRIVER))


# Scroll the charts' scrolling container (the first scrollable ancestor of a chart)
# by most of a screen, or back to the top; whether it moved.
SCROLL_JS = """
let box = document.querySelector('.js-plotly-plot');
while (box && !(box.scrollHeight > box.clientHeight + 10 &&
                ['auto', 'scroll'].includes(getComputedStyle(box).overflowY))) box = box.parentElement;
box = box || document.scrollingElement;
const before = box.scrollTop;
box.scrollTop = arguments[0] ? 0 : before + box.clientHeight * 0.8;
return box.scrollTop != before;"""

# For each drawn chart: its title (the first line of its card that is neither the
# plot's own text nor its legend, which starts with the run's name, arguments[0]), and
# the plotly bars and line paths in it.
CHARTS_JS = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => {
  const own = new Set(p.innerText.split('\\n').map(s => s.trim()));
  let card = p, title = '';
  for (let i = 0; i < 10 && card.parentElement && !title; i++) {
    card = card.parentElement;
    title = card.innerText.split('\\n').map(s => s.trim())
                .find(s => s && !own.has(s) && !s.startsWith(arguments[0])) || '';
  }
  return {title: title,
          bars: p.querySelectorAll('.barlayer .point').length,
          lines: p.querySelectorAll('.scatterlayer .trace .lines path').length};
});"""


def charts(driver, expected: set, run_name: str) -> dict[str, list[str]]:
    """{chart title: its kinds, "bar" or "line"} of the page's charts (a title is the name
    after the group: test/ce and valid/ce are both "ce"), read while scrolling through
    them (the UI draws charts as they come into view, and may drop those that leave);
    waits until the ``expected`` (title, kind) pairs were seen, or PAGE_TIMEOUT."""
    deadline, seen = time.monotonic() + PAGE_TIMEOUT, set()
    while not expected <= seen and time.monotonic() < deadline:
        time.sleep(1.5)                                 # let the visible ones draw
        for chart in driver.execute_script(CHARTS_JS, run_name):
            if chart["bars"] or chart["lines"]:
                seen.add((chart["title"], "bar" if chart["bars"] else "line"))
        if not driver.execute_script(SCROLL_JS, False):  # at the bottom: from the top again
            driver.execute_script(SCROLL_JS, True)
    kinds = {}
    for title, kind in sorted(seen):
        kinds.setdefault(title, []).append(kind)
    return kinds


def logged_charts(client, run) -> dict[str, list[str]]:
    """{chart title: kinds} as the run's metrics should be drawn: a line where a metric has
    points at steps of 1 and more, a bar where its one point is at step 0."""
    kinds = {}
    for key in run.data.metrics:
        steps = {m.step for m in client.get_metric_history(run.info.run_id, key)}
        kinds.setdefault(key.split("/")[-1], set()).add("line" if max(steps) >= 1 else "bar")
    return {title: sorted(k) for title, k in sorted(kinds.items())}


def wait_for_text(driver, text: str) -> str:
    """The page's text, once it contains ``text`` (or PAGE_TIMEOUT is over)."""
    deadline = time.monotonic() + PAGE_TIMEOUT
    while True:
        body = driver.find_element("tag name", "body").text
        if text in body or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def look(url: str, out: Path) -> dict:
    """Visit the pages, save their screenshots in ``out``; what they show, as a dict."""
    from mlflow import MlflowClient
    client = MlflowClient(url)
    [experiment] = [e for e in client.search_experiments() if e.name == "ui-check"]
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    singles = [r for name, r in runs.items() if name.startswith("lr=")]
    parent = next(r for name, r in runs.items() if name.startswith("sweep "))
    base = f"{url}/#/experiments/{experiment.experiment_id}"
    seen = {"runs": sorted(runs)}
    driver = browser()
    try:
        driver.get(f"{base}/runs")
        seen["runs_page"] = wait_for_text(driver, singles[0].info.run_name[:12])
        driver.save_screenshot(str(out / "runs.png"))

        run = singles[0]
        driver.get(f"{base}/runs/{run.info.run_id}")
        seen["overview"] = wait_for_text(driver, "One-epoch smoke run")
        driver.save_screenshot(str(out / "run-overview.png"))
        driver.get(f"{base}/runs/{run.info.run_id}/model-metrics")
        seen["logged_charts"] = logged_charts(client, run)
        expected = {(title, kind) for title, kinds in seen["logged_charts"].items()
                    for kind in kinds}
        seen["run_charts"] = charts(driver, expected, run.info.run_name)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(out / "run-charts.png"))

        ids = json.dumps([r.info.run_id for r in singles])
        driver.get(f"{url}/#/compare-runs?runs={ids}&experiments={json.dumps([experiment.experiment_id])}")
        seen["compare"] = wait_for_text(driver, singles[-1].info.run_name[:12])
        driver.save_screenshot(str(out / "compare.png"))

        driver.get(f"{base}/runs/{parent.info.run_id}")
        seen["sweep"] = wait_for_text(driver, "Best by validation CE")
        driver.save_screenshot(str(out / "sweep-parent.png"))

        model_id = run.outputs.model_outputs[0].model_id
        driver.get(f"{base}/models/{model_id}")
        seen["model"] = wait_for_text(driver, "test/ce")
        driver.save_screenshot(str(out / "model.png"))
    finally:
        driver.quit()
    return seen


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("ui-shots"), help="where the PNGs go")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wordnet-ui-") as tmp, mlflow_server(Path(tmp)) as url:
        log_runs(url, Path(tmp))
        seen = look(url, args.out)
    for key in ("overview", "runs_page", "compare", "sweep", "model"):
        seen[key] = seen[key][:600]
    print(json.dumps(seen, indent=1, ensure_ascii=False))
    print(f"screenshots in {args.out}/")


if __name__ == "__main__":
    main()
