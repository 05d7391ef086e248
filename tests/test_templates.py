"""The Liquid environment: the contract's filter forms parse; Liquid keeps its meaning."""

from __future__ import annotations

from pathlib import Path

import liquid
import pytest
from liquid import CachingFileSystemLoader, FileSystemLoader
from liquid.exceptions import TemplateNotFoundError

from journeyc.lang.checker import check_project
from journeyc.lang.project import inside_project, load_project
from journeyc.messages.templates import (
    CONTEXT_NAMES,
    big_loops,
    filter_problems,
    filter_signature,
    make_environment,
    template_errors,
    with_values,
)


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


# ---------------------------------------------------------------- template files stay inside


def _check_files(tmp_path: Path, field: str) -> list[tuple[str, int, int]]:
    """``(code, line, column)`` of the diagnostics of a project whose message reads
    ``html file "<field>"``."""
    project = tmp_path / "project"
    (project / "templates").mkdir(parents=True, exist_ok=True)
    (project / "templates" / "ok.html").write_text("<p>{{ user.first_name }}</p>")
    (tmp_path / "outside.html").write_text("secret")
    (project / "m.journey").write_text(
        f'message m\n  email\n    subject "Hi"\n    html file "{field}"\n\n'
        "journey j\n  when signed_up\n  send email m\n"
    )
    return [
        (d.code, d.span.line, d.span.column)
        for d in check_project(load_project([project]))
        if d.is_error
    ]


def test_template_files_inside_the_project_are_read(tmp_path: Path) -> None:
    assert _check_files(tmp_path, "templates/ok.html") == []
    assert _check_files(tmp_path, "templates/../templates/ok.html") == []


@pytest.mark.parametrize(
    "field", ["/etc/passwd", "../outside.html", "templates/../../outside.html"]
)
def test_template_files_outside_the_project_are_refused(tmp_path: Path, field: str) -> None:
    assert _check_files(tmp_path, field) == [("file_outside_project", 4, 15)]


def test_a_symbolic_link_out_of_the_project_is_refused(tmp_path: Path) -> None:
    _check_files(tmp_path, "templates/ok.html")
    templates = tmp_path / "project" / "templates"
    (templates / "out.html").symlink_to(tmp_path / "outside.html")
    (templates / "etc").symlink_to("/etc")
    (templates / "in.html").symlink_to(templates / "ok.html")
    assert _check_files(tmp_path, "templates/out.html") == [("file_outside_project", 4, 15)]
    assert _check_files(tmp_path, "templates/etc/hostname") == [("file_outside_project", 4, 15)]
    assert _check_files(tmp_path, "templates/in.html") == []


def test_a_journey_file_given_alone_reads_templates_beside_it_only(tmp_path: Path) -> None:
    _check_files(tmp_path, "../outside.html")
    diagnostics = check_project(load_project([tmp_path / "project" / "m.journey"]))
    assert [d.code for d in diagnostics if d.is_error] == ["file_outside_project"]


def test_inside_project_follows_links_and_dots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "link").symlink_to(tmp_path)
    assert inside_project(root / "a" / "x.html", [root])
    assert inside_project(root / "a" / ".." / "x.html", [root])
    assert not inside_project(root / ".." / "x.html", [root])
    assert not inside_project(root / "link" / "x.html", [root])
    assert inside_project(root / "link" / "x.html", [root, tmp_path])


def test_include_and_render_find_no_template(tmp_path: Path) -> None:
    (tmp_path / "t.liquid").write_text("secret")
    env = make_environment()
    for source in ("{% include 't.liquid' %}", f"{{% render '{tmp_path}/t.liquid' %}}"):
        with pytest.raises(TemplateNotFoundError):
            env.from_string(source).render()


def test_liquids_file_loaders_stay_in_their_directory(tmp_path: Path) -> None:
    # Not used today (the environment has no loader); were include or render ever
    # given a loader, these are the ones, and they keep to their directory.
    root, out = tmp_path / "root", tmp_path / "out"
    root.mkdir()
    out.mkdir()
    (root / "ok.liquid").write_text("ok")
    (out / "s.liquid").write_text("secret")
    (root / "link.liquid").symlink_to(out / "s.liquid")
    for loader in (FileSystemLoader(root), CachingFileSystemLoader(root)):
        env = liquid.Environment(loader=loader)
        assert env.from_string("{% include 'ok.liquid' %}").render() == "ok"
        for name in ("../out/s.liquid", str(out / "s.liquid"), "link.liquid"):
            with pytest.raises(TemplateNotFoundError):
                env.from_string(f"{{% include '{name}' %}}").render()


# ---------------------------------------------------------------- loops the checker sees


def test_big_literal_loops_are_found_where_their_tag_starts() -> None:
    source = (
        "{% for i in (1..10) %}{% endfor %}"
        "{% for i in (1..10001) %}{% endfor %}"
        "{% for i in (1..100000) limit: 3 %}{% endfor %}"
        "{% if x %}{% for i in (1..101) %}{% for j in (1..100) %}"
        "{% endfor %}{% endfor %}{% endif %}"
        "{% for i in user.items %}{% for j in (1..10) %}{% endfor %}{% endfor %}"
    )
    found = big_loops(source)
    assert [(e.offset, e.length) for e in found] == [(37, 3), (154, 3)]
    assert source[found[1].offset or 0 :].startswith("for j in (1..100)")
    assert "10,001 times" in found[0].message and "10,100 times" in found[1].message
    assert big_loops(source, limit=100_000) == []
    assert big_loops("{% for i in (1..") == []  # does not parse: reported elsewhere


# ---------------------------------------------------------------- filters the checker sees


def _problems(source: str) -> list[tuple[str, int, str, str]]:
    return [(p.kind, p.offset, p.message, p.label) for p in filter_problems(source)]


def test_an_unknown_filter_is_found_with_a_suggestion() -> None:
    source = "Hi {{ user.first_name | upcse }}"
    assert _problems(source) == [
        ("unknown", source.index("upcse"), "there is no filter `upcse`", "did you mean `upcase`?")
    ]
    assert _problems("{{ x | money }}") == [
        ("unknown", 7, "there is no filter `money`", "unknown filter")
    ]


def test_filters_are_found_in_every_kind_of_tag() -> None:
    source = (
        "{% assign a = x | apend: 'b' %}{% capture c %}{{ a | upcse }}{% endcapture %}"
        "{% for p in ps %}{% echo p | dwncase %}{% endfor %}{% liquid\necho a | rond\n%}"
    )
    assert [(kind, source[offset:].split()[0]) for kind, offset, _, _ in _problems(source)] == [
        ("unknown", "apend:"),
        ("unknown", "upcse"),
        ("unknown", "dwncase"),
        ("unknown", "rond"),
    ]


def test_every_filter_of_the_environment_is_known() -> None:
    # The list is the environment's: Liquid's filters and journeyc's own.
    names = sorted(make_environment().filters)
    assert {"upcase", "date", "top_sellers", "popular", "cross_sell"} <= set(names)
    source = "".join(f"{{{{ x | {name} }}}}" for name in names)
    assert "unknown" not in {kind for kind, *_ in _problems(source)}


@pytest.mark.parametrize(
    ("source", "message", "label"),
    [
        ("{{ x | date }}", "`date` takes 1 argument, not 0", "called as `date: fmt`"),
        ("{{ x | upcase: 1 }}", "`upcase` takes no arguments, not 1", "it takes no arguments"),
        (
            "{{ x | replace: 'a', 'b', 'c' }}",
            "`replace` takes 1 to 2 arguments, not 3",
            "called as `replace: seq, [sub]`",
        ),
        (
            "{{ x | default: 'a', nope: true }}",
            "`default` has no argument named `nope`",
            "called as `default: [default], [allow_false: …]`",
        ),
        ("{{ 1 | plus }}", "`plus` takes 1 argument, not 0", "called as `plus: other`"),
    ],
)
def test_wrong_arguments_are_found(source: str, message: str, label: str) -> None:
    [(kind, offset, got, shown)] = _problems(source)
    assert (kind, got, shown) == ("arguments", message, label)
    assert source[offset:].startswith(got.split("`")[1])


@pytest.mark.parametrize(
    "source",
    [
        "{{ x | default: 'a', allow_false: true }}",
        "{{ x | truncate: 20, '…' }}",
        "{{ x | truncate: num: 3 }}",
        "{{ x | round }}",
        "{{ x | date: '%Y' }}",
        # Any number of arguments: checked by the filter when it runs, not here.
        "{{ x | top_sellers: 3, days: 10 }}",
        '{{ "Rolex" | popular: by: "brand", days: 10, limit: 3 }}',
        "{{ x | ",  # does not parse: reported as a syntax error instead
    ],
)
def test_right_arguments_and_unknowable_ones_pass(source: str) -> None:
    assert _problems(source) == []


def test_a_filter_of_any_arity_has_no_count_to_check() -> None:
    sig = filter_signature("top_sellers")
    assert sig is not None and sig.more and sig.any_keyword
    assert filter_signature("no_such_filter") is None


def test_with_values_are_the_names_a_template_needs() -> None:
    source = (
        "Use {{ coupon }} {{ user.x }} {{ event.y }} {{ journey.step }} {{ now }}"
        "{{ percent | default: 5 }}{% if vip %}{{ vip }}{% endif %}"
        "{% unless gift %}{% endunless %}{% assign z = 1 %}{{ z }}"
        "{% for p in picks %}{{ p }}{{ forloop.index }}{% endfor %}"
    )
    assert with_values(source) == {"coupon": source.index("coupon"), "picks": source.index("picks")}
    assert with_values("{{ broken") == {}


def test_the_context_names_are_the_renderers() -> None:
    from journeyc.messages.render import RESERVED_NAMES

    assert CONTEXT_NAMES == RESERVED_NAMES


def _diagnose(tmp_path: Path, files: dict[str, str]) -> list[tuple[str, str, int, int, str]]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return [
        (d.code, d.span.file, d.span.line, d.span.column, d.label)
        for d in check_project(load_project([tmp_path]))
    ]


def test_filter_positions_in_inline_strings_count_escapes(tmp_path: Path) -> None:
    src = 'journey j\n  when x\n  send push "say \\"hi\\" {{ user.name | upcse }}"\n'
    [(code, _, line, column, label)] = _diagnose(tmp_path, {"j.journey": src})
    assert (code, line, column, label) == ("unknown_filter", 3, 40, "did you mean `upcase`?")
    assert src.splitlines()[2][column - 1 :].startswith("upcse")


def test_filter_positions_in_template_files_are_their_own(tmp_path: Path) -> None:
    found = _diagnose(
        tmp_path,
        {
            "m.journey": 'message m\n  email\n    subject "Hi"\n    html file "t.html"\n\n'
            "journey j\n  when x\n  send email m\n",
            "t.html": "<p>\n  {{ user.name | capitalise }}\n</p>\n",
        },
    )
    assert [(c, Path(f).name, line, col) for c, f, line, col, _ in found] == [
        ("unknown_filter", "t.html", 2, 18)
    ]


def test_a_send_that_does_not_pass_a_with_value_is_warned_at(tmp_path: Path) -> None:
    found = _diagnose(
        tmp_path,
        {
            "m.journey": 'message offer\n  push\n    title "Use {{ coupon }}"\n\n'
            "journey j\n  when x\n"
            '  send push offer with coupon = "A"\n'
            "  send push offer\n",
        },
    )
    assert [(c, line, col) for c, _, line, col, _ in found] == [("missing_with_value", 8, 13)]
    project = load_project([tmp_path])
    [d] = check_project(project)
    assert d.summary == "`offer` (its push title) reads `coupon`, which this send does not pass"
    assert "with coupon = …" in d.hints[0]
