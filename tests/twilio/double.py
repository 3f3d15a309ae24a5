"""A Twilio double: a local stand-in for api.twilio.com for dialtone's integration tests.

What it is
    A small HTTP server that answers the part of Twilio's REST API 2010-04-01 that
    dialtone uses (account, available/incoming phone numbers, calls, messages,
    recordings) and calls dialtone back the way Twilio does: form-encoded POSTs signed
    with X-Twilio-Signature (status callbacks, TwiML fetches, real-time transcription,
    recording and message status callbacks, inbound calls and SMS).

What contract it checks
    Twilio's own published contract, never dialtone's code:
    - every REST request is validated with openapi-core against Twilio's OpenAPI
      document (twilio_api_v2010.json beside this file, from github.com/twilio/twilio-oai);
      a request that fails is answered 400 with a Twilio error body and recorded as a
      violation. Rules the document cannot express (Url or Twiml on a call, Body on a
      message, absolute callback URLs, event names) are checked here and recorded too;
    - what openapi-core lets through is recorded as a violation without changing the
      answer: parameters the document does not name (Twilio ignores them, which would
      hide a typo), a repeated non-array parameter (openapi-core reads the first value
      only), a boolean other than true/false (openapi-core also takes yes/on/1);
    - Twilio's own formats (phone-number, endpoint, http-method, ...) are not checked;
      date-time-rfc-2822 is, and uri as an RFC 3986 reference (Twilio's list pages
      give relative uris under that format);
    - every success response the double produces is validated against the document
      (drift of the double itself); errors are not, the document has no error schema;
    - callback signatures are computed by the twilio package's own RequestValidator.

How to run
    python double.py --account-sid AC<32 hex> --auth-token TOKEN [--spec PATH]
    It listens on 127.0.0.1 on a port the OS chooses, prints one line {"port": N} on
    stdout, logs to stderr, and serves until killed or until its stdin reaches EOF.
    The tests drive it with the JSON control API under /_double/ (no auth):
      GET  /_double/requests, /_double/violations, /_double/callbacks,
           /_double/calls, /_double/calls/{sid}
      POST /_double/fail, /_double/calls/{sid}/play, /_double/messages/{sid}/status,
           /_double/inbound/call, /_double/inbound/sms, /_double/owned,
           /_double/sign, /_double/callback
    README.md beside this file describes each of them.
"""

import argparse
import base64
import dataclasses
import email.utils
import hmac
import json
import logging
import math
import random
import re
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit

from multidict import MultiDict
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.validation.request.exceptions import ParameterValidationError
from openapi_core.validation.response.exceptions import ResponseValidationError
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import Headers, ImmutableMultiDict

log = logging.getLogger("twilio-double")

API_VERSION = "2010-04-01"
TWILIO_HOST = "https://api.twilio.com"  # the server the document's operations name
ACCOUNTS = f"/{API_VERSION}/Accounts"
A = ACCOUNTS + "/{AccountSid}"
CALLBACK_TIMEOUT_S = 15  # Twilio's webhook timeout
NANP_TOLL_FREE = ("800", "833", "844", "855", "866", "877", "888")
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # callbacks never go through a proxy


# --------------------------------------------------------------------------- helpers


def now() -> datetime:
    return datetime.now(timezone.utc)


def rfc2822(moment: Optional[datetime]) -> Optional[str]:
    """Twilio's date format: 'Tue, 31 Aug 2010 20:36:28 +0000'."""
    return email.utils.format_datetime(moment) if moment else None


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def formatted(number: str) -> str:
    """How Twilio formats a number for display: '(415) 555-0100' in the NANP."""
    if re.fullmatch(r"\+1\d{10}", number):
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """SMS segments: GSM-7 160/153 characters, else UCS-2 70/67 code units."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in body):
        units, single, multi = sum(2 if c in GSM7_EXTENSION else 1 for c in body), 160, 153
    else:
        units, single, multi = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def is_rfc2822(value: Any) -> bool:
    if not isinstance(value, str) or not re.fullmatch(
        r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}", value
    ):
        return False
    try:
        email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return True


def is_uri_reference(value: Any) -> bool:
    """RFC 3986 URI-reference characters. Twilio's list pages give relative 'uri' values,
    so the document's 'uri' format cannot mean absolute URI."""
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*", value) is not None


def is_absolute_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "_" not in parts.hostname


class TwilioError(Exception):
    """An error answered with Twilio's error body. `violation` marks a contract breach."""

    def __init__(self, status: int, code: int, message: str, violation: bool = False):
        super().__init__(message)
        self.status, self.code, self.message, self.violation = status, code, message, violation

    def body(self) -> dict:
        return error_body(self.status, self.code, self.message)


def not_found(uri: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {uri} was not found")


class ControlError(Exception):
    """A control API request the double cannot carry out."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def error_body(status: int, code: int, message: str) -> dict:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


# --------------------------------------------------------------------------- contract


@dataclasses.dataclass
class OAIRequest:
    """The request shape openapi-core validates (its Request protocol)."""

    path: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: Optional[bytes]
    host_url: str = TWILIO_HOST


@dataclasses.dataclass
class OAIResponse:
    status_code: int
    data: bytes
    content_type: str
    headers: Headers = dataclasses.field(default_factory=Headers)


def describe(err: Exception) -> str:
    """One readable line per openapi-core error, with the schema errors it wraps."""
    cause = err.__cause__
    schema_errors = getattr(cause, "schema_errors", ())
    if not schema_errors:
        return str(err) if cause is None or str(cause) in str(err) else f"{err}: {cause}"
    if isinstance(err, ParameterValidationError):
        where = f"{err.location} parameter {err.name}"
    elif isinstance(err, ResponseValidationError):
        where = "response body"
    else:
        where = "request body"
    return "; ".join(f"{where}{' ' + '.'.join(map(str, e.path)) if e.path else ''}: {e.message}" for e in schema_errors)


class Contract:
    """Twilio's OpenAPI document and openapi-core's validation of requests and responses."""

    def __init__(self, spec_path: Path):
        self.doc = json.loads(spec_path.read_text(encoding="utf-8"))
        # The document uses Twilio's own formats. openapi-core refuses to unmarshal a
        # format it has no checker for, so each gets one: the two whose meaning is
        # plain are checked, the rest (endpoint, phone-number, http-method, ...) are
        # Twilio-internal hints and accepted as they are.
        formats = {"date-time-rfc-2822": is_rfc2822, "uri": is_uri_reference}
        for name in self._formats(self.doc) - {"date", "date-time", "int32", "int64"} - set(formats):
            formats[name] = lambda value: True
        # The vendored document is Twilio's published one; re-validating the 1.9 MB
        # spec itself would add a second to every start.
        self.api = OpenAPI.from_dict(self.doc, config=Config(spec_validator_cls=None, extra_format_validators=formats))
        self.lock = threading.Lock()
        self.schemas = self.doc["components"]["schemas"]

    @staticmethod
    def _formats(node: Any) -> set:
        if isinstance(node, dict):
            found = {node["format"]} if isinstance(node.get("format"), str) else set()
            return found.union(*(Contract._formats(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(Contract._formats(v) for v in node))
        return set()

    def operation(self, method: str, template: str) -> dict:
        return self.doc["paths"][template][method.lower()]

    def check_request(self, req: OAIRequest) -> tuple[list[str], Optional[str]]:
        """The validation errors, and 'path' or 'method' when no operation matched."""
        with self.lock:
            result = self.api.unmarshal_request(req)
        unmatched = None
        for err in result.errors:
            if isinstance(err, OperationNotFound):
                unmatched = "method"
            elif isinstance(err, PathNotFound):
                unmatched = "path"
        return [describe(e) for e in result.errors], unmatched

    def check_response(self, req: OAIRequest, resp: OAIResponse) -> list[str]:
        with self.lock:
            result = self.api.unmarshal_response(req, resp)
        return [describe(e) for e in result.errors]

    def form_schemas(self, method: str, template: str) -> dict:
        content = self.operation(method, template).get("requestBody", {}).get("content", {})
        return content.get("application/x-www-form-urlencoded", {}).get("schema", {}).get("properties", {})

    def parameter_problems(self, method: str, template: str, query: list, form: list) -> list[str]:
        """What openapi-core lets through but Twilio's contract does not mean: parameters the
        document does not name (Twilio ignores them silently), a repeated non-array parameter
        (openapi-core checks only the first value), and booleans other than true/false
        (openapi-core also takes yes/on/1/...; Twilio's helper libraries send true/false)."""
        op = self.operation(method, template)
        query_schemas = {p["name"]: p["schema"] for p in op.get("parameters", []) if p["in"] == "query"}
        problems = []
        for where, pairs, schemas in (
            ("query", query, query_schemas),
            ("form", form, self.form_schemas(method, template)),
        ):
            names = [key for key, _ in pairs]
            for key, value in pairs:
                schema = schemas.get(key)
                if schema is None:
                    problems.append(f"{where} parameter {key} is not in the document")
                elif schema.get("type") == "boolean" and value not in ("true", "false"):
                    problems.append(f"{where} parameter {key}={value!r}: booleans are sent as true or false")
                elif schema.get("type") != "array" and names.count(key) > 1:
                    problems.append(f"{where} parameter {key} is repeated but the document does not make it an array")
        return list(dict.fromkeys(problems))

    def resource(self, schema: str, **values: Any) -> dict:
        """A resource with every field of the document's schema: given values, else null."""
        fields = self.schemas[schema]["properties"]
        unknown = set(values) - set(fields)
        if unknown:
            raise KeyError(f"{schema} has no field(s) {sorted(unknown)}")
        return {name: values.get(name) for name in fields}


# --------------------------------------------------------------------------- state


@dataclasses.dataclass
class Number:
    sid: str
    phone_number: str
    friendly_name: str
    created: datetime
    updated: datetime
    urls: dict  # VoiceUrl, VoiceMethod, SmsUrl, ... as given (form parameter names)


@dataclasses.dataclass
class Call:
    sid: str
    direction: str  # outbound-api | inbound
    to: str
    from_: str
    params: dict  # create parameters as sent, repeated keys as lists
    created: datetime
    status: str = "queued"  # the REST status (call_enum_status)
    url: Optional[str] = None
    method: str = "POST"
    twiml: Optional[str] = None
    status_callback: Optional[str] = None
    status_callback_method: str = "POST"
    events: frozenset = frozenset()  # StatusCallbackEvent subscriptions
    phone_number_sid: Optional[str] = None
    answered: Optional[datetime] = None
    ended: Optional[datetime] = None
    duration: Optional[int] = None
    status_sequence: int = 0
    transcription: Optional[dict] = None  # from <Start><Transcription>
    transcription_sequence: int = 0
    stream_url: Optional[str] = None  # from <Connect><Stream> or <Start><Stream>
    updated: Optional[datetime] = None


@dataclasses.dataclass
class Message:
    sid: str
    direction: str
    to: Optional[str]
    from_: Optional[str]
    body: str
    status: str
    created: datetime
    status_callback: Optional[str]
    messaging_service_sid: Optional[str]
    num_media: int
    error_code: Optional[int] = None
    updated: Optional[datetime] = None


@dataclasses.dataclass
class Recording:
    sid: str
    call_sid: str
    duration: int
    channels: int
    started: datetime
    created: datetime
    wav: bytes


def wav_tone(seconds: int, channels: int) -> bytes:
    """8 kHz 16-bit PCM WAV: a 400 Hz tone (500 Hz on a second channel), `seconds` long."""
    rate, period = 8000, 80  # 80 samples hold whole cycles of both tones
    frame = [[int(8000 * math.sin(2 * math.pi * hz * i / rate)) for hz in (400, 500)[:channels]] for i in range(period)]
    block = b"".join(struct.pack(f"<{channels}h", *f) for f in frame)
    frames = seconds * rate
    data = block * (frames // period) + block[: (frames % period) * 2 * channels]
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(data),
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        rate,
        rate * 2 * channels,
        2 * channels,
        16,
        b"data",
        len(data),
    )
    return header + data


def available_numbers(country: str, kind: str, area_code: Optional[str]) -> list[str]:
    """Deterministic made-up inventory: NANP +1{area}555NNNN, UK Ofcom drama ranges."""
    if country in ("US", "CA") and kind in ("Local", "Mobile", "TollFree"):
        default = "800" if kind == "TollFree" else {"US": "415", "CA": "604"}[country]
        area = area_code or default
        if (kind == "TollFree") != (area in NANP_TOLL_FREE):
            return []
        return [f"+1{area}555{n:04d}" for n in range(10000)]
    if country == "GB" and area_code is None:
        prefix = {"Local": "+442079460", "Mobile": "+447700900", "TollFree": "+448081570"}.get(kind)
        return [f"{prefix}{n:03d}" for n in range(1000)] if prefix else []
    return []


KEYPAD = {
    c: d
    for d, letters in {
        "2": "ABC",
        "3": "DEF",
        "4": "GHI",
        "5": "JKL",
        "6": "MNO",
        "7": "PQRS",
        "8": "TUV",
        "9": "WXYZ",
    }.items()
    for c in letters
}


def contains_pattern(pattern: str) -> re.Pattern:
    """Twilio's Contains: digits, '*' for any digit, letters as keypad digits, anywhere."""
    return re.compile("".join(r"\d" if c == "*" else KEYPAD.get(c.upper(), re.escape(c)) for c in pattern))


def number_type(number: str) -> str:
    if number.startswith("+1") and number[2:5] in NANP_TOLL_FREE:
        return "tollfree"
    return "mobile" if number.startswith("+447") else "local"


# --------------------------------------------------------------------------- the double


class Double:
    """State, REST handlers, callbacks and control handlers."""

    def __init__(self, account_sid: str, auth_token: str, contract: Contract):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.contract = contract
        self.validator = RequestValidator(auth_token)
        self.base_url = ""  # http://127.0.0.1:PORT, set once listening
        self.created = now()
        self.lock = threading.RLock()
        self.numbers: dict[str, Number] = {}
        self.calls: dict[str, Call] = {}
        self.messages: dict[str, Message] = {}
        self.recordings: dict[str, Recording] = {}
        self.requests: list[dict] = []
        self.violations: list[dict] = []
        self.callbacks: list[dict] = []
        self.failures: list[dict] = []
        self.routes = [
            ("GET", ACCOUNTS + "/{Sid}.json", self.fetch_account),
            ("GET", A + "/AvailablePhoneNumbers/{CountryCode}/Local.json", self.list_available("Local")),
            ("GET", A + "/AvailablePhoneNumbers/{CountryCode}/TollFree.json", self.list_available("TollFree")),
            ("GET", A + "/AvailablePhoneNumbers/{CountryCode}/Mobile.json", self.list_available("Mobile")),
            ("POST", A + "/IncomingPhoneNumbers.json", self.buy_number),
            ("GET", A + "/IncomingPhoneNumbers.json", self.list_numbers),
            ("POST", A + "/IncomingPhoneNumbers/{Sid}.json", self.update_number),
            ("GET", A + "/IncomingPhoneNumbers/{Sid}.json", self.fetch_number),
            ("DELETE", A + "/IncomingPhoneNumbers/{Sid}.json", self.release_number),
            ("POST", A + "/Calls.json", self.create_call),
            ("POST", A + "/Calls/{Sid}.json", self.update_call),
            ("GET", A + "/Calls/{Sid}.json", self.fetch_call),
            ("POST", A + "/Messages.json", self.create_message),
            ("GET", A + "/Messages/{Sid}.json", self.fetch_message),
            ("GET", A + "/Recordings/{Sid}.json", self.fetch_recording),
        ]
        self.route_patterns = [
            (
                method,
                template,
                re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"),
                handler,
            )
            for method, template, handler in self.routes
        ]

    # ---- bookkeeping

    def violation(self, kind: str, method: str, path: str, errors: list[str]) -> None:
        with self.lock:
            self.violations.append({"kind": kind, "method": method, "path": path, "errors": errors})
        log.warning("contract violation (%s) %s %s: %s", kind, method, path, "; ".join(errors))

    def take_failure(self, method: str, path: str) -> Optional[dict]:
        with self.lock:
            for rule in self.failures:
                if path.endswith(rule["path_suffix"]) and rule["method"] in (None, method):
                    rule["times"] -= 1
                    if rule["times"] <= 0:
                        self.failures.remove(rule)
                    return rule
        return None

    def auth_ok(self, header: Optional[str]) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).partition(b":")
        except ValueError:
            return False
        return hmac.compare_digest(user, self.account_sid.encode()) and hmac.compare_digest(
            password, self.auth_token.encode()
        )

    def uri(self, *parts: str) -> str:
        return f"{ACCOUNTS}/{self.account_sid}/" + "/".join(parts)

    # ---- REST entry point

    def handle_rest(
        self, method: str, path: str, query: list, body: bytes, headers
    ) -> tuple[int, Optional[dict], dict]:
        """Answer one REST request: (status, JSON body or None, extra headers)."""
        content_type = headers.get("Content-Type", "")
        form = (
            parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            if "x-www-form-urlencoded" in content_type
            else []
        )
        entry = {
            "method": method,
            "path": path,
            "query": [list(p) for p in query],
            "form": [list(p) for p in form],
            "auth_ok": self.auth_ok(headers.get("Authorization")),
            "valid": False,
            "errors": [],
        }
        with self.lock:
            self.requests.append(entry)
        if not entry["auth_ok"]:
            return 401, error_body(401, 20003, "Authenticate"), {"WWW-Authenticate": 'Basic realm="Twilio API"'}
        account = re.match(rf"^{ACCOUNTS}/([^/]+?)(?:\.json)?(?:/|$)", path)
        if account and account.group(1) != self.account_sid:
            return 404, not_found(path).body(), {}

        oai_request = OAIRequest(
            path=path,
            method=method.lower(),
            content_type=content_type,
            body=body or None,
            parameters=RequestParameters(query=ImmutableMultiDict(query), header=Headers(list(headers.items()))),
        )
        errors, unmatched = self.contract.check_request(oai_request)
        entry["valid"] = not errors
        route = next(
            ((m, t, p.match(path), h) for m, t, p, h in self.route_patterns if m == method and p.match(path)), None
        )
        if errors:
            entry["errors"] += errors
            self.violation("request", method, path, errors)
        elif route is None:
            entry["errors"].append("the double does not implement this operation")
            self.violation("unimplemented", method, path, entry["errors"])
        else:
            problems = self.contract.parameter_problems(method, route[1], query, form)
            if problems:
                entry["errors"] += problems
                self.violation("parameter", method, path, problems)

        rule = self.take_failure(method, path)
        if rule:
            time.sleep(rule["delay_ms"] / 1000)
            if rule["status"]:
                return rule["status"], error_body(rule["status"], rule["code"], rule["message"]), {}
        if unmatched == "path" or (route is None and not errors):
            return 404, not_found(path).body(), {}
        if unmatched == "method":
            return 405, error_body(405, 20004, "Method not allowed"), {}
        if errors:
            return 400, error_body(400, 21000, "; ".join(errors)), {}

        _, template, match, handler = route
        schemas = self.contract.form_schemas(method, template) if method == "POST" else {}
        params: dict[str, Any] = {}
        for key, value in form:
            if schemas.get(key, {}).get("type") == "array":
                params.setdefault(key, []).append(value)
            else:  # the first value, the one openapi-core validated
                params.setdefault(key, value)
        try:
            status, payload = handler(match.groupdict(), params, dict(query))
        except TwilioError as err:
            if err.violation:
                entry["errors"].append(err.message)
                self.violation("semantic", method, path, [err.message])
            return err.status, err.body(), {}

        problems = self.contract.check_response(
            oai_request,
            OAIResponse(
                status,
                json.dumps(payload).encode() if payload is not None else b"",
                "application/json" if payload is not None else "",
            ),
        )
        if problems:
            self.violation("response", method, path, problems)
        with self.lock:
            entry["status"], entry["response"] = status, payload
        return status, payload, {}

    # ---- account

    def fetch_account(self, path: dict, params: dict, query: dict):
        sub = {
            "available_phone_numbers": "AvailablePhoneNumbers.json",
            "calls": "Calls.json",
            "incoming_phone_numbers": "IncomingPhoneNumbers.json",
            "messages": "Messages.json",
            "recordings": "Recordings.json",
        }
        return 200, self.contract.resource(
            "api.v2010.account",
            auth_token=self.auth_token,
            date_created=rfc2822(self.created),
            date_updated=rfc2822(self.created),
            friendly_name="dialtone test account",
            owner_account_sid=self.account_sid,
            sid=self.account_sid,
            status="active",
            subresource_uris={name: self.uri(file) for name, file in sub.items()},
            type="Full",
            uri=f"{ACCOUNTS}/{self.account_sid}.json",
        )

    # ---- phone numbers

    def list_available(self, kind: str):
        def handler(path: dict, params: dict, query: dict):
            country = path["CountryCode"]
            candidates = available_numbers(country, kind, query.get("AreaCode"))
            if "Contains" in query:
                pattern = contains_pattern(query["Contains"])
                candidates = [n for n in candidates if pattern.search(n[1:])]
            with self.lock:
                owned = {n.phone_number for n in self.numbers.values()}
            picked = [n for n in candidates if n not in owned][: int(query.get("PageSize", 50))]
            items = [
                self.contract.resource(
                    "api.v2010.account.available_phone_number_country.available_phone_number_local",
                    friendly_name=formatted(n),
                    phone_number=n,
                    iso_country=country,
                    address_requirements="none",
                    beta=False,
                    capabilities={"voice": True, "sms": True, "mms": True, "fax": False},
                )
                for n in picked
            ]
            return 200, {
                "available_phone_numbers": items,
                "uri": self.uri("AvailablePhoneNumbers", country, f"{kind}.json"),
            }

        return handler

    URL_FIELDS = ("VoiceUrl", "VoiceFallbackUrl", "SmsUrl", "SmsFallbackUrl", "StatusCallback")
    NUMBER_FIELDS = URL_FIELDS + (
        "VoiceMethod",
        "VoiceFallbackMethod",
        "SmsMethod",
        "SmsFallbackMethod",
        "StatusCallbackMethod",
    )

    def check_urls(self, params: dict, names) -> None:
        for name in names:
            value = params.get(name)
            if value and not is_absolute_http_url(value):
                raise TwilioError(
                    400,
                    21205,
                    f"{name} is not a valid URL: {value!r} (Twilio needs an absolute http(s) URL)",
                    violation=True,
                )

    def number_resource(self, number: Number) -> dict:
        u = number.urls
        return self.contract.resource(
            "api.v2010.account.incoming_phone_number",
            account_sid=self.account_sid,
            address_requirements="none",
            api_version=API_VERSION,
            beta=False,
            capabilities={"voice": True, "sms": True, "mms": True, "fax": False},
            date_created=rfc2822(number.created),
            date_updated=rfc2822(number.updated),
            friendly_name=number.friendly_name,
            phone_number=number.phone_number,
            origin="twilio",
            sid=number.sid,
            sms_fallback_method=u.get("SmsFallbackMethod", "POST"),
            sms_fallback_url=u.get("SmsFallbackUrl"),
            sms_method=u.get("SmsMethod", "POST"),
            sms_url=u.get("SmsUrl"),
            status_callback=u.get("StatusCallback"),
            status_callback_method=u.get("StatusCallbackMethod", "POST"),
            uri=self.uri("IncomingPhoneNumbers", f"{number.sid}.json"),
            voice_receive_mode="voice",
            voice_caller_id_lookup=False,
            voice_fallback_method=u.get("VoiceFallbackMethod", "POST"),
            voice_fallback_url=u.get("VoiceFallbackUrl"),
            voice_method=u.get("VoiceMethod", "POST"),
            voice_url=u.get("VoiceUrl"),
            emergency_status="Inactive",
            emergency_address_status="unregistered",
            status="in-use",
            type=number_type(number.phone_number),
        )

    def own(self, phone_number: str, params: dict) -> Number:
        """Add a number to the account (caller holds the lock and checked it is free)."""
        moment = now()
        urls = {k: params[k] for k in self.NUMBER_FIELDS if params.get(k)}
        number = Number(
            new_sid("PN"), phone_number, params.get("FriendlyName") or formatted(phone_number), moment, moment, urls
        )
        self.numbers[number.sid] = number
        return number

    def buy_number(self, path: dict, params: dict, query: dict):
        self.check_urls(params, self.URL_FIELDS)
        with self.lock:
            owned = {n.phone_number for n in self.numbers.values()}
            wanted = params.get("PhoneNumber")
            if wanted:
                if wanted in owned:
                    raise TwilioError(400, 21422, f"PhoneNumber {wanted} is not available")
            elif params.get("AreaCode"):
                free = [n for n in available_numbers("US", "Local", params["AreaCode"]) if n not in owned]
                if not free:
                    raise TwilioError(400, 21452, f"No phone numbers found in area code {params['AreaCode']}")
                wanted = free[0]
            else:
                raise TwilioError(400, 21421, "A 'PhoneNumber' or 'AreaCode' parameter is required", violation=True)
            number = self.own(wanted, params)
        return 201, self.number_resource(number)

    def list_numbers(self, path: dict, params: dict, query: dict):
        with self.lock:
            numbers = sorted(self.numbers.values(), key=lambda n: n.created)
        if "PhoneNumber" in query:
            numbers = [n for n in numbers if query["PhoneNumber"] in n.phone_number]
        if "FriendlyName" in query:
            numbers = [n for n in numbers if n.friendly_name == query["FriendlyName"]]
        return 200, self.page(
            "IncomingPhoneNumbers.json", "incoming_phone_numbers", [self.number_resource(n) for n in numbers], query
        )

    def page(self, resource: str, key: str, items: list, query: dict) -> dict:
        size, index = int(query.get("PageSize", 50)), int(query.get("Page", 0))
        base = self.uri(resource)
        filters = urlencode([(k, v) for k, v in query.items() if k not in ("PageSize", "Page", "PageToken")])
        rest = "&" + filters if filters else ""

        def link(page: int) -> str:
            return f"{base}?PageSize={size}&Page={page}{rest}"

        chunk = items[index * size : (index + 1) * size]
        return {
            key: chunk,
            "page": index,
            "page_size": size,
            "start": index * size,
            "end": index * size + max(len(chunk) - 1, 0),
            "uri": link(index),
            "first_page_uri": link(0),
            "next_page_uri": link(index + 1) if (index + 1) * size < len(items) else None,
            "previous_page_uri": link(index - 1) if index > 0 else None,
        }

    def number_by_sid(self, sid: str) -> Number:
        number = self.numbers.get(sid)
        if number is None:
            raise not_found(self.uri("IncomingPhoneNumbers", f"{sid}.json"))
        return number

    def update_number(self, path: dict, params: dict, query: dict):
        self.check_urls(params, self.URL_FIELDS)
        with self.lock:
            number = self.number_by_sid(path["Sid"])
            for key in self.NUMBER_FIELDS:
                if key in params:
                    if params[key]:
                        number.urls[key] = params[key]
                    else:  # an empty value clears the setting
                        number.urls.pop(key, None)
            if params.get("FriendlyName"):
                number.friendly_name = params["FriendlyName"]
            number.updated = now()
            return 200, self.number_resource(number)

    def fetch_number(self, path: dict, params: dict, query: dict):
        with self.lock:
            return 200, self.number_resource(self.number_by_sid(path["Sid"]))

    def release_number(self, path: dict, params: dict, query: dict):
        with self.lock:
            del self.numbers[self.number_by_sid(path["Sid"]).sid]
        return 204, None

    def owned_number(self, phone_number: Optional[str]) -> Optional[Number]:
        with self.lock:
            return next((n for n in self.numbers.values() if n.phone_number == phone_number), None)

    # ---- calls

    def call_resource(self, call: Call) -> dict:
        return self.contract.resource(
            "api.v2010.account.call",
            sid=call.sid,
            date_created=rfc2822(call.created),
            date_updated=rfc2822(call.updated or call.created),
            account_sid=self.account_sid,
            to=call.to,
            to_formatted=formatted(call.to),
            **{"from": call.from_},
            from_formatted=formatted(call.from_),
            phone_number_sid=call.phone_number_sid,
            status=call.status,
            start_time=rfc2822(call.answered),
            end_time=rfc2822(call.ended),
            duration=None if call.duration is None else str(call.duration),
            price_unit="USD",
            direction=call.direction,
            api_version=API_VERSION,
            queue_time="0",
            uri=self.uri("Calls", f"{call.sid}.json"),
            subresource_uris={
                name: self.uri("Calls", call.sid, f"{name.title().replace('_', '')}.json")
                for name in ("notifications", "recordings", "events", "streams", "transcriptions")
            },
        )

    def create_call(self, path: dict, params: dict, query: dict):
        if not params.get("Url") and not params.get("Twiml"):
            raise TwilioError(400, 21205, "A 'Url' or 'Twiml' parameter is required", violation=True)
        self.check_urls(params, ("Url", "FallbackUrl", "StatusCallback", "RecordingStatusCallback"))
        events = params.get("StatusCallbackEvent", [])
        allowed = self.contract.schemas["call_enum_event"]["enum"]
        wrong = [e for e in events if e not in allowed]
        if wrong:
            raise TwilioError(
                400,
                21000,
                f"StatusCallbackEvent {wrong} not in call_enum_event {allowed}; send each event as its own parameter",
                violation=True,
            )
        number = self.owned_number(params["From"])
        if number is None:
            raise TwilioError(
                400, 21210, f"The source phone number provided, {params['From']}, is not yet verified for your account"
            )
        call = Call(
            sid=new_sid("CA"),
            direction="outbound-api",
            to=params["To"],
            from_=params["From"],
            params=params,
            created=now(),
            url=params.get("Url"),
            method=params.get("Method", "POST"),
            status_callback=params.get("StatusCallback"),
            status_callback_method=params.get("StatusCallbackMethod", "POST"),
            events=frozenset(events),
            phone_number_sid=number.sid,
        )
        if params.get("Twiml"):
            self.keep_twiml(call, params["Twiml"], "POST", call.sid)
        with self.lock:
            self.calls[call.sid] = call
        return 201, self.call_resource(call)

    def call_by_sid(self, sid: str) -> Call:
        call = self.calls.get(sid)
        if call is None:
            raise not_found(self.uri("Calls", f"{sid}.json"))
        return call

    def fetch_call(self, path: dict, params: dict, query: dict):
        with self.lock:
            return 200, self.call_resource(self.call_by_sid(path["Sid"]))

    def update_call(self, path: dict, params: dict, query: dict):
        self.check_urls(params, ("Url", "FallbackUrl", "StatusCallback"))
        with self.lock:
            call = self.call_by_sid(path["Sid"])
            call.status_callback = params.get("StatusCallback", call.status_callback)
            call.status_callback_method = params.get("StatusCallbackMethod", call.status_callback_method)
            if params.get("Url"):  # a redirect: the next TwiML fetch goes there
                call.url, call.method = params["Url"], params.get("Method", "POST")
            if params.get("Twiml"):
                self.keep_twiml(call, params["Twiml"], "POST", path["Sid"])
            hangup = None
            live = call.status in ("queued", "ringing", "in-progress")
            # Twilio: 'canceled' hangs up queued or ringing calls only; 'completed' any live call.
            if params.get("Status") == "completed" and live:
                hangup = "completed" if call.status == "in-progress" else "canceled"
            elif params.get("Status") == "canceled" and call.status in ("queued", "ringing"):
                hangup = "canceled"
            job = self.status_step(call, {"status": hangup}) if hangup else None
            call.updated = now()
            resource = self.call_resource(call)
        if job:  # Twilio reports the hangup asynchronously, after answering the update
            threading.Thread(target=self.deliver, args=(job, False), daemon=True).start()
        return 200, resource

    def keep_twiml(self, call: Call, twiml: str, method: str, where: str) -> None:
        """Keep the TwiML for the call and note what later steps use from it."""
        call.twiml = twiml
        try:
            root = ET.fromstring(twiml)
        except ET.ParseError as err:
            self.violation("twiml", method, where, [f"TwiML for {call.sid} is not XML: {err}"])
            return
        if root.tag != "Response":
            self.violation("twiml", method, where, [f"TwiML for {call.sid} has root <{root.tag}>, not <Response>"])
        node = root.find(".//Start/Transcription")
        call.transcription = (
            None
            if node is None
            else {
                "sid": new_sid("GT"),
                "url": node.get("statusCallbackUrl"),
                "method": node.get("statusCallbackMethod", "POST"),
                "language": node.get("languageCode", "en-US"),
            }
        )
        stream = root.find(".//Connect/Stream")
        if stream is None:
            stream = root.find(".//Start/Stream")
        call.stream_url = None if stream is None else stream.get("url")

    # ---- messages

    def message_resource(self, m: Message) -> dict:
        return self.contract.resource(
            "api.v2010.account.message",
            body=m.body,
            num_segments=str(num_segments(m.body)),
            direction=m.direction,
            to=m.to,
            **{"from": m.from_},
            date_updated=rfc2822(m.updated or m.created),
            uri=self.uri("Messages", f"{m.sid}.json"),
            account_sid=self.account_sid,
            num_media=str(m.num_media),
            status=m.status,
            messaging_service_sid=m.messaging_service_sid,
            sid=m.sid,
            date_created=rfc2822(m.created),
            date_sent=rfc2822(m.updated) if m.status in ("sent", "delivered", "undelivered") else None,
            error_code=m.error_code,
            price_unit="USD",
            api_version=API_VERSION,
            subresource_uris={"media": self.uri("Messages", m.sid, "Media.json")},
        )

    def create_message(self, path: dict, params: dict, query: dict):
        if not params.get("From") and not params.get("MessagingServiceSid"):
            raise TwilioError(400, 21603, "A 'From' phone number is required", violation=True)
        if not params.get("Body") and not params.get("MediaUrl") and not params.get("ContentSid"):
            raise TwilioError(400, 21602, "Message body is required", violation=True)
        self.check_urls(params, ("StatusCallback",))
        if params.get("From") and self.owned_number(params["From"]) is None:
            raise TwilioError(
                400,
                21606,
                f"The From phone number {params['From']} is not a valid, SMS-capable inbound phone number"
                " or short code for your account",
            )
        message = Message(
            sid=new_sid("SM"),
            direction="outbound-api",
            to=params["To"],
            from_=params.get("From"),
            body=params.get("Body", ""),
            status="queued" if params.get("From") else "accepted",
            created=now(),
            status_callback=params.get("StatusCallback"),
            messaging_service_sid=params.get("MessagingServiceSid"),
            num_media=len(params.get("MediaUrl", [])),
        )
        with self.lock:
            self.messages[message.sid] = message
        return 201, self.message_resource(message)

    def fetch_message(self, path: dict, params: dict, query: dict):
        with self.lock:
            message = self.messages.get(path["Sid"])
            if message is None:
                raise not_found(self.uri("Messages", f"{path['Sid']}.json"))
            return 200, self.message_resource(message)

    # ---- recordings

    def recording_resource(self, r: Recording) -> dict:
        return self.contract.resource(
            "api.v2010.account.recording",
            account_sid=self.account_sid,
            api_version=API_VERSION,
            call_sid=r.call_sid,
            date_created=rfc2822(r.created),
            date_updated=rfc2822(r.created),
            start_time=rfc2822(r.started),
            duration=str(r.duration),
            sid=r.sid,
            price_unit="USD",
            status="completed",
            channels=r.channels,
            source="OutboundAPI",
            uri=self.uri("Recordings", f"{r.sid}.json"),
            subresource_uris={"transcriptions": self.uri("Recordings", r.sid, "Transcriptions.json")},
            media_url=self.base_url + self.uri("Recordings", r.sid),
        )

    def fetch_recording(self, path: dict, params: dict, query: dict):
        with self.lock:
            recording = self.recordings.get(path["Sid"])
            if recording is None:
                raise not_found(self.uri("Recordings", f"{path['Sid']}.json"))
            return 200, self.recording_resource(recording)

    def recording_media(self, method: str, path: str, headers) -> tuple[int, dict, bytes]:
        """GET …/Recordings/{Sid}[.wav|.mp3]: the WAV, with single-range support."""
        entry = {
            "method": method,
            "path": path,
            "query": [],
            "form": [],
            "auth_ok": self.auth_ok(headers.get("Authorization")),
            "valid": True,
            "errors": [],
        }
        with self.lock:
            self.requests.append(entry)
        match = MEDIA_PATH.match(path)

        def error(status: int, code: int, message: str):
            return (
                status,
                {"Content-Type": "application/json; charset=utf-8"},
                json.dumps(error_body(status, code, message)).encode(),
            )

        if not entry["auth_ok"]:
            return error(401, 20003, "Authenticate")
        with self.lock:
            recording = self.recordings.get(match["sid"]) if match["account"] == self.account_sid else None
        if recording is None or match["ext"] == ".mp3":
            return error(
                404,
                20404,
                f"The requested resource {path} was not found" + (" (the double serves WAV only)" if recording else ""),
            )
        rule = self.take_failure(method, path)
        if rule:
            time.sleep(rule["delay_ms"] / 1000)
            if rule["status"]:
                return error(rule["status"], rule["code"], rule["message"])
        data, total = recording.wav, len(recording.wav)
        head = {"Content-Type": "audio/x-wav", "Accept-Ranges": "bytes"}
        wanted = headers.get("Range")
        if not wanted:
            return 200, head, data
        single = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
        if not single or single.group(1) == single.group(2) == "":
            return 200, head, data  # a multi-range or malformed header may be ignored (RFC 9110)
        first, last = single.groups()
        if first == "":  # suffix range: the last N bytes
            start, end = max(total - int(last), 0), total - 1
        else:
            start, end = int(first), min(int(last), total - 1) if last else total - 1
        if start >= total or start > end or (first == "" and int(last) == 0):
            return 416, {"Content-Range": f"bytes */{total}", "Accept-Ranges": "bytes"}, b""
        return 206, {**head, "Content-Range": f"bytes {start}-{end}/{total}"}, data[start : end + 1]

    # ---- callbacks

    def sign(self, url: str, params: list) -> str:
        """X-Twilio-Signature as the twilio helper library computes it. Repeated keys go in
        a MultiDict: the library reads every value through getall(); a plain dict would
        keep only one."""
        return self.validator.compute_signature(url, MultiDict(params))

    def build(self, kind: str, url: str, method: str, params: list) -> dict:
        """One callback, signed and with its idempotency token, ready to deliver (maybe twice)."""
        params = [(k, str(v)) for k, v in params]
        if method.upper() == "GET":  # Twilio puts the parameters in the query and signs the full URL
            url = url + ("&" if urlsplit(url).query else "?") + urlencode(params)
            signature, body = self.sign(url, []), None
        else:
            signature, body = self.sign(url, params), urlencode(params).encode()
        return {
            "kind": kind,
            "url": url,
            "method": method.upper(),
            "params": params,
            "body": body,
            "headers": {
                "X-Twilio-Signature": signature,
                "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
                "User-Agent": "TwilioProxy/1.1",
                "Accept": "*/*",
            },
        }

    def deliver(self, job: dict, twice: bool) -> list[dict]:
        """Send a built callback (twice if asked, identically) and log what dialtone answered."""
        results = []
        for _ in range(2 if twice else 1):
            headers = dict(job["headers"])
            if job["body"] is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = urllib.request.Request(job["url"], data=job["body"], method=job["method"], headers=headers)
            try:
                with DIRECT.open(request, timeout=CALLBACK_TIMEOUT_S) as response:
                    status, text = response.status, response.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as err:
                status, text = err.code, err.read().decode("utf-8", "replace")
            except (urllib.error.URLError, OSError) as err:
                status, text = None, f"callback failed: {err}"
            result = {
                "kind": job["kind"],
                "url": job["url"],
                "method": job["method"],
                "params": [list(p) for p in job["params"]],
                "signature": job["headers"]["X-Twilio-Signature"],
                "status": status,
                "body": text,
            }
            log.info("callback %s %s -> %s", job["kind"], job["url"], status)
            with self.lock:
                self.callbacks.append(result)
            results.append(result)
        return results

    def call_params(self, call: Call, status: str) -> list:
        return [
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", call.sid),
            ("CallStatus", status),
            ("Called", call.to),
            ("Caller", call.from_),
            ("Direction", call.direction),
            ("From", call.from_),
            ("To", call.to),
        ]

    STATUS_EVENT = {
        "initiated": "initiated",
        "ringing": "ringing",
        "in-progress": "answered",
        "completed": "completed",
        "busy": "completed",
        "no-answer": "completed",
        "failed": "completed",
        "canceled": "completed",
    }
    SIP_CODE = {"completed": 200, "busy": 486, "no-answer": 487, "canceled": 487, "failed": 500}

    def status_step(self, call: Call, step: dict) -> Optional[dict]:
        """Move the call to a status (caller holds the lock); the callback to send, if any."""
        status, moment = step["status"], now()
        event = self.STATUS_EVENT[status]
        if status != "initiated":  # 'initiated' is a callback event, not a REST status
            call.status = status
        if status == "in-progress" and call.answered is None:
            call.answered = moment
        if event == "completed":
            call.ended = moment
            call.duration = (
                int(step["duration"])
                if step.get("duration") is not None
                else (int((moment - call.answered).total_seconds()) if call.answered else 0)
            )
        call.updated = moment
        if not call.status_callback or (event != "completed" and event not in call.events):
            return None
        params = self.call_params(call, status) + [
            ("CallbackSource", "call-progress-events"),
            ("SequenceNumber", call.status_sequence),
            ("Timestamp", rfc2822(moment)),
        ]
        call.status_sequence += 1
        if event == "completed":
            params += [
                ("CallDuration", call.duration),
                ("Duration", math.ceil(call.duration / 60)),
                ("SipResponseCode", step.get("sip_response_code", self.SIP_CODE[status])),
            ]
        return self.build("call-status", call.status_callback, call.status_callback_method, params)

    def fetch_twiml(self, call: Call, status: str) -> Optional[dict]:
        """Ask dialtone for the TwiML at the call's Url and keep it (a call made with Twiml has no Url)."""
        if not call.url:
            return None
        job = self.build("twiml", call.url, call.method, self.call_params(call, status))
        result = self.deliver(job, False)[0]
        if result["status"] is None or not 200 <= result["status"] < 300:
            self.violation(
                "twiml",
                call.method,
                call.url,
                [f"TwiML fetch for {call.sid} answered {result['status']}: {result['body'][:200]}"],
            )
        else:
            with self.lock:
                self.keep_twiml(call, result["body"], call.method, call.url)
        return result

    def transcription_step(self, call: Call, step: dict) -> dict:
        t = call.transcription
        if not t or not t["url"]:
            raise ControlError(409, f"call {call.sid} has no <Start><Transcription statusCallbackUrl> in its TwiML")
        event = step.get("event", "transcription-content")
        if event not in ("transcription-started", "transcription-content", "transcription-stopped"):
            raise ControlError(400, f"unknown transcription event {event!r}")
        call.transcription_sequence += 1
        params = [
            ("AccountSid", self.account_sid),
            ("CallSid", call.sid),
            ("TranscriptionSid", t["sid"]),
            ("Timestamp", now().isoformat(timespec="microseconds").replace("+00:00", "Z")),
            ("SequenceId", call.transcription_sequence),
            ("TranscriptionEvent", event),
        ]
        if event == "transcription-content":
            data = {"transcript": step.get("text", ""), "confidence": step.get("confidence", 0.93)}
            params += [
                ("Track", step.get("track", "inbound_track")),
                ("TranscriptionData", json.dumps(data, ensure_ascii=False, separators=(",", ":"))),
                ("Final", "true" if step.get("final", True) else "false"),
                ("LanguageCode", t["language"]),
            ]
        return self.build("transcription", t["url"], t["method"], params)

    def recording_step(self, call: Call, step: dict) -> Optional[dict]:
        duration = int(step.get("duration", call.duration or 5))
        channels = 2 if call.params.get("RecordingChannels") == "dual" else 1
        moment = now()
        recording = Recording(
            new_sid("RE"), call.sid, duration, channels, call.answered or moment, moment, wav_tone(duration, channels)
        )
        self.recordings[recording.sid] = recording
        url = call.params.get("RecordingStatusCallback")
        if not url or "completed" not in call.params.get("RecordingStatusCallbackEvent", ["completed"]):
            return None
        params = [
            ("AccountSid", self.account_sid),
            ("CallSid", call.sid),
            ("RecordingSid", recording.sid),
            ("RecordingUrl", self.base_url + self.uri("Recordings", recording.sid)),
            ("RecordingStatus", "completed"),
            ("RecordingDuration", duration),
            ("RecordingChannels", channels),
            ("RecordingSource", "OutboundAPI"),
            ("RecordingStartTime", rfc2822(recording.started)),
            ("ErrorCode", 0),
        ]
        return self.build("recording", url, call.params.get("RecordingStatusCallbackMethod", "POST"), params)

    # ---- control API

    def control(self, method: str, path: str, payload: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")[1:]  # after "_double"
        key = (method, parts[0] if parts else "", len(parts))
        if key == ("GET", "requests", 1):
            with self.lock:
                return 200, list(self.requests)
        if key == ("GET", "violations", 1):
            with self.lock:
                return 200, list(self.violations)
        if key == ("GET", "callbacks", 1):
            with self.lock:
                return 200, list(self.callbacks)
        if key == ("POST", "fail", 1):
            return self.add_failure(payload)
        if key == ("GET", "calls", 1):
            with self.lock:
                return 200, [self.call_view(c) for c in self.calls.values()]
        if key == ("GET", "calls", 2):
            with self.lock:
                call = self.calls.get(parts[1])
                return (200, self.call_view(call)) if call else (404, {"error": f"no call {parts[1]}"})
        if key == ("POST", "calls", 3) and parts[2] == "play":
            return self.play(parts[1], payload)
        if key == ("POST", "messages", 3) and parts[2] == "status":
            return self.message_status(parts[1], payload)
        if key == ("POST", "inbound", 2) and parts[1] == "call":
            return self.inbound_call(payload)
        if key == ("POST", "inbound", 2) and parts[1] == "sms":
            return self.inbound_sms(payload)
        if key == ("POST", "owned", 1):
            with self.lock:
                if self.owned_number(payload["phone_number"]):
                    return 409, {"error": f"{payload['phone_number']} is already owned"}
                return 201, self.number_resource(self.own(payload["phone_number"], {}))
        if key == ("POST", "sign", 1):
            return 200, self.sign_request(payload)
        if key == ("POST", "callback", 1):
            job = self.build("manual", payload["url"], payload.get("method", "POST"), payload.get("params", []))
            if "signature" in payload:
                job["headers"]["X-Twilio-Signature"] = payload["signature"]
            result = self.deliver(job, False)[0]
            return 200, {"status": result["status"], "body": result["body"]}
        return 404, {"error": f"no control endpoint {method} {path}"}

    def call_view(self, call: Call) -> dict:
        return {
            "sid": call.sid,
            "to": call.to,
            "from": call.from_,
            "status": call.status,
            "direction": call.direction,
            "params": call.params,
            "twiml": call.twiml,
            "stream_url": call.stream_url,
            "transcription_callback": call.transcription and call.transcription["url"],
            "recordings": [r.sid for r in self.recordings.values() if r.call_sid == call.sid],
        }

    def add_failure(self, rule: dict) -> tuple[int, Any]:
        status = rule.get("status")
        if not status and not rule.get("delay_ms"):
            raise ControlError(400, "a failure needs a status, a delay_ms, or both")
        failure = {
            "path_suffix": rule["path_suffix"],
            "method": rule.get("method"),
            "status": status,
            "code": rule.get("code", 20000 + status) if status else None,
            "message": rule.get("message", "Injected failure"),
            "times": int(rule.get("times", 1)),
            "delay_ms": int(rule.get("delay_ms", 0)),
        }
        with self.lock:
            self.failures.append(failure)
        return 200, failure

    def play(self, sid: str, payload: dict) -> tuple[int, Any]:
        with self.lock:
            call = self.calls.get(sid)
        if call is None:
            return 404, {"error": f"no call {sid}"}
        steps, shuffle, duplicate = (
            payload.get("steps", []),
            payload.get("shuffle", False),
            payload.get("duplicate", False),
        )
        # Silent: the call moves at "Twilio", but its callbacks are lost on the way
        # (dialtone down, a proxy failing); Twilio does not retry them.
        silent = payload.get("silent", False)
        for step in steps:
            kinds = set(step) & {"status", "fetch_twiml", "transcription", "recording"}
            if len(kinds) != 1 or set(step) - kinds - {"duration", "sip_response_code"}:
                raise ControlError(400, f"a step is one of status, fetch_twiml, transcription, recording: {step}")
            if "status" in step and step["status"] not in self.STATUS_EVENT:
                raise ControlError(400, f"unknown status {step['status']!r}")
        answer: dict = {"callbacks": []}

        def fetch():
            result = self.fetch_twiml(call, "in-progress")
            with self.lock:
                if call.answered is None:  # Twilio fetches the TwiML once the call is answered
                    call.answered, call.status = now(), "in-progress"
            answer["twiml"] = call.twiml
            if result:
                answer["callbacks"].append(result)

        def build(step: dict) -> Optional[dict]:
            with self.lock:
                if "status" in step:
                    return self.status_step(call, step)
                if "transcription" in step:
                    return self.transcription_step(call, step["transcription"])
                if "recording" in step:
                    return self.recording_step(call, step["recording"])
            return None

        if shuffle:  # TwiML first; the callbacks then arrive in a random order
            for step in steps:
                if step.get("fetch_twiml"):
                    fetch()
            jobs = [job for job in (build(s) for s in steps if not s.get("fetch_twiml")) if job]
            jobs = [job for job in jobs for _ in range(2 if duplicate else 1)]
            random.Random(payload.get("seed")).shuffle(jobs)
            for job in jobs if not silent else []:
                answer["callbacks"] += self.deliver(job, False)
        else:
            for step in steps:
                if step.get("fetch_twiml"):
                    fetch()
                    continue
                job = build(step)
                if job and not silent:
                    answer["callbacks"] += self.deliver(job, duplicate)
        return 200, answer

    def message_status(self, sid: str, payload: dict) -> tuple[int, Any]:
        status = payload["status"]
        with self.lock:
            message = self.messages.get(sid)
            if message is None:
                return 404, {"error": f"no message {sid}"}
            if not message.status_callback:
                return 409, {"error": f"message {sid} has no StatusCallback"}
            message.status, message.updated = status, now()
            error_code = payload.get("error_code")
            if error_code is None and status in ("failed", "undelivered"):
                error_code = 30008  # Twilio: unknown error
            message.error_code = error_code
            params = [
                ("AccountSid", self.account_sid),
                ("ApiVersion", API_VERSION),
                ("MessageSid", sid),
                ("SmsSid", sid),
                ("MessageStatus", status),
                ("SmsStatus", status),
                ("From", message.from_ or ""),
                ("To", message.to),
            ]
            if error_code is not None:
                params.append(("ErrorCode", error_code))
            job = self.build("message-status", message.status_callback, "POST", params)
        if payload.get("silent", False):  # the callback is lost on the way
            return 200, {"status": None, "body": ""}
        result = self.deliver(job, False)[0]
        return 200, {"status": result["status"], "body": result["body"]}

    def inbound_call(self, payload: dict) -> tuple[int, Any]:
        number = self.owned_number(payload["to"])
        if number is None or not number.urls.get("VoiceUrl"):
            return 409, {"error": f"{payload['to']} is not an owned number with a VoiceUrl"}
        call = Call(
            sid=new_sid("CA"),
            direction="inbound",
            to=payload["to"],
            from_=payload["from"],
            created=now(),
            params={"To": payload["to"], "From": payload["from"]},
            status="ringing",
            url=number.urls["VoiceUrl"],
            method=number.urls.get("VoiceMethod", "POST"),
            status_callback=number.urls.get("StatusCallback"),
            status_callback_method=number.urls.get("StatusCallbackMethod", "POST"),
            phone_number_sid=number.sid,
        )
        with self.lock:
            self.calls[call.sid] = call
        result = self.fetch_twiml(call, "ringing")
        return 200, {"call_sid": call.sid, "status": result["status"], "twiml": call.twiml}

    def inbound_sms(self, payload: dict) -> tuple[int, Any]:
        number = self.owned_number(payload["to"])
        if number is None or not number.urls.get("SmsUrl"):
            return 409, {"error": f"{payload['to']} is not an owned number with an SmsUrl"}
        body = payload.get("body", "")
        message = Message(
            sid=new_sid("SM"),
            direction="inbound",
            to=payload["to"],
            from_=payload["from"],
            body=body,
            status="received",
            created=now(),
            status_callback=None,
            messaging_service_sid=None,
            num_media=0,
        )
        with self.lock:
            self.messages[message.sid] = message
        params = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("MessageSid", message.sid),
            ("SmsMessageSid", message.sid),
            ("SmsSid", message.sid),
            ("SmsStatus", "received"),
            ("From", message.from_),
            ("To", message.to),
            ("Body", body),
            ("NumMedia", 0),
            ("NumSegments", num_segments(body)),
        ]
        job = self.build("inbound-sms", number.urls["SmsUrl"], number.urls.get("SmsMethod", "POST"), params)
        result = self.deliver(job, False)[0]
        return 200, {"message_sid": message.sid, "status": result["status"], "body": result["body"]}

    def sign_request(self, payload: dict) -> dict:
        """Sign like Twilio: form parameters, or a JSON body via the bodySHA256 query parameter."""
        url, signature = payload["url"], payload.get("signature")
        if "body" in payload:
            body = payload["body"]
            url = url + ("&" if urlsplit(url).query else "?") + "bodySHA256=" + self.validator.compute_hash(body)
            answer = {"url": url, "signature": self.validator.compute_signature(url, {})}
            if signature is not None:
                answer["valid"] = self.validator.validate(url, body, signature)
            return answer
        params = MultiDict([(k, str(v)) for k, v in payload.get("params", [])])
        answer = {"url": url, "signature": self.validator.compute_signature(url, params)}
        if signature is not None:
            answer["valid"] = self.validator.validate(url, params, signature)
        return answer


MEDIA_PATH = re.compile(
    rf"^{ACCOUNTS}/(?P<account>[^/]+)/Recordings/(?P<sid>RE[0-9a-fA-F]{{32}})(?P<ext>\.wav|\.mp3)?$"
)


# --------------------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "twilio-double"
    double: Double  # set on the subclass made in main()

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def dispatch(self):
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        method = self.command
        try:
            if parts.path.startswith("/_double/"):
                try:
                    payload = json.loads(body) if body else {}
                    status, answer = self.double.control(method, parts.path, payload)
                except ControlError as err:
                    status, answer = err.status, {"error": str(err)}
                except (KeyError, TypeError, ValueError) as err:
                    status, answer = 400, {"error": f"bad control request: {err!r}"}
                self.reply(status, {"Content-Type": "application/json"}, json.dumps(answer).encode())
            elif MEDIA_PATH.match(parts.path) and method in ("GET", "HEAD"):
                status, headers, data = self.double.recording_media(method, parts.path, self.headers)
                self.reply(status, headers, data)
            else:
                query = parse_qsl(parts.query, keep_blank_values=True)
                status, answer, headers = self.double.handle_rest(method, parts.path, query, body, self.headers)
                data = json.dumps(answer).encode() if answer is not None else b""
                content = {"Content-Type": "application/json; charset=utf-8"} if answer is not None else {}
                self.reply(status, {**content, **headers, "Twilio-Request-Id": new_sid("RQ")}, data)
        except (BrokenPipeError, ConnectionResetError):
            log.info("client went away during %s %s", method, parts.path)
        except Exception as err:  # a bug in the double: answer like Twilio would, and make the tests fail
            log.exception("double failed on %s %s", method, parts.path)
            self.double.violation("double-error", method, parts.path, [repr(err)])
            self.reply(
                500,
                {"Content-Type": "application/json; charset=utf-8"},
                json.dumps(error_body(500, 20500, f"Twilio double error: {err!r}")).encode(),
            )

    def reply(self, status: int, headers: dict, data: bytes):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, fmt, *args):
        log.info("%s %s", self.address_string(), fmt % args)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 resets clients that connect in parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--account-sid", required=True, help="AC followed by 32 hex digits")
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--spec", type=Path, default=Path(__file__).with_name("twilio_api_v2010.json"))
    args = parser.parse_args()
    if not re.fullmatch(r"AC[0-9a-fA-F]{32}", args.account_sid):
        parser.error("--account-sid must match ^AC[0-9a-fA-F]{32}$, as the document requires of AccountSid")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="twilio-double %(levelname)s %(message)s")

    double = Double(args.account_sid, args.auth_token, Contract(args.spec))
    handler = type("BoundHandler", (Handler,), {"double": double})
    server = Server(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    double.base_url = f"http://127.0.0.1:{port}"

    def watch_stdin():
        while sys.stdin.buffer.read(65536):
            pass
        log.info("stdin closed; stopping")
        server.shutdown()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(json.dumps({"port": port}), flush=True)
    log.info("serving Twilio %s for %s on %s", API_VERSION, args.account_sid, double.base_url)
    server.serve_forever()


if __name__ == "__main__":
    main()
