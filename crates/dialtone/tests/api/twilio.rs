//! Live calls over Twilio, against a Twilio double (`tests/twilio/double.py`) that
//! checks every request dialtone sends against Twilio's own OpenAPI document and
//! signs its callbacks with Twilio's own helper library (`twilio` on PyPI). CI has no
//! internet; this is the closest thing to Twilio that runs here.
//!
//! The double lives in a virtualenv: `DIALTONE_TEST_TWILIO_PYTHON` names its
//! interpreter (`.ci/run` makes one), else one is made under `target/twilio-venv`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use dialtone_api::config::CarrierChoice;
use dialtone_telephony::twilio::TwilioConfig;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::common::TestApp;
use crate::common::{python_venv, workspace_root};
use crate::webhooks::{Receiver, fast};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token-for-tests";

fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        python_venv(
            "DIALTONE_TEST_TWILIO_PYTHON",
            "twilio-venv",
            "tests/twilio/requirements.txt",
        )
    })
}

/// A running Twilio double.
struct Double {
    url: String,
    _child: tokio::process::Child,
    http: reqwest::Client,
}

impl Double {
    async fn start() -> Double {
        dialtone_api::webhooks::install_tls_provider();
        let python = tokio::task::spawn_blocking(python)
            .await
            .expect("python setup");
        let mut child = tokio::process::Command::new(python)
            .arg(workspace_root().join("tests/twilio/double.py"))
            .args(["--account-sid", ACCOUNT, "--auth-token", TOKEN])
            // The double stops when its stdin closes: when this test drops it.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Twilio double");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(60),
            tokio::io::BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("the double starts within a minute")
        .expect("read the double's port");
        let port = serde_json::from_str::<Value>(&line).expect("port line")["port"]
            .as_u64()
            .expect("port");
        Double {
            url: format!("http://127.0.0.1:{port}"),
            _child: child,
            http: reqwest::Client::new(),
        }
    }

    fn carrier(&self) -> CarrierChoice {
        CarrierChoice::Twilio(TwilioConfig {
            account_sid: ACCOUNT.into(),
            auth_token: SecretString::from(TOKEN),
            api_url: self.url.clone(),
            timeout: Duration::from_secs(5),
        })
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/_double{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("double control");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.expect("json")
    }

    async fn get(&self, path: &str) -> Value {
        self.control(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.control(reqwest::Method::POST, path, Some(body)).await
    }

    /// The Twilio sid of the call the double received for `to`.
    async fn call_sid(&self, to: &str) -> String {
        let calls = self.get("/calls").await;
        calls
            .as_array()
            .expect("calls")
            .iter()
            .rev()
            .find(|c| c["to"] == to)
            .and_then(|c| c["sid"].as_str())
            .expect("the call reached the double")
            .to_owned()
    }

    /// The Twilio sid of the last message dialtone sent through the double.
    async fn last_message_sid(&self) -> String {
        self.get("/requests")
            .await
            .as_array()
            .expect("requests")
            .iter()
            .rev()
            .find_map(|r| {
                r["path"]
                    .as_str()
                    .filter(|p| p.ends_with("/Messages.json"))
                    .and(r["response"]["sid"].as_str())
                    .map(str::to_owned)
            })
            .expect("a message reached the double")
    }

    /// Fails the test when any request broke Twilio's published contract.
    async fn assert_no_violations(&self) {
        let v = self.get("/violations").await;
        assert_eq!(
            v,
            json!([]),
            "requests that break Twilio's OpenAPI document"
        );
    }
}

/// A server whose live carrier is the double, a live key, money, a number bought at
/// "Twilio", and a webhook endpoint listening for call and message events.
async fn live_setup(double: &Double) -> (TestApp, String, String, Receiver) {
    let carrier = double.carrier();
    let t = TestApp::spawn_with(move |c| {
        c.carrier = carrier;
        fast(c);
    })
    .await;
    let (key, from, receiver) = live_account(&t).await;
    (t, key, from, receiver)
}

/// On a running server: a live key, money, a number bought at "Twilio", a webhook.
async fn live_account(t: &TestApp) -> (String, String, Receiver) {
    let key = t.admin_key().await;
    // A local number's month (1.15) and 1.00 for calls: 50 minutes.
    t.store
        .credit_wallet(&t.org.id, true, 215, "credit")
        .await
        .expect("credit");
    let (status, number) = t
        .post("/v1/phone-numbers", &key, json!({ "area_code": "415" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{number}");
    let from = number["number"].as_str().expect("number").to_owned();
    let (receiver, url) = Receiver::start().await;
    let (status, hook) = t
        .post(
            "/v1/webhooks",
            &key,
            json!({ "url": url, "events": [
                "call.queued", "call.ringing", "call.started", "call.completed", "call.failed",
                "call.recording.ready", "call.transcript.ready",
                "message.sent", "message.delivered", "message.failed", "message.received"
            ] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    (key, from, receiver)
}

async fn call_status(t: &TestApp, key: &str, id: &str) -> Value {
    t.get(&format!("/v1/calls/{id}"), key).await.1
}

/// The types of the events the receiver got, in the order they happened (event ids
/// sort by creation), once `n` have arrived.
async fn event_types(receiver: &Receiver, n: usize) -> Vec<String> {
    receiver.wait_for(n).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut bodies = receiver.bodies();
    bodies.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    bodies
        .iter()
        .map(|b| b["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Every callback the double sent got a 2xx from dialtone.
fn all_accepted(played: &Value) {
    for cb in played["callbacks"].as_array().expect("callbacks") {
        assert!(
            cb["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s)),
            "dialtone refused a genuine callback: {cb}"
        );
    }
}

#[tokio::test]
async fn a_live_call_goes_through_twilio_and_is_charged_by_the_reported_duration() {
    let double = Double::start().await;
    let (t, key, from, receiver) = live_setup(&double).await;
    // The number was bought at Twilio with its calls and messages pointed at dialtone.
    let bought = double.get("/requests").await;
    let buy = bought
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/IncomingPhoneNumbers.json"))
                && r["method"] == "POST"
        })
        .expect("a purchase at Twilio");
    let form = buy["form"].to_string();
    assert!(
        form.contains("/carrier/twilio/voice") && form.contains("/carrier/twilio/sms"),
        "{form}"
    );

    // An agent that greets, then hands the call to the customer's own voice AI.
    let (status, agent) = t
        .post(
            "/v1/agents",
            &key,
            json!({ "name": "Front desk", "greeting": "Hi, this is Acme.", "voice": "Polly.Joanna",
                    "stream_url": "wss://voice.example.com/twilio" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");

    let to = "+14155550123";
    let (status, call) = t
        .post(
            "/v1/calls",
            &key,
            json!({ "to": to, "from": from, "agent_id": agent["id"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    assert_eq!(call["status"], "queued");
    let id = call["id"].as_str().expect("id").to_owned();
    let sid = double.call_sid(to).await;
    let placed = double.get(&format!("/calls/{sid}")).await;
    assert_eq!(
        placed["params"]["TimeLimit"], "3000",
        "what 1.00 covers at 2¢ a minute"
    );

    let said = |track: &str, text: &str, final_: bool| json!({ "transcription": { "track": track, "text": text, "final": final_ } });
    let played = double
        .post(
            &format!("/calls/{sid}/play"),
            json!({ "steps": [
                { "status": "initiated" },
                { "status": "ringing" },
                { "fetch_twiml": true },
                { "status": "in-progress" },
                { "transcription": { "event": "transcription-started" } },
                said("outbound_track", "Hi, this is Acme.", true),
                said("inbound_track", "Hello, who", false),
                said("inbound_track", "Hello, who is this?", true),
                { "status": "completed", "duration": 62 },
                { "recording": { "duration": 62 } },
                { "transcription": { "event": "transcription-stopped" } },
            ] }),
        )
        .await;
    all_accepted(&played);
    let twiml = played["twiml"].as_str().expect("twiml");
    let (transcribe, greet, stream) = (
        twiml
            .find("<Transcription statusCallbackUrl=")
            .expect(twiml),
        twiml
            .find("<Say voice=\"Polly.Joanna\" language=\"en-US\">Hi, this is Acme.</Say>")
            .expect(twiml),
        twiml
            .find("<Connect><Stream url=\"wss://voice.example.com/twilio\"/></Connect>")
            .expect(twiml),
    );
    assert!(transcribe < greet && greet < stream, "{twiml}");
    let at_twilio = double.get(&format!("/calls/{sid}")).await;
    assert_eq!(at_twilio["stream_url"], "wss://voice.example.com/twilio");

    let done = call_status(&t, &key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["duration_seconds"], 62);
    assert_eq!(done["cost"], 4, "two started minutes at 2¢");
    let (_, wallet) = t.get("/v1/billing/wallet", &key).await;
    assert_eq!(wallet["balance"], 100 - 4, "{wallet}");

    assert_eq!(
        event_types(&receiver, 6).await,
        [
            "call.queued",
            "call.ringing",
            "call.started",
            "call.completed",
            "call.recording.ready",
            "call.transcript.ready",
        ]
    );

    // The transcript: final results only, the speaker from the track.
    let (status, transcript) = t.get(&format!("/v1/calls/{id}/transcript"), &key).await;
    assert_eq!(status, StatusCode::OK, "{transcript}");
    let lines: Vec<(&str, &str)> = transcript["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| {
            (
                s["speaker"].as_str().unwrap_or(""),
                s["text"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("agent", "Hi, this is Acme."),
            ("caller", "Hello, who is this?")
        ]
    );

    // The recording, streamed from Twilio with the account's credentials; players seek.
    let (_, recordings) = t.get(&format!("/v1/recordings?call_id={id}"), &key).await;
    let recording = &recordings["data"][0];
    assert_eq!(recording["duration_seconds"], 62, "{recordings}");
    let media = recording["media_url"].as_str().expect("media_url");
    let http = reqwest::Client::new();
    let whole = http.get(media).send().await.expect("media");
    assert_eq!(whole.status(), StatusCode::OK);
    let whole = whole.bytes().await.expect("bytes");
    assert!(whole.starts_with(b"RIFF"), "a WAV file");
    let part = http
        .get(media)
        .header("range", "bytes=100-199")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{}", whole.len()).as_str()
    );
    assert_eq!(&part.bytes().await.expect("bytes")[..], &whole[100..200]);
    double.assert_no_violations().await;
    t.finish().await;
}

#[tokio::test]
async fn shuffled_and_repeated_callbacks_only_move_a_call_forward() {
    let double = Double::start().await;
    let (t, key, from, receiver) = live_setup(&double).await;
    let to = "+14155550124";
    let (_, call) = t
        .post("/v1/calls", &key, json!({ "to": to, "from": from }))
        .await;
    let id = call["id"].as_str().expect("id").to_owned();
    let sid = double.call_sid(to).await;
    let played = double
        .post(
            &format!("/calls/{sid}/play"),
            json!({ "shuffle": true, "duplicate": true, "seed": 7, "steps": [
                { "fetch_twiml": true },
                { "status": "ringing" },
                { "status": "in-progress" },
                { "transcription": { "track": "inbound_track", "text": "Hello?" } },
                { "status": "completed", "duration": 61 },
                { "recording": { "duration": 61 } },
                { "transcription": { "event": "transcription-stopped" } },
            ] }),
        )
        .await;
    all_accepted(&played);
    assert_eq!(played["callbacks"].as_array().map(Vec::len), Some(1 + 12));
    let done = call_status(&t, &key, &id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["duration_seconds"], 61);
    assert_eq!(done["cost"], 4);
    // Each status once, in lifecycle order, whatever order the callbacks came in;
    // the recording and the transcript once each.
    let mut types = event_types(&receiver, 6).await;
    assert_eq!(
        types[..4],
        [
            "call.queued",
            "call.ringing",
            "call.started",
            "call.completed"
        ]
    );
    types[4..].sort();
    assert_eq!(
        types[4..],
        ["call.recording.ready", "call.transcript.ready"]
    );
    let (_, recordings) = t.get(&format!("/v1/recordings?call_id={id}"), &key).await;
    assert_eq!(recordings["data"].as_array().map(Vec::len), Some(1));
    // A segment that came after `transcription-stopped` is in the transcript all the same.
    let (_, transcript) = t.get(&format!("/v1/calls/{id}/transcript"), &key).await;
    assert_eq!(transcript["segments"][0]["text"], "Hello?", "{transcript}");
    assert_eq!(transcript["segments"].as_array().map(Vec::len), Some(1));
    double.assert_no_violations().await;
    t.finish().await;
}

#[tokio::test]
async fn live_messages_go_through_twilio_and_its_reports_move_them() {
    let double = Double::start().await;
    let (t, key, from, receiver) = live_setup(&double).await;
    let send = |to: &str| {
        t.post(
            "/v1/messages",
            &key,
            json!({ "to": to, "from": from, "body": "Your appointment is at 10." }),
        )
    };
    // Sent, then delivered; the delivered report repeated changes nothing.
    let (status, sent) = send("+14155550141").await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["status"], "queued");
    assert_eq!(sent["cost"], 1);
    let id = sent["id"].as_str().expect("id").to_owned();
    let sid = double.last_message_sid().await;
    assert!(sid.starts_with("SM"), "{sid}");
    for status in ["sent", "delivered", "delivered"] {
        let r = double
            .post(
                &format!("/messages/{sid}/status"),
                json!({ "status": status }),
            )
            .await;
        assert_eq!(r["status"], 204, "{r}");
    }
    let (_, delivered) = t.get(&format!("/v1/messages/{id}"), &key).await;
    assert_eq!(delivered["status"], "delivered", "{delivered}");

    // Undelivered at the far end: failed, with Twilio's error code, still charged.
    let (_, second) = send("+14155550142").await;
    let sid2 = double.last_message_sid().await;
    assert_ne!(sid2, sid);
    double
        .post(
            &format!("/messages/{sid2}/status"),
            json!({ "status": "undelivered", "error_code": 30003 }),
        )
        .await;
    let (_, failed) = t
        .get(
            &format!("/v1/messages/{}", second["id"].as_str().expect("id")),
            &key,
        )
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error_code"], "30003");
    assert_eq!(failed["cost"], 1);

    // Refused by Twilio outright: failed with Twilio's code, and refunded.
    double
        .post("/fail", json!({ "path_suffix": "/Messages.json", "method": "POST", "status": 400, "code": 21211, "message": "The 'To' number is not a valid phone number.", "times": 1 }))
        .await;
    let (status, refused) = send("+14155550143").await;
    assert_eq!(status, StatusCode::CREATED, "{refused}");
    assert_eq!(refused["status"], "failed", "{refused}");
    assert_eq!(refused["error_code"], "21211");
    assert_eq!(refused["cost"], 0);
    let (_, wallet) = t.get("/v1/billing/wallet", &key).await;
    assert_eq!(
        wallet["balance"],
        100 - 2,
        "two messages charged, one refunded"
    );
    let (_, invoices) = t.get("/v1/billing/invoices", &key).await;
    let lines = invoices.to_string();
    assert!(
        lines.contains("\"kind\":\"message\"") && lines.contains("\"quantity\":2"),
        "the refund cancels its charge on the invoice: {lines}"
    );

    assert_eq!(
        event_types(&receiver, 4).await,
        [
            "message.sent",
            "message.delivered",
            "message.failed",
            "message.failed"
        ]
    );
    double.assert_no_violations().await;
    t.finish().await;
}

#[tokio::test]
async fn inbound_calls_and_messages_reach_the_numbers_agent_and_conversation() {
    let double = Double::start().await;
    let (t, key, number, receiver) = live_setup(&double).await;
    let (_, agent) = t
        .post(
            "/v1/agents",
            &key,
            json!({ "name": "Reception", "greeting": "Thanks for calling Acme." }),
        )
        .await;
    let (_, numbers) = t.get("/v1/phone-numbers", &key).await;
    let number_id = numbers["data"][0]["id"].as_str().expect("number id");
    let (status, routed) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/phone-numbers/{number_id}"),
            Some(&key),
            Some(json!({ "agent_id": agent["id"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{routed}");

    // A call to the number: routed to its agent, answered with the agent's TwiML.
    let caller = "+14155550177";
    let rang = double
        .post("/inbound/call", json!({ "to": number, "from": caller }))
        .await;
    assert_eq!(rang["status"], 200, "{rang}");
    let twiml = rang["twiml"].as_str().expect("twiml");
    assert!(twiml.contains("Thanks for calling Acme.</Say>"), "{twiml}");
    let call_sid = rang["call_sid"].as_str().expect("sid");
    let (_, calls) = t.get("/v1/calls?direction=inbound", &key).await;
    let call = &calls["data"][0];
    assert_eq!(call["from"], caller, "{calls}");
    assert_eq!(call["agent_id"], agent["id"]);
    assert_eq!(call["status"], "in_progress");
    // The number's status callback ends it; charged like any live call.
    let played = double
        .post(
            &format!("/calls/{call_sid}/play"),
            json!({ "steps": [{ "status": "completed", "duration": 30 }] }),
        )
        .await;
    all_accepted(&played);
    let ended = call_status(&t, &key, call["id"].as_str().expect("id")).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["cost"], 2);

    // A text to the number lands in the caller's conversation.
    let texted = double
        .post(
            "/inbound/sms",
            json!({ "to": number, "from": caller, "body": "Running 5 min late" }),
        )
        .await;
    assert_eq!(texted["status"], 200, "{texted}");
    let (_, messages) = t.get("/v1/messages?direction=inbound", &key).await;
    let message = &messages["data"][0];
    assert_eq!(message["body"], "Running 5 min late", "{messages}");
    assert_eq!(message["status"], "received");
    assert_eq!(message["conversation_id"], call["conversation_id"]);
    // Twilio delivering the same message again makes no second one.
    let again = double
        .post(
            "/callback",
            json!({ "url": format!("{}/carrier/twilio/sms", t.url), "params": [
                ["MessageSid", texted["message_sid"]], ["From", caller], ["To", number],
                ["Body", "Running 5 min late"], ["AccountSid", ACCOUNT]
            ] }),
        )
        .await;
    assert_eq!(again["status"], 200, "{again}");
    let (_, messages) = t.get("/v1/messages?direction=inbound", &key).await;
    assert_eq!(messages["data"].as_array().map(Vec::len), Some(1));

    // A call to a number no one here owns is not ours.
    let stranger = double
        .post(
            "/callback",
            json!({ "url": format!("{}/carrier/twilio/voice", t.url), "params": [
                ["CallSid", "CA11111111111111111111111111111111"], ["From", caller],
                ["To", "+14155559999"], ["AccountSid", ACCOUNT]
            ] }),
        )
        .await;
    assert_eq!(stranger["status"], 404);

    let types = event_types(&receiver, 5).await;
    assert_eq!(
        types,
        [
            "call.queued",
            "call.ringing",
            "call.started",
            "call.completed",
            "message.received"
        ]
    );
    double.assert_no_violations().await;
    t.finish().await;
}

#[tokio::test]
async fn a_number_the_account_already_owns_can_be_imported() {
    let double = Double::start().await;
    let (t, key, _from, _receiver) = live_setup(&double).await;
    // A month for the number to import, and a month for one that cannot be.
    t.store
        .credit_wallet(&t.org.id, true, 230, "credit")
        .await
        .expect("credit");
    let owned = double
        .post("/owned", json!({ "phone_number": "+14155550188" }))
        .await;
    let pn_sid = owned["sid"].as_str().expect("sid").to_owned();
    let (status, imported) = t
        .post(
            "/v1/phone-numbers/import",
            &key,
            json!({ "phone_number": "+14155550188", "name": "Main line" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    assert_eq!(imported["number"], "+14155550188");
    assert_eq!(imported["name"], "Main line");
    // Its traffic now comes to dialtone.
    let requests = double.get("/requests").await;
    let repoint = requests
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| {
            r["method"] == "POST"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("/IncomingPhoneNumbers/{pn_sid}.json")))
        })
        .expect("the number was repointed");
    assert!(
        repoint["form"]
            .to_string()
            .contains("/carrier/twilio/voice"),
        "{repoint}"
    );
    // A number the account does not own: Twilio's answer, nothing stored or charged.
    let (status, refused) = t
        .post(
            "/v1/phone-numbers/import",
            &key,
            json!({ "phone_number": "+14155550189" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{refused}");
    assert_eq!(refused["error"], "CARRIER_ERROR");
    // Test mode has no carrier account to import from.
    let test_key = t
        .key(dialtone_domain::auth::KeyRequest {
            name: "test".into(),
            mode: Some(dialtone_domain::tenancy::Mode::Test),
            ..Default::default()
        })
        .await;
    let (status, body) = t
        .post(
            "/v1/phone-numbers/import",
            &test_key,
            json!({ "phone_number": "+14155550188" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Searching for digits: at Twilio (its Contains) and in the simulated inventory.
    for k in [&key, &test_key] {
        let (status, found) = t
            .get("/v1/phone-numbers/available?area_code=415&contains=42", k)
            .await;
        assert_eq!(status, StatusCode::OK, "{found}");
        let numbers = found["data"].as_array().expect("data");
        assert!(!numbers.is_empty(), "{found}");
        assert!(
            numbers
                .iter()
                .all(|n| n["number"].as_str().is_some_and(|n| n.contains("42"))),
            "{found}"
        );
    }
    let searched = double.get("/requests").await;
    assert!(
        searched.as_array().expect("requests").iter().any(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/AvailablePhoneNumbers/"))
                && r["query"].to_string().contains("\"Contains\",\"42\"")
        }),
        "{searched}"
    );
    let (status, _) = t
        .get("/v1/phone-numbers/available?contains=4x2", &key)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, wallet) = t.get("/v1/billing/wallet", &key).await;
    assert_eq!(
        wallet["balance"],
        100 + 115,
        "one more month, for the imported number only"
    );
    double.assert_no_violations().await;
    t.finish().await;
}

#[tokio::test]
async fn a_live_campaign_calls_through_twilio() {
    let double = Double::start().await;
    let (t, key, from, _receiver) = live_setup(&double).await;
    let recipients = ["+14155550151", "+14155550152"];
    let (_, agent) = t
        .post("/v1/agents", &key, json!({ "name": "Reminders" }))
        .await;
    let (status, campaign) = t
        .post(
            "/v1/campaigns",
            &key,
            json!({ "name": "Reminders", "agent_id": agent["id"], "from": from, "recipients": recipients }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    let id = campaign["id"].as_str().expect("id").to_owned();
    // The runner places each call at Twilio; Twilio's reports finish them.
    for to in recipients {
        let started = std::time::Instant::now();
        let sid = loop {
            let calls = double.get("/calls").await;
            if let Some(sid) = calls
                .as_array()
                .expect("calls")
                .iter()
                .find(|c| c["to"] == to)
                .and_then(|c| c["sid"].as_str())
            {
                break sid.to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the campaign never called {to}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let played = double
            .post(
                &format!("/calls/{sid}/play"),
                json!({ "steps": [{ "status": "ringing" }, { "status": "in-progress" },
                                  { "status": "completed", "duration": 30 }] }),
            )
            .await;
        all_accepted(&played);
    }
    let started = std::time::Instant::now();
    let done = loop {
        let (_, c) = t.get(&format!("/v1/campaigns/{id}"), &key).await;
        if c["status"] == "completed" {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "campaign never completed: {c}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["progress"]["completed"], 2, "{done}");
    let (_, calls) = t.get(&format!("/v1/campaigns/{id}/calls"), &key).await;
    let costs: Vec<&Value> = calls["data"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| &c["cost"])
        .collect();
    assert_eq!(costs, [&json!(2), &json!(2)], "{calls}");
    double.assert_no_violations().await;
    t.finish().await;
}

#[tokio::test]
async fn two_nodes_on_postgresql_share_the_callbacks() {
    let double = Double::start().await;
    let carrier = double.carrier();
    let Some((t, b, _b_store, b_url)) = crate::nodes::two_nodes(move |c| {
        c.carrier = carrier;
        fast(c);
    })
    .await
    else {
        return;
    };
    let (key, from, receiver) = live_account(&t).await;
    // Placed on node B; Twilio calls back at the public URL, which the load balancer
    // spreads over both nodes: here every callback reaches both, at once.
    let to = "+14155550161";
    let http = reqwest::Client::new();
    let placed = http
        .post(format!("{b_url}/v1/calls"))
        .bearer_auth(&key)
        .json(&json!({ "to": to, "from": from }))
        .send()
        .await
        .expect("call");
    assert_eq!(placed.status(), StatusCode::CREATED);
    let call: Value = placed.json().await.expect("json");
    let id = call["id"].as_str().expect("id").to_owned();
    let sid = double.call_sid(to).await;
    let path = format!("/carrier/twilio/status?call={id}");
    for (status, duration) in [
        ("ringing", None),
        ("in-progress", None),
        ("completed", Some("62")),
    ] {
        let mut params = vec![
            json!(["AccountSid", ACCOUNT]),
            json!(["CallSid", sid]),
            json!(["CallStatus", status]),
        ];
        if let Some(d) = duration {
            params.push(json!(["CallDuration", d]));
        }
        let signed = double
            .post(
                "/sign",
                json!({ "url": format!("{}{path}", t.url), "params": params }),
            )
            .await;
        // Every value here is URL-safe as it stands.
        let form = params
            .iter()
            .map(|p| {
                format!(
                    "{}={}",
                    p[0].as_str().unwrap_or(""),
                    p[1].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let send = |base: String| {
            http.post(format!("{base}{path}"))
                .header(
                    "x-twilio-signature",
                    signed["signature"].as_str().unwrap_or(""),
                )
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.clone())
                .send()
        };
        let (on_a, on_b) = tokio::join!(send(t.url.clone()), send(b_url.clone()));
        for r in [on_a, on_b] {
            assert_eq!(r.expect("callback").status(), StatusCode::NO_CONTENT);
        }
    }
    let done = call_status(&t, &key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["cost"], 4, "charged once");
    assert_eq!(
        event_types(&receiver, 4).await,
        [
            "call.queued",
            "call.ringing",
            "call.started",
            "call.completed"
        ],
        "each event once, delivered once, across both nodes"
    );
    let (_, wallet) = t.get("/v1/billing/wallet", &key).await;
    assert_eq!(wallet["balance"], 100 - 4);
    b.shutdown().await;
    t.finish().await;
}

#[tokio::test]
async fn lost_callbacks_are_recovered_by_asking_twilio() {
    let double = Double::start().await;
    let carrier = double.carrier();
    let t = TestApp::spawn_with(move |c| {
        c.carrier = carrier;
        c.carrier_reconcile_interval = Duration::from_millis(100);
        c.carrier_quiet_after = Duration::from_millis(300);
        fast(c);
    })
    .await;
    let (key, from, receiver) = live_account(&t).await;
    // The call ends at Twilio; every report of it is lost on the way.
    let to = "+14155550171";
    let (_, call) = t
        .post("/v1/calls", &key, json!({ "to": to, "from": from }))
        .await;
    let id = call["id"].as_str().expect("id").to_owned();
    let sid = double.call_sid(to).await;
    let played = double
        .post(
            &format!("/calls/{sid}/play"),
            json!({ "silent": true, "steps": [{ "status": "ringing" }, { "status": "in-progress" },
                                              { "status": "completed", "duration": 45 }] }),
        )
        .await;
    assert_eq!(played["callbacks"], json!([]), "nothing reached dialtone");
    // A message delivered at Twilio, its report lost too.
    let (_, message) = t
        .post(
            "/v1/messages",
            &key,
            json!({ "to": "+14155550172", "from": from, "body": "See you at 10" }),
        )
        .await;
    let message_sid = double.last_message_sid().await;
    double
        .post(
            &format!("/messages/{message_sid}/status"),
            json!({ "status": "delivered", "silent": true }),
        )
        .await;
    // A live call dialtone recorded but Twilio never confirmed (a crash in between).
    let scope = dialtone_domain::tenancy::Scope {
        org_id: t.org.id.clone(),
        workspace_id: t.org.default_workspace_id.clone(),
        mode: dialtone_domain::tenancy::Mode::Live,
    };
    let orphan = dialtone_domain::id::new_id("call");
    t.store
        .scoped(&scope)
        .place_call(
            dialtone_store::NewCall {
                id: orphan.clone(),
                direction: dialtone_domain::calls::Direction::Outbound,
                from: from.clone(),
                to: "+14155550173".into(),
                phone_number_id: None,
                agent_id: None,
                campaign_id: None,
                recipient_position: None,
                metadata: Default::default(),
                carrier: "twilio",
                outcome: None,
                reserved_seconds: Some(600),
                carrier_sid: None,
                api_key_id: None,
            },
            chrono::TimeDelta::zero(),
            None,
        )
        .await
        .expect("orphan call");

    let started = std::time::Instant::now();
    loop {
        let done = call_status(&t, &key, &id).await;
        let (_, m) = t
            .get(
                &format!("/v1/messages/{}", message["id"].as_str().expect("id")),
                &key,
            )
            .await;
        let orphaned = call_status(&t, &key, &orphan).await;
        if done["status"] == "completed"
            && m["status"] == "delivered"
            && orphaned["status"] == "failed"
        {
            assert_eq!(done["duration_seconds"], 45, "{done}");
            assert_eq!(done["cost"], 2, "charged from what Twilio reported");
            assert_eq!(orphaned["error_code"], "not_placed", "{orphaned}");
            assert_eq!(orphaned["cost"], 0);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not recovered: {done} {m} {orphaned}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let types = event_types(&receiver, 8).await;
    for wanted in [
        "call.ringing",
        "call.started",
        "call.completed",
        "message.sent",
        "message.delivered",
        "call.failed",
    ] {
        assert!(
            types.iter().any(|t| t == wanted),
            "{wanted} missing: {types:?}"
        );
    }
    double.assert_no_violations().await;
    t.finish().await;
}

#[tokio::test]
async fn forged_and_unknown_callbacks_change_nothing() {
    let double = Double::start().await;
    let (t, key, from, _receiver) = live_setup(&double).await;
    let to = "+14155550125";
    let (_, call) = t
        .post("/v1/calls", &key, json!({ "to": to, "from": from }))
        .await;
    let id = call["id"].as_str().expect("id").to_owned();
    let sid = double.call_sid(to).await;
    let status_url = format!("{}/carrier/twilio/status?call={id}", t.url);
    let params = json!([
        ["CallSid", sid],
        ["CallStatus", "completed"],
        ["CallDuration", "600"],
        ["AccountSid", ACCOUNT]
    ]);
    // A wrong signature, and none at all.
    let forged = double
        .post("/callback", json!({ "url": status_url, "params": params, "signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" }))
        .await;
    assert_eq!(forged["status"], 403, "{forged}");
    let unsigned = reqwest::Client::new()
        .post(&status_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("CallSid={sid}&CallStatus=completed"))
        .send()
        .await
        .expect("post");
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);
    // Signed, but for a URL other than the one called (a replay to another call).
    let other = double
        .post(
            "/sign",
            json!({ "url": format!("{}/carrier/twilio/status", t.url), "params": params }),
        )
        .await;
    let replayed = double
        .post(
            "/callback",
            json!({ "url": status_url, "params": params, "signature": other["signature"] }),
        )
        .await;
    assert_eq!(replayed["status"], 403);
    // Genuinely signed, but about a call dialtone does not know.
    let unknown = double
        .post("/callback", json!({ "url": format!("{}/carrier/twilio/status", t.url), "params": [["CallSid", "CA00000000000000000000000000000000"], ["CallStatus", "ringing"]] }))
        .await;
    assert_eq!(unknown["status"], 404);
    let still = call_status(&t, &key, &id).await;
    assert_eq!(still["status"], "queued", "{still}");
    assert_eq!(still["cost"], 0);
    let metrics = reqwest::get(format!("{}/metrics", t.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            "dialtone_carrier_callbacks_total{carrier=\"twilio\",outcome=\"bad_signature\"} 3"
        ),
        "{metrics}"
    );
    t.finish().await;
}

#[tokio::test]
async fn a_carrier_error_fails_the_call_and_charges_nothing() {
    let double = Double::start().await;
    let (t, key, from, _receiver) = live_setup(&double).await;
    double
        .post("/fail", json!({ "path_suffix": "/Calls.json", "method": "POST", "status": 500, "code": 20500, "message": "Internal Server Error", "times": 1 }))
        .await;
    let body = json!({ "to": "+14155550126", "from": from });
    let post = || {
        t.request(
            reqwest::Method::POST,
            "/v1/calls",
            Some(&key),
            Some(body.clone()),
            &[("Idempotency-Key", "place-once")],
        )
    };
    let first = post().await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let call: Value = first.json().await.expect("json");
    assert_eq!(call["status"], "failed", "{call}");
    // A retry gets the answer the first request got, not the state before Twilio's.
    let again = post().await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let replayed: Value = again.json().await.expect("json");
    assert_eq!(replayed, call);
    assert_eq!(call["error_code"], "20500");
    assert_eq!(call["error_message"], "Internal Server Error");
    assert_eq!(call["cost"], 0);
    let (_, wallet) = t.get("/v1/billing/wallet", &key).await;
    assert_eq!(wallet["balance"], 100, "only the number's month");
    t.finish().await;
}

#[tokio::test]
async fn busy_no_answer_and_hangup_end_calls_as_twilio_says() {
    let double = Double::start().await;
    let (t, key, from, _receiver) = live_setup(&double).await;
    for (to, twilio, ours) in [
        ("+14155550131", "busy", "busy"),
        ("+14155550132", "no-answer", "no_answer"),
        ("+14155550133", "failed", "failed"),
    ] {
        let (_, call) = t
            .post("/v1/calls", &key, json!({ "to": to, "from": from }))
            .await;
        let sid = double.call_sid(to).await;
        double
            .post(
                &format!("/calls/{sid}/play"),
                json!({ "steps": [{ "status": "ringing" }, { "status": twilio }] }),
            )
            .await;
        let ended = call_status(&t, &key, call["id"].as_str().expect("id")).await;
        assert_eq!(ended["status"], ours, "{ended}");
        assert_eq!(ended["cost"], 0);
    }
    // Hang up an answered call: Twilio completes it and reports the duration.
    let to = "+14155550134";
    let (_, call) = t
        .post("/v1/calls", &key, json!({ "to": to, "from": from }))
        .await;
    let id = call["id"].as_str().expect("id");
    let sid = double.call_sid(to).await;
    double
        .post(
            &format!("/calls/{sid}/play"),
            json!({ "steps": [{ "status": "ringing" }, { "status": "in-progress" }] }),
        )
        .await;
    let (status, hung) = t
        .post(&format!("/v1/calls/{id}/hangup"), &key, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{hung}");
    assert_eq!(hung["status"], "completed", "{hung}");
    // Twilio's own `completed` callback may land a moment before the hang-up's answer.
    assert!(
        hung["end_reason"] == "hangup_api" || hung["end_reason"] == "completed",
        "{hung}"
    );
    let at_twilio = double.get(&format!("/calls/{sid}")).await;
    assert_eq!(at_twilio["status"], "completed");
    double.assert_no_violations().await;
    t.finish().await;
}

#[tokio::test]
async fn our_signature_agrees_with_twilios_helper_library() {
    use dialtone_telephony::twilio::signature;
    let double = Double::start().await;
    let cases = [
        (
            "https://api.example.com/carrier/twilio/status?call=call_1",
            vec![("CallSid", "CA1"), ("CallStatus", "ringing")],
        ),
        // Repeated keys, one value twice.
        (
            "https://api.example.com/cb",
            vec![
                ("StatusCallbackEvent", "ringing"),
                ("StatusCallbackEvent", "answered"),
                ("StatusCallbackEvent", "ringing"),
            ],
        ),
        // Non-ASCII text, an empty value, a query string with several parameters.
        (
            "https://api.example.com:8443/sms?a=1&b=%C3%A9",
            vec![
                ("Body", "Grüße — 你好 👋"),
                ("From", "+4915112345678"),
                ("NumMedia", ""),
            ],
        ),
    ];
    for (url, params) in cases {
        let pairs: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let theirs = double
            .post("/sign", json!({ "url": url, "params": pairs }))
            .await;
        let theirs = theirs["signature"].as_str().expect("signature");
        assert_eq!(
            signature::sign(TOKEN.as_bytes(), url, &pairs),
            theirs,
            "{url}"
        );
        assert!(signature::verify_form(
            TOKEN.as_bytes(),
            url,
            &pairs,
            theirs
        ));
        assert!(!signature::verify_form(
            b"another-token",
            url,
            &pairs,
            theirs
        ));
    }
}
