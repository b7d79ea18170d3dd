"""Charts drawn on the server as inline SVG: no JavaScript, no CDN (the machines are offline), and they print.

Every function takes figures already aggregated by the database and returns safe markup. Labels are escaped.
"""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import localtime
from django.utils.translation import get_language

COLOURS = {
    "cap": "#c9d3dd",
    "committed": "#2f6f9f",
    "disbursed": "#4caf7a",
    "allotment": "#c9d3dd",
    "pipeline": "#e0a030",
    "available": "#79aec8",
    "warn": "#e0a030",
    "crit": "#c0392b",
}
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def compact(amount: Decimal | int | float) -> str:
    """A short amount for axes and bar ends: 6亿 / 1,250万 in Chinese, 600M / 1.2B in English."""
    value = Decimal(str(amount))
    if (get_language() or "").startswith("zh"):
        for unit, size in (("亿", Decimal("1e8")), ("万", Decimal("1e4"))):
            if abs(value) >= size:
                return f"{(value / size).quantize(Decimal('0.01')).normalize():,f}{unit}"
        return f"{value.quantize(Decimal('1')):,f}"
    for unit, size in (("B", Decimal("1e9")), ("M", Decimal("1e6")), ("K", Decimal("1e3"))):
        if abs(value) >= size:
            return f"{(value / size).quantize(Decimal('0.1')).normalize():,f}{unit}"
    return f"{value.quantize(Decimal('1')):,f}"


def _svg(width: int, height: int, title: str, body: list[str]) -> SafeString:
    return mark_safe(  # noqa: S308 -- every label below went through escape()
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _level(share: Decimal) -> str:
    return COLOURS["crit"] if share >= 95 else COLOURS["warn"] if share >= 80 else COLOURS["committed"]


def text_width(text: str) -> int:
    """Roughly how wide `text` is at FONT's size: a CJK character is about twice a Latin one."""
    return sum(13 if ord(ch) > 255 else 7 for ch in text)


def wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most about `width` pixels, broken between words (between any two characters where
    there are no spaces, as in Chinese)."""
    words = text.split(" ") if " " in text else list(text)
    joiner = " " if " " in text else ""
    lines: list[str] = []
    for word in words:
        candidate = f"{lines[-1]}{joiner}{word}" if lines else word
        if lines and text_width(candidate) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines or [""]


def utilisation_bars(title: str, rows: Sequence[tuple[str, Decimal, Decimal, Decimal]]) -> SafeString:
    """One bar per row (label, total, committed, disbursed): the total as the track, committed over it (amber from
    80%, red from 95%), disbursed inside committed. Labels are shown whole: the label column grows to the longest
    (up to a limit past which a label wraps onto more lines), so a programme's name is never cut off."""
    bar_w, right_w, line_h = 420, 150, 15
    wrapped = [wrap(label, 360) for label, *_figures in rows]
    label_w = min(max([220] + [text_width(line) + 12 for lines in wrapped for line in lines]), 380)
    width = label_w + bar_w + right_w
    body = []
    y = 10
    for (label, total, committed, disbursed), lines in zip(rows, wrapped, strict=True):
        share = (committed / total * 100) if total else Decimal(0)
        c_w = float(min(committed / total, Decimal(1))) * bar_w if total else 0
        d_w = float(min(disbursed / total, Decimal(1))) * bar_w if total else 0
        spans = "".join(
            f'<tspan x="0" dy="{0 if n == 0 else line_h}">{escape(line)}</tspan>'
            for n, line in enumerate(lines)
        )
        body += [
            f'<text x="0" y="{y + 15}" {FONT}><title>{escape(label)}</title>{spans}</text>',
            f'<rect x="{label_w}" y="{y}" width="{bar_w}" height="20" rx="3" fill="{COLOURS["cap"]}"/>',
            f'<rect class="committed" x="{label_w}" y="{y}" width="{c_w:.1f}" height="20" rx="3" fill="{_level(share)}"/>',
            f'<rect class="disbursed" x="{label_w}" y="{y + 6}" width="{d_w:.1f}" height="8" fill="{COLOURS["disbursed"]}"/>',
            f'<text x="{label_w + bar_w + 8}" y="{y + 15}" {FONT}>{share:.1f}% · {escape(compact(committed))}'
            f" / {escape(compact(total))}</text>",
        ]
        y += max(30, line_h * len(lines) + 12)
    return _svg(width, y + 10, title, body)


def grouped_columns(
    title: str, categories: Sequence[str], series: Sequence[tuple[str, str, Sequence[Decimal]]]
) -> SafeString:
    """Columns grouped by category (e.g. fiscal years); `series` is (name, colour, one value per category)."""
    left, top, plot_h, group_w = 70, 30, 220, max(60, 24 * len(series) + 24)
    width = max(left + group_w * max(len(categories), 1) + 20, 460)
    peak = max([v for _n, _c, values in series for v in values] + [Decimal(1)])
    body = []
    for k in range(5):
        value = peak * k / 4
        y = top + plot_h - plot_h * k / 4
        body += [
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>',
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{escape(compact(value))}</text>',
        ]
    col_w = (group_w - 24) / max(len(series), 1)
    for i, category in enumerate(categories):
        x0 = left + i * group_w + 12
        for j, (name, colour, values) in enumerate(series):
            h = float(values[i] / peak) * plot_h
            body.append(
                f'<rect x="{x0 + j * col_w:.1f}" y="{top + plot_h - h:.1f}" width="{col_w - 2:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(name)} {escape(category)}: '
                f"{escape(compact(values[i]))}</title></rect>"
            )
        body.append(
            f'<text x="{x0 + (group_w - 24) / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" {FONT}>'
            f"{escape(category)}</text>"
        )
    body += _legend(left, 14, [(n, c) for n, c, _v in series])
    return _svg(int(width), top + plot_h + 30, title, body)


def line_chart(
    title: str, times: Sequence[datetime], series: Sequence[tuple[str, str, Sequence[Decimal]]]
) -> SafeString:
    """Lines over time (e.g. a pool's cap, committed and disbursed from its usage snapshots)."""
    left, top, plot_w, plot_h = 70, 30, 640, 220
    peak = max([v for _n, _c, values in series for v in values] + [Decimal(1)])
    n = len(times)
    body = []
    for k in range(5):
        y = top + plot_h - plot_h * k / 4
        body += [
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>',
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{escape(compact(peak * k / 4))}</text>',
        ]

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    for name, colour, values in series:
        points = " ".join(
            f"{x(i):.1f},{top + plot_h - float(v / peak) * plot_h:.1f}" for i, v in enumerate(values)
        )
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"><title>{escape(name)}</title></polyline>'
        )
        if n == 1:  # one point makes no line: a dot shows it
            y = top + plot_h - float(values[0] / peak) * plot_h
            body.append(
                f'<circle class="point" cx="{x(0):.1f}" cy="{y:.1f}" r="4" fill="{colour}"><title>{escape(name)}: '
                f"{escape(compact(values[0]))}</title></circle>"
            )
    if n:
        # In the site's time zone (Asia/Shanghai), like every other time the officers read.
        first, last = localtime(times[0]), localtime(times[-1])
        body += [
            f'<text x="{left}" y="{top + plot_h + 16}" {FONT}>{first:%Y-%m-%d %H:%M}</text>',
            f'<text x="{left + plot_w}" y="{top + plot_h + 16}" text-anchor="end" {FONT}>{last:%Y-%m-%d %H:%M}</text>',
        ]
    body += _legend(left, 14, [(nm, c) for nm, c, _v in series])
    return _svg(left + plot_w + 20, top + plot_h + 30, title, body)


def _legend(x: int, y: int, items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for name, colour in items:
        out += [
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>',
            f'<text x="{x + 14}" y="{y}" {FONT}>{escape(name)}</text>',
        ]
        x += 24 + sum(13 if ord(ch) > 255 else 7 for ch in name)
    return out
