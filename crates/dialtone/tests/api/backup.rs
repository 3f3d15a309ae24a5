//! `dialtone backup` and `dialtone restore` on the real binary (issue 17): a backup
//! taken while writers write holds every acknowledged write, the restore serves
//! (keys, webhook secrets), and damaged, foreign or too-new backups are refused
//! before anything is written.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;
use tokio::process::{Child, Command};

use crate::common::{SECRET, pg_url};
use crate::webhooks::Receiver;

/// A request a receiver got: its headers and body.
type Delivery = (HeaderMap, Vec<u8>);

fn temp(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(dialtone_domain::id::new_id(prefix))
}

/// The binary with a data directory and no secret in the environment (secret.key).
struct Bin {
    env: Vec<(&'static str, String)>,
}

impl Bin {
    fn on(dir: &Path) -> Bin {
        Bin {
            env: vec![
                ("DIALTONE_DATA_DIR", dir.display().to_string()),
                ("DIALTONE_WEBHOOK_ALLOW_PRIVATE", "true".into()),
                ("DIALTONE_RATE_LIMIT_PER_KEY", "100000".into()),
            ],
        }
    }

    fn with(mut self, k: &'static str, v: &str) -> Bin {
        self.env.push((k, v.to_owned()));
        self
    }

    async fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .args(args)
            .env_remove("DIALTONE_SECRET_KEY")
            .env_remove("DATABASE_URL")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .await
            .expect("run dialtone")
    }

    async fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json output")
    }

    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `serve` on a free port; returns the process and its base URL once it answers.
    async fn serve(&self) -> (Child, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("DIALTONE_SECRET_KEY")
            .env_remove("DATABASE_URL")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("serve");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                return (child, base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not start");
    }
}

/// An organization and a test key made by the operator commands.
async fn org_and_key(bin: &Bin) -> String {
    let org = bin
        .json(&["org", "create", "--name", "Backed up", "--json"])
        .await;
    let key = bin
        .json(&[
            "keys",
            "create",
            "--org",
            org["id"].as_str().expect("id"),
            "--name",
            "k",
            "--test",
            "--json",
        ])
        .await;
    key["secret"].as_str().expect("secret").to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
        .expect("json")
}

fn write_manifest(dir: &Path, m: &Value) {
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(m).expect("json"),
    )
    .expect("write manifest");
}

/// Rewrites the manifest's checksum of `name` to match the file as it is now.
fn reseal(dir: &Path, name: &str) {
    let bytes = std::fs::read(dir.join(name)).expect("file");
    let mut m = manifest(dir);
    for f in m["files"].as_array_mut().expect("files") {
        if f["name"] == name {
            f["sha256"] = json!(hex::encode(sha2::Sha256::digest(&bytes)));
            f["bytes"] = json!(bytes.len());
        }
    }
    write_manifest(dir, &m);
}

#[tokio::test]
async fn a_backup_under_eight_writers_restores_every_acknowledged_write_and_serves() {
    if pg_url().is_some() {
        return; // The embedded database only.
    }
    dialtone_api::webhooks::install_tls_provider();
    let data = temp("dialtone-backup-src");
    let bin = Bin::on(&data);
    let key = org_and_key(&bin).await;
    let (mut server, base) = bin.serve().await;
    let client = reqwest::Client::new();
    let (rx, hook_url) = Receiver::start().await;
    let resp = client
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": hook_url, "events": ["contact.updated"]}))
        .send()
        .await
        .expect("webhook");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let hook: Value = resp.json().await.expect("json");
    let hook_secret = hook["secret"].as_str().expect("secret").to_owned();
    // A receiver that is down while the backup is taken: its delivery stays queued.
    let down_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let resp = client
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({
            "url": format!("http://127.0.0.1:{down_port}/hook"),
            "events": ["contact.deleted"],
        }))
        .send()
        .await
        .expect("webhook");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let queued_secret = resp.json::<Value>().await.expect("json")["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let resp = client
        .post(format!("{base}/v1/contacts"))
        .bearer_auth(&key)
        .json(&json!({"first_name": "Doomed"}))
        .send()
        .await
        .expect("contact");
    let doomed = resp.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let resp = client
        .delete(format!("{base}/v1/contacts/{doomed}"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), StatusCode::OK);

    // 8 writers, each recording the contacts the server acknowledged.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        let (acked, stop) = (acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let resp = client
                    .post(format!("{base}/v1/contacts"))
                    .bearer_auth(&key)
                    .json(&json!({"first_name": format!("W{w}-{i}")}))
                    .send()
                    .await
                    .expect("create contact");
                assert_eq!(resp.status(), StatusCode::CREATED);
                let c: Value = resp.json().await.expect("json");
                acked
                    .lock()
                    .expect("lock")
                    .push(c["id"].as_str().expect("id").to_owned());
                slowest = slowest.max(sent.elapsed());
                i += 1;
            }
            slowest
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before: Vec<String> = acked.lock().expect("lock").clone();
    assert!(before.len() > 50, "the writers wrote ({})", before.len());
    let backup_dir = temp("dialtone-backup");
    let started = Instant::now();
    let summary = bin
        .json(&[
            "backup",
            "--to",
            &backup_dir.display().to_string(),
            "--json",
        ])
        .await;
    let took = started.elapsed();
    let during = acked.lock().expect("lock").len() - before.len();
    stop.store(true, Ordering::Relaxed);
    let mut slowest = Duration::ZERO;
    for w in writers {
        slowest = slowest.max(w.await.expect("writer"));
    }
    eprintln!(
        "backup took {took:?}; {} writes before it, {during} during it; slowest write {slowest:?}",
        before.len()
    );
    // The backup holds no write lock: no writer waited on it for more than a moment.
    assert!(slowest < Duration::from_secs(2), "a write took {slowest:?}");
    assert!(
        during > 0,
        "the writers kept writing while the backup ran ({took:?})"
    );
    assert!(
        summary["bytes"].as_u64().is_some_and(|b| b > 0),
        "{summary}"
    );
    assert!(summary["schema_version"].as_i64().is_some(), "{summary}");
    let names: Vec<&str> = summary["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["dialtone.db", "secret.key"]);
    server.start_kill().expect("kill");
    let _ = server.wait().await;

    // Restore into a new directory, which serves at once.
    let restored = temp("dialtone-restored");
    let rbin = Bin::on(&restored);
    let out = rbin
        .json(&[
            "restore",
            "--from",
            &backup_dir.display().to_string(),
            "--json",
        ])
        .await;
    assert_eq!(out["schema_version"], summary["schema_version"]);
    let facts = dialtone_store::backup::sqlite_facts(&restored.join("dialtone.db"))
        .expect("read restored database");
    assert_eq!(facts.integrity, "ok");
    // The receiver that was down is up now, where the endpoint points.
    let queued: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let got = queued.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let got = got.clone();
            async move {
                got.lock().expect("lock").push((headers, body.to_vec()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", down_port))
        .await
        .expect("bind the receiver's port");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (mut server, base) = rbin.serve().await;
    let resp = client
        .get(format!("{base}/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("me");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "a key made before the backup"
    );
    for id in &before {
        let resp = client
            .get(format!("{base}/v1/contacts/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("get contact");
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{id} was acknowledged before the backup"
        );
    }
    // The webhook endpoint made before the backup still delivers, signed with its secret.
    let resp = client
        .patch(format!("{base}/v1/contacts/{}", before[0]))
        .bearer_auth(&key)
        .json(&json!({"last_name": "Restored"}))
        .send()
        .await
        .expect("update");
    assert_eq!(resp.status(), StatusCode::OK);
    let got = rx.wait_for(1).await;
    let (headers, body) = &got[0];
    let envelope: Value = serde_json::from_slice(body).expect("json");
    assert_eq!(envelope["type"], "contact.updated");
    assert_eq!(envelope["data"]["object"]["id"], before[0].as_str());
    let mut h = HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        h.insert(name, headers[name].clone());
    }
    standardwebhooks::Webhook::new(&hook_secret)
        .expect("secret")
        .verify(body, &h)
        .expect("the delivery verifies with the secret made before the backup");
    // The delivery queued before the backup resumes (its retry is 5 s after the first try).
    let started = Instant::now();
    let (headers, body) = loop {
        if let Some(d) = queued.lock().expect("lock").first().cloned() {
            break d;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the queued delivery never resumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let envelope: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(envelope["type"], "contact.deleted");
    assert_eq!(envelope["data"]["object"]["id"], doomed.as_str());
    let mut h = HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        h.insert(name, headers[name].clone());
    }
    standardwebhooks::Webhook::new(&queued_secret)
        .expect("secret")
        .verify(&body, &h)
        .expect("the resumed delivery verifies");
    server.start_kill().expect("kill");
    let _ = server.wait().await;
    for d in [&data, &backup_dir, &restored] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test]
async fn damaged_foreign_and_newer_backups_are_refused_before_anything_is_written() {
    if pg_url().is_some() {
        return; // The embedded database only.
    }
    let data = temp("dialtone-backup-src");
    let bin = Bin::on(&data);
    org_and_key(&bin).await;
    let good = temp("dialtone-backup");
    let out = bin
        .run(&["backup", "--to", &good.display().to_string()])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(&good.display().to_string()), "{printed}");
    // A backup never goes into a directory holding something.
    let err = bin
        .fails(&["backup", "--to", &good.display().to_string()])
        .await;
    assert!(err.contains("not empty"), "{err}");

    let target = temp("dialtone-restore-target");
    let restore = |from: &Path| {
        let from = from.display().to_string();
        let bin = Bin::on(&target);
        async move { bin.fails(&["restore", "--from", &from]).await }
    };
    let nothing_written = || {
        assert!(
            !target.join("dialtone.db").exists() && !target.join("secret.key").exists(),
            "a refused restore wrote nothing"
        );
    };

    // One changed byte in the database.
    let tampered = temp("dialtone-backup-tampered");
    copy_dir(&good, &tampered);
    let db = tampered.join("dialtone.db");
    let mut bytes = std::fs::read(&db).expect("db");
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&db, bytes).expect("write");
    let err = restore(&tampered).await;
    assert!(err.contains("checksum"), "{err}");
    nothing_written();

    // Another secret (its checksum made to match): the database was made with another.
    let wrong = temp("dialtone-backup-wrong-secret");
    copy_dir(&good, &wrong);
    std::fs::write(wrong.join("secret.key"), "another-secret-0123456789abcdef").expect("write");
    reseal(&wrong, "secret.key");
    let err = restore(&wrong).await;
    assert!(
        err.contains("secret") && err.contains("does not match"),
        "{err}"
    );
    nothing_written();
    // And a DIALTONE_SECRET_KEY that is not the backup's.
    let err = Bin::on(&target)
        .with("DIALTONE_SECRET_KEY", SECRET)
        .fails(&["restore", "--from", &good.display().to_string()])
        .await;
    assert!(err.contains("DIALTONE_SECRET_KEY"), "{err}");
    nothing_written();

    // A newer schema than this binary's newest migration.
    let newer = temp("dialtone-backup-newer");
    copy_dir(&good, &newer);
    let mut m = manifest(&newer);
    let newest = dialtone_store::backup::newest_sqlite_migration();
    m["schema_version"] = json!(newest + 1);
    write_manifest(&newer, &m);
    let err = restore(&newer).await;
    assert!(err.contains("newer"), "{err}");
    nothing_written();

    // No manifest: not a complete backup.
    let partial = temp("dialtone-backup-partial");
    copy_dir(&good, &partial);
    std::fs::remove_file(partial.join("manifest.json")).expect("rm");
    let err = restore(&partial).await;
    assert!(err.contains("manifest.json"), "{err}");
    nothing_written();

    // The good one restores; then the directory is not empty without --force.
    let rbin = Bin::on(&target);
    let out = rbin
        .run(&["restore", "--from", &good.display().to_string()])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = rbin
        .fails(&["restore", "--from", &good.display().to_string()])
        .await;
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    // Not even --force replaces the database under a running server.
    let (mut server, _) = rbin.serve().await;
    let err = rbin
        .fails(&["restore", "--from", &good.display().to_string(), "--force"])
        .await;
    assert!(err.contains("already running"), "{err}");
    server.start_kill().expect("kill");
    let _ = server.wait().await;
    let out = rbin
        .run(&["restore", "--from", &good.display().to_string(), "--force"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let orgs = rbin.json(&["org", "list", "--json"]).await;
    assert_eq!(orgs.as_array().map(Vec::len), Some(1));
    for d in [&data, &good, &tampered, &wrong, &newer, &partial, &target] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test]
async fn backup_on_postgresql_says_what_to_do_instead() {
    let url = pg_url().unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let dir = temp("dialtone-backup-pg");
    let bin = Bin::on(&dir)
        .with("DATABASE_URL", &url)
        .with("DIALTONE_SECRET_KEY", SECRET);
    let err = bin
        .fails(&["backup", "--to", &dir.display().to_string()])
        .await;
    assert!(
        err.contains("pg_dump") && err.contains("DIALTONE_SECRET_KEY"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing was written");
    let err = bin
        .fails(&["restore", "--from", &dir.display().to_string()])
        .await;
    assert!(err.contains("pg_restore"), "{err}");
}
