"""A run as a blameless postmortem in Markdown, shaped like the Google SRE postmortem
template (summary, impact, timeline, detection, recovery, what went well and badly,
action items), ready to paste into a postmortem doc.

Example::

    from datadrill.reporting import render_markdown
    Path("report.md").write_text(render_markdown(report))
    # # Game day postmortem: metadata-loss — SLO violated
    # ...
"""

from __future__ import annotations

import re

from datadrill.model.report import RunReport
from datadrill.reporting._content import Block, Bullets, Fact, Facts, Heading, Paragraph, Table, build_content

_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def render_markdown(report: RunReport) -> str:
    """The postmortem of ``report`` as GitHub-flavoured Markdown, ending in a newline.

    Example::

        text = render_markdown(report)
        assert text.startswith("# Game day postmortem: ")
    """
    content = build_content(report)
    lines = [
        f"# {_inline(content.title)} — {_inline(content.verdict)}",
        "",
        " · ".join([f"**Verdict: {_inline(content.verdict)}**", *(_fact(f) for f in content.headline)]),
        "",
        _inline(content.subtitle),
    ]
    for section in content.sections:
        lines += ["", f"## {section.title}"]
        for block in section.blocks:
            lines += ["", *_block(block)]
    lines += ["", "---", "", " · ".join(_fact(f) for f in content.footer)]
    return "\n".join(lines) + "\n"


def _block(block: Block) -> list[str]:
    if isinstance(block, Paragraph):
        return [_inline(block.text)]
    elif isinstance(block, Heading):
        return [f"### {_inline(block.text)}"]
    elif isinstance(block, Facts):
        return [f"- {_fact(f)}" for f in block.items]
    elif isinstance(block, Table):
        return _table(block)
    elif isinstance(block, Bullets):
        marker = "- [ ] " if block.checkboxes else "- "
        return [marker + _inline(item) for item in block.items]
    else:
        raise TypeError(f"no Markdown for block {block!r}")


def _table(table: Table) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    rule = ["---:" if align == "right" else "---" for align in table.align]
    body = [line([_cell(cell) for cell in row.cells]) for row in table.rows]
    return [line([_cell(h) for h in table.headers]), line(rule), *body]


def _fact(fact: Fact) -> str:
    value = _code(fact.value) if fact.code else _inline(fact.value)
    return f"**{_inline(fact.label)}:** {value}"


def _inline(text: str) -> str:
    # Text from the journal (descriptions, reasons, log lines) must not turn into raw HTML
    # (only a "<" that could open a tag is escaped, so "83% < 99.9%" stays readable as text)
    # or emphasis when pasted into a postmortem doc, and must stay on one line. Underscores
    # stay as they are: GFM ignores them inside words (delete_catalog_entry), and escaping
    # them would litter every identifier with backslashes.
    text = " ".join(text.split()).replace("\\", "\\\\").replace("*", "\\*")
    return _TAG_START.sub("&lt;", text)


def _cell(text: str) -> str:
    return _inline(text).replace("|", "\\|") or " "


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"
