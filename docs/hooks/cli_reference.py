"""MkDocs hook: the command-line reference, rendered from the real argparse parser.

A page holding the marker ``<!-- playspeed-cli -->`` gets, in its place, one section per
command with the exact text ``playspeed <command> --help`` prints (and the top-level
``playspeed --help`` first), so the reference can never drift from the code. The parser is
imported from this checkout's ``src/``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

MARKER = "<!-- playspeed-cli -->"
# argparse wraps help text to the terminal width; a fixed one gives the same page anywhere.
HELP_WIDTH = "100"
_SRC = Path(__file__).resolve().parents[2] / "src"


def _help_text(main, argv: list[str]) -> str:
    """What ``playspeed ARGV --help`` prints (argparse exits after printing it)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
    return out.getvalue().rstrip()


def render_reference() -> str:
    """Markdown: ``playspeed --help``, then a section per command."""
    if str(_SRC) not in sys.path:
        sys.path.insert(0, str(_SRC))
    from playspeed.cli import COMMANDS, main

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        sections = ["## playspeed", "", "```text", _help_text(main, []), "```", ""]
        for command in COMMANDS:
            sections += [f"## playspeed {command}", "", "```text",
                         _help_text(main, [command]), "```", ""]
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render_reference())
