"""Chart geometry for server-side SVG: bars, ticks, sparklines, meters.

The templates draw what these functions compute, with SVG attributes only (x, y, width,
height, points): the CSP forbids inline styles and scripts, so colours come from classes in
static/css/analytics.css. Every chart has a fixed coordinate system (`viewBox`) that CSS
scales to the card's width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from portal.analytics.services import Buckets, Dashboard, Key

# How many colour classes the stylesheet defines (series-0 … series-5); more series reuse them.
PALETTE_SIZE = 6


@dataclass(frozen=True)
class Box:
    """The plot area inside the chart, in viewBox units."""

    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


@dataclass(frozen=True)
class Bar:
    """One rectangle; `css` picks its colour, `label` is its tooltip."""

    x: float
    y: float
    width: float
    height: float
    css: str
    label: str


@dataclass(frozen=True)
class Tick:
    """An axis tick: where, and its text."""

    at: float
    label: str


@dataclass(frozen=True)
class Marker:
    """A vertical reference line on a chart (median, p90, "as long as the clip")."""

    x: float
    label: str
    css: str


@dataclass(frozen=True)
class Series:
    """One stacked series: its name and colour class, for the legend."""

    name: str
    css: str


@dataclass
class BarChart:
    """Everything a template needs to draw a bar chart."""

    width: int
    height: int
    box: Box
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    series: list[Series] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    total: int = 0

    @property
    def empty(self) -> bool:
        return self.total == 0


def nice_ticks(maximum: float, count: int = 4) -> list[float]:
    """Round tick values from 0 up to at least `maximum`: steps of 1, 2 or 5 × 10^k, never
    below 1 (the charts count things)."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    multiples = (1, 2, 2.5, 5, 10) if magnitude >= 10 else (1, 2, 5, 10)
    step = max(round(next(m * magnitude for m in multiples if m * magnitude >= raw)), 1)
    steps = math.ceil(maximum / step)
    return [i * step for i in range(steps + 1)]


def _format_number(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:g}"


def stacked_bars(
    buckets: Sequence[Any],
    series: Sequence[tuple[str, Sequence[int]]],
    bucket_label: Callable[[Any], str],
    axis_labels: Callable[[Sequence[Any]], list[tuple[int, str]]],
    width: int = 1000,
    height: int = 220,
) -> BarChart:
    """Bars per bucket, the series stacked bottom-up in the order given.

    `series` is [(name, value per bucket)], `bucket_label(bucket)` the tooltip's time,
    `axis_labels(buckets)` the (bucket index, text) pairs written under the x axis.
    """
    box = Box(left=44, top=10, width=width - 44 - 8, height=height - 10 - 26)
    totals = [sum(values[i] for _, values in series) for i in range(len(buckets))]
    ticks = nice_ticks(max(totals, default=0))
    scale = box.height / ticks[-1]
    band = box.width / max(len(buckets), 1)
    bar_width = max(band * (0.72 if band > 6 else 0.9), 0.6)
    bars: list[Bar] = []
    for index, bucket in enumerate(buckets):
        x = box.left + index * band + (band - bar_width) / 2
        base = box.bottom
        for number, (name, values) in enumerate(series):
            value = values[index]
            if value <= 0:
                continue
            bar_height = value * scale
            base -= bar_height
            label = (
                f"{bucket_label(bucket)} · {name}: {value}"
                if len(series) > 1
                else f"{bucket_label(bucket)}: {value}"
            )
            bars.append(
                Bar(
                    round(x, 1),
                    round(base, 1),
                    round(bar_width, 1),
                    round(bar_height, 1),
                    f"series-{number % PALETTE_SIZE}",
                    label,
                )
            )
    return BarChart(
        width=width,
        height=height,
        box=box,
        bars=bars,
        y_ticks=[Tick(round(box.bottom - tick * scale, 1), _format_number(tick)) for tick in ticks],
        x_ticks=[Tick(round(box.left + (i + 0.5) * band, 1), text) for i, text in axis_labels(buckets)],
        series=[Series(name, f"series-{n % PALETTE_SIZE}") for n, (name, _) in enumerate(series)],
        total=sum(totals),
    )


def every_nth(count: int, most: int) -> int:
    """The step that puts at most `most` labels on `count` buckets."""
    return max(1, math.ceil(count / most))


def histogram_chart(
    bins: Sequence[tuple[int, int | None, int]],
    median: float | None,
    p90: float | None,
    width: int = 520,
    height: int = 230,
) -> BarChart:
    """Time on task over clip length: bars per bin (percent of the clip), with markers.

    Bins below 100 % (faster than the clip itself) are drawn in the warning colour: that
    is where rubber stamps live.
    """
    box = Box(left=40, top=22, width=width - 40 - 10, height=height - 22 - 26)
    counts = [count for _, _, count in bins]
    ticks = nice_ticks(max(counts, default=0))
    scale = box.height / ticks[-1]
    band = box.width / len(bins)
    last_low = bins[-1][0]
    step = (bins[0][1] or last_low) - bins[0][0]

    def x_of(percent: float) -> float:
        # Values in the open last bin sit at its middle.
        return box.left + min(percent, last_low + step / 2) / (last_low + step) * box.width

    bars = []
    for index, (low, high, count) in enumerate(bins):
        if count <= 0:
            continue
        label = (
            f"{low / 100:g}–{high / 100:g}× the clip: {count}"
            if high is not None
            else f"≥ {low / 100:g}×: {count}"
        )
        css = "series-warn" if high is not None and high <= 100 else "series-0"
        bars.append(
            Bar(box.left + index * band + 1, box.bottom - count * scale, band - 2, count * scale, css, label)
        )
    markers = [Marker(x_of(100), "clip length", "marker-clip")]
    if median is not None:
        markers.append(Marker(x_of(median * 100), f"median {median:.2f}×", "marker-median"))
    if p90 is not None:
        markers.append(Marker(x_of(p90 * 100), f"p90 {p90:.2f}×", "marker-p90"))
    x_ticks = [
        Tick(box.left + index * band, f"{low / 100:g}×")
        for index, (low, _, _) in enumerate(bins)
        if low % 50 == 0
    ]
    return BarChart(
        width=width,
        height=height,
        box=box,
        bars=bars,
        y_ticks=[Tick(box.bottom - tick * scale, _format_number(tick)) for tick in ticks],
        x_ticks=x_ticks,
        markers=markers,
        total=sum(counts),
    )


@dataclass(frozen=True)
class Sparkline:
    """A small line over time: the polyline's points and the area under it."""

    width: int
    height: int
    line: str
    area: str
    peak: int


def sparkline(values: Sequence[int], width: int = 96, height: int = 24) -> Sparkline:
    """Points for a sparkline of `values` (at least one), scaled to its own peak."""
    peak = max(values, default=0)
    top = max(peak, 1)
    step = width / max(len(values) - 1, 1)
    points = [(i * step, height - 2 - (value / top) * (height - 4)) for i, value in enumerate(values)]
    if len(points) == 1:
        points.append((width, points[0][1]))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    area = f"0,{height} {line} {points[-1][0]:.1f},{height}"
    return Sparkline(width, height, line, area, peak)


@dataclass(frozen=True)
class Meter:
    """A thin horizontal bar for a share (0–1) inside a table cell."""

    width: int
    fill: float
    css: str


def meter(share: float | None, width: int = 40, warn_at: float = 0.1, bad_at: float = 0.25) -> Meter | None:
    """A meter for `share`, coloured by how worrying it is (None when there is no share)."""
    if share is None:
        return None
    css = "meter-bad" if share >= bad_at else "meter-warn" if share >= warn_at else "meter-ok"
    return Meter(width, round(min(max(share, 0.0), 1.0) * width, 1), css)


# --- the dashboard's charts --------------------------------------------------------------------


@dataclass
class DashboardCharts:
    """The charts of one dashboard page."""

    daily: BarChart
    # The daily chart and the sparklines count weeks (long periods) rather than days.
    per_week: bool
    hourly: BarChart
    hourly_is_profile: bool
    histogram: BarChart
    trend: Sparkline
    sparklines: dict[Key, Sparkline]


def _day_axis(days: Sequence[date]) -> list[tuple[int, str]]:
    if (days[-1] - days[0]).days < 62:
        step = every_nth(len(days), 10)
        return [(i, f"{day.day} {day:%b}") for i, day in enumerate(days) if i % step == 0]
    labels: list[tuple[int, str]] = []
    for i, day in enumerate(days):
        # A label at the first bar of each month (and at the start, unless a month starts soon).
        new_month = i > 0 and day.month != days[i - 1].month
        if new_month or (i == 0 and day.day < 20):
            labels.append((i, f"{day:%b %Y}" if not labels or day.month == 1 else f"{day:%b}"))
    return labels


def _hour_axis(hours: Sequence[datetime]) -> list[tuple[int, str]]:
    step = every_nth(len(hours) // 24 or 1, 10) * 24
    return [(i, f"{hour:%a} {hour.day}") for i, hour in enumerate(hours) if i % step == 0]


def _bucket_label(buckets: Buckets, start: date) -> str:
    if buckets.size == 1:
        return start.isoformat()
    end = min(start + timedelta(days=buckets.size - 1), buckets.last_day)
    return f"{start.isoformat()} to {end.isoformat()}"


def dashboard_charts(board: Dashboard) -> DashboardCharts:
    """Draw the page's charts from its figures."""
    buckets = board.period.buckets
    starts = buckets.starts()
    vendors = sorted(board.series_by_vendor.items(), key=lambda item: board.names.vendor(item[0]).casefold())
    daily = stacked_bars(
        starts,
        [(board.names.vendor(key), [series.get(start, 0) for start in starts]) for key, series in vendors]
        or [("done", [0] * len(starts))],
        lambda start: _bucket_label(buckets, start),
        _day_axis,
    )
    if board.hourly is not None:
        counts = dict(board.hourly)
        hours = [board.period.start + timedelta(hours=h) for h in range(board.period.days * 24)]
        hourly = stacked_bars(
            hours,
            [("done", [counts.get(hour, 0) for hour in hours])],
            lambda hour: f"{hour:%Y-%m-%d %H}:00",
            _hour_axis,
            height=150,
        )
    else:
        profile = board.hour_of_day or [0] * 24
        hourly = stacked_bars(
            list(range(24)),
            [("done", profile)],
            lambda hour: f"{hour:02d}:00–{hour:02d}:59",
            lambda hours: [(h, f"{h:02d}:00") for h in hours if h % 3 == 0],
            height=150,
        )
    time = board.overall.time
    return DashboardCharts(
        daily=daily,
        per_week=buckets.size > 1,
        hourly=hourly,
        hourly_is_profile=board.hourly is None,
        histogram=histogram_chart(time.histogram(), time.median, time.p90),
        trend=sparkline([board.overall.series.get(start, 0) for start in starts], width=120, height=34),
        sparklines={
            summary.key: sparkline([summary.series.get(start, 0) for start in starts])
            for summary in board.annotators
        },
    )
