"""Subcommands beyond the service itself (evaluation, Label Studio workflow)."""

from __future__ import annotations

import argparse


def add_tool_commands(sub: argparse._SubParsersAction) -> None:
    """Register the tool subcommands on the ``lsclip`` parser."""
    return None
