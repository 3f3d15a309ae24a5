//! Organizations can leave (issue 17, part 4): `dialtone org export` writes every
//! object of an organization, without a secret; `dialtone org delete` revokes its keys
//! and leaves no row of it in any table, touching no other organization.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use dialtone_api::keys::KeyIssuer;
use dialtone_domain::auth::{Actor, KeyRequest};
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_store::org_data::{Export, NOT_ORG_DATA, ORG_TABLES, uncovered};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::common::{
    SECRET, TestApp, TestDb, drop_db, fresh_db, is_terminal, wait_for_call, with_database,
};

fn cli_env(db: &TestDb) -> Vec<(&'static str, String)> {
    let mut env = vec![("DIALTONE_SECRET_KEY", SECRET.to_owned())];
    match db {
        TestDb::Sqlite(dir) => env.push(("DIALTONE_DATA_DIR", dir.display().to_string())),
        TestDb::Postgres { admin_url, name } => {
            env.push(("DATABASE_URL", with_database(admin_url, name)))
        }
    }
    env
}

/// Runs the binary; returns success, stdout and stderr.
async fn dialtone(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(args)
        .envs(cli_env(db))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run dialtone");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn live_simulator(c: &mut dialtone_api::ServerConfig) {
    c.carrier = dialtone_api::config::CarrierChoice::Simulator;
    c.webhook_allow_private = true;
    c.webhook_retry_schedule = vec![Duration::ZERO, Duration::from_millis(20)];
}

/// A key of any organization, as an operator makes it; returns (key id, secret).
async fn key_of(t: &TestApp, org_id: &str, req: KeyRequest) -> (String, String) {
    let digester = dialtone_domain::keys::KeyDigester::new(&t.config.server_secret);
    let created = KeyIssuer {
        store: &t.store,
        digester: &digester,
        brand: &t.config.key_brand,
        cap: t.config.key_cap,
        ip: None,
    }
    .create(Actor::Operator, org_id, req)
    .await
    .expect("create key");
    (
        created.key.id.clone(),
        created.secret.expose_secret().to_owned(),
    )
}

/// What was made in one organization.
#[derive(Default)]
struct Made {
    org_id: String,
    workspaces: Vec<String>,
    /// One key per workspace and mode: (scope, key secret).
    scoped_keys: Vec<(Scope, String)>,
    /// Every key secret made.
    secrets: Vec<String>,
    webhook_secrets: Vec<String>,
    webhook_ids: Vec<(Scope, String)>,
}

async fn ok(t: &TestApp, key: &str, path: &str, body: Value) -> Value {
    let (status, v) = t.post(path, key, body).await;
    assert!(status.is_success(), "POST {path}: {status} {v}");
    v
}

/// Fills an organization: two workspaces, each in live and test mode, with contacts,
/// notes, agents, numbers, calls with transcripts, messages, campaigns and webhooks
/// (whose deliveries fail: attempts are recorded); a dashboard user.
async fn populate(t: &TestApp, org_id: &str, tag: &str) -> Made {
    let org = t.store.get_org(org_id).await.expect("org");
    let second = t
        .store
        .create_workspace(org_id, "Second")
        .await
        .expect("workspace");
    t.store
        .credit_wallet(org_id, true, 100_000, "credit")
        .await
        .expect("credit");
    let mut made = Made {
        org_id: org_id.to_owned(),
        workspaces: vec![org.default_workspace_id.clone(), second.id.clone()],
        ..Default::default()
    };
    // Organization keys too (they are in the export, and revoked by the erasure).
    for mode in [Mode::Live, Mode::Test] {
        let (_, s) = key_of(
            t,
            org_id,
            KeyRequest {
                name: format!("{tag} org {mode:?}"),
                mode: Some(mode),
                ..Default::default()
            },
        )
        .await;
        made.secrets.push(s);
    }
    let mut calls = Vec::new();
    for (i, ws) in made.workspaces.clone().iter().enumerate() {
        for mode in [Mode::Live, Mode::Test] {
            let (_, key) = key_of(
                t,
                org_id,
                KeyRequest {
                    name: format!("{tag} {i} {mode:?}"),
                    mode: Some(mode),
                    workspace_id: Some(ws.clone()),
                    ..Default::default()
                },
            )
            .await;
            made.secrets.push(key.clone());
            let scope = Scope {
                org_id: org_id.to_owned(),
                workspace_id: ws.clone(),
                mode,
            };
            let contact = ok(
                t,
                &key,
                "/v1/contacts",
                json!({"first_name": format!("{tag}{i}"), "phone_number": "+14155550123",
                       "custom_fields": {"tier": "gold"}}),
            )
            .await;
            let contact_id = contact["id"].as_str().expect("id");
            ok(
                t,
                &key,
                &format!("/v1/contacts/{contact_id}/notes"),
                json!({"content": format!("note {tag} {i}")}),
            )
            .await;
            let agent = ok(
                t,
                &key,
                "/v1/agents",
                json!({"name": format!("Agent {tag}")}),
            )
            .await;
            ok(t, &key, "/v1/phone-numbers", json!({})).await;
            let hook = ok(
                t,
                &key,
                "/v1/webhooks",
                json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
            )
            .await;
            made.webhook_secrets
                .push(hook["secret"].as_str().expect("secret").to_owned());
            made.webhook_ids
                .push((scope.clone(), hook["id"].as_str().expect("id").to_owned()));
            let call = ok(
                t,
                &key,
                "/v1/calls",
                json!({"to": "+14155550123", "metadata": {"tag": tag}}),
            )
            .await;
            calls.push((key.clone(), call["id"].as_str().expect("id").to_owned()));
            ok(
                t,
                &key,
                "/v1/messages",
                json!({"to": "+14155550123", "body": format!("hello {tag}")}),
            )
            .await;
            ok(
                t,
                &key,
                "/v1/campaigns",
                json!({"name": format!("Campaign {tag}"), "agent_id": agent["id"],
                       "recipients": ["+14155550124"]}),
            )
            .await;
            made.scoped_keys.push((scope, key));
        }
    }
    for (key, id) in &calls {
        wait_for_call(t, key, id, is_terminal).await;
    }
    dialtone_api::dashboard::create_user(
        &t.store,
        org_id,
        &format!("{}@example.com", tag.to_lowercase()),
        "a long enough password 123",
        "member".parse().expect("role"),
    )
    .await
    .expect("user");
    made
}

/// Waits until no table changes for a while (calls, messages and webhook retries done).
async fn settle(t: &TestApp) -> Vec<(String, i64)> {
    let started = std::time::Instant::now();
    let mut last = t.store.table_row_counts().await.expect("counts");
    let mut calm = 0;
    while calm < 4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = t.store.table_row_counts().await.expect("counts");
        if now == last {
            calm += 1;
        } else {
            calm = 0;
            last = now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the database never settled"
        );
    }
    last
}

/// Every row of every exported file, by file name.
fn read_export(dir: &Path) -> (Value, BTreeMap<String, Vec<Value>>) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("manifest json");
    let mut files = BTreeMap::new();
    for f in manifest["files"].as_array().expect("files") {
        let name = f["name"].as_str().expect("name");
        let bytes = std::fs::read(dir.join(name)).expect("file");
        use sha2::Digest;
        assert_eq!(
            f["sha256"].as_str(),
            Some(hex::encode(sha2::Sha256::digest(&bytes)).as_str()),
            "{name}"
        );
        assert_eq!(f["bytes"].as_u64(), Some(bytes.len() as u64), "{name}");
        let rows: Vec<Value> = String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(f["rows"].as_u64(), Some(rows.len() as u64), "{name}");
        files.insert(name.to_owned(), rows);
    }
    (manifest, files)
}

/// Every object of a list route, through its pages.
async fn list_all(t: &TestApp, key: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=100&cursor={c}"),
            None => format!("{path}{sep}limit=100"),
        };
        let (status, page) = t.get(&url, key).await;
        assert_eq!(status, StatusCode::OK, "{url}: {page}");
        out.extend(page["data"].as_array().expect("data").iter().cloned());
        cursor = page["meta"]["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return out;
        }
    }
}

fn by_id<'a>(rows: &'a [Value], file: &str) -> HashMap<&'a str, &'a Value> {
    rows.iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_else(|| panic!("{file}: no id")),
                r,
            )
        })
        .collect()
}

#[tokio::test]
async fn every_table_of_the_schema_is_exported_and_erased_or_declared_not_org_data() {
    let (store, db) = fresh_db().await;
    let schema = store.schema_columns().await.expect("schema");
    assert!(schema.iter().any(|c| c.table == "contacts"));
    let missing = uncovered(&schema);
    assert!(missing.is_empty(), "{missing:#?}");
    store.check_org_coverage().await.expect("covered");
    // Every listed table exists (a renamed table is not silently skipped).
    for t in ORG_TABLES {
        assert!(
            schema.iter().any(|c| c.table == t.name),
            "{} is listed but not in the schema",
            t.name
        );
        for col in t.key.iter().chain(t.omit).chain(t.json) {
            assert!(
                schema.iter().any(|c| c.table == t.name && c.column == *col),
                "{}.{col} is listed but not in the schema",
                t.name
            );
        }
        // JSON columns are declared, so both databases export JSON values.
        for c in schema.iter().filter(|c| c.table == t.name) {
            if c.data_type.eq_ignore_ascii_case("jsonb") {
                assert!(
                    t.json.contains(&c.column.as_str()),
                    "{}.{}",
                    t.name,
                    c.column
                );
            }
        }
    }
    for (table, reason) in NOT_ORG_DATA {
        assert!(!reason.is_empty(), "{table}");
    }
    store.close().await;
    drop_db(&db).await;
}

#[tokio::test]
async fn an_export_holds_every_object_of_the_org_as_the_api_shows_it_and_no_secret() {
    let t = TestApp::spawn_with(live_simulator).await;
    let a = populate(&t, &t.org.id, "Alpha").await;
    let other = t.store.create_org("Other").await.expect("org");
    let b = populate(&t, &other.id, "Beta").await;
    settle(&t).await;

    let dir = std::env::temp_dir().join(dialtone_domain::id::new_id("org-export"));
    let to = dir.display().to_string();
    let (done, out, err) = dialtone(
        &t.db,
        &["org", "export", "--org", &a.org_id, "--to", &to, "--json"],
    )
    .await;
    assert!(done, "{err}");
    let printed: Value = serde_json::from_str(&out).expect("json output");
    let (manifest, files) = read_export(&dir);
    assert_eq!(printed["manifest"], manifest);
    assert_eq!(manifest["organization_id"], a.org_id.as_str());
    assert!(manifest["schema_version"].as_i64().is_some());
    assert_eq!(manifest["dialtone_version"], env!("CARGO_PKG_VERSION"));
    for name in [
        "organizations.jsonl",
        "workspaces.jsonl",
        "contacts.jsonl",
        "notes.jsonl",
        "agents.jsonl",
        "phone_numbers.jsonl",
        "calls.jsonl",
        "transcripts.jsonl",
        "recordings.jsonl",
        "conversations.jsonl",
        "messages.jsonl",
        "campaigns.jsonl",
        "campaign_recipients.jsonl",
        "webhook_endpoints.jsonl",
        "webhook_deliveries.jsonl",
        "webhook_attempts.jsonl",
        "api_keys.jsonl",
        "wallets.jsonl",
        "wallet_transactions.jsonl",
        "invoices.jsonl",
        "events.jsonl",
        "audit_log.jsonl",
        "users.jsonl",
    ] {
        assert!(
            files.get(name).is_some_and(|rows| !rows.is_empty()),
            "{name} is missing or empty"
        );
    }
    let skipped: Vec<&str> = manifest["not_exported"]
        .as_array()
        .expect("not_exported")
        .iter()
        .filter_map(|s| s["table"].as_str())
        .collect();
    for t in ORG_TABLES {
        if let Export::Skip(_) = t.export {
            assert!(skipped.contains(&t.name), "{}", t.name);
        }
    }

    // Each resource, as the REST API shows it in each workspace and mode.
    let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (scope, key) in &a.scoped_keys {
        let livemode = scope.mode == Mode::Live;
        for (path, file, fields) in [
            (
                "/v1/contacts",
                "contacts.jsonl",
                &[
                    ("first_name", "first_name"),
                    ("phone_number", "phone_number"),
                    ("custom_fields", "custom_fields"),
                ][..],
            ),
            (
                "/v1/agents",
                "agents.jsonl",
                &[("name", "name"), ("voice", "voice")][..],
            ),
            (
                "/v1/phone-numbers",
                "phone_numbers.jsonl",
                &[("number", "number"), ("status", "status")][..],
            ),
            (
                "/v1/calls",
                "calls.jsonl",
                &[
                    ("status", "status"),
                    ("to", "to_number"),
                    ("from", "from_number"),
                    ("duration_seconds", "duration_seconds"),
                    ("cost", "cost"),
                    ("metadata", "metadata"),
                ][..],
            ),
            (
                "/v1/messages",
                "messages.jsonl",
                &[("body", "body"), ("status", "status"), ("to", "to_number")][..],
            ),
            (
                "/v1/campaigns",
                "campaigns.jsonl",
                &[("name", "name"), ("agent_id", "agent_id")][..],
            ),
            (
                "/v1/webhooks",
                "webhook_endpoints.jsonl",
                &[("url", "url"), ("description", "description")][..],
            ),
            (
                "/v1/conversations",
                "conversations.jsonl",
                &[("participant", "participant")][..],
            ),
            (
                "/v1/recordings",
                "recordings.jsonl",
                &[
                    ("call_id", "call_id"),
                    ("duration_seconds", "duration_seconds"),
                ][..],
            ),
        ] {
            let exported = by_id(&files[file], file);
            let listed = list_all(&t, key, path).await;
            assert!(
                !listed.is_empty() || path == "/v1/recordings",
                "{path} in {scope:?}"
            );
            for obj in &listed {
                let id = obj["id"].as_str().expect("id");
                let row = exported
                    .get(id)
                    .unwrap_or_else(|| panic!("{file} lacks {id} ({path}, {scope:?})"));
                assert_eq!(row["workspace_id"], scope.workspace_id.as_str(), "{id}");
                assert_eq!(row["livemode"], livemode, "{id}");
                assert_eq!(row["org_id"], a.org_id.as_str(), "{id}");
                for (api, column) in fields {
                    assert_eq!(obj[*api], row[*column], "{file} {id}: {api} vs {column}");
                }
                seen.entry(file).or_default().insert(id.to_owned());
            }
            // Notes and transcripts, per contact and per call.
            if path == "/v1/contacts" || path == "/v1/conversations" {
                for c in &listed {
                    let notes = list_all(
                        &t,
                        key,
                        &format!("{path}/{}/notes", c["id"].as_str().expect("id")),
                    )
                    .await;
                    let exported = by_id(&files["notes.jsonl"], "notes.jsonl");
                    for n in notes {
                        let id = n["id"].as_str().expect("id");
                        assert_eq!(
                            exported.get(id).map(|r| &r["content"]),
                            Some(&n["content"]),
                            "{id}"
                        );
                        seen.entry("notes.jsonl").or_default().insert(id.to_owned());
                    }
                }
            }
            if path == "/v1/calls" {
                for c in &listed {
                    let id = c["id"].as_str().expect("id");
                    let (status, tr) = t.get(&format!("/v1/calls/{id}/transcript"), key).await;
                    if status != StatusCode::OK {
                        continue;
                    }
                    let row = files["transcripts.jsonl"]
                        .iter()
                        .find(|r| r["call_id"] == id)
                        .unwrap_or_else(|| panic!("no transcript of {id} in the export"));
                    assert_eq!(
                        row["segments"].as_array().map(Vec::len),
                        tr["segments"].as_array().map(Vec::len),
                        "{id}"
                    );
                    seen.entry("transcripts.jsonl")
                        .or_default()
                        .insert(id.to_owned());
                }
            }
        }
    }
    // Nothing more than the API shows (the organization's objects, every workspace
    // and mode), and nothing of the other organization.
    for (file, ids) in &seen {
        let key = if *file == "transcripts.jsonl" {
            "call_id"
        } else {
            "id"
        };
        let exported: BTreeSet<String> = files[*file]
            .iter()
            .filter_map(|r| r[key].as_str().map(str::to_owned))
            .collect();
        assert_eq!(&exported, ids, "{file}");
    }
    assert!(
        seen.contains_key("transcripts.jsonl"),
        "no transcript compared"
    );
    // Keys: every key of the organization, as the API lists them.
    let (_, admin) = key_of(
        &t,
        &a.org_id,
        KeyRequest {
            name: "lister".into(),
            ..Default::default()
        },
    )
    .await;
    let keys = list_all(&t, &admin, "/v1/api-keys").await;
    let exported_keys = by_id(&files["api_keys.jsonl"], "api_keys.jsonl");
    // The lister itself came after the export.
    assert_eq!(exported_keys.len() + 1, keys.len());
    for k in keys.iter().filter(|k| k["name"] != "lister") {
        let id = k["id"].as_str().expect("id");
        let row = exported_keys
            .get(id)
            .unwrap_or_else(|| panic!("key {id} not exported"));
        assert_eq!(row["name"], k["name"]);
        assert_eq!(row["last_four"], k["last_four"]);
        assert!(row.get("token_digest").is_none());
    }
    let workspaces: BTreeSet<&str> = files["workspaces.jsonl"]
        .iter()
        .filter_map(|w| w["id"].as_str())
        .collect();
    assert_eq!(
        workspaces,
        a.workspaces.iter().map(String::as_str).collect()
    );
    assert_eq!(files["organizations.jsonl"].len(), 1);
    let users = &files["users.jsonl"];
    assert_eq!(users.len(), 1);
    assert!(users[0].get("password_hash").is_none());
    let hooks = &files["webhook_endpoints.jsonl"];
    assert!(
        hooks
            .iter()
            .all(|h| h.get("secret_sealed").is_none() && h.get("previous_secret_sealed").is_none())
    );
    assert!(
        files["wallets.jsonl"]
            .iter()
            .any(|w| w["livemode"] == true && w["balance"].is_i64()),
        "the live wallet"
    );

    // No secret, no digest, no sealed secret, nothing of the other organization.
    let mut text = String::new();
    for entry in std::fs::read_dir(&dir).expect("dir") {
        text.push_str(&std::fs::read_to_string(entry.expect("entry").path()).expect("read"));
    }
    let digester = dialtone_domain::keys::KeyDigester::new(&t.config.server_secret);
    for s in &a.secrets {
        assert!(!text.contains(s.as_str()), "a key secret is in the export");
        let d = digester.digest(s);
        assert!(
            !text.contains(&hex::encode(d)),
            "a key digest is in the export"
        );
        use base64::Engine;
        assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode(d)));
    }
    for s in &a.webhook_secrets {
        assert!(
            !text.contains(s.as_str()),
            "a webhook secret is in the export"
        );
        let raw = s.trim_start_matches("whsec_");
        assert!(!text.contains(raw), "a webhook secret is in the export");
    }
    for (scope, id) in &a.webhook_ids {
        let row = t
            .store
            .scoped(scope)
            .get_endpoint(id)
            .await
            .expect("endpoint");
        assert!(
            !text.contains(&row.secret_sealed),
            "a sealed secret is in the export"
        );
    }
    assert!(
        !text.contains("$argon2"),
        "a password hash is in the export"
    );
    assert!(!text.contains(&b.org_id));
    for ws in &b.workspaces {
        assert!(
            !text.contains(ws.as_str()),
            "the other organization's data is in the export"
        );
    }

    // A non-empty directory is refused, an unknown organization is an error.
    let (done, _, err) = dialtone(&t.db, &["org", "export", "--org", &a.org_id, "--to", &to]).await;
    assert!(!done);
    assert!(err.contains("not empty"), "{err}");
    let elsewhere = std::env::temp_dir().join(dialtone_domain::id::new_id("org-export"));
    let (done, _, _) = dialtone(
        &t.db,
        &[
            "org",
            "export",
            "--org",
            "org_nope",
            "--to",
            &elsewhere.display().to_string(),
        ],
    )
    .await;
    assert!(!done);
    assert!(!elsewhere.join("manifest.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&elsewhere);
    t.finish().await;
}

#[tokio::test]
async fn deleting_an_org_revokes_its_keys_and_leaves_no_row_of_it_and_touches_no_other() {
    let t = TestApp::spawn_with(live_simulator).await;
    let a = populate(&t, &t.org.id, "Alpha").await;
    let other = t.store.create_org("Other").await.expect("org");
    let b = populate(&t, &other.id, "Beta").await;
    settle(&t).await;
    let a_before: BTreeMap<String, i64> = t
        .store
        .org_row_counts(&a.org_id)
        .await
        .expect("counts")
        .into_iter()
        .collect();
    let b_before = t.store.org_row_counts(&b.org_id).await.expect("counts");
    for table in [
        "contacts",
        "notes",
        "agents",
        "phone_numbers",
        "calls",
        "transcripts",
        "recordings",
        "conversations",
        "messages",
        "campaigns",
        "campaign_recipients",
        "webhook_endpoints",
        "webhook_deliveries",
        "webhook_attempts",
        "api_keys",
        "wallets",
        "wallet_transactions",
        "events",
        "audit_log",
        "users",
        "workspaces",
        "organizations",
        "usage_rollup",
    ] {
        assert!(
            a_before[table] > 0,
            "the test makes no {table} row: {a_before:?}"
        );
    }
    // Every id of the organization's rows, to look for anywhere afterwards.
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for table in ORG_TABLES.iter().filter(|t| t.key == ["id"]) {
        let mut after = None;
        loop {
            let page = t
                .store
                .org_export_page(&a.org_id, table, after.as_ref(), 500)
                .await
                .expect("page");
            ids.extend(
                page.rows
                    .iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_owned)),
            );
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    let ids: Vec<String> = ids.into_iter().collect();
    assert!(ids.len() > 50, "{}", ids.len());

    // Confirmation is required: no --yes and no terminal to type on.
    let (done, _, err) = dialtone(&t.db, &["org", "delete", "--org", &a.org_id]).await;
    assert!(!done);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        t.store
            .org_row_counts(&a.org_id)
            .await
            .expect("counts")
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        a_before,
        "nothing was erased"
    );
    // Every table, before (the CLI has set up the installation's settings by now).
    let totals_before: BTreeMap<String, i64> = t
        .store
        .table_row_counts()
        .await
        .expect("counts")
        .into_iter()
        .collect();

    let (done, out, err) = dialtone(
        &t.db,
        &["org", "delete", "--org", &a.org_id, "--yes", "--json"],
    )
    .await;
    assert!(done, "{err}");
    let erased: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(erased["organization_id"], a.org_id.as_str());
    let revoked = erased["revoked_keys"].as_array().expect("revoked").len();
    assert_eq!(revoked, a.secrets.len());

    // Its keys no longer authenticate on this running server (which had them cached)
    // once it has read the key-change feed: within a second.
    let started = std::time::Instant::now();
    for s in &a.secrets {
        loop {
            let (status, _) = t.call(Method::GET, "/v1/contacts", Some(s), None).await;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "an erased organization's key still answers {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The other organization still works.
    let (_, bkey) = &b.scoped_keys[0];
    assert_eq!(t.get("/v1/contacts", bkey).await.0, StatusCode::OK);

    // Zero rows of the organization, counted every way.
    for (table, n) in t.store.org_row_counts(&a.org_id).await.expect("counts") {
        assert_eq!(n, 0, "{table} keeps {n} rows of the erased organization");
    }
    let schema = t.store.schema_columns().await.expect("schema");
    for c in &schema {
        let n = match c.column.as_str() {
            "org_id" => {
                t.store
                    .count_rows_with(&c.table, "org_id", std::slice::from_ref(&a.org_id))
                    .await
            }
            "workspace_id" => {
                t.store
                    .count_rows_with(&c.table, "workspace_id", &a.workspaces)
                    .await
            }
            _ => Ok(0),
        }
        .expect("count");
        assert_eq!(
            n, 0,
            "{}.{} still names the erased organization",
            c.table, c.column
        );
        // No row anywhere mentions one of its ids (FK chains included), except the
        // key-change feed, kept on purpose (a key id and a time) for other servers'
        // caches.
        if c.table != "api_key_changes" {
            let n = t
                .store
                .count_rows_with(&c.table, &c.column, &ids)
                .await
                .expect("count");
            assert_eq!(
                n, 0,
                "{}.{} mentions an id of the erased organization",
                c.table, c.column
            );
        }
    }
    // The other organization: row for row as before; every other table as before, but
    // for the key-change records of the revocations and the erasure.
    assert_eq!(
        t.store.org_row_counts(&b.org_id).await.expect("counts"),
        b_before
    );
    let totals_after: BTreeMap<String, i64> = t
        .store
        .table_row_counts()
        .await
        .expect("counts")
        .into_iter()
        .collect();
    for (table, before) in &totals_before {
        if table == "sqlite_sequence" {
            // SQLite's counter row for api_key_changes appears with its first record.
            continue;
        }
        let expected = match a_before.get(table) {
            Some(of_a) => before - of_a,
            // A record per revocation, and one per deleted key in the erasure.
            None if table == "api_key_changes" => before + revoked as i64 + a_before["api_keys"],
            None => *before,
        };
        assert_eq!(totals_after.get(table), Some(&expected), "{table}");
    }
    let (_, list, _) = dialtone(&t.db, &["org", "list", "--json"]).await;
    assert!(!list.contains(&a.org_id) && list.contains(&b.org_id));
    let (done, _, err) = dialtone(&t.db, &["org", "delete", "--org", &a.org_id, "--yes"]).await;
    assert!(!done, "an erased organization is not found");
    assert!(!err.is_empty());
    t.finish().await;
}
