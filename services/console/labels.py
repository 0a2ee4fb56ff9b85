"""Chinese words for the values the services answer with: presentation only, no rule of the measures."""

from __future__ import annotations

from common.vocabulary import FIELDS
from common.vocabulary import LABELS as CATALOG_LABELS

# the catalog's words (common.vocabulary) under the names the console's pages use, and the sharing lifecycle's
LABELS: dict[str, dict[str, str]] = {
    "category": CATALOG_LABELS["Category"],
    "share_type": CATALOG_LABELS["ShareType"],
    "share_method": CATALOG_LABELS["ShareMethod"],
    "open_attribute": CATALOG_LABELS["OpenAttribute"],
    "update_cycle": CATALOG_LABELS["UpdateCycle"],
    "item_type": CATALOG_LABELS["ItemType"],
    "status": CATALOG_LABELS["VersionStatus"],
    "request_status": {"PENDING": "待决定", "APPROVED": "已同意", "DENIED": "已拒绝", "REFUSED": "不予受理"},
    "decision": {"APPROVED": "同意", "DENIED": "拒绝"},
    "grant_status": {"ACTIVE": "有效", "REVOKED": "已撤销", "ENDED": "已终止"},
    "ruling": {"DECISION_UPHELD": "维持原决定", "DECISION_OVERTURNED": "改变原决定"},
    # the IT office's and oversight's pages (services/console/pages/city.py, oversight.py)
    "overdue_kind": CATALOG_LABELS["OverdueKind"],
    "demand_status": CATALOG_LABELS["DemandStatus"],
    "clash_kind": {"SECOND_SOURCE": "重复声明数据来源", "UNLINKED_DUPLICATE": "未关联已有数据元的同名数据项"},
    "finding_status": {"OPEN": "待整改", "CORRECTED": "已整改", "ESCALATED": "已通报批评"},
    "report_answer": {
        "AWAITED": "待市信息化工作办公室核实",
        "ACCEPTED": "已认可",
        "REJECTED": "已退回",
        "SUPERSEDED": "核实前已由后续事件证明整改，无需再核实",
    },
    "closed_by": {
        "REPORT": "部门整改报告经市信息化工作办公室认可",
        "IT_OFFICE": "市信息化工作办公室核实整改证明后结案",
        "EVENT": "后续事件证明已整改（审计服务）",
    },
    # Art. 24 (1)–(4), as the auditor's categories; the auditor answers each finding's article in full
    "finding_category": {
        "CATALOG_NOT_MAINTAINED": "未按要求编制或更新政务信息资源目录",
        "DATA_NOT_PROVIDED_IN_TIME": "未按要求及时提供共享数据",
        "DATA_INCONSISTENT_OR_UNUSABLE": "提供的共享数据不一致或无法使用",
        "USE_OUTSIDE_PURPOSE": "将共享数据用于履行职责以外的用途",
    },
    "level": {
        "CITY": "市直部门",
        "COUNTY": "县（市、区）",
        "ZONE": "功能区",
        "IT_OFFICE": "信息化工作办公室",
        "LEADERSHIP_GROUP": "领导小组",
    },
}
FACET_NAMES = {
    "provider_code": "提供部门",
    "category": "资源分类",
    "share_type": "共享类型",
    "share_method": "共享方式",
    "update_cycle": "更新周期",
    "status": "状态",
}
# The resource formats of the national compilation guide, offered in the entry form.
FORMATS = ("电子文件", "电子表格", "数据库", "图形图像", "流媒体", "自描述格式", "接口", "其他")


def label(value: object, kind: str) -> str:
    """The Chinese label of a service's value of `kind` (status, share_type …); the value itself if unknown."""
    if value is None or value == "":
        return ""
    return LABELS.get(kind, {}).get(str(value), str(value))


def options(kind: str) -> list[tuple[str, str]]:
    return list(LABELS[kind].items())


def field_name(field: str) -> str:
    """A finding's field (abstract, data_items[企业名称].length) in Chinese where it is a known one."""
    head, _, rest = field.partition("[")
    name = FIELDS.get(head, head)
    return f"{name}[{rest}" if rest else name
