"""A run as one self-contained HTML page: the postmortem plus one Plotly chart per SLO.

The page opens offline: plotly.js is inlined once, the figures are JSON inside the page,
and nothing is fetched (not even a favicon). The text is the same ``Content`` the
Markdown renderer walks; the template is ``templates/report.html.j2``, rendered with
autoescaping on, because descriptions, reasons and log lines come from the journal.

Example::

    from datadrill.reporting import render_html
    Path("report.html").write_text(render_html(report), encoding="utf-8")
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from datadrill.model.report import RunReport, SLOResult
from datadrill.reporting._content import build_content
from datadrill.reporting.formatting import format_offset, format_value

if TYPE_CHECKING:
    import jinja2

# Marker colours, shared by the vertical lines and their legend entries.
_FAULT = "#dc2626"
_REVERT = "#ea580c"
_DETECTED = "#7c3aed"
_STEP = "#0891b2"
_RECOVERED = "#16a34a"
_SLI = "#1d4ed8"
_THRESHOLD = "#b45309"
_FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif'


@dataclass(frozen=True)
class Figure:
    """One SLO's chart as the template needs it: ids, heading and the figure's JSON."""

    id: str
    name: str
    statement: str
    met: bool
    json: Markup


def render_html(report: RunReport) -> str:
    """The postmortem of ``report`` as a single HTML document.

    Example::

        html = render_html(report)
        assert html.count("<script>/**\\n* plotly.js") == 1
    """
    content = build_content(report)
    figures = [
        Figure(
            id=f"slo-{index}",
            name=slo.name,
            statement=slo.statement,
            met=slo.met,
            json=_script_json(_figure_json(slo, report)),
        )
        for index, slo in enumerate(report.slos)
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(
        c=content,
        figures=figures,
        # Only a page with charts needs the 4.8 MB library. It is trusted code, checked
        # in _plotly_js to be safe inside <script>.
        plotly_js=Markup(_plotly_js()) if figures else Markup(""),  # noqa: S704
        fail=_fail,
    )


def _fail(message: str) -> None:
    raise ValueError(message)


@functools.cache
def _environment() -> jinja2.Environment:
    # Built, and jinja2 imported, on first use, not at import: `import datadrill.reporting`
    # stays cheap for the CLI's summary and the pytest plugin's failure text.
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("datadrill.reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@functools.cache
def _plotly_js() -> str:
    import plotly.offline

    js: str = plotly.offline.get_plotlyjs()
    # Inlined into a <script> element, the bundle must not contain the end tag.
    if "</script" in js.lower():
        raise RuntimeError("this plotly.js bundle contains '</script' and cannot be inlined")
    return js


def _script_json(text: str) -> Markup:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` only
    occur inside JSON strings, where their ``\\u`` escapes mean the same, so a
    ``</script>`` in an SLO name cannot end the element."""
    safe = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(safe)  # noqa: S704 -- escaped for <script> just above


def _figure_json(slo: SLOResult, report: RunReport) -> str:
    import plotly.graph_objects as go
    import plotly.io

    fig = go.Figure()
    points = slo.series
    is_ok_kind = slo.threshold is None and slo.unit == "ok"
    fig.add_trace(
        go.Scatter(
            x=[p.t_s for p in points],
            y=[p.value for p in points],
            mode="lines",
            name=slo.sli_kind.replace("_", " "),
            connectgaps=False,  # a None is a probe that measured nothing: show the gap
            line={"color": _SLI, "width": 2, "shape": "hv" if is_ok_kind else "linear"},
            hovertemplate=f"t+%{{x:.1f}} s<br>%{{y}} {slo.unit}<extra></extra>",
        )
    )
    bad = [p for p in points if not p.good and p.value is not None]
    if bad:
        fig.add_trace(
            go.Scatter(
                x=[p.t_s for p in bad],
                y=[p.value for p in bad],
                mode="markers",
                name="bad",
                marker={"color": _FAULT, "size": 6, "symbol": "x"},
                hovertemplate=f"bad at t+%{{x:.1f}} s<br>%{{y}} {slo.unit}<extra></extra>",
            )
        )
    shapes = _unmeasured_bands(slo, report.probe_interval_s)
    if slo.threshold is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": slo.threshold,
                "y1": slo.threshold,
                "line": {"color": _THRESHOLD, "width": 1.5, "dash": "dash"},
                "name": f"threshold {format_value(slo.threshold, slo.unit)}",
                "showlegend": True,
            }
        )
    for marker in _markers(report):
        shapes.extend(marker.lines())
        fig.add_trace(marker.trace(go))

    fig.update_layout(
        template="plotly_white",
        height=360,
        margin={"l": 64, "r": 24, "t": 16, "b": 40},
        font={"family": _FONT, "size": 12, "color": "#1f2937"},
        showlegend=True,
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
        hovermode="closest",
        shapes=shapes,
        xaxis={
            "title": {"text": "seconds since the run started"},
            "range": [0, max(report.duration_s, points[-1].t_s if points else 0.0)],
            "zeroline": False,
        },
        yaxis=(
            {
                "title": {"text": "query result"},
                "range": [-0.15, 1.15],
                "tickvals": [0, 1],
                "ticktext": ["fail", "ok"],
            }
            if is_ok_kind
            else {"title": {"text": f"{slo.sli_kind.replace('_', ' ')} ({slo.unit})"}, "rangemode": "tozero"}
        ),
        # A hidden axis from 0 to 1 puts the event markers at the top of the plot,
        # whatever the SLI's range.
        yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
    )
    text: str = plotly.io.to_json(fig, validate=True)
    return text


def _unmeasured_bands(slo: SLOResult, interval_s: float) -> list[dict[str, Any]]:
    """Grey bands where the SLI could not be measured (which counts as bad)."""
    bands: list[dict[str, Any]] = []
    points = slo.series
    start: float | None = None
    for i, point in enumerate(points):
        if point.value is None and start is None:
            start = point.t_s
        if start is not None and (i + 1 == len(points) or points[i + 1].value is not None):
            end = points[i + 1].t_s if i + 1 < len(points) else point.t_s + interval_s
            bands.append(
                {
                    "type": "rect",
                    "xref": "x",
                    "yref": "paper",
                    "x0": start,
                    "x1": end,
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": "#9ca3af",
                    "opacity": 0.22,
                    "line": {"width": 0},
                    "layer": "below",
                    "name": "not measurable (counts as bad)",
                    "legendgroup": "unmeasured",
                    "showlegend": not bands,
                }
            )
            start = None
    return bands


@dataclass(frozen=True)
class _Marker:
    """One kind of event (fault, detection, ...) drawn as vertical lines with a legend
    entry and a hover label at the top of each line."""

    name: str
    color: str
    dash: str
    times: tuple[float, ...]
    labels: tuple[str, ...]

    def lines(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": t,
                "x1": t,
                "y0": 0,
                "y1": 1,
                "line": {"color": self.color, "width": 1.5, "dash": self.dash},
            }
            for t in self.times
        ]

    def trace(self, go: Any) -> Any:
        return go.Scatter(
            x=list(self.times),
            y=[1.0] * len(self.times),
            yaxis="y2",
            mode="markers",
            name=self.name,
            marker={"color": self.color, "size": 9, "symbol": "triangle-down"},
            cliponaxis=False,
            text=list(self.labels),
            hovertemplate="%{text}<extra></extra>",
        )


def _markers(report: RunReport) -> list[_Marker]:
    markers: list[_Marker] = []

    def add(name: str, color: str, dash: str, events: list[tuple[float, str]]) -> None:
        if events:
            markers.append(
                _Marker(
                    name,
                    color,
                    dash,
                    tuple(t for t, _ in events),
                    # Plotly reads hover text as its own small HTML dialect; a "<" in a
                    # description must stay a character.
                    tuple(f"{escape(label, quote=False)}<br>{format_offset(t)}" for t, label in events),
                )
            )

    add("fault injected", _FAULT, "solid", [(f.injected_s, f"fault: {f.description}") for f in report.faults])
    add(
        "fault reverted",
        _REVERT,
        "dot",
        [
            (f.reverted_s, f"reverted: {f.revert_note or f.kind}")
            for f in report.faults
            if f.reverted_s is not None
        ],
    )
    if report.detected_s is not None:
        add("detected", _DETECTED, "solid", [(report.detected_s, "first alert")])
    add(
        "recovery step",
        _STEP,
        "dot",
        [(p.start_s, f"step: {p.name}") for p in report.phases if p.kind == "recovery_step"],
    )
    if report.recovered_s is not None:
        add("recovered", _RECOVERED, "solid", [(report.recovered_s, "recovered")])
    return markers
