"""Charts as inline SVG, drawn on the server: no JavaScript library, nothing to load, readable
in both languages (labels are text the page's font draws, so Chinese needs no special care).

Two shapes cover the dashboard: horizontal bars (a label, a value, the value as text) and
stacked columns (one per day, a segment per series). Every string goes through `escape`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# A calm palette that survives grey-scale printing; series beyond it repeat.
PALETTE = ("#1f6feb", "#8250df", "#1a7f37", "#bf8700", "#cf222e", "#0a7ea4", "#6e7781")
FLAG = "#cf222e"
INK = "#1d232b"
MUTED = "#6b7480"
GRID = "#e2e5ea"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # the value as shown ("42", "87 %", "¥1,234.00")
    flagged: bool = False
    data: bool = False  # the label is the shop's data (a product title): never translated


def _text_width(text: str) -> float:
    """Rough width in px at 12px: CJK characters are about twice as wide as Latin ones."""
    return sum(12.0 if ord(c) > 0x2E80 else 6.6 for c in text)


def bars(items: Sequence[Bar], *, title: str, width: int = 520) -> Markup:
    """Horizontal bars, one row per item, the longest bar the largest value."""
    if not items:
        return Markup("")
    row, top = 22, 6
    label_w = min(200.0, max(_text_width(b.label) for b in items) + 10)
    value_w = max(_text_width(b.text) for b in items) + 10
    track = max(60.0, width - label_w - value_w)
    biggest = max((b.value for b in items), default=0) or 1
    height = top * 2 + row * len(items)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    ]
    for i, b in enumerate(items):
        y = top + i * row
        length = max(0.0, track * b.value / biggest)
        colour = FLAG if b.flagged else PALETTE[0]
        raw = ' translate="no"' if b.data else ""
        parts.append(
            f'<text x="{label_w - 8:.0f}" y="{y + 15}" text-anchor="end" font-size="12" '
            f'fill="{INK}"{raw}>{escape(b.label)}</text>'
            f'<rect x="{label_w:.0f}" y="{y + 4}" width="{length:.1f}" height="14" rx="2" '
            f'fill="{colour}"{raw}><title>{escape(b.label)}: {escape(b.text)}</title></rect>'
            f'<text x="{label_w + length + 6:.1f}" y="{y + 15}" font-size="12" '
            f'fill="{FLAG if b.flagged else MUTED}">{escape(b.text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every inserted string was escaped above


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[int]


def stacked_columns(
    days: Sequence[str], series: Sequence[Series], *, title: str, width: int = 1040
) -> Markup:
    """One column per day, a coloured segment per series, with a legend and a y-axis."""
    if not days:
        return Markup("")
    left, right, top, bottom, legend_h = 34, 8, 8, 22, 22
    plot_h = 170
    height = top + plot_h + bottom + legend_h
    totals = [sum(s.values[i] for s in series) for i in range(len(days))]
    biggest = max(totals, default=0) or 1
    step = (width - left - right) / len(days)
    col = max(2.0, step * 0.72)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    ]
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{MUTED}">{round(biggest * frac)}</text>'
        )
    # Label every day when they fit, else about 12 of them.
    every = max(1, round(len(days) / 12)) if step < 60 else 1
    for i, day in enumerate(days):
        x = left + i * step + (step - col) / 2
        y = top + plot_h
        for j, s in enumerate(series):
            v = s.values[i]
            if not v:
                continue
            h = plot_h * v / biggest
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{col:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(day)} · '
                f"{escape(s.label)}: {v}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + col / 2:.1f}" y="{top + plot_h + 15}" text-anchor="middle" '
                f'font-size="11" fill="{MUTED}">{escape(day)}</text>'
            )
    x = float(left)
    legend_y = top + plot_h + bottom + 14
    for j, s in enumerate(series):
        parts.append(
            f'<rect x="{x:.1f}" y="{legend_y - 10}" width="10" height="10" '
            f'fill="{PALETTE[j % len(PALETTE)]}"/>'
            f'<text x="{x + 14:.1f}" y="{legend_y}" font-size="12" fill="{INK}">'
            f"{escape(s.label)}</text>"
        )
        x += 14 + _text_width(s.label) + 16
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every inserted string was escaped above
