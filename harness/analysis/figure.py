"""What every analysis figure shares: the palette and the atomic PNG writer.

Rules, in order:
1. Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display).
2. A PNG is written to a temp file next to its target and renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

INK = "#333333"
DOT_OFF = "#dddddd"
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def save_figure(fig: Figure, path: Path, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically (a temp file renamed into place)."""
    FigureCanvasAgg(fig)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", facecolor="white")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
