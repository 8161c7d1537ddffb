"""Slack text, safe by construction: hostile strings stay literal text.

Names, e-mails, calendar names, accounts and provider errors come from staff,
users and providers. In Slack's mrkdwn ``<!channel>`` is a mention and
``<https://evil|click>`` a link, so Slack asks for exactly three characters to
be escaped: ``&`` ``<`` ``>`` (docs.slack.dev, "Formatting text for app
surfaces"). ``plain_text`` is shown literally and must not be escaped, only
kept within its length limit.

The rule: mrkdwn the bot composes is a ``Mrkdwn`` (``md(template, values)``
escapes the values, never the template); any other string that reaches a
mrkdwn field is escaped by ``seal`` on the way out (bot/out.py). So a message
that forgets cannot inject: at worst a token of the bot's own shows literally.
"""

from __future__ import annotations

from typing import Any

ELLIPSIS = "…"
MRKDWN_LIMIT = 3000  # a text object in a section or context block
FALLBACK_LIMIT = 40000  # chat.postMessage truncates ``text`` beyond this
# plain_text limits by where the text object sits (Block Kit reference).
PLAIN_LIMITS = {"button": 75, "option": 75, "header": 150, "placeholder": 150, "title": 24, "submit": 24, "close": 24, "label": 2000}
PLAIN_DEFAULT = 3000


class Mrkdwn(str):
    """Text that is already safe mrkdwn: the bot's own markup with escaped values in it."""

    __slots__ = ()

    def __add__(self, other):
        return Mrkdwn(str.__add__(self, esc(other)))

    def __radd__(self, other):
        return Mrkdwn(str.__add__(esc(other), self))

    def join(self, parts) -> Mrkdwn:
        return Mrkdwn(str.join(self, [esc(p) for p in parts]))


def esc(value: Any) -> Mrkdwn:
    """``value`` as literal mrkdwn text; a ``Mrkdwn`` is returned as it is (never escaped twice)."""
    if isinstance(value, Mrkdwn):
        return value
    text = "" if value is None else str(value)
    return Mrkdwn(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def unescape(text: str) -> str:
    """Text as the user typed it: Slack sends ``&``, ``<`` and ``>`` in what users type escaped (the inverse of ``esc``)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def md(template: str, *args: Any, **kwargs: Any) -> Mrkdwn:
    """``template.format(...)`` with every value escaped; the template is the bot's own markup."""
    return Mrkdwn(template.format(*[esc(a) for a in args], **{k: esc(v) for k, v in kwargs.items()}))


def lines(*parts: Any) -> Mrkdwn:
    """Parts on their own lines (``"\\n".join`` would drop the Mrkdwn mark and get them escaped again)."""
    return Mrkdwn("\n").join(parts)


def clip(value: Any, limit: int) -> str:
    """A raw (not yet escaped) string cut to ``limit`` characters with an ellipsis."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def clip_mrkdwn(text: Mrkdwn, limit: int) -> Mrkdwn:
    """Escaped text cut to ``limit`` without leaving half an ``&amp;`` or half a ``<...>`` token."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    for opener, closer in (("&", ";"), ("<", ">")):
        if cut.rfind(opener) > cut.rfind(closer):
            cut = cut[: cut.rfind(opener)]
    return Mrkdwn(cut + ELLIPSIS)


def fallback(text: Any) -> Mrkdwn:
    """The ``text`` of a message or reply (Slack renders it as mrkdwn too)."""
    return clip_mrkdwn(esc(text), FALLBACK_LIMIT)


def seal(node: Any, where: str = "") -> Any:
    """A copy of blocks or a view with every mrkdwn text escaped (unless Mrkdwn) and every text within its limit."""
    if isinstance(node, list):
        return [seal(item, where) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind == "mrkdwn" and isinstance(node.get("text"), str):
        return {**node, "text": clip_mrkdwn(esc(node["text"]), MRKDWN_LIMIT)}
    if kind == "plain_text" and isinstance(node.get("text"), str):
        return {**node, "text": clip(node["text"], PLAIN_LIMITS.get(where, PLAIN_DEFAULT))}
    here = kind if isinstance(kind, str) else ("option" if "value" in node else where)
    return {key: seal(value, key if key in PLAIN_LIMITS else here) for key, value in node.items()}
