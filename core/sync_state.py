"""What a run (:class:`core.sync.ConnectionSync`) holds, as its parts see it: the reading
(core.sync_pulling) and the writing (core.sync_pushing) mixins read these, the run sets them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from core import expander
from core.providers.base import Provider
from core.reconcile import OwnEvents


class RunState:
    """The attributes of one run over one connection (set by ConnectionSync.__init__)."""

    rt: Any
    settings: Any
    provider: Provider
    report: Any
    tz: dt.tzinfo
    me: frozenset[str]
    window_start: dt.datetime
    window_end: dt.datetime
    strays: dict[int, list[tuple[str, str]]]
    own: OwnEvents
    expansions: expander.Budget
    check_budget: Callable[[], None]
