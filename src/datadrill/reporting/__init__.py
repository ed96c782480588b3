"""Reporters: a ``RunReport`` rendered as a postmortem (Markdown, HTML), as data (JSON)
and as a CI test result (JUnit XML).

Each renderer is a pure function ``RunReport -> str``; ``FORMATS`` names them with the
file each one is written to, and ``write_reports`` writes any of them atomically.

Example::

    from datadrill.reporting import write_reports
    paths = write_reports(report, Path(".datadrill/runs") / report.run_id)
    paths["html"]   # PosixPath('.datadrill/runs/<run id>/report.html')

    write_reports(report, out_dir, formats=["junit"])   # only junit.xml
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from datadrill.errors import ConfigError
from datadrill.model.report import RunReport
from datadrill.reporting.html import render_html
from datadrill.reporting.json_report import render_json
from datadrill.reporting.junit import render_junit
from datadrill.reporting.markdown import render_markdown

Renderer = Callable[[RunReport], str]

FORMATS: dict[str, tuple[str, Renderer]] = {
    "md": ("report.md", render_markdown),
    "html": ("report.html", render_html),
    "json": ("report.json", render_json),
    "junit": ("junit.xml", render_junit),
}

__all__ = [
    "FORMATS",
    "Renderer",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "write_reports",
]


def write_reports(report: RunReport, directory: Path, formats: Iterable[str] = FORMATS) -> dict[str, Path]:
    """Render ``report`` in each of ``formats`` (keys of ``FORMATS``) into ``directory``,
    creating it if needed, and return the path written per format.

    Every format is checked before anything is written, and each file is replaced
    atomically, so a reader never sees half a report and a crash leaves the previous one.

    Example::

        write_reports(report, Path("out"), formats=("md", "junit"))
        # {'md': PosixPath('out/report.md'), 'junit': PosixPath('out/junit.xml')}
    """
    chosen = list(dict.fromkeys(formats))
    for name in chosen:
        if name not in FORMATS:
            raise ConfigError("report formats", "format", name, f"one of {', '.join(FORMATS)}")
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name in chosen:
        file_name, renderer = FORMATS[name]
        path = directory / file_name
        _write_atomically(path, renderer(report))
        written[name] = path
    return written


def _write_atomically(path: Path, text: str) -> None:
    # The temporary file sits next to the target so that os.replace is a rename within
    # one file system, which is atomic.
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temp.chmod(0o644)  # mkstemp creates 0600; a report is meant to be read by others
        temp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
