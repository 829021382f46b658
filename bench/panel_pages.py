"""The panel's server time as the case table grows: the queue page and a case workspace,
rendered by the real app in-process (FastAPI TestClient, a logged-in panel session) on
PostgreSQL with N cases, N = 10 000 and 1 000 000.

    python -m bench.panel_pages [--sizes 10000,1000000] [--quick] [--repeat 100] [--keep]

Data: bench.common.load_cases (N cases, a bounded 4 000 open, customers N/10), plus one worked
case opened through the JSON API on a real order (a return of two units, approved, with a reply
and an internal note), whose workspace is timed. The session is a PanelSession row made directly
(the cookie holds the token, the row its SHA-256, as api/panel/auth.py does). Pages:

- queue all: /panel?queue=all (every case, newest first, counts of every queue);
- queue unassigned: /panel?queue=unassigned (a lead's default page);
- workspace: /panel/cases/{number} of the worked case.

Printed: p50 and p95 (ms, request time in-process) per size, p95(largest)/p95(smallest), and
the SQL statements each page runs (SQLAlchemy before_cursor_execute), counted and listed.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
from datetime import timedelta
from typing import Any

from bench.common import (
    QueryCounter,
    create_token_for,
    fresh_pg_database,
    load_cases,
    log,
    make_client,
    print_table,
    ratio,
    short_sql,
    size_args,
    sizes_of,
    time_calls,
)
from tickets.db import make_engine, make_sessionmaker, unit_of_work
from tickets.models import PanelSession, utcnow

GOAL = 1.5
PAGES = ("queue all", "queue unassigned", "workspace")

ORDER = {
    "order_no": "BENCH-1",
    "platform": "shop",
    "status": "delivered",
    "currency": "CNY",
    "placed_at": "2026-11-15T10:00:00+08:00",
    "paid_at": "2026-11-15T10:01:00+08:00",
    "shipped_at": "2026-11-16T09:00:00+08:00",
    "delivered_at": "2026-11-18T15:00:00+08:00",
    "payment_method": "alipay",
    "shipping_fee": "8.00",
    "order_discount": "30.00",
    "address": "上海市浦东新区世纪大道 100 号",
    "customer": {"name": "李雷", "phone": "13800138000", "telegram_user_id": 5001},
    "lines": [
        {"sku": "JACKET-M", "title": "羽绒服 M", "category": "apparel", "quantity": 1,
         "unit_price": "99.90"},
        {"sku": "SOCKS", "title": "袜子", "category": "apparel", "quantity": 2,
         "unit_price": "49.95"},
    ],
}  # fmt: skip


def worked_case(client: Any, token: str) -> str:
    """A return opened on a real order through the API, approved, with a reply and a note."""
    headers = {"Authorization": f"Bearer {token}"}

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(f"/api/v1{path}", json=body, headers=headers)
        assert response.status_code < 300, f"{path}: {response.status_code} {response.text}"
        return dict(response.json())

    post("/orders", {"orders": [ORDER]})
    number = post(
        "/tickets",
        {
            "order_no": "BENCH-1",
            "kind": "return_refund",
            "reason": "size_fit",
            "items": [{"sku": "SOCKS", "quantity": 2}],
            "description": "Too small, both pairs.",
            "channel": "phone",
        },
    )["number"]
    post(f"/tickets/{number}/replies", {"text": "We have your request and are looking at it."})
    post(f"/tickets/{number}/replies", {"text": "Customer called twice.", "internal": True})
    post(f"/tickets/{number}/actions", {"action": "approve"})
    return str(number)


def panel_cookie(url: str, username: str = "agent1") -> str:
    """A live panel session for the agent, made as log-in makes it; the cookie's token."""
    from sqlalchemy import select

    from tickets.models import Agent

    token = secrets.token_urlsafe(32)
    engine = make_engine(url)
    now = utcnow()
    with unit_of_work(make_sessionmaker(engine)) as s:
        agent_id = s.scalar(select(Agent.id).where(Agent.username == username))
        s.add(
            PanelSession(
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                agent_id=agent_id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=12),
                user_agent="bench",
            )
        )
    engine.dispose()
    return token


def run_size(n: int, repeat: int, keep: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"timings": {}, "sql": {}}
    with fresh_pg_database(f"panel_pages_{n}", keep=keep) as url:
        log(f"N={n:,}: loading cases")
        engine = make_engine(url)
        loaded = load_cases(engine, n)
        engine.dispose()
        log(
            f"N={n:,}: {loaded.cases:,} cases ({loaded.open_cases:,} open) in {loaded.seconds:.1f}s"
        )
        token = create_token_for(url)
        client, app_engine = make_client(url)
        counter = QueryCounter(app_engine)
        with client:
            number = worked_case(client, token)
            client.cookies.set("aftersales_panel", panel_cookie(url))
            urls = {
                "queue all": "/panel?queue=all",
                "queue unassigned": "/panel?queue=unassigned",
                "workspace": f"/panel/cases/{number}",
            }
            for page, path in urls.items():
                first = client.get(path, follow_redirects=False)
                assert first.status_code == 200, f"{path}: {first.status_code}"
                assert "panel/login" not in str(first.url)

                def call(p: str = path) -> None:
                    client.get(p, follow_redirects=False)

                log(f"N={n:,}: timing {page} x{repeat}")
                out["timings"][page] = time_calls(call, repeat=repeat)
                with counter.counting():
                    call()
                out["sql"][page] = list(counter.statements)
            out["number"] = number
        app_engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size_args(parser)
    parser.add_argument("--repeat", type=int, default=100, help="timed requests per page")
    args = parser.parse_args()
    sizes = sorted(sizes_of(args))
    results = {n: run_size(n, args.repeat, args.keep) for n in sizes}

    print("\n## panel pages (in-process TestClient, PostgreSQL), milliseconds")
    rows = []
    for page in PAGES:
        row: list[Any] = [page]
        for n in sizes:
            t = results[n]["timings"][page]
            row += [t.p50, t.p95]
        if len(sizes) > 1:
            big = results[sizes[-1]]["timings"][page].p95
            small = results[sizes[0]]["timings"][page].p95
            row += [ratio(big, small), "ok" if big / small <= GOAL else "MISSED"]
        row += ["/".join(str(len(results[n]["sql"][page])) for n in sizes)]
        rows.append(row)
    headers = ["page"]
    for n in sizes:
        headers += [f"p50@{n:,}", f"p95@{n:,}"]
    if len(sizes) > 1:
        headers += [f"p95 ratio (goal <= {GOAL})", "verdict"]
    headers.append("SQL/page " + "/".join(f"{n:,}" for n in sizes))
    print_table(headers, rows)
    print(f"\n## SQL per page at N={sizes[-1]:,}")
    for page in PAGES:
        statements = results[sizes[-1]]["sql"][page]
        print(f"\n### {page}: {len(statements)} statements")
        for i, sql in enumerate(statements, 1):
            print(f"{i:3}. {short_sql(sql, 150)}")


if __name__ == "__main__":
    main()
