"""The bot's, the agents' cards' and the policy's texts are gettext catalogs: Babel's
extraction finds every text the code marks, each catalog holds exactly those, and every one has
its Chinese translation with the same placeholders, so a new English text cannot reach a
Chinese reader untranslated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import TEXTS_DIR, Texts
from tickets.catalogs import KEYWORDS, braces
from tickets.messages.notices import AGENT_TEXTS, agent_texts
from tickets.policy.eligibility import policy_texts, texts_dir

ROOT = Path(__file__).resolve().parents[1]
# Each domain: where its marked texts are, and its Chinese catalog (as the Makefile's
# `messages` target extracts and updates them).
DOMAINS = {
    "bot": (ROOT / "bot", "**.py", TEXTS_DIR / "zh_CN" / "LC_MESSAGES" / "bot.po"),
    "agents": (
        ROOT / "tickets" / "messages",
        "cards.py",
        AGENT_TEXTS / "zh_CN" / "LC_MESSAGES" / "agents.po",
    ),
    "policy": (
        ROOT / "tickets" / "policy",
        "texts.py",
        texts_dir() / "zh_CN" / "LC_MESSAGES" / "policy.po",
    ),
}


def _extracted(where: Path, pattern: str) -> set[str | tuple[str, ...]]:
    found: set[str | tuple[str, ...]] = set()
    for _f, _l, message, _c, _ctx in extract_from_dir(
        str(where), method_map=[(pattern, "python")], keywords=KEYWORDS
    ):
        found.add(tuple(message) if isinstance(message, list | tuple) else message)
    return found


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_the_catalog_holds_every_marked_text_translated(domain: str) -> None:
    where, pattern, po_path = DOMAINS[domain]
    extracted = _extracted(where, pattern)
    assert len(extracted) > 30
    with po_path.open("rb") as fh:
        po = read_po(fh, locale="zh_CN")
    entries = {tuple(m.id) if isinstance(m.id, list | tuple) else m.id: m for m in po if m.id}
    # Both ways: no text the code shows is missing, no entry is left over from an old text.
    assert sorted(map(str, extracted - entries.keys())) == []
    assert sorted(map(str, entries.keys() - extracted)) == []
    problems = []
    for message_id, entry in entries.items():
        string = entry.string
        forms = [str(f or "") for f in string] if isinstance(string, list | tuple) else [string]
        if entry.fuzzy or not all(forms):
            problems.append(f"untranslated: {message_id}")
            continue
        texts = [str(f) for f in forms]
        if isinstance(message_id, str):
            # A text's translation fills in the very same values.
            if any(braces(f) != braces(message_id) for f in texts):
                problems.append(f"other placeholders: {message_id}")
        elif any(not braces(f) <= braces(message_id[0]) | braces(message_id[1]) for f in texts):
            # A plural form may leave the count out ("one attempt left"), never add a value.
            problems.append(f"other placeholders: {message_id}")
    assert problems == []


def test_a_count_picks_the_english_form_and_chinese_has_one() -> None:
    texts = Texts.load()
    assert texts.get("en", "intake.proof_failed", left=1).endswith("1 attempt left.")
    assert texts.get("en", "intake.proof_failed", left=2).endswith("2 attempts left.")
    assert texts.get("en", "intake.evidence_received", count=1).startswith("Received, 1 file ")
    assert texts.get("en", "intake.evidence_received", count=3).startswith("Received, 3 files ")
    chinese = texts.get("zh-CN", "intake.proof_failed", left=2)
    assert chinese == "与订单手机号不一致，还可以尝试 2 次。"


def _copy_catalogs(tmp_path: Path) -> Path:
    shutil.copytree(TEXTS_DIR, tmp_path / "texts")
    return tmp_path / "texts"


def test_a_translation_with_other_placeholders_stops_the_bot_at_start(tmp_path: Path) -> None:
    texts_dir = _copy_catalogs(tmp_path)
    po = texts_dir / "zh_CN" / "LC_MESSAGES" / "bot.po"
    text = po.read_text(encoding="utf-8")
    broken = text.replace('msgstr "{name}您好！', 'msgstr "{nom}您好！', 1)
    assert broken != text
    po.write_text(broken, encoding="utf-8")
    with pytest.raises(ValueError, match=r"zh-CN: menu\.greeting "):
        Texts.load(texts_dir)


def test_a_shop_rewords_the_english_in_an_english_catalog(tmp_path: Path) -> None:
    texts_dir = _copy_catalogs(tmp_path)
    english = texts_dir / "en" / "LC_MESSAGES"
    english.mkdir(parents=True)
    (english / "bot.po").write_text(
        'msgid ""\nmsgstr ""\n"Language: en\\n"\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "⬅️ Back"\nmsgstr "⬅️ Previous step"\n',
        encoding="utf-8",
    )
    texts = Texts.load(texts_dir)
    assert texts.get("en", "nav.back") == "⬅️ Previous step"
    assert texts.get("en", "nav.cancel") == "✖️ Cancel"  # not reworded: the English text
    assert texts.get("zh-CN", "nav.back") == Texts.load().get("zh-CN", "nav.back")


def test_the_agents_cards_read_in_the_agents_language() -> None:
    zh, en = agent_texts("zh-CN"), agent_texts("en")
    assert en["nobody"] == "nobody" and zh["nobody"] == "无"
    assert en["clocks"]["review"] == "review" and zh["clocks"]["review"] == "审核"
    assert (
        zh["sla.breached"]
        .format(number="RF-1", clock=zh["clocks"]["review"], due="10:00", group="g", assignee="a")
        .startswith("🔴 RF-1")
    )


def test_a_risk_signal_counts_its_days() -> None:
    en = policy_texts("en")
    assert en.get("risk", "new_customer", days=1).endswith("within the last 1 day")
    assert en.get("risk", "new_customer", days=7).endswith("within the last 7 days")
    assert policy_texts("zh-CN").get("risk", "new_customer", days=7) == "新客户：首单在最近 7 天内"
