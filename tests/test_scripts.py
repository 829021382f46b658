"""Reply scripts: the bundled library, the renderer's safety rules, and the check.
Over 500 lines as one file: one module under test (tickets/messages/scripts.py) and its
fixtures.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from markupsafe import Markup

from tickets.messages.scripts import (
    LANGUAGES,
    MESSAGE_LIMIT,
    NOTICE_NAMES,
    InvalidVariable,
    LibraryRefused,
    MissingVariable,
    Money,
    OverLimit,
    ScriptLibrary,
    TooLong,
    UnexpectedVariable,
    UnknownScript,
    UnsafeOutput,
    bundled_scripts_dir,
    format_money,
    load_library,
    resolve_language,
)

BUNDLED = bundled_scripts_dir()
SHANGHAI = "Asia/Shanghai"


@pytest.fixture(scope="module")
def library() -> ScriptLibrary:
    return load_library(BUNDLED)


def _all_keys() -> list[tuple[str, str]]:
    lib = load_library(BUNDLED)
    return [(s.name, s.language) for s in lib.list()]


def write(
    folder: Path,
    name: str,
    lang: str,
    *,
    body: str = "Hi {{ customer_name }}.",
    variables: str = 'customer_name = { type = "str", sample = "Ann" }',
    category: str = "information",
    extra: str = "",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.{lang}.md"
    path.write_text(
        f'+++\nname = "{name}"\ncategory = "{category}"\ntitle = "A title"\n'
        f'when = "When it fits"\n{extra}\n[variables]\n{variables}\n+++\n{body}\n',
        encoding="utf-8",
    )
    return path


def write_both(folder: Path, name: str, **kwargs: str) -> None:
    for lang in LANGUAGES:
        write(folder, name, lang, **kwargs)


def refused_problems(override: Path) -> list[str]:
    with pytest.raises(LibraryRefused) as caught:
        load_library(BUNDLED, override)
    assert caught.value.problems
    assert all(p in caught.value.message for p in caught.value.problems)
    return caught.value.problems


# --- the bundled library ---------------------------------------------------------------------


def test_bundled_library_passes_its_own_check(library: ScriptLibrary) -> None:
    assert library.check() == []


@pytest.mark.parametrize(("name", "language"), _all_keys())
def test_every_script_renders_with_its_samples(
    library: ScriptLibrary, name: str, language: str
) -> None:
    script = library.get(name, language)
    html = library.render(
        name, language, library.sample_variables(name, language), timezone=SHANGHAI
    )
    assert html.strip()
    assert "{{" not in html and "{%" not in html
    assert script.title and script.when
    # The other language exists, with the same variables and types.
    other = library.get(name, "en" if language == "zh-CN" else "zh-CN")
    assert {v: t.type for v, t in other.variables.items()} == {
        v: t.type for v, t in script.variables.items()
    }


def test_every_language_is_complete(library: ScriptLibrary) -> None:
    zh = {s.name for s in library.list(language="zh-CN")}
    en = {s.name for s in library.list(language="en")}
    assert zh == en
    assert set(NOTICE_NAMES) <= zh


def test_the_issue_s_scripts_are_all_there(library: ScriptLibrary) -> None:
    def names(category: str) -> set[str]:
        return {s.name for s in library.list(category=category, language="en")}

    assert names("delay") == {
        "delay_logistics_peak",
        "delay_parcel_stuck",
        "delay_refund_pending",
        "delay_presale",
        "delay_warehouse_backlog",
    }
    assert names("compensation") == {
        "compensation_coupon",
        "compensation_gift",
        "compensation_replacement_gift",
        "compensation_goodwill",
    }
    assert names("refusal") == {
        "refusal_return_window",
        "refusal_not_resalable",
        "refusal_extra_compensation",
        "refusal_insufficient_evidence",
        "refusal_excluded_category",
        "refusal_held_for_review",
    }
    assert names("notification") == set(NOTICE_NAMES)
    assert names("information")


def test_refusals_carry_a_next_step(library: ScriptLibrary) -> None:
    refusing = [s for s in library.list() if s.refuses]
    assert {s.name for s in refusing} >= {"notice_refused", "notice_inspection_failed"}
    for script in refusing:
        assert "{% block next_step %}" in script.body


def test_unknown_script_and_language(library: ScriptLibrary) -> None:
    with pytest.raises(UnknownScript):
        library.get("notice_nope", "en")
    with pytest.raises(UnknownScript):
        library.render("notice_closed", "fr", {}, timezone=SHANGHAI)


def test_resolve_language() -> None:
    assert resolve_language("zh-hans") == "zh-CN"
    assert resolve_language("zh_TW") == "zh-CN"
    assert resolve_language("en-US") == "en"
    assert resolve_language(None) == "en"
    assert resolve_language("ru") == "en"


# --- values ------------------------------------------------------------------------------------


def test_customer_text_is_escaped_never_markup(library: ScriptLibrary) -> None:
    for lang in LANGUAGES:
        values = library.sample_variables("notice_closed", lang)
        values["customer_name"] = "<b>Bob</b> & Co"
        html = library.render("notice_closed", lang, values, timezone=SHANGHAI)
        assert "&lt;b&gt;Bob&lt;/b&gt; &amp; Co" in html
        assert "<b>Bob" not in html
        # A caller's Markup is not trusted either.
        values["customer_name"] = Markup("<i>x</i>")
        html = library.render("notice_closed", lang, values, timezone=SHANGHAI)
        assert "&lt;i&gt;x&lt;/i&gt;" in html


def test_list_items_are_escaped(library: ScriptLibrary) -> None:
    values = library.sample_variables("notice_needs_info", "en")
    values["missing"] = ["a <photo> & a video"]
    html = library.render("notice_needs_info", "en", values, timezone=SHANGHAI)
    assert "a &lt;photo&gt; &amp; a video" in html


def test_missing_variable_is_named(library: ScriptLibrary) -> None:
    values = library.sample_variables("notice_approved", "zh-CN")
    del values["rma_no"]
    with pytest.raises(MissingVariable) as caught:
        library.render("notice_approved", "zh-CN", values, timezone=SHANGHAI)
    assert caught.value.variable == "rma_no"
    assert "rma_no" in str(caught.value)


def test_misspelt_variable_from_the_caller_is_refused(library: ScriptLibrary) -> None:
    values = library.sample_variables("notice_closed", "en")
    values["shop_nmae"] = "x"
    with pytest.raises(UnexpectedVariable) as caught:
        library.render("notice_closed", "en", values, timezone=SHANGHAI)
    assert caught.value.variables == ["shop_nmae"]


def test_wrong_types_are_refused(library: ScriptLibrary) -> None:
    values = library.sample_variables("notice_refund_issued", "en")
    with pytest.raises(InvalidVariable, match="amount"):
        library.render(
            "notice_refund_issued", "en", {**values, "amount": "128.50"}, timezone=SHANGHAI
        )
    with pytest.raises(InvalidVariable, match="route"):
        library.render(
            "notice_refund_issued", "en", {**values, "route": "paypal"}, timezone=SHANGHAI
        )
    naive = dt.datetime(2026, 11, 27, 10, 15)  # noqa: DTZ001 - the point of the test
    values = {**library.sample_variables("notice_parcel_received", "en"), "received_at": naive}
    with pytest.raises(InvalidVariable, match="received_at"):
        library.render("notice_parcel_received", "en", values, timezone=SHANGHAI)


def test_money_is_formatted_for_the_language() -> None:
    assert format_money(Money(500, "CNY"), "zh-CN") == "¥5.00"
    assert format_money(Money(500, "CNY"), "en") == "CN¥5.00"
    assert format_money(Money(123456, "CNY"), "zh-CN") == "¥1,234.56"
    assert format_money(Money(123456, "USD"), "en") == "$1,234.56"
    assert format_money(Money(500, "JPY"), "en") == "¥500"
    assert Money.parse("5.00 CNY") == Money(500, "CNY")
    with pytest.raises(TypeError):
        Money(5.0, "CNY")  # type: ignore[arg-type]


def test_coupon_defaults_to_five_yuan(library: ScriptLibrary) -> None:
    values = library.sample_variables("compensation_coupon", "zh-CN")
    del values["coupon_amount"]
    html = library.render("compensation_coupon", "zh-CN", values, timezone=SHANGHAI)
    assert "¥5.00 无门槛优惠券" in html
    values["coupon_amount"] = Money(1000, "CNY")
    html = library.render("compensation_coupon", "zh-CN", values, timezone=SHANGHAI)
    assert "¥10.00 无门槛优惠券" in html
    en = library.sample_variables("compensation_coupon", "en")
    html = library.render("compensation_coupon", "en", en, timezone=SHANGHAI)
    assert "CN¥5.00 coupon" in html


def test_compensation_stays_within_the_shop_limits(library: ScriptLibrary, tmp_path: Path) -> None:
    values = library.sample_variables("compensation_coupon", "en")
    values["coupon_amount"] = Money(5000, "CNY")
    with pytest.raises(OverLimit, match="coupon"):
        library.render("compensation_coupon", "en", values, timezone=SHANGHAI)
    with pytest.raises(OverLimit, match="currency"):
        library.render(
            "compensation_coupon",
            "en",
            {**values, "coupon_amount": Money(100, "USD")},
            timezone=SHANGHAI,
        )
    generous = load_library(
        BUNDLED,
        limits={
            "coupon": Money(10000, "CNY"),
            "gift": Money(3000, "CNY"),
            "goodwill": Money(5000, "CNY"),
        },
    )
    assert "CN¥50.00" in generous.render("compensation_coupon", "en", values, timezone=SHANGHAI)
    # A shop whose limit is below a bundled default is refused at start-up, with the reason.
    with pytest.raises(LibraryRefused, match="coupon"):
        load_library(
            BUNDLED,
            limits={
                "coupon": Money(300, "CNY"),
                "gift": Money(3000, "CNY"),
                "goodwill": Money(5000, "CNY"),
            },
        )


def test_a_library_loaded_unchecked_reads_its_folders_and_limits_when_first_used(
    tmp_path: Path,
) -> None:
    # `aftersales serve` loads it so (its preflight child checked the same folders): nothing is
    # read at start-up, and the first message or page gets the shop's scripts and limits.
    asked: list[str] = []

    def shop_limits() -> dict[str, Money]:
        asked.append("limits")
        return {
            "coupon": Money(10000, "CNY"),
            "gift": Money(3000, "CNY"),
            "goodwill": Money(5000, "CNY"),
        }

    library = load_library(BUNDLED, tmp_path, limits=shop_limits, verify=False)
    text = (BUNDLED / "notice_closed.zh-CN.md").read_text(encoding="utf-8")
    (tmp_path / "notice_closed.zh-CN.md").write_text(
        text.replace("{{ shop_name }}", "{{ shop_name }}（店铺）"), encoding="utf-8"
    )
    assert asked == []
    values = library.sample_variables("compensation_coupon", "en")
    values["coupon_amount"] = Money(5000, "CNY")
    assert "CN¥50.00" in library.render("compensation_coupon", "en", values, timezone=SHANGHAI)
    closed = library.sample_variables("notice_closed", "zh-CN")
    assert "（店铺）" in library.render("notice_closed", "zh-CN", closed, timezone=SHANGHAI)
    assert asked == ["limits"]  # read once


def test_dates_are_in_the_shop_timezone(library: ScriptLibrary) -> None:
    values = library.sample_variables("notice_parcel_received", "zh-CN")
    values["received_at"] = dt.datetime(2026, 11, 22, 18, 30, tzinfo=dt.UTC)
    html = library.render("notice_parcel_received", "zh-CN", values, timezone=SHANGHAI)
    assert "2026年11月23日 02:30" in html
    values = library.sample_variables("notice_parcel_received", "en")
    values["received_at"] = dt.datetime(2026, 11, 22, 18, 30, tzinfo=dt.UTC)
    html = library.render("notice_parcel_received", "en", values, timezone=SHANGHAI)
    assert "November 23, 2026, 2:30" in html
    html = library.render("notice_parcel_received", "en", values, timezone="America/New_York")
    assert "November 22, 2026, 1:30" in html
    values = library.sample_variables("notice_approved", "en")
    values["ship_by"] = dt.date(2026, 11, 29)
    html = library.render("notice_approved", "en", values, timezone=SHANGHAI)
    assert "November 29, 2026" in html


def test_over_long_is_an_error_not_a_cut(library: ScriptLibrary) -> None:
    values = library.sample_variables("notice_reply", "en")
    values["message"] = "x" * MESSAGE_LIMIT
    with pytest.raises(TooLong) as caught:
        library.render("notice_reply", "en", values, timezone=SHANGHAI)
    assert caught.value.limit == MESSAGE_LIMIT
    assert caught.value.length > MESSAGE_LIMIT
    # Longer than a Telegram caption is still one message: a channel's limits are its own.
    values["message"] = "x" * 1100
    assert library.render("notice_reply", "en", values, timezone=SHANGHAI)


def test_length_counts_visible_text_not_escapes(library: ScriptLibrary) -> None:
    # 4000 ampersands become 20000 characters of &amp; but 4000 visible ones: still sendable.
    values = library.sample_variables("notice_reply", "en")
    values["message"] = "&" * 3950
    html = library.render("notice_reply", "en", values, timezone=SHANGHAI)
    assert html.count("&amp;") == 3950


# --- the check and the shop's folder -----------------------------------------------------------


def test_override_replaces_a_bundled_script(tmp_path: Path) -> None:
    write(
        tmp_path,
        "notice_closed",
        "en",
        category="notification",
        variables='customer_name = { type = "str", sample = "Ann" }\n'
        'case_no = { type = "str", sample = "AS-1" }',
        body="Thanks {{ customer_name }}! Case <code>{{ case_no }}</code> is closed. "
        "How did we do, 1 to 5?",
    )
    lib = load_library(BUNDLED, tmp_path)
    script = lib.get("notice_closed", "en")
    assert script.origin == "shop"
    # The caller still passes shop_name (the bundled contract): not an error for the override.
    values = {"customer_name": "Ann", "case_no": "AS-1", "shop_name": "Kapok"}
    html = lib.render("notice_closed", "en", values, timezone=SHANGHAI)
    assert html.startswith("Thanks Ann!")
    # The other language is still the bundled one.
    assert lib.get("notice_closed", "zh-CN").origin == "bundled"
    assert "木棉" not in lib.render("notice_closed", "zh-CN", values, timezone=SHANGHAI)


def test_which_notices_ask_for_a_rating_is_the_script_s_to_say(tmp_path: Path) -> None:
    """The bundled closing notice asks; an override that does not say keeps asking, one that
    says `asks_rating = false` stops; a shop's own notice may ask too."""
    lib = load_library(BUNDLED)
    assert {s.name for s in lib.list() if s.asks_rating} == {"notice_closed"}
    closing = dict(
        category="notification",
        variables='customer_name = { type = "str", sample = "Ann" }',
        body="Thanks {{ customer_name }}!",
    )
    write(tmp_path / "keeps", "notice_closed", "en", **closing)
    write(tmp_path / "stops", "notice_closed", "en", extra="asks_rating = false", **closing)
    write_both(tmp_path / "own", "notice_goodbye", extra="asks_rating = true", **closing)
    assert load_library(BUNDLED, tmp_path / "keeps").get("notice_closed", "en").asks_rating
    assert not load_library(BUNDLED, tmp_path / "stops").get("notice_closed", "en").asks_rating
    assert load_library(BUNDLED, tmp_path / "own").get("notice_goodbye", "zh-CN").asks_rating


def test_a_shop_adds_its_own_script(tmp_path: Path) -> None:
    write_both(tmp_path, "info_opening_hours", body="Hi {{ customer_name }}, we answer 9-21.")
    lib = load_library(BUNDLED, tmp_path)
    assert "info_opening_hours" in {s.name for s in lib.list(category="information")}
    assert lib.render("info_opening_hours", "en", {"customer_name": "A"}, timezone=SHANGHAI)


def test_check_catches_a_used_but_undeclared_variable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "notice_closed",
        "en",
        category="notification",
        body="Hi {{ customer_name }}, case {{ case_number }} closed. Rate us 1-5?",
    )
    problems = refused_problems(tmp_path)
    assert any(
        str(path) in p and "'case_number'" in p and "does not declare" in p for p in problems
    )
    # Without verification the renderer still names it, never a blank.
    lib = load_library(BUNDLED, tmp_path, verify=False)
    assert lib.check() == problems
    with pytest.raises(MissingVariable) as caught:
        lib.render("notice_closed", "en", {"customer_name": "A"}, timezone=SHANGHAI)
    assert caught.value.variable == "case_number"


def test_check_catches_a_declared_but_unused_variable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "notice_closed",
        "en",
        category="notification",
        variables='customer_name = { type = "str", sample = "Ann" }\n'
        'case_no = { type = "str", sample = "AS-1" }',
        body="Hi {{ customer_name }}, your case is closed. Rate us 1-5?",
    )
    problems = refused_problems(tmp_path)
    assert any(str(path) in p and "'case_no'" in p and "never uses" in p for p in problems)


def test_check_catches_a_variable_without_a_sample(tmp_path: Path) -> None:
    write_both(tmp_path, "info_x", variables='customer_name = { type = "str" }')
    problems = refused_problems(tmp_path)
    assert any("'customer_name' has no sample" in p for p in problems)


def test_check_catches_a_refusal_without_a_next_step(tmp_path: Path) -> None:
    write_both(
        tmp_path, "refusal_custom", category="refusal", body="Sorry {{ customer_name }}, no."
    )
    problems = refused_problems(tmp_path)
    assert sum("next step" in p for p in problems) == 2
    assert all("refusal_custom" in p for p in problems)


def test_check_catches_an_empty_next_step(tmp_path: Path) -> None:
    write_both(
        tmp_path,
        "refusal_custom",
        category="refusal",
        body="Sorry {{ customer_name }}, no.\n{% block next_step %}  {% endblock %}",
    )
    assert any("next_step block renders empty" in p for p in refused_problems(tmp_path))


def test_an_override_cannot_drop_a_refusal_s_next_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "notice_refused",
        "zh-CN",
        category="notification",
        variables='customer_name = { type = "str", sample = "林" }\n'
        'reason = { type = "str", sample = "超期" }',
        body="{{ customer_name }}，您的申请未通过：{{ reason }}。",
    )
    problems = refused_problems(tmp_path)
    assert any(str(path) in p and "next step" in p for p in problems)


def test_check_catches_an_over_long_result(tmp_path: Path) -> None:
    write_both(tmp_path, "info_long", body="{{ customer_name }} " + "很长的说明。" * 700)
    problems = refused_problems(tmp_path)
    assert any("over the 4096" in p for p in problems)


def test_check_catches_html_telegram_refuses(tmp_path: Path) -> None:
    write_both(tmp_path, "info_html", body='<a href="x">{{ customer_name }}</a> & more')
    problems = refused_problems(tmp_path)
    assert any("not Telegram HTML" in p for p in problems)


def test_check_catches_a_missing_language(tmp_path: Path) -> None:
    write(tmp_path, "info_only_zh", "zh-CN")
    problems = refused_problems(tmp_path)
    assert any("has no en version" in p for p in problems)


def test_check_catches_different_variables_per_language(tmp_path: Path) -> None:
    write(tmp_path, "info_pair", "zh-CN")
    write(
        tmp_path,
        "info_pair",
        "en",
        variables='customer_name = { type = "str", sample = "A" }\n'
        'order_no = { type = "str", sample = "1" }',
        body="Hi {{ customer_name }} {{ order_no }}",
    )
    assert any("different variables" in p for p in refused_problems(tmp_path))


def test_an_override_cannot_add_variables_or_change_category(tmp_path: Path) -> None:
    write(
        tmp_path,
        "notice_closed",
        "en",
        category="information",
        variables='customer_name = { type = "str", sample = "Ann" }\n'
        'coupon_code = { type = "str", sample = "X1" }',
        body="Hi {{ customer_name }}, use {{ coupon_code }}.",
    )
    problems = refused_problems(tmp_path)
    assert any("'coupon_code', which the bundled script does not take" in p for p in problems)
    assert any("overrides a notification script with a information" in p for p in problems)


def test_check_catches_compensation_without_offer_or_limit(tmp_path: Path) -> None:
    write_both(
        tmp_path,
        "compensation_cash",
        category="compensation",
        variables='customer_name = { type = "str", sample = "A" }\n'
        'amount = { type = "money", sample = "3.00 CNY" }',
        body="Sorry {{ customer_name }}, here is {{ amount }}.",
    )
    problems = refused_problems(tmp_path)
    assert any("say what the customer gets" in p for p in problems)
    assert any("'amount' needs a limit" in p for p in problems)


def test_check_catches_bad_front_matter(tmp_path: Path) -> None:
    (tmp_path / "info_bad.en.md").write_text("+++\nname = \nbody", encoding="utf-8")
    (tmp_path / "Info-Bad.md").write_text("x", encoding="utf-8")
    problems = refused_problems(tmp_path)
    assert any("info_bad.en.md" in p and "not closed" in p for p in problems)
    assert any("Info-Bad.md" in p and "<name>.<lang>.md" in p for p in problems)


def test_the_sandbox_holds(tmp_path: Path) -> None:
    write_both(tmp_path, "info_evil", body="{{ customer_name.__class__.__mro__ }}")
    problems = refused_problems(tmp_path)
    assert any("info_evil" in p and "does not render" in p for p in problems)
    lib = load_library(BUNDLED, tmp_path, verify=False)
    with pytest.raises(UnsafeOutput):
        lib.render("info_evil", "en", {"customer_name": "A"}, timezone=SHANGHAI)


def test_a_missing_override_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LibraryRefused, match="does not exist"):
        load_library(BUNDLED, tmp_path / "nope")


def test_a_word_the_text_asks_for_must_be_declared(tmp_path: Path) -> None:
    # Whatever a message tells the customer to type must work: the check refuses a script
    # quoting a reply word its [replies] does not declare (the bot would not understand it).
    write_both(tmp_path, "info_choice", body='Hi {{ customer_name }}. Reply "Yes" or 回复「好」.')
    problems = refused_problems(tmp_path)
    assert any("to reply 'yes'" in p for p in problems)
    assert any("to reply '好'" in p for p in problems)
    write_both(
        tmp_path,
        "info_choice",
        body='Hi {{ customer_name }}. Reply "Yes" or 回复「好」.',
        extra='[replies.accept]\nwords = ["yes", "好"]\nlabel = "Yes"\n',
    )
    library = load_library(BUNDLED, tmp_path)
    choice = library.get("info_choice", "en").choice_for("yes")
    assert choice is not None and choice.key == "accept"
