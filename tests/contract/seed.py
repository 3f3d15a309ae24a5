"""Creates one object of every kind through the API, so the fuzzer's requests on
`/v1/…/{id}` reach real objects and not only 404s. Prints `NAME=value` lines (shell
syntax) for schemathesis.toml, which reads them as environment variables.

Usage: seed.py BASE_URL KEY
"""

import json
import sys
import time
import urllib.error
import urllib.request

base, key = sys.argv[1], sys.argv[2]


def call(method, path, body=None):
    req = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        sys.exit(f"seed: {method} {path} answered {e.code}: {e.read().decode()}")


def wait_for(path, done, what):
    for _ in range(200):
        obj = call("GET", path)
        if done(obj):
            return obj
        time.sleep(0.1)
    sys.exit(f"seed: {what} did not happen: {json.dumps(obj)}")


out = {}
# Requests name the key's own workspace: a made-up one is a 404 that hides the handler.
out["WORKSPACE_ID"] = call("GET", "/v1/me")["default_workspace_id"]
out["CONTACT_ID"] = call("POST", "/v1/contacts", {"first_name": "Ada", "phone_number": "+15550000001"})["id"]
out["CONTACT_DELETE_ID"] = call("POST", "/v1/contacts", {"first_name": "Gone"})["id"]
call("POST", f"/v1/contacts/{out['CONTACT_ID']}/notes", {"content": "Prefers mornings"})
agent = call("POST", "/v1/agents", {"name": "Front desk", "prompt": "Be brief.", "greeting": "Hello"})
out["AGENT_ID"] = agent["id"]
out["AGENT_DELETE_ID"] = call("POST", "/v1/agents", {"name": "Retired"})["id"]
number = call("POST", "/v1/phone-numbers", {"agent_id": agent["id"]})
out["NUMBER_ID"] = number["id"]
out["NUMBER_RELEASE_ID"] = call("POST", "/v1/phone-numbers", {})["id"]
call_ = call("POST", "/v1/calls", {"to": "+15550000001", "agent_id": agent["id"]})
out["CALL_ID"] = call_["id"]
done = wait_for(
    f"/v1/calls/{call_['id']}",
    lambda c: c.get("status") in ("completed", "failed", "busy", "no_answer", "canceled"),
    "the simulated call's end",
)
out["CONVERSATION_ID"] = done["conversation_id"]
recordings = call("GET", "/v1/recordings?limit=1")["data"]
out["RECORDING_ID"] = recordings[0]["id"] if recordings else "rec_00000000000000000000000000"
out["MESSAGE_ID"] = call("POST", "/v1/messages", {"to": "+15550000001", "body": "See you at 9"})["id"]
call("POST", f"/v1/conversations/{out['CONVERSATION_ID']}/notes", {"content": "Called back"})
out["CAMPAIGN_ID"] = call(
    "POST", "/v1/campaigns", {"name": "Reminders", "agent_id": agent["id"], "recipients": ["+15550000002"]}
)["id"]
hook = call("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["contact.created"]})
out["WEBHOOK_ID"] = hook["id"]
out["WEBHOOK_DELETE_ID"] = call("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/old", "events": ["*"]})["id"]
call("POST", "/v1/contacts", {"first_name": "Event"})
deliveries = wait_for(f"/v1/webhooks/{hook['id']}/deliveries", lambda d: d["data"], "a delivery")
out["DELIVERY_ID"] = deliveries["data"][0]["id"]
out["HOOK_ID"] = call("POST", "/v1/hooks", {"url": "http://127.0.0.1:9/zap", "event": "contact.created"})["id"]
events = call("GET", "/v1/events?limit=1")["data"]
out["EVENT_ID"] = events[0]["id"] if events else "evt_00000000000000000000000000"
invoices = call("GET", "/v1/billing/invoices")["data"]
out["INVOICE_ID"] = invoices[0]["id"] if invoices else time.strftime("inv_%Y%m")
for name, value in out.items():
    print(f"{name}={value}")
