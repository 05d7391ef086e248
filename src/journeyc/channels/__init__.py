"""Channel providers: where the dispatcher delivers outbox rows.

``console`` prints, ``file`` appends JSON lines, ``smtp`` sends email, ``http``
posts push, SMS, WhatsApp and webhook requests shaped by configuration, and
``inapp`` keeps messages for the inbox. :func:`build_providers` makes one per
channel from ``journeyc.toml``.
"""

from journeyc.channels.base import (
    DeliveryError,
    OutboundMessage,
    PermanentError,
    Provider,
    TransientError,
)
from journeyc.channels.registry import build_provider, build_providers, close_providers

__all__ = [
    "DeliveryError",
    "OutboundMessage",
    "PermanentError",
    "Provider",
    "TransientError",
    "build_provider",
    "build_providers",
    "close_providers",
]
