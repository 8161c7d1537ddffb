"""Hot queries whose SQL is written once, not on every run.

peewee writes a query's SQL text anew each time it runs: for the few statements of a no-change
sync that was most of calsync's CPU (~1 ms for the query that asks whether anything waits).
A :class:`Prepared` wraps a function that builds a peewee query from named values. The first run
for a kind of database and a *shape* builds the query with stand-in values, keeps its SQL text
and notes where each value sits among the parameters; every later run only puts the new values
in those places. The peewee query stays the one definition of what is asked.

The shape is what changes the SQL's text rather than its parameters: a list's length, a value
that is None or a boolean (peewee may write those into the text). A value peewee writes into the
text is caught when the query is first built (its stand-in is not among the parameters), never
run with the wrong value.
"""

from __future__ import annotations

import datetime as dt
import threading

import models as m

_BASE = -(10**15)  # stand-in integers: far from any id or count calsync stores


def _shape_of(value):
    if value is None or isinstance(value, bool):
        return ("literal", value)
    if isinstance(value, (list, tuple)):
        return ("list", len(value), tuple(sorted({_shape_of(v) for v in value}, key=repr)))
    if isinstance(value, (int, str)):
        return (type(value).__name__,)
    if isinstance(value, dt.datetime):
        return ("datetime", value.tzinfo is not None)
    raise TypeError(f"Prepared: no stand-in for a {type(value).__name__}")


class _Standins:
    """Stand-in values, each unique, and where each is found among the parameters."""

    def __init__(self):
        self.count = 0
        self.places: dict = {}  # parameter as peewee wrote it -> (name, index in a list or None, naive UTC?)

    def make(self, name: str, value, index=None):
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, (list, tuple)):
            return type(value)(self.make(name, v, i) for i, v in enumerate(value))
        self.count += 1
        if isinstance(value, int):
            standin = _BASE - self.count
        elif isinstance(value, str):
            standin = f"\x00standin {self.count}\x00"
        else:  # a datetime: microseconds make it unique; an aware one may be written as naive UTC
            standin = dt.datetime(1901, 2, 3, 4, 5, 6, self.count, tzinfo=value.tzinfo)
            if value.tzinfo is not None:
                self.places[standin.astimezone(dt.UTC).replace(tzinfo=None)] = (name, index, True)
        self.places[standin] = (name, index, False)
        return standin


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None)


class _Built:
    __slots__ = ("plan", "query", "slots", "sql")

    def __init__(self, sql: str, slots: list, query):
        self.sql, self.slots, self.query = sql, slots, query
        self.plan: tuple | None = None  # (wrapper class, what its initialize() worked out)

    def params(self, values: dict) -> list:
        out = []
        for slot in self.slots:
            if slot[0] == "const":
                out.append(slot[1])
                continue
            _, name, index, naive = slot
            value = values[name] if index is None else values[name][index]
            out.append(_naive_utc(value) if naive and isinstance(value, dt.datetime) else value)
        return out


class Prepared:
    """``build(**values)`` -> a peewee query; run it with :meth:`execute`, :meth:`rows` or :meth:`fetch`."""

    def __init__(self, build):
        self.build = build
        self._cache: dict = {}
        self._lock = threading.Lock()
        self.__doc__ = build.__doc__

    def _built(self, values: dict) -> _Built:
        database = m.db.obj
        key = (type(database), tuple((name, _shape_of(v)) for name, v in sorted(values.items())))
        built = self._cache.get(key)
        if built is not None:
            return built
        standins = _Standins()
        query = self.build(**{name: standins.make(name, v) for name, v in values.items()})
        sql, params = query.sql()
        slots, found = [], set()
        for param in params:
            place = standins.places.get(param) if isinstance(param, (int, str, dt.datetime)) else None
            if place is None or isinstance(param, bool):
                slots.append(("const", param))
            else:
                slots.append(("value", *place))
                found.add(place[:2])
        wanted = {(p[0], p[1]) for p in standins.places.values()}
        if wanted - found:
            missing = ", ".join(sorted(name for name, _ in wanted - found))
            raise TypeError(
                f"Prepared {self.build.__name__}: {missing} is written into the SQL text, "
                "not passed as a parameter (make it part of the shape)"
            )
        built = _Built(sql, slots, query)
        with self._lock:
            self._cache[key] = built
        return built

    def sql(self, **values) -> tuple[str, list]:
        built = self._built(values)
        return built.sql, built.params(values)

    def execute(self, **values):
        """Run it; returns the database cursor (``rowcount`` for an UPDATE)."""
        built = self._built(values)
        return m.db.execute_sql(built.sql, built.params(values))

    def rows(self, **values) -> list[tuple]:
        """The database's own rows (no conversion: SQLite gives times as text)."""
        return list(self.execute(**values).fetchall())

    def fetch(self, **values) -> list:
        """The rows as the peewee query gives them: model instances (joined ones included),
        tuples or dicts, whatever it asks for, with each column converted by its field."""
        built = self._built(values)
        cursor = m.db.execute_sql(built.sql, built.params(values))
        wrapper = built.query._get_cursor_wrapper(cursor)
        # peewee's cursor wrapper works out on its first row which column goes to which model and
        # field, from the query and the cursor's columns: the same for every run of the same SQL
        # (~0.15 ms of a sync's one read of its connection, staff member and calendars). It is
        # worked out once and handed to the next wrappers.
        plan = built.plan
        if plan is not None and type(wrapper) is plan[0]:
            wrapper.__dict__.update(plan[1])
            wrapper.initialized = True
            return list(wrapper)
        before = set(vars(wrapper))
        rows = list(wrapper)
        if wrapper.initialized:
            built.plan = (type(wrapper), {k: v for k, v in vars(wrapper).items() if k not in before})
        return rows


class BulkInsert:
    """``model.insert_many(rows)`` (``.on_conflict(**conflict)`` when given) without peewee writing
    the SQL of every row: that walked every value (~0.15 s of a first sync of 1,000 events). peewee
    writes the statement for one row and for two; when the second is the first with its VALUES
    group twice (checked once per kind of database), a statement of N rows is that group N times.
    Each value still goes through its field's ``db_value``, as peewee's own query sends it."""

    def __init__(self, model, names: tuple[str, ...], conflict: dict | None = None, per_statement: int = 300):
        self.model, self.names, self.conflict, self.per_statement = model, names, conflict, per_statement
        self.fields = [model._meta.fields[name] for name in names]
        self._converters = [field.db_value for field in self.fields]
        self._shapes: dict = {}  # kind of database -> (SQL of one row, its VALUES group) or None: peewee every time
        self._lock = threading.Lock()

    def _params(self, rows: list[dict]) -> list:
        return [convert(row[name]) for row in rows for name, convert in zip(self.names, self._converters, strict=True)]

    def _query(self, rows: list[dict]):
        query = self.model.insert_many([tuple(row[name] for name in self.names) for row in rows], fields=self.fields)
        return query.on_conflict(**self.conflict) if self.conflict else query

    def _shape(self, sample: dict):
        kind = type(m.db.obj)
        if kind in self._shapes:
            return self._shapes[kind]
        one, one_params = self._query([sample]).sql()
        two, two_params = self._query([sample, sample]).sql()
        group = "(" + ", ".join([m.db.obj.param] * len(self.names)) + ")"
        agree = (
            one.count(group) == 1
            and two == one.replace(group, f"{group}, {group}", 1)
            and list(one_params) == self._params([sample])
            and list(two_params) == self._params([sample, sample])
        )
        shape = (one, group) if agree else None
        with self._lock:
            self._shapes[kind] = shape
        return shape

    def execute(self, rows: list[dict]) -> None:
        if not rows:
            return
        shape = self._shape(rows[0])
        for start in range(0, len(rows), self.per_statement):
            chunk = rows[start : start + self.per_statement]
            if shape is None:
                self._query(chunk).execute()
                continue
            one, group = shape
            m.db.execute_sql(one.replace(group, ", ".join([group] * len(chunk)), 1), self._params(chunk))
