"""The Graph fake held to Microsoft's own description of Graph v1.0: msgraph-sdk's models.

calsync's Microsoft provider is driven against the fake the way tests/test_microsoft.py drives
it (connect, calendars, the calendarView delta rounds, an expired delta token, writes with
If-Match and transactionId, extended properties, throttling), the fake records every exchange
(``GraphFake.calls``), and every request body the provider sent and every JSON answer the
fake gave is parsed with the msgraph-sdk model of that endpoint (``Event``, ``Calendar``,
``User``, the collection and delta responses, ``Subscription``, ``ODataError``).

kiota's JSON parse node is lenient by design: an unknown property lands in the model's
``additional_data``, and a value of the wrong type (``"isAllDay": "false"``, ``"showAs":
"bussy"``, ``"start": "2026-05-01"``) silently becomes ``None``. ``StrictNode`` is the same
parse node that also says where a value does not fit: after each object is parsed its
``additional_data`` may hold only the annotations in ``ANNOTATIONS``, and every typed read
(string, boolean, number, date-time, GUID, enum, object, collection) checks the JSON type.
Strings the models keep as plain ``str`` but the docs give a format (dateTimeTimeZone's
``dateTime``, a subscription's ``changeType`` list) are checked by ``FORMATS``.

The installed msgraph-sdk has no ``changeNotificationCollection``, ``changeNotification`` or
``resourceData`` (no Graph path returns or accepts them: Graph *sends* them to the app), so they
are transcribed below from Microsoft's kiota-generated v1.0 models in msgraph-sdk-php
(``src/Generated/Models/ChangeNotification.php``, ``ResourceData.php``, ``ChangeType.php``,
``LifecycleEventType.php``, ``ChangeNotificationEncryptedContent.php``); the collection (``value``,
``validationTokens``) as the changeNotificationCollection resource page and the kiota model of
Microsoft's Java webhook sample (``com.example.graphwebhook.notifications``) give it. If the
installed SDK gains them, its own classes are used instead.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import re
import uuid
from typing import Any

import pytest
from conftest import soon, started, web_env
from fakes.microsoft_graph import Call, GraphFake, weekly
from kiota_abstractions.serialization import AdditionalDataHolder, Parsable, ParseNode
from kiota_serialization_json.json_parse_node import JsonParseNode
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from msgraph.generated.models.calendar import Calendar
from msgraph.generated.models.calendar_collection_response import CalendarCollectionResponse
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.entity import Entity
from msgraph.generated.models.event import Event
from msgraph.generated.models.event_collection_response import EventCollectionResponse
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.subscription import Subscription
from msgraph.generated.models.subscription_collection_response import SubscriptionCollectionResponse
from msgraph.generated.models.user import User
from msgraph.generated.users.item.calendar_view.delta.delta_get_response import (
    DeltaGetResponse as CalendarViewDeltaResponse,
)
from msgraph.generated.users.item.calendars.item.calendar_view.delta.delta_get_response import (
    DeltaGetResponse as CalendarsCalendarViewDeltaResponse,
)
from test_microsoft import EMAIL, HOUR, Ada

import models as m
from core import actions
from core.providers.base import NotFound, PreconditionFailed, WriteForbidden

# -- what may stay in additional_data -------------------------------------------------------------

# What a parsed object's additional_data may hold, and why the SDK keeps it there. OData JSON
# Format v4.01 §4.5 names the control information; the models declare only @odata.type (entities and
# most complex types) and @odata.nextLink / @odata.deltaLink (collection and delta responses), and
# kiota keeps the rest in additional_data by design. Names are exact: "@odata.deltalink" is a typo.
_CONTROL = "OData control information (OData JSON Format v4.01 §4.5)"
ANNOTATIONS = {
    "@odata.context": f"{_CONTROL}: the context URL every Graph answer starts with",
    "@odata.etag": f"{_CONTROL}: graph/api/resources/event shows it on every event; resourceData carries it",
    "@odata.id": f"{_CONTROL}: resourceData of a change notification (graph/change-notifications-delivery-webhooks)",
    "@odata.type": f"{_CONTROL}: declared by most models; kept where a model does not declare it",
    "@odata.nextLink": f"{_CONTROL}: paging; declared by collection responses, not by their items",
    "@odata.deltaLink": f"{_CONTROL}: the end of a delta round; declared by delta responses",
    "@odata.count": f"{_CONTROL}: $count=true",
    "@removed": (
        "graph/delta-query-overview, graph/api/event-delta: an item gone from the round, "
        '"@removed": {"reason": "changed" | "deleted"}; an instance annotation no model declares'
    ),
}
REMOVED_REASONS = {"changed", "deleted"}

# Properties an open type carries beyond its model. resourceData is documented as "the content of
# this property depends on the type of resource being subscribed to"; for Outlook resources
# graph/change-notifications-delivery-webhooks shows it with "id" besides the annotations.
OPEN_TYPE_PROPERTIES = {"ResourceData": {"id"}}


def is_annotation(key: str) -> bool:
    return key in ANNOTATIONS


# -- the notification models the installed SDK lacks ------------------------------------------------


class ChangeType(enum.Enum):
    Created = "created"
    Updated = "updated"
    Deleted = "deleted"


class LifecycleEventType(enum.Enum):
    Missed = "missed"
    SubscriptionRemoved = "subscriptionRemoved"
    ReauthorizationRequired = "reauthorizationRequired"


def _fields(owner, table: dict[str, tuple[str, Any]]) -> dict:
    """kiota field deserializers from ``{json name: (attribute, read(node))}``."""
    return {name: (lambda n, attr=attr, read=read: setattr(owner, attr, read(n))) for name, (attr, read) in table.items()}


class _Mirror(AdditionalDataHolder, Parsable):
    def serialize(self, writer) -> None:  # only read here
        raise NotImplementedError


@dataclasses.dataclass
class ResourceData(_Mirror):
    additional_data: dict[str, Any] = dataclasses.field(default_factory=dict)
    odata_type: str | None = None

    @staticmethod
    def create_from_discriminator_value(parse_node: ParseNode) -> ResourceData:
        return ResourceData()

    def get_field_deserializers(self):
        return _fields(self, {"@odata.type": ("odata_type", lambda n: n.get_str_value())})


@dataclasses.dataclass
class ChangeNotificationEncryptedContent(_Mirror):
    additional_data: dict[str, Any] = dataclasses.field(default_factory=dict)

    @staticmethod
    def create_from_discriminator_value(parse_node: ParseNode) -> ChangeNotificationEncryptedContent:
        return ChangeNotificationEncryptedContent()

    def get_field_deserializers(self):
        names = ("data", "dataKey", "dataSignature", "encryptionCertificateId", "encryptionCertificateThumbprint", "@odata.type")
        return _fields(self, {name: (name, lambda n: n.get_str_value()) for name in names})


@dataclasses.dataclass
class ChangeNotification(_Mirror):
    additional_data: dict[str, Any] = dataclasses.field(default_factory=dict)

    @staticmethod
    def create_from_discriminator_value(parse_node: ParseNode) -> ChangeNotification:
        return ChangeNotification()

    def get_field_deserializers(self):
        return _fields(
            self,
            {
                "changeType": ("change_type", lambda n: n.get_enum_value(ChangeType)),
                "clientState": ("client_state", lambda n: n.get_str_value()),
                "encryptedContent": ("encrypted_content", lambda n: n.get_object_value(ChangeNotificationEncryptedContent)),
                "id": ("id", lambda n: n.get_str_value()),
                "lifecycleEvent": ("lifecycle_event", lambda n: n.get_enum_value(LifecycleEventType)),
                "@odata.type": ("odata_type", lambda n: n.get_str_value()),
                "resource": ("resource", lambda n: n.get_str_value()),
                "resourceData": ("resource_data", lambda n: n.get_object_value(ResourceData)),
                "subscriptionExpirationDateTime": ("subscription_expiration_date_time", lambda n: n.get_datetime_value()),
                "subscriptionId": ("subscription_id", lambda n: n.get_str_value()),
                "tenantId": ("tenant_id", lambda n: n.get_str_value()),
            },
        )


@dataclasses.dataclass
class ChangeNotificationCollection(_Mirror):
    additional_data: dict[str, Any] = dataclasses.field(default_factory=dict)

    @staticmethod
    def create_from_discriminator_value(parse_node: ParseNode) -> ChangeNotificationCollection:
        return ChangeNotificationCollection()

    def get_field_deserializers(self):
        return _fields(
            self,
            {
                "validationTokens": ("validation_tokens", lambda n: n.get_collection_of_primitive_values(str)),
                "value": ("value", lambda n: n.get_collection_of_object_values(ChangeNotification)),
            },
        )


try:  # a later SDK may ship them: then Microsoft's own classes are the ones checked
    from msgraph.generated.models.change_notification import ChangeNotification  # type: ignore[no-redef]  # the SDK's class replaces the stand-in above
    from msgraph.generated.models.change_notification_collection import (  # type: ignore[no-redef]  # as above
        ChangeNotificationCollection,
    )
    from msgraph.generated.models.resource_data import ResourceData  # type: ignore[no-redef]  # as above
except ImportError:
    pass


# -- the strict parse node -------------------------------------------------------------------------

_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,7})?)?(Z|[+-]\d\d:\d\d)?")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_TIME = re.compile(r"\d\d:\d\d(:\d\d(\.\d{1,7})?)?")


def _shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class StrictNode(JsonParseNode):
    """kiota's JSON parse node, reporting to ``problems`` every value its model does not describe."""

    def __init__(self, node: Any, path: str = "$", problems: list[str] | None = None):
        super().__init__(node)
        self.path = path
        self.problems = problems if problems is not None else []

    def _child(self, node: Any, path: str) -> StrictNode:
        return StrictNode(node, path, self.problems)

    def _create_new_node(self, node: Any) -> StrictNode:
        return self._child(node, self.path)

    def _wrong(self, expected: str) -> None:
        self.problems.append(f"{self.path}: expected {expected}, got {_shown(self._json_node)}")

    def _check(self, ok: bool, expected: str) -> bool:
        if not ok:
            self._wrong(expected)
        return ok

    def get_child_node(self, identifier: str):
        if isinstance(self._json_node, dict) and identifier in self._json_node:
            return self._child(self._json_node[identifier], f"{self.path}.{identifier}")
        return None

    # -- scalars

    def get_str_value(self):
        self._check(isinstance(self._json_node, str), "a string")
        return super().get_str_value()

    def get_bool_value(self):
        self._check(isinstance(self._json_node, bool), "true or false")
        return super().get_bool_value()

    def get_int_value(self):
        value = self._json_node
        self._check(isinstance(value, int) and not isinstance(value, bool), "an integer")
        return super().get_int_value()

    def get_float_value(self):
        value = self._json_node
        self._check(isinstance(value, (int, float)) and not isinstance(value, bool), "a number")
        return super().get_float_value()

    def get_datetime_value(self):
        value = self._json_node
        if self._check(isinstance(value, str) and bool(_DATE_TIME.fullmatch(value)), "an ISO 8601 date-time"):
            return super().get_datetime_value()
        return None

    def get_date_value(self):
        value = self._json_node
        if self._check(isinstance(value, str) and bool(_DATE.fullmatch(value)), "a date (YYYY-MM-DD)"):
            return super().get_date_value()
        return None

    def get_time_value(self):
        value = self._json_node
        if self._check(isinstance(value, str) and bool(_TIME.fullmatch(value)), "a time of day"):
            return super().get_time_value()
        return None

    def get_timedelta_value(self):
        value = self._json_node
        if self._check(isinstance(value, str) and value.startswith("P"), "an ISO 8601 duration"):
            result = super().get_timedelta_value()
            self._check(result is not None, "an ISO 8601 duration")
            return result
        return None

    def get_uuid_value(self):
        try:
            return uuid.UUID(self._json_node)
        except (TypeError, ValueError, AttributeError):
            self._wrong("a GUID")
            return None

    def get_bytes_value(self):
        try:
            return base64.b64decode(self._json_node, validate=True)
        except (TypeError, ValueError):
            self._wrong("base64 data")
            return None

    def get_enum_value(self, enum_class):
        value = super().get_enum_value(enum_class) if isinstance(self._json_node, str) else None
        if value is None:
            self._wrong("one of " + ", ".join(str(m.value) for m in enum_class))
        return value

    # -- structures

    def get_collection_of_primitive_values(self, primitive_type):
        if not self._check(isinstance(self._json_node, list), "an array"):
            return []
        readers = {
            str: "get_str_value",
            bool: "get_bool_value",
            int: "get_int_value",
            float: "get_float_value",
            uuid.UUID: "get_uuid_value",
            dt.datetime: "get_datetime_value",
            dt.date: "get_date_value",
        }
        return [getattr(self._child(item, f"{self.path}[{i}]"), readers[primitive_type])() for i, item in enumerate(self._json_node)]

    def get_collection_of_enum_values(self, enum_class):
        items = self._json_node
        if isinstance(items, str):  # a flags enum, sent as "a,b"
            items = [part.strip() for part in items.split(",")]
        if not self._check(isinstance(items, list), "an array"):
            return []
        return [self._child(item, f"{self.path}[{i}]").get_enum_value(enum_class) for i, item in enumerate(items)]

    def get_collection_of_object_values(self, factory):
        if not self._check(isinstance(self._json_node, list), "an array"):
            return []
        return [self._child(item, f"{self.path}[{i}]").get_object_value(factory) for i, item in enumerate(self._json_node)]

    def get_object_value(self, factory):
        is_object = self._check(isinstance(self._json_node, dict), "an object")
        result = super().get_object_value(factory)
        if is_object:
            self._unknown_properties(result)
            self._wrong_discriminator(result)
            for kind, attribute, rule, expected in FORMATS:
                value = getattr(result, attribute, None)
                if isinstance(result, kind) and value is not None and not rule(value):
                    self.problems.append(f"{self.path}: {attribute} expected {expected}, got {_shown(value)}")
        return result

    def _assign_field_values(self, item: Parsable) -> None:
        """As kiota does it, with each property's path known to its node."""
        if not isinstance(self._json_node, dict):
            return
        deserializers = item.get_field_deserializers()
        extra = item.additional_data if isinstance(item, AdditionalDataHolder) else None
        for name, value in self._json_node.items():
            if name in deserializers:
                if value is not None:  # kiota skips nulls: any property may be null
                    deserializers[name](self._child(value, f"{self.path}.{name}"))
            elif extra is not None:
                extra[name] = self.try_get_anything(value)
            else:
                self.problems.append(f"{self.path}.{name}: {type(item).__name__} keeps no additional data")

    def _unknown_properties(self, item: Parsable) -> None:
        allowed = OPEN_TYPE_PROPERTIES.get(type(item).__name__, set())
        for key, value in (getattr(item, "additional_data", None) or {}).items():
            if key == "@removed":
                if not (isinstance(value, dict) and set(value) == {"reason"} and value["reason"] in REMOVED_REASONS):
                    self.problems.append(f'{self.path}.@removed: expected {{"reason": "changed"|"deleted"}}, got {_shown(value)}')
            elif not is_annotation(key) and key not in allowed:
                self.problems.append(f"{self.path}.{key}: not a property of {type(item).__name__}")

    def _wrong_discriminator(self, item: Parsable) -> None:
        """An entity's @odata.type must name the model it was read as (kiota would pick a subclass)."""
        odata_type = getattr(item, "odata_type", None)
        if isinstance(item, Entity) and odata_type:
            name = type(item).__name__
            if odata_type.casefold() != f"#microsoft.graph.{name[0].lower()}{name[1:]}".casefold():
                self.problems.append(f"{self.path}.@odata.type: {odata_type!r} read as {name}")


def _csv_subset(allowed: set[str]):
    def rule(value: str) -> bool:
        parts = [p.strip() for p in value.split(",")]
        return bool(value) and len(parts) == len(set(parts)) and set(parts) <= allowed

    return rule


def _guid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


# Plain strings in the models whose format the docs give: (model, attribute, rule, what is expected).
FORMATS = [
    # graph/api/resources/datetimetimezone: "A single point of time in a combined date and time
    # representation ({date}T{time}; for example, 2017-08-29T04:00:00.0000000)" -- no offset.
    (
        DateTimeTimeZone,
        "date_time",
        lambda v: bool(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?", v)),
        "{date}T{time} without an offset",
    ),
    (DateTimeTimeZone, "time_zone", lambda v: bool(v.strip()), "a time zone name"),
    # graph/api/resources/subscription: "created, updated, deleted ... combined using a comma-separated list".
    (Subscription, "change_type", _csv_subset({"created", "updated", "deleted"}), "a list of created,updated,deleted"),
    (Subscription, "latest_supported_tls_version", lambda v: v in {"v1_0", "v1_1", "v1_2", "v1_3"}, "v1_0 ... v1_3"),
    (Subscription, "notification_url", lambda v: v.startswith(("https://", "http://")), "a URL"),
    (Subscription, "lifecycle_notification_url", lambda v: v.startswith(("https://", "http://")), "a URL"),
    (Subscription, "id", _guid, "a GUID"),
    # graph/api/resources/changenotification: subscriptionId and tenantId are GUIDs in every example.
    (ChangeNotification, "subscription_id", _guid, "a GUID"),
    (ChangeNotification, "tenant_id", _guid, "a GUID"),
]


def problems_in(payload: Any, model: type) -> list[str]:
    """What of ``payload`` the msgraph model ``model`` does not describe (an empty list: all of it)."""
    node = StrictNode(payload)
    node.get_object_value(model)
    return node.problems


# -- which model describes which exchange -----------------------------------------------------------

_ME = r"/v1\.0/me"
_CALENDAR = rf"{_ME}(?:/calendars/[^/]+|/calendar)?"
# name: (method, path, model of the request body, model of a successful answer)
ROUTES = {
    "me": ("GET", rf"{_ME}", None, User),
    "calendars": ("GET", rf"{_ME}/calendars", None, CalendarCollectionResponse),
    "calendar": ("GET", rf"{_ME}/calendars/[^/]+", None, Calendar),
    "delta": ("GET", rf"{_ME}/calendars/[^/]+/calendarView/delta", None, CalendarsCalendarViewDeltaResponse),
    "delta of the default calendar": ("GET", rf"{_ME}/calendarView/delta", None, CalendarViewDeltaResponse),
    "events": ("GET", rf"{_CALENDAR}/events", None, EventCollectionResponse),
    "create event": ("POST", rf"{_CALENDAR}/events", Event, Event),
    "event": ("GET", rf"{_CALENDAR}/events/[^/]+", None, Event),
    "update event": ("PATCH", rf"{_CALENDAR}/events/[^/]+", Event, Event),
    "delete event": ("DELETE", rf"{_CALENDAR}/events/[^/]+", None, None),
    "subscribe": ("POST", r"/v1\.0/subscriptions", Subscription, Subscription),
    "subscriptions": ("GET", r"/v1\.0/subscriptions", None, SubscriptionCollectionResponse),
    "subscription": ("GET", r"/v1\.0/subscriptions/[^/]+", None, Subscription),
    "renew": ("PATCH", r"/v1\.0/subscriptions/[^/]+", Subscription, Subscription),
    "unsubscribe": ("DELETE", r"/v1\.0/subscriptions/[^/]+", None, None),
}


def route_of(method: str, path: str) -> tuple[str, type | None, type | None]:
    """(route name, request model, answer model) of a Graph request."""
    bare = path.split("?", 1)[0]
    for name, (verb, pattern, request, answer) in ROUTES.items():
        if verb == method and re.fullmatch(pattern, bare, flags=re.IGNORECASE):
            return name, request, answer
    raise AssertionError(f"no msgraph model is known for {method} {bare}: add it to ROUTES")


def exchange_problems(calls: list[Call]) -> list[str]:
    """Every request body and JSON answer of ``calls`` (``GraphFake.calls``) checked against its model."""
    found = []
    for call in calls:
        _, request_model, answer_model = route_of(call.method, call.path)
        if call.status >= 400:
            answer_model = ODataError
        where = f"{call.method} {call.path} -> {call.status}"
        for side, body, model in (("request", call.body, request_model), ("answer", call.response, answer_model)):
            if body is None:
                continue
            if model is None:
                found.append(f"{where} {side}: a JSON body where Graph documents none")
                continue
            found += [f"{where} {side} {p}" for p in problems_in(body, model)]
    return found


def covered(graph: GraphFake) -> set[tuple[str, int]]:
    """(route name, status) of every Graph request the fake answered."""
    return {(route_of(c.method, c.path)[0], c.status) for c in graph.calls}


def _bodies(graph: GraphFake, route: str, side: str = "response") -> list:
    return [getattr(c, side) for c in graph.calls if getattr(c, side) is not None and route_of(c.method, c.path)[0] == route]


# -- calsync's Microsoft provider, driven against the fake --------------------------------------------


@pytest.fixture
def ada(tmp_path, graph):
    with started(
        web_env(
            tmp_path,
            CALSYNC_MICROSOFT_CLIENT_ID=graph.client_id,
            CALSYNC_MICROSOFT_CLIENT_SECRET=graph.client_secret,
            CALSYNC_MICROSOFT_AUTH_URL=graph.authorize_url,
            CALSYNC_MICROSOFT_TOKEN_URL=graph.token_url,
            CALSYNC_MICROSOFT_API_URL=graph.api_url,
        )
    ) as rt:
        actions.add_staff(rt, EMAIL, "Ada Lovelace", timezone="Europe/Berlin")
        yield Ada(rt, graph)


def _provider(ada: Ada):
    return ada.rt.provider_for(m.Connection.get_by_id(ada.conn_id))


def test_signing_in_and_reading_busy_time_speak_only_what_graphs_models_describe(ada, graph):
    graph.page_size = 2  # calendars and the first delta round come in pages
    graph.add_calendar("Team (shared with me)", can_edit=False)
    graph.add_calendar("Birthdays", can_edit=False)
    start = soon(3, 14)
    dentist = graph.add_event("Dentist", start, start + HOUR, location="Main street 1", body="Bring the card")
    focus = graph.add_event("Focus time", start + 2 * HOUR, start + 3 * HOUR, show_as="free")
    graph.add_event("Conference", soon(4, 0), soon(5, 0), all_day=True)
    graph.add_event("Lunch (cancelled)", start + 4 * HOUR, start + 5 * HOUR, cancelled=True)
    graph.add_event("Berlin call", start + 6 * HOUR, start + 7 * HOUR, zone="W. Europe Standard Time")
    standup = graph.add_event("Team standup", soon(1, 8), soon(1, 8) + HOUR / 2, recurrence=weekly(3))
    assert ada.connect()["status"] == "active"
    assert ada.sync()["outcome"] == "ok"  # a quiet incremental round

    graph.edit_event(dentist, subject="Dentist (moved)", start=start + HOUR, end=start + 2 * HOUR)
    graph.edit_event(focus, start=soon(200, 9), end=soon(200, 10))  # out of the window: @removed
    graph.delete_event(standup)
    assert ada.sync()["outcome"] == "ok"

    assert exchange_problems(graph.calls) == []
    assert {("me", 200), ("calendars", 200), ("delta", 200), ("event", 404)} <= covered(graph)
    assert any("$deltatoken=" in c.query_text for c in graph.calls if c.path.endswith("/calendarView/delta"))
    deltas = _bodies(graph, "delta")
    assert any("@odata.nextLink" in page for page in deltas) and any("@odata.deltaLink" in page for page in deltas)
    assert any("@removed" in row for page in deltas for row in page["value"])
    assert any(row.get("type") == "occurrence" for page in deltas for row in page["value"])


_ALL_DAY = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:day-off@calsync\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20300102\r\nDTEND;VALUE=DATE:20300103\r\n"
    "SUMMARY:Day off\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_writing_appointments_sends_only_what_graphs_models_describe(ada, graph):
    ada.connect()
    booked = ada.book(soon(2, 10), "Intro call", description="Bring the contract", location="Room 4")
    assert ada.sync()["created"] == 1
    assert ada.sync()["outcome"] == "ok"  # the delta lists our event: read again with the property expanded

    provider = _provider(ada)
    link_href = m.AppointmentLink.get().href
    current = provider.get(link_href)
    moved = current.data.replace("SUMMARY:Intro call", "SUMMARY:Intro call (moved)")
    with pytest.raises(PreconditionFailed):
        provider.update(link_href, moved, 'W/"an-older-version"')
    etag = provider.update(link_href, moved, current.etag)
    provider.delete(link_href, etag)
    with pytest.raises(NotFound):
        provider.get(link_href)
    provider.create(graph.default_calendar_id, "day-off@calsync", _ALL_DAY)
    graph.expire_delta_tokens()
    assert ada.sync()["outcome"] == "ok"  # a full round: one listing of calsync's own events ($select, $top)

    assert exchange_problems(graph.calls) == []
    assert {
        ("events", 200),
        ("create event", 201),
        ("event", 200),
        ("update event", 200),
        ("update event", 412),
        ("delete event", 204),
        ("event", 404),
    } <= covered(graph)
    posted = _bodies(graph, "create event", "body")
    assert all(body["transactionId"].startswith("calsync-") for body in posted)
    assert {p["id"] for body in posted for p in body["singleValueExtendedProperties"]} >= {
        "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name calsyncUid"
    }
    assert any(body["isAllDay"] for body in posted) and booked["id"]


def test_every_break_is_answered_in_graphs_error_shape(ada, graph):
    ada.connect()
    graph.expire_delta_tokens()
    assert ada.sync()["outcome"] == "ok"  # 410: a full resync
    graph.fail_next(1, 429, retry_after="0")
    assert ada.sync()["outcome"] == "ok"
    graph.fail_next(2, 503, retry_after="0")
    assert ada.sync()["outcome"] == "transient"
    graph.set_can_edit(False)
    ada.book(soon(), "Intro call")
    assert ada.sync()["status"] == "read_only"  # known from canEdit, before any write
    with pytest.raises(WriteForbidden):  # a write tried anyway: 403
        _provider(ada).create(graph.default_calendar_id, "x@calsync", _ALL_DAY)
    graph.set_can_edit(True)
    graph.expire_access_tokens()
    assert ada.sync()["status"] == "active"  # a 401, then a renewed token
    graph.delete_calendar()
    assert ada.sync()["status"] == "calendar_missing"
    graph.revoke_grant()
    ada.sync()

    assert exchange_problems(graph.calls) == []
    statuses = {status for _, status in covered(graph)}
    assert {401, 403, 404, 410, 429, 503} <= statuses
    errors = [c.response["error"]["code"] for c in graph.calls if c.status >= 400]
    assert {
        "syncStateNotFound",
        "TooManyRequests",
        "ServiceNotAvailable",
        "ErrorAccessDenied",
        "InvalidAuthenticationToken",
        "ErrorItemNotFound",
    } <= set(errors)


# -- the checker itself ---------------------------------------------------------------------------

_EVENT = {  # an event as graph/api/resources/event shows one
    "@odata.etag": 'W/"ZlnW4RIAV06KYYwlrfNZvQAALfZeRQ=="',
    "id": "AAMkAGI1AAAt9AHjAAA=",
    "subject": "Dentist",
    "showAs": "busy",
    "isAllDay": False,
    "reminderMinutesBeforeStart": 15,
    "createdDateTime": "2026-05-01T08:00:00.1234567Z",
    "start": {"dateTime": "2026-05-01T10:00:00.0000000", "timeZone": "UTC"},
    "end": {"dateTime": "2026-05-01T11:00:00.0000000", "timeZone": "UTC"},
    "attendees": [],
    "singleValueExtendedProperties": [{"id": "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name calsyncUid", "value": "x"}],
}
_NOTE = {
    "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
    "subscriptionExpirationDateTime": "2026-05-03T11:00:00Z",
    "changeType": "created",
    "resource": "Users/u/Events/e",
    "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
    "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": "Users/u/Events/e", "id": "e"},
}
_SUBSCRIPTION = {
    "id": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
    "changeType": "created,updated",
    "notificationUrl": "https://hooks.example/push",
    "resource": "me/events",
    "expirationDateTime": "2026-05-03T11:00:00.0000000Z",
    "latestSupportedTlsVersion": "v1_2",
}


@pytest.mark.parametrize(
    "payload, model, expected",
    [
        ({**_EVENT, "subjekt": "Dentist"}, Event, "$.subjekt: not a property of Event"),
        (
            {**_EVENT, "start": {"dateTme": "2026-05-01T10:00:00", "timeZone": "UTC"}},
            Event,
            "$.start.dateTme: not a property of DateTimeTimeZone",
        ),
        ({**_EVENT, "showAs": "bussy"}, Event, "$.showAs: expected one of unknown, free, tentative, busy, oof, workingElsewhere"),
        ({**_EVENT, "isAllDay": "false"}, Event, '$.isAllDay: expected true or false, got "false"'),
        ({**_EVENT, "reminderMinutesBeforeStart": "15"}, Event, "$.reminderMinutesBeforeStart: expected an integer"),
        ({**_EVENT, "subject": 42}, Event, "$.subject: expected a string"),
        ({**_EVENT, "start": "2026-05-01T10:00:00"}, Event, "$.start: expected an object"),
        ({**_EVENT, "attendees": {}}, Event, "$.attendees: expected an array"),
        (
            {**_EVENT, "end": {"dateTime": "2026-05-01T11:00:00Z", "timeZone": "UTC"}},
            Event,
            "$.end: date_time expected {date}T{time} without an offset",
        ),
        ({**_EVENT, "end": {"dateTime": "2026-05-01T11:00:00", "timeZone": ""}}, Event, "$.end: time_zone expected"),
        ({**_EVENT, "createdDateTime": "yesterday"}, Event, "$.createdDateTime: expected an ISO 8601 date-time"),
        ({**_EVENT, "@odata.type": "#microsoft.graph.calendar"}, Event, "'#microsoft.graph.calendar' read as Event"),
        (
            {**_EVENT, "singleValueExtendedProperties": [{"id": "String x", "vaule": "x"}]},
            Event,
            "$.singleValueExtendedProperties[0].vaule: not a property of SingleValueLegacyExtendedProperty",
        ),
        ({"value": [{"id": "e", "@removed": {"reason": "gone"}}]}, CalendarsCalendarViewDeltaResponse, "$.value[0].@removed: expected"),
        (
            {"value": [], "@odata.deltalink": "https://graph.microsoft.com/v1.0/me/calendarView/delta?$deltatoken=x"},
            CalendarsCalendarViewDeltaResponse,
            "$.@odata.deltalink: not a property of DeltaGetResponse",
        ),
        (
            {"error": {"code": "ErrorItemNotFound", "message": "gone", "innerErorr": {}}},
            ODataError,
            "$.error.innerErorr: not a property of MainError",
        ),
        ({**_SUBSCRIPTION, "changeType": "created,modified"}, Subscription, "change_type expected a list of created,updated,deleted"),
        ({**_SUBSCRIPTION, "includeResourceData": "no"}, Subscription, "$.includeResourceData: expected true or false"),
        (
            {**_SUBSCRIPTION, "notificationContentType": "application/json"},
            Subscription,
            "$.notificationContentType: not a property of Subscription",
        ),
        (
            {"value": [{**_NOTE, "changeType": "modified"}]},
            ChangeNotificationCollection,
            "$.value[0].changeType: expected one of created, updated, deleted",
        ),
        (
            {"value": [{**_NOTE, "lifecycleEvent": "expired"}]},
            ChangeNotificationCollection,
            "$.value[0].lifecycleEvent: expected one of missed, subscriptionRemoved, reauthorizationRequired",
        ),
        ({"value": [{**_NOTE, "tenantId": "contoso"}]}, ChangeNotificationCollection, "$.value[0]: tenant_id expected a GUID"),
        (
            {"value": [{**_NOTE, "resourceData": {"Id": "e"}}]},
            ChangeNotificationCollection,
            "$.value[0].resourceData.Id: not a property of ResourceData",
        ),
        ({"value": {"subscriptionId": "x"}}, ChangeNotificationCollection, "$.value: expected an array"),
    ],
)
def test_the_checker_reports_what_graphs_models_do_not_describe(payload, model, expected):
    found = problems_in(payload, model)
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize(
    "payload, model",
    [
        (_EVENT, Event),
        (
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
                "value": [_EVENT, {"@odata.type": "#microsoft.graph.event", "id": "gone", "@removed": {"reason": "deleted"}}],
                "@odata.deltaLink": "https://graph.microsoft.com/v1.0/me/calendarView/delta?$deltatoken=x",
            },
            CalendarsCalendarViewDeltaResponse,
        ),
        (_SUBSCRIPTION, Subscription),
        (
            {
                "value": [
                    _NOTE,
                    {
                        **_NOTE,
                        "changeType": None,
                        "resource": None,
                        "resourceData": None,
                        "clientState": "s",
                        "lifecycleEvent": "reauthorizationRequired",
                    },
                ]
            },
            ChangeNotificationCollection,
        ),
        (
            {
                "error": {
                    "code": "TooManyRequests",
                    "message": "slow down",
                    "innerError": {"date": "2026-05-01T10:00:00", "request-id": "r", "client-request-id": "c"},
                }
            },
            ODataError,
        ),
    ],
)
def test_a_payload_that_fits_its_model_reports_nothing(payload, model):
    assert problems_in(payload, model) == []


def test_kiota_alone_accepts_what_the_checker_reports():
    """Why the strict node: kiota's own parse node neither raises nor says anything here."""
    garbage = {**_EVENT, "subjekt": "Dentist", "showAs": "bussy", "isAllDay": "false", "start": "tomorrow"}
    root = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(garbage).encode())
    event = root.get_object_value(Event)
    assert (event.show_as, event.is_all_day, event.start.date_time) == (None, None, None)
    assert list(event.additional_data) == ["@odata.etag", "subjekt"]
    assert len(problems_in(garbage, Event)) == 4


def test_a_graph_request_nobody_described_fails_loudly():
    with pytest.raises(AssertionError, match="no msgraph model is known for GET /v1.0/me/contacts"):
        route_of("GET", "/v1.0/me/contacts")
    assert route_of("GET", "/v1.0/me/calendars/AAMk=/calendarView/delta?$deltatoken=x")[0] == "delta"
