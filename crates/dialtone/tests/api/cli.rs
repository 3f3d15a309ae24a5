//! The operator commands of the real binary, on the same database the server uses.

use serde_json::Value;
use tokio::process::Command;

use crate::common::{SECRET, TestDb, drop_db, fresh_db, with_database};

struct Cli {
    env: Vec<(&'static str, String)>,
}

impl Cli {
    async fn json(&self, args: &[&str]) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .await
            .expect("run dialtone");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json output")
    }

    async fn fails(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .await
            .expect("run dialtone");
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

#[tokio::test]
async fn operator_commands_manage_orgs_workspaces_keys_and_credit() {
    let (store, db) = fresh_db().await;
    store.close().await;
    let mut env = vec![("DIALTONE_SECRET_KEY", SECRET.to_owned())];
    match &db {
        TestDb::Sqlite(dir) => env.push(("DIALTONE_DATA_DIR", dir.display().to_string())),
        TestDb::Postgres { admin_url, name } => {
            env.push(("DATABASE_URL", with_database(admin_url, name)))
        }
    }
    let cli = Cli { env };
    let org = cli
        .json(&["org", "create", "--name", "Ops", "--json"])
        .await;
    let org_id = org["id"].as_str().expect("id");
    assert!(
        org["default_workspace_id"]
            .as_str()
            .is_some_and(|w| w.starts_with("ws_"))
    );
    let ws = cli
        .json(&[
            "workspace",
            "create",
            "--org",
            org_id,
            "--name",
            "EU",
            "--json",
        ])
        .await;
    let ws_id = ws["id"].as_str().expect("id");
    let key = cli
        .json(&[
            "keys",
            "create",
            "--org",
            org_id,
            "--name",
            "scoped",
            "--workspace",
            ws_id,
            "--test",
            "--permissions",
            "contacts:read,calls:write",
            "--json",
        ])
        .await;
    assert!(
        key["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("dt_test_"))
    );
    assert_eq!(key["workspace_id"], ws_id);
    assert_eq!(
        key["permissions"],
        serde_json::json!(["contacts:read", "calls:read", "calls:write"])
    );
    let key_id = key["id"].as_str().expect("id");
    let list = cli.json(&["keys", "list", "--org", org_id, "--json"]).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert!(list[0].get("secret").is_none());
    let revoked = cli.json(&["keys", "revoke", key_id, "--json"]).await;
    assert_eq!(revoked["status"], "revoked");
    let wallet = cli
        .json(&[
            "billing", "credit", "--org", org_id, "--amount", "12.34", "--json",
        ])
        .await;
    assert_eq!(wallet["balance"], 1234);
    let wallet = cli
        .json(&[
            "billing", "credit", "--org", org_id, "--amount", "1", "--json",
        ])
        .await;
    assert_eq!(wallet["balance"], 1334);
    assert!(
        cli.fails(&["billing", "credit", "--org", org_id, "--amount", "-5"])
            .await
            .contains("amount")
    );
    assert!(
        cli.fails(&[
            "keys",
            "create",
            "--org",
            org_id,
            "--name",
            "x",
            "--permissions",
            "nope:read"
        ])
        .await
        .contains("permission")
    );
    let wrong_secret = Cli {
        env: cli
            .env
            .iter()
            .map(|(k, v)| {
                (
                    *k,
                    if *k == "DIALTONE_SECRET_KEY" {
                        "another-secret-0123456789".to_owned()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect(),
    };
    assert!(
        wrong_secret
            .fails(&["org", "list", "--json"])
            .await
            .contains("secret")
    );
    drop_db(&db).await;
}

#[tokio::test]
async fn demo_fills_a_workspace_that_the_api_pages_through() {
    let t = crate::common::TestApp::spawn().await;
    let mut env = vec![("DIALTONE_SECRET_KEY", SECRET.to_owned())];
    match &t.db {
        TestDb::Sqlite(dir) => env.push(("DIALTONE_DATA_DIR", dir.display().to_string())),
        TestDb::Postgres { admin_url, name } => {
            env.push(("DATABASE_URL", with_database(admin_url, name)))
        }
    }
    let cli = Cli { env };
    let summary = cli
        .json(&[
            "demo",
            "--org",
            &t.org.id,
            "--contacts",
            "40",
            "--calls",
            "700",
            "--test",
            "--json",
        ])
        .await;
    assert_eq!(summary["calls"], 700);
    let key = t
        .key(dialtone_domain::auth::KeyRequest {
            name: "test".into(),
            mode: Some(dialtone_domain::tenancy::Mode::Test),
            ..Default::default()
        })
        .await;
    // Every call once, newest first, across pages; the status filter agrees.
    let mut seen = std::collections::BTreeSet::new();
    let mut completed = 0;
    let mut last_created = String::from("9999");
    let mut path = "/v1/calls?limit=100".to_owned();
    loop {
        let (status, page) = t.get(&path, &key).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{page}");
        for c in page["data"].as_array().expect("data") {
            assert!(
                seen.insert(c["id"].as_str().expect("id").to_owned()),
                "duplicate"
            );
            let created = c["created_at"].as_str().expect("created_at").to_owned();
            assert!(created <= last_created, "not newest first");
            last_created = created;
            completed += usize::from(c["status"] == "completed");
        }
        match page["meta"]["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/calls?limit=100&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 700);
    let mut filtered = 0;
    let mut path = "/v1/calls?limit=100&status=completed".to_owned();
    loop {
        let (_, page) = t.get(&path, &key).await;
        filtered += page["data"].as_array().map_or(0, Vec::len);
        match page["meta"]["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/calls?limit=100&status=completed&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(filtered, completed);
    let (_, contacts) = t.get("/v1/contacts?limit=100", &key).await;
    assert_eq!(contacts["data"].as_array().map(Vec::len), Some(40));
    let (_, recordings) = t.get("/v1/recordings?limit=1", &key).await;
    let call_id = recordings["data"][0]["call_id"]
        .as_str()
        .expect("a recording");
    let (status, _) = t
        .get(&format!("/v1/calls/{call_id}/transcript"), &key)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    t.finish().await;
}

/// Operator mistakes get a message that says what is wrong and where (issue 13).
#[tokio::test]
async fn operator_errors_say_what_and_where() {
    let dir = std::env::temp_dir().join(dialtone_domain::id::new_id("cli"));
    let sqlite = Cli {
        env: vec![
            ("DIALTONE_SECRET_KEY", SECRET.to_owned()),
            ("DIALTONE_DATA_DIR", dir.display().to_string()),
        ],
    };
    // A SQLite or MySQL URL is not taken for PostgreSQL.
    for url in ["sqlite://./data.db", "mysql://root@localhost/db"] {
        let cli = Cli {
            env: vec![
                ("DIALTONE_SECRET_KEY", SECRET.to_owned()),
                ("DATABASE_URL", url.to_owned()),
            ],
        };
        let err = cli.fails(&["org", "list"]).await;
        assert!(
            err.contains("postgres://") && err.contains("--data-dir"),
            "{url}: {err}"
        );
    }
    // A connection failure names the host and database, never the password.
    let cli = Cli {
        env: vec![
            ("DIALTONE_SECRET_KEY", SECRET.to_owned()),
            (
                "DATABASE_URL",
                "postgres://ops:hunter2-secret@127.0.0.1:1/billing".to_owned(),
            ),
        ],
    };
    let err = cli.fails(&["org", "list"]).await;
    assert!(err.contains("127.0.0.1:1/billing"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // Unknown log formats and unreadable times are refused with what is wanted.
    let err = sqlite.fails(&["serve", "--log-format", "xml"]).await;
    assert!(err.contains("text") && err.contains("json"), "{err}");
    let err = sqlite
        .fails(&[
            "keys",
            "create",
            "--org",
            "org_01jd5x7c2m8n4p6q8r0s2t4v6w",
            "--name",
            "k",
            "--expires-at",
            "tomorrow",
        ])
        .await;
    assert!(
        err.contains("RFC 3339") && err.contains("2026-12-31T23:59:59Z"),
        "{err}"
    );
    // An address in use is named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let err = sqlite.fails(&["serve", "--listen", &addr]).await;
    assert!(
        err.contains(&addr) && err.contains("already in use"),
        "{err}"
    );
    // A second server on the same SQLite directory refuses to start.
    let mut first = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .envs(sqlite.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("first serve");
    let started = std::time::Instant::now();
    let err = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .envs(sqlite.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output();
        let out = tokio::time::timeout(std::time::Duration::from_secs(5), out).await;
        match out {
            Ok(Ok(o)) if !o.status.success() => {
                let err = String::from_utf8_lossy(&o.stderr).into_owned();
                if err.contains("already running") {
                    break err;
                }
            }
            // The first one has not locked yet, or this one started: try again.
            _ => {}
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "a second serve was never refused"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(err.contains(&dir.display().to_string()), "{err}");
    let _ = first.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn org_limits_sets_the_defaults_new_live_keys_get() {
    let (store, db) = fresh_db().await;
    store.close().await;
    let mut env = vec![("DIALTONE_SECRET_KEY", SECRET.to_owned())];
    match &db {
        TestDb::Sqlite(dir) => env.push(("DIALTONE_DATA_DIR", dir.display().to_string())),
        TestDb::Postgres { admin_url, name } => {
            env.push(("DATABASE_URL", with_database(admin_url, name)))
        }
    }
    let cli = Cli { env };
    let org = cli
        .json(&["org", "create", "--name", "Ops", "--json"])
        .await;
    let org_id = org["id"].as_str().expect("id");
    let none = cli.json(&["org", "limits", org_id, "--json"]).await;
    assert_eq!(none["max_concurrent_calls"], Value::Null);
    let set = cli
        .json(&[
            "org",
            "limits",
            org_id,
            "--max-concurrent-calls",
            "5",
            "--allowed-destination-countries",
            "us,CA",
            "--json",
        ])
        .await;
    assert_eq!(set["max_concurrent_calls"], 5);
    assert_eq!(
        set["allowed_destination_countries"],
        serde_json::json!(["CA", "US"])
    );
    assert_eq!(cli.json(&["org", "limits", org_id, "--json"]).await, set);
    let live = cli
        .json(&["keys", "create", "--org", org_id, "--name", "l", "--json"])
        .await;
    assert_eq!(live["limits"], set);
    let test = cli
        .json(&[
            "keys", "create", "--org", org_id, "--name", "t", "--test", "--json",
        ])
        .await;
    assert_eq!(test["limits"]["max_concurrent_calls"], Value::Null);
    let err = cli
        .fails(&["org", "limits", org_id, "--max-messages-per-day=-3"])
        .await;
    assert!(err.contains("max_messages_per_day"), "{err}");
    let err = cli
        .fails(&[
            "org",
            "limits",
            org_id,
            "--allowed-destination-countries",
            "XX",
        ])
        .await;
    assert!(err.contains("XX"), "{err}");
    let cleared = cli
        .json(&["org", "limits", org_id, "--clear", "--json"])
        .await;
    assert_eq!(cleared["allowed_destination_countries"], Value::Null);
    drop_db(&db).await;
}
