"""Text from outside (a provider, a staff member, the host): checked where it enters, made safe where it is shown.

- :func:`control_characters` / :func:`check_line` find what must never be stored in a one-line
  field (a user name, a display name, an id): C0/C1 controls, DEL, and the Unicode format
  characters that reorder or hide text (bidi overrides, zero-width spaces; joiners are kept).
- :func:`for_terminal` makes any string safe to print on a terminal: escape sequences (CSI, OSC
  such as a clipboard write, DCS) are removed, other controls are shown as ``\\xNN``, tabs and
  newlines become spaces (one value, one line).
"""

from __future__ import annotations

import re
import unicodedata

# ESC-introduced sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC
# (ESC P/X/^/_ ... ST), and two-character escapes; plus their 8-bit C1 forms.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC
    r"|\x1b[@-Z\\-_]?"  # other two-character escapes (and a lone ESC)
)
_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f"}


_JOINERS = {"\u200c", "\u200d"}  # ZWNJ / ZWJ: part of Persian words and emoji sequences


def _is_control(char: str) -> bool:
    return (unicodedata.category(char) in ("Cc", "Cf") and char not in _JOINERS) or char in _BIDI


def control_characters(value: str) -> list[str]:
    """The control and format characters in ``value``, as ``U+XXXX`` names (empty when clean)."""
    return [f"U+{ord(c):04X}" for c in dict.fromkeys(value) if _is_control(c)]


def check_line(value: str, what: str, max_length: int) -> str:
    """``value`` stripped, or ValueError in plain words when it is too long or holds controls."""
    value = (value or "").strip()
    if len(value) > max_length:
        raise ValueError(f"{what} may be at most {max_length} characters")
    found = control_characters(value)
    if found:
        raise ValueError(f"{what} may not contain control characters (found {', '.join(found[:5])})")
    return value


def for_terminal(value) -> str:
    """``value`` as one printable line: escape sequences removed, other controls shown as ``\\xNN``."""
    text = _ESCAPES.sub("", str(value))
    out = []
    for char in text:
        if char in "\t\n\r":
            out.append(" ")
        elif _is_control(char):
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)
