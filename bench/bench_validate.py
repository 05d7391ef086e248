"""Validate a generated project of 200 journeys; the cold start of `journeyc validate`.

    python bench/bench_validate.py [--quick]

Baselines from the same run: the interpreter's own start (`python -c pass`) for the
cold start, and parsing alone for the project (the checker's share is the ratio).
Goals: 200 journeys in ≤ 1 s; a cold `journeyc validate` of one file in ≤ 0.4 s.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, add_common_args, finish, median_time, print_machine

ONE_FILE = """when cart_abandoned
wait 30m
if not push_enabled
  send whatsapp cart_reminder
else
  send push cart_reminder

message cart_reminder
  push
    title "Still thinking about {{ event.product_name }}?"
    body "Your cart is waiting{% if user.first_name %}, {{ user.first_name }}{% endif %}."
  whatsapp
    body "Hi {{ user.first_name | default: 'there' }}, your cart is waiting: {{ event.cart_url }}"
"""

CATEGORIES = ["womens", "mens", "kids", "home", "beauty", "watches"]
CHANNELS = ["push", "whatsapp", "sms", "email"]


def journey_source(i: int, rng: random.Random) -> str:
    """One realistic journey: entry, policies, waits, branches, a split, sends."""
    cat = rng.choice(CATEGORIES)
    ch = rng.sample(CHANNELS, 3)
    return f'''# generated journey {i}
journey j{i} "Journey {i}"
  when product_viewed where event.category == "{cat}" and event.price >= {rng.randint(10, 500)}
  entry once per {rng.randint(1, 14)}d
  exit when order_completed
  goal order_completed within {rng.randint(1, 7)}d
  quiet hours 22:00-08:00
  cap {rng.randint(1, 3)} per 1d
  holdout {rng.randint(0, 20)}%

  wait {rng.randint(20, 30)}m as nudge_wait
  if count(product_viewed where event.category == "{cat}" within 7d) >= 3
    send {ch[0]} or {ch[1]} or {ch[2]} msg{i % 20} with coupon = "C{i}", percent = 10
  elif segment hero or lifecycle in ["new", "dormant"]
    send push "Hi {{{{ user.first_name | default: 'there' }}}}, {{{{ event.product_name }}}}"
  else
    set last_nudged = now
  wait for cart_updated up to 2d
    on cart_updated
      track nudge_converted with journey = "j{i}"
    on timeout
      split
        50% as A
          send email msg{(i + 1) % 20}
        50% as B
          exit
'''


def project(root: Path, n: int, seed: int = 7) -> Path:
    """Write ``n`` journeys, 20 messages and the segments they use under ``root``."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"j{i:03d}.journey").write_text(journey_source(i, rng))
    messages = []
    for m in range(20):
        messages.append(f"""message msg{m}
  push
    title "{{{{ event.product_name }}}} is waiting"
    body "Use {{{{ coupon }}}} for {{{{ percent }}}}% off"
  whatsapp
    body "Hi {{{{ user.first_name | default: 'there' }}}}: {{{{ event.url }}}}"
  sms
    body "Your pick is waiting: {{{{ event.url }}}}"
  email
    subject "Still thinking about it?"
    html "<p>{{% if user.first_name %}}Hi {{{{ user.first_name }}}}{{% endif %}}</p>"
""")
    (root / "messages.journey").write_text("\n".join(messages))
    (root / "segments.journey").write_text(
        "segment hero = sum(order_completed.amount within 365d) >= 5000 and "
        "count(order_completed within 365d) >= 5\n"
    )
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_common_args(ap, "fewer runs")
    args = ap.parse_args()
    runs = 3 if args.quick else 7
    print_machine()

    from journeyc.lang.checker import check_project
    from journeyc.lang.project import load_project

    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp) / "proj", 200)

        def validate() -> None:
            p = load_project([root])
            errors = [d for d in check_project(p) if d.is_error]
            assert not errors, errors[:3]

        def parse_only() -> None:
            load_project([root])

        t_validate = median_time(validate, runs)
        t_parse = median_time(parse_only, runs)
        figures.append(
            Figure(
                "validate 200 journeys",
                t_validate,
                "s",
                t_parse,
                "parse only",
                "<= 1 s",
                t_validate <= 1.0,
            )
        )
        figures.append(Figure("validate throughput", 200 / t_validate, "journeys/s"))

        # A self-contained file, as a marketer validates one journey while editing it.
        one = Path(tmp) / "cart_abandoned.journey"
        one.write_text(ONE_FILE)

        def cold_validate() -> None:
            subprocess.run(
                [sys.executable, "-m", "journeyc", "validate", str(one)],
                check=True,
                capture_output=True,
            )

        def bare_python() -> None:
            subprocess.run([sys.executable, "-c", "pass"], check=True)

        t_cold = median_time(cold_validate, runs)
        t_py = median_time(bare_python, runs)
        figures.append(
            Figure(
                "cold `journeyc validate` of one file",
                t_cold,
                "s",
                t_py,
                "python -c pass",
                "<= 0.4 s",
                t_cold <= 0.4,
            )
        )
    finish(figures, args)


if __name__ == "__main__":
    main()
