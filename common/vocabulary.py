"""The Chinese words of the national compilation guide for a catalog entry's elements and the values they take:
one table for the catalog (its messages, exports, search facets) and the web console (its pages), so that
both say the same thing. Enumerations are named as the catalog's domain names them."""

from __future__ import annotations

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
    # of a data item
    "type": "数据类型",
    "description": "信息项描述",
    "length": "数据长度",
    "sensitive": "是否敏感",
    # of a confidentiality review
    "reviewed_by": "审查人",
    "reviewed_on": "审查日期",
    "conclusion": "审查结论",
}

LABELS: dict[str, dict[str, str]] = {
    "Category": {"BASE": "基础", "THEME": "主题", "DEPARTMENT": "部门"},
    "ShareType": {"UNCONDITIONAL": "无条件共享", "CONDITIONAL": "有条件共享", "NOT_SHARED": "不予共享"},
    "ShareMethod": {"API": "接口", "FILE_DOWNLOAD": "文件下载", "ONLINE_BROWSE": "在线浏览", "OFFLINE": "离线交换"},
    "OpenAttribute": {"OPEN": "开放", "CONDITIONALLY_OPEN": "有条件开放", "NOT_OPEN": "不开放"},
    "UpdateCycle": {
        "REAL_TIME": "实时",
        "DAILY": "每日",
        "WEEKLY": "每周",
        "MONTHLY": "每月",
        "QUARTERLY": "每季度",
        "HALF_YEARLY": "每半年",
        "YEARLY": "每年",
    },
    "ItemType": {
        "string": "字符型",
        "integer": "整型",
        "decimal": "数值型",
        "date": "日期型",
        "datetime": "日期时间型",
        "boolean": "布尔型",
        "binary": "二进制",
    },
    "VersionStatus": {
        "DRAFT": "草稿",
        "SUBMITTED": "待审核",
        "RETURNED": "退回修改",
        "PUBLISHED": "已发布",
        "SUPERSEDED": "已被新版本替代",
        "WITHDRAWN": "已撤销",
    },
    "OverdueKind": {"UPDATE_AFTER_CHANGE": "变更后逾期未更新", "YEARLY_MAINTENANCE": "逾期未年度维护"},
    "DemandStatus": {"OPEN": "待满足", "MATCHED": "已匹配", "CANCELLED": "已撤回", "UNMEETABLE": "无法满足"},
}
