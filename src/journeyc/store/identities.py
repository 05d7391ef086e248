"""Identities: which user an id names once anonymous ids have merged into known users.

A shopper browses under an ``anonymousId`` and logs in under a ``userId``; an
``alias`` event (an ``alias`` call, or a call carrying both ids, see
:data:`journeyc.events.ALIAS`) merges the first into the second. From then on the
first id is an *alias* of the second, its *canonical* user: calls that name it land
on that user. :func:`link_events` applies these rules to events in log order, as
they are logged, so the event log and the engine only ever see canonical ids (the
store keeps the links in its ``identities`` table; a simulation applies the same
function to its whole file before it splits the users between processes).

The rules (docs/semantics.md, "Identity: anonymous to known"):

- an alias event merges ``previousId`` into its user, both read as the users they
  name at that moment (an id merged before names its canonical user);
- nothing happens when both name one user already (Segment's SDKs send both ids
  with every call after login), or when ``previousId`` is an alias of another user
  already: an anonymous id joins the first user it is merged into (a second
  account logging in on the same device does not take the first one's history);
- a merge of a user who has aliases moves them along: every id that named the
  merged user names the user it merged into.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter

from journeyc.events import ALIAS, PREVIOUS_ID, Event


@dataclass
class IdentityMap:
    """Aliases and their canonical users: ``canonical[alias]`` is the user an alias
    names (an id not in it names itself), ``members[user]`` the aliases naming a user.

    The store fills one with the links of the ids a batch names; a simulation keeps
    one for its whole file."""

    canonical: dict[str, str] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, links: Iterable[tuple[str, str]]) -> IdentityMap:
        """A map of ``(alias, canonical user)`` pairs."""
        ids = cls()
        for alias, user in links:
            ids.canonical[alias] = user
            ids.members.setdefault(user, []).append(alias)
        return ids

    def resolve(self, user_id: str) -> str:
        """The user ``user_id`` names."""
        return self.canonical.get(user_id, user_id)

    def merge(self, frm: str, into: str) -> None:
        """Make ``frm`` (a canonical user) and its aliases aliases of ``into``."""
        moved = self.members.pop(frm, [])
        moved.append(frm)
        for alias in moved:
            self.canonical[alias] = into
        self.members.setdefault(into, []).extend(moved)


def link_events(
    events: Sequence[Event], ids: IdentityMap
) -> tuple[list[Event | None], list[tuple[str, str]]]:
    """``events`` as the log takes them, in order: each one's user is the user its id
    names then; an alias event that merges two users names the merged user in its
    ``props`` (:data:`~journeyc.events.PREVIOUS_ID`) and the user it merges into as its
    user, one that merges nothing is None (not logged). ``ids`` is updated with each
    merge; the merges made are returned too, as ``(merged user, user merged into)``
    in order.

    Applying it again to what it returned, from the same ``ids`` it started with,
    gives the same events and merges."""
    out: list[Event | None] = []
    merges: list[tuple[str, str]] = []
    canonical = ids.canonical
    for e in events:
        if e.name == ALIAS and e.kind == "alias":
            previous = e.props.get(PREVIOUS_ID)
            into = canonical.get(e.user_id, e.user_id)
            if not isinstance(previous, str) or not previous:
                out.append(None)
                continue
            frm = canonical.get(previous, previous)
            if frm == into or frm != previous:
                # One user already, or the id belongs to another user already.
                out.append(None)
                continue
            ids.merge(frm, into)
            merges.append((frm, into))
            if into != e.user_id or e.props.get(PREVIOUS_ID) != frm:
                e = replace(e, user_id=into, props={PREVIOUS_ID: frm})
            out.append(e)
            continue
        user = canonical.get(e.user_id)
        out.append(e if user is None else replace(e, user_id=user))
    return out, merges


_NAME = attrgetter("name")


def has_alias(events: Iterable[Event]) -> bool:
    """Whether any of ``events`` is an alias event (a scan in C: the common case, a
    file without one, costs a few milliseconds a million events)."""
    return ALIAS in map(_NAME, events)


def alias_ids(events: Iterable[Event]) -> set[str]:
    """The ids the alias events among ``events`` merge (their ``previousId``)."""
    return {
        previous
        for e in events
        if e.name == ALIAS
        and e.kind == "alias"
        and isinstance(previous := e.props.get(PREVIOUS_ID), str)
    }
