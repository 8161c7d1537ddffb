"""The HTML part of calsync's mails: the plain text laid out, the link it is about as a button.

:mod:`core.notices` stays the one owner of the words: :func:`render` lays out the text it
wrote and adds only a heading (the subject) and a footer naming the sender. The layout is
what mail clients render: one centred table, inline styles, system fonts, no image, font,
script or style sheet from anywhere.

- ``Hello …,`` and every other line: one paragraph each; indented lines (the waiting
  appointments, ``… and N more``) are a list.
- A line that is exactly one of ``links`` (the URL the mail is about) becomes a button,
  labelled with the words of the line before it (``Reconnect here (the link works …):``
  gives "Reconnect here"), with the URL printed below for clients that block styles or
  links. Only an ``http(s)`` URL with nothing a URL cannot hold becomes a link; any other
  stays text. A URL that is only quoted in the text (a provider's answer) never does.
- The signature (from the ``--`` line on) is replaced by a footer saying the mail is an
  automatic message from Calsync and which address sends it, to allow-list it.

Every line goes through :func:`core.text.for_terminal` (controls shown as ``\\xNN``, escape
sequences removed, CR and tabs made spaces) and then :func:`html.escape` with quotes, so
no value (a name, an account, a reason, a subject, a URL) becomes markup or an attribute.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import urlsplit

from core.text import control_characters, for_terminal

LANG = "en"  # the language core.notices writes in
SIGNATURE = "--"
NO_LABEL = "Open the link"  # a button whose line has no words before it
FONT = "Arial, Helvetica, sans-serif"
INK, MUTED, ACCENT, PAGE, RULE = "#1f2937", "#4b5563", "#1a56db", "#f3f4f6", "#d1d5db"
TABLE = 'cellpadding="0" cellspacing="0" border="0"'  # layout tables, for clients that ignore CSS on tables
CARD = f"width:100%;max-width:600px;background-color:#ffffff;border:1px solid {RULE};border-radius:8px;"
# A long word (an account, a URL) wraps instead of widening the mail past a phone's screen.
CELL = f"font-family:{FONT};line-height:1.5;text-align:left;overflow-wrap:anywhere;word-break:break-word;"
# Characters RFC 3986 keeps out of a URL; a "URL" holding one is not made a link.
NOT_IN_URLS = frozenset(' "<>\\^`{|}')


def _text(value) -> str:
    """``value`` as HTML text: one printable line, every ``<>&"'`` escaped."""
    return html.escape(for_terminal(value), quote=True)


def linkable(url: str) -> bool:
    """True for an ``http``/``https`` URL with a host and nothing a URL cannot hold (no space,
    quote, angle bracket or control): the only kind of address a mail makes a link."""
    if not url or control_characters(url) or NOT_IN_URLS & set(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _paragraph(inner: str, style: str = "margin:0 0 12px 0;") -> str:
    return f'<p style="{style}">{inner}</p>'


def _button(url: str, label: str) -> str:
    """A "bulletproof" button: the cell carries the colour for clients that ignore the link's padding."""
    href = html.escape(url, quote=True)
    return (
        f'<table role="presentation" {TABLE} style="margin:4px 0 12px 0;">'
        f'<tr><td style="border-radius:6px;background-color:{ACCENT};">'
        f'<a href="{href}" style="display:inline-block;padding:12px 24px;font-family:{FONT};font-size:16px;'
        f"font-weight:bold;line-height:1.25;color:#ffffff;background-color:{ACCENT};border-radius:6px;"
        f'text-decoration:none;">{_text(label)}</a>'
        "</td></tr></table>\n"
        + _paragraph("If the button does not work, copy this address into your browser:", f"margin:0 0 4px 0;font-size:14px;color:{MUTED};")
        + "\n"
        + _paragraph(_text(url), "margin:0 0 12px 0;font-size:14px;word-break:break-all;")
    )


def _label(intro: str) -> str:
    """The button's words from the line before the URL: "Reconnect here (the link works …):" -> "Reconnect here"."""
    words = intro.rstrip().removesuffix(":").split(" (", 1)[0].strip()
    return words or NO_LABEL


def _item(line: str) -> str:
    item = line.strip()
    if item.startswith("- "):
        return f'<li style="margin:0 0 4px 0;">{_text(item[2:])}</li>'
    return f'<li style="margin:0 0 4px 0;list-style:none;">{_text(item)}</li>'


def _body(lines: list[str], links: set[str]) -> list[str]:
    out: list[str] = []
    items: list[str] = []
    for index, line in enumerate([*lines, ""]):  # the blank line at the end closes a last list
        if line.startswith("  ") and line.strip():
            items.append(_item(line))
            continue
        if items:
            out.append('<ul style="margin:0 0 12px 0;padding-left:24px;">' + "".join(items) + "</ul>")
            items = []
        if not line.strip():
            continue
        if line in links and linkable(line):
            before = lines[index - 1] if index else ""
            out.append(_button(line, _label(before) if before.rstrip().endswith(":") else NO_LABEL))
        else:
            out.append(_paragraph(_text(line)))
    return out


def footer(sender: str) -> str:
    """Who sends the mail, in words staff can act on: an automatic message, and the address to allow-list."""
    return (
        f"This is an automatic message from Calsync, sent from <strong>{_text(sender)}</strong>. "
        "Add that address to your contacts or to your allow-list (safe senders) so these messages "
        "do not end up in spam."
    )


def render(text: str, *, subject: str, sender: str, links: Iterable[str] = ()) -> str:
    """The HTML document for a mail whose plain text is ``text``.

    ``links`` are the URLs the mail is about (the relink link): where one stands alone on a
    line it becomes a button; ``sender`` is the address the mail comes from, named in the footer.
    """
    lines = text.split("\n")
    if SIGNATURE in lines:
        lines = lines[: len(lines) - 1 - lines[::-1].index(SIGNATURE)]
    wanted = {url for url in links if url}
    body = "\n".join(_body(lines, wanted))
    return f"""<!DOCTYPE html>
<html lang="{LANG}" dir="ltr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_text(subject)}</title>
</head>
<body style="margin:0;padding:0;background-color:{PAGE};">
<table role="presentation" width="100%" {TABLE} style="background-color:{PAGE};">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="600" {TABLE} style="{CARD}">
<tr><td style="padding:24px;font-size:16px;color:{INK};{CELL}">
<h1 style="margin:0 0 16px 0;font-size:20px;line-height:1.3;color:#111827;">{_text(subject)}</h1>
{body}
</td></tr>
<tr><td style="padding:16px 24px;border-top:1px solid {RULE};font-size:14px;color:{MUTED};{CELL}">
{footer(sender)}
</td></tr>
</table>
</td></tr>
</table>
</body>
</html>
"""
