"""The http provider's URL: event data cannot steer the request (issue #21, part 5).

Values interpolated into ``url`` are percent-encoded where they land, ``url_raw`` opts
out, ``allowed_hosts`` pins the hosts, and header values with line breaks are refused.
The receiver is a real HTTP server on 127.0.0.1 (``tests.test_channels``): what it
records is what went over the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyc.channels import PermanentError
from journeyc.channels.http import HttpProvider, host_allowed
from journeyc.config import ConfigError
from tests.test_channels import HttpReceiver, message


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    # One server for the module: the property test sends many requests through it.
    server = HttpReceiver()
    yield server
    server.stop()


def paths_since(receiver: HttpReceiver, start: int) -> list[str]:
    return [r.path for r in receiver.requests[start:]]


def send(provider: HttpProvider, **profile: Any) -> None:
    provider.send(message(channel="webhook", profile=profile))


def provider(url: str, **options: Any) -> HttpProvider:
    return HttpProvider.from_options("webhook", {"url": url, **options})


# ---------------------------------------------------------------- path and query


def test_a_traversal_token_stays_one_path_segment(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider(receiver.url + "/v1/devices/{{ user.push_token }}/send")
    send(p, push_token="../../../admin/delete?all=1#")
    p.close()
    paths = paths_since(receiver, start)
    assert paths == ["/v1/devices/..%2F..%2F..%2Fadmin%2Fdelete%3Fall%3D1%23/send"]
    assert not any(path.startswith("/admin") for path in paths)


@pytest.mark.parametrize(
    ("token", "segment"), [("..", "%2E%2E"), (".", "%2E"), ("...", "..."), ("a.b", "a.b")]
)
def test_a_value_that_is_a_dot_segment_is_not_resolved(
    receiver: HttpReceiver, token: str, segment: str
) -> None:
    # httpx (like browsers) resolves a literal ".." segment into the parent folder
    # before sending: "/v1/devices/../send" would reach "/v1/send".
    start = len(receiver.requests)
    p = provider(receiver.url + "/v1/devices/{{ user.push_token }}/send")
    send(p, push_token=token)
    p.close()
    assert paths_since(receiver, start) == [f"/v1/devices/{segment}/send"]


def test_dots_made_of_text_and_a_value_are_encoded_too(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider(receiver.url + "/v1/.{{ user.x }}/send")
    send(p, x=".")
    p.close()
    assert paths_since(receiver, start) == ["/v1/%2E%2E/send"]


def test_a_query_value_stays_one_value(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider(receiver.url + "/hooks?user={{ user.id }}&q={{ user.q }}&v=1#{{ user.q }}")
    hostile = "a b&admin=1#frag+plus/%25?x=y"
    send(p, q=hostile)
    p.close()
    (path,) = paths_since(receiver, start)
    parts = urlsplit(path)
    assert parts.path == "/hooks"
    assert parse_qs(parts.query) == {"user": ["u1"], "q": [hostile], "v": ["1"]}
    # The fragment is never sent; nothing of the value leaks after a "#".
    assert "#" not in path


def test_url_encode_in_a_url_does_not_encode_twice(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider(receiver.url + "/hooks?q={{ user.q | url_encode }}")
    send(p, q="a b+c")
    p.close()
    (path,) = paths_since(receiver, start)
    assert parse_qs(urlsplit(path).query) == {"q": ["a b+c"]}


def test_echo_and_capture_are_encoded_as_outputs(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    url = (
        receiver.url + "/e/{% echo user.a %}/{% liquid echo user.a %}"
        "/{% capture both %}{{ user.a }}{{ user.b }}{% endcapture %}{{ both }}"
    )
    p = provider(url)
    send(p, a="x/y", b="?z")
    p.close()
    assert paths_since(receiver, start) == ["/e/x%2Fy/x%2Fy/x%2Fy%3Fz"]


def test_tags_that_write_past_the_outputs_are_refused_in_the_url() -> None:
    with pytest.raises(ConfigError, match=r"channels\.webhook\.url: bad template"):
        provider("https://api.example.com/{% cycle user.a, 'b' %}")


def test_a_value_without_utf8_form_is_a_permanent_failure(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider(receiver.url + "/v1/{{ user.x }}")
    with pytest.raises(PermanentError, match="bad URL"):
        send(p, x="\ud800")
    p.close()
    assert paths_since(receiver, start) == []


# ---------------------------------------------------------------- url_raw


def test_url_raw_lets_a_whole_url_through(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider("{{ user.endpoint | url_raw }}")
    send(p, endpoint=receiver.url + "/hooks/crm?src=journeyc")
    p.close()
    assert paths_since(receiver, start) == ["/hooks/crm?src=journeyc"]


def test_url_raw_and_encoded_values_mix(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider("{{ user.base | url_raw }}/users/{{ user.id }}?q={{ user.q }}")
    send(p, base=receiver.url + "/api/v2", q="1&2")
    p.close()
    assert paths_since(receiver, start) == ["/api/v2/users/u1?q=1%262"]


def test_a_filter_after_url_raw_makes_the_value_encoded_again(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider(receiver.url + "/x/{{ user.p | url_raw | append: '' }}")
    send(p, p="a/b")
    p.close()
    assert paths_since(receiver, start) == ["/x/a%2Fb"]


def test_a_url_that_starts_with_an_encoded_value_is_refused_at_start_up() -> None:
    # The form that used to pass a whole URL through: now a config error with the fix.
    with pytest.raises(ConfigError) as caught:
        provider("{{ message.endpoint }}")
    assert str(caught.value).startswith("channels.webhook.url: starts with a value")
    assert "url_raw" in str(caught.value)


@pytest.mark.parametrize("endpoint", ["ftp://127.0.0.1/x", "file:///etc/passwd", "/just/a/path"])
def test_url_raw_still_needs_http_or_https(receiver: HttpReceiver, endpoint: str) -> None:
    start = len(receiver.requests)
    p = provider("{{ user.endpoint | url_raw }}")
    with pytest.raises(PermanentError, match="bad URL"):
        send(p, endpoint=endpoint)
    p.close()
    assert paths_since(receiver, start) == []


def test_a_line_break_in_a_raw_url_is_refused(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider("{{ user.endpoint | url_raw }}")
    with pytest.raises(PermanentError, match="control character"):
        send(p, endpoint=receiver.url + "/a\r\nX-Injected: 1")
    p.close()
    assert paths_since(receiver, start) == []


def test_a_raw_or_header_value_without_utf8_is_a_permanent_failure(receiver: HttpReceiver) -> None:
    # Not an exception the lane takes for a provider bug (a traceback, retried, and
    # counted against the channel's breaker): the value is the message's problem.
    start = len(receiver.requests)
    p = provider(receiver.url + "/v1/{{ user.path | url_raw }}")
    with pytest.raises(PermanentError, match="not valid text"):
        send(p, path="a\ud800")
    p.close()
    # A body or header template, likewise.
    p = provider(receiver.url + "/v1/x", headers={"X-Path": "{{ user.path }}"})
    with pytest.raises(PermanentError, match="not valid text"):
        send(p, path="a\ud800")
    p.close()
    assert paths_since(receiver, start) == []


# ---------------------------------------------------------------- allowed_hosts


def test_allowed_hosts_lets_the_configured_host_through(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider("{{ user.endpoint | url_raw }}", allowed_hosts=["127.0.0.1"])
    send(p, endpoint=receiver.url + "/hooks/ok")
    p.close()
    assert paths_since(receiver, start) == ["/hooks/ok"]


def test_allowed_hosts_refuses_another_host(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider("{{ user.endpoint | url_raw }}", allowed_hosts=["127.0.0.1"])
    port = receiver.url.rsplit(":", 1)[1]
    with pytest.raises(PermanentError) as caught:
        send(p, endpoint=f"http://localhost:{port}/hooks/stolen")
    p.close()
    assert caught.value.reason == "the host 'localhost' is not in channels.webhook.allowed_hosts"
    assert paths_since(receiver, start) == []


def test_allowed_hosts_checks_a_host_built_from_a_value(receiver: HttpReceiver) -> None:
    p = provider(
        "https://{{ user.region }}.api.example.com/send", allowed_hosts=["api.example.com"]
    )
    with pytest.raises(PermanentError, match=r"'eu\.api\.example\.com' is not in"):
        send(p, region="eu")
    with pytest.raises(PermanentError, match="bad URL"):
        # A "/" in the host part is encoded: never a host, so never sent.
        send(p, region="evil.example/")
    p.close()


def test_a_fixed_url_outside_allowed_hosts_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        provider("https://push.example.com/send", allowed_hosts=["api.example.com"])
    assert str(caught.value) == (
        "channels.webhook.url: the host 'push.example.com' is not in allowed_hosts"
    )


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("api.example.com", True),
        ("API.Example.COM.", True),
        ("eu.example.com", True),
        ("a.b.example.com", True),
        ("example.com", False),
        ("evilexample.com", False),
        ("example.com.evil.net", False),
        ("api.example.net", False),
        ("127.0.0.1", True),
    ],
)
def test_host_patterns(host: str, allowed: bool) -> None:
    options = HttpProvider.from_options(
        "push",
        {
            "url": "https://api.example.com/",
            "allowed_hosts": ["API.example.com", "*.Example.com.", "127.0.0.1"],
        },
    ).options
    assert options.allowed_hosts == ["api.example.com", "*.example.com", "127.0.0.1"]
    assert host_allowed(host, options.allowed_hosts) is allowed


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ([], "channels.push.allowed_hosts: must name at least one host"),
        (["https://api.example.com"], "channels.push.allowed_hosts: expected a host name"),
        (["api.example.com:443"], "channels.push.allowed_hosts: expected a host name"),
        (["api.example.com/v1"], "channels.push.allowed_hosts: expected a host name"),
        (["*"], "channels.push.allowed_hosts: expected a host name"),
        (["a.*.example.com"], "channels.push.allowed_hosts: expected a host name"),
        ([""], "channels.push.allowed_hosts: expected a host name"),
        ("api.example.com", "channels.push.allowed_hosts: "),
    ],
)
def test_bad_allowed_hosts_name_the_key(entry: Any, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        HttpProvider.from_options("push", {"url": "https://x.example", "allowed_hosts": entry})
    assert str(caught.value).startswith(error)


# ---------------------------------------------------------------- headers


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nX-Injected: 1", "a\rb", "a\x00b"])
def test_a_header_value_with_a_line_break_is_refused(receiver: HttpReceiver, value: str) -> None:
    start = len(receiver.requests)
    p = provider(receiver.url + "/h", headers={"X-User": "{{ user.x }}"})
    with pytest.raises(PermanentError) as caught:
        send(p, x=value)
    p.close()
    assert caught.value.reason.startswith("the header 'X-User' renders to a control character")
    assert paths_since(receiver, start) == []


def test_a_header_value_with_a_tab_or_unicode_is_sent(receiver: HttpReceiver) -> None:
    start = len(receiver.requests)
    p = provider(receiver.url + "/h", headers={"X-User": "{{ user.x }}"})
    send(p, x="Ann\tü")
    p.close()
    assert paths_since(receiver, start) == ["/h"]
    assert receiver.requests[-1].headers["x-user"] == "Ann\tü"


@pytest.mark.parametrize("name", ["X-A\r\nX-B", "X-A\n", "X A", "X-A:", "X-{{user.id}}", "Ä", ""])
def test_a_header_name_that_is_not_a_token_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        provider("https://api.example.com/", headers={name: "v"})
    assert str(caught.value) == f"channels.webhook.headers.{name}: not a header name"


# ---------------------------------------------------------------- the property


SEGMENTS = st.one_of(
    st.text(),
    st.text(alphabet="./?#%&=+;:@\\ \t\r\n~-_"),
    st.sampled_from(["", ".", "..", "...", "%2E%2E", "%", "%zz", "/", "//", "?", "#"]),
)


@settings(max_examples=300, deadline=None)
@given(value=SEGMENTS)
def test_any_value_is_exactly_one_path_segment(receiver: HttpReceiver, value: str) -> None:
    start = len(receiver.requests)
    p = provider(receiver.url + "/v1/devices/{{ user.token }}/send?to={{ user.token }}")
    try:
        send(p, token=value)
    finally:
        p.close()
    (path,) = paths_since(receiver, start)
    path, _, query = path.partition("?")
    segments = path.split("/")
    assert len(segments) == 5
    assert segments[:3] == ["", "v1", "devices"] and segments[4] == "send"
    assert unquote(segments[3], errors="strict") == value
    assert segments[3] not in (".", "..")
    assert parse_qs(query, keep_blank_values=True, errors="strict") == {"to": [value]}
