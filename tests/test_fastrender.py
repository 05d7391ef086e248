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
    # Bodies Liquid calls blank (nothing printed) that still do something: Liquid runs
    # them to a discarded output, so their assigns hold and their filters may fail.
    "{% if user.vip %}{% assign coupon = 'VIP20' %}{% endif %}Use {{ coupon }}",
    "{% if user.flag %} {% capture coupon %} {{ percent }}{% endcapture %} {% endif %}"
    "[{{ coupon }}]",
    "{% if user.flag %}{% elsif user.n %}{% assign percent = 5 %}{% endif %}{{ percent }}%",
    "{% if user.flag %}\n  {% assign x = coupon | nosuch %}\n{% endif %}ok",
    "{% if user.flag %}{% else %}{% assign x = percent | divided_by: 0 %}{% endif %}ok",
    "{% if user.flag %}{% if user.n %}{% assign coupon = 'N' %}{% endif %} {% endif %}{{ coupon }}",
    "{% if user.flag %} {% comment %}c{% endcomment %}{% # note %} {% endif %}|{{ coupon }}",
    "{% if user.flag %}{% raw %}  {% endraw %}{% else %} {% endif %}|{% raw %}{{ x }}{% endraw %}",
    "{% if user.flag %}{% for t in user.tags %} {% endfor %}{% endif %}|",
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
    [
        "first_name",
        "id",
        "nested",
        "tags",
        "flag",
        "vip",
        "n",
        "product_name",
        "cart",
        "name",
        "at",
    ]
)

# A send's context, as make_context takes it: a profile, an event's properties (None:
# no event) and the values a `send … with` sets.
PROFILES = st.dictionaries(KEYS, VALUES, max_size=5)
EVENT_PROPS = st.one_of(st.none(), st.dictionaries(KEYS, VALUES, max_size=5))
SEND_VALUES = st.dictionaries(st.sampled_from(["coupon", "percent", "user"]), VALUES, max_size=3)


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


def assert_agrees_with_liquid(renderer: Renderer, source: str, context: RenderContext) -> None:
    """The shortcut (when it takes ``source``) prints what Liquid prints or leaves the
    field to Liquid, and the renderer gives Liquid's text, or a RenderError where
    Liquid raises (anything: Liquid lets a filter's own exceptions through)."""
    expected: str | None
    try:
        expected = liquid_render(renderer, source, context)
    except Exception:
        expected = None
    try:
        fast = shortcut(renderer.environment.from_string(source))
    except Exception:
        fast = None  # does not parse: nothing to take
    if fast is not None:
        text = fast.render(context)
        # Where Liquid raises, the shortcut must not print anything (None) either.
        assert text is None or text == expected
    if expected is None:
        with pytest.raises(RenderError):
            renderer.render(None, source, "push", context)
    else:
        assert renderer.render(None, source, "push", context) == {"body": expected}


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(TEMPLATES),
    profile=PROFILES,
    props=EVENT_PROPS,
    values=SEND_VALUES,
)
def test_shortcut_prints_what_liquid_prints(
    source: str,
    profile: dict[str, Any],
    props: dict[str, Any] | None,
    values: dict[str, Any],
) -> None:
    assert_agrees_with_liquid(Renderer(), source, make_context(profile, props, values))


# ------------------------------------------------------------- generated templates
# Templates built from the pieces messages are made of, weighted towards what the
# shortcut must get right or leave alone: bodies Liquid calls blank (whitespace,
# comments, `assign`, `capture`, blank nested blocks) that still assign or fail.

GEN_PATHS = [
    "user.first_name",
    "user.flag",
    "user.vip",
    "user.n",
    "user.nested.deep",
    "user.tags",
    "coupon",
    "percent",
    "missing_var",
    "event.cart.total",
    "event.name",
]
GEN_TARGETS = ["coupon", "percent", "fresh", "user"]
PATH = st.sampled_from(GEN_PATHS)
BLANK_TEXT = st.sampled_from(["", " ", "  ", "\n", " \n\t "])
QUIET = st.sampled_from(
    [
        "{% comment %}why {{ coupon | nosuch }}{% endcomment %}",
        "{% # a note %}",
        "{% doc %}about{% enddoc %}",
        "{% raw %}  {% endraw %}",
    ]
)
ASSIGNED = st.one_of(
    st.sampled_from(["'VIP20'", "5", "nil", "''"]),
    PATH,
    st.builds(
        "{} | {}".format,
        PATH,
        st.sampled_from(
            ["append: '!'", "upcase", "nosuch", "divided_by: 0", "default: 'd'", "size", "plus: 1"]
        ),
    ),
)
ASSIGN = st.builds("{{% assign {} = {} %}}".format, st.sampled_from(GEN_TARGETS), ASSIGNED)
OUTPUT = st.one_of(
    PATH.map("{{{{ {} }}}}".format),
    PATH.map("{{{{ {} | default: 'there' }}}}".format),
    PATH.map("{{{{- {} -}}}}".format),
    st.builds(
        "{{{{ {} | {} }}}}".format, PATH, st.sampled_from(["upcase", "nosuch", "divided_by: 0"])
    ),
)
LEAF = st.one_of(
    st.sampled_from(["Hi", ", ", "x", "{% raw %}{{ coupon }}{% endraw %}"]),
    BLANK_TEXT,
    QUIET,
    OUTPUT,
    ASSIGN,
)
CONDITION = st.one_of(
    PATH,
    PATH,
    PATH.map("{}.size".format),
    PATH.map("{} == 'VIP20'".format),
    st.builds("{} and {}".format, PATH, PATH),
)


def _blocks(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Blocks around bodies of ``children``, or around bodies that look blank."""
    looks_blank = st.lists(st.one_of(BLANK_TEXT, QUIET, ASSIGN, children), max_size=3)
    body = st.one_of(st.lists(children, max_size=3), looks_blank).map("".join)
    # Each tag's delimiters: trimming whitespace on either side, or not.
    tag = st.tuples(st.sampled_from(["{%", "{%-"]), st.sampled_from(["%}", "-%}"]))

    def block(kind: str, cond: str, parts: list[str], tags: list[tuple[str, str]]) -> str:
        t = [lambda inner, o=o, c=c: f"{o} {inner} {c}" for o, c in tags]
        if kind == "if":
            text = t[0](f"if {cond}") + parts[0]
            if len(parts) > 2:
                text += t[1](f"elsif {cond}") + parts[1]
            if len(parts) > 1:
                text += t[2]("else") + parts[-1]
            return text + t[3]("endif")
        if kind == "unless":
            text = t[0](f"unless {cond}") + parts[0]
            if len(parts) > 1:
                text += t[2]("else") + parts[-1]
            return text + t[3]("endunless")
        if kind == "case":
            subject = cond.split()[0].removesuffix(".size")
            text = t[0](f"case {subject}") + t[1]("when 'VIP20', true") + parts[0]
            if len(parts) > 1:
                text += t[2]("else") + parts[-1]
            return text + t[3]("endcase")
        if kind == "capture":
            return t[0]("capture coupon") + "".join(parts) + t[3]("endcapture")
        return t[0]("for t in user.tags limit: 2") + parts[0] + t[3]("endfor")

    return st.builds(
        block,
        st.sampled_from(["if", "if", "if", "unless", "case", "capture", "for"]),
        CONDITION,
        st.lists(body, min_size=1, max_size=3),
        st.lists(tag, min_size=4, max_size=4),
    )


GENERATED = st.recursive(LEAF, lambda children: _blocks(children), max_leaves=8).flatmap(
    lambda first: st.lists(st.one_of(LEAF, _blocks(LEAF)), max_size=2).map(
        lambda rest: first + "".join(rest)
    )
)


@settings(max_examples=400, deadline=None)
@given(
    source=GENERATED,
    profile=PROFILES,
    props=EVENT_PROPS,
    values=SEND_VALUES,
)
def test_generated_templates_render_as_liquid_renders_them(
    source: str,
    profile: dict[str, Any],
    props: dict[str, Any] | None,
    values: dict[str, Any],
) -> None:
    assert_agrees_with_liquid(Renderer(), source, make_context(profile, props, values))


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
        ("{% if a %}  {% endif %}", True),
        ("{% if a %} {% if b %}\n{% endif %} {% else %}\t{% endif %}", True),
        ("{% if a %}{% raw %}  {% endraw %}{% endif %}", True),
        ("{% if a %}{% assign x = 1 %}{% endif %}", False),
        ("{% if a %} {% capture x %}y{% endcapture %} {% endif %}", False),
        ("{% if a %}{% if b %}{% assign x = y | nosuch %}{% endif %}{% endif %}", False),
        ("{% if a %}{% else %}{% for x in y %} {% endfor %}{% endif %}", False),
        ("{% if a %}{% increment n %}{% endif %}", False),
        ("Hi{% comment %}why{% endcomment %}{% # note %}{% doc %}d{% enddoc %}", True),
        ("{% if a %} {% comment %}{{ x | nosuch }}{% endcomment %} {% endif %}", True),
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


@pytest.mark.parametrize(
    ("profile", "text"),
    [({"vip": True}, "Use VIP20"), ({"vip": False}, "Use BASE10"), ({}, "Use BASE10")],
)
def test_an_assign_in_a_blank_body_holds(profile: dict[str, Any], text: str) -> None:
    # Liquid prints nothing for a blank body but still runs it (issue #17).
    source = "{% if user.vip %}{% assign coupon = 'VIP20' %}{% endif %}Use {{ coupon }}"
    context = make_context(profile, None, {"coupon": "BASE10"})
    assert Renderer().render(None, source, "push", context) == {"body": text}


@pytest.mark.parametrize(
    "body",
    [
        "{% assign x = coupon | nosuch %}",
        " {% capture x %}{{ coupon | nosuch }}{% endcapture %} ",
        "{% assign x = percent | divided_by: 0 %}",
        "{% if user.n %}{% assign x = coupon | nosuch %}{% endif %}",
    ],
)
def test_a_failing_filter_in_a_blank_body_is_a_render_error(body: str) -> None:
    source = f"{{% if user.vip %}}{body}{{% endif %}}Use {{{{ coupon }}}}"
    context = make_context({"vip": True, "n": 1}, None, {"coupon": "BASE10"})
    with pytest.raises(RenderError):
        Renderer().render(None, source, "push", context)
    # Not taken, the branch runs nothing.
    quiet = make_context({"vip": False}, None, {"coupon": "BASE10"})
    assert Renderer().render(None, source, "push", quiet) == {"body": "Use BASE10"}


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
    profile=PROFILES,
    props=EVENT_PROPS,
    values=SEND_VALUES,
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
    error = r"\(render\.field_bytes = "
    try:
        expected: str | None = liquid_render(renderer, source, context)
    except OutputStreamLimitError:
        expected = None
    except Exception:  # a failing filter (before or after the limit)
        expected, error = None, ""
    fast = shortcut(renderer.environment.from_string(source))
    if fast is not None:
        text = fast.render(context)
        assert text is None or text == expected
    if expected is None:
        with pytest.raises(RenderError, match=error or None):
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
