"""Signs in to dialtone's /mcp with the official MCP Python SDK's OAuth client.

Usage: oauth_drive.py PLAN_JSON
       oauth_drive.py serve-document DOCUMENT_JSON

Plan: {"url": ".../mcp", "base": "http://host:port", "cookie": "dt_session=…",
       "csrf": "…", "admin_key": "…", "redirect_uri": "http://127.0.0.1:9/callback",
       "client_name": "…", "scenario": "revoke" | "refresh" | "stepup" | "cimd" | "browser",
       "consent": "http" (the default) | "browser",
       "client_metadata_url": "https://127.0.0.1:…/oauth/client.json" (cimd only)}

`mcp.client.auth.OAuthClientProvider` does everything an assistant does: the 401,
discovery, registration (dynamic, or none with a Client ID Metadata Document), PKCE,
the token exchange, refresh. The person's part
(the consent page) is played with plain HTTP form posts under a signed-in dashboard
session: the page's own hidden fields, the default access (read-only), "Allow".
(tests/e2e drives the same page in headless Chromium.)

With `"consent": "browser"` the consent is a person's in a real browser: the script
prints `{"authorize": url}` and reads `{"callback": url}` back (one JSON line each way;
tests/e2e/dashboard.test.mjs drives Chromium through it); the report is the last line.

Scenarios, after a read-only sign-in, `tools/list` and a read:
- browser: a write tool (not offered: refused), then `{"revoke": client_name}` is
  printed and the driver revokes the grant on the keys page; the next call gets a 401.
- revoke: the grant is revoked on the dashboard keys page; the next call gets a 401
  (the SDK then asks for a new sign-in, which this script refuses and reports).
- refresh: the access token is treated as expired, the SDK refreshes (rotation), the
  old refresh token is presented again by hand, and the next call gets a 401.
- stepup: a write tool the read-only grant lacks is called anyway: dialtone answers
  403 `insufficient_scope`, the SDK re-enters authorization asking for the missing
  scope, the person allows what the consent page pre-selects, and the SDK retries.
- cimd: the SDK is given `client_metadata_url` (the document `serve-document` serves)
  and, as dialtone's metadata says `client_id_metadata_document_supported`, uses that
  URL as its client_id instead of registering; dialtone fetches the document. Then a
  write: 403 `insufficient_scope`, and the person refuses the step-up sign-in.
Prints one JSON report; the Rust test makes the asserts.

serve-document ({"client_name": "…", "redirect_uri": "…"}) serves a Client ID
Metadata Document over https on 127.0.0.1 with a self-signed certificate made for the
occasion, prints {"url": …, "root_pem": …} on one line (the document's `client_id` is
that URL; the certificate is what the test server is told to trust), and serves until
it is killed.
"""

import asyncio
import datetime
import html
import http.server
import ipaddress
import json
import os
import re
import ssl
import sys
import tempfile
import time
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx2
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info


class SignInRefused(Exception):
    pass


def preselected(page):
    """The access choices the consent page starts with: checked radios, selected options."""
    fields = []
    for tag in re.findall(r"<input [^>]*>", page):
        if 'type="radio"' in tag and re.search(r"\bchecked\b", tag):
            name = re.search(r'name="([^"]+)"', tag).group(1)
            value = re.search(r'value="([^"]*)"', tag).group(1)
            fields.append((name, value))
    for name, body in re.findall(r'<select [^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)"\s*selected', body)
        if chosen:
            fields.append((name, chosen.group(1)))
    return fields


async def ask(message):
    """Browser mode: one JSON line to the driver (stdout), its one JSON line back (stdin)."""
    print(json.dumps(message), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return json.loads(line)


async def run(plan):
    seen = []  # (method, path, status) of every request the SDK's HTTP client made
    consent = {"allowed": True, "result": None, "asked": 0, "urls": []}

    async def redirect_handler(url):
        consent["asked"] += 1
        consent["urls"].append(url)
        if not consent["allowed"]:
            raise SignInRefused(url)
        if plan.get("consent") == "browser":
            # A person in a real browser: the driver opens the URL, the person
            # chooses, and the driver hands back where the browser was sent.
            back = urlparse((await ask({"authorize": url}))["callback"])
            q = {k: v[0] for k, v in parse_qs(back.query).items()}
            consent["result"] = AuthorizationCodeResult(
                code=q.get("code"), state=q.get("state"), iss=q.get("iss")
            )
            return
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as browser:
            cookie = {"Cookie": plan["cookie"]}
            first = await browser.get(url, headers=cookie)
            assert first.status_code == 303, first.status_code
            page_url = urljoin(url, first.headers["location"])
            page = await browser.get(page_url, headers=cookie)
            assert page.status_code == 200, page.text
            fields = [
                (html.unescape(k), html.unescape(v))
                for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
            ]
            if consent["asked"] == 1:
                fields += [("access", "read"), ("decision", "approve")]
            else:
                # A step-up: the person allows what the page pre-selects.
                chosen = preselected(page.text)
                consent["preselected"] = chosen
                fields += chosen + [("decision", "approve")]
            posted = await browser.post(
                urljoin(url, "/dashboard/oauth/authorize"),
                headers={**cookie, "Content-Type": "application/x-www-form-urlencoded"},
                content=urlencode(fields),
            )
            assert posted.status_code == 303, posted.text
            back = urlparse(posted.headers["location"])
            q = {k: v[0] for k, v in parse_qs(back.query).items()}
            consent["result"] = AuthorizationCodeResult(
                code=q.get("code"), state=q.get("state"), iss=q.get("iss")
            )
            consent["page_client_name"] = "id=\"client-name\">%s<" % plan["client_name"] in page.text

    async def callback_handler():
        return consent["result"]

    storage = Memory()
    # With a metadata document the name dialtone shows comes from the document only.
    cimd = plan["scenario"] == "cimd"
    provider = OAuthClientProvider(
        server_url=plan["url"],
        client_metadata=OAuthClientMetadata(
            client_name=None if cimd else plan["client_name"],
            redirect_uris=[plan["redirect_uri"]],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=plan["client_metadata_url"] if cimd else None,
    )

    async def record(response):
        seen.append([response.request.method, response.request.url.path, response.status_code])

    http = httpx2.AsyncClient(auth=provider, timeout=30, event_hooks={"response": [record]})
    report = {"seen": seen}
    try:
        await session(plan, provider, storage, consent, seen, http, report)
    except Exception as e:  # the refused second sign-in may surface when the session closes
        if consent["asked"] < 2 or plan["scenario"] == "stepup":
            raise
        report.setdefault("after", "refused: " + type(e).__name__)
    report["after_statuses"] = [s for _, p, s in seen[report.get("before", len(seen)):] if p.endswith("/mcp")]
    report["sign_in_asked_again"] = consent["asked"] > 1
    print(json.dumps(report))


async def session(plan, provider, storage, consent, seen, http, report):
    async with Client(streamable_http_client(plan["url"], http_client=http), cache=None) as client:
        listed = await client.list_tools()
        report["tools"] = [t.name for t in listed.tools]
        read = await client.call_tool("list_contacts", {})
        report["read"] = {"is_error": bool(read.is_error), "text": read.content[0].text if read.content else ""}
        report["client_id"] = storage.client.client_id
        report["consent_asked"] = consent["asked"]
        report["page_client_name"] = consent.get("page_client_name")
        first = storage.tokens
        report["scope"] = first.scope
        report["access_token"] = first.access_token

        if plan["scenario"] == "stepup":
            write = await client.call_tool("send_message", {"to": "+14155550142", "body": "hello"})
            report["write"] = {
                "is_error": bool(write.is_error),
                "text": write.content[0].text if write.content else "",
            }
            report["consent_asked_after_write"] = consent["asked"]
            asked = parse_qs(urlparse(consent["urls"][-1]).query)
            report["step_up_scope"] = asked.get("scope", [""])[0]
            report["first_scope"] = parse_qs(urlparse(consent["urls"][0]).query).get("scope", [""])[0]
            report["preselected"] = consent.get("preselected")
            report["stepped_scope"] = storage.tokens.scope
            report["tools_after"] = [t.name for t in (await client.list_tools()).tools]
            return
        elif plan["scenario"] == "cimd":
            # A write the read-only grant lacks; the person refuses the step-up (the
            # refusal surfaces as the session ends: `after`).
            consent["allowed"] = False
            report["before"] = len(seen)
            write = await client.call_tool("send_message", {"to": "+14155550142", "body": "hello"})
            report["write"] = {"is_error": bool(write.is_error)}
            return
        elif plan["scenario"] == "browser":
            # A write this server does not offer, then the person revokes the grant on
            # the keys page in the browser.
            write = await client.call_tool("send_message", {"to": "+14155550142", "body": "hello"})
            report["write"] = {
                "is_error": bool(write.is_error),
                "text": write.content[0].text if write.content else "",
            }
            await ask({"revoke": plan["client_name"]})
        elif plan["scenario"] == "revoke":
            async with httpx2.AsyncClient(timeout=30) as plain:
                keys = await plain.get(
                    plan["base"] + "/v1/api-keys",
                    headers={"Authorization": "Bearer " + plan["admin_key"]},
                )
                grant = next(k for k in keys.json()["data"] if k["name"] == plan["client_name"])
                report["grant"] = grant
                revoked = await plain.post(
                    plan["base"] + f"/dashboard/keys/{grant['id']}/revoke",
                    headers={"Cookie": plan["cookie"], "Content-Type": "application/x-www-form-urlencoded"},
                    content=urlencode({"csrf": plan["csrf"]}),
                )
                report["revoke_status"] = revoked.status_code
        else:
            # An hour passes: the SDK sees its access token as expired and refreshes.
            provider.context.token_expiry_time = time.time() - 1
            again = await client.call_tool("list_contacts", {})
            report["after_refresh"] = {"is_error": bool(again.is_error)}
            second = storage.tokens
            report["refresh_rotated"] = second.refresh_token != first.refresh_token
            report["access_rotated"] = second.access_token != first.access_token
            async with httpx2.AsyncClient(timeout=30) as plain:
                reused = await plain.post(
                    plan["base"] + "/oauth/token",
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": first.refresh_token,
                        "client_id": storage.client.client_id,
                    },
                )
                report["reuse"] = {"status": reused.status_code, "body": reused.json()}

        consent["allowed"] = False
        report["before"] = len(seen)
        try:
            await client.call_tool("list_contacts", {})
            report["after"] = "worked"
        except Exception as e:  # the SDK wraps the refused sign-in
            report["after"] = "refused: " + type(e).__name__


def self_signed(host):
    """A key and a self-signed certificate for `host` (an IP address): PEM, PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def serve_document(doc):
    host = "127.0.0.1"
    key_pem, cert_pem = self_signed(host)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as d:
        key_file, cert_file = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
        with open(key_file, "wb") as f:
            f.write(key_pem)
        with open(cert_file, "wb") as f:
            f.write(cert_pem)
        tls.load_cert_chain(cert_file, key_file)
    body = {}

    class Document(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            found = self.path == "/oauth/client.json"
            data = json.dumps(body).encode() if found else b"{}"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((host, 0), Document)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    url = "https://%s:%d/oauth/client.json" % (host, server.server_address[1])
    body.update(client_id=url, client_name=doc["client_name"], redirect_uris=[doc["redirect_uri"]])
    print(json.dumps({"url": url, "root_pem": cert_pem.decode()}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "serve-document":
        serve_document(json.loads(sys.argv[2]))
    else:
        asyncio.run(run(json.loads(sys.argv[1])))
