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
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import liquid
from liquid.exceptions import LiquidError
from pydantic import Field

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
    is in seconds for connecting and for the reply.
    """

    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    timeout: float = Field(default=10.0, gt=0)


class HttpProvider:
    """Posts each message with one shared :class:`httpx.Client` (pooled connections)."""

    def __init__(self, options: HttpOptions, channel: str = "webhook") -> None:
        self.options = options
        env = make_environment()
        env.filters["json"] = _json_filter

        def compile_template(option: str, source: str) -> liquid.BoundTemplate:
            try:
                return env.from_string(source)
            except LiquidError as exc:
                detail = exc.message if exc.message is not None else str(exc)
                raise option_error(channel, option, f"bad template: {detail}") from None

        self._url = compile_template("url", options.url)
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
                scheme = httpx.URL(opts.url).scheme
            except httpx.InvalidURL as exc:
                raise option_error(channel, "url", f"not a URL: {exc}") from None
            if scheme not in ("http", "https"):
                raise option_error(channel, "url", "expected an http:// or https:// URL")
        for name in opts.headers:
            if not name or not name.isascii() or any(c in name for c in ": \t\r\n"):
                raise option_error(channel, f"headers.{name}", "not a header name")
        return cls(opts, channel)

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
            url = self._url.render(**scope).strip()
            headers = {name: t.render(**scope).strip() for name, t in self._headers.items()}
            body = None if self._body is None else self._body.render(**scope)
        except (LiquidError, RecursionError) as exc:
            raise PermanentError(f"cannot render the request: {exc}") from exc
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
        raw = [(n.encode("ascii"), v.encode("utf-8")) for n, v in headers.items()]
        try:
            return self._client.build_request("POST", url, headers=raw, content=body.encode())
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PermanentError(f"bad URL {url!r}: {exc}") from exc


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
