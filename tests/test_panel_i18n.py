"""The panel's Chinese catalog covers every string the panel shows, with the same
placeholders, so a new English string cannot reach a Chinese-speaking agent untranslated."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.messages.extract import extract_from_dir

from api.panel import i18n
from api.panel.pages import TEMPLATES_DIR, build_environment

ROOT = Path(__file__).resolve().parents[1]
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _msgids() -> set[str | tuple[str, ...]]:
    options = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}
    found: set[str | tuple[str, ...]] = set()
    for _f, _l, message, _c, _ctx in extract_from_dir(
        str(TEMPLATES_DIR),
        method_map=[("**.html", "jinja2.ext:babel_extract")],
        options_map={"**.html": options},
    ):
        found.add(message)
    for _f, _l, message, _c, _ctx in extract_from_dir(
        str(ROOT / "api" / "panel"), method_map=[("**.py", "python")]
    ):
        found.add(message)
    return found


def test_every_panel_string_has_a_chinese_translation() -> None:
    catalog = i18n.load_catalogs(TEMPLATES_DIR / "i18n")["zh-CN"]
    ids = _msgids()
    assert len(ids) > 150
    missing = []
    for message in ids:
        if isinstance(message, tuple):
            if message[0] not in catalog.plurals:
                missing.append(message[0])
            continue
        text = catalog.messages.get(message)
        if not text:
            missing.append(message)
        elif set(_PLACEHOLDER.findall(text)) != set(_PLACEHOLDER.findall(message)):
            missing.append(f"{message} (placeholders differ)")
    assert missing == []


def test_formatting_follows_the_language() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    assert i18n.money("19.90", "CNY", "zh-CN") == "¥19.90"
    assert i18n.money("19.90", "CNY", "en") == "CN¥19.90"
    assert i18n.money(None, "CNY", "en") == ""
    assert i18n.duration(3 * 3600 + 20 * 60, "en") == "3h 20m"
    assert i18n.duration(26 * 3600, "zh-CN") == "1天2小时"
    assert i18n.pick_language("fr") == i18n.DEFAULT_LANGUAGE
    env = build_environment(i18n.load_catalogs(TEMPLATES_DIR / "i18n"))
    template = env.from_string("{{ _('Mine') }} {{ tr('status', 'submitted') }}")
    assert template.render(lang="zh-CN", tz=tz) == "我的 待审核"
    assert template.render(lang="en", tz=tz) == "Mine Submitted"
