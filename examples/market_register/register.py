"""A realistic source: the market regulator's enterprise register (企业登记), as a SQLite table with the
columns a business system would have — some of them data items of the published resource, some internal."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from datashare_adapter.identifiers import credit_code_check_character

DISTRICTS = ["吉州区", "青原区", "井冈山市", "吉安县", "吉水县", "峡江县", "新干县", "永丰县", "泰和县", "遂川县"]
SCOPES = ["软件开发；信息技术咨询服务", "农副食品加工", "日用百货零售", "土木工程建筑", "餐饮服务", "电子元件制造"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"
COLUMNS = {
    "统一社会信用代码": "TEXT PRIMARY KEY",
    "企业名称": "TEXT",
    "法定代表人": "TEXT",
    "注册资本": "REAL",
    "成立日期": "TEXT",
    "住所": "TEXT",
    "经营范围": "TEXT",
    "登记状态": "TEXT",
    "内部档案号": "TEXT",  # the register's own bookkeeping: no data item, never sent
}


def credit_code(n: int) -> str:
    body = f"91360800MA{n:07d}"  # 9 企业, 1 公司, 360800 吉安市
    return body + credit_code_check_character(body)


def enterprise(n: int, rng: random.Random) -> tuple:
    district = rng.choice(DISTRICTS)
    scope = rng.choice(SCOPES)
    return (
        credit_code(n),
        f"吉安市{district}{rng.choice(['鑫', '华', '瑞', '盛', '嘉', '恒'])}{rng.choice(['达', '源', '泰', '丰'])}"
        f"{['科技', '实业', '商贸', '建设', '食品'][n % 5]}有限公司{n}",
        rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
        float(rng.randrange(10, 5000) * 10_000),
        f"{rng.randrange(2000, 2026)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        f"江西省吉安市{district}{rng.choice(['井冈山大道', '吉州大道', '庐陵大道'])}{rng.randrange(1, 999)}号",
        scope,
        rng.choice(["存续", "存续", "存续", "吊销", "注销"]),
        f"DA{n:08d}",
    )


def create(path: Path, count: int, seed: int = 360800) -> None:
    """A register of `count` enterprises; an existing one is left as it is (the business system owns it)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE enterprise ({', '.join(f'{c} {t}' for c, t in COLUMNS.items())})")
        marks = ", ".join("?" * len(COLUMNS))
        db.executemany(f"INSERT INTO enterprise VALUES ({marks})", (enterprise(n, rng) for n in range(1, count + 1)))


def business_day(path: Path, seed: int) -> int:
    """A day at the register: some enterprises change, a few are deregistered, some are founded."""
    rng = random.Random(seed)
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM enterprise").fetchone()
        # enterprises are numbered as founded (内部档案号 DA<n>); a deregistered one leaves a gap, not a free number
        (last,) = db.execute("SELECT MAX(CAST(SUBSTR(内部档案号, 3) AS INTEGER)) FROM enterprise").fetchone()
        last = max(last or 0, count)
        changed = rng.sample(range(1, last + 1), max(count // 50, 1))
        for n in changed:
            db.execute(
                "UPDATE enterprise SET 注册资本 = 注册资本 + 100000 WHERE 统一社会信用代码 = ?", (credit_code(n),)
            )
        db.execute("DELETE FROM enterprise WHERE 统一社会信用代码 = ?", (credit_code(changed[0]),))
        new = [enterprise(n, rng) for n in range(last + 1, last + 1 + max(count // 100, 1))]
        db.executemany(f"INSERT INTO enterprise VALUES ({', '.join('?' * len(COLUMNS))})", new)
        return len(changed) + len(new)
