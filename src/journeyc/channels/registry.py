"""Building the providers of a configuration: one per channel.

A channel without a ``[channels.X]`` section prints to the console (``inapp``
keeps its messages for the inbox instead), so every channel always has a provider.
The keys of :class:`~journeyc.channels.base.DispatchOptions` (``concurrency``,
``deadline``, ``breaker_*``) are the dispatcher's: :func:`dispatch_options` reads
them, and the provider never sees them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from journeyc.channels.base import DISPATCH_KEYS, DispatchOptions, Provider, parse_options
from journeyc.channels.console import ConsoleProvider
from journeyc.channels.file import FileProvider
from journeyc.channels.http import HttpProvider
from journeyc.channels.inapp import InappProvider
from journeyc.channels.smtp import SmtpProvider
from journeyc.config import CHANNELS, ChannelConfig, Config, ConfigError

__all__ = ["build_provider", "build_providers", "close_providers", "dispatch_options"]

_CONSOLE = ChannelConfig(provider="console")
_INAPP = ChannelConfig(provider="inapp")


def build_provider(channel: str, section: ChannelConfig, base_dir: Path | None = None) -> Provider:
    """The provider ``section`` describes for ``channel``.

    ``base_dir`` anchors relative paths (the configuration file's folder). Raises
    :class:`~journeyc.config.ConfigError` naming ``channels.CHANNEL.OPTION``.
    """
    options = {k: v for k, v in section.options.items() if k not in DISPATCH_KEYS}
    match section.provider:
        case "console":
            return ConsoleProvider.from_options(channel, options)
        case "file":
            return FileProvider.from_options(channel, options, base_dir)
        case "smtp":
            return SmtpProvider.from_options(channel, options)
        case "http":
            return HttpProvider.from_options(channel, options)
        case "inapp":
            return InappProvider.from_options(channel, options)


def build_providers(config: Config, base_dir: Path | None = None) -> dict[str, Provider]:
    """A provider for every channel of the language, from ``config.channels``.

    Raises :class:`~journeyc.config.ConfigError` listing every bad option, one per
    line; providers built before the error are closed.
    """
    providers: dict[str, Provider] = {}
    errors: list[str] = []
    for channel in CHANNELS:
        section = config.channels.get(channel)  # type: ignore[call-overload]
        if section is None:
            section = _INAPP if channel == "inapp" else _CONSOLE
        try:
            providers[channel] = build_provider(channel, section, base_dir)
        except ConfigError as exc:
            errors.append(str(exc))
        try:
            _dispatch_options(channel, section)
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        close_providers(providers)
        raise ConfigError("\n".join(errors))
    return providers


def close_providers(providers: Mapping[str, Provider]) -> None:
    """Close each provider once (one provider may serve several channels)."""
    seen: set[int] = set()
    for provider in providers.values():
        if id(provider) not in seen:
            seen.add(id(provider))
            provider.close()


def dispatch_options(config: Config) -> dict[str, DispatchOptions]:
    """How the dispatcher drives each channel (defaults for a channel without a
    section). Raises :class:`~journeyc.config.ConfigError` for bad values, one line
    per problem (:func:`build_providers` reports the same problems)."""
    options: dict[str, DispatchOptions] = {}
    errors: list[str] = []
    for channel in CHANNELS:
        section = config.channels.get(channel)  # type: ignore[call-overload]
        try:
            options[channel] = _dispatch_options(channel, section)
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        raise ConfigError("\n".join(errors))
    return options


def _dispatch_options(channel: str, section: ChannelConfig | None) -> DispatchOptions:
    if section is None:
        return DispatchOptions()
    keys = {k: v for k, v in section.options.items() if k in DISPATCH_KEYS}
    return parse_options(DispatchOptions, channel, keys)
