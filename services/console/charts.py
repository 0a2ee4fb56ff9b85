"""The dashboard's charts: drawn on the server with matplotlib (already the auditor's report library) as SVG,
shown as images, so the page needs no script and nothing is fetched at run time. The text stays text in the
SVG (the browser draws the Chinese with its own fonts). Drawing is CPU work: it runs in a thread of its own, one
page's charts at a time; pages waiting their turn queue there, not in the default pool (which also resolves the
services' addresses for every new connection)."""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

FONTS = ["AR PL UMing CN", "DejaVu Sans"]  # for measuring the labels (Debian's fonts-arphic-uming, else boxes)
FONT_FILE = "uming"  # the first font's file name holds this
WIDTH, LABEL_POINTS = 6.4, 8  # inches; the labels' size
MAX_BARS = 20  # a chart shows the largest values; the table beside it lists them all
_drawer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="charts")  # matplotlib is not thread-safe
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Bars:
    """A horizontal bar chart: one bar per label, largest first."""

    title: str
    labels: Sequence[str]
    values: Sequence[float]
    color: str = "#3b6ea5"


def bar_svg(chart: Bars) -> str:
    """The chart as an SVG document (text kept as text)."""
    import matplotlib
    from matplotlib.figure import Figure

    _know_installed_fonts()
    pairs = sorted(zip(chart.labels, chart.values, strict=True), key=lambda p: -p[1])[:MAX_BARS]
    labels = [_short(label) for label, _ in pairs]
    values = [value for _, value in pairs]
    height = max(1.6, 0.34 * len(pairs) + 0.9)
    figure = Figure(figsize=(WIDTH, height))
    # margins from the labels' length instead of tight_layout, which measures every text twice more
    widest = max((len(label) for label in labels), default=1)
    figure.subplots_adjust(
        left=min(0.45, (widest * LABEL_POINTS * 1.1 + 18) / (WIDTH * 72)),
        right=0.95,
        top=1 - 0.45 / height,
        bottom=0.35 / height,
    )
    axes = figure.add_subplot()
    positions = list(range(len(pairs)))[::-1]
    axes.barh(positions, values, color=chart.color)
    axes.set_yticks(positions, labels, fontfamily=FONTS, fontsize=LABEL_POINTS)
    axes.set_title(chart.title, fontfamily=FONTS, fontsize=10)
    axes.spines[["top", "right"]].set_visible(False)
    top = max(values, default=0) or 1
    axes.set_xlim(0, top * 1.15)
    for y, v in zip(positions, values, strict=True):
        axes.text(v, y, f" {v:g}", va="center", fontsize=7)
    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "console"}):
        figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


@dataclass(frozen=True)
class Months:
    """Series over months, in the order given (a trend, not a ranking): a panel of its own per series, each
    with its own scale, since thousands of accesses beside a few published versions would flatten them."""

    title: str
    months: Sequence[str]
    series: dict[str, Sequence[float]]  # the series' name: a value per month
    colors: Sequence[str] = ("#3b6ea5", "#2f855a", "#c05621")

    @property
    def values(self) -> list[float]:
        return [v for line in self.series.values() for v in line]


def months_svg(chart: Months) -> str:
    """The trend as an SVG document (text kept as text): the months along, one panel per series, stacked with
    the months shared, each a line with its points on its own axis."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    _know_installed_fonts()

    panel = 1.25
    height = 0.55 + panel * len(chart.series) + 0.4
    figure = Figure(figsize=(WIDTH, height))
    figure.subplots_adjust(left=0.09, right=0.98, top=1 - 0.55 / height, bottom=0.4 / height, hspace=0.55)
    figure.suptitle(chart.title, fontfamily=FONTS, fontsize=10)
    positions = list(range(len(chart.months)))
    panels = figure.subplots(len(chart.series), 1, sharex=True, squeeze=False)[:, 0]
    for axes, (name, values), color in zip(panels, chart.series.items(), chart.colors, strict=False):
        axes.plot(positions, list(values), marker="o", markersize=3, color=color)
        axes.set_title(name, fontfamily=FONTS, fontsize=LABEL_POINTS, loc="left")
        axes.spines[["top", "right"]].set_visible(False)
        axes.set_ylim(0, (max(values, default=0) or 1) * 1.2)
        axes.tick_params(axis="y", labelsize=7)
        axes.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))  # counts: no 0.2 of an access
    panels[-1].set_xticks(positions, [m[2:] for m in chart.months], fontsize=7)  # 2026-10 as 26-10: twelve fit
    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "console"}):
        figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


@functools.cache
def _know_installed_fonts() -> None:
    """matplotlib keeps the fonts it found in a cache file written on its first use: a font installed after that
    (the Chinese one, say) stays unknown to it, and the labels are measured in the wrong font. Once per process,
    if the first font is not among those known, the installed files of it are added."""
    from matplotlib import font_manager

    if any(font.name == FONTS[0] for font in font_manager.fontManager.ttflist):
        return
    for path in font_manager.findSystemFonts():
        if FONT_FILE in path.rsplit("/", 1)[-1].lower():
            font_manager.fontManager.addfont(path)


def _short(label: str) -> str:
    return label if len(label) <= 14 else label[:13] + "…"


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


async def draw(charts: dict[str, Bars | Months]) -> dict[str, str]:
    """Each chart as a data URI for an <img>, drawn off the event loop; a chart without values is left out."""

    def run() -> dict[str, str]:
        return {
            name: data_uri(months_svg(c) if isinstance(c, Months) else bar_svg(c))
            for name, c in charts.items()
            if c.values
        }

    return await asyncio.get_running_loop().run_in_executor(_drawer, run)
