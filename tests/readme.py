"""The README's shell commands, as the end-to-end tests run them verbatim."""

from __future__ import annotations

import re
import shlex

from tests.conftest import ROOT


def readme_blocks() -> list[list[str]]:
    """Every ```bash block of the README, as its command lines (continuations joined)."""
    text = (ROOT / "README.md").read_text()
    return [
        block.replace("\\\n", " ").strip().splitlines() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    ]


def readme_block(first_line: str) -> list[str]:
    """The README block that starts with `first_line`, one command per line."""
    for lines in readme_blocks():
        if lines and lines[0] == first_line:
            return lines
    raise AssertionError(f"no README block starts with {first_line!r}")


def readme_command(marker: str) -> list[str]:
    """The README's shell command containing `marker`, as argv (a trailing comment dropped)."""
    for lines in readme_blocks():
        for command in lines:
            if marker in command:
                return shlex.split(command.split("#", 1)[0])
    raise AssertionError(f"no README command contains {marker!r}")
