"""The ``smtp`` provider: email through an SMTP server.

The message goes to the profile's ``email`` trait. Its content fields are
``subject``, ``text``, ``html`` and ``from`` (which overrides the configured
sender); with both ``text`` and ``html`` the mail is ``multipart/alternative``.
Every mail carries the outbox key in ``Idempotency-Key`` and ``X-Journeyc-Key``
headers, and a ``Message-ID`` derived from it, so a mail sent twice after a crash
has the same identity both times.

Errors: no connection, a dropped connection and 4xx replies are transient; 5xx
replies and a missing or malformed address are permanent. A refused login is
transient although its code is 5xx: it is the configuration that is wrong, not the
message, and the messages should survive until it is fixed (or they run out of
attempts).
"""

from __future__ import annotations

import contextlib
import hashlib
import smtplib
import ssl
import threading
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from pydantic import Field

from journeyc.channels.base import (
    OutboundMessage,
    PermanentError,
    ProviderOptions,
    TransientError,
    option_error,
    parse_options,
)


class SmtpOptions(ProviderOptions):
    """``[channels.email] provider = "smtp"``.

    ``port`` defaults to 465 with ``ssl``, 587 with ``starttls``, else 25. ``from``
    is the sender when the message has no ``from`` field.
    """

    host: str = "localhost"
    port: int | None = Field(default=None, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    sender: str | None = Field(default=None, alias="from")
    timeout: float = Field(default=10.0, gt=0)


class SmtpProvider:
    """Sends mail over one SMTP connection, opened on first use and reused.

    A connection the server dropped while idle is reopened once within a send.
    """

    def __init__(self, options: SmtpOptions) -> None:
        self.options = options
        self._port = options.port or (465 if options.ssl else 587 if options.starttls else 25)
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, channel: str, options: Mapping[str, Any]) -> SmtpProvider:
        """A provider for ``[channels.CHANNEL]``; raises ConfigError for bad options."""
        opts = parse_options(SmtpOptions, channel, options)
        if opts.ssl and opts.starttls:
            raise option_error(channel, "starttls", "cannot be used with ssl = true")
        if opts.username is not None and opts.password is None:
            raise option_error(channel, "password", "is required with username")
        if opts.password is not None and opts.username is None:
            raise option_error(channel, "username", "is required with password")
        if opts.sender is not None and not _valid_address(parseaddr(opts.sender)[1]):
            raise option_error(channel, "from", f"not an email address: {opts.sender!r}")
        return cls(opts)

    def send(self, msg: OutboundMessage) -> None:
        """Send ``msg`` as one mail to the profile's ``email``."""
        mail, sender, recipient = self._compose(msg)
        with self._lock:
            self._deliver(mail, sender, recipient, reconnect=True)

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    self._conn.quit()
                self._drop()

    # ------------------------------------------------------------ internals

    def _compose(self, msg: OutboundMessage) -> tuple[EmailMessage, str, str]:
        recipient = str(msg.profile.get("email") or "").strip()
        if not recipient:
            raise PermanentError("the profile has no email address")
        if not _valid_address(recipient):
            raise PermanentError(f"not an email address: {recipient!r}")
        sender = str(msg.content.get("from") or self.options.sender or "").strip()
        if not sender:
            raise PermanentError(
                f"no sender: set channels.{msg.channel}.from or the message's from"
            )
        if not _valid_address(parseaddr(sender)[1]):
            raise PermanentError(f"not an email address: {sender!r}")
        text, html = msg.content.get("text"), msg.content.get("html")
        if not text and not html:
            raise PermanentError("the email has neither text nor html")

        mail = EmailMessage()
        # Header values must not hold line breaks; a multi-line subject becomes one line.
        mail["Subject"] = " ".join(msg.content.get("subject", "").splitlines())
        mail["From"] = sender
        mail["To"] = recipient
        mail["Message-ID"] = message_id(msg.key)
        mail["Idempotency-Key"] = msg.key
        mail["X-Journeyc-Key"] = msg.key
        if text:
            mail.set_content(text)
            if html:
                mail.add_alternative(html, subtype="html")
        else:
            mail.set_content(html or "", subtype="html")
        return mail, parseaddr(sender)[1], recipient

    def _deliver(self, mail: EmailMessage, sender: str, recipient: str, *, reconnect: bool) -> None:
        reused = self._conn is not None
        try:
            conn = self._connection()
            conn.send_message(mail, sender, [recipient])
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            if reused and reconnect:
                # Servers close idle connections: a kept connection that fails is
                # worth one fresh try before the failure counts.
                self._deliver(mail, sender, recipient, reconnect=False)
                return
            raise TransientError(
                f"{self.options.host}:{self._port} closed the connection: {exc}"
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise _by_code(code, reply, f"the server refused {recipient}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            raise TransientError(f"login refused: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError) as exc:
            self._drop()
            raise TransientError(
                f"cannot talk to {self.options.host}:{self._port}: "
                f"{exc.smtp_code} {_text(exc.smtp_error)}"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise _by_code(exc.smtp_code, exc.smtp_error, "the server refused the mail") from exc
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise TransientError(
                f"cannot send through {self.options.host}:{self._port}: {exc}"
            ) from exc

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        opts = self.options
        conn: smtplib.SMTP
        if opts.ssl:
            conn = smtplib.SMTP_SSL(
                opts.host,
                self._port,
                timeout=opts.timeout,
                context=ssl.create_default_context(),
            )
        else:
            conn = smtplib.SMTP(opts.host, self._port, timeout=opts.timeout)
        try:
            if opts.starttls:
                conn.starttls(context=ssl.create_default_context())
            if opts.username is not None and opts.password is not None:
                conn.login(opts.username, opts.password)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


def message_id(key: str) -> str:
    """The ``Message-ID`` of the mail for outbox key ``key``: the same for every attempt."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@journeyc>"


def _valid_address(text: str) -> bool:
    try:
        address = Address(addr_spec=text)
    except (ValueError, IndexError, TypeError):
        return False
    return bool(address.username and address.domain)


def _by_code(code: int, reply: bytes | str, what: str) -> TransientError | PermanentError:
    reason = f"{what}: {code} {_text(reply)}"
    return PermanentError(reason) if 500 <= code < 600 else TransientError(reason)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
