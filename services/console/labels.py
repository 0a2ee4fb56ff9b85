"""Chinese words for the values the services answer with: presentation only, no rule of the measures."""

from __future__ import annotations

LABELS: dict[str, dict[str, str]] = {
    "category": {"BASE": "基础", "THEME": "主题", "DEPARTMENT": "部门"},
    "share_type": {"UNCONDITIONAL": "无条件共享", "CONDITIONAL": "有条件共享", "NOT_SHARED": "不予共享"},
    "share_method": {"API": "接口", "FILE_DOWNLOAD": "文件下载", "ONLINE_BROWSE": "在线浏览", "OFFLINE": "离线交换"},
    "open_attribute": {"OPEN": "开放", "CONDITIONALLY_OPEN": "有条件开放", "NOT_OPEN": "不开放"},
    "update_cycle": {
        "REAL_TIME": "实时",
        "DAILY": "每日",
        "WEEKLY": "每周",
        "MONTHLY": "每月",
        "QUARTERLY": "每季度",
        "HALF_YEARLY": "每半年",
        "YEARLY": "每年",
    },
    "item_type": {
        "string": "字符型",
        "integer": "整型",
        "decimal": "数值型",
        "date": "日期型",
        "datetime": "日期时间型",
        "boolean": "布尔型",
        "binary": "二进制",
    },
    "status": {
        "DRAFT": "草稿",
        "SUBMITTED": "待审核",
        "RETURNED": "退回修改",
        "PUBLISHED": "已发布",
        "SUPERSEDED": "已被新版本替代",
        "WITHDRAWN": "已撤销",
    },
    "request_status": {"PENDING": "待决定", "APPROVED": "已同意", "DENIED": "已拒绝", "REFUSED": "不予受理"},
    "decision": {"APPROVED": "同意", "DENIED": "拒绝"},
}
FACET_NAMES = {
    "provider_code": "提供部门",
    "category": "资源分类",
    "share_type": "共享类型",
    "share_method": "共享方式",
    "update_cycle": "更新周期",
    "status": "状态",
}
FIELDS = {
    "name": "资源名称",
    "abstract": "资源摘要",
    "category": "资源分类",
    "format": "资源格式",
    "data_items": "信息项",
    "share_type": "共享类型",
    "share_conditions": "共享条件",
    "not_shared_basis": "不予共享依据",
    "share_methods": "共享方式",
    "open_attribute": "开放属性",
    "update_cycle": "更新周期",
    "related_codes": "关联资源代码",
    "confidentiality_review": "保密审查",
    "type": "数据类型",
    "description": "信息项描述",
    "length": "数据长度",
    "sensitive": "是否敏感",
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
