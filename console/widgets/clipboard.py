"""Copying from the console: Textual's ``App.copy_to_clipboard`` asks the terminal with OSC 52.

Many terminals honour it (kitty, WezTerm, Alacritty, foot, Ghostty, Windows Terminal, VS Code);
others ignore it without a word (macOS Terminal, GNOME Terminal and other VTE terminals,
tmux and screen unless set up for it). So the console only says a copy was sent when the
terminal is likely to take it, and otherwise says how to copy with the mouse.
"""

from __future__ import annotations

import os

LIKELY_PROGRAMS = ("wezterm", "ghostty", "vscode", "kitty", "alacritty", "iterm.app")
LIKELY_TERMS = ("xterm-kitty", "alacritty", "foot", "xterm-ghostty", "wezterm", "contour")
LIKELY_MARKERS = ("KITTY_WINDOW_ID", "WEZTERM_PANE", "ALACRITTY_WINDOW_ID", "WT_SESSION", "GHOSTTY_RESOURCES_DIR")
MOUSE_HINT = "select the {what} with the mouse to copy it (hold Shift while dragging in most terminals)"


def osc52_likely(environ=None) -> bool:
    """True when the terminal probably accepts a copy sent with OSC 52."""
    env = os.environ if environ is None else environ
    if env.get("TMUX") or env.get("STY"):  # tmux/screen drop OSC 52 unless configured to pass it on
        return False
    program = env.get("TERM_PROGRAM", "").lower()
    term = env.get("TERM", "").lower()
    if program == "apple_terminal" or env.get("VTE_VERSION"):
        return False
    return program in LIKELY_PROGRAMS or term in LIKELY_TERMS or any(env.get(k) for k in LIKELY_MARKERS)


def copy(app, text: str, what: str = "link") -> str:
    """Send ``text`` to the terminal's clipboard and say honestly what happened (the notification's text)."""
    app.copy_to_clipboard(text)
    if osc52_likely():
        return f"Copy of the {what} sent to your terminal (OSC 52): paste it to check; if nothing comes, {MOUSE_HINT.format(what=what)}."
    return f"This terminal may not take copies from programs: {MOUSE_HINT.format(what=what)}."
