"""The printable application form (需求申请表): a PDF any reader opens, with every value of the request."""

import asyncio
import io
from dataclasses import fields, replace
from datetime import date

from pypdf import PdfReader

from services.exchange.sharing.adapters.routes import attachment
from services.exchange.sharing.application import NAME_NOT_KNOWN, NO_CONTACT, application_form, scope_in_words
from services.exchange.sharing.form import (
    CHANNEL_NAMES,
    TITLE,
    ApplicationForm,
    render_application_form,
    render_application_form_async,
)
from services.exchange.sharing.grants import Channel, RowScope
from services.exchange.sharing.requests import ShareRequest, Terms

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


# -- the form of a share request ---------------------------------------------------------------------------

ASKED = Terms(("统一社会信用代码", "企业名称"), RowScope(("360802",)), date(2026, 12, 1), date(2027, 11, 30))
REQUEST = ShareRequest(
    request_id="20261127-0a1b2c3d4e",
    resource_code="101001/000001",
    provider_code="11360800MB2000001",
    consumer_code="11360800MB3000002",
    consumer_system="spj-approval-system",
    purpose="企业开办一件事",
    channels=frozenset({Channel.FILE_DOWNLOAD, Channel.API}),
    asked=ASKED,
    requested_by="xzspj-admin",
    requested_on=date(2026, 11, 27),
    decide_by=date(2026, 12, 11),
    entry_version=3,
)
NAMES = {"11360800MB2000001": "吉安市市场监督管理局", "11360800MB3000002": "吉安市行政审批局"}


def test_the_form_shows_the_request_as_applied_for_with_the_departments_names() -> None:
    form = application_form(REQUEST, NAMES, "企业登记基本信息")
    assert form == ApplicationForm(
        request_id="20261127-0a1b2c3d4e",
        applicant_name="吉安市行政审批局",
        applicant_code="11360800MB3000002",
        applicant_person="xzspj-admin",
        contact=NO_CONTACT,
        provider_name="吉安市市场监督管理局",
        provider_code="11360800MB2000001",
        resource_code="101001/000001",
        resource_name="企业登记基本信息",
        data_items=("统一社会信用代码", "企业名称"),
        scope="登记在行政区划代码 360802 范围内的主体",
        purpose="企业开办一件事",
        period_from=date(2026, 12, 1),
        period_to=date(2027, 11, 30),
        channels=("API", "FILE_DOWNLOAD"),
        consumer_system="spj-approval-system",
        applied_on=date(2026, 11, 27),
        decide_by=date(2026, 12, 11),
    )


def test_a_department_whose_name_is_not_known_yet_is_printed_by_its_code_saying_so() -> None:
    form = application_form(REQUEST, {"11360800MB2000001": "吉安市市场监督管理局"}, None)
    assert form.provider_name == "吉安市市场监督管理局"
    assert form.applicant_name == "11360800MB3000002" + NAME_NOT_KNOWN
    assert form.resource_name == "101001/000001"  # nor the resource's: its code stands in
    text = "".join(pages(render_application_form(form)))
    assert "".join(("11360800MB3000002" + NAME_NOT_KNOWN).split()) in text


def test_named_subjects_are_counted_on_the_form_never_listed() -> None:
    ids = frozenset(f"36080219800101{n:04d}" for n in range(1000))
    form = application_form(replace(REQUEST, asked=replace(ASKED, scope=RowScope(("3608",), ids))), NAMES, None)
    assert form.scope == (
        "登记在行政区划代码 3608 范围内的主体，且限于申请单位列明的 1000 个主体（名单随申请在平台存档，本表不列出）"
    )
    text = "".join(pages(render_application_form(form)))
    assert "1000个主体" in text and not any(i in text for i in ids)
    assert scope_in_words(RowScope()) == "全部主体（不限地区，不限具体主体）"


def test_the_download_is_named_after_the_request_number_in_ascii_and_exactly_in_utf8_when_it_must_be() -> None:
    assert attachment("20261127-0a1b2c3d4e.pdf") == 'attachment; filename="20261127-0a1b2c3d4e.pdf"'
    assert attachment('申请"1".pdf') == (
        "attachment; filename=\"___1_.pdf\"; filename*=UTF-8''%E7%94%B3%E8%AF%B7%221%22.pdf"
    )
