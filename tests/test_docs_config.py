"""docs/config.md: its example file is a valid journeyc.toml that means what it says."""

from __future__ import annotations

import re
from pathlib import Path

from journeyc.config import load_config
from tests.conftest import ROOT


def test_the_documented_example_loads(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "config.md").read_text()
    block = re.findall(r"```toml\n(.*?)```", text, re.S)[0]
    path = tmp_path / "journeyc.toml"
    path.write_text(block)
    config = load_config(path)
    assert config.engine.timezone == "Asia/Bangkok"
    cap = config.engine.global_cap
    assert cap is not None and (cap.rule.count, cap.rule.per) == (3, 86400)
    quiet = config.engine.quiet_hours.rule
    assert quiet is not None and (quiet.start, quiet.end, quiet.skip) == (1320, 480, False)
    assert config.server.port == 8700
    assert config.channels["email"].provider == "smtp"


def test_the_documented_provider_examples_build(tmp_path: Path) -> None:
    from journeyc.channels import build_providers

    text = (ROOT / "docs" / "config.md").read_text()
    block = re.findall(r"```toml\n(.*?)```", text, re.S)[1]
    path = tmp_path / "journeyc.toml"
    path.write_text(block)
    providers = build_providers(load_config(path), tmp_path)
    assert type(providers["push"]).__name__ == type(providers["sms"]).__name__
    assert type(providers["push"]).__name__ != type(providers["email"]).__name__
