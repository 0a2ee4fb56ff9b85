"""A service's refusal in plain Chinese, with what the person can do next: presentation only, no rule of the
measures. A 403 of every service carries the access rule it applied (`rule`) and the reason (`detail`, the
policy's or the exchange's words, which name only the caller's own grant), a domain error (404, 409, 422) the
rule it broke (`rule`); the known reasons are worded here, and anything else falls back to the service's own
message."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from common.policy import RULES
from services.console.clients import Refused
from services.console.labels import label
from services.console.session import ROLE_NAMES

APPLY_AGAIN = "如仍需使用这些数据，请重新提出共享申请（无条件共享的资源可直接订阅）。"
APPLY_LINK = ("/requests/new", "提出共享申请")


@dataclass(frozen=True)
class Explanation:
    """What happened and what to do next, both shown on the refusal's page."""

    message: str
    next_step: str = ""
    link: tuple[str, str] | None = None  # (href, words) of the page where the next step is taken
    detail: str = ""  # the service's own words, in small print, where the console has none of its own


Wording = Callable[[re.Match[str], Refused], Explanation]


def _channel(value: str) -> str:
    return label(value, "share_method")


def _channels(values: str) -> str:
    return "、".join(f"“{_channel(v.strip())}”" for v in values.split(",") if v.strip())


def _names(values: Iterable[str]) -> str:
    return "、".join(ROLE_NAMES[v] for v in values if v in ROLE_NAMES)


def _roles_needed(match: re.Match[str], refused: Refused) -> Explanation:
    # only the roles a person can hold: a machine identity (an adapter, a consumer system) is no one to ask
    rule = RULES.get(refused.rule or "")
    needed = sorted(rule.roles) if rule else [r.strip() for r in match["who"].split(",")]
    if not _names(needed):
        return Explanation("这项操作由部门的接入系统调用办理，不能由个人在控制台办理。")
    return Explanation(
        f"这项操作需要以下角色之一：{_names(needed)}。您当前的角色不在其中。",
        "请由本部门具有该角色的同事办理；如确需此角色，请联系信息化工作办公室在目录与身份服务中设置。",
    )


def _revoked(match: re.Match[str], refused: Refused) -> Explanation:
    why = f"撤销理由：{match['why']}。" if match["why"] else ""
    when = f"（本部门于 {refused.on} 收到撤销通知）" if refused.on else ""
    return Explanation(f"这项共享授权已被提供部门撤销{when}，不能再用它访问数据。{why}", APPLY_AGAIN, APPLY_LINK)


def _ended(match: re.Match[str], _refused: Refused) -> Explanation:
    why = f"原因：{ended_reason(match['why'])}。" if match["why"] else ""
    return Explanation(f"这项共享授权已终止，不能再用它访问数据。{why}", APPLY_AGAIN, APPLY_LINK)


def _not_offered(match: re.Match[str], _refused: Refused) -> Explanation:
    return Explanation(
        f"资源 {match['code']} 不提供{_channels(match['missing'])}方式。",
        f"它提供的共享方式：{_channels(match['offered']) or '无'}；请只勾选这些方式。",
    )


def _missing(match: re.Match[str], _refused: Refused) -> Explanation:
    what = FIELDS_ZH.get(match["field"], match["field"])
    return Explanation(f"没有填写{what}。", f"请填写{what}后再提交。")


def _final(match: re.Match[str], _refused: Refused) -> Explanation:
    status = label(match["status"], "request_status")
    return Explanation(f"这项申请已经答复（{status}），答复一经作出不能更改。")


def _said(message: str, next_step: str = "", link: tuple[str, str] | None = None) -> Wording:
    """A wording whose blanks are the reason's named groups (a channel shown by its Chinese name)."""

    def word(match: re.Match[str], _refused: Refused) -> Explanation:
        blanks = {k: _channel(v) if k == "channel" else v for k, v in match.groupdict().items()}
        return Explanation(message.format(**blanks), next_step.format(**blanks), link)

    return word


FIELDS_ZH = {"purpose": "用途", "reasons": "理由", "reason": "理由", "audience": "发布的渠道和对象", "grounds": "理由"}
CATALOG_LINK = ("/catalog", "查询资源目录")
OWN_DEPARTMENT = "请以本部门的身份办理本部门的事项；涉及其他部门的，请由该部门办理。"
# The reasons the services give (common.policy, the exchange's grants and access checks, its subscriptions and
# consents), each as a pattern over the whole reason. tests/unit/test_console_wordings.py makes the domain code
# produce each of them but the few it names as matched from fixed texts.
WORDINGS: list[tuple[re.Pattern[str], Wording]] = [
    (re.compile(r"requires one of: (?P<who>.+)"), _roles_needed),
    (
        re.compile(r"allowed only for the principal's own department"),
        _said("这项操作只能针对本部门的事项，所涉事项属于其他部门。", OWN_DEPARTMENT),
    ),
    (
        re.compile(r"a reviewer never reviews an entry she compiled or edited \(four eyes\)"),
        _said("审核人不能审核自己编制或修改过的目录条目（编审分离）。", "请由本部门另一位审核人审核。"),
    ),
    (
        re.compile(r"only the applicant, the provider and oversight see a request or grant"),
        _said("只有申请部门、提供部门和监督部门可以查看这项申请或授权。"),
    ),
    (
        re.compile(r"a department sees only its own figures and findings"),
        _said("各部门只能查看本部门的考核数据和整改事项；全市的情况由信息化工作办公室、领导小组和审计人员查看。"),
    ),
    (
        re.compile(r"only oversight sees another department's refused changes"),
        _said("只有监督部门可以查看其他部门被拒收的数据变更。"),
    ),
    (
        re.compile(r"a department reads and sets only its own notifications; the IT office every department's"),
        _said("各部门只能查看和设置本部门的通知。"),
    ),
    (
        re.compile(r"a data administrator manages only her own department's (?:machine identities|webhooks)"),
        _said("数据管理员只能管理本部门的接入系统和回调地址。", OWN_DEPARTMENT),
    ),
    (
        re.compile(r"only oversight lists the disputes of every department"),
        _said("只有信息化工作办公室和领导小组可以查看各部门的共享争议。"),
    ),
    # the exchange's checks of a grant named in a call (API, online browse, downloads)
    (re.compile(r"the grant was revoked(?:: (?P<why>.+))?", re.S), _revoked),
    (re.compile(r"the grant has ended(?:: (?P<why>.+))?", re.S), _ended),
    (
        re.compile(r"the grant expired on (?P<day>\d{4}-\d{2}-\d{2})"),
        _said("这项共享授权已于 {day} 到期，不能再用它访问数据。", APPLY_AGAIN, APPLY_LINK),
    ),
    (
        re.compile(r"the grant is valid from (?P<day>\d{4}-\d{2}-\d{2})"),
        _said("这项共享授权自 {day} 起生效，现在还不能用它访问数据。", "请在生效之日后再访问。"),
    ),
    (
        re.compile(r"the grant is another department's"),
        _said("这项共享授权属于其他部门，本部门不能凭它访问数据。", "请使用本部门获得的授权，或提出共享申请。"),
    ),
    (
        re.compile(r"the grant is for consumer system (?P<system>.+)"),
        _said(
            "这项共享授权只供本部门的消费系统 {system} 调用，不能由个人在控制台使用。",
            "如需在线浏览，请申请一项不限定消费系统的授权。",
        ),
    ),
    (
        re.compile(r"the grant is another consumer system's"),
        _said("这项共享授权只供本部门的另一个消费系统调用。"),
    ),
    (
        re.compile(r"the grant does not open the (?P<channel>[A-Z_]+) channel"),
        _said(
            "这项共享授权没有开通“{channel}”方式。",
            "如需以这种方式使用，请提出共享申请并勾选“{channel}”。",
            APPLY_LINK,
        ),
    ),
    (
        re.compile(r"the stated purpose is not the grant's"),
        _said(
            "所填用途与这项授权批准的用途不一致。共享数据只能用于授权的用途（第十八条），这次访问已被拒绝并记录。",
            "请按授权页上载明的用途填写后再浏览；用途不同的，须另行申请。",
        ),
    ),
    (
        re.compile(r"no such grant for this resource"),
        _said("这项资源没有这一共享授权。", "请从“共享授权”页面进入。", ("/grants", "查看本部门的授权")),
    ),
    (re.compile(r"the call names no grant.*"), _said("访问没有指明所凭的共享授权。")),
    (re.compile(r"the call states no purpose.*"), _said("访问没有说明用途。", "请填写使用目的后再访问。")),
    (
        re.compile(r"the exchange holds no published resource of this code"),
        _said("数据交换服务中没有这项已发布的资源（可能尚未发布或已被撤销）。"),
    ),
    (
        re.compile(r"the resource is not shared: (?P<basis>.+)", re.S),
        _said("这项资源不予共享，依据：{basis}。"),
    ),
    (
        re.compile(r"the resource is not shared through the (?P<channel>[A-Z_]+) channel"),
        _said("这项资源不提供“{channel}”共享方式。", "请查看目录条目所列的共享方式。"),
    ),
    (
        re.compile(r"the resource has no recorded confidentiality review.*"),
        _said("这项资源尚未登记保密审查结论（第二十条），暂不能共享。", "请联系提供部门完成保密审查后再使用。"),
    ),
    (
        re.compile(r"version (?P<version>\d+) of the entry does not offer the (?P<channel>[A-Z_]+) channel"),
        _said("目录条目第 {version} 版已不再提供“{channel}”方式，原授权不能以此方式使用。", APPLY_AGAIN),
    ),
    (
        re.compile(r"items outside the grant: (?P<items>.+)"),
        _said("所选信息项不在授权范围内：{items}。", "只能选择授权页上列出的信息项。"),
    ),
    # the exchange's refusals of a subscription or a publication consent (409, 422)
    (
        re.compile(r"(?P<items>.+) are shared on conditions: apply \(POST /requests\)"),
        _said("{items} 是有条件共享的数据项，不能订阅。", "请对这些数据项提出共享申请。", APPLY_LINK),
    ),
    (
        re.compile(r"(?P<code>.+) has no unconditional data item: apply \(POST /requests\)"),
        _said("资源 {code} 没有无条件共享的数据项，不能订阅。", "请提出共享申请。", APPLY_LINK),
    ),
    (
        re.compile(r"these items are shared unconditionally: subscribe \(POST /subscriptions\)"),
        _said(
            "这些数据项是无条件共享的，无需申请。",
            "请直接订阅。",
            ("/subscriptions/new", "订阅"),
        ),
    ),
    # the exchange's checks of a subscription's or an application's terms (sharing/handlers.py, requests.py)
    (
        re.compile(r"(?P<code>.+) is not in the published catalog"),
        _said(
            "资源 {code} 不在已发布的资源目录中（可能尚未发布或已撤销）。", "请在资源目录中核对资源代码。", CATALOG_LINK
        ),
    ),
    (
        re.compile(r"(?P<code>.+) is not shared \(不予共享\): (?P<basis>.+)", re.S),
        _said("资源 {code} 不予共享，依据：{basis}。"),
    ),
    (
        re.compile(r"data items (?P<items>.+) are not shared: (?P<basis>.+)", re.S),
        _said("数据项 {items} 不予共享，依据：{basis}。", "请只填写可以共享的数据项。"),
    ),
    (
        re.compile(r"(?P<code>.+) has no recorded confidentiality review: .*", re.S),
        _said("资源 {code} 尚未登记保密审查结论（第二十条），暂不能共享。", "请联系提供部门完成保密审查后再办理。"),
    ),
    (re.compile(r"name at least one channel"), _said("没有选择共享方式。", "请至少勾选一种共享方式。")),
    (
        re.compile(r"(?P<code>.+) is not shared by (?P<missing>[A-Z_, ]+); it is by (?P<offered>[A-Z_, ]*)"),
        _not_offered,
    ),
    (re.compile(r"valid_to is before valid_from"), _said("使用期限的截止日早于起始日。", "请重新填写使用期限。")),
    (
        re.compile(r"the period ended before today \((?P<day>\d{4}-\d{2}-\d{2})\)"),
        _said("使用期限在今天（{day}）之前就已结束。", "请填写今天或以后的截止日。"),
    ),
    (
        re.compile(r"a grant lasts at most (?P<days>\d+) days; apply again for a longer need"),
        _said("一项授权的使用期限最长 {days} 天。", "请缩短使用期限；需要更久的，到期前重新办理。"),
    ),
    (
        re.compile(r"a grant ends by (?P<day>\d{4}-\d{2}-\d{2}) at the latest"),
        _said("授权的使用期限最晚到 {day}。", "请把截止日填在这一天或之前。"),
    ),
    (
        re.compile(r"a grant starts at most (?P<days>\d+) days ahead; apply nearer the time"),
        _said("使用期限最早只能从 {days} 天之内的某一天开始。", "请临近使用时再办理。"),
    ),
    (
        re.compile(r"(?P<items>.+) are not data items of (?P<code>.+)"),
        _said("{items} 不是资源 {code} 的数据项。", "请按目录条目所列的数据项名称填写。"),
    ),
    (re.compile(r"a data item is named twice"), _said("有数据项填写了两次。", "每个数据项只填一次。")),
    (re.compile(r"(?P<field>purpose|reasons|reason|audience|grounds) (?:must be given|is required)"), _missing),
    (
        re.compile(r"your department provides this resource; it needs no request"),
        _said("本部门就是这项资源的提供部门，无需申请。"),
    ),
    (
        re.compile(r"regions are division code prefixes of 2, 4 or 6 digits \(GB/T 2260\), not (?P<bad>.+)"),
        _said("数据范围须为 2、4 或 6 位的行政区划代码（GB/T 2260），以下不符：{bad}。"),
    ),
    (re.compile(r"the (?:request|consent) is (?P<status>[A-Z_]+) already; a decision is final"), _final),
    (
        re.compile(r"no grant of your department has this id"),
        _said("本部门没有这一编号的授权。", "请从本部门获得的授权中选择。", ("/grants", "查看本部门的授权")),
    ),
    (
        re.compile(r"the grant is (?:REVOKED|ENDED): no consent is asked under it"),
        _said("这项授权已撤销或终止，不能再据此申请对外发布。"),
    ),
    (
        re.compile(r"the grant expired on (?P<day>\d{4}-\d{2}-\d{2}): no consent is asked"),
        _said("这项授权已于 {day} 到期，不能再据此申请对外发布。"),
    ),
]

ENDED_REASONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"the entry was withdrawn \(version (?P<version>\d+)\)"), "目录条目已撤销（第 {version} 版）"),
    (
        re.compile(r"version (?P<version>\d+) of the entry is (?P<now>[A-Z_]+), stricter than (?P<before>[A-Z_]+)"),
        "目录条目第 {version} 版收紧了共享类型",
    ),
    (
        re.compile(r"version (?P<version>\d+) of the entry carries no confidentiality review.*"),
        "目录条目第 {version} 版没有保密审查结论",
    ),
    (
        re.compile(r"version (?P<version>\d+) of the entry is no longer shared by (?P<methods>.+)"),
        "目录条目第 {version} 版不再提供原有的共享方式",
    ),
    (
        re.compile(r"version (?P<version>\d+) of the entry no longer has the data item (?P<item>.+)"),
        "目录条目第 {version} 版不再有信息项“{item}”",
    ),
    (
        re.compile(r"version (?P<version>\d+) of the entry makes the data item (?P<item>.+?) [A-Z_]+, stricter than.*"),
        "目录条目第 {version} 版收紧了信息项“{item}”的共享类型",
    ),
    (re.compile(r"the period ended on (?P<day>\d{4}-\d{2}-\d{2})"), "使用期限已于 {day} 届满"),
    (re.compile(r"superseded by the IT office's ruling"), "信息化工作办公室的协调决定取代了原授权"),
    (re.compile(r"superseded by the leadership group's final ruling"), "领导小组的最终决定取代了原授权"),
]
# why a grant ended, as the exchange's lifecycle says it (services/exchange/sharing/handlers.py, requests.py)


def ended_reason(reason: str | None) -> str:
    """Why a grant ended, in Chinese where the exchange's reason is a known one; else said to be the
    exchange's own words (every page shows an ended grant's reason through this)."""
    if not reason:
        return ""
    for pattern, words in ENDED_REASONS:
        if match := pattern.fullmatch(reason.strip()):
            return words.format(**match.groupdict())
    return f"数据交换服务记录的原因：{reason}"


def reason_worded(reason: str | None) -> str:
    """A reason the exchange recorded (an application refused at once) in Chinese where it is a known one."""
    if not reason:
        return ""
    said = explain(Refused(409, reason, rule=reason, detail=reason))
    return said.message if not said.detail else f"数据交换服务记录的原因：{reason}"


CHINESE = re.compile(r"[\u4e00-\u9fff]")
FALLBACK = "这项操作未被接受。请核对所填内容；仍不明白原因的，请把下面的服务原文告知信息化工作办公室。"
RESOURCE_FORMS = ("/subscriptions/new", "/requests/new")  # a link to them carries the resource concerned


def explain(refused: Refused, resource: str | None = None) -> Explanation:
    """The refusal in plain Chinese when its reason is a known one; else the service's own Chinese message,
    or a Chinese sentence with the service's words in small print. `resource`: the resource the refused
    form was about, carried by a link to a form about it."""
    # a 403 names its access rule and gives the reason as `detail`; a domain error (404, 409, 422) gives it as
    # `rule` (its `detail` is "field: rule")
    reason = refused.detail if refused.status == 403 else refused.rule or ""
    for pattern, wording in WORDINGS:
        if match := pattern.fullmatch(reason.strip()):
            said = wording(match, refused)
            if resource and said.link and said.link[0] in RESOURCE_FORMS:
                said = replace(said, link=(f"{said.link[0]}?{urlencode({'resource': resource})}", said.link[1]))
            return said
    if CHINESE.search(refused.message):
        return Explanation(refused.message)
    return Explanation(FALLBACK, detail=refused.detail or refused.message)
