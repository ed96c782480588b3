"""The HTML report in a real browser: headless Chromium draws every chart, logs no console
error, and takes a screenshot of a page with content.

Chromium writes every console message to stderr at INFO level, whatever its level (seen
with Chromium 156: ``[...:INFO:CONSOLE:1] "an explicit error", source: file:///... (1)``,
older builds write ``CONSOLE(1)``), so the level cannot be read from the log. Uncaught
exceptions and rejections carry "Uncaught" in their text; for ``console.error`` the test
loads a copy of the report with a probe script first in ``<head>`` that tags those
messages. ``test_console_error_detector_catches_a_broken_page`` shows the check can fail.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# The factory lives with the unit tests, and pytest puts only this test's own folder on
# sys.path (neither folder is a package), so add the unit folder here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from report_factory import make_report

from datadrill.reporting import render_html

# Skipped, with the reason, where Chromium is absent (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.chromium]

TIMEOUT_S = 60
ERROR_TAG = "datadrill-console-error:"
LOADED_TAG = "datadrill-probe: page loaded"

# Runs before anything else on the page. console.error keeps working, with a tag in front
# that the stderr check looks for; the load message proves the log was captured at all.
PROBE = f"""<script>
(function () {{
  var error = console.error;
  console.error = function () {{
    var text = Array.prototype.map.call(arguments, String).join(" ");
    error.call(console, "{ERROR_TAG} " + text);
  }};
  window.addEventListener("load", function () {{
    setTimeout(function () {{ console.log("{LOADED_TAG}"); }}, 0);
  }});
}})();
</script>"""

# Both stderr formats: CONSOLE(12)] "message", source: ...   and   CONSOLE:12] "message", source: ...
CONSOLE_LINE = re.compile(r':CONSOLE(?:\(\d+\)|:\d+)\]\s*"(?P<message>.*)", source: ')


def console_errors(stderr: str) -> list[str]:
    """The console lines in Chromium's stderr that are errors: uncaught exceptions and
    rejections, tagged console.error calls, resources that failed to load."""
    errors = []
    for line in stderr.splitlines():
        match = CONSOLE_LINE.search(line)
        if match is None:
            continue
        message = match["message"]
        if message.startswith(("Uncaught", ERROR_TAG)) or "Failed to load resource" in message:
            errors.append(line)
    return errors


def chromium(binary: Path, page: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
    command = [
        str(binary),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        # Lets timers and animation frames after the load event run before Chromium
        # dumps or shoots; virtual time passes without waiting.
        "--virtual-time-budget=5000",
        *args,
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-30:])
        pytest.fail(f"chromium exited {result.returncode} on {page.name}; last stderr lines:\n{tail}")
    return result


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_html(make_report()), encoding="utf-8")
    return path


def test_every_chart_is_drawn(chromium_bin: Path, report_html: Path, tmp_path: Path) -> None:
    dom = chromium(chromium_bin, report_html, tmp_path, "--dump-dom").stdout
    slos = make_report().slos
    starts = [dom.index(f'id="slo-{i}"') for i in range(len(slos))]
    for i, (start, end) in enumerate(zip(starts, [*starts[1:], len(dom)], strict=True)):
        chart = dom[start:end]
        assert 'class="main-svg"' in chart, f"chart {i} ({slos[i].name}) was not drawn"
        assert 'class="trace scatter' in chart, f"chart {i} ({slos[i].name}) has no trace"
    assert dom.count('class="main-svg"') >= len(slos)


def test_no_console_errors(chromium_bin: Path, report_html: Path, tmp_path: Path) -> None:
    probed = tmp_path / "report-probed.html"
    probed.write_text(report_html.read_text(encoding="utf-8").replace("<head>", "<head>\n" + PROBE, 1))
    stderr = chromium(chromium_bin, probed, tmp_path, "--dump-dom").stderr
    assert LOADED_TAG in stderr, "the page never finished loading, or Chromium's console log was not captured"
    assert console_errors(stderr) == []


def test_console_error_detector_catches_a_broken_page(chromium_bin: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head>"
        + PROBE
        + "</head><body><p>broken</p>"
        + '<script>console.error("plotly said no")</script>'
        + "<script>undefinedFn()</script>"
        + "</body></html>"
    )
    stderr = chromium(chromium_bin, broken, tmp_path, "--dump-dom").stderr
    assert LOADED_TAG in stderr
    errors = console_errors(stderr)
    assert len(errors) == 2, stderr
    assert "Uncaught ReferenceError: undefinedFn is not defined" in errors[1]
    assert f"{ERROR_TAG} plotly said no" in errors[0]


def test_console_error_detector_passes_a_clean_page(chromium_bin: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean.html"
    clean.write_text(
        f"<!DOCTYPE html><html><head>{PROBE}</head><body><script>console.log('fine')</script></body></html>"
    )
    stderr = chromium(chromium_bin, clean, tmp_path, "--dump-dom").stderr
    assert LOADED_TAG in stderr
    assert console_errors(stderr) == []


def test_screenshot(chromium_bin: Path, report_html: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    chromium(
        chromium_bin,
        report_html,
        tmp_path,
        f"--screenshot={png}",
        "--window-size=1280,2400",
        "--hide-scrollbars",
    )
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000, f"screenshot is only {len(data)} bytes: blank page?"
