"""The viewers in a real browser: JupyterLab 4 runs nbs/07_viewer.ipynb in headless Chromium, and
the standalone HTML pages it saves open from file:// with no kernel and no network.

Self-installing: Debian's `chromium` is apt-installed when /usr/bin/chromium is missing, and
playwright-core (pinned in tests/browser/package-lock.json) is npm-installed with browser
downloads disabled. Screenshots and the driver's report go to build/browser/ (ignored by git).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BROWSER_DIR = ROOT / "tests" / "browser"
OUT = ROOT / "build" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
WIDGET_ERRORS = ("Class ", "not found", "Failed to load model class", "Could not create a view",
                 "Could not create model", "Error displaying widget", "Error setting state")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _run(cmd, timeout, **kw):
    return subprocess.run(cmd, check=True, timeout=timeout, capture_output=True, text=True, **kw)


def ensure_chromium() -> Path:
    """Debian's chromium (apt-get as root); skips when it cannot be installed."""
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.skip("chromium is missing and cannot be apt-installed here (need root and apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        lock = ["-o", "DPkg::Lock::Timeout=300"]  # wait for another apt run rather than fail
        _run(["apt-get", *lock, "update"], 600, env=env)
        _run(["apt-get", *lock, "install", "-y", "--no-install-recommends", "chromium", "fonts-liberation"],
             900, env=env)
    return CHROMIUM


def ensure_playwright() -> None:
    """npm ci the pinned playwright-core (no browser download)."""
    if (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
    _run([npm, "ci", "--no-audit", "--no-fund"], 600, cwd=BROWSER_DIR, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """`jupyter lab` on 127.0.0.1 with no token, a private workspace dir, stopped on exit."""

    def __init__(self, root: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        ws = OUT / "lab-workspaces"
        ws.mkdir(parents=True, exist_ok=True)
        self.cmd = [sys.executable, "-m", "jupyter", "lab", "--IdentityProvider.token=", "--allow-root",
                    "--ServerApp.ip=127.0.0.1", f"--port={self.port}", "--no-browser",
                    f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={ws}",
                    "--ServerApp.port_retries=0"]

    def __enter__(self):
        self._log = open(self.log, "w")  # noqa: SIM115 - closed in __exit__
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(OUT / "runtime")}
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     start_new_session=True, env=env)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"jupyter lab did not answer on {self.url} within 90 s; see {self.log}")

    def __exit__(self, *exc):
        try:  # polite shutdown first (stops kernels), then the process group
            req = urllib.request.Request(f"{self.url}/api/shutdown", method="POST")
            urllib.request.urlopen(req, timeout=5).close()
            self.proc.wait(timeout=15)
        except Exception:  # noqa: BLE001 - fall through to kill
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def foreground_mask(png: Path, background=(255, 255, 255), tol: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """(image (H, W, 3) int, mask (H, W) of pixels differing from the background) of a PNG."""
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return img, np.abs(img - np.asarray(background)).max(-1) > tol


def foreground(png: Path) -> tuple[float, int]:
    """(fraction of non-background pixels, number of distinct (quantised) colours among them)."""
    img, fg = foreground_mask(png)
    colours = len(np.unique(img[fg].reshape(-1, 3) // 8, axis=0)) if fg.any() else 0
    return float(fg.mean()), colours


@pytest.fixture(scope="module")
def browser_run():
    """Prepare the notebook, run it in JupyterLab + Chromium, open its HTML pages; the report dict."""
    import papermill as pm

    chromium = ensure_chromium()
    ensure_playwright()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    nb_out = OUT / "nb"
    nb = OUT / "07_viewer.ipynb"  # parameters injected, not executed: the browser executes it
    pm.execute_notebook(str(ROOT / "nbs" / "07_viewer.ipynb"), str(nb), prepare_only=True,
                        parameters={"out_dir": str(nb_out), "size": 320,
                                    "texture_size": 256, "n_samples": 3},
                        kernel_name="python3", progress_bar=False)
    shots = OUT / "shots"
    with JupyterLab(ROOT, OUT / "jupyter.log") as lab:
        url = f"{lab.url}/lab/tree/{nb.relative_to(ROOT)}?reset"
        cmd = ["node", "check_viewer.js", "--out", str(shots), "--lab", url, "--wait-file",
               str(nb_out / "results.json"), "--min-canvases", "22", "--timeout", "240",
               "--chromium", str(chromium),
               "--html", str(nb_out / "aeroplane.html"), "--html", str(nb_out / "mesh_table.html")]
        proc = subprocess.run(cmd, cwd=BROWSER_DIR, capture_output=True, text=True, timeout=420)
    report = json.loads((shots / "report.json").read_text()) if (shots / "report.json").is_file() else {}
    assert proc.returncode == 0, (f"browser driver failed:\n{proc.stdout}\n{proc.stderr}\n"
                                  f"console: {report.get('console', [])[-20:]}; see {shots}")
    report["results"] = json.loads((nb_out / "results.json").read_text())
    return report


def test_notebook_widgets_render_in_jupyterlab(browser_run):
    lab = [s for s in browser_run["screenshots"] if s["kind"] == "lab"]
    assert browser_run["lab"]["canvases"] == browser_run["results"]["n_viewers"] == len(lab)
    stats = [foreground(Path(s["file"])) for s in lab]
    # the first widget is the shaded, colour-mapped aeroplane with its bounding box: a real picture
    frac, colours = stats[0]
    assert 0.02 < frac < 0.9 and colours > 30, (lab[0]["file"], frac, colours)
    # every 3D viewer drew something (dataset images are tiny canvases too: all non-blank)
    assert all(f > 0.005 for f, _ in stats), [(s["file"], f) for s, (f, _) in zip(lab, stats, strict=True)]
    assert browser_run["results"]["aeroplane"]["n_objects"] == 5


def test_no_widget_errors_in_console(browser_run):
    texts = [m["text"] for m in browser_run["console"] if m["type"] in ("error", "warning")]
    bad = [t for t in texts if any(p in t for p in WIDGET_ERRORS)]
    assert not bad, bad
    assert not browser_run["lab"]["widgetErrors"], browser_run["lab"]["widgetErrors"]
    assert not [e for e in browser_run["pageErrors"] if e["page"] != "lab"], browser_run["pageErrors"]


def test_standalone_html_renders_offline(browser_run):
    pages = browser_run["html"]
    assert [p["rendered"] for p in pages] == [1, 6]  # the aeroplane viewer; the 2x3 mesh table
    assert browser_run["externalRequests"] == []  # nothing fetched from the network
    shots = [s for s in browser_run["screenshots"] if s["kind"].startswith("html")]
    assert len(shots) == 7
    for s in shots:
        frac, colours = foreground(Path(s["file"]))
        assert 0.02 < frac < 0.95 and colours > 10, (s["file"], frac, colours)


def test_standalone_page_matches_the_widget(browser_run):
    """The saved page draws the aeroplane viewer from the same camera as the JupyterLab widget."""
    shots = {(s["kind"], s["index"]): Path(s["file"]) for s in browser_run["screenshots"]}
    _, lab = foreground_mask(shots[("lab", 0)])
    _, page = foreground_mask(shots[("html0", 0)])
    # the two canvases' screenshots may differ by a pixel of layout: compare at the best small shift
    assert best_shift_iou(lab, page) > 0.8


def best_shift_iou(a: np.ndarray, b: np.ndarray, max_shift: int = 2) -> float:
    """Largest IoU of masks a and b over integer shifts of b by at most ``max_shift`` pixels."""
    h, w = min(a.shape[0], b.shape[0]) - 2 * max_shift, min(a.shape[1], b.shape[1]) - 2 * max_shift
    core = a[max_shift:max_shift + h, max_shift:max_shift + w]
    ious = []
    for dy in range(2 * max_shift + 1):
        for dx in range(2 * max_shift + 1):
            other = b[dy:dy + h, dx:dx + w]
            ious.append((core & other).sum() / max((core | other).sum(), 1))
    return float(max(ious))


def test_best_shift_iou_undoes_a_one_pixel_offset():
    a = np.zeros((20, 20), bool)
    a[5:15, 4] = True  # a thin line: a one-pixel offset takes its plain IoU to 0
    b = np.roll(a, 1, axis=1)
    assert (a & b).sum() == 0 and best_shift_iou(a, b) == 1.0
    assert best_shift_iou(a, np.zeros_like(a)) == 0.0


def test_views_rotate_when_dragged(browser_run):
    """Dragging the mouse rotates the view, in JupyterLab (pythreejs) and in the standalone page."""
    pairs = [(browser_run["screenshots"][0]["file"], browser_run["lab"]["dragged"])]
    pairs += [(next(s["file"] for s in browser_run["screenshots"] if s["kind"] == f"html{i}"), p["dragged"])
              for i, p in enumerate(browser_run["html"])]
    for before, after in pairs:
        a, fa = foreground_mask(Path(before))
        b, fb = foreground_mask(Path(after))
        h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        changed = (np.abs(a[:h, :w] - b[:h, :w]).max(-1) > 40).mean()
        assert changed > 0.01 and fb.mean() > 0.01, (before, after, changed)


def test_widget_controls_reach_the_kernel(browser_run):
    """Unticking the comparer's heat-map box re-colours its reconstructions (Python redraws them)."""
    before = [s["file"] for s in browser_run["screenshots"] if s["kind"] == "lab"]
    after = browser_run["lab"]["afterToggle"]
    assert len(after) == len(before)
    changed = []
    for b, a in zip(before, after, strict=True):
        x, _ = foreground_mask(Path(b))
        y, _ = foreground_mask(Path(a))
        h, w = min(x.shape[0], y.shape[0]), min(x.shape[1], y.shape[1])
        changed.append(float((np.abs(x[:h, :w] - y[:h, :w]).max(-1) > 40).mean()))
    n = browser_run["results"]
    first_cmp = 1 + 3 + 1 + 3 + 6  # viewers shown before the comparer: GT, baseline, reflection
    moved = [i for i, c in enumerate(changed) if c > 0.005]
    assert moved == [first_cmp + 1, first_cmp + 2], (moved, changed, n["n_viewers"])
