"""The Google fake and calsync's Google provider held to Google's own description of the Calendar API.

google-api-python-client ships the Calendar v3 discovery document (``calendar.v3.json``), the
machine-readable description Google generates its client libraries from. calsync runs its
normal Google paths against the fake (tests/fakes/google_api.py); afterwards every request
the fake recorded must name exactly one method of that document, with parameters and a JSON
body it describes, and every answer the fake gave must fit the method's response schema.
The checker is tested too: fed a request and an answer that break the description, it must
say so.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import pytest
import requests
from conftest import soon, started, web_env
from fakes.google_api import API_PREFIX, CALENDAR_SCOPE, Call, FakeGoogle
from test_google import EMAIL, Story, answer_consent

import models as m
from core import actions, clock

DOC = json.loads((resources.files("googleapiclient") / "discovery_cache" / "documents" / "calendar.v3.json").read_text("utf-8"))

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
JSON_TYPES: dict[str, tuple[type[Any], ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "object": (dict,),
    "array": (list,),
}
# guides/errors (the discovery document describes no error body): {"error": {"errors": [...],
# "code", "message"}}, each entry with domain, reason, message and sometimes where it points.
ERROR_FIELDS = {"errors": list, "code": int, "message": str, "status": str}
ERROR_ITEM_FIELDS = ("domain", "reason", "message", "location", "locationType", "extendedHelp", "sendReport")  # strings


class Description:
    """One discovery document: which method a request is, and whether a request or answer fits it."""

    def __init__(self, doc: dict):
        self.schemas = doc["schemas"]
        self.global_parameters = doc.get("parameters", {})
        # rootUrl + servicePath: https://www.googleapis.com/ + calendar/v3/ -> /calendar/v3
        self.prefix = (urlsplit(doc["rootUrl"]).path.rstrip("/") + "/" + doc["servicePath"]).rstrip("/")
        self.methods: list[dict] = []
        pending = list(doc.get("resources", {}).values())
        while pending:  # resources nest; the document is finite, so is this walk
            resource = pending.pop()
            self.methods += resource.get("methods", {}).values()
            pending += resource.get("resources", {}).values()
        for method in self.methods:
            if "{+" in (method.get("flatPath") or method["path"]):
                raise ValueError(f"{method['id']}: reserved expansion is not supported by this checker")

    def match(self, http_method: str, path: str) -> list[tuple[dict, dict]]:
        """Every (method, path parameters) the request's method and path fit."""
        if not path.startswith(self.prefix + "/"):
            return []
        segments = [unquote(s) for s in path[len(self.prefix) + 1 :].split("/")]
        found = []
        for method in self.methods:
            template = (method.get("flatPath") or method["path"]).split("/")
            if method["httpMethod"] != http_method or len(template) != len(segments):
                continue
            values = {}
            for want, got in zip(template, segments):
                if want.startswith("{") and want.endswith("}"):
                    if not got:
                        break
                    values[want[1:-1]] = got
                elif want != got:
                    break
            else:
                found.append((method, values))
        return found

    # -- requests --------------------------------------------------------------------

    def request_problems(self, call: Call) -> list[str]:
        matches = self.match(call.method, call.path)
        if len(matches) != 1:
            return [f"{call.method} {call.path}: matches {[m['id'] for m, _ in matches] or 'no method'}"]
        method, path_values = matches[0]
        name = method["id"]
        problems = []
        parameters = {**self.global_parameters, **method.get("parameters", {})}
        for param, spec in parameters.items():
            if spec.get("required") and spec.get("location") == "path" and not path_values.get(param):
                problems.append(f"{name}: required path parameter {param} missing")
        pairs = call.query_pairs or list(call.query.items())
        for param, count in Counter(p for p, _ in pairs).items():
            spec = parameters.get(param)
            if spec is None or spec.get("location", "query") != "query":
                problems.append(f"{name}: query parameter {param} is not in the description")
            elif count > 1 and not spec.get("repeated"):
                problems.append(f"{name}: query parameter {param} given {count} times, not repeated")
        for param, value in pairs:
            spec = parameters.get(param)
            if spec is not None and spec.get("location", "query") == "query":
                problems += [f"{name}: query {param}={value!r}: {p}" for p in self._query_value(value, spec)]
        for param, spec in parameters.items():
            if spec.get("required") and spec.get("location") == "query" and param not in dict(pairs):
                problems.append(f"{name}: required query parameter {param} missing")
        request = method.get("request")
        if request and call.body is not None:
            problems += self.conform(call.body, request, f"{name} request", response=False)
        elif call.body is not None:
            problems.append(f"{name}: a request body where the description has none")
        return problems

    @staticmethod
    def _query_value(value: str, spec: dict) -> list[str]:
        kind = spec.get("type", "string")
        if kind == "boolean":
            return [] if value in ("true", "false") else ["not a boolean"]
        if kind == "integer":
            if not re.fullmatch(r"-?\d+", value):
                return ["not an integer"]
            low, high = spec.get("minimum"), spec.get("maximum")
            if low is not None and int(value) < int(low):
                return [f"below the minimum {low}"]
            if high is not None and int(value) > int(high):
                return [f"above the maximum {high}"]
            return []
        if spec.get("enum") and value not in spec["enum"]:
            return [f"not one of {spec['enum']}"]
        if spec.get("format") == "date-time" and not _is_rfc3339(value):
            return ["not an RFC 3339 date-time"]
        return []

    # -- answers ---------------------------------------------------------------------

    def response_problems(self, call: Call) -> list[str]:
        matches = self.match(call.method, call.path)
        if len(matches) != 1:
            return []  # reported by request_problems
        method = matches[0][0]
        name = method["id"]
        if call.status is None:
            return [f"{name}: no answer recorded"]
        if call.status >= 400:
            return [f"{name} {call.status}: {p}" for p in error_problems(call.status, call.response)]
        if "response" not in method:
            # events.delete, channels.stop: the description has no response body (Google sends 204).
            return [] if call.response is None else [f"{name}: a body where the description has none"]
        if call.response is None:
            return [f"{name}: no body where the description has {method['response']['$ref']}"]
        return self.conform(call.response, method["response"], f"{name} response", response=True)

    # -- schemas ---------------------------------------------------------------------

    def conform(self, value, schema: dict, where: str, *, response: bool) -> list[str]:
        """What in ``value`` the schema does not describe (``$ref`` followed, maps included)."""
        if "$ref" in schema:
            return self.conform(value, self.schemas[schema["$ref"]], where, response=response)
        kind = schema.get("type", "any")
        if kind == "any":
            return []
        wanted = JSON_TYPES[kind]
        if not isinstance(value, wanted) or (kind in ("integer", "number") and isinstance(value, bool)):
            hint = " (int64 is a JSON string)" if schema.get("format") in ("int64", "uint64") else ""
            return [f"{where}: {type(value).__name__} where the description has {kind}{hint}"]
        problems = [f"{where}: {p}" for p in _format_problems(value, schema)]
        if schema.get("enum") and value not in schema["enum"]:
            problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
        if kind == "array":
            for index, item in enumerate(value):
                problems += self.conform(item, schema.get("items", {}), f"{where}[{index}]", response=response)
        if kind == "object":
            properties = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                if key in properties:
                    problems += self.conform(item, properties[key], f"{where}.{key}", response=response)
                elif extra is not None:
                    problems += self.conform(item, extra, f"{where}[{key!r}]", response=response)
                else:
                    problems.append(f"{where}.{key}: not in the description ({schema.get('id', 'object')})")
            kind_default = properties.get("kind", {}).get("default")
            if response and kind_default and value.get("kind") != kind_default:
                problems.append(f"{where}.kind: {value.get('kind')!r}, the description says {kind_default!r}")
        return problems


def _is_rfc3339(value: str) -> bool:
    if not RFC3339.match(value):
        return False
    try:
        dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return True


def _format_problems(value, schema: dict) -> list[str]:
    fmt = schema.get("format")
    if fmt in ("int64", "uint64"):
        return [] if re.fullmatch(r"-?\d+" if fmt == "int64" else r"\d+", value) else [f"{value!r} is not an {fmt}"]
    if fmt == "int32" and not -(2**31) <= value < 2**31:
        return [f"{value} is not an int32"]
    if fmt == "date-time" and not _is_rfc3339(value):
        return [f"{value!r} is not an RFC 3339 date-time"]
    if fmt == "date":
        try:
            ok = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)) and dt.date.fromisoformat(value) is not None
        except ValueError:
            ok = False
        return [] if ok else [f"{value!r} is not a date"]
    return []


def error_problems(status: int, body) -> list[str]:
    """What in an error answer differs from the shape in developers.google.com/calendar/api/guides/errors."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(body) != {"error"}:
        return [f"not Google's error shape: {body!r}"]
    problems = [f"error.{key}: not in Google's error shape" for key in set(error) - set(ERROR_FIELDS)]
    problems += [f"error.{key}: missing" for key in ("errors", "code", "message") if key not in error]
    problems += [
        f"error.{key}: not a {kind.__name__}"
        for key, kind in ERROR_FIELDS.items()
        if key in error and (not isinstance(error[key], kind) or isinstance(error[key], bool))
    ]
    if error.get("code") != status:
        problems.append(f"error.code {error.get('code')!r} is not the HTTP status {status}")
    entries = error.get("errors")
    for index, item in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(item, dict):
            problems.append(f"error.errors[{index}]: not an object")
            continue
        where = f"error.errors[{index}]"
        problems += [f"{where}.{key}: not in Google's error shape" for key in set(item) - set(ERROR_ITEM_FIELDS)]
        problems += [f"{where}.{key}: missing" for key in ("domain", "reason", "message") if key not in item]
        problems += [f"{where}.{key}: not a string" for key in item if key in ERROR_ITEM_FIELDS and not isinstance(item[key], str)]
    return problems


DESCRIPTION = Description(DOC)


def traffic_problems(calls: list[Call]) -> list[str]:
    problems = []
    for call in calls:
        problems += DESCRIPTION.request_problems(call) + DESCRIPTION.response_problems(call)
    return problems


def methods_called(calls: list[Call]) -> Counter:
    matched = [DESCRIPTION.match(c.method, c.path) for c in calls]
    return Counter(found[0][0]["id"] for found in matched if found)


# -- the checker can fail ----------------------------------------------------------------------


def test_the_fake_serves_the_description_root_and_the_checker_finds_each_method():
    assert DESCRIPTION.prefix == API_PREFIX == "/calendar/v3"
    assert [m["id"] for m, _ in DESCRIPTION.match("POST", "/calendar/v3/calendars/a%40b.c/events/watch")] == ["calendar.events.watch"]
    ((method, values),) = DESCRIPTION.match("GET", "/calendar/v3/calendars/a%40b.c/events/cs1%2F2")
    assert method["id"] == "calendar.events.get" and values == {"calendarId": "a@b.c", "eventId": "cs1/2"}
    assert DESCRIPTION.match("GET", "/calendar/v3/calendars/a/events/x/y/z") == []
    assert DESCRIPTION.match("GET", "/calendar/v4/users/me/calendarList") == []


def test_the_checker_reports_each_way_a_request_or_answer_breaks_the_description():
    wrong_request = Call(
        "PATCH",
        "/calendar/v3/calendars/a%40b.c/events/cs1",
        query={},
        headers={},
        status=200,
        query_pairs=[
            ("sendUpdates", "everyone"),
            ("maxAttendees", "0"),
            ("colour", "red"),
            ("alwaysIncludeEmail", "yes"),
            ("sendUpdates", "all"),
        ],
        body={
            "summary": "x",
            "start": {"dateTime": "tomorrow"},
            "transparency": 1,
            "reminder": True,
            "extendedProperties": {"private": {"calsyncUid": 7}},
        },
        response={
            "kind": "calendar#events",
            "id": "cs1",
            "sequence": "1",
            "sumary": "x",
            "updated": "yesterday",
            "start": {"date": "2024-02-30"},
        },
    )
    found = DESCRIPTION.request_problems(wrong_request)
    expected = [
        "query parameter colour is not in the description",
        "query parameter sendUpdates given 2 times",
        "sendUpdates='everyone': not one of",
        "maxAttendees='0': below the minimum 1",
        "alwaysIncludeEmail='yes': not a boolean",
        "request.start.dateTime: 'tomorrow' is not an RFC 3339 date-time",
        "request.transparency: int where the description has string",
        "request.reminder: not in the description (Event)",
        "request.extendedProperties.private['calsyncUid']: int where the description has string",
    ]
    for text in expected:
        assert any(text in problem for problem in found), (text, found)
    assert len(found) == len(expected), found

    answer = DESCRIPTION.response_problems(wrong_request)
    expected = [
        "response.kind: 'calendar#events', the description says 'calendar#event'",
        "response.sequence: str where the description has integer",
        "response.sumary: not in the description (Event)",
        "response.updated: 'yesterday' is not an RFC 3339 date-time",
        "response.start.date: '2024-02-30' is not a date",
    ]
    for text in expected:
        assert any(text in problem for problem in answer), (text, answer)
    assert len(answer) == len(expected), answer

    channel = Call(
        "POST",
        "/calendar/v3/calendars/primary/events/watch",
        {},
        {},
        body={"id": "c", "type": "web_hook"},
        status=200,
        response={"kind": "api#channel", "id": "c", "expiration": 1700000000000},
    )
    assert DESCRIPTION.response_problems(channel) == [
        "calendar.events.watch response.expiration: int where the description has string (int64 is a JSON string)"
    ]
    unknown = Call("POST", "/calendar/v3/calendars/primary/events", {}, {}, status=200)
    unknown.method = "PUT"
    assert DESCRIPTION.request_problems(unknown) == ["PUT /calendar/v3/calendars/primary/events: matches no method"]
    stopped = Call("POST", "/calendar/v3/channels/stop", {}, {}, body={"id": "c"}, status=204, response={"ok": True})
    assert DESCRIPTION.response_problems(stopped) == ["calendar.channels.stop: a body where the description has none"]


def test_the_checker_reports_an_error_body_that_is_not_googles_shape():
    not_found = {"domain": "global", "reason": "notFound", "message": "Not Found"}
    assert error_problems(404, {"error": {"errors": [not_found], "code": 404, "message": "Not Found"}}) == []
    assert error_problems(404, {"error": "not_found"}) == ["not Google's error shape: {'error': 'not_found'}"]
    found = error_problems(410, {"error": {"errors": [{"reason": "deleted", "message": 3, "why": "x"}], "code": 404}})
    assert sorted(found) == sorted(
        [
            "error.message: missing",
            "error.code 404 is not the HTTP status 410",
            "error.errors[0].why: not in Google's error shape",
            "error.errors[0].domain: missing",
            "error.errors[0].message: not a string",
        ]
    )


def signed_in(google: FakeGoogle, scope: str = CALENDAR_SCOPE) -> requests.Session:
    """A session with an access token from the fake's own consent and token endpoints."""
    redirect = "http://127.0.0.1/callback"
    consent = (
        google.url
        + "/o/oauth2/v2/auth?"
        + urlencode(
            {"client_id": google.client_id, "response_type": "code", "redirect_uri": redirect, "scope": scope, "access_type": "offline"}
        )
    )
    code = answer_consent(google, consent)["code"]
    token = requests.post(
        google.url + "/token",
        timeout=5,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": google.client_id,
            "client_secret": google.client_secret,
        },
    ).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


# -- calsync's traffic -------------------------------------------------------------------------


@pytest.fixture
def story(tmp_path, google):
    with started(web_env(tmp_path, **google.env())) as rt:
        actions.add_staff(rt, EMAIL, "Ada Lovelace", timezone="Europe/Berlin")
        yield Story(rt, google)


def test_calsync_google_traffic_and_the_fake_answers_keep_to_the_description(story, google):
    google.add_calendar("team-holidays@group.calendar.google.com", "Team holidays", role="reader")
    google.add_calendar("grace@example.com", "grace@example.com", role="freeBusyReader", summary_override="Grace")
    start = soon(1, 8)
    google.add_event(
        EMAIL, "Team standup", start, start + dt.timedelta(minutes=30), recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"], description="Weekly"
    )
    google.add_event(EMAIL, "Conference", soon(5), soon(6), all_day=True)
    google.add_event(EMAIL, "Focus", soon(3, 9), soon(3, 11), transparent=True)
    google.add_event("grace@example.com", "Grace busy", soon(2, 15), soon(2, 16))
    booked = story.book(soon(2, 10), subject="Intro call")

    assert story.connect()["status"] == "active"  # calendarList get + list, full listings, the insert
    for shared in ("Team holidays", "Grace"):  # not the account's own: read once turned on, so their listings are checked too
        actions.set_calendar_roles(story.rt, story.conn_id, shared, busy=True)
    lunch = google.add_event(EMAIL, "Lunch", soon(2, 12), soon(2, 13))
    assert story.sync()["outcome"] == "ok"  # incremental, with syncToken
    actions.upsert_appointment(story.rt, booked["id"], EMAIL, soon(2, 11).isoformat(), soon(2, 12).isoformat(), "Intro call (moved)")
    assert story.sync()["updated"] == 1  # PATCH with If-Match
    google.delete_event(EMAIL, lunch)
    google.invalidate_sync_tokens()
    assert story.sync()["outcome"] == "ok"  # 410 fullSyncRequired, then a full listing
    google.expire_access_tokens()
    assert story.sync()["outcome"] == "ok"  # 401 authError, a refresh, the same call again
    google.fail_next(2, 429, "rateLimitExceeded")
    assert story.sync()["outcome"] == "transient"
    google.fail_next(1, 403, "userRateLimitExceeded")
    assert story.sync()["outcome"] == "transient"
    actions.cancel_appointment(story.rt, booked["id"])
    assert story.sync()["outcome"] == "ok"  # DELETE with If-Match
    second = story.book(soon(1, 15), subject="Follow-up")
    assert story.sync()["created"] == 1
    # Our event left the window: the full listing misses it and calsync reads it by id.
    later = clock.now() + dt.timedelta(days=story.rt.settings.sync_past_days + 5)
    clock.set_now(lambda: later)
    google.invalidate_sync_tokens()
    assert story.sync()["outcome"] == "ok"
    assert m.Appointment.get(m.Appointment.external_id == second["id"]).cancelled is False

    # Push, with calsync's own token (the watching code is not in this provider): a channel, a
    # refused second one with the same id, and the stop. Nothing listens on the address.
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {google.current_access_tokens()[0]}"
    base = google.url + API_PREFIX
    channel = {
        "id": "calsync-1",
        "type": "web_hook",
        "address": "http://127.0.0.1:9/push/google",
        "token": "connection=1",
        "params": {"ttl": "3600"},
    }
    watched = session.post(f"{base}/calendars/{EMAIL}/events/watch", json=channel, timeout=5).json()
    assert session.post(f"{base}/calendars/{EMAIL}/events/watch", json=channel, timeout=5).status_code == 400
    stop = {"id": watched["id"], "resourceId": watched["resourceId"]}
    assert session.post(f"{base}/channels/stop", json=stop, timeout=5).status_code == 204

    called = methods_called(google.calls)
    for method in (
        "calendarList.get",
        "calendarList.list",
        "events.list",
        "events.insert",
        "events.patch",
        "events.delete",
        "events.get",
        "events.watch",
        "channels.stop",
    ):
        assert called["calendar." + method], (method, called)
    statuses = Counter(c.status for c in google.calls)
    assert {200, 204, 400, 401, 403, 410, 429} <= set(statuses), statuses
    assert traffic_problems(google.calls) == []


def test_the_fakes_other_answers_keep_to_the_description(google):
    """What calsync's paths do not reach: pages, PUT, instances, tombstones, the errors guide's bodies."""
    api = signed_in(google)
    base = google.url + API_PREFIX
    events = f"{base}/calendars/{EMAIL}/events"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    series = google.add_event(
        EMAIL, "Daily", now + dt.timedelta(days=1), now + dt.timedelta(days=1, hours=1), recurrence=["RRULE:FREQ=DAILY;COUNT=3"]
    )
    one = google.add_event(EMAIL, "One", now + dt.timedelta(days=2), now + dt.timedelta(days=2, hours=1), private={"calsyncUid": "u1"})
    google.add_calendar("busy@example.com", "Busy", role="freeBusyReader")
    google.add_event("busy@example.com", "Private", now, now + dt.timedelta(hours=1), description="secret")
    google.add_calendar("read@example.com", "Read", role="reader")

    first = api.get(f"{base}/users/me/calendarList", params={"maxResults": 1}, timeout=5).json()
    api.get(f"{base}/users/me/calendarList", params={"pageToken": first["nextPageToken"]}, timeout=5)
    page = api.get(events, params={"maxResults": 2, "singleEvents": "true"}, timeout=5).json()
    api.get(events, params={"pageToken": page["nextPageToken"], "maxResults": 2, "singleEvents": "true"}, timeout=5)
    api.get(f"{base}/calendars/busy@example.com/events", timeout=5)
    instance = f"{series}_{(now + dt.timedelta(days=1)).strftime('%Y%m%dT%H%M%SZ')}"
    api.get(f"{events}/{instance}", timeout=5)
    current = api.get(f"{events}/{one}", timeout=5).json()
    put = api.put(f"{events}/{one}", json={"summary": "One, renamed", "start": current["start"], "end": current["end"]}, timeout=5)
    refused_put = api.put(f"{events}/{one}", json={"summary": "no times"}, timeout=5)
    assert (put.status_code, refused_put.status_code) == (200, 400)
    assert api.get(f"{events}/{one}", timeout=5).json()["summary"] == "One, renamed"  # a refused PUT changes nothing
    api.patch(f"{events}/{one}", json={"summary": "x"}, headers={"If-Match": '"stale"'}, timeout=5)
    api.post(events, json={"id": one, "summary": "again", "start": current["start"], "end": current["end"]}, timeout=5)
    api.post(
        f"{base}/calendars/read@example.com/events", json={"summary": "no", "start": current["start"], "end": current["end"]}, timeout=5
    )
    api.delete(f"{events}/{series}", timeout=5)
    api.get(events, params={"singleEvents": "true", "showDeleted": "true"}, timeout=5)  # cancelled instances
    api.get(f"{events}/{series}", timeout=5)  # a tombstone
    api.delete(f"{events}/{series}", timeout=5)  # 410 deleted
    api.get(events, params={"timeMin": now.isoformat(), "timeMax": now.isoformat()}, timeout=5)  # 400 timeRangeEmpty
    api.get(events, params={"syncToken": "stale"}, timeout=5)  # 410 fullSyncRequired
    api.get(f"{base}/calendars/nobody@example.com/events", timeout=5)  # 404
    requests.get(f"{base}/users/me/calendarList", timeout=5)  # 401

    statuses = Counter(c.status for c in google.calls)
    assert {200, 204, 400, 401, 403, 404, 409, 410, 412} <= set(statuses), statuses
    assert traffic_problems(google.calls) == []


def test_the_fake_refuses_parameters_the_description_types_otherwise(google):
    api = signed_in(google)
    base = google.url + API_PREFIX
    for url, params in [
        (f"{base}/users/me/calendarList", {"maxResults": "0"}),
        (f"{base}/calendars/{EMAIL}/events", {"maxResults": "many"}),
        (f"{base}/calendars/{EMAIL}/events", {"singleEvents": "yes"}),
        (f"{base}/calendars/{EMAIL}/events", {"syncToken": "t", "privateExtendedProperty": "a=b"}),
    ]:
        answer = api.get(url, params=params, timeout=5)
        assert answer.status_code == 400, (params, answer.text)
        assert answer.json()["error"]["errors"][0]["reason"] == "invalid"
    # The description's limits are what the fake refused: the checker says the same of these requests.
    # privateExtendedProperty is a valid parameter, only not together with syncToken.
    assert len(traffic_problems(google.calls)) == 3
