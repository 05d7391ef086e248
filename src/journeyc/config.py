"""``journeyc.toml``: engine policies, reachability rules, store, channels and server.

Every key is checked: an unknown key is an error (a typo must not pass silently), and
each error names the file and the dotted key::

    journeyc.toml: engine.timezone: unknown time zone "Mars/Base"

A missing file means the defaults. Relative paths are taken from the file's folder.
"""

from __future__ import annotations

import difflib
import functools
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from journeyc.compile.ir import CapRule, QuietHoursRule
from journeyc.lang import ast
from journeyc.lang.literals import LiteralError, parse_duration, parse_time
from journeyc.lang.parser import parse_source
from journeyc.store.targets import StoreTarget, is_url, target_of

if TYPE_CHECKING:
    from journeyc.messages.templates import RenderLimits

CONFIG_FILE = "journeyc.toml"
STORE_ENV = "JOURNEYC_STORE"
"""The environment variable naming the store (a file path or a ``postgresql://`` URL)
when journeyc.toml names none."""
Channel = Literal["push", "email", "sms", "whatsapp", "inapp", "webhook"]
CHANNELS: tuple[str, ...] = get_args(Channel)

DEFAULT_REACHABILITY: dict[Channel, str] = {
    "push": "push_enabled == true",
    "email": "exists(email) and not email_unsubscribed",
    "sms": "exists(phone) and sms_opt_in == true",
    "whatsapp": "exists(phone) and whatsapp_opt_in == true",
    "inapp": "true",
    "webhook": "true",
}


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names file and key."""


class ExpressionError(ValueError):
    """Text that is not one expression of the journey language."""


@functools.lru_cache(maxsize=256)
def parse_expression(text: str) -> ast.Expr:
    """Parse ``text`` as one expression of the journey language (no `where`, no steps).

    Remembered (the AST is immutable): every engine parses the reachability rules
    again, and ``journeyc test`` makes an engine per test."""
    if "\n" in text or "\r" in text:
        raise ExpressionError("an expression must fit on one line")
    result = parse_source(f"segment _x = {text}\n", "<expression>")
    if result.tree is None or result.diagnostics:
        if not result.diagnostics:
            raise ExpressionError("not an expression")
        first = result.diagnostics[0]
        label = f" ({first.label})" if first.label else ""
        raise ExpressionError(f"not an expression: {first.summary}{label}")
    decls = result.tree.declarations
    if len(decls) != 1 or not isinstance(decls[0], ast.Segment):
        raise ExpressionError("not an expression")
    return decls[0].expr


# ---------------------------------------------------------------- value types


def _duration(value: object) -> object:
    if not isinstance(value, str):
        raise PydanticCustomError("duration", 'expected a duration string like "1d"')
    try:
        return parse_duration(value)
    except LiteralError as exc:
        raise PydanticCustomError("duration", exc.message) from None


Seconds = Annotated[
    int,
    BeforeValidator(_duration),
    # Written back as a duration string, so that a config sent as JSON (to the
    # engine process) reads again.
    PlainSerializer(lambda seconds: f"{seconds}s", return_type=str, when_used="json"),
]


def _window(value: str) -> str:
    start, sep, end = value.partition("-")
    try:
        if not sep:
            raise LiteralError("")
        parse_time(start.strip())
        parse_time(end.strip())
    except (LiteralError, ValueError):
        raise PydanticCustomError(
            "window", 'expected a window like "22:00-08:00", not {value}', {"value": f'"{value}"'}
        ) from None
    return value


def _minutes(text: str) -> int:
    hour, minute = parse_time(text.strip())
    return hour * 60 + minute


class _Section(BaseModel):
    # TOML values are typed: "80" for a port is a mistake to report, not to coerce.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class GlobalCap(_Section):
    """``[engine.global_cap]``: at most ``count`` sends to one user per ``per``, all journeys."""

    count: int = Field(ge=1)
    per: Annotated[Seconds, Field(gt=0)]

    @property
    def rule(self) -> CapRule:
        """The cap as the IR's rule (``per`` in seconds)."""
        return CapRule(count=self.count, per=self.per)


class QuietHoursDefault(_Section):
    """``[engine.quiet_hours]``: the quiet window for journeys that set none.

    Off unless ``window`` is set (``"22:00-08:00"``), so a journey without a
    ``quiet hours`` clause behaves as LANGUAGE.md says unless a deployment opts in.
    """

    window: Annotated[str, AfterValidator(_window)] | None = None
    skip: bool = False

    @property
    def rule(self) -> QuietHoursRule | None:
        """The window as the IR's rule, or None when there is no default window."""
        if self.window is None:
            return None
        start, _, end = self.window.partition("-")
        return QuietHoursRule(start=_minutes(start), end=_minutes(end), skip=self.skip)


class EngineConfig(_Section):
    """``[engine]``: the time zone for users without one, and cross-journey policies."""

    timezone: str = "UTC"
    global_cap: GlobalCap | None = None
    quiet_hours: QuietHoursDefault = Field(default_factory=QuietHoursDefault)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", "unknown time zone {value}", {"value": f'"{value}"'}
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The configured time zone."""
        return ZoneInfo(self.timezone)


class StoreConfig(_Section):
    """``[store]``: where the store is — ``path``, a SQLite file (relative to the
    configuration's folder), or ``url``, a PostgreSQL database (``postgresql://…``;
    docs/postgres.md) — and how long a writer waits for a lock (``lock_timeout``, a
    duration; past it the write fails as busy: the API answers 503 with
    ``Retry-After``, the engine tries its run again).

    ``store = "…"`` at the top of the file is short for ``[store] url`` (a URL) or
    ``[store] path`` (anything else); a URL given as ``path`` is taken as ``url``."""

    path: Annotated[Path, Field(strict=False)] = Path("journeyc.db")
    url: str | None = None
    lock_timeout: Annotated[Seconds, Field(gt=0)] = 10

    @model_validator(mode="before")
    @classmethod
    def _url_as_path(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("path") is not None and data.get("url") is not None:
            raise PydanticCustomError(
                "store", "set path (a SQLite file) or url (PostgreSQL), not both"
            )
        if is_url(data.get("path")):
            data = {"url" if k == "path" else k: v for k, v in data.items()}
        return data

    @model_serializer(mode="wrap")
    def _one_place(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Written back with the one place it names, so that it reads again (the config
        # goes to the engine process as JSON).
        data: dict[str, Any] = handler(self)
        data.pop("path" if self.url is not None else "url", None)
        return data

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not is_url(value):
            raise PydanticCustomError(
                "url", "expected a postgresql:// URL (a SQLite file goes in store.path)"
            )
        return value

    @property
    def target(self) -> StoreTarget:
        """Where the store is: the URL, else the file's path."""
        return self.url if self.url is not None else self.path

    @property
    def configured(self) -> bool:
        """Whether the file named the store (else ``JOURNEYC_STORE`` may)."""
        return bool(self.model_fields_set & {"path", "url"})


def _store_shorthand(value: object) -> object:
    """``store = "…"``: a URL or a path, as the ``[store]`` table that says it."""
    if isinstance(value, str):
        return {"url": value} if is_url(value) else {"path": value}
    return value


class RenderConfig(_Section):
    """``[render]``: what rendering one message may use (see
    :class:`~journeyc.messages.templates.RenderLimits`, and docs/config.md)."""

    loop_iterations: int = Field(default=10_000, ge=1)
    field_bytes: int = Field(default=512 * 1024, ge=1)
    send_bytes: int = Field(default=1024 * 1024, ge=1)
    local_bytes: int = Field(default=1024 * 1024, ge=1)
    filter_chars: int = Field(default=8 * 1024 * 1024, ge=1)
    context_depth: int = Field(default=30, ge=1)

    @property
    def limits(self) -> RenderLimits:
        """The limits as the renderer takes them."""
        from journeyc.messages.templates import RenderLimits  # Liquid loads on demand

        return RenderLimits(**self.model_dump())


class ChannelConfig(BaseModel):
    """``[channels.NAME]``: the provider for a channel, and its free-form options."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    provider: Literal["console", "file", "smtp", "http", "inapp"]

    @property
    def options(self) -> dict[str, Any]:
        """The provider's settings: every key of the section except ``provider``."""
        return dict(self.model_extra or {})


class ServerConfig(_Section):
    """``[server]``: the daemon's HTTP API."""

    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=1, le=65535)
    write_key: str | None = None
    admin_token: str | None = None
    deliveries_secret: str | None = None


def _check_expression(value: str) -> str:
    try:
        parse_expression(value)
    except ExpressionError as exc:
        raise PydanticCustomError("expression", str(exc)) from None
    return value


Expression = Annotated[str, AfterValidator(_check_expression)]


class ClusterConfig(_Section):
    """``[cluster]``: several ``journeyc serve`` workers on one PostgreSQL store
    (docs/postgres.md). Each worker leases partitions of the users for ``lease_ttl``
    (a duration) and renews them every third of it; a worker that stops renewing (it
    died, hung or lost the network) loses them when they expire, and the others take
    them over. Shorter: faster takeover, more heartbeats."""

    lease_ttl: Annotated[Seconds, Field(ge=1)] = 15


class Config(_Section):
    """The whole of ``journeyc.toml``; every section has defaults."""

    engine: EngineConfig = Field(default_factory=EngineConfig)
    reachability: dict[Channel, Expression] = Field(
        default_factory=lambda: dict(DEFAULT_REACHABILITY)
    )
    store: Annotated[StoreConfig, BeforeValidator(_store_shorthand)] = Field(
        default_factory=StoreConfig
    )
    render: RenderConfig = Field(default_factory=RenderConfig)
    channels: dict[Channel, ChannelConfig] = Field(default_factory=dict)
    server: ServerConfig = Field(default_factory=ServerConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    @field_validator("reachability")
    @classmethod
    def _with_defaults(cls, value: dict[Channel, str]) -> dict[Channel, str]:
        return {**DEFAULT_REACHABILITY, **value}

    def reachability_expr(self, channel: str) -> ast.Expr:
        """The parsed condition under which a user can be reached on ``channel``.

        Raises KeyError for a name that is not a channel.
        """
        return parse_expression(self.reachability[cast(Channel, channel)])


# ---------------------------------------------------------------- loading


def load_config(path: Path | None) -> Config:
    """Read and check ``path``; None or a missing file gives the defaults.

    Raises :class:`ConfigError` listing every problem, one per line, as
    ``FILE: dotted.key: message``.
    """
    if path is None or not path.exists():
        return Config()
    name = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read the file: {exc}") from None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = [f"{name}: {_key(err)}: {_message(err)}" for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    if not config.store.path.is_absolute():
        # Constructed, not copied with an update: the fields the file set stay the
        # ones it set (StoreConfig.configured).
        store = StoreConfig.model_construct(
            config.store.model_fields_set,
            **{**dict(config.store), "path": path.parent / config.store.path},
        )
        config = config.model_copy(update={"store": store})
    return config


def store_target(
    given: StoreTarget | None, config: Config, environ: Mapping[str, str] | None = None
) -> StoreTarget:
    """The store a command works on: ``given`` (``--store``), else the one
    journeyc.toml names (``[store] path`` or ``url``), else ``JOURNEYC_STORE`` in
    ``environ`` (the process's environment by default), else ``journeyc.db`` (beside
    the configuration file, when there is one). The same order as the daemon's keys:
    the file, then the environment."""
    if given is not None:
        return given
    if config.store.configured:
        return config.store.target
    value = (os.environ if environ is None else environ).get(STORE_ENV, "")
    if value:
        return target_of(value)
    return config.store.target


def _key(err: ErrorDetails) -> str:
    # A Literal dict key that does not match reports the key plus a "[key]" marker.
    parts = [str(p) for p in err["loc"] if p != "[key]"]
    return ".".join(parts) or "(top level)"


def _message(err: ErrorDetails) -> str:
    loc = err["loc"]
    kind = err["type"]
    if kind == "extra_forbidden":
        hint = _did_you_mean([str(p) for p in loc])
        return f"unknown key{hint}"
    if "[key]" in loc:
        return f"unknown channel (channels are {', '.join(CHANNELS)})"
    if kind == "missing":
        return "is required"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"expected one of {expected}"
    bound = err.get("ctx", {})
    if kind in ("greater_than_equal", "less_than_equal", "greater_than"):
        word = {"greater_than_equal": "at least", "less_than_equal": "at most"}.get(kind, "over")
        limit = bound.get("ge", bound.get("le", bound.get("gt")))
        return f"must be {word} {limit}"
    if kind in ("dict_type", "model_type"):
        return "expected a table"
    if kind in ("string_type", "path_type"):
        return "expected a string"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "expected a whole number"
    if kind in ("bool_type", "bool_parsing"):
        return "expected true or false"
    return str(err["msg"])


def _did_you_mean(loc: list[str]) -> str:
    model: Any = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return ""
        model = _model_of(field.annotation)
    if not _is_model(model):
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _is_model(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _model_of(annotation: object) -> object:
    """The model class a field holds: ``GlobalCap | None`` → ``GlobalCap``."""
    if _is_model(annotation):
        return annotation
    if get_origin(annotation) is Mapping or get_origin(annotation) is dict:
        return None
    return next((a for a in get_args(annotation) if _is_model(a)), None)
