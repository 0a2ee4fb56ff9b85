"""A service's refusal in plain Chinese, with what the person can do next: presentation only, no rule of the
measures. A 403 of every service carries the access rule it applied (`rule`) and the reason (`detail`, the
policy's or the exchange's words, which name only the caller's own grant), a domain error (404, 409, 422) the
rule it broke (`rule`); the known reasons are worded here, and anything else falls back to the service's own
message."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from common.policy import RULES
from services.console.clients import Refused
from services.console.labels import label
from services.console.session import ROLE_NAMES

APPLY_AGAIN = "如仍需使用这些数据，请重新提出共享申请（无条件共享的资源可直接订阅）。"
APPLY_LINK = ("/requests/new", "提出共享申请")
MACHINE_NAMES = {"adapter": "部门适配器", "consumer_system": "部门消费系统"}


@dataclass(frozen=True)
class Explanation:
    """What happened and what to do next, both shown on the refusal's page."""

    message: str
    next_step: str = ""
    link: tuple[str, str] | None = None  # (href, words) of the page where the next step is taken


Wording = Callable[[re.Match[str], Refused], Explanation]


def _channel(value: str) -> str:
    return label(value, "share_method")


def _names(values: Iterable[str]) -> str:
    return "、".join(ROLE_NAMES.get(v, MACHINE_NAMES.get(v, v)) for v in values)


def _roles_needed(match: re.Match[str], refused: Refused) -> Explanation:
    rule = RULES.get(refused.rule or "")
    needed = sorted([*rule.roles, *rule.machines]) if rule else [r.strip() for r in match["who"].split(",")]
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


def _said(message: str, next_step: str = "", link: tuple[str, str] | None = None) -> Wording:
    """A wording whose blanks are the reason's named groups (a channel shown by its Chinese name)."""

    def word(match: re.Match[str], _refused: Refused) -> Explanation:
        blanks = {k: _channel(v) if k == "channel" else v for k, v in match.groupdict().items()}
        return Explanation(message.format(**blanks), next_step.format(**blanks), link)

    return word


OWN_DEPARTMENT = "请以本部门的身份办理本部门的事项；涉及其他部门的，请由该部门办理。"
# The reasons the services give (common.policy, the exchange's grants and access checks, its subscriptions and
# consents), each as a pattern over the whole reason. tests/unit/test_console_refusals.py makes the domain code
# produce them.
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
            "请在资源目录中打开该资源，直接订阅。",
            ("/subscriptions/new", "订阅"),
        ),
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

# why a grant ended (the exchange's lifecycle: services/exchange/sharing/requests.py), in Chinese
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
]


def ended_reason(reason: str) -> str:
    """Why a grant ended, in Chinese where the exchange's reason is a known one; else as it came."""
    for pattern, words in ENDED_REASONS:
        if match := pattern.fullmatch(reason.strip()):
            return words.format(**match.groupdict())
    return reason


def explain(refused: Refused) -> Explanation:
    """The refusal in plain Chinese when its reason is a known one; else the service's own message."""
    # a 403 names its access rule and gives the reason as `detail`; a domain error (404, 409, 422) gives it as
    # `rule` (its `detail` is "field: rule")
    reason = refused.detail if refused.status == 403 else refused.rule or ""
    for pattern, wording in WORDINGS:
        if match := pattern.fullmatch(reason.strip()):
            return wording(match, refused)
    return Explanation(refused.message)
