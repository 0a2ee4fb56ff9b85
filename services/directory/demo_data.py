"""A realistic Ji'an directory for trying every flow: synthetic people, check-digit-valid codes."""

from __future__ import annotations

from common.identifiers import credit_code_check_character

CITY_REGION = "360800"

# (name, slug, region) — slugs become login names; regions are the real division codes.
CITY_BUREAUS = [
    ("吉安市发展和改革委员会", "fgw"),
    ("吉安市教育局", "jyj"),
    ("吉安市科学技术局", "kjj"),
    ("吉安市工业和信息化局", "gxj"),
    ("吉安市公安局", "gaj"),
    ("吉安市民政局", "mzj"),
    ("吉安市司法局", "sfj"),
    ("吉安市财政局", "czj"),
    ("吉安市人力资源和社会保障局", "rsj"),
    ("吉安市自然资源局", "zrzyj"),
    ("吉安市生态环境局", "sthjj"),
    ("吉安市住房和城乡建设局", "zjj"),
    ("吉安市交通运输局", "jtj"),
    ("吉安市水利局", "slj"),
    ("吉安市农业农村局", "nyncj"),
    ("吉安市商务局", "swj"),
    ("吉安市文化广电新闻出版旅游局", "wgxlj"),
    ("吉安市卫生健康委员会", "wjw"),
    ("吉安市退役军人事务局", "tyjrj"),
    ("吉安市应急管理局", "yjglj"),
    ("吉安市审计局", "sjj"),
    ("吉安市市场监督管理局", "scjgj"),
    ("吉安市统计局", "tjj"),
    ("吉安市医疗保障局", "ybj"),
    ("吉安市行政审批局", "xzspj"),
    ("吉安市住房公积金管理中心", "gjjzx"),
]
COUNTIES = [
    ("吉州区", "jzq", "360802"),
    ("青原区", "qyq", "360803"),
    ("吉安县", "jax", "360821"),
    ("吉水县", "jsx", "360822"),
    ("峡江县", "xjx", "360823"),
    ("新干县", "xgx", "360824"),
    ("永丰县", "yfx", "360825"),
    ("泰和县", "thx", "360826"),
    ("遂川县", "scx", "360827"),
    ("万安县", "wax", "360828"),
    ("安福县", "afx", "360829"),
    ("永新县", "yxx", "360830"),
    ("井冈山市", "jgss", "360881"),
]
ZONES = [("井冈山经济技术开发区", "jkq"), ("吉安市庐陵新区", "llxq")]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "华"]


def credit_code(region: str, serial: int) -> str:
    """A government organ's code (registration authority 1, category 1) in `region`."""
    first17 = f"11{region}MB{serial:07d}"
    return first17 + credit_code_check_character(first17)


def person_name(index: int) -> str:
    return SURNAMES[index % len(SURNAMES)] + GIVEN[(index * 7) % len(GIVEN)]
