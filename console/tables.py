"""What the admin CLI and the console show: every value made safe for a terminal on its way out.

Text from outside (an event's subject, a calendar or staff name, a provider's answer,
an old database row) may hold escape sequences that rewrite the clipboard (OSC 52),
move the cursor or recolour the screen, and URLs that still carry a password. Every
human-readable line goes through :func:`shown` / :func:`shown_lines`; JSON through
:func:`json_text`. Commands never print on their own.
"""

from __future__ import annotations

import json
import re
import sys

from core.text import for_terminal

# scheme://userinfo@host: the userinfo is everything up to the last "@" before the path.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s@]*(?:@[^/?#\s@]*)*@")


def redact_urls(text: str) -> str:
    """``text`` with the user name and password of every URL in it replaced by ``***``."""
    return _USERINFO.sub(r"\1***@", text) if "@" in text and "://" in text else text


def shown(value) -> str:
    """One value as one safe line: credentials out of URLs, escape sequences and controls out."""
    text = redact_urls(str(value))
    return text if text.isprintable() else for_terminal(text)


def shown_lines(text) -> str:
    """Text of several lines (a provider's answer, a command's report), each line made safe."""
    return "\n".join(shown(line) for line in str(text).split("\n"))


def redact_data(data):
    """``data`` (what ``--json`` prints) with the credentials taken out of every URL in its strings."""
    if isinstance(data, str):
        return redact_urls(data)
    if isinstance(data, dict):
        return {key: redact_data(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(value) for value in data]
    return data


def json_text(data) -> str:
    """Exact JSON; ``ensure_ascii`` keeps every control character escaped (``\\u001b``), never raw."""
    return json.dumps(redact_data(data), indent=2, sort_keys=True, default=str, ensure_ascii=True)


def say(text: str, file=None) -> None:
    """Print human-readable ``text`` (stdout unless told), every line safe for a terminal."""
    print(shown_lines(text), file=file or sys.stdout, flush=file is sys.stderr)


def render(rows: list[dict], columns: list[tuple[str, str]], max_width: int = 60) -> str:
    """``columns`` is [(key, header)]; each cell one safe line, long cells cut with an ellipsis."""
    if not rows:
        return ""

    def cell(value) -> str:
        if value is None:
            text = "-"
        elif value is True:
            text = "yes"
        elif value is False:
            text = "no"
        else:
            text = shown(value)
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    table = [[header for _, header in columns]] + [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(widths[i]) for i, text in enumerate(line)).rstrip() for line in table]
    return "\n".join(lines)


def when(value: str | None) -> str:
    """An ISO UTC timestamp as 'YYYY-MM-DD HH:MMZ'."""
    if not value:
        return "never"
    return value[:16].replace("T", " ") + "Z"
