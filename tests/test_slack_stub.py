"""The Slack Web API stub answers the real slack_sdk WebClient (and Bolt) like Slack does."""

from __future__ import annotations

import json
import types
import urllib.request
from urllib.parse import parse_qs

import pytest
from fakes.slack_api import (
    SlackStub,
    block_action_body,
    event_body,
    sign,
    slash_command_body,
    view_submission_body,
)
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_handlers
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

SECRET = "signing-secret"


@pytest.fixture
def stub():
    s = SlackStub(users=[{"id": "U1", "email": "ada@example.com", "name": "ada"}])
    s.start()
    yield s
    s.stop()


@pytest.fixture
def client(stub):
    return WebClient(token="xoxb-test", base_url=stub.url, timeout=5)


def error_of(call) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value


def test_url_joining(stub):
    assert stub.url.startswith("http://127.0.0.1:") and stub.url.endswith("/api/")
    # WebClient appends the missing "/" to base_url, then urljoin(base_url, method).
    no_slash = WebClient(token="xoxb-test", base_url=stub.url.rstrip("/"), timeout=5)
    assert no_slash.base_url == stub.url
    assert no_slash.auth_test().api_url == stub.url + "auth.test"
    # Paths outside /api/ are not Slack methods: HTTP 404, as on slack.com.
    no_slash.base_url = stub.url.rstrip("/")  # bypasses the normalisation: urljoin drops "api"
    err = error_of(no_slash.auth_test)
    assert err.response.status_code == 404 and err.response.api_url == stub.origin + "/auth.test"
    assert [c.method for c in stub.calls] == ["auth.test"]


def test_auth_test_and_token_checks(stub, client):
    assert client.auth_test().data == {
        "ok": True,
        "url": "https://example.slack.com/",
        "team": "Example",
        "user": "calsync",
        "team_id": "T1",
        "user_id": "UBOT",
        "bot_id": "B1",
        "is_enterprise_install": False,
    }
    assert stub.calls_to("auth.test")[0].header("authorization") == "Bearer xoxb-test"

    wrong = WebClient(token="xoxb-wrong", base_url=stub.url)
    assert error_of(wrong.auth_test).response.data == {"ok": False, "error": "invalid_auth"}
    assert error_of(WebClient(base_url=stub.url).auth_test).response["error"] == "not_authed"
    # a token in a form body is accepted, as by Slack
    assert WebClient(base_url=stub.url).api_call("auth.test", params={"token": "xoxb-test"})["ok"]
    err = error_of(lambda: client.api_call("calendar.frobnicate"))
    assert err.response["error"] == "unknown_method"
    assert [c.method for c in stub.calls] == ["auth.test"] * 4 + ["calendar.frobnicate"]


def test_post_update_and_messages(stub, client):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Sync failed*"}}]
    first = client.chat_postMessage(channel="U1", text="Sync failed", blocks=blocks)
    assert first["channel"] == "DU1" and first["message"]["blocks"] == blocks
    second = client.chat_postMessage(channel="C1", text="hello")
    assert float(second["ts"]) > float(first["ts"]) and second["channel"] == "C1"
    call = stub.calls_to("chat.postMessage")[0]
    assert call.header("Content-Type").startswith("application/json")  # chat_postMessage sends JSON
    assert call.params == {"channel": "U1", "text": "Sync failed", "blocks": blocks}

    new_blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Reconnected"}}]
    updated = client.chat_update(channel="DU1", ts=first["ts"], text="Reconnected", blocks=new_blocks)
    assert (updated["channel"], updated["ts"]) == ("DU1", first["ts"])
    [msg] = stub.messages("DU1")
    assert msg["text"] == "Reconnected" and msg["blocks"] == new_blocks and msg["ts"] == first["ts"]
    assert stub.messages("U1") == stub.messages("DU1")

    assert error_of(lambda: client.chat_update(channel="DU1", ts="1.000001", text="x")).response["error"] == "message_not_found"
    assert error_of(lambda: client.chat_update(channel="U1", ts=first["ts"], text="x")).response["error"] == "channel_not_found"
    with pytest.warns(UserWarning):  # slack_sdk warns about a message without text, Slack refuses it
        assert error_of(lambda: client.chat_postMessage(channel="C1")).response["error"] == "no_text"
    too_many = [{"type": "divider"}] * 51
    assert error_of(lambda: client.chat_postMessage(channel="C1", text="x", blocks=too_many)).response["error"] == "invalid_blocks"


def test_block_kit_limits_are_refused_like_slack_does(stub, client):
    def post(*blocks):
        return lambda: client.chat_postMessage(channel="C1", text="x", blocks=list(blocks))

    def header(n):
        return {"type": "header", "text": {"type": "plain_text", "text": "h" * n}}

    def button(n):
        return {"type": "button", "action_id": "b", "text": {"type": "plain_text", "text": "b" * n}}

    def overflow(n):
        return {
            "type": "overflow",
            "action_id": "o",
            "options": [{"text": {"type": "plain_text", "text": f"o{i}"}, "value": str(i)} for i in range(n)],
        }

    assert client.chat_postMessage(
        channel="C1", text="x", blocks=[header(150), {"type": "actions", "elements": [button(75), overflow(2)]}]
    )["ok"]
    for too_much in (
        post(header(151)),
        post({"type": "actions", "elements": [button(76)]}),
        post({"type": "actions", "elements": [overflow(1)]}),
        post({"type": "actions", "elements": [overflow(6)]}),
        post({"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}),
    ):
        assert error_of(too_much).response["error"] == "invalid_blocks"
    modal = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Stop"},
        "blocks": [],
        "submit": {"type": "plain_text", "text": "Stop and remove 12 events"},
    }
    assert error_of(lambda: client.views_open(trigger_id="t1", view=modal)).response["error"] == "invalid_blocks"


def test_form_encoded_blocks_are_decoded(stub, client):
    blocks = [{"type": "divider"}]
    client.api_call("chat.postEphemeral", data=None, params={"channel": "C1", "user": "U1", "text": "hi", "blocks": json.dumps(blocks)})
    call = stub.calls_to("chat.postEphemeral")[0]
    assert call.header("Content-Type") == "application/x-www-form-urlencoded"
    assert call.params["blocks"] == blocks
    answer = client.chat_postEphemeral(channel="C1", user="U1", text="only you", blocks=blocks)
    assert answer["ok"] and answer["message_ts"]
    assert [e["text"] for e in stub.ephemerals] == ["hi", "only you"]


def test_conversations_and_users(stub, client):
    assert client.conversations_open(users="U1")["channel"] == {"id": "DU1"}
    assert client.conversations_open(users=["U1"])["channel"]["id"] == "DU1"
    user = client.users_lookupByEmail(email="Ada@Example.com")["user"]
    assert user["id"] == "U1" and user["name"] == "ada" and user["profile"]["email"] == "ada@example.com"
    assert stub.calls_to("users.lookupByEmail")[0].params == {"email": "Ada@Example.com"}
    assert error_of(lambda: client.users_lookupByEmail(email="bob@example.com")).response.data == {"ok": False, "error": "users_not_found"}
    stub.add_user("U2", "bob@example.com", "bob")
    assert client.users_lookupByEmail(email="bob@example.com")["user"]["id"] == "U2"
    assert client.users_info(user="U2")["user"]["profile"]["email"] == "bob@example.com"
    assert error_of(lambda: client.users_info(user="U9")).response["error"] == "user_not_found"


def test_views(stub, client):
    modal = {
        "type": "modal",
        "callback_id": "stop",
        "title": {"type": "plain_text", "text": "Stop"},
        "blocks": [{"type": "divider"}],
        "private_metadata": "42",
    }
    opened = client.views_open(trigger_id="t1", view=modal)["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "stop" and opened["private_metadata"] == "42"
    assert stub.calls_to("views.open")[0].params["view"] == modal

    changed = dict(modal, private_metadata="43")
    updated = client.views_update(view_id=opened["id"], view=changed)["view"]
    assert updated["id"] == opened["id"] and updated["private_metadata"] == "43"
    assert stub.views[opened["id"]]["private_metadata"] == "43"
    assert error_of(lambda: client.views_update(view_id="V999", view=modal)).response["error"] == "not_found"
    assert error_of(lambda: client.views_update(view_id=opened["id"], view=modal, hash="stale")).response["error"] == "hash_conflict"

    with_ext = client.views_push(trigger_id="t2", view=dict(modal, external_id="ext-1"))["view"]
    assert client.views_update(external_id="ext-1", view=dict(modal, external_id="ext-1"))["view"]["id"] == with_ext["id"]

    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hi"}}]}
    published = client.views_publish(user_id="U1", view=home)["view"]
    again = client.views_publish(user_id="U1", view=home)["view"]
    assert published["id"] == again["id"] and stub.home_view("U1")["type"] == "home"
    assert error_of(lambda: client.views_publish(user_id="U1", view=modal)).response["error"] == "invalid_arguments"


def test_injected_errors(stub, client):
    stub.fail_next("chat.postMessage", "not_in_channel")
    err = error_of(lambda: client.chat_postMessage(channel="C1", text="x"))
    assert err.response.status_code == 200 and err.response.data == {"ok": False, "error": "not_in_channel"}
    assert client.chat_postMessage(channel="C1", text="x")["ok"]

    stub.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=1)
    err = error_of(lambda: client.chat_postMessage(channel="C1", text="x"))  # default client: no 429 retries
    assert err.response.status_code == 429
    assert err.response.headers["Retry-After"] == "1"
    assert err.response.data == {"ok": False, "error": "ratelimited"}
    assert [c.status for c in stub.calls_to("chat.postMessage")] == [200, 200, 429]


def test_rate_limit_retry_handler_retries(stub, client, monkeypatch):
    slept = []
    monkeypatch.setattr(builtin_handlers, "time", types.SimpleNamespace(sleep=slept.append))
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    stub.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=1)
    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    assert [c.status for c in stub.calls_to("chat.postMessage")] == [429, 200]
    assert len(slept) == 1 and 1 <= slept[0] < 2  # the handler waited Retry-After (+ jitter)
    assert len(stub.messages("C1")) == 1


def test_response_url(stub):
    url = stub.response_url("cmd-1")
    request = urllib.request.Request(
        url,
        data=json.dumps({"text": "done", "response_type": "ephemeral"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    assert stub.response_urls == [("cmd-1", {"text": "done", "response_type": "ephemeral"})]
    assert stub.calls == []


def test_signatures_verify_with_slack_sdk():
    body = slash_command_body(text="status")
    headers = sign(SECRET, body)
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert verifier.is_valid_request(body, headers)
    assert not SignatureVerifier("other").is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    old = sign(SECRET, body, timestamp=1_000_000)
    assert not verifier.is_valid(body, old["X-Slack-Request-Timestamp"], old["X-Slack-Signature"])  # too old

    fields = parse_qs(body.decode())
    assert fields["command"] == ["/calsync"] and fields["text"] == ["status"] and fields["user_id"] == ["U1"]


def test_interaction_bodies_shape():
    action = json.loads(parse_qs(block_action_body("relink", value="7").decode())["payload"][0])
    assert action["type"] == "block_actions" and action["actions"][0]["value"] == "7"
    assert action["container"]["type"] == "message" and "response_url" in action
    in_modal = json.loads(parse_qs(block_action_body("pick", view={"id": "V9"}).decode())["payload"][0])
    assert in_modal["container"] == {"type": "view", "view_id": "V9"} and "response_url" not in in_modal
    values = {"b": {"a": {"type": "plain_text_input", "value": "x"}}}
    sub = json.loads(parse_qs(view_submission_body("stop", "42", values).decode())["payload"][0])
    assert sub["type"] == "view_submission" and sub["view"]["state"]["values"] == values
    assert sub["view"]["private_metadata"] == "42" and sub["view"]["callback_id"] == "stop"
    event = json.loads(event_body({"type": "app_home_opened", "user": "U1", "tab": "home"}))
    assert event["type"] == "event_callback" and event["event"]["type"] == "app_home_opened"


def test_bolt_app_round_trip(stub):
    from slack_bolt import App
    from slack_bolt.request import BoltRequest

    app = App(client=WebClient(token="xoxb-test", base_url=stub.url, timeout=5), signing_secret=SECRET, process_before_response=True)

    @app.command("/calsync")
    def command(ack, respond, command, client):
        ack()
        client.chat_postMessage(channel=command["user_id"], text=f"got {command['text']}")
        respond(f"done {command['text']}")

    @app.action("relink")
    def action(ack, body, client):
        ack()
        client.views_open(
            trigger_id=body["trigger_id"],
            view={"type": "modal", "callback_id": "stop", "title": {"type": "plain_text", "text": "Stop"}, "blocks": []},
        )

    @app.view("stop")
    def submit(ack, view):
        ack(response_action="errors", errors={"b": f"meta {view['private_metadata']}"})

    @app.event("app_home_opened")
    def home(event, client):
        client.views_publish(user_id=event["user"], view={"type": "home", "blocks": []})

    def dispatch(body: bytes, content_type: str, headers=None):
        headers = headers or sign(SECRET, body)
        return app.dispatch(BoltRequest(body=body.decode(), headers={**headers, "Content-Type": content_type}))

    form = "application/x-www-form-urlencoded"
    body = slash_command_body(text="status", response_url=stub.response_url("r1"))
    assert dispatch(body, form).status == 200
    assert [c.params["text"] for c in stub.wait_for("chat.postMessage")] == ["got status"]
    assert stub.messages("U1")[0]["text"] == "got status"
    assert stub.response_urls[0][0] == "r1" and stub.response_urls[0][1]["text"] == "done status"
    assert dispatch(body, form, headers=sign("wrong", body)).status == 401

    assert dispatch(block_action_body("relink", value="7"), form).status == 200
    assert stub.calls_to("views.open")[0].params["trigger_id"] == "t1"

    response = dispatch(view_submission_body("stop", private_metadata="42"), form)
    assert response.status == 200 and json.loads(response.body)["errors"] == {"b": "meta 42"}

    assert dispatch(event_body({"type": "app_home_opened", "user": "U1", "tab": "home"}), "application/json").status == 200
    assert stub.home_view("U1") is not None
