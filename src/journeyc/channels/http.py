"""The ``http`` provider: push, SMS, WhatsApp and webhooks as one HTTP POST each.

The request is configuration. ``url``, each value of ``headers`` and ``body`` are
Liquid templates that see:

- ``message``: the rendered content fields (``message.title``, ``message.body`` …);
- ``user``: the profile (with ``user.id``, the user id, unless it has its own ``id``);
- ``key``, ``channel``, ``journey``, ``step``: the outbox key and where the send
  comes from.

A ``json`` filter writes a value as a JSON literal, so a JSON body stays valid
whatever the text holds; ``url_encode`` does the same for form bodies. An FCM,
Twilio or WhatsApp Cloud request is therefore a few lines of ``journeyc.toml``.
Without ``body`` the request is the JSON of :meth:`OutboundMessage.record`.

Every request carries ``Idempotency-Key: KEY``. Responses: 2xx is accepted;
408, 429, 5xx and network errors are transient (``Retry-After`` is passed on);
any other status is permanent.

Event data must not steer the request. In ``url`` every ``{{ }}`` output is
percent-encoded where it lands (:func:`render_url`): a ``push_token`` of
``../../admin?x#`` stays one path segment, a query value stays one value. The
``url_raw`` filter opts out for a trait that deliberately holds a whole URL or path.
``allowed_hosts`` pins the hosts a rendered URL may name, and header values with
control characters (CR, LF …) are refused rather than sent.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from contextvars import ContextVar
from email.utils import parsedate_to_datetime
from typing import IO, Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import liquid
from liquid import RenderContext
from liquid.builtin.output import Output, OutputNode
from liquid.builtin.tags.echo_tag import EchoNode, EchoTag
from liquid.exceptions import LiquidError
from liquid.stringify import to_liquid_string
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from journeyc.channels.base import (
    OutboundMessage,
    PermanentError,
    ProviderOptions,
    TransientError,
    option_error,
    parse_options,
)
from journeyc.messages.templates import make_environment

_TRANSIENT_STATUS = frozenset({408, 425, 429})
_REPLY_SNIPPET = 200


class HttpOptions(ProviderOptions):
    """``[channels.X] provider = "http"``: where and what to POST.

    ``url`` (required), ``headers`` and ``body`` are Liquid templates; ``timeout``
    is in seconds for connecting and for the reply. ``allowed_hosts``, when set, is
    the list of hosts a rendered URL may name (``"api.example.com"``, or
    ``"*.example.com"`` for any host below example.com); kept normalized (lower case,
    no trailing dot).
    """

    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    timeout: float = Field(default=10.0, gt=0)
    allowed_hosts: list[str] | None = None

    @field_validator("allowed_hosts")
    @classmethod
    def _host_patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            # An empty list would refuse every send: surely not what was meant.
            raise PydanticCustomError(
                "allowed_hosts", "must name at least one host (leave it out to allow any)"
            )
        return [_host_pattern(entry) for entry in value]


class HttpProvider:
    """Posts each message with one shared :class:`httpx.Client` (pooled connections)."""

    def __init__(self, options: HttpOptions, channel: str = "webhook") -> None:
        self.options = options
        self._channel = channel
        env = make_environment()
        env.filters["json"] = _json_filter
        url_env = make_url_environment()
        url_env.filters["json"] = _json_filter

        def compile_template(
            option: str, source: str, env: liquid.Environment = env
        ) -> liquid.BoundTemplate:
            try:
                return env.from_string(source)
            except LiquidError as exc:
                detail = exc.message if exc.message is not None else str(exc)
                raise option_error(channel, option, f"bad template: {detail}") from None

        if _OPEN in options.url or _CLOSE in options.url:
            raise option_error(channel, "url", "holds a reserved character (U+E000 or U+E001)")
        self._url = compile_template("url", options.url, url_env)
        self._headers = {
            name: compile_template(f"headers.{name}", source)
            for name, source in options.headers.items()
        }
        self._body = None if options.body is None else compile_template("body", options.body)
        self._client = httpx.Client(timeout=options.timeout, follow_redirects=False)

    @classmethod
    def from_options(cls, channel: str, options: Mapping[str, Any]) -> HttpProvider:
        """A provider for ``[channels.CHANNEL]``; raises ConfigError for bad options."""
        opts = parse_options(HttpOptions, channel, options)
        if "{" not in opts.url:
            try:
                url = httpx.URL(opts.url)
            except httpx.InvalidURL as exc:
                raise option_error(channel, "url", f"not a URL: {exc}") from None
            if url.scheme not in ("http", "https"):
                raise option_error(channel, "url", "expected an http:// or https:// URL")
            if not host_allowed(url.host, opts.allowed_hosts):
                raise option_error(channel, "url", f"the host {url.host!r} is not in allowed_hosts")
        for name in opts.headers:
            # RFC 9110 token characters only: no CR/LF, colon or space can split a line.
            if not _HEADER_NAME.fullmatch(name):
                raise option_error(channel, f"headers.{name}", "not a header name")
        provider = cls(opts, channel)
        if provider._url_starts_with_a_value():
            provider.close()
            raise option_error(
                channel,
                "url",
                "starts with a value, which is percent-encoded: begin with a literal "
                "http:// or https:// URL, or write `| url_raw` for a value that holds "
                "a whole URL",
            )
        return provider

    def send(self, msg: OutboundMessage) -> None:
        """POST the message; return on a 2xx reply."""
        request = self._request(msg)
        try:
            reply = self._client.send(request)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentError(f"bad URL {str(request.url)!r}: {exc}") from exc
        except httpx.LocalProtocolError as exc:
            # Our request is malformed (say, a line break in a rendered header).
            raise PermanentError(f"cannot send the request: {exc}") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"POST {request.url}: {type(exc).__name__}: {exc}") from exc
        status = reply.status_code
        if 200 <= status < 300:
            return
        reason = f"POST {request.url}: HTTP {status} {_snippet(reply)}".rstrip()
        if status in _TRANSIENT_STATUS or status >= 500:
            raise TransientError(reason, retry_after(reply.headers.get("retry-after")))
        raise PermanentError(reason)

    def close(self) -> None:
        """Close the client and its pooled connections."""
        self._client.close()

    def _request(self, msg: OutboundMessage) -> httpx.Request:
        user = dict(msg.profile)
        user.setdefault("id", msg.user_id)
        scope = {
            "message": dict(msg.content),
            "user": user,
            "key": msg.key,
            "channel": msg.channel,
            "journey": msg.journey_id,
            "step": msg.step,
        }
        try:
            url = render_url(self._url, scope)
            headers = {name: t.render(**scope).strip() for name, t in self._headers.items()}
            body = None if self._body is None else self._body.render(**scope)
        except (LiquidError, RecursionError) as exc:
            raise PermanentError(f"cannot render the request: {exc}") from exc
        except UnicodeEncodeError as exc:
            # A value with a lone surrogate (data stored before ingest refused them):
            # the message's problem, not the provider's (no retry, no breaker count).
            raise PermanentError(f"cannot render the request: not valid text: {exc}") from exc
        except UrlError as exc:
            raise PermanentError(f"bad URL: {exc}") from exc
        for name, value in headers.items():
            if _HEADER_CONTROL.search(value):
                # A line break would end the header and start another (header
                # injection); refuse it here rather than rely on the HTTP library.
                raise PermanentError(
                    f"the header {name!r} renders to a control character (CR, LF …): {value!r}"
                )
        if body is None:
            body = json.dumps(msg.record(), ensure_ascii=False, separators=(",", ":"))
            headers = _without(headers, "content-type")
        content_type = next((v for n, v in headers.items() if n.lower() == "content-type"), None)
        if content_type is None:
            content_type = headers["Content-Type"] = "application/json"
        if "json" in content_type.lower():
            try:
                json.loads(body)
            except ValueError as exc:
                raise PermanentError(f"the rendered body is not JSON: {exc}") from exc
        headers = _without(headers, "idempotency-key")
        headers["Idempotency-Key"] = msg.key
        # Header values may carry non-ASCII text (a user id in the key): send UTF-8.
        try:
            raw = [(n.encode("ascii"), v.encode("utf-8")) for n, v in headers.items()]
            request = self._client.build_request("POST", url, headers=raw, content=body.encode())
        except UnicodeEncodeError as exc:
            raise PermanentError(f"cannot send the request: not valid text: {exc}") from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PermanentError(f"bad URL {url!r}: {exc}") from exc
        if request.url.scheme not in ("http", "https"):
            raise PermanentError(f"bad URL {url!r}: expected an http:// or https:// URL")
        host = request.url.host
        if not host or "%" in host:
            # "%" is what an encoded value left in the host part: never a real host.
            raise PermanentError(f"bad URL {url!r}: {host!r} is not a host name")
        if not host_allowed(host, self.options.allowed_hosts):
            raise PermanentError(
                f"the host {host!r} is not in channels.{self._channel}.allowed_hosts"
            )
        return request

    def _url_starts_with_a_value(self) -> bool:
        """Whether the url template, rendered without data, begins with an encoded
        value: a URL that can never have a literal scheme and host.

        A check at start-up for the common mistake (``url = "{{ message.endpoint }}"``
        from before values were encoded); any other template is checked at each send.
        """
        try:
            skeleton, _ = _render_skeleton(self._url, {})
        except (LiquidError, RecursionError):
            return False
        return skeleton.startswith(_OPEN)


# ---------------------------------------------------------------- URLs from templates
#
# How a value is encoded depends on where it lands in the URL, and that is only known
# once the whole template has rendered ("{{ a }}/{{ b }}?q={{ c }}" with tags around
# them). So the url template renders in two steps:
#
# 1. Liquid renders it with output nodes of our own (the "output" and "echo" tags of
#    the URL environment): each value is stored aside and a placeholder
#    U+E000 <index> U+E001 is written instead. The result, the skeleton, holds only
#    the template's own text (and url_raw values): data cannot add a "/", "?", "#" or
#    "@" to it.
# 2. urllib.parse.urlsplit cuts the skeleton into scheme, authority, path, query and
#    fragment, and each placeholder is replaced by its value percent-encoded with
#    quote(value, safe=""): everything but RFC 3986's unreserved characters
#    (letters, digits, "-._~") is encoded, which makes the value inert in any part
#    (one path segment, one query name or value, one fragment). In the path, a
#    segment that ends up exactly "." or ".." has its dots encoded as well, since
#    HTTP clients and servers resolve those as "this" and "parent" folder.

_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile("\ue000([0-9]+)\ue001|[\ue000\ue001]")
# Spaces and control characters in the template's own text (or a url_raw value):
# urlsplit would silently drop tabs and line breaks, so they are refused instead.
_URL_CONTROL = re.compile("[\x00-\x20\x7f]")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
# Tags that write values without an output node, or read other files: no use in a
# URL, so the URL environment does not know them (a template using one is refused
# when the channel is configured). increment/decrement stay: they write only digits.
_URL_UNSUPPORTED_TAGS = ("cycle", "tablerow", "include", "render")

# The values of the url template being rendered, in placeholder order. A context
# variable rather than provider state: rendering needs no lock and leaves nothing
# behind.
_URL_VALUES: ContextVar[list[str]] = ContextVar("journeyc_url_values")


class UrlError(ValueError):
    """A rendered URL that cannot be sent (no http(s) scheme, a space in the template
    text, a value that cannot be encoded)."""


class RawUrl(str):
    """Text the ``url_raw`` filter lets into a URL as it is, unencoded."""

    __slots__ = ()


def url_raw(value: object) -> RawUrl:
    """The ``url_raw`` filter: ``value`` goes into the URL unencoded, so it can hold a
    whole URL, a path or a query string. Only as the last filter of an output: any
    filter after it makes the value ordinary (encoded) text again."""
    return RawUrl(to_liquid_string(value, autoescape=False))


def _url_encode_in_url(value: object) -> str:
    # Every value of a url template is encoded where it lands; url_encode there would
    # encode it a second time ("a b" -> "a+b" -> "a%2Bb"), so in the URL it only
    # stringifies and leaves the encoding to render_url.
    return to_liquid_string(value, autoescape=False)


def _write_url_value(value: object, buffer: IO[str]) -> int:
    if isinstance(value, RawUrl):
        return buffer.write(str(value))
    values = _URL_VALUES.get()
    text = to_liquid_string(value, autoescape=False)
    # Text captured from other outputs ({% capture %}) holds their placeholders: it
    # stands for their values, encoded here as one piece.
    text = _PLACEHOLDER.sub(lambda m: _value_of(m, values), text)
    values.append(text)
    return buffer.write(f"{_OPEN}{len(values) - 1}{_CLOSE}")


def _value_of(match: re.Match[str], values: list[str]) -> str:
    index = match.group(1)
    if index is not None and int(index) < len(values):
        return values[int(index)]
    return match.group(0)


class _UrlOutputNode(OutputNode):
    """``{{ … }}`` in a url template: the value becomes a placeholder (or, from
    ``url_raw``, text)."""

    def render_to_output(self, context: RenderContext, buffer: IO[str]) -> int:
        """Write the value's placeholder."""
        return _write_url_value(self.expression.evaluate(context), buffer)

    async def render_to_output_async(self, context: RenderContext, buffer: IO[str]) -> int:
        """Write the value's placeholder."""
        return _write_url_value(await self.expression.evaluate_async(context), buffer)


class _UrlEchoNode(EchoNode):
    """``{% echo … %}`` in a url template: as ``{{ … }}``."""

    render_to_output = _UrlOutputNode.render_to_output
    render_to_output_async = _UrlOutputNode.render_to_output_async


class _UrlOutput(Output):
    node_class = _UrlOutputNode


class _UrlEcho(EchoTag):
    node_class = _UrlEchoNode


def make_url_environment() -> liquid.Environment:
    """The Liquid environment of ``url`` templates: the project's environment (its
    filters) with every output encoded by :func:`render_url`, ``url_raw`` to opt out,
    and without the tags that write values past the output nodes."""
    env = make_environment()
    env.add_tag(_UrlOutput)
    env.add_tag(_UrlEcho)
    for name in _URL_UNSUPPORTED_TAGS:
        env.tags.pop(name, None)
    env.filters["url_raw"] = url_raw
    env.filters["url_encode"] = _url_encode_in_url
    return env


def _render_skeleton(
    template: liquid.BoundTemplate, scope: Mapping[str, Any]
) -> tuple[str, list[str]]:
    token = _URL_VALUES.set([])
    try:
        skeleton = template.render(**scope).strip()
        return skeleton, _URL_VALUES.get()
    finally:
        _URL_VALUES.reset(token)


def render_url(template: liquid.BoundTemplate, scope: Mapping[str, Any]) -> str:
    """Render a url template (from :func:`make_url_environment`) with each value
    percent-encoded for the part of the URL it lands in (see the comment above).

    Raises :class:`UrlError` for a URL that is not http(s) or that has spaces or
    control characters in the template's own text, and LiquidError for a template
    that fails to render.
    """
    skeleton, values = _render_skeleton(template, scope)
    if _URL_CONTROL.search(skeleton):
        raise UrlError(f"{skeleton!r} has a space or a control character")
    try:
        parts = urlsplit(skeleton)
    except ValueError as exc:
        raise UrlError(f"{skeleton!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        hint = (
            " (a value that holds a whole URL needs `| url_raw`)"
            if skeleton.startswith(_OPEN)
            else ""
        )
        shown = _fill(skeleton, values)
        raise UrlError(f"{shown!r}: expected an http:// or https:// URL{hint}")
    path = "/".join(_path_segment(segment, values) for segment in parts.path.split("/"))
    return urlunsplit(
        (
            parts.scheme,
            _fill(parts.netloc, values),
            path,
            _fill(parts.query, values),
            _fill(parts.fragment, values),
        )
    )


def _fill(text: str, values: list[str]) -> str:
    """``text`` with each placeholder replaced by its value, percent-encoded; a
    placeholder character that is not part of a placeholder (one a url_raw value
    brought) is encoded too."""

    def encode(match: re.Match[str]) -> str:
        try:
            return quote(_value_of(match, values), safe="")
        except UnicodeEncodeError as exc:  # a lone surrogate has no UTF-8 form
            raise UrlError(f"a value cannot be encoded as UTF-8: {exc}") from None

    return _PLACEHOLDER.sub(encode, text)


def _path_segment(segment: str, values: list[str]) -> str:
    filled = _fill(segment, values)
    if filled in (".", "..") and filled != segment:
        # quote() leaves dots alone, but a value that makes a whole segment "." or
        # ".." would be resolved to this or the parent folder: encode the dots.
        return filled.replace(".", "%2E")
    return filled


def host_allowed(host: str, patterns: list[str] | None) -> bool:
    """Whether ``host`` is on the allow-list (None allows every host).

    A pattern is a host name (exact match) or ``*.`` and a name (any host below it,
    not the name itself); case and a trailing dot do not matter.
    """
    if patterns is None:
        return True
    host = host.rstrip(".").lower()
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def _host_pattern(entry: str) -> str:
    """One ``allowed_hosts`` entry, checked and normalized as httpx names hosts."""
    wildcard = entry.startswith("*.")
    name = entry[2:] if wildcard else entry
    problem = PydanticCustomError(
        "allowed_hosts",
        'expected a host name like "api.example.com" or "*.example.com", not {entry}',
        {"entry": repr(entry)},
    )
    # No port, path or user: an entry names a host only (an IPv6 one in brackets).
    forbidden = "*/?#@%" if name.startswith("[") else "*/?#@%:"
    if not name or any(c in name for c in forbidden):
        raise problem
    try:
        url = httpx.URL(f"http://{name}/")
    except httpx.InvalidURL:
        raise problem from None
    if not url.host or url.port is not None or url.userinfo or url.raw_path != b"/":
        raise problem
    host = url.host.rstrip(".").lower()
    return f"*.{host}" if wildcard else host


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_filter(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _snippet(reply: httpx.Response) -> str:
    text = " ".join(reply.text.split())
    return text[:_REPLY_SNIPPET] + ("…" if len(text) > _REPLY_SNIPPET else "")


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {n: v for n, v in headers.items() if n.lower() != name}
