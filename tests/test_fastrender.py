"""The template shortcut prints exactly what Liquid prints, or leaves the field to Liquid."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liquid.exceptions import OutputStreamLimitError

from journeyc.engine.values import EventView
from journeyc.messages.fastrender import shortcut
from journeyc.messages.render import RenderContext, Renderer, RenderError, template_variables
from journeyc.messages.templates import RenderLimits

NOW = datetime(2026, 1, 5, 10, 30, tzinfo=UTC)

TEMPLATES = [
    "plain text, no outputs",
    "",
    "Hi {{ user.first_name }}",
    "Hi {{ user.first_name | default: 'there' }}, {{ event.product_name }} is waiting",
    'Hi {{ user.first_name | default: "there" }}!',
    "{{ user.id }} / {{ user.nested.deep }} / {{ user.nested.deep.er }}",
    "{{ event.name }} at {{ event.at }}; {{ event.cart.total | default: '0' }}",
    "{{ journey.id }}:{{ journey.step }} {{ journey.nope }}",
    "{{ coupon }} for {{ percent }}% {{ missing_var | default: 'x' }}",
    "{{ user.tags.size }} {{ user.tags.first }} {{ user.tags.last }}",
    "{{ now }} {{ user }} {{ event }} {{ user.flag | default: 'off' }}",
    "a {{- user.first_name -}} b  {{ user.n | default: '' }}",
    "{{ user.first_name | upcase }} {{ user.n | default: 'd', allow_false: true }}",
    "{% if user.first_name %}, {{ user.first_name }}{% endif %}",
    "Use {{ coupon }}{% if user.first_name %}, {{ user.first_name }}{% endif %}.",
    "{% if event.cart %}{{ event.cart.total | default: '0' }}{% elsif user.flag %}flag "
    "{{ user.flag }}{% else %}none{% endif %}",
    "{% if user.nested.deep %}[{% if user.n %}{{ user.n }}{% endif %}]{% endif %}",
    "{% if coupon %}  {% else %}{{ percent }}{% endif %}|{% if user.n %} {% endif %}|",
    "{% if missing_var %}a{% else %}b{% endif %}{% if event %}e{% endif %}",
    "{%- if user.flag -%} on {%- else -%} off {%- endif -%}!",
    "{% if user.tags %}{{ user.tags.size }}{% endif %}{% if user.id %}{{ user.id }}{% endif %}",
    "{% if user.at %}{{ event.at }}{% elsif event.name %}{{ event.name }}{% endif %}",
    "{% if journey.step %}{{ journey.step }}{% endif %}{% if now %}now{% endif %}",
    "{{ user['first_name'] }} {{ values }}",
]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.just(""),
    st.just(NOW),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["deep", "er", "size", "first", "total"]), inner, max_size=3
        ),
    ),
    max_leaves=6,
)
KEYS = st.sampled_from(
    ["first_name", "id", "nested", "tags", "flag", "n", "product_name", "cart", "name", "at"]
)


def make_context(
    profile: dict[str, Any],
    props: dict[str, Any] | None,
    values: dict[str, Any],
    now: datetime = NOW,
) -> RenderContext:
    """A send's context: ``props`` of a ``cart_abandoned`` event (None: no event)."""
    return RenderContext(
        user_id="u1",
        user=profile,
        event=None if props is None else EventView("cart_abandoned", NOW, props),
        journey_id="j",
        step="nudge",
        now=now,
        values=values,
    )


def liquid_render(renderer: Renderer, source: str, context: RenderContext) -> str:
    template = renderer.environment.from_string(source)
    return template.render(**template_variables(context))


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(TEMPLATES),
    profile=st.dictionaries(KEYS, VALUES, max_size=5),
    props=st.one_of(st.none(), st.dictionaries(KEYS, VALUES, max_size=5)),
    values=st.dictionaries(st.sampled_from(["coupon", "percent", "user"]), VALUES, max_size=3),
)
def test_shortcut_prints_what_liquid_prints(
    source: str,
    profile: dict[str, Any],
    props: dict[str, Any] | None,
    values: dict[str, Any],
) -> None:
    renderer = Renderer()
    context = make_context(profile, props, values)
    expected = liquid_render(renderer, source, context)
    fast = shortcut(renderer.environment.from_string(source))
    if fast is not None:
        text = fast.render(context)
        assert text is None or text == expected
    assert renderer.render(None, source, "push", context) == {"body": expected}


@pytest.mark.parametrize(
    ("source", "simple"),
    [
        ("Hi {{ user.first_name | default: 'there' }}", True),
        ("{{ event.product_name }} by {{ event.brand }}", True),
        ("{{ user.first_name | upcase }}", False),
        ("{% if x %}y{% endif %}", True),
        ("Hi{% if user.first_name %} {{ user.first_name }}{% endif %}", True),
        ("{% if a.b %}{% if c %}x{% endif %}{% elsif d %}y{% else %} {% endif %}", True),
        ("{% if user.tags.size %}y{% endif %}", False),
        ("{% if user.a == 'b' %}y{% endif %}", False),
        ("{% if user.a and user.b %}y{% endif %}", False),
        ("{% unless user.a %}y{% endunless %}", False),
        ("{% if user.a %}{{ user.a | upcase }}{% endif %}", False),
        ("{% if user.a %}{% for x in user.b %}{{ x }}{% endfor %}{% endif %}", False),
        ("{{ user.tags.size }}", False),
        ("{{ user['first_name'] }}", True),
        ("{{ user[key] }}", False),
        ("{{ 'text' }}", False),
    ],
)
def test_which_templates_take_the_shortcut(source: str, simple: bool) -> None:
    renderer = Renderer()
    assert (shortcut(renderer.environment.from_string(source)) is not None) == simple


@pytest.mark.parametrize(
    ("profile", "text"),
    [
        ({"first_name": "Ann"}, "Hi Ann, 15% off"),
        ({"first_name": ""}, "Hi , 15% off"),  # empty text holds in Liquid
        ({"first_name": None}, "Hi there, 15% off"),
        ({"first_name": False}, "Hi there, 15% off"),
        ({}, "Hi there, 15% off"),
    ],
)
def test_an_if_block_renders_on_the_shortcut(profile: dict[str, Any], text: str) -> None:
    source = (
        "Hi{% if user.first_name %} {{ user.first_name }}{% else %} there{% endif %}, "
        "{{ percent }}% off"
    )
    renderer = Renderer()
    context = make_context(profile, None, {"percent": 15})
    fast = shortcut(renderer.environment.from_string(source))
    assert fast is not None
    assert fast.render(context) == text == liquid_render(renderer, source, context)


def test_an_environment_that_prints_differently_takes_no_shortcut() -> None:
    import liquid

    strict = liquid.Environment(undefined=liquid.StrictUndefined)
    assert shortcut(strict.from_string("Hi {{ user.first_name }}")) is None
    escaping = liquid.Environment(autoescape=True)
    assert shortcut(escaping.from_string("Hi {{ user.first_name }}")) is None
    blank_blocks = liquid.Environment()
    blank_blocks.suppress_blank_control_flow_blocks = False
    assert shortcut(blank_blocks.from_string("{% if user.a %} {% endif %}")) is None


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(TEMPLATES),
    profile=st.dictionaries(KEYS, VALUES, max_size=5),
    props=st.one_of(st.none(), st.dictionaries(KEYS, VALUES, max_size=5)),
    values=st.dictionaries(st.sampled_from(["coupon", "percent", "user"]), VALUES, max_size=3),
    field_bytes=st.integers(1, 60),
)
def test_under_an_output_limit_the_shortcut_fails_where_liquid_fails(
    source: str,
    profile: dict[str, Any],
    props: dict[str, Any] | None,
    values: dict[str, Any],
    field_bytes: int,
) -> None:
    renderer = Renderer(limits=RenderLimits(field_bytes=field_bytes))
    context = make_context(profile, props, values)
    try:
        expected: str | None = liquid_render(renderer, source, context)
    except OutputStreamLimitError:
        expected = None
    fast = shortcut(renderer.environment.from_string(source))
    if fast is not None:
        text = fast.render(context)
        assert text is None or text == expected
    if expected is None:
        with pytest.raises(RenderError, match=r"\(render\.field_bytes = "):
            renderer.render(None, source, "push", context)
    else:
        assert len(expected.encode()) <= field_bytes
        assert renderer.render(None, source, "push", context) == {"body": expected}


def test_the_shortcut_leaves_a_text_past_the_limit_to_liquid() -> None:
    renderer = Renderer(limits=RenderLimits(field_bytes=8))
    fast = shortcut(renderer.environment.from_string("{{ user.first_name }}"))
    assert fast is not None
    assert fast.render(make_context({"first_name": "ยังคิ"}, None, {})) is None  # 15 bytes
    assert fast.render(make_context({"first_name": "ยั"}, None, {})) == "ยั"  # 6 bytes
