"""Channel providers: one contract every provider meets, then each one's own rules.

The receivers are real: an aiosmtpd server and a ``ThreadingHTTPServer`` on
127.0.0.1, files on disk. Nothing on the network is mocked.
"""

from __future__ import annotations

import email
import email.policy
import io
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller

from journeyc.channels import (
    OutboundMessage,
    PermanentError,
    Provider,
    TransientError,
    build_providers,
    close_providers,
)
from journeyc.channels.console import ConsoleProvider
from journeyc.channels.file import FileProvider
from journeyc.channels.http import HttpProvider
from journeyc.channels.inapp import InappProvider
from journeyc.channels.smtp import SmtpProvider, message_id
from journeyc.config import ConfigError, load_config

# ---------------------------------------------------------------- receivers


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """A real HTTP/1.1 server in a thread that records requests.

    Paths pick the reply: ``/status/NNN`` answers NNN, ``/retry-after`` a 503 with
    ``Retry-After: 7``, ``/slow`` answers after a second; anything else 200.
    """

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died mid-request (the crash test kills it): a real
                    # receiver never sees an incomplete request, and nor do the tests.
                    self.close_connection = True
                    return
                # http.server reads header bytes as latin-1; undo that to see UTF-8.
                headers = {
                    k.lower(): v.encode("latin-1").decode("utf-8") for k, v in self.headers.items()
                }
                with receiver._lock:
                    receiver.requests.append(HttpRequest("POST", self.path, headers, body))
                status, extra = 200, {}
                if self.path.startswith("/status/"):
                    status = int(self.path.rsplit("/", 1)[1])
                elif self.path == "/retry-after":
                    status, extra = 503, {"Retry-After": "7"}
                elif self.path == "/slow":
                    time.sleep(1.0)
                reply = b'{"ok": true}' if status < 300 else b"no thanks"
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except ConnectionError:
                    # The sender hung up first (a provider that timed out on /slow):
                    # nobody is left to answer, and a real receiver drops it quietly.
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Controller(Controller):
    """aiosmtpd's Controller on a port the OS picks."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) that records mails.

    Recipients at ``busy.example`` get ``450``, at ``gone.example`` ``550``.
    """

    def __init__(self, port: int = 0) -> None:
        self.mails: list[tuple[list[str], EmailMessage]] = []
        self.controller = _Controller(self, hostname="127.0.0.1", port=port)
        self.controller.start()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    # aiosmtpd calls its hooks by these names.
    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.endswith("@busy.example"):
            return "450 mailbox busy, try later"
        if address.endswith("@gone.example"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append((list(envelope.rcpt_tos), mail))
        return "250 Message accepted"

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    yield receiver
    receiver.stop()


def message(key: str = "cart:u1:1:reminder", **changes: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "key": key,
        "channel": "push",
        "user_id": "u1",
        "journey_id": "cart",
        "step": "reminder",
        "message": "cart_reminder",
        "content": {
            "subject": "Your cart",
            "title": "Your cart",
            "body": "2 items wait — ü",
            "text": "2 items wait — ü",
        },
        "profile": {"email": "ann@example.com", "phone": "+66812345678", "first_name": "Ann"},
    }
    values.update(changes)
    return OutboundMessage(**values)


# ---------------------------------------------------------------- the contract


@dataclass
class Received:
    """What reached a receiver: the idempotency key it carries, and its text."""

    key: str
    text: str


@dataclass
class Harness:
    """One provider under the contract, with a way to look at its receiver."""

    channel: str
    provider: Provider
    received: Callable[[], list[Received]] | None
    unreachable: Callable[[], Provider] | None
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def _console(tmp_path: Path) -> Harness:
    stream = io.StringIO()

    def received() -> list[Received]:
        # Each block starts on a line of its own with the send's UTC time.
        blocks = re.split(r"^(?=\d{4}-\d\d-\d\dT)", stream.getvalue(), flags=re.M)
        return [Received(b.split(" key=", 1)[1].split("\n", 1)[0], b) for b in blocks if b]

    return Harness("push", ConsoleProvider(stream), received, None)


def _file(tmp_path: Path) -> Harness:
    path = tmp_path / "sent.jsonl"

    def received() -> list[Received]:
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [Received(json.loads(line)["key"], line) for line in lines]

    def unreachable() -> Provider:
        return FileProvider(tmp_path / "no-such-folder" / "sent.jsonl")

    return Harness("webhook", FileProvider(path), received, unreachable)


def _smtp(tmp_path: Path) -> Harness:
    server = SmtpReceiver()

    def received() -> list[Received]:
        return [
            Received(str(mail["Idempotency-Key"]), mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]
            for _, mail in server.mails
        ]

    def unreachable() -> Provider:
        return SmtpProvider.from_options(
            "email", {"host": "127.0.0.1", "port": free_port(), "from": "shop@example.com"}
        )

    provider = SmtpProvider.from_options(
        "email", {"host": "127.0.0.1", "port": server.port, "from": "shop@example.com"}
    )
    return Harness("email", provider, received, unreachable, [server.stop])


def _http(tmp_path: Path) -> Harness:
    server = HttpReceiver()

    def received() -> list[Received]:
        return [
            Received(r.headers["idempotency-key"], r.body.decode("utf-8")) for r in server.requests
        ]

    def unreachable() -> Provider:
        return HttpProvider.from_options(
            "push", {"url": f"http://127.0.0.1:{free_port()}/send", "timeout": 2.0}
        )

    provider = HttpProvider.from_options("push", {"url": f"{server.url}/send"})
    return Harness("push", provider, received, unreachable, [server.stop])


def _inapp(tmp_path: Path) -> Harness:
    # The outbox row is the inbox: there is no receiver to look at.
    return Harness("inapp", InappProvider(), None, None)


HARNESSES: dict[str, Callable[[Path], Harness]] = {
    "console": _console,
    "file": _file,
    "smtp": _smtp,
    "http": _http,
    "inapp": _inapp,
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    made = HARNESSES[request.param](tmp_path)
    yield made
    made.provider.close()
    for stop in made.cleanup:
        stop()


def test_a_message_is_accepted_and_arrives_once(harness: Harness) -> None:
    msg = message(channel=harness.channel)
    harness.provider.send(msg)
    if harness.received is None:
        return
    (got,) = harness.received()
    assert "2 items wait — ü" in got.text


def test_the_idempotency_key_reaches_the_receiver(harness: Harness) -> None:
    if harness.received is None:
        pytest.skip("no external receiver: the outbox row is the delivery")
    keys = ["cart:u1:1:reminder", "cart:ü-2:1:reminder", "cart:u1:1:reminder"]
    for key in keys:
        harness.provider.send(message(key, channel=harness.channel))
    # A resend after a crash carries the same key, so the receiver can drop it.
    assert [r.key for r in harness.received()] == keys


def test_an_unreachable_receiver_is_a_transient_error(harness: Harness) -> None:
    if harness.unreachable is None:
        pytest.skip("the provider has no endpoint to miss")
    provider = harness.unreachable()
    try:
        with pytest.raises(TransientError) as caught:
            provider.send(message(channel=harness.channel))
        assert caught.value.reason
    finally:
        provider.close()


def test_the_provider_keeps_working_after_an_error_and_closes_twice(harness: Harness) -> None:
    harness.provider.send(message("k1", channel=harness.channel))
    harness.provider.send(message("k2", channel=harness.channel))
    if harness.received is not None:
        assert [r.key for r in harness.received()] == ["k1", "k2"]
    harness.provider.close()
    harness.provider.close()


# ---------------------------------------------------------------- console, file, inapp


def test_console_prints_a_readable_block() -> None:
    stream = io.StringIO()
    provider = ConsoleProvider(stream, clock=lambda: 1767607860.5)
    provider.send(message(content={"title": "Hi Ann", "body": "line one\nline two"}))
    assert stream.getvalue() == (
        "2026-01-05T10:11:00.500Z [push] u1 cart/reminder (cart_reminder) key=cart:u1:1:reminder\n"
        "  title: Hi Ann\n"
        "  body: line one\n"
        "    line two\n"
    )


def test_console_writes_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleProvider().send(message())
    assert "[push] u1 cart/reminder" in capsys.readouterr().out


def test_file_appends_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"earlier": true}\n')
    provider = FileProvider(path)
    provider.send(message("k1"))
    provider.send(message("k2", channel="sms", content={"body": "hi"}))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"earlier": True}
    assert lines[1] == {
        "key": "k1",
        "channel": "push",
        "user_id": "u1",
        "journey": "cart",
        "step": "reminder",
        "message": "cart_reminder",
        "content": message().content,
    }
    assert lines[2]["content"] == {"body": "hi"} and lines[2]["channel"] == "sms"


def test_inapp_needs_something_to_show() -> None:
    InappProvider().send(message(channel="inapp", content={"title": "Hi"}))
    with pytest.raises(PermanentError, match="title or a body"):
        InappProvider().send(message(channel="inapp", content={"button": "Open", "body": "  "}))


# ---------------------------------------------------------------- smtp


def smtp_provider(receiver: SmtpReceiver, **options: Any) -> SmtpProvider:
    settings = {"host": "127.0.0.1", "port": receiver.port, "from": "Shop <shop@example.com>"}
    return SmtpProvider.from_options("email", {**settings, **options})


def test_smtp_sends_text_and_html_as_alternatives(smtp_receiver: SmtpReceiver) -> None:
    provider = smtp_provider(smtp_receiver)
    content = {"subject": "Your cart", "text": "Plain ü", "html": "<p>Rich ü</p>"}
    provider.send(message(channel="email", content=content))
    provider.close()
    ((rcpts, mail),) = smtp_receiver.mails
    assert rcpts == ["ann@example.com"]
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Subject"] == "Your cart"
    assert mail["From"] == "Shop <shop@example.com>"
    assert mail["To"] == "ann@example.com"
    assert mail["X-Journeyc-Key"] == "cart:u1:1:reminder"
    assert mail["Message-ID"] == message_id("cart:u1:1:reminder")
    plain = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert plain is not None and plain.get_content().strip() == "Plain ü"
    assert html is not None and html.get_content().strip() == "<p>Rich ü</p>"


def test_smtp_html_only_and_from_in_the_message(smtp_receiver: SmtpReceiver) -> None:
    provider = smtp_provider(smtp_receiver)
    content = {"subject": "Two\nlines", "html": "<b>Hi</b>", "from": "news@example.com"}
    provider.send(message(channel="email", content=content))
    provider.close()
    ((_, mail),) = smtp_receiver.mails
    assert mail.get_content_type() == "text/html"
    assert mail["From"] == "news@example.com"
    assert mail["Subject"] == "Two lines"


@pytest.mark.parametrize(
    ("profile", "content", "reason"),
    [
        ({}, {"text": "hi"}, "no email address"),
        ({"email": "not-an-address"}, {"text": "hi"}, "not an email address"),
        ({"email": "ann@example.com"}, {"subject": "only"}, "neither text nor html"),
    ],
)
def test_smtp_mails_that_cannot_be_sent_are_permanent_errors(
    smtp_receiver: SmtpReceiver, profile: dict[str, str], content: dict[str, str], reason: str
) -> None:
    provider = smtp_provider(smtp_receiver)
    with pytest.raises(PermanentError, match=reason):
        provider.send(message(channel="email", profile=profile, content=content))
    provider.close()
    assert smtp_receiver.mails == []


def test_smtp_4xx_is_transient_and_5xx_permanent(smtp_receiver: SmtpReceiver) -> None:
    provider = smtp_provider(smtp_receiver)
    with pytest.raises(TransientError, match="450"):
        provider.send(message(channel="email", profile={"email": "bob@busy.example"}))
    with pytest.raises(PermanentError, match="550"):
        provider.send(message(channel="email", profile={"email": "bob@gone.example"}))
    # The connection survives refused recipients.
    provider.send(message(channel="email"))
    provider.close()
    assert [rcpts for rcpts, _ in smtp_receiver.mails] == [["ann@example.com"]]


def test_smtp_reconnects_when_the_server_dropped_the_connection() -> None:
    first = SmtpReceiver()
    port = first.port
    provider = SmtpProvider.from_options(
        "email", {"host": "127.0.0.1", "port": port, "from": "shop@example.com"}
    )
    provider.send(message("k1", channel="email"))
    first.stop()
    second = SmtpReceiver(port)
    try:
        provider.send(message("k2", channel="email"))
    finally:
        provider.close()
        second.stop()
    assert [m["Idempotency-Key"] for _, m in first.mails] == ["k1"]
    assert [m["Idempotency-Key"] for _, m in second.mails] == ["k2"]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"port": "25"}, "channels.email.port: expected a whole number"),
        ({"hots": "x"}, "channels.email.hots: unknown key (did you mean `host`?)"),
        ({"ssl": True, "starttls": True}, "channels.email.starttls: cannot be used with ssl"),
        ({"username": "u"}, "channels.email.password: is required with username"),
        ({"from": "nobody"}, "channels.email.from: not an email address"),
    ],
)
def test_smtp_bad_options_name_the_key(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SmtpProvider.from_options("email", options)
    assert str(caught.value).startswith(error)


# ---------------------------------------------------------------- http


def http_provider(receiver: HttpReceiver, path: str = "/send", **options: Any) -> HttpProvider:
    return HttpProvider.from_options("push", {"url": receiver.url + path, **options})


def test_http_default_body_is_the_message_as_json(http_receiver: HttpReceiver) -> None:
    provider = http_provider(http_receiver)
    provider.send(message())
    provider.close()
    (request,) = http_receiver.requests
    assert request.path == "/send"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "cart:u1:1:reminder"
    assert request.json() == {
        "key": "cart:u1:1:reminder",
        "channel": "push",
        "user_id": "u1",
        "journey": "cart",
        "step": "reminder",
        "message": "cart_reminder",
        "content": message().content,
    }


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_http_4xx_is_permanent(http_receiver: HttpReceiver, status: int) -> None:
    provider = http_provider(http_receiver, f"/status/{status}")
    with pytest.raises(PermanentError, match=f"HTTP {status} no thanks"):
        provider.send(message())
    provider.close()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_http_busy_replies_are_transient(http_receiver: HttpReceiver, status: int) -> None:
    provider = http_provider(http_receiver, f"/status/{status}")
    with pytest.raises(TransientError, match=f"HTTP {status}"):
        provider.send(message())
    provider.close()


def test_http_retry_after_is_passed_on(http_receiver: HttpReceiver) -> None:
    provider = http_provider(http_receiver, "/retry-after")
    with pytest.raises(TransientError) as caught:
        provider.send(message())
    provider.close()
    assert caught.value.retry_after_s == 7


def test_http_a_slow_receiver_times_out_as_transient(http_receiver: HttpReceiver) -> None:
    provider = http_provider(http_receiver, "/slow", timeout=0.2)
    with pytest.raises(TransientError, match="Timeout"):
        provider.send(message())
    provider.close()


def test_the_test_receiver_lets_a_client_that_hung_up_go_quietly(
    http_receiver: HttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sender that gave up (the timeout above) is gone when ``/slow`` answers: the
    receiver drops the reply, as a real one does, instead of printing a
    ``BrokenPipeError`` traceback into the test output."""
    host, port = http_receiver.server.server_address[:2]
    with socket.create_connection((str(host), int(port))) as client:
        client.sendall(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        while not http_receiver.requests:  # read: the handler sleeps, then answers
            time.sleep(0.01)
        # Reset, not closed politely: the answer's first write fails at once.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(1.5)  # the answer was written (or failed) by now
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Error" not in captured.err, captured.err


def test_http_twilio_shaped_form(http_receiver: HttpReceiver) -> None:
    provider = HttpProvider.from_options(
        "sms",
        {
            "url": http_receiver.url + "/2010-04-01/Accounts/{{ 'AC42' }}/Messages.json",
            "headers": {
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "Basic QUM0MjpzZWNyZXQ=",
            },
            "body": "To={{ user.phone | url_encode }}&From=%2B15550001111"
            "&Body={{ message.body | url_encode }}",
        },
    )
    provider.send(message(channel="sms", content={"body": "Hi Ann & co: 50% off ü"}))
    provider.close()
    (request,) = http_receiver.requests
    assert request.path == "/2010-04-01/Accounts/AC42/Messages.json"
    assert request.headers["authorization"] == "Basic QUM0MjpzZWNyZXQ="
    assert request.headers["idempotency-key"] == "cart:u1:1:reminder"
    form = parse_qs(request.body.decode())
    assert form == {
        "To": ["+66812345678"],
        "From": ["+15550001111"],
        "Body": ["Hi Ann & co: 50% off ü"],
    }


FCM_BODY = """{"message": {
  "token": {{ user.push_token | json }},
  "notification": {"title": {{ message.title | json }}, "body": {{ message.body | json }}},
  "data": {"journey": {{ journey | json }}, "step": {{ step | json }}, "key": {{ key | json }}}
}}"""


def test_http_fcm_shaped_json(http_receiver: HttpReceiver) -> None:
    provider = HttpProvider.from_options(
        "push",
        {
            "url": http_receiver.url + "/v1/projects/demo/messages:send",
            "headers": {"Authorization": "Bearer {{ 'tok' }}-{{ channel }}"},
            "body": FCM_BODY,
        },
    )
    title = 'She said "hi"\n\\ back'
    provider.send(
        message(
            content={"title": title, "body": "ü"},
            profile={"push_token": "tok-123"},
        )
    )
    provider.close()
    (request,) = http_receiver.requests
    assert request.path == "/v1/projects/demo/messages:send"
    assert request.headers["authorization"] == "Bearer tok-push"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "message": {
            "token": "tok-123",
            "notification": {"title": title, "body": "ü"},
            "data": {"journey": "cart", "step": "reminder", "key": "cart:u1:1:reminder"},
        }
    }


def test_http_url_from_the_message_for_webhooks(http_receiver: HttpReceiver) -> None:
    # A value holding a whole URL is encoded like any other unless it says url_raw.
    provider = HttpProvider.from_options("webhook", {"url": "{{ message.endpoint | url_raw }}"})
    endpoint = http_receiver.url + "/hooks/crm"
    provider.send(message(channel="webhook", content={"endpoint": endpoint, "body": "{}"}))
    with pytest.raises(PermanentError, match="bad URL"):
        provider.send(message(channel="webhook", content={"endpoint": "ftp://x", "body": "{}"}))
    provider.close()
    assert [r.path for r in http_receiver.requests] == ["/hooks/crm"]


def test_http_a_body_that_renders_to_broken_json_is_never_sent(
    http_receiver: HttpReceiver,
) -> None:
    provider = http_provider(http_receiver, body='{"title": "{{ message.title }}"}')
    with pytest.raises(PermanentError, match="not JSON"):
        provider.send(message(content={"title": 'a "quoted" word'}))
    provider.close()
    assert http_receiver.requests == []


def test_http_the_idempotency_key_cannot_be_overridden(http_receiver: HttpReceiver) -> None:
    provider = http_provider(http_receiver, headers={"idempotency-key": "fixed"})
    provider.send(message("k1"))
    provider.close()
    assert http_receiver.requests[0].headers["idempotency-key"] == "k1"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({}, "channels.push.url: is required"),
        ({"url": "ftp://x"}, "channels.push.url: expected an http:// or https:// URL"),
        ({"url": "http://x", "body": "{{ message.title "}, "channels.push.body: bad template"),
        (
            {"url": "http://x", "headers": {"A": "{% if %}"}},
            "channels.push.headers.A: bad template",
        ),
        ({"url": "http://x", "headers": {"A": 1}}, "channels.push.headers.A: expected a string"),
        ({"url": "http://x", "timeout": 0}, "channels.push.timeout: "),
        ({"url": "http://x", "bdy": "x"}, "channels.push.bdy: unknown key (did you mean `body`?)"),
    ],
)
def test_http_bad_options_name_the_key(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        HttpProvider.from_options("push", options)
    assert str(caught.value).startswith(error)


# ---------------------------------------------------------------- registry


def test_channels_without_a_section_print_or_keep_for_the_inbox() -> None:
    providers = build_providers(load_config(None))
    assert sorted(providers) == ["email", "inapp", "push", "sms", "webhook", "whatsapp"]
    assert isinstance(providers["inapp"], InappProvider)
    assert all(isinstance(providers[c], ConsoleProvider) for c in providers if c != "inapp")
    close_providers(providers)


def test_providers_from_a_config_file(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    path = tmp_path / "journeyc.toml"
    path.write_text(
        """
[channels.email]
provider = "smtp"
host = "127.0.0.1"
port = 2525
from = "shop@example.com"

[channels.push]
provider = "http"
url = "https://push.example.com/send"
headers = { Authorization = "Bearer x" }

[channels.webhook]
provider = "file"
path = "out/hooks.jsonl"

[channels.sms]
provider = "console"
stream = "stderr"
"""
    )
    providers = build_providers(load_config(path), base_dir=tmp_path)
    try:
        assert isinstance(providers["email"], SmtpProvider)
        assert isinstance(providers["push"], HttpProvider)
        webhook = providers["webhook"]
        assert isinstance(webhook, FileProvider)
        assert webhook.path == tmp_path / "out" / "hooks.jsonl"
        assert isinstance(providers["sms"], ConsoleProvider)
    finally:
        close_providers(providers)


def test_every_bad_option_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "journeyc.toml"
    path.write_text(
        """
[channels.email]
provider = "smtp"
port = "587"

[channels.push]
provider = "http"

[channels.inapp]
provider = "inapp"
inbox = "x"
"""
    )
    with pytest.raises(ConfigError) as caught:
        build_providers(load_config(path))
    assert str(caught.value).splitlines() == [
        "channels.push.url: is required",
        "channels.email.port: expected a whole number",
        "channels.inapp.inbox: unknown key",
    ]
