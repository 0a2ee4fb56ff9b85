"""The written application (需求申请表) a conditional request is also printed as: the measures ask for a
system-generated form, signed and sealed on paper by both departments. A pure function of the request's
values; building a PDF is CPU work, so services call the async wrapper, which runs it in a worker thread.

The font is reportlab's built-in CID font STSong-Light (Adobe-GB1): the PDF names it and every reader brings
the glyphs, so nothing is embedded, downloaded or read from disk."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterable
from datetime import date
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from services.exchange.sharing.application import ApplicationForm
from services.exchange.sharing.grants import Channel

TITLE = "吉安市政务数据共享需求申请表"
FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))

__all__ = ["CHANNEL_NAMES", "TITLE", "ApplicationForm", "render_application_form", "render_application_form_async"]

CHANNEL_NAMES: dict[str, str] = {
    Channel.API: "接口调用",
    Channel.FILE_DOWNLOAD: "文件下载",
    Channel.ONLINE_BROWSE: "在线浏览",
    Channel.OFFLINE: "离线交换",
}
ITEMS_PER_ROW = 2
TEXT_CHUNK = 300  # characters of a long text per table row: a row never splits, so none may outgrow a page


def render_application_form(form: ApplicationForm) -> bytes:
    """The form as a PDF (A4): a bordered table like the paper one, continued on further pages when the
    data items or texts are long; every page's foot names the request."""
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=20 * mm,
        title=f"{TITLE} {form.request_id}",
        author="吉安市大数据中心",
        subject=form.request_id,
    )

    def foot(canvas: Canvas, _doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.drawString(18 * mm, 10 * mm, f"申请编号：{form.request_id}")
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"第 {canvas.getPageNumber()} 页")
        canvas.restoreState()

    story: list[Flowable] = [
        Paragraph(TITLE, _TITLE),
        Paragraph(f"申请编号：{_x(form.request_id)}", _RIGHT),
        Spacer(1, 3 * mm),
        _table(form),
    ]
    with _LOCK:
        doc.build(story, onFirstPage=foot, onLaterPages=foot)
    return out.getvalue()


async def render_application_form_async(form: ApplicationForm) -> bytes:
    """The same, in a worker thread: a long form takes a while to lay out and must not hold the event loop."""
    return await asyncio.to_thread(render_application_form, form)


# reportlab keeps module-level state (font and width caches, platypus sequencers): one form at a time. The
# work is CPU-bound under the GIL anyway, so the lock costs nothing a second thread would have gained.
_LOCK = threading.Lock()

_BODY = ParagraphStyle("body", fontName=FONT, fontSize=10.5, leading=15, wordWrap="CJK")
_LABEL = ParagraphStyle("label", parent=_BODY, alignment=TA_CENTER)
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=9, leading=12, alignment=TA_CENTER)
_RIGHT = ParagraphStyle("right", parent=_BODY, alignment=TA_RIGHT)
_TITLE = ParagraphStyle("title", parent=_BODY, fontSize=18, leading=26, alignment=TA_CENTER, spaceAfter=4 * mm)
_WIDTHS = [30 * mm, 57 * mm, 30 * mm, 57 * mm]
_SIGN_HEIGHT = 42 * mm
_PADDING = 6


def _x(text: str) -> str:
    """Values are text, never markup: `<`, `&` and line breaks print as written."""
    return escape(text).replace("\n", "<br/>")


def _p(text: str, style: ParagraphStyle = _BODY) -> Paragraph:
    return Paragraph(_x(text), style)


def _day(value: date) -> str:
    return f"{value.year}年{value.month}月{value.day}日"


def _chunks(text: str) -> list[str]:
    text = text.strip() or "（无）"
    return [text[i : i + TEXT_CHUNK] for i in range(0, len(text), TEXT_CHUNK)]


def _table(form: ApplicationForm) -> Table:
    rows: list[list[object]] = []
    spans: list[tuple[int, int, int, int]] = []  # (first column, row, last column, row)

    def pair(label1: str, value1: str, label2: str, value2: str) -> None:
        rows.append([_p(label1, _LABEL), _p(value1), _p(label2, _LABEL), _p(value2)])

    def wide(label: str, text: str) -> None:
        for n, chunk in enumerate(_chunks(text)):
            spans.append((1, len(rows), 3, len(rows)))
            rows.append([_p(label if n == 0 else f"{label}（续）", _LABEL), _p(chunk), "", ""])

    def heading(text: str) -> None:
        spans.append((0, len(rows), 3, len(rows)))
        rows.append([_p(text, _LABEL), "", "", ""])

    pair("申请单位", form.applicant_name, "统一社会信用代码", form.applicant_code)
    pair("申请人", form.applicant_person, "联系方式", form.contact)
    pair("数据提供单位", form.provider_name, "统一社会信用代码", form.provider_code)
    pair("资源代码", form.resource_code, "资源名称", form.resource_name)
    heading(f"申请共享的数据项（共 {len(form.data_items)} 项）")
    items_from = len(rows)
    for start in range(0, max(len(form.data_items), 1), ITEMS_PER_ROW):
        row: list[object] = []
        for n in range(start, start + ITEMS_PER_ROW):
            if n < len(form.data_items):
                row += [_p(str(n + 1), _SMALL), _p(form.data_items[n])]
            else:
                row += ["", _p("（无）") if n == 0 else ""]
        rows.append(row)
    wide("明文数据项", "、".join(form.unmasked) or "无（敏感数据项脱敏提供）")
    wide("共享范围", form.scope)
    wide("用途", form.purpose)
    wide("使用期限", f"自 {_day(form.period_from)} 至 {_day(form.period_to)}")
    pair("共享方式", _channels(form.channels), "调用系统", form.consumer_system or "申请单位的任一系统")
    pair("申请日期", _day(form.applied_on), "答复期限", f"{_day(form.decide_by)}前（10 个工作日）")
    signed_from = len(rows)
    for label, choices in (
        ("申请单位意见", None),
        ("提供单位意见", "□ 同意　　□ 部分同意（数据项、范围或期限）　　□ 不同意（须说明理由）"),
    ):
        spans.append((1, len(rows), 3, len(rows)))
        rows.append([_p(label, _LABEL), _signature_box(choices), "", ""])

    style = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.6, colors.black),
            ("BOX", (0, 0), (-1, -1), 1.2, colors.black),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("VALIGN", (1, signed_from), (-1, -1), "TOP"),
            ("BACKGROUND", (0, items_from - 1), (-1, items_from - 1), colors.HexColor("#EEEEEE")),
            ("LEFTPADDING", (0, 0), (-1, -1), _PADDING),
            ("RIGHTPADDING", (0, 0), (-1, -1), _PADDING),
            ("TOPPADDING", (0, 0), (-1, -1), 4),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            *(("SPAN", (c1, r1), (c2, r2)) for c1, r1, c2, r2 in spans),
        ]
    )
    heights: list[float | None] = [None] * len(rows)
    for n in range(signed_from, len(rows)):
        heights[n] = _SIGN_HEIGHT
    return Table(rows, colWidths=_WIDTHS, rowHeights=heights, style=style, splitByRow=1)


def _signature_box(choices: str | None) -> list[Flowable]:
    """Room for the opinion, then the signature, seal and date lines."""
    box = [_plain([choices], "LEFT")] if choices else []
    lines = _plain(["负责人（签字）：　　　　　　　　（盖章）", "年　　　月　　　日"], "RIGHT")
    return [*box, Spacer(1, (22 if choices else 28) * mm), lines]


def _plain(lines: list[str], align: str) -> Table:
    """Lines as drawn strings in a borderless table: they keep their ideographic spaces, which a paragraph
    would fold, and the blanks are where the pen goes."""
    style = [("FONT", (0, 0), (-1, -1), FONT, 10.5), ("ALIGN", (0, 0), (-1, -1), align)]
    style += [("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0)]
    return Table([[line] for line in lines], colWidths=[sum(_WIDTHS[1:]) - 2 * _PADDING], style=style)


def _channels(channels: Iterable[str]) -> str:
    return "、".join(CHANNEL_NAMES.get(c, c) for c in channels) or "（无）"
