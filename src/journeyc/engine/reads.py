"""What a project reads beyond each user's own data.

The engine's work for one user reads that user's events, profile, segments,
instances and sends, except where a message's Liquid calls a recommendation filter,
which reads every user's events and the product catalog learned from them. Two
callers care: a replay split between processes (:mod:`journeyc.engine.parallel`)
needs independent users, and a simulation's scratch store need not learn the
catalog when nothing reads it.
"""

from __future__ import annotations

import re

from journeyc.compile import ir
from journeyc.messages.memo import IMPURE_FILTERS

__all__ = ["shared_reads"]

# A Liquid tag or output that names a filter reading every user's data, or a partial
# (whose filters are not in the message's text): conservative, a false match only
# costs the parallel run.
_SHARED_LIQUID = re.compile(
    r"\{[{%](?:(?!\}\}|%\}).)*?\b(?:"
    + "|".join(sorted(IMPURE_FILTERS | {"include", "render"}))
    + r")\b",
    re.DOTALL,
)


def shared_reads(project: ir.ProjectIR) -> str | None:
    """Why the users of ``project`` are not independent (what a user's run reads of
    other users), or None when they are."""
    for jid, journey in sorted(project.journeys.items()):
        for node in journey.nodes.values():
            if isinstance(node, ir.SendNode):
                for target in node.targets:
                    if target.inline and _SHARED_LIQUID.search(target.inline):
                        return f"journey {jid} sends a message that reads every user's events"
    for name, message in sorted(project.messages.items()):
        for fields in message.parts.values():
            for part in fields.values():
                for source in (part.default, *part.locales.values()):
                    if source and _SHARED_LIQUID.search(source):
                        return f"message {name} reads every user's events"
    return None
