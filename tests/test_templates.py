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
    big_loops,
    make_environment,
    template_errors,
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
