"""Rendering message fields: locale choice, inline sends, what templates see, errors,
the template cache, and the messages of LANGUAGE.md with realistic data."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from journeyc.compile.ir import FieldIR, MessageIR
from journeyc.compile.lower import lower_project
from journeyc.config import Config
from journeyc.engine.values import EventView
from journeyc.lang.builtins import INLINE_FIELD
from journeyc.lang.project import load_project
from journeyc.messages.render import (
    RenderContext,
    Renderer,
    RenderError,
    iso_z,
    pick_locale,
)
from journeyc.messages.templates import DEFAULT_LIMITS, RenderLimits
from tests.engine_helpers import run, track

NOW = datetime(2024, 3, 5, 10, 30, tzinfo=UTC)
CART = EventView(
    name="cart_abandoned",
    at=datetime(2024, 3, 5, 9, 0, tzinfo=UTC),
    props={
        "product_name": "Trail Runner 2",
        "item_count": 3,
        "cart_value": 129.5,
        "cart_url": "https://shop.example/cart/abc123",
    },
)


def ctx(
    user: dict[str, Any] | None = None,
    event: EventView | None = CART,
    values: dict[str, Any] | None = None,
    step: str = "reminder",
) -> RenderContext:
    return RenderContext(
        user_id="u-42",
        user={"first_name": "Ana"} if user is None else user,
        event=event,
        journey_id="cart_recovery",
        step=step,
        now=NOW,
        values=values or {},
    )


def message(channel: str, **fields: FieldIR) -> MessageIR:
    return MessageIR(name="m", parts={channel: fields})


def inline(text: str, context: RenderContext | None = None, channel: str = "push") -> str:
    out = Renderer().render(None, text, channel, context or ctx())
    return out[INLINE_FIELD[channel]]


# ---------------------------------------------------------------- locales

TITLE = FieldIR(default="Hello", locales={"th": "สวัสดี", "pt_BR": "Olá"})


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("th", "สวัสดี"),
        ("th_TH", "สวัสดี"),
        ("th-TH", "สวัสดี"),
        ("TH", "สวัสดี"),
        ("pt_BR", "Olá"),
        ("pt-br", "Olá"),
        ("pt", "Hello"),  # only pt_BR is declared: a language does not match a region
        ("en_US", "Hello"),
        ("", "Hello"),
        (None, "Hello"),
        (7, "Hello"),
    ],
)
def test_locale_picks_exact_then_language_then_plain(locale: object, expected: str) -> None:
    assert pick_locale(TITLE, locale) == expected


def test_exact_locale_wins_over_its_language() -> None:
    f = FieldIR(default="x", locales={"pt": "pt", "pt_BR": "br"})
    assert pick_locale(f, "pt_BR") == "br"
    assert pick_locale(f, "pt_PT") == "pt"


def test_locale_is_read_from_the_profile() -> None:
    m = message("push", title=TITLE)
    out = Renderer().render(m, None, "push", ctx(user={"locale": "th_TH"}))
    assert out == {"title": "สวัสดี"}


def test_field_with_only_variants_and_no_match_is_left_out() -> None:
    m = message(
        "push",
        title=FieldIR(locales={"th": "ไทย"}),
        body=FieldIR(default="body"),
    )
    r = Renderer()
    assert r.render(m, None, "push", ctx(user={"locale": "en"})) == {"body": "body"}
    assert r.render(m, None, "push", ctx(user={})) == {"body": "body"}
    assert r.render(m, None, "push", ctx(user={"locale": "th"})) == {"title": "ไทย", "body": "body"}


# ---------------------------------------------------------------- inline and order


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        ("push", "body"),
        ("email", "text"),
        ("sms", "body"),
        ("whatsapp", "body"),
        ("inapp", "body"),
        ("webhook", "body"),
    ],
)
def test_inline_fills_the_channels_inline_field(channel: str, field: str) -> None:
    out = Renderer().render(None, "Hi {{ user.first_name }}", channel, ctx())
    assert out == {field: "Hi Ana"}


def test_fields_come_in_declared_order() -> None:
    m = message(
        "push",
        deeplink=FieldIR(default="app://cart"),
        title=FieldIR(default="t"),
        body=FieldIR(default="b"),
    )
    out = Renderer().render(m, None, "push", ctx())
    assert list(out) == ["deeplink", "title", "body"]


def test_a_missing_channel_part_is_a_render_error() -> None:
    with pytest.raises(RenderError, match=r"`m` has no sms part"):
        Renderer().render(message("push", body=FieldIR(default="b")), None, "sms", ctx())


def test_exactly_one_of_message_and_inline() -> None:
    m = message("push", body=FieldIR(default="b"))
    with pytest.raises(ValueError, match="exactly one"):
        Renderer().render(None, None, "push", ctx())
    with pytest.raises(ValueError, match="exactly one"):
        Renderer().render(m, "x", "push", ctx())


# ---------------------------------------------------------------- what templates see


def test_user_first_name_with_default() -> None:
    t = "Hi {{ user.first_name | default: 'there' }}"
    assert inline(t) == "Hi Ana"
    assert inline(t, ctx(user={})) == "Hi there"


def test_user_id_is_exposed_unless_the_profile_sets_it() -> None:
    assert inline("{{ user.id }}") == "u-42"
    assert inline("{{ user.id }}", ctx(user={"id": "crm-7"})) == "crm-7"


def test_undefined_variables_render_empty() -> None:
    assert inline("[{{ user.nickname }}|{{ nothing.at.all }}|{{ event.missing }}]") == "[||]"


def test_event_props_name_and_at() -> None:
    t = "{{ event.name }} {{ event.item_count }} {{ event.cart_value }} {{ event.at }}"
    assert inline(t) == "cart_abandoned 3 129.5 2024-03-05T09:00:00Z"


def test_event_props_win_over_name_and_at() -> None:
    e = EventView(name="x", at=NOW, props={"name": "Rolex", "at": "the store"})
    assert inline("{{ event.name }} @ {{ event.at }}", ctx(event=e)) == "Rolex @ the store"


def test_no_event_renders_empty() -> None:
    t = "[{{ event.product_name }}]{% if event %}yes{% endif %}"
    assert inline(t, ctx(event=None)) == "[]"


def test_journey_and_now() -> None:
    out = inline("{{ journey.id }}/{{ journey.step }} at {{ now }}", ctx(step="3.1"))
    assert out == "cart_recovery/3.1 at 2024-03-05T10:30:00Z"


def test_now_works_with_the_date_filter() -> None:
    assert inline("{{ now | date: '%d %b %Y' }}") == "05 Mar 2024"


def test_with_values_are_top_level_variables() -> None:
    values = {"coupon": "COMEBACK10", "percent": 10, "until": NOW + timedelta(days=2)}
    out = inline("{{ coupon }} {{ percent }}% until {{ until }}", ctx(values=values))
    assert out == "COMEBACK10 10% until 2024-03-07T10:30:00Z"


def test_with_values_do_not_shadow_the_renderers_names() -> None:
    values = {"user": "x", "event": "x", "journey": "x", "now": "x", "coupon": "C"}
    out = inline(
        "{{ user.first_name }} {{ event.name }} {{ journey.id }} {{ now }} {{ coupon }}",
        ctx(values=values),
    )
    assert out == "Ana cart_abandoned cart_recovery 2024-03-05T10:30:00Z C"


def test_datetimes_at_any_depth_render_as_iso_z() -> None:
    bangkok = timezone(timedelta(hours=7))
    values = {
        "order": {"placed": datetime(2024, 3, 1, 17, 0, tzinfo=bangkok)},
        "dates": [datetime(2024, 1, 2, 3, 4, 5)],
        "last_view": EventView(name="product_viewed", at=NOW, props={"sku": "S1"}),
    }
    user = {"signed_up": datetime(2023, 12, 31, 23, 59, tzinfo=UTC)}
    t = (
        "{{ order.placed }} {{ dates[0] }} {{ last_view.sku }} {{ last_view.at }} "
        "{{ user.signed_up }}"
    )
    assert inline(t, ctx(user=user, values=values)) == (
        "2024-03-01T10:00:00Z 2024-01-02T03:04:05Z S1 2024-03-05T10:30:00Z 2023-12-31T23:59:00Z"
    )


def test_iso_z_keeps_microseconds_and_reads_naive_as_utc() -> None:
    assert iso_z(datetime(2024, 1, 1, 0, 0, 0, 5)) == "2024-01-01T00:00:00.000005Z"


def test_same_inputs_same_output() -> None:
    m = message("push", body=FieldIR(default="{{ user.first_name }} {{ now }} {{ event.at }}"))
    a = Renderer().render(m, None, "push", ctx())
    b = Renderer().render(m, None, "push", ctx())
    assert a == b == {"body": "Ana 2024-03-05T10:30:00Z 2024-03-05T09:00:00Z"}


# ---------------------------------------------------------------- errors


def test_unknown_filter_is_a_render_error_naming_channel_and_field() -> None:
    m = message("email", subject=FieldIR(default="{{ coupon | shout }}"))
    with pytest.raises(RenderError) as info:
        Renderer().render(m, None, "email", ctx())
    assert info.value.message == "message `m`, email subject: unknown filter 'shout'"


def test_inline_error_names_the_inline_field() -> None:
    with pytest.raises(RenderError, match=r"^inline message, sms body: unknown filter 'nope'$"):
        Renderer().render(None, "{{ 1 | nope }}", "sms", ctx())


def test_bad_filter_argument_is_a_render_error() -> None:
    with pytest.raises(RenderError, match=r"email text: divided_by: can't divide by 0"):
        Renderer().render(None, "{{ 10 | divided_by: 0 }}", "email", ctx())


def test_syntax_error_is_a_render_error() -> None:
    with pytest.raises(RenderError, match=r"push body: expected '}}'"):
        Renderer().render(None, "{{ user.first_name ", "push", ctx())


@pytest.mark.parametrize("exc", [KeyError("sku"), ValueError("no catalog"), RuntimeError()])
def test_a_filter_that_raises_is_a_render_error(exc: Exception) -> None:
    r = Renderer()

    def broken(value: object, *args: object) -> str:
        raise exc

    r.environment.filters["top_sellers"] = broken
    with pytest.raises(RenderError, match=r"^inline message, push body: ") as info:
        r.render(None, "{{ event.category | top_sellers: 3 }}", "push", ctx())
    assert type(exc).__name__ in info.value.message


def test_deeply_nested_template_is_a_render_error() -> None:
    source = "{% if true %}" * 2000 + "x" + "{% endif %}" * 2000
    with pytest.raises(RenderError):
        Renderer().render(None, source, "push", ctx())


# ---------------------------------------------------------------- cache


class ParseCounter:
    def __init__(self, r: Renderer) -> None:
        self.sources: list[str] = []
        original = r.environment.from_string

        def counting(source: str, *args: Any, **kwargs: Any) -> Any:
            self.sources.append(source)
            return original(source, *args, **kwargs)

        r.environment.from_string = counting  # type: ignore[method-assign]


def test_each_source_is_compiled_once() -> None:
    r = Renderer()
    parses = ParseCounter(r)
    m = message(
        "push",
        title=FieldIR(default="Hi {{ user.first_name }}"),
        body=FieldIR(default="Hi {{ user.first_name }}"),
    )
    for name in ("Ana", "Ben", "Chai"):
        out = r.render(m, None, "push", ctx(user={"first_name": name}))
        assert out == {"title": f"Hi {name}", "body": f"Hi {name}"}
    r.render(None, "Hi {{ user.first_name }}", "sms", ctx())
    assert parses.sources == ["Hi {{ user.first_name }}"]


def test_a_template_that_does_not_parse_is_parsed_once_too() -> None:
    r = Renderer()
    parses = ParseCounter(r)
    for _ in range(3):
        with pytest.raises(RenderError, match="expected"):
            r.render(None, "{{ oops ", "push", ctx())
    assert len(parses.sources) == 1


def test_the_cache_is_bounded_and_least_recently_used() -> None:
    r = Renderer(max_templates=2)
    parses = ParseCounter(r)
    for source in ["a", "b", "a", "c", "a", "b"]:
        assert inline_with(r, source) == source
    # "b" was the least recently used when "c" came in, so it was parsed again.
    assert parses.sources == ["a", "b", "c", "b"]


def inline_with(r: Renderer, source: str) -> str:
    return r.render(None, source, "push", ctx())["body"]


def test_cache_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Renderer(max_templates=0)


# ---------------------------------------------------------------- LANGUAGE.md messages

MESSAGES = """\
message cart_reminder
  push
    title "Still thinking about {{ event.product_name }}?"
    title th "ยังคิดถึง {{ event.product_name }} อยู่ไหม?"
    body "Your cart is waiting{% if user.first_name %}, {{ user.first_name }}{% endif %}."
    deeplink "app://cart"
  whatsapp
    body "Hi {{ user.first_name | default: 'there' }}, your cart is waiting: {{ event.cart_url }}"
  email
    subject "You left {{ event.item_count }} items behind"
    html file "templates/cart_reminder.html"
  sms
    body "Your cart is waiting: {{ event.cart_url }}"

message discount_offer
  email
    subject "{{ percent }}% off, just for you"
    html "<p>Use <b>{{ coupon }}</b> at checkout.</p>"
"""

HTML = """\
<h1>Hi {{ user.first_name | default: "there" }},</h1>
<p>{{ event.item_count }} items are waiting in your cart ({{ event.cart_value }} THB).</p>
<a href="{{ event.cart_url }}?utm_campaign={{ journey.id }}">Back to my cart</a>
"""


@pytest.fixture
def project_messages(tmp_path: Path) -> dict[str, MessageIR]:
    (tmp_path / "messages.journey").write_text(MESSAGES, encoding="utf-8")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "cart_reminder.html").write_text(HTML, encoding="utf-8")
    project = load_project([tmp_path])
    assert not project.parse_diagnostics, project.parse_diagnostics
    return lower_project(project).messages


def test_cart_reminder_on_every_channel(project_messages: dict[str, MessageIR]) -> None:
    m = project_messages["cart_reminder"]
    r = Renderer()
    assert r.render(m, None, "push", ctx()) == {
        "title": "Still thinking about Trail Runner 2?",
        "body": "Your cart is waiting, Ana.",
        "deeplink": "app://cart",
    }
    assert r.render(m, None, "whatsapp", ctx(user={})) == {
        "body": "Hi there, your cart is waiting: https://shop.example/cart/abc123"
    }
    assert r.render(m, None, "email", ctx()) == {
        "subject": "You left 3 items behind",
        "html": (
            "<h1>Hi Ana,</h1>\n"
            "<p>3 items are waiting in your cart (129.5 THB).</p>\n"
            '<a href="https://shop.example/cart/abc123?utm_campaign=cart_recovery">'
            "Back to my cart</a>\n"
        ),
    }
    assert r.render(m, None, "sms", ctx()) == {
        "body": "Your cart is waiting: https://shop.example/cart/abc123"
    }


def test_cart_reminder_in_thai(project_messages: dict[str, MessageIR]) -> None:
    m = project_messages["cart_reminder"]
    out = Renderer().render(m, None, "push", ctx(user={"locale": "th_TH"}))
    assert out == {
        "title": "ยังคิดถึง Trail Runner 2 อยู่ไหม?",
        "body": "Your cart is waiting.",
        "deeplink": "app://cart",
    }


def test_discount_offer_with_values(project_messages: dict[str, MessageIR]) -> None:
    m = project_messages["discount_offer"]
    timeout = ctx(event=CART, values={"coupon": "COMEBACK10", "percent": 10}, step="3.2.1")
    assert Renderer().render(m, None, "email", timeout) == {
        "subject": "10% off, just for you",
        "html": "<p>Use <b>COMEBACK10</b> at checkout.</p>",
    }


# ---------------------------------------------------------------- render limits
# A template must not stall the engine, which renders inside its write transaction
# (issue #21): every limit stops a render in milliseconds, naming its [render] key.


def refused(
    source: str,
    key: str,
    *,
    values: dict[str, Any] | None = None,
    limits: RenderLimits = DEFAULT_LIMITS,
) -> RenderError:
    """The error rendering ``source`` gives, after checking it names ``key``: the
    render stopped at that limit (not by running out of time or memory)."""
    with pytest.raises(RenderError) as info:
        Renderer(limits=limits).render(None, source, "push", ctx(values=values))
    assert f"(render.{key} = {getattr(limits, key)})" in info.value.message
    return info.value


def test_a_loop_of_a_hundred_million_iterations_is_refused_at_once() -> None:
    error = refused("{% for i in (1..100000000) %}x{% endfor %}", "loop_iterations")
    assert error.message == (
        "inline message, push body: loop iteration limit reached (render.loop_iterations = 10000)"
    )


def test_loops_in_a_row_count_together() -> None:
    loop = "{% for i in (1..6000) %}{% endfor %}"
    assert inline(loop) == ""
    refused(loop * 2, "loop_iterations")


def test_a_tablerow_counts_its_iterations_once() -> None:
    limits = RenderLimits(loop_iterations=10)
    table = "{% tablerow i in (1..10) cols: 5 %}{{ i }}{% endtablerow %}"
    out = Renderer(limits=limits).render(None, table, "push", ctx())
    assert out["body"].count("<td") == 10
    refused(table.replace("10", "11"), "loop_iterations", limits=limits)


def test_nested_loops_count_every_run_of_the_inner_one() -> None:
    refused(
        "{% for i in (1..200) %}{% for j in (1..200) %}{% endfor %}{% endfor %}", "loop_iterations"
    )


def test_append_doubling_is_stopped_by_the_local_namespace_limit() -> None:
    doubling = (
        "{% assign s = 'x' %}{% for i in (1..25) %}{% assign s = s | append: s %}{% endfor %}"
    )
    refused(doubling + "{{ s.size }}", "local_bytes")


def test_many_locals_assigned_in_a_loop_stay_quick() -> None:
    # Liquid's own check summed the size of every local at each assignment: 2,000
    # locals and 9,000 assignments took seconds.
    source = "".join(f"{{% assign a{k} = 1 %}}" for k in range(2000))
    source += "{% for i in (1..9000) %}{% assign a1 = i %}{% endfor %}{{ a1 }}"
    r = Renderer()
    r.prepare([source])
    # Count the size measurements rather than time them (machines are noisy): one or
    # two per assignment, not one per local per assignment (18M).
    measured = 0
    real_getsizeof = sys.getsizeof

    def counting_getsizeof(obj: object, default: int = 0) -> int:
        nonlocal measured
        measured += 1
        return real_getsizeof(obj, default)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "getsizeof", counting_getsizeof)
        assert r.render(None, source, "push", ctx()) == {"body": "9000"}
    # At least one per assignment, or the count above would hold of a limit that no
    # longer measures anything (or of a patch that no longer reaches it).
    assert 2000 + 9000 <= measured < 3 * (2000 + 9000)


def test_capture_doubling_is_stopped_too() -> None:
    doubling = (
        "{% assign s = 'xxxxxxxx' %}{% for i in (1..25) %}"
        "{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}"
    )
    refused(doubling, "field_bytes")


def test_filters_in_one_output_cannot_grow_text_past_the_limits() -> None:
    big = {"s": "x" * 400_000}  # a value the engine was handed, not assigned
    # replace with an empty pattern would make 400,000 x 400,000 characters
    refused('{{ s | replace: "", s }}', "field_bytes", values=big)
    refused("{{ (1..100000000) | join: ',' }}", "loop_iterations")
    chain = "{{ s" + " | append: s" * 30 + " | size }}"  # never printed: no output limit
    refused(chain, "filter_chars", values=big)


def test_lists_built_by_concat_doubling_are_stopped() -> None:
    doubling = (
        "{% assign a = 'x,y' | split: ',' %}{% for i in (1..30) %}"
        "{% assign a = a | concat: a %}{% endfor %}{{ a | size }}"
    )
    refused(doubling, "loop_iterations")


def test_squaring_numbers_is_stopped() -> None:
    squaring = "{% assign n = 3 %}{% for i in (1..40) %}{% assign n = n | times: n %}{% endfor %}"
    refused(squaring + "{{ n }}", "filter_chars")


def test_a_big_output_is_refused_by_liquid_and_by_the_shortcut() -> None:
    refused("{% for i in (1..9000) %}" + "x" * 100 + "{% endfor %}", "field_bytes")
    # A plain output takes the shortcut (journeyc.messages.fastrender): same refusal.
    refused("{{ big }}{{ big }}", "field_bytes", values={"big": "é" * 150_000})
    assert len(inline("{{ big }}", ctx(values={"big": "é" * 150_000}))) == 150_000


def test_the_fields_of_one_send_together_have_a_limit() -> None:
    half = "x" * 400_000
    m = message("email", subject=FieldIR(default="{{ a }}"), html=FieldIR(default="{{ a }}"))
    small = RenderLimits(field_bytes=500_000, send_bytes=700_000)
    with pytest.raises(RenderError) as info:
        Renderer(limits=small).render(m, None, "email", ctx(values={"a": half}))
    assert info.value.message == (
        "message `m`, email: the rendered fields are 800,000 bytes together, over the "
        "per-send limit (render.send_bytes = 700000)"
    )
    out = Renderer(limits=small).render(m, None, "email", ctx(values={"a": half[:300_000]}))
    assert len(out["subject"]) == 300_000


def test_text_is_kept_as_written_under_the_output_limit() -> None:
    # Liquid's own limited buffer turns \r\n and \r into \n; ours keeps the text.
    values = {"a": "x\r\ny\rz"}
    assert inline("{{ a }}", ctx(values=values)) == "x\r\ny\rz"  # the shortcut
    twice = "{% capture c %}{{ a }}{% endcapture %}{{ c | append: a }}"
    assert inline(twice, ctx(values=values)) == "x\r\ny\rz" * 2  # Liquid


def test_context_depth_is_limited() -> None:
    nested = "{% for a in (1..1) %}" * 6 + "x" + "{% endfor %}" * 6
    assert inline(nested) == "x"
    refused(nested, "context_depth", limits=RenderLimits(context_depth=3))


def test_limits_come_from_journeyc_toml() -> None:
    config = Config.model_validate({"render": {"loop_iterations": 5, "field_bytes": 10}})
    limits = config.render.limits
    assert (limits.loop_iterations, limits.field_bytes) == (5, 10)
    refused("{% for i in (1..6) %}{% endfor %}", "loop_iterations", limits=limits)
    refused("{{ 'abcdefghijk' }}", "field_bytes", limits=limits)
    with pytest.raises(ValueError, match="at least 1"):
        RenderLimits(send_bytes=0)


def test_include_and_render_read_no_file(tmp_path: Path) -> None:
    (tmp_path / "secret.liquid").write_text("secret")
    for source in (
        "{% include '/etc/passwd' %}",
        "{% render '../../../etc/hostname' %}",
        f"{{% include '{tmp_path / 'secret.liquid'}' %}}",
    ):
        with pytest.raises(RenderError, match="template not found"):
            Renderer().render(None, source, "push", ctx())


def test_the_engine_suppresses_a_runaway_template_quickly() -> None:
    project = {
        "r.journey": (
            "journey runaway\n"
            "  when cart_abandoned\n"
            '  send webhook "{% for i in (1..100000000) %}x{% endfor %}" as loop\n'
            '  send inapp "fine" as fine\n'
        )
    }
    events = [track("u1", "cart_abandoned", "2026-01-05T10:00:00")]
    r = run(project, events)  # the loop stops at the limit: 10,000 iterations, not 100M
    loop = r.of(step="loop")[0]
    assert (loop["action"], loop["reason"]) == ("suppress", "render_error")
    assert "render.loop_iterations" in loop["error"]
    assert [row["status"] for row in r.outbox if row["step"] == "loop"] == ["suppressed"]
    assert r.of(step="fine")[0]["action"] == "send"
