"""The host API's OpenAPI description (web/openapi.json), and the live API held to it.

The description is a valid OpenAPI 3.1 document, served as it is at `/api/v1/openapi.json`
without a key. Schemathesis then generates requests from it, valid ones and invalid ones, and
sends them with a real key to calsync's real web server (waitress on 127.0.0.1) over a real
SQLite database, with staff, connections of every state, busy times and appointments in it.
Every answer must be one the description documents: its status code, content type, headers and
body; never a 5xx; and a request that is refused (4xx) must have stored nothing at all.
"""

from __future__ import annotations

import datetime as dt
import json
import types

import pytest
import requests
import schemathesis
from conftest import ROOT, running_web, started, web_env
from hypothesis import HealthCheck, settings
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

import models as m
from core import actions, clock

SPEC_PATH = ROOT / "web" / "openapi.json"
ADA = "ada@example.com"  # connections of every state, busy times, appointments
GRACE = "grace@example.com"  # no connections at all, one appointment
WEEK = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # the week the description's examples name

# Per operation (and per generation mode); the whole file stays well under 90 s on 2 busy cores.
MAX_EXAMPLES = 40
SEED = 20261201


def spec() -> dict:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


# -- the site: a real server over a real database, with data the examples reach -------------


def _connection(staff: m.Staff, provider: str, account: str, status: str, *, synced: dt.timedelta | None, **fields) -> m.Connection:
    now = clock.now()
    return m.Connection.create(
        staff=staff,
        provider=provider,
        account=account,
        status=status,
        reason=fields.pop("reason", ""),
        last_sync_at=None if synced is None else now - synced,
        last_success_at=None if synced is None else now - synced,
        **fields,
    )


def populate(rt) -> None:
    """Ada has a working CalDAV connection (busy source and destination), a Google one that needs
    relinking, a stale Microsoft one, an ICS feed never synced yet and a stopped one; Grace has none."""
    actions.add_staff(rt, ADA, "Ada Lovelace", timezone="Europe/Berlin")
    actions.add_staff(rt, GRACE, "Grace Hopper", timezone="America/New_York")
    ada = m.Staff.get(m.Staff.email == ADA)
    stale = dt.timedelta(seconds=rt.settings.stale_after + 3600)
    work = _connection(ada, "caldav", "ada", m.ACTIVE, synced=dt.timedelta(minutes=1))
    relink = _connection(ada, "google", "ada@gmail.example", m.RELINK_REQUIRED, synced=dt.timedelta(days=2), reason="the grant was revoked")
    old = _connection(ada, "microsoft", "ada@outlook.example", m.ACTIVE, synced=stale, failing_since=clock.now() - stale, failures_in_row=3)
    feed = _connection(ada, "ics", "calendar.example", m.PENDING, synced=None)
    gone = _connection(ada, "caldav", "ada-old", m.STOPPED, synced=dt.timedelta(days=30))
    for conn, name, destination in ((work, "Work", True), (relink, "Personal", False), (old, "Outlook", False), (feed, "Holidays", False)):
        cal = m.Calendar.create(
            connection=conn,
            remote_id=f"/{conn.id}/{name}/",
            name=name,
            is_destination=destination,
            is_primary=destination,
            is_busy_source=True,
        )
        for day, hours in ((1, (9, 10)), (2, (9, 12)), (2, (11, 13))):
            start = WEEK + dt.timedelta(days=day, hours=hours[0])
            m.FeedEntry.create(
                calendar=cal,
                uid=f"{name}-{day}-{hours[0]}@example",
                starts_at=start,
                ends_at=WEEK + dt.timedelta(days=day, hours=hours[1]),
                subject="busy",
                loaded=True,
            )
    m.Calendar.create(connection=gone, remote_id="/gone/", name="Old", is_destination=True, is_primary=True, is_busy_source=True)
    # The description's example ids: A-1 (Ada's, so Grace's example body is a 409), one cancelled.
    actions.upsert_appointment(rt, "A-1", ADA, "2026-12-01T10:00:00+01:00", "2026-12-01T11:00:00+01:00", "Coaching session")
    actions.upsert_appointment(rt, "booking:2026-12@host", GRACE, "2026-12-03T09:00", "2026-12-03T10:00", "Intro call")
    actions.upsert_appointment(rt, "A-2", ADA, "2026-12-04T09:00:00Z", "2026-12-04T10:00:00Z", "Cancelled one")
    actions.cancel_appointment(rt, "A-2")


class Site:
    """The running API: its base URL, a session, and a key (which its repr does not show)."""

    def __init__(self, rt, key: str):
        self.rt, self.key = rt, key
        self.database = m.db.obj  # the models' binding, which a pg_rt test in between moves away
        self.base = f"{rt.settings.base_url}/api/v1"
        self.session = requests.Session()

    def put(self, appointment_id: str, body: dict) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        data = json.dumps(body, ensure_ascii=False).encode()  # UTF-8 as a host sends it, not \u escapes
        return self.session.put(f"{self.base}/appointments/{appointment_id}", data=data, headers=headers, timeout=30)

    def __repr__(self) -> str:
        return f"Site({self.base})"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with started(web_env(tmp_path_factory.mktemp("openapi"))) as rt:
        populate(rt)
        key = actions.apikey_create(rt, "schemathesis")["key"]
        with running_web(rt):
            site = Site(rt, key)
            try:
                yield site
            finally:
                site.session.close()


@pytest.fixture(autouse=True)
def _models_on_the_sites_database(request):
    """The models are bound globally: a PostgreSQL test binds them to its own database, and the
    site's server (and stored()) would follow. A test of the site gets them back on its database."""
    if "site" in request.fixturenames:
        m.db.initialize(request.getfixturevalue("site").database)


@pytest.fixture(scope="module")
def api_schema(site):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CALSYNC_TEST_API_KEY", site.key)
        config = _config(site.base)
    return schemathesis.openapi.from_path(SPEC_PATH, config=config)


def _config(base: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": base,
            "request-timeout": 30,
            # Read from the environment when the config is made, so no traceback shows the key itself.
            "auth": {"openapi": {"bearerAuth": {"bearer": "${CALSYNC_TEST_API_KEY}"}}},
            "generation": {
                "mode": "all",  # valid requests and invalid ones
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "status_code_conformance": {"enabled": True},
                "content_type_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
                "response_headers_conformance": {"enabled": True},
                "negative_data_rejection": {"enabled": True},
                "ignored_auth": {"enabled": True},
                "unsupported_method": {"enabled": True},
                "allow_header_conformance": {"enabled": True},
            },
        }
    )


# -- what "nothing stored" means ------------------------------------------------------------


def stored() -> dict:
    """Every row of every table, as the database holds it; of the API keys all but when a key was
    last used (recorded on any request, rejected ones too, at most every 10 minutes: it is not the
    request's doing). Plain SQL: it runs around every generated request, so it must be cheap."""
    state = {}
    for model in m.ALL_MODELS:
        columns = [f.column_name for f in model._meta.sorted_fields if not (model is m.ApiKey and f.name == "last_used_at")]
        primary = model._meta.primary_key
        assert primary, f"{model.__name__} has no primary key"
        table, key = model._meta.table_name, primary.column_name
        state[table] = m.db.execute_sql(f'SELECT {", ".join(columns)} FROM "{table}" ORDER BY {key}').fetchall()
    return state


def nothing_stored_from_a_rejected_request(before: dict):
    def check(ctx, response, case):
        if 400 <= response.status_code < 500:
            after = stored()
            changed = {table: rows for table, rows in after.items() if rows != before.get(table)}
            assert not changed, f"{response.status_code} answer, yet these tables changed: {sorted(changed)}"

    check.__name__ = "nothing_stored_from_a_rejected_request"
    return check


def test_the_stored_check_sees_any_row_a_request_would_leave(site):
    before = stored()
    check = nothing_stored_from_a_rejected_request(before)
    refused, accepted = types.SimpleNamespace(status_code=422), types.SimpleNamespace(status_code=201)
    row = m.AuditEntry.create(actor="api:probe", action="appointment.created", target="P-1")
    try:
        with pytest.raises(AssertionError, match="audit"):
            check(None, refused, None)
        check(None, accepted, None)  # a change is what a 2xx is for
    finally:
        row.delete_instance()
    check(None, refused, None)
    m.ApiKey.update(last_used_at=clock.now()).execute()  # recorded on any request: not a change
    check(None, refused, None)


# -- the document ----------------------------------------------------------------------------


def test_the_description_is_valid_openapi_3_1():
    document = spec()
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)


def test_the_description_names_every_route_the_blueprint_serves():
    import flask

    from web import api

    app = flask.Flask("routes")
    app.register_blueprint(api.blueprint)
    routed = {
        (rule.rule.removeprefix(api.blueprint.url_prefix).replace("<appointment_id>", "{id}").replace("<email>", "{email}"), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    described = {(path, method) for path, item in spec()["paths"].items() for method in item if method != "parameters"}
    assert routed == described


def test_the_served_description_is_the_file_and_needs_no_key(site):
    answer = requests.get(f"{site.base}/openapi.json", timeout=10)  # no Authorization at all
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.content == SPEC_PATH.read_bytes()
    assert answer.json() == spec()
    assert "public" in answer.headers["Cache-Control"] and answer.headers["ETag"]
    # a wrong key is ignored too, and the ETag makes it cacheable
    again = requests.get(
        f"{site.base}/openapi.json", headers={"Authorization": "Bearer nope", "If-None-Match": answer.headers["ETag"]}, timeout=10
    )
    assert again.status_code == 304 and not again.content
    assert again.headers["ETag"] == answer.headers["ETag"] and again.headers["Cache-Control"] == answer.headers["Cache-Control"]


def test_everything_else_still_needs_the_key(site):
    for path in (f"/staff/{ADA}/connections", f"/staff/{ADA}/busy?from=2026-12-01T00:00Z&to=2026-12-02T00:00Z", "/appointments/A-1"):
        answer = requests.get(f"{site.base}{path}", timeout=10)
        assert answer.status_code == 401 and answer.json()["error"] == "unauthorized", path
        assert requests.get(f"{site.base}{path}", headers={"Authorization": f"Bearer {site.key}"}, timeout=10).status_code == 200
    refused = requests.put(f"{site.base}/openapi.json", data=b"{}", timeout=10)
    assert refused.status_code == 405 and refused.json()["error"] == "method_not_allowed"
    assert refused.headers["Allow"] == "GET, HEAD, OPTIONS"


# -- what the fuzzing found, or reading the code for it did: each is a 4xx now, and stores nothing --


def test_a_time_zone_that_is_a_folder_or_too_long_for_a_file_name_is_a_422(site):
    before = stored()
    for zone in ("Europe", "America/Argentina", "Etc", "x" * 300):
        body = {"staff": ADA, "start": "2026-12-05T10:00", "end": "2026-12-05T11:00", "subject": "Zone", "timezone": zone}
        answer = site.put("Z-1", body)
        assert answer.status_code == 422 and answer.json()["error"] == "invalid", (zone[:20], answer.text[:200])
        assert "unknown time zone" in answer.json()["message"]
    assert stored() == before


@pytest.mark.parametrize("field, limit", [("subject", 500), ("description", 8000), ("location", 500)])
def test_a_text_over_its_limit_is_refused_not_cut(site, field, limit):
    body = {"staff": ADA, "start": "2026-12-05T10:00:00Z", "end": "2026-12-05T11:00:00Z", "subject": "Limits"}
    before = stored()
    answer = site.put(f"L-{field}", {**body, field: "é" * (limit + 1)})
    assert answer.status_code == 422 and f"at most {limit} characters" in answer.json()["message"], answer.text[:200]
    assert stored() == before
    answer = site.put(f"L-{field}", {**body, field: "é" * limit})
    assert answer.status_code == 201 and answer.json()[field] == "é" * limit


@pytest.mark.postgres
def test_a_nul_in_an_id_or_address_is_a_4xx_on_postgresql_too(pg_rt):
    from web.app import create_app

    actions.add_staff(pg_rt, ADA, "Ada Lovelace", timezone="Europe/Berlin")
    client = create_app(pg_rt).test_client()
    headers = {"Authorization": f"Bearer {actions.apikey_create(pg_rt, 'host')['key']}"}
    body = {"staff": ADA, "start": "2026-12-05T10:00:00Z", "end": "2026-12-05T11:00:00Z", "subject": "NUL"}
    answers = {
        "PUT id": (client.put("/api/v1/appointments/N%00-1", json=body, headers=headers), 400),
        "GET id": (client.get("/api/v1/appointments/N%00-1", headers=headers), 400),
        "DELETE id": (client.delete("/api/v1/appointments/N%00-1", headers=headers), 400),
        "PUT staff": (client.put("/api/v1/appointments/N-1", json={**body, "staff": "a\x00b"}, headers=headers), 404),
        "connections": (client.get("/api/v1/staff/a%00b/connections", headers=headers), 404),
        "busy": (client.get("/api/v1/staff/a%00b/busy?from=2026-12-01T00:00Z&to=2026-12-02T00:00Z", headers=headers), 404),
    }
    for what, (answer, status) in answers.items():
        assert answer.status_code == status, (what, answer.get_data(as_text=True)[:200])
        assert answer.is_json and set(answer.get_json()) == {"error", "message"}, what
    assert m.Appointment.select().count() == 0


# -- the live API, fuzzed from the description ---------------------------------------------------


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_the_live_api_answers_as_described(case, site):
    assert m.db.obj is site.database
    before = stored()
    response = case.call(session=site.session)
    case.validate_response(response, additional_checks=[nothing_stored_from_a_rejected_request(before)])
