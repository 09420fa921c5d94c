"""A check on markdown reports: every table row has as many cells as its header."""

from __future__ import annotations


def assert_rows_match_headers(md: str) -> None:
    """Each row after a ``| ---`` separator has the header's number of `` | `` cell borders."""
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ---"):
            width = lines[i - 1].count(" | ")
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert lines[j].count(" | ") == width, lines[j]
                j += 1
