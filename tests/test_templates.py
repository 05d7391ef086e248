"""The Liquid environment: the contract's filter forms parse; Liquid keeps its meaning."""

from __future__ import annotations

from journeyc.messages.templates import make_environment, template_errors


def test_contract_popular_example_parses() -> None:
    assert template_errors('{{ "Rolex" | popular: by: "brand", days: 10, limit: 3 }}') == []


def test_reserved_argument_names_reach_the_filter() -> None:
    env = make_environment()
    env.filters["echo_args"] = lambda value, **kw: ",".join(
        f"{k}={v}" for k, v in sorted(kw.items())
    )
    out = env.from_string('{{ 1 | echo_args: by: "brand", limit: 3, offset: 2 }}').render()
    assert out == "by=brand,limit=3,offset=2"


def test_for_loop_limit_keeps_its_liquid_meaning() -> None:
    out = (
        make_environment()
        .from_string("{% for p in items limit: 2 offset: 1 %}{{ p }}{% endfor %}")
        .render(items=[1, 2, 3, 4])
    )
    assert out == "23"


def test_a_bare_reserved_word_is_still_an_error() -> None:
    (err,) = template_errors("{{ x | f: limit }}")
    assert "limit" in err.message


def test_date_of_now_reads_the_engine_clock_not_the_wall_clock() -> None:
    template = make_environment().from_string('{{ "now" | date: "%Y-%m-%d %H:%M" }}')
    assert template.render(now="2031-07-08T09:10:00Z") == "2031-07-08 09:10"
    assert template.render(now="2020-02-29T23:59:00Z") == "2020-02-29 23:59"
