"""Bolt listeners, one module per kind; each has ``register(app, rt)``."""

from __future__ import annotations


def register_listeners(app, rt) -> None:
    from bot.listeners import actions, commands, home, views

    commands.register(app, rt)
    actions.register(app, rt)
    views.register(app, rt)
    home.register(app, rt)
