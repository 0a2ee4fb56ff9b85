"""The catalog's words for people: the Chinese message of every rule code its refusals carry, and the Chinese
names of an entry's fields and the labels of its enumerations (as the compilation guide words them, in
common.vocabulary, which the web console shows too).

One place: a new rule adds its code and message here; the HTTP layer puts the code and the message beside
the machine-readable error body (common.http)."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from common.errors import DomainError
from common.vocabulary import FIELDS, LABELS

MESSAGES: dict[str, str] = {
    # the content of an entry
    "catalog.entry.name_missing": "资源名称不能为空",
    "catalog.entry.items_repeated": "信息项名称不能重复：{names}",
    "catalog.entry.item_unnamed": "每个信息项都要有名称",
    "catalog.entry.too_large": "资源内容约 {size} KB，超过单个条目可容纳的 {limit} KB；请精简描述或拆分资源",
    "catalog.entry.not_shared_basis_missing": "不予共享的资源须注明法律、法规或政策依据",
    "catalog.entry.item_length": "信息项“{item}”的数据长度须为正数",
    "catalog.entry.item_not_shared_basis_missing": "不予共享的信息项“{item}”须注明依据（或由资源的不予共享依据涵盖）",
    "catalog.entry.format_unknown": "资源格式“{format}”不在编制指南所列格式中：{formats}",
    "catalog.entry.class_category": "资源分类“{category}”与资源代码 {code} 的类码（{expected}）不一致",
    "catalog.entry.related_code": "“{code}”不是有效的资源代码",
    "catalog.entry.mandatory": "{field}为必填项",
    "catalog.entry.share_methods_missing": "共享的资源至少要有一种共享方式",
    "catalog.entry.review_missing": "资源须经保密审查后方可共享（第二十条）",
    "catalog.entry.conditions_missing": "有条件共享的资源须写明共享条件",
    "catalog.entry.provider_code": "资源提供方代码无效：{reason}",
    "catalog.entry.resource_code_format": "资源代码应为6位分类码（类1位、项2位、目3位）加“/”和6位顺序码",
    "catalog.entry.resource_code_class": "资源代码的类码应为 1（基础）、2（主题）或 3（部门）",
    "catalog.entry.classification_format": (
        "分类码应为6位数字：类1位、项2位、目3位；类码为1（基础）、2（主题）或3（部门）"
    ),
    "catalog.entry.classification_full": "该分类下的顺序码已用完",
    # the life of an entry
    "catalog.entry.not_found": "目录中没有资源代码为 {code} 的条目",
    "catalog.entry.content_not_kept": "条目 {code} 第 {version} 版的完整内容已不再保留，仅保留其记录与摘要值",
    "catalog.entry.version_not_found": "条目 {code} 没有第 {version} 版",
    "catalog.entry.exists": "资源代码 {code} 已在目录中",
    "catalog.entry.exists_import": "以下资源代码已在目录中：{codes}；本次未导入任何条目",
    "catalog.entry.stale": "条目已被他人修改（当前修订号 {current}，您提交的是 {sent}），请刷新后重新操作",
    "catalog.entry.stale_write": "条目已被他人修改，请刷新后重新操作",
    "catalog.entry.withdrawn_not_editable": "已撤销的条目不能再修改",
    "catalog.entry.under_review": "第 {version} 版正在审核中，请等待审核结果",
    "catalog.entry.not_submittable": "只有草稿或退回修改的版本可以提交审核",
    "catalog.entry.unchanged_after_return": "第 {version} 版被退回后未作任何修改，请按审核意见修改后再提交",
    "catalog.entry.nothing_to_review": "该条目没有待审核的版本",
    "catalog.entry.findings_missing": "退回修改须至少提出一条审核意见",
    "catalog.entry.finding_unknown_field": "审核意见指向的字段不存在：{unknown}；可用的字段有：{valid}",
    "catalog.entry.not_withdrawable": "只有已发布的条目可以撤销",
    "catalog.entry.not_published": "只有已发布的条目需要随资源变更而更新",
    "catalog.entry.change_in_future": "变更日期不能晚于今天",
    "catalog.entry.change_reason_missing": "请说明变更内容",
    "catalog.entry.change_before_publication": "现行版本发布于 {published_on}，晚于该变更，已包含该变更",
    "catalog.entry.withdrawal_reason": "撤销条目须说明理由",
    "catalog.entry.maintenance_unpublished": "只有已发布的条目需要年度维护",
    "catalog.entry.maintenance_change_pending": (
        "该资源已于 {changed_on} 报告变更，须在 {due_on} 前更新条目，不能确认为“无变化”"
    ),
    # one data, one source (Art. 12)
    "catalog.entry.item_source_and_reference": "信息项“{item}”要么是某数据元的来源，要么引用某数据元，不能两者兼是",
    "catalog.source.exception_basis_missing": "一数一源的例外须注明法律依据",
    "catalog.source.exception_not_flagged": "“{item}”不是本条目被标记为重复来源的信息项（被标记的有：{flagged}）",
    "catalog.source.withdrawal_referred": (
        "其他部门的现行条目 {codes} 引用了只由本条目提供的数据元 {elements}；"
        "请先由信息化工作办公室为该数据元指定其他权威来源，或由这些条目取消引用"
    ),
    "catalog.source.duplicate": (
        "以下信息项已由其他部门提供：{clashes}；请引用该数据元、删去这些信息项，或由信息化工作办公室登记法定例外（一数一源）"
    ),
    # demands (Art. 14)
    "catalog.demand.not_found": "没有编号为 {demand_id} 的共享需求",
    "catalog.demand.title_missing": "请说明需要什么数据",
    "catalog.demand.already_matched": "该需求已由资源 {code} 满足",
    "catalog.demand.entry_not_published": "条目 {code} 未发布，只有已发布的条目可以满足需求",
    "catalog.demand.match_uncovered": (
        "条目 {code} 不含所需的任何信息项（{wanted}）；如仍认定满足，须由信息化工作办公室说明理由"
    ),
    "catalog.demand.not_matched": "该需求当前状态为“{status}”，没有可撤销的匹配",
    "catalog.demand.unmatch_reason": "撤销匹配须说明理由",
    "catalog.demand.closed": "该需求的状态为“{status}”，不能再办理",
    "catalog.demand.cancel_reason": "撤回需求须说明理由",
    "catalog.demand.unmeetable_reason": "认定需求无法满足须说明理由",
    "catalog.demand.unmeetable_basis": "认定需求无法满足须注明法律、法规或政策依据（第十四条）",
    "catalog.demand.wanted_too_many": "一项需求最多列出 {max} 个所需信息项（您列出了 {count} 个）",
    # the data-element dictionary
    "catalog.element.identifier": "数据元标识符应为 1 至 32 位字母、数字或“.”“_”“-”，如 DE0001",
    "catalog.element.name_missing": "数据元须有标准名称",
    "catalog.element.alias_repeated": "同义名称重复列出",
    "catalog.element.name_too_long": "标准名称最多 {max} 个字",
    "catalog.element.definition_too_long": "定义最多 {max} 个字",
    "catalog.element.source_code": "权威来源部门代码无效：{reason}",
    "catalog.element.aliases_too_many": "一个数据元最多 {max} 个同义名称，每个同义名称最多 {length} 个字",
    "catalog.element.source_unknown": "权威来源部门代码 {code} 不是目录已登记的部门",
    "catalog.element.rows_too_many": "表格有 {count} 个数据元，一次最多导入 {max} 个；请分批导入",
    # search
    "catalog.search.limit": "每页条数应在 1 到 {max} 之间",
    "catalog.search.offset": "起始位置不能为负数",
    "catalog.search.query_too_long": "检索词最多 200 个字",
    # import
    "catalog.import.not_utf8": "CSV 文件须为 UTF-8 或 GBK（GB18030）编码",
    "catalog.import.file_type": "请上传 .xlsx 或 .csv 文件",
    "catalog.import.unreadable_xlsx": "无法读取该 XLSX 工作簿",
    "catalog.import.rows": "表格有 {count} 处错误，未导入任何条目：{errors}",
}


def message(code: str, /, **params: object) -> str:
    """The Chinese message of a rule code, its blanks filled in."""
    return MESSAGES[code].format(**params)


def field_label(name: str) -> str:
    return FIELDS.get(name, name)


def label(value: StrEnum | None) -> str:
    """The Chinese label of an enumeration value (e.g. Category.BASE → 基础)."""
    if value is None:
        return ""
    return LABELS.get(type(value).__name__, {}).get(value.value, value.value)


E = TypeVar("E", bound=DomainError)


def worded(error: E, code: str, /, **params: object) -> E:
    """A refusal with its rule code and Chinese message beside the machine-readable field and rule."""
    error.code = code
    error.message = message(code, **params)
    return error
