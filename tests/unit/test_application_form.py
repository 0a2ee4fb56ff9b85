"""The printable application form (需求申请表): a PDF any reader opens, with every value of the request."""

import asyncio
import io
from dataclasses import fields, replace
from datetime import date

from pypdf import PdfReader

from services.exchange.sharing.form import (
    CHANNEL_NAMES,
    TITLE,
    ApplicationForm,
    render_application_form,
    render_application_form_async,
)

FORM = ApplicationForm(
    request_id="SQ-2026-000123",
    applicant_name="吉安市行政审批局",
    applicant_code="11360800MB3000002",
    applicant_person="王芳",
    contact="0796-8221234",
    provider_name="吉安市市场监督管理局",
    provider_code="11360800MB2000001",
    resource_code="101001/000001",
    resource_name="企业登记基本信息",
    data_items=("统一社会信用代码", "企业名称", "法定代表人", "住所"),
    scope="仅限在吉州区（360802）登记的企业",
    purpose="企业开办一件事：核验申请人提交的营业执照信息",
    period_from=date(2026, 12, 1),
    period_to=date(2027, 11, 30),
    channels=("API", "FILE_DOWNLOAD"),
    consumer_system="spj-approval-system",
    applied_on=date(2026, 11, 27),
    decide_by=date(2026, 12, 11),
)


def pages(pdf: bytes) -> list[str]:
    """Each page's text without white space: a value that wraps onto two lines is found whole."""
    return ["".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages]


def printed(value: object) -> list[str]:
    """How the form prints one value."""
    if isinstance(value, date):
        return [f"{value.year}年{value.month}月{value.day}日"]
    if isinstance(value, tuple):
        return [CHANNEL_NAMES.get(v, v) for v in value]
    return ["".join(str(value).split())]


def test_the_form_is_a_pdf_with_the_title_the_request_number_and_the_chinese_texts() -> None:
    pdf = render_application_form(FORM)
    assert pdf.startswith(b"%PDF-")
    text = "".join(pages(pdf))
    for expected in (TITLE, "申请编号：SQ-2026-000123", "吉安市行政审批局", "企业登记基本信息", "接口调用、文件下载"):
        assert expected in text
    for box in ("申请单位意见", "提供单位意见", "负责人（签字）", "（盖章）"):
        assert box in text  # room for both departments' signatures and seals


def test_no_value_of_the_request_is_left_off() -> None:
    form = replace(FORM, scope="名单内的主体 <甲> & <乙>\n共 3 户")  # markup characters print as written
    text = "".join(pages(render_application_form(form)))
    for f in fields(ApplicationForm):
        for value in printed(getattr(form, f.name)):
            assert value in text, f"{f.name}: {value!r} is not on the form"


def test_two_hundred_data_items_continue_on_further_pages_each_naming_the_request() -> None:
    items = tuple(f"数据项{n:03d}企业经营范围说明" for n in range(200))
    pdf = render_application_form(replace(FORM, data_items=items, purpose="用于企业开办一件事。" * 400))
    texts = pages(pdf)
    assert len(texts) >= 4
    assert all("SQ-2026-000123" in page for page in texts)
    text = "".join(texts)
    assert "共200项" in text and all(item in text for item in items)
    assert "用于企业开办一件事。" * 30 in text  # a 4,000-character purpose is continued, not cut


def test_a_request_without_a_named_system_or_items_still_prints_every_box() -> None:
    text = "".join(pages(render_application_form(replace(FORM, data_items=(), consumer_system=None, channels=()))))
    assert "申请单位的任一系统" in text and "共0项" in text and "提供单位意见" in text


async def test_the_async_form_leaves_the_event_loop_free_while_it_is_laid_out() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    big = replace(FORM, data_items=tuple(f"数据项{n}" for n in range(600)))
    pdf = await render_application_form_async(big)
    ticker.cancel()
    assert ticks >= 3 and len(pages(pdf)) > 1
