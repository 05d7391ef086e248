"""Rendering sends: the engine's renderer against Liquid alone, on the same sends.

    python bench/bench_render.py [--quick]

The messages of ``bench_simulate``'s project (push, whatsapp, sms and email parts
with filters, ``{% if %}`` and locale variants) rendered for seeded sends: a user of
eleven first names, with or without a Thai locale, a product among 5,000, a cart URL
per user, one of three coupons and percents. Timed: ``Renderer.render`` (shortcuts
for plain ``{{ path }}`` fields, fields remembered by what they read,
:mod:`journeyc.messages.memo`) against the same fields rendered by Liquid alone
(each template compiled once, then ``render`` with ``template_variables``), in the
same run. Every rendered field is checked equal between the two first.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_simulate import FIRST_NAMES, compile_project, write_project
from bench.common import Figure, add_common_args, finish, print_machine
from journeyc.compile import ir
from journeyc.engine.values import EventView
from journeyc.messages.render import RenderContext, Renderer, pick_locale, template_variables

NOW = datetime(2026, 1, 5, 10, 30, tzinfo=UTC)
CHANNELS = ["push", "email", "sms", "whatsapp"]

Send = tuple[ir.MessageIR, str, RenderContext]


def make_sends(messages: list[ir.MessageIR], n: int, seed: int = 1) -> list[Send]:
    """``n`` seeded sends of ``messages`` on the channels their parts have."""
    rng = random.Random(seed)
    sends = []
    for i in range(n):
        message = rng.choice(messages)
        profile: dict[str, Any] = {"first_name": rng.choice(FIRST_NAMES)}
        if rng.random() < 0.3:
            profile["locale"] = "th"
        props = {
            "product_name": f"Item {rng.randint(1, 5000)}",
            "cart_url": f"https://shop.example/cart/u{i}",
            "item_count": rng.randint(1, 3),
        }
        context = RenderContext(
            user_id=f"u{i}",
            user=profile,
            event=EventView("cart_abandoned", NOW, props),
            journey_id="j",
            step="nudge",
            now=NOW,
            values={"coupon": rng.choice(["HER15", "HIM10", "ALL5"]), "percent": 10},
        )
        sends.append((message, rng.choice([c for c in CHANNELS if c in message.parts]), context))
    return sends


def liquid_alone(renderer: Renderer, sends: list[Send]) -> list[dict[str, str]]:
    """Every send's fields rendered by Liquid, each template compiled once."""
    compiled: dict[str, Any] = {}
    out = []
    for message, channel, context in sends:
        variables = template_variables(context)
        fields = {}
        for name, f in message.parts[channel].items():
            source = pick_locale(f, context.user.get("locale"))
            if source is None:
                continue
            template = compiled.get(source)
            if template is None:
                template = compiled[source] = renderer.environment.from_string(source)
            fields[name] = template.render(**variables)
        out.append(fields)
    return out


def engine_renderer(renderer: Renderer, sends: list[Send]) -> list[dict[str, str]]:
    """Every send's fields as the engine renders them."""
    return [renderer.render(message, None, channel, context) for message, channel, context in sends]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    add_common_args(ap, "5,000 sends (default 50,000)")
    args = ap.parse_args()
    n = 5_000 if args.quick else 50_000
    print_machine()
    with tempfile.TemporaryDirectory() as tmp:
        project = compile_project(write_project(Path(tmp) / "proj"))
    sends = make_sends(list(project.messages.values()), n)
    assert engine_renderer(Renderer(), sends[:500]) == liquid_alone(Renderer(), sends[:500])

    timings: dict[str, float] = {}
    for name, fn in (("liquid", liquid_alone), ("engine", engine_renderer)):
        best = float("inf")
        for _ in range(3):  # a fresh renderer each run: its memo starts empty
            renderer = Renderer()
            t0 = time.process_time()
            fn(renderer, sends)
            best = min(best, time.process_time() - t0)
        timings[name] = best
    print(
        f"render: {n:,} sends; CPU seconds, best of 3: "
        + ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
    )
    per_send = {k: v / n * 1e6 for k, v in timings.items()}
    finish(
        [
            Figure(
                "render a send, engine renderer",
                per_send["engine"],
                "us",
                per_send["liquid"],
                "Liquid alone",
            )
        ],
        args,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
