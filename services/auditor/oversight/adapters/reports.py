"""Documents for the IT office: the monthly and quarterly evaluation reports (HTML with charts, and PDF) and
the notice of criticism (通报批评) of an escalated finding. Charts are drawn with matplotlib (its object API,
no global state), PDFs with WeasyPrint; both are CPU work, run off the event loop (`in_thread`), one document
at a time."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Callable
from html import escape
from typing import TypeVar

from services.auditor.domain.findings import Finding, notice_text
from services.auditor.domain.scoring import FORMULA, INDICATORS, EvaluationReport, Figures

FONT = "AR PL UMing CN"  # Debian's fonts-arphic-uming; any CJK font the system has is taken when it is missing
CSS = f"""
@page {{ size: A4; margin: 18mm 15mm;
  @bottom-center {{ content: counter(page) " / " counter(pages); font-size: 9pt; }} }}
body {{ font-family: "{FONT}", "Noto Sans CJK SC", "WenQuanYi Zen Hei", sans-serif; font-size: 10.5pt; }}
h1 {{ font-size: 18pt; text-align: center; }} h2 {{ font-size: 13pt; border-bottom: 1px solid #888; }}
table {{ border-collapse: collapse; width: 100%; margin: 6pt 0; }}
th, td {{ border: 1px solid #999; padding: 2pt 4pt; font-size: 9pt; text-align: center; }}
td.text {{ text-align: left; }} .chart svg {{ width: 100%; height: auto; }} .small {{ font-size: 8.5pt; color: #444; }}
"""
_render_lock = threading.Lock()
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # the CJK font has only a light weight
T = TypeVar("T")


async def in_thread(job: Callable[[], T]) -> T:
    """Run a rendering job in a worker thread, one at a time, keeping the event loop free."""

    def run() -> T:
        with _render_lock:
            return job()

    return await asyncio.to_thread(run)


def _bar_chart(labels: list[str], values: list[float], title: str, limit: float) -> str:
    """A horizontal bar chart as inline SVG."""
    from matplotlib.figure import Figure

    height = max(2.2, 0.32 * len(labels) + 1.0)
    figure = Figure(figsize=(7.0, height))
    axes = figure.add_subplot()
    positions = list(range(len(labels)))[::-1]
    axes.barh(positions, values, color="#3b6ea5")
    axes.set_yticks(positions, labels, fontfamily=[FONT, "DejaVu Sans"], fontsize=8)
    axes.set_xlim(0, limit)
    axes.set_title(title, fontfamily=[FONT, "DejaVu Sans"], fontsize=10)
    for y, v in zip(positions, values, strict=True):
        axes.text(v, y, f" {v:.1f}", va="center", fontsize=7)
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg")
    svg = out.getvalue()
    return svg[svg.index("<svg") :]


def _line_chart(series: dict[str, list[float]], months: list[str], title: str) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 3.2))
    axes = figure.add_subplot()
    for label, values in series.items():
        axes.plot(months, values, marker="o", label=label)
    axes.set_ylim(0, 100)
    axes.set_title(title, fontfamily=[FONT, "DejaVu Sans"], fontsize=10)
    if len(series) <= 12:
        axes.legend(prop={"family": [FONT, "DejaVu Sans"], "size": 7}, loc="lower left")
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg")
    svg = out.getvalue()
    return svg[svg.index("<svg") :]


def _rate(f: Figures, name: str) -> str:
    rate = f.indicator(name).rate
    return "—" if rate is None else f"{rate * 100:.0f}%"


def report_html(report: EvaluationReport) -> str:
    """The report as one HTML document (charts inline), for a browser or for the PDF."""
    kind = "季度" if report.period.quarterly else "月度"
    rows = "".join(
        f"<tr><td>{r.rank}</td><td class='text'>{escape(report.name(r.figures.department_code))}</td>"
        f"<td>{escape(r.figures.department_code)}</td><td>{r.figures.score:.1f}</td>"
        + "".join(f"<td>{_rate(r.figures, n)}</td>" for n in INDICATORS)
        + "</tr>"
        for r in report.ranking
    )
    heads = "".join(f"<th>{escape(label)}</th>" for label, _ in INDICATORS.values())
    chart = (
        _bar_chart(
            [report.name(r.figures.department_code) for r in report.ranking],
            [r.figures.score for r in report.ranking],
            f"{report.period.label} 得分",
            100,
        )
        if report.ranking
        else ""
    )
    averages = [
        100 * sum(r.figures.indicator(n).rate or 0 for r in applying) / len(applying) if applying else 0.0
        for n in INDICATORS
        for applying in [[r for r in report.ranking if r.figures.indicator(n).applies]]
    ]
    indicator_chart = _bar_chart([label for label, _ in INDICATORS.values()], averages, "各项指标平均完成率 (%)", 100)
    months = ""
    if report.months:
        labels = [p.label for p, _ in report.months]
        series = {
            report.name(r.figures.department_code): [
                next((m.figures.score for m in ranked if m.figures.department_code == r.figures.department_code), 0.0)
                for _, ranked in report.months
            ]
            for r in report.ranking[:10]
        }
        month_rows = "".join(
            f"<tr><td class='text'>{escape(name)}</td>" + "".join(f"<td>{v:.1f}</td>" for v in values) + "</tr>"
            for name, values in series.items()
        )
        months = (
            "<h2>三、逐月得分</h2><table><tr><th>部门</th>"
            + "".join(f"<th>{escape(m)}</th>" for m in labels)
            + f"</tr>{month_rows}</table><div class='chart'>{_line_chart(series, labels, '逐月得分（前十名）')}</div>"
        )
    shortfalls = "".join(
        f"<h3>{escape(report.name(r.figures.department_code))}（{r.figures.score:.1f} 分）</h3><ul>"
        + "".join(
            f"<li>{escape(i.label)}：{i.counted}/{i.out_of}；{escape('；'.join(i.evidence[:5]))}</li>"
            for i in r.figures.indicators
            if i.applies and (i.rate or 0) < 1
        )
        + "</ul>"
        for r in report.ranking
        if any(i.applies and (i.rate or 0) < 1 for i in r.figures.indicators)
    )
    weights = "".join(
        f"<tr><td>{escape(label)}</td><td class='text'>{escape(meaning)}</td><td>{report.weights.get(n, 0):g}</td></tr>"
        for n, (label, meaning) in INDICATORS.items()
    )
    return (
        f"<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'><title>政务数据共享工作{kind}考核报告 "
        f"{report.period.label}</title><style>{CSS}</style></head><body>"
        f"<h1>吉安市政务数据共享工作{kind}考核报告</h1>"
        f"<p style='text-align:center'>考核期：{report.period.start} 至 {report.period.end}　"
        f"市信息化工作办公室　{report.issued_on}</p>"
        f"<h2>一、排名</h2><table><tr><th>名次</th><th>部门</th><th>统一社会信用代码</th><th>得分</th>{heads}</tr>"
        f"{rows}</table><div class='chart'>{chart}</div>"
        f"<h2>二、指标完成情况</h2><div class='chart'>{indicator_chart}</div>{months}"
        f"<h2>{'四' if months else '三'}、问题清单</h2>{shortfalls or '<p>无。</p>'}"
        f"<h2>{'五' if months else '四'}、计分方法</h2><p class='small'>{escape(FORMULA)}</p>"
        f"<table><tr><th>指标</th><th>含义</th><th>权重</th></tr>{weights}</table>"
        "</body></html>"
    )


def notice_html(finding: Finding, department_name: str) -> str:
    """The notice of criticism of an escalated finding, for the city government."""
    evidence = "".join(f"<li>{escape(e)}</li>" for e in finding.evidence)
    return (
        "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<title>通报批评 {escape(finding.finding_id)}</title><style>{CSS}</style></head><body>"
        f"<h1>关于对{escape(department_name)}的通报批评</h1>"
        f"<p style='text-align:center'>市信息化工作办公室　{finding.escalated_on}　"
        f"编号 {escape(finding.finding_id)}</p>"
        f"<p>市人民政府：</p><p>{escape(notice_text(finding, department_name))}</p>"
        f"<h2>违规情形</h2><p>{escape(finding.article)}</p>"
        f"<h2>证据（共 {finding.occurrences} 次）</h2><ul>{evidence}</ul>"
        f"<table><tr><th>发现日期</th><th>整改期限</th><th>通报日期</th></tr><tr><td>{finding.detected_on}</td>"
        f"<td>{finding.correct_by}</td><td>{finding.escalated_on}</td></tr></table>"
        "</body></html>"
    )


def pdf_of(html: str) -> bytes:
    from weasyprint import HTML

    return HTML(string=html).write_pdf()
