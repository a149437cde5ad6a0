"""The UI in a real browser: `streamlit run app.py` headless, loaded by headless Chromium.

Needs the Debian packages `chromium` and `chromium-driver` (skipped without them). Chromium is
driven through chromedriver's W3C WebDriver HTTP API with the standard library only (no
selenium): open the page, wait until Streamlit has drawn the headline metrics over its
websocket, check they are the numbers `sizer estimate --json` gives for the app's defaults,
open the Communication tab, and save screenshots under artifacts/ (gitignored).
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from sizer.cli.main import main as sizer_main
from sizer.units import fmt_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "artifacts")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", "--window-size=1500,1100"]

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="headless browser check needs chromium and chromedriver "
           "(apt-get install -y chromium chromium-driver)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, deadline: float) -> None:
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer")


class WebDriver:
    """The handful of W3C WebDriver commands this check needs."""

    def __init__(self, port: int, user_data_dir: str):
        self.base = f"http://127.0.0.1:{port}"
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM, "args": CHROME_FLAGS + [f"--user-data-dir={user_data_dir}"]}}}}
        self.sid = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())["value"]

    def get(self, url: str) -> None:
        self._call("POST", f"/session/{self.sid}/url", {"url": url})

    def js(self, script: str, *args):
        return self._call("POST", f"/session/{self.sid}/execute/sync", {"script": script, "args": list(args)})

    def wait_js(self, script: str, timeout_s: float = 20.0):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            value = self.js(script)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"page never satisfied: {script}")

    def click_xpath(self, xpath: str) -> None:
        """A real (trusted) click on the first element matching `xpath`."""
        found = self._call("POST", f"/session/{self.sid}/element", {"using": "xpath", "value": xpath})
        eid = next(iter(found.values()))
        self._call("POST", f"/session/{self.sid}/element/{eid}/click", {})

    def screenshot(self, path: str) -> None:
        png = base64.b64decode(self._call("GET", f"/session/{self.sid}/screenshot"))
        with open(path, "wb") as fh:
            fh.write(png)

    def quit(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.sid}")
        except (urllib.error.URLError, OSError):
            pass


METRICS_JS = """
const out = {};
for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
  const label = m.querySelector('[data-testid="stMetricLabel"]');
  const value = m.querySelector('[data-testid="stMetricValue"]');
  if (label && value) out[label.innerText.trim()] = value.innerText.trim();
}
return Object.keys(out).length >= 6 ? out : null;
"""


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", os.path.join(ROOT, "app.py"), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/_stcore/health", time.time() + 30)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    port = _free_port()
    proc = subprocess.Popen([DRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profile = tempfile.mkdtemp(prefix="sizer-chromium-")
    try:
        _wait_http(f"http://127.0.0.1:{port}/status", time.time() + 15)
        wd = WebDriver(port, profile)
        yield wd
        wd.quit()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_renders_the_main_numbers(server, browser, capsys):
    """Defaults (Llama-3.1-8B on 8 H100 SXM as 8 replicas, ISL 1024, OSL 256, max-throughput
    batch): the page shows the TTFT, TPOT and batch that `sizer estimate --json` computes; the Fit
    tab's charts are drawn (plotly SVG in the DOM); the Communication tab opens on click."""
    capsys.readouterr()
    assert sizer_main(["estimate", "--model", "llama-3.1-8b", "--dp", "8", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser.get(server)
    shown = browser.wait_js(METRICS_JS, 40)
    browser.wait_js("return document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2", 20)
    browser.screenshot(os.path.join(ARTIFACTS, "ui-fit.png"))
    assert shown["TTFT"] == fmt_seconds(doc["ttft_s"])
    assert shown["TPOT"] == fmt_seconds(doc["tpot_s"])
    assert shown["Batch per replica"] == str(doc["batch"])
    assert shown["tok/s per GPU"] == f"{doc['output_tok_s_per_gpu']:,.0f}"
    assert not browser.js("return document.querySelectorAll('[data-testid=\"stException\"]').length")
    browser.click_xpath("//*[@role='tab'][normalize-space()='Communication']")
    browser.wait_js("return [...document.querySelectorAll('.js-plotly-plot .gtitle')]"
                    ".some(e => e.textContent.includes('by algorithm'))", 20)
    browser.screenshot(os.path.join(ARTIFACTS, "ui-communication.png"))
    assert os.path.getsize(os.path.join(ARTIFACTS, "ui-fit.png")) > 10_000
