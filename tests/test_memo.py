"""Fields remembered by what they read print what Liquid prints, send after send."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyc.messages.memo import dependencies
from journeyc.messages.render import Renderer, RenderError
from tests.test_fastrender import KEYS, NOW, TEMPLATES, VALUES, liquid_render, make_context

# Templates Liquid renders (no shortcut), with the shapes a memo could get wrong:
# derived properties of whole values, indexes, loops, assignments, `date` on "now".
LIQUID_ONLY = [
    "{% if user.first_name %}Hi {{ user.first_name }}{% else %}Hi{% endif %}",
    "{{ user.tags.size }}/{{ user.tags.first }}/{{ user.tags[1] }}/{{ user.size }}",
    "{{ user.nested.size }} {{ user.nested.first }} {{ user.nested.deep.size }}",
    "{% for t in user.tags %}[{{ t }}{{ t.deep }}]{% endfor %} {{ user.n | plus: 1 }}",
    "{% assign x = user.nested %}{{ x.deep }} {{ x.er | default: 'none' }}",
    "{{ 'now' | date: '%Y-%m-%d %H:%M' }} {{ coupon | upcase }}",
    "{% case user.flag %}{% when true %}on{% when false %}off{% else %}?{% endcase %}",
    "{{ event.cart.total | default: 0 | times: percent }} {{ event.name }} {{ event }}",
    "{% unless user.n %}none{% endunless %}{% increment k %}{% cycle 'a', 'b' %}",
    "{{ user }} {{ values }} {{ user.first_name | append: event.product_name }}",
]

CONTEXTS = st.lists(
    st.tuples(
        st.dictionaries(KEYS, VALUES, max_size=5),
        st.one_of(st.none(), st.dictionaries(KEYS, VALUES, max_size=5)),
        st.dictionaries(st.sampled_from(["coupon", "percent"]), VALUES, max_size=2),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(source=st.sampled_from(LIQUID_ONLY + TEMPLATES), contexts=CONTEXTS, repeat=st.booleans())
def test_a_remembered_field_is_what_liquid_prints(
    source: str, contexts: list[tuple[Any, Any, Any, int]], repeat: bool
) -> None:
    renderer = Renderer()
    if repeat:  # the same contexts twice: the second time every field is remembered
        contexts = contexts + contexts
    for profile, props, values, hours in contexts:
        context = make_context(profile, props, values, NOW + timedelta(hours=hours))
        try:
            expected = liquid_render(renderer, source, context)
        except Exception:  # a filter refusing its input: the renderer says so each time
            with pytest.raises(RenderError):
                renderer.render(None, source, "push", context)
            continue
        assert renderer.render(None, source, "push", context) == {"body": expected}


@pytest.mark.parametrize(
    ("source", "paths"),
    [
        ("Hi {{ user.first_name }}", [("user", "first_name")]),
        ("{{ user.tags[0] }}", [("user", "tags", 0)]),
        ("{{ 'now' | date: '%Y' }}", [("now",)]),
        ("{% for p in event.items %}{{ p.name }}{% endfor %}", [("event", "items")]),
        ("{{ user[key] }}", None),  # a variable inside the path
        ("{{ user.id | top_sellers }}", None),  # reads the catalog
        ("{% render 'x' %}", None),  # another template
    ],
)
def test_what_a_template_depends_on(source: str, paths: list[tuple[Any, ...]] | None) -> None:
    template = Renderer().environment.from_string(source)
    found = dependencies(template)
    assert (None if found is None else sorted(found, key=repr)) == paths


@pytest.mark.parametrize(
    "source",
    [
        "{% if user.vip %}{% assign coupon = 'VIP20' %}{% endif %}Use {{ coupon }}",
        "{% if user.vip %}{% capture coupon %}VIP{% endcapture %}{% endif %}Use {{ coupon }}",
        "{% unless user.vip %}{% else %}{% assign coupon = 'V' %}{% endunless %}{{ coupon }}",
    ],
)
def test_a_global_assigned_only_on_one_branch_is_read_on_the_others(source: str) -> None:
    # Liquid's analysis calls `coupon` a local throughout, but where the branch does
    # not run the template prints the with-value: it is part of what it reads.
    renderer = Renderer()
    for coupon in ["BASE10", "OTHER5"]:
        context = make_context({"vip": False}, None, {"coupon": coupon})
        assert renderer.render(None, source, "push", context)["body"].endswith(coupon)


def test_a_field_reading_the_clock_is_not_taken_from_an_earlier_hour() -> None:
    renderer = Renderer()
    source = "{{ 'now' | date: '%H:%M' }} {{ coupon }}"
    texts = [
        renderer.render(
            None,
            source,
            "push",
            make_context({}, None, {"coupon": "C"}, NOW + timedelta(hours=h)),
        )
        for h in (0, 1, 0)
    ]
    assert texts == [{"body": "10:30 C"}, {"body": "11:30 C"}, {"body": "10:30 C"}]
