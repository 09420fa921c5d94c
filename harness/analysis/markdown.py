"""Markdown pieces shared by the report modules: tables and p-values.

Rules, in order:
1. A table cell is one line: ``|`` is escaped and a newline becomes a space.
2. Columns align left (``l``) or right (``r``); by default the first is left, the rest right.
3. A p-value shows three decimals, ``<0.001`` below that, and ``—`` when there is none.
"""

from __future__ import annotations


def fmt_p(p: float | None) -> str:
    """A p-value for humans: three decimals, '<0.001' below that."""
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def md_row(cells: list[object]) -> str:
    """One markdown table row (rule 1)."""
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def md_table(header: list[str], rows: list[list[object]], align: str | None = None) -> list[str]:
    """A markdown table as lines (header, separator, rows) plus a blank line."""
    spec = align or "l" + "r" * (len(header) - 1)
    seps = ["---:" if a == "r" else "---" for a in spec]
    return [md_row(header), md_row(seps), *(md_row(r) for r in rows), ""]
