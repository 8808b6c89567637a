"""One line per figure, ending in the ratio; and the same figures as a Markdown table.

The ratio is always "how pytp does against the reference", so higher is
better and 1.0 means as fast: reference seconds / pytp seconds for times,
pytp rate / reference rate for rates.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from .measure import Series

MiB = 1 << 20


@dataclass
class Figure:
    #: the row of issue 9's table this figure belongs to
    work: str
    pytp: str
    reference: str
    ratio: float | None
    goal: str = ""
    #: the same ratio over CPU seconds: steadier than wall time on a loaded machine
    cpu_ratio: float | None = None
    #: what was timed against the reference (a design probe is not pytp)
    side: str = "pytp"

    def line(self) -> str:
        ratio = "—" if self.ratio is None else f"{self.ratio:.3f}"
        cpu = "" if self.cpu_ratio is None else f" | CPU ratio {self.cpu_ratio:.3f}"
        return f"{self.work:<44} {self.side} {self.pytp} | {self.reference}{cpu} | ratio {ratio}"


def timing(series: Series) -> str:
    """Median wall and CPU seconds, e.g. ``9.40 s (CPU 8.10 s)``."""
    return f"{series.wall:.3f} s (CPU {series.cpu:.3f} s)"


def named_timing(series: Series) -> str:
    return f"{series.name} {timing(series)}"


def mib(size: int) -> str:
    return f"{size / MiB:.0f} MiB"


def time_ratio(pytp: Series, reference: Series) -> float:
    return reference.wall / pytp.wall


def cpu_ratio(pytp: Series, reference: Series) -> float:
    return reference.cpu / pytp.cpu


def emit(figure: Figure) -> Figure:
    """Print a figure as soon as it is measured (a long run shows progress)."""
    print(figure.line(), flush=True)
    return figure


def note(text: str) -> None:
    """Context lines (data set built, where the time went) go to stderr, figures to stdout."""
    print(f"# {text}", file=sys.stderr, flush=True)


def markdown(figures: list[Figure]) -> str:
    rows = ["| work | pytp | reference | ratio (CPU) | goal |", "|---|---|---|---|---|"]
    for f in figures:
        ratio = "—" if f.ratio is None else f"{f.ratio:.3f}"
        if f.cpu_ratio is not None:
            ratio += f" ({f.cpu_ratio:.3f})"
        cells = [f.work, f.pytp, f.reference, ratio, f.goal]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)
