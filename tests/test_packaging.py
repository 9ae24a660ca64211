"""docker-compose.yml parses and names only commands and settings that exist; the api stays torch-free."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from backend.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _subcommands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(sub.choices)


def test_compose_parses_and_every_command_exists():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "api", "worker", "label-studio"} <= set(services)
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    assert services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    commands = _subcommands()
    settings_source = (ROOT / "backend" / "settings.py").read_text()
    for name in ("api", "worker"):
        command = services[name]["command"]
        assert command[0] == "lsclip" and command[1] in commands
        parser = build_parser()
        parser.parse_args(command[1:])  # flags exist too
        for key in services[name]["environment"]:
            if key.startswith("HF_"):
                continue
            assert re.search(rf'"{key}"', settings_source), f"{key} is not read by backend/settings.py"


def test_the_api_process_never_imports_torch():
    code = "import sys; from backend.api.app import create_app; create_app(); print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0", "PYTHONPATH": str(ROOT)})
    assert out.stdout.split() == ["False", "False"]
