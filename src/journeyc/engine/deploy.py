"""The one way a project is deployed into a store, for the daemon and ``journeyc deploy``.

:func:`deploy_project` runs :meth:`Engine.deploy` and records, in the same
transaction, the project it deployed (``deployed_project``: what ``journeyc serve
--no-watch`` runs, and what an engine process runs when the project on disk is
invalid) and a stamp that changes with every deployment (``deployed_stamp``: an
engine process that did not make the deployment notices it on its poll and takes the
project from the store).

:func:`deployed_state_hash` and :func:`project_hash` are the two halves of a plan's
hash (``journeyc plan --out``): what the store has deployed, and what the project
does.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from journeyc.compile import ir

if TYPE_CHECKING:
    from journeyc.engine.core import Engine
    from journeyc.store.abc import Store

__all__ = [
    "DEPLOYED_PROJECT",
    "DEPLOYED_STAMP",
    "deploy_or_take",
    "deploy_project",
    "deployed_project",
    "deployed_stamp",
    "deployed_state",
    "deployed_state_hash",
    "project_hash",
]

DEPLOYED_PROJECT = "deployed_project"
"""The setting holding the project (its IR as JSON) last deployed into the store."""

DEPLOYED_STAMP = "deployed_stamp"
"""The setting that changes with every deployment: ``PROJECT_HASH@MILLISECONDS``."""


def deploy_project(engine: Engine, project: ir.ProjectIR, now_ms: int) -> str:
    """Deploy ``project`` with ``engine`` at ``now_ms`` and record it in the store, in
    one transaction; return the new deployment stamp."""
    store = engine.store
    stamp = f"{project_hash(project)}@{now_ms}"
    with store.transaction():
        engine.deploy(project, now_ms)
        store.put_setting(DEPLOYED_PROJECT, project.model_dump_json())
        store.put_setting(DEPLOYED_STAMP, stamp)
    return stamp


def deploy_or_take(engine: Engine, project: ir.ProjectIR, now_ms: int) -> str:
    """:func:`deploy_project`, unless the store's last deployment is ``project``
    already (another worker on the store deployed the same change first): then the
    engine takes it as deployed, and nothing is recorded anew. The deployment stamp
    either way. Several workers call it under the store's cluster lock, so that one
    change is deployed once."""
    stamp = deployed_stamp(engine.store)
    if stamp is not None and stamp.partition("@")[0] == project_hash(project):
        engine.deploy(project, now_ms)
        return stamp
    return deploy_project(engine, project, now_ms)


def deployed_project(store: Store) -> ir.ProjectIR | None:
    """The project last deployed into ``store`` by the daemon or ``journeyc deploy``
    (None: never)."""
    text = store.get_setting(DEPLOYED_PROJECT)
    return None if text is None else ir.ProjectIR.model_validate_json(text)


def deployed_stamp(store: Store) -> str | None:
    """The stamp of the last deployment (None: never deployed by
    :func:`deploy_project`)."""
    return store.get_setting(DEPLOYED_STAMP)


def deployed_state(store: Store) -> dict[str, Any]:
    """What a deployment changes in ``store``, as plain data: each journey's active
    version and each segment's definition hash."""
    deployments = store.deployments()
    return {
        "journeys": deployments.active_versions(),
        "segments": {n: s.hash for n, s in deployments.deployed_segments().items()},
    }


def deployed_state_hash(store: Store) -> str:
    """A hash of :func:`deployed_state`: it changes when anything is deployed that
    changes a journey version or a segment definition."""
    return _hash(deployed_state(store))


def project_hash(project: ir.ProjectIR) -> str:
    """A hash of what a compiled project does: its journeys' versions (each hashes
    its steps, policies, messages and segments), its messages and its segments. The
    layout, comments and file names are not in it, so a plan made in one checkout
    applies from another."""
    return _hash(
        {
            "journeys": {jid: j.version for jid, j in sorted(project.journeys.items())},
            "messages": {n: m.model_dump(mode="json") for n, m in sorted(project.messages.items())},
            "segments": {n: s.model_dump(mode="json") for n, s in sorted(project.segments.items())},
        }
    )


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
