"""A local stub of Slack's Web API, and helpers that sign requests the way Slack does.

Written from memory of these Slack documentation pages (no network access
while it was written, so details beyond the ones below are not claimed):

* https://api.slack.com/web and https://api.slack.com/methods -- every method
  answers HTTP 200 with a JSON object ``{"ok": true, ...}`` or
  ``{"ok": false, "error": "<code>"}``; the token travels as
  ``Authorization: Bearer xoxb-...`` (or a ``token`` field in a form body);
  no token -> ``not_authed``, a wrong one -> ``invalid_auth``; an unknown
  method -> ``unknown_method``; arguments come form-encoded or as JSON.
* https://api.slack.com/methods/auth.test, chat.postMessage, chat.update
  (``message_not_found``; "for direct messages, ensure that this value is a
  DM ID (starts with D) instead of a User ID"), chat.postEphemeral
  (``message_ts``), conversations.open, users.lookupByEmail
  (``users_not_found``), users.info (``user_not_found``), views.open,
  views.push, views.update (``not_found``, ``hash_conflict``), views.publish.
* https://api.slack.com/reference/block-kit/blocks -- at most 50 blocks in a
  message, 100 in a modal or Home tab (``invalid_blocks``).
* https://docs.slack.dev/reference/block-kit -- the limits ``_check_limits``
  refuses with ``invalid_blocks``: header text 150 characters, section and
  context text 3000, button and option text 75, placeholder 150; a modal's
  title, submit and close 24; an overflow menu holds 2 to 5 options, a static
  select at most 100, an actions block at most 25 elements, a context block 10.
* https://api.slack.com/docs/rate-limits -- a rate-limited call is answered
  ``HTTP 429`` with a ``Retry-After: <seconds>`` header and
  ``{"ok": false, "error": "ratelimited"}`` (``SlackStub.fail_next``).
* https://api.slack.com/interactivity/handling#message_responses -- a
  ``response_url`` takes a JSON POST (``SlackStub.response_url``).
* https://api.slack.com/authentication/verifying-requests-from-slack --
  ``X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`` and
  ``X-Slack-Request-Timestamp`` (``sign``).
* https://api.slack.com/interactivity/slash-commands,
  https://api.slack.com/reference/interaction-payloads/block-actions,
  https://api.slack.com/reference/interaction-payloads/views,
  https://api.slack.com/apis/connections/events-api -- the request bodies
  built by ``slash_command_body``, ``block_action_body``,
  ``view_submission_body`` and ``event_body``.

How slack_sdk reaches the stub (slack_sdk 3.48): ``BaseClient.__init__`` appends
a ``/`` to ``base_url`` when it does not end in one, and every call builds its
URL with ``_get_url(base_url, method)`` = ``urllib.parse.urljoin(base_url,
method.lstrip("/"))`` (slack_sdk/web/internal_utils.py). So both
``http://127.0.0.1:PORT/api/`` and ``http://127.0.0.1:PORT/api`` reach
``/api/chat.postMessage``. (Assigning ``client.base_url`` later skips that
normalisation, and ``urljoin(".../api", "chat.postMessage")`` would drop the
``api`` segment.) The stub serves Web API methods only under ``/api/<method>``;
any other path is an HTTP 404, like a wrong path on slack.com.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = [
    "DEFAULT_RESPONSE_URL",
    "Call",
    "SlackStub",
    "block_action_body",
    "event_body",
    "sign",
    "slash_command_body",
    "view_submission_body",
]

BOT_USER_ID = "UBOT"
TEAM_ID = "T1"
BOT_ID = "B1"
APP_ID = "A1"
TEAM_URL = "https://example.slack.com/"
VERIFICATION_TOKEN = "verification-token"  # the deprecated `token` field Slack still sends

# Where signed request bodies point response_url when the test does not pass one:
# a closed local port, so a forgotten response_url fails fast instead of leaving the machine.
DEFAULT_RESPONSE_URL = "http://127.0.0.1:9/response/unset"

JSON_FIELDS = ("blocks", "view", "attachments", "metadata")
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 40000


@dataclass
class Call:
    """One request to a Web API method, as the stub received it."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    time: float
    http_method: str = "POST"
    status: int | None = None  # filled in once answered
    response: dict | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header, case-insensitively."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return default


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: int | None
    times: int


class _SlackError(Exception):
    def __init__(self, error: str, messages: list[str] | None = None):
        super().__init__(error)
        self.error = error
        self.messages = messages or []


def _require(params: dict, *names: str) -> None:
    missing = [n for n in names if params.get(n) in (None, "")]
    if missing:
        raise _SlackError("invalid_arguments", [f"[ERROR] missing required field: {n}" for n in missing])


def _check_blocks(blocks: Any, limit: int) -> None:
    if blocks is None:
        return
    if not isinstance(blocks, list):
        raise _SlackError("invalid_blocks_format")
    if len(blocks) > limit or not all(isinstance(b, dict) and b.get("type") for b in blocks):
        raise _SlackError("invalid_blocks")
    for block in blocks:
        _check_limits(block)


# Text limits by where a text object sits (Block Kit reference).
TEXT_LIMITS = {
    "header": 150,
    "section": 3000,
    "context": 3000,
    "button": 75,
    "option": 75,
    "placeholder": 150,
    "title": 24,
    "submit": 24,
    "close": 24,
    "label": 2000,
}
COUNT_LIMITS = {
    ("overflow", "options"): (2, 5),
    ("static_select", "options"): (1, 100),
    ("checkboxes", "options"): (1, 10),
    ("actions", "elements"): (1, 25),
    ("context", "elements"): (1, 10),
}


def _check_limits(node: Any, where: str = "") -> None:
    """Slack refuses a message or view with a text over its limit or a list of the wrong size."""
    if isinstance(node, list):
        for item in node:
            _check_limits(item, where)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
        if len(node["text"]) > TEXT_LIMITS.get(where, 3000):
            raise _SlackError("invalid_blocks", [f"[ERROR] {where} text longer than {TEXT_LIMITS.get(where, 3000)}"])
        return
    for (owner, key), (low, high) in COUNT_LIMITS.items():
        if kind == owner and key in node and not low <= len(node[key]) <= high:
            raise _SlackError("invalid_blocks", [f"[ERROR] {owner} needs {low} to {high} {key}"])
    if kind == "button" and len(str(node.get("url", ""))) > 3000:
        raise _SlackError("invalid_blocks", ["[ERROR] url longer than 3000"])
    here = kind if isinstance(kind, str) else ("option" if "value" in node else where)
    for key, value in node.items():
        _check_limits(value, key if key in TEXT_LIMITS else here)


def _dm_id(channel: str) -> str:
    """A user ID (U…/W…) as the ID of the bot's DM with that user."""
    return "D" + channel if channel[:1] in ("U", "W") else channel


class SlackStub:
    """Slack's Web API on 127.0.0.1, for the real ``slack_sdk.WebClient`` (``base_url=stub.url``)."""

    def __init__(self, bot_token: str = "xoxb-test", users: list[dict] | None = None):
        self.bot_token = bot_token
        self.calls: list[Call] = []
        self.response_urls: list[tuple[str, Any]] = []
        self.ephemerals: list[dict] = []
        self.views: dict[str, dict] = {}  # view id -> latest view
        self.home_views: dict[str, str] = {}  # user id -> view id of their Home tab
        self._users: dict[str, dict] = {}
        self._messages: dict[tuple[str, str], dict] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._seq = itertools.count(1)
        self._ts_base = int(time.time())
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.origin = ""
        for user in users or []:
            self._put_user(dict(user))

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        stub = self

        class Handler(_Handler):
            pass

        Handler.stub = stub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.origin = f"http://127.0.0.1:{port}"
        self.url = f"{self.origin}/api/"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-stub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test controls -------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 2.0) -> list[Call]:
        """Wait until ``method`` was answered ``count`` times (for listeners that run on other threads)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                done = [c for c in self.calls if c.method == method and c.status is not None]
                left = deadline - time.monotonic()
                if len(done) >= count or left <= 0:
                    return done
                self._changed.wait(left)

    def fail_next(self, method: str, error: str, status: int = 200, retry_after: int | None = None, times: int = 1) -> None:
        """The next ``times`` calls to ``method`` answer ``status`` with ``{"ok": false, "error": error}``
        (plus ``Retry-After`` when given). Checked after authentication, like Slack's per-token limits."""
        with self._lock:
            self._failures.setdefault(method, []).append(_Failure(error, status, retry_after, times))

    def add_user(self, user_id: str, email: str, name: str = "", **extra: Any) -> None:
        self._put_user({"id": user_id, "email": email, "name": name, **extra})

    def user(self, user_id: str) -> dict | None:
        with self._lock:
            return self._users.get(user_id)

    def messages(self, channel: str) -> list[dict]:
        """The messages (latest state) in ``channel``, oldest first; a user ID means the bot's DM with them."""
        channel = _dm_id(channel)
        with self._lock:
            found = [dict(msg, channel=ch) for (ch, _), msg in self._messages.items() if ch == channel]
        return sorted(found, key=lambda msg: float(msg["ts"]))

    def home_view(self, user_id: str) -> dict | None:
        with self._lock:
            view_id = self.home_views.get(user_id)
            return self.views.get(view_id) if view_id else None

    def response_url(self, key: str = "r1") -> str:
        if not self.origin:
            raise RuntimeError("start() the stub first")
        return f"{self.origin}/response/{key}"

    # -- internals -----------------------------------------------------------

    def _put_user(self, user: dict) -> None:
        user_id = user.pop("id")
        email = user.pop("email", "") or user.get("profile", {}).get("email", "")
        name = user.pop("name", "") or (email.split("@")[0] if email else user_id.lower())
        profile = {"email": email, "real_name": name, "display_name": name, **user.pop("profile", {})}
        record = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": profile["real_name"],
            "deleted": False,
            "is_bot": False,
            "tz": "Europe/Berlin",
            **user,
            "profile": profile,
        }
        with self._lock:
            self._users[user_id] = record

    def _next_ts(self) -> str:
        n = next(self._seq)
        return f"{self._ts_base + n}.{n % 1000000:06d}"

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _answered(self, call: Call, status: int, body: dict) -> None:
        with self._changed:
            call.status, call.response = status, body
            self._changed.notify_all()

    def _handle(self, call: Call, token: str | None) -> tuple[int, dict, dict]:
        """(status, extra headers, JSON body) for one Web API call."""
        handler = getattr(self, "_m_" + call.method.replace(".", "_"), None)
        if handler is None or not call.method:
            return 200, {}, {"ok": False, "error": "unknown_method", "req_method": call.method}
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if not hmac.compare_digest(token, self.bot_token):
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        with self._lock:
            failure = self._take_failure(call.method)
        if failure is not None:
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return failure.status, headers, {"ok": False, "error": failure.error}
        try:
            with self._lock:
                result = handler(call.params)
        except _SlackError as exc:
            body: dict = {"ok": False, "error": exc.error}
            if exc.messages:
                body["response_metadata"] = {"messages": exc.messages}
            return 200, {}, body
        return 200, {}, {"ok": True, **result}

    # -- methods (called with the lock held) ---------------------------------

    def _m_auth_test(self, p: dict) -> dict:
        return {
            "url": TEAM_URL,
            "team": "Example",
            "user": "calsync",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _message(self, p: dict, ts: str) -> dict:
        msg = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": p.get("text") or "",
            "ts": ts,
        }
        if p.get("blocks") is not None:
            msg["blocks"] = p["blocks"]
        if p.get("attachments") is not None:
            msg["attachments"] = p["attachments"]
        if p.get("thread_ts"):
            msg["thread_ts"] = p["thread_ts"]
        return msg

    def _check_content(self, p: dict, limit: int = MAX_MESSAGE_BLOCKS) -> None:
        if not (p.get("text") or p.get("blocks") or p.get("attachments")):
            raise _SlackError("no_text")
        if len(p.get("text") or "") > MAX_TEXT:
            raise _SlackError("msg_too_long")
        _check_blocks(p.get("blocks"), limit)

    def _m_chat_postMessage(self, p: dict) -> dict:
        _require(p, "channel")
        self._check_content(p)
        channel = _dm_id(str(p["channel"]))
        ts = self._next_ts()
        msg = self._message(p, ts)
        self._messages[(channel, ts)] = msg
        return {"channel": channel, "ts": ts, "message": msg}

    def _m_chat_update(self, p: dict) -> dict:
        _require(p, "channel", "ts")
        channel, ts = str(p["channel"]), str(p["ts"])
        if channel[:1] in ("U", "W"):
            raise _SlackError("channel_not_found")
        old = self._messages.get((channel, ts))
        if old is None:
            raise _SlackError("message_not_found")
        self._check_content(p)
        msg = self._message(p, ts)
        msg["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        self._messages[(channel, ts)] = msg
        return {"channel": channel, "ts": ts, "text": msg["text"], "message": msg}

    def _m_chat_postEphemeral(self, p: dict) -> dict:
        _require(p, "channel", "user")
        self._check_content(p)
        ts = self._next_ts()
        self.ephemerals.append(
            {"channel": p["channel"], "user": p["user"], "text": p.get("text") or "", "blocks": p.get("blocks"), "message_ts": ts}
        )
        return {"message_ts": ts}

    def _m_conversations_open(self, p: dict) -> dict:
        if p.get("channel"):
            return {"channel": {"id": p["channel"]}}
        users = p.get("users")
        if isinstance(users, str):
            users = [u.strip() for u in users.split(",") if u.strip()]
        if not users:
            raise _SlackError("users_list_not_supplied")
        if len(users) == 1:
            return {"channel": {"id": _dm_id(users[0])}}
        return {"channel": {"id": "G" + "".join(sorted(users))}}

    def _m_users_lookupByEmail(self, p: dict) -> dict:
        _require(p, "email")
        wanted = str(p["email"]).strip().lower()
        for user in self._users.values():
            if user["profile"].get("email", "").lower() == wanted:
                return {"user": json.loads(json.dumps(user))}
        raise _SlackError("users_not_found")

    def _m_users_info(self, p: dict) -> dict:
        _require(p, "user")
        user = self._users.get(str(p["user"]))
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": json.loads(json.dumps(user))}

    def _new_view(self, view: Any, kinds: tuple[str, ...], view_id: str | None = None, **extra: Any) -> dict:
        if not isinstance(view, dict) or view.get("type") not in kinds:
            raise _SlackError("invalid_arguments", [f"[ERROR] view.type must be one of {', '.join(kinds)}"])
        _check_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS)
        _check_limits({k: view[k] for k in ("title", "submit", "close") if isinstance(view.get(k), dict)})
        view_id = view_id or f"V{next(self._seq):06d}"
        record = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": view["type"],
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "hash": self._next_ts(),
            "clear_on_close": False,
            "notify_on_close": False,
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        record.update({k: v for k, v in view.items() if k not in ("id", "hash")})
        record.update(extra)
        self.views[view_id] = record
        return record

    def _m_views_open(self, p: dict) -> dict:
        _require(p, "trigger_id", "view")
        return {"view": self._new_view(p["view"], ("modal",))}

    def _m_views_push(self, p: dict) -> dict:
        _require(p, "trigger_id", "view")
        return {"view": self._new_view(p["view"], ("modal",))}

    def _m_views_update(self, p: dict) -> dict:
        if not (p.get("view_id") or p.get("external_id")):
            raise _SlackError("invalid_arguments", ["[ERROR] either view_id or external_id is required"])
        _require(p, "view")
        if p.get("view_id"):
            old = self.views.get(str(p["view_id"]))
        else:
            old = next((v for v in self.views.values() if v.get("external_id") == p["external_id"]), None)
        if old is None:
            raise _SlackError("not_found")
        if p.get("hash") and p["hash"] != old["hash"]:
            raise _SlackError("hash_conflict")
        view = dict(p["view"])
        view.pop("hash", None)
        return {
            "view": self._new_view(
                view, (old["type"],), old["id"], root_view_id=old["root_view_id"], previous_view_id=old["previous_view_id"]
            )
        }

    def _m_views_publish(self, p: dict) -> dict:
        _require(p, "user_id", "view")
        user_id = str(p["user_id"])
        old_id = self.home_views.get(user_id)
        if p.get("hash") and old_id and p["hash"] != self.views[old_id]["hash"]:
            raise _SlackError("hash_conflict")
        view = dict(p["view"])
        view.pop("hash", None)
        record = self._new_view(view, ("home",), old_id)
        self.home_views[user_id] = record["id"]
        return {"view": record}


def _decode_json_fields(params: dict) -> dict:
    for name in JSON_FIELDS:
        value = params.get(name)
        if isinstance(value, str):
            try:
                params[name] = json.loads(value)
            except ValueError:
                pass  # left as sent; the method answers invalid_blocks_format / invalid_arguments
    return params


def _parse_body(content_type: str, body: bytes) -> dict:
    ctype = content_type.split(";")[0].strip().lower()
    if not body:
        return {}
    if ctype == "application/json":
        data = json.loads(body.decode("utf-8"))
        return data if isinstance(data, dict) else {}
    if ctype == "multipart/form-data":
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        out: dict = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            # decode=True gives a leaf part's bytes, or None for a part that is itself multipart
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                payload = b""
            out[name] = payload if part.get_filename() else payload.decode("utf-8")
        return out
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))


class _Handler(BaseHTTPRequestHandler):
    stub: SlackStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        stub = self.stub
        parts = urlsplit(self.path)
        body = self._read_body()
        if parts.path.startswith("/response/") and self.command == "POST":
            self._response_url(parts.path[len("/response/") :], body)
            return
        if not parts.path.startswith("/api/"):
            self._send(404, b"Not Found", "text/plain")
            return
        method = parts.path[len("/api/") :]
        params: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            body_params = _parse_body(self.headers.get("Content-Type", ""), body)
        except (ValueError, UnicodeDecodeError):
            self._send(200, json.dumps({"ok": False, "error": "invalid_json"}).encode(), "application/json; charset=utf-8")
            return
        params.update(body_params)
        _decode_json_fields(params)
        call = Call(method=method, params=params, headers=dict(self.headers.items()), time=time.time(), http_method=self.command)
        stub._record(call)
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        if token is None and isinstance(body_params.get("token"), str):
            token = body_params["token"]  # a token in a form body is accepted too (not in the query string)
        status, headers, answer = stub._handle(call, token)
        stub._answered(call, status, answer)
        self._send(status, json.dumps(answer).encode("utf-8"), "application/json; charset=utf-8", headers)

    def _response_url(self, key: str, body: bytes) -> None:
        ctype = self.headers.get("Content-Type", "")
        try:
            if ctype.startswith("application/x-www-form-urlencoded"):
                form = dict(parse_qsl(body.decode("utf-8")))
                data: Any = json.loads(form["payload"]) if "payload" in form else form
            else:
                data = json.loads(body.decode("utf-8") or "null")
        except (ValueError, UnicodeDecodeError):
            self._send(400, b"invalid_payload", "text/plain")
            return
        with self.stub._changed:
            self.stub.response_urls.append((key, data))
            self.stub._changed.notify_all()
        self._send(200, b"ok", "text/plain")


# -- requests from Slack to the bot ------------------------------------------------


def sign(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict:
    """The two headers Slack signs a request with: ``v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))``."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    ts = int(time.time()) if timestamp is None else int(timestamp)
    base = b"v0:" + str(ts).encode("ascii") + b":" + body
    digest = hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": "v0=" + digest}


def _user(user_id: str, user_name: str, team_id: str) -> dict:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def _team(team_id: str) -> dict:
    return {"id": team_id, "domain": "example"}


def slash_command_body(
    command: str = "/calsync",
    text: str = "",
    user_id: str = "U1",
    user_name: str = "ada",
    team_id: str = "T1",
    channel_id: str = "C1",
    response_url: str = DEFAULT_RESPONSE_URL,
    trigger_id: str = "t1",
    channel_name: str = "general",
) -> bytes:
    """A slash command as Slack POSTs it: application/x-www-form-urlencoded."""
    fields = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": "example",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return urlencode(fields).encode("utf-8")


def _payload_form(payload: dict) -> bytes:
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode("utf-8")


def block_action_body(
    action_id: str,
    value: str | None = None,
    user_id: str = "U1",
    user_name: str = "ada",
    team_id: str = "T1",
    channel_id: str = "C1",
    response_url: str = DEFAULT_RESPONSE_URL,
    trigger_id: str = "t1",
    view: dict | None = None,
    container: dict | None = None,
    message: dict | None = None,
    block_id: str = "b1",
    action: dict | None = None,
) -> bytes:
    """A ``block_actions`` interaction: form-encoded ``payload=<json>``.

    With ``view`` (a button in a modal or the Home tab) Slack sends the view and
    no channel, message or response_url; otherwise the action comes from a
    message in ``channel_id`` and carries ``response_url``. ``action`` adds or
    overrides fields of the action (e.g. ``{"type": "static_select",
    "selected_option": {...}}``)."""
    act: dict[str, Any] = {"action_id": action_id, "block_id": block_id, "type": "button", "action_ts": f"{time.time():.6f}"}
    if value is not None:
        act["value"] = value
    act.update(action or {})
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "team": _team(team_id),
        "enterprise": None,
        "is_enterprise_install": False,
        "actions": [act],
    }
    if view is not None:
        full_view = {
            "id": "V1",
            "team_id": team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "state": {"values": {}},
            "hash": "1.1",
            "root_view_id": view.get("id", "V1"),
            "previous_view_id": None,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "external_id": "",
            **view,
        }
        payload["view"] = full_view
        payload["state"] = full_view["state"]
        payload["container"] = container or {"type": "view", "view_id": full_view["id"]}
    else:
        msg = message or {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": "", "ts": "1700000000.000100"}
        payload["container"] = container or {
            "type": "message",
            "message_ts": msg.get("ts", "1700000000.000100"),
            "channel_id": channel_id,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel_id, "name": "general" if channel_id[:1] == "C" else "directmessage"}
        payload["message"] = msg
        payload["state"] = {"values": {}}
        payload["response_url"] = response_url
    return _payload_form(payload)


def view_submission_body(
    callback_id: str,
    private_metadata: str = "",
    state_values: dict | None = None,
    user_id: str = "U1",
    view_id: str = "V1",
    user_name: str = "ada",
    team_id: str = "T1",
    trigger_id: str = "t1",
    blocks: list | None = None,
) -> bytes:
    """A ``view_submission`` interaction (a modal's Submit): form-encoded ``payload=<json>``.

    ``state_values`` is Slack's ``view.state.values``:
    ``{block_id: {action_id: {"type": "plain_text_input", "value": "..."}}}``."""
    payload = {
        "type": "view_submission",
        "team": _team(team_id),
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": blocks or [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": state_values or {}},
            "hash": "1.1",
            "title": {"type": "plain_text", "text": "Calsync"},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit"},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": BOT_ID,
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _payload_form(payload)


def event_body(event: dict, team_id: str = "T1") -> bytes:
    """An Events API ``event_callback`` (JSON), e.g. ``{"type": "app_home_opened", "user": "U1", "tab": "home"}``."""
    event = {"event_ts": f"{time.time():.6f}", **event}
    body = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": "Ev" + hashlib.sha1(json.dumps(event, sort_keys=True).encode()).hexdigest()[:10].upper(),
        "event_time": int(time.time()),
        "authorizations": [
            {"enterprise_id": None, "team_id": team_id, "user_id": BOT_USER_ID, "is_bot": True, "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-eyJldCI6ImFwcF9ob21lX29wZW5lZCJ9",
    }
    return json.dumps(body).encode("utf-8")
