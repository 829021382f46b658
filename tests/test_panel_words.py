"""The panel names every code the core shows in words: each refund rule the calculator writes,
each variable a bundled reply script declares, each default group (so a new one cannot reach
an agent as a bare code); and the helpers that turn actors and arrival times into words."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from api.panel import i18n, labels
from api.panel.pages import TEMPLATES_DIR, build_environment
from tickets.policy.rules import Policy
from tickets.refunds import calculator


def test_every_refund_rule_and_default_group_has_a_label() -> None:
    rules = {v for k, v in vars(calculator).items() if k.startswith("R_") and isinstance(v, str)}
    assert len(rules) > 10
    assert rules <= set(labels.RULE)
    assert set(Policy().groups) <= set(labels.GROUP)
    assert set(calculator.DEFAULT_ARRIVAL_DAYS) <= set(labels.PAYMENT)


def test_every_bundled_script_variable_has_a_label(scripts: object) -> None:
    names = {v for s in scripts.list() for v in s.variables}  # type: ignore[attr-defined]
    assert names and names <= set(labels.VARIABLE)


def test_actors_routes_and_groups_read_in_words() -> None:
    env = build_environment(i18n.load_catalogs(TEMPLATES_DIR / "i18n"))
    template = env.from_string(
        "{{ actor('agent:tom') }}|{{ actor('agent:gone') }}|{{ actor('customer') }}|"
        "{{ actor('system:sla') }}|{{ actor('system:auto-approval: unshipped') }}|"
        "{{ actor('system:something new') }}|{{ arrival('1-3 days') }}|{{ arrival('immediate') }}|"
        "{{ group_name('service') }}|{{ group_name('vip') }}|{{ tr('payment', 'alipay') }}"
    )
    people = {"tom": "Tom Baker"}
    tz = ZoneInfo("Asia/Shanghai")
    zh = template.render(lang="zh-CN", tz=tz, people=people).split("|")
    assert zh == [
        "Tom Baker",
        "gone",
        "客户",
        "系统（时效计时）",
        "系统（自动审批）",
        "系统",
        "1-3 天",
        "即时到账",
        "客服组",
        "vip",
        "支付宝",
    ]
    en = template.render(lang="en", tz=tz, people=people).split("|")
    assert en[2:9] == [
        "Customer",
        "System (SLA clocks)",
        "System (automatic approval)",
        "System",
        "1-3 days",
        "immediately",
        "Customer service",
    ]
