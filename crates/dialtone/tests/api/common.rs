//! The test harness: a real server on port 0 over a fresh database of its own.
//!
//! The backend is SQLite (a new data directory per test) unless
//! `DIALTONE_TEST_DATABASE_URL` names a PostgreSQL server, in which case each test
//! creates and drops its own database there.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use dialtone_api::keys::{CreatedKey, KeyIssuer};
use dialtone_api::{App, ServerConfig};
use dialtone_domain::auth::{Actor, KeyRequest};
use dialtone_domain::id::new_id;
use dialtone_store::{Organization, Store};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

pub const SECRET: &str = "test-server-secret-0123456789";

pub enum TestDb {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

pub struct TestApp {
    pub url: String,
    pub app: Option<App>,
    pub store: Store,
    pub client: reqwest::Client,
    pub org: Organization,
    pub config: ServerConfig,
    pub db: TestDb,
}

pub fn pg_url() -> Option<String> {
    std::env::var("DIALTONE_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A database of its own for one test.
pub async fn fresh_db() -> (Store, TestDb) {
    match pg_url() {
        Some(admin_url) => {
            let name = new_id("dialtone_t").to_lowercase();
            let admin = sqlx::PgPool::connect(&admin_url)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .expect("create test database");
            admin.close().await;
            let url = with_database(&admin_url, &name);
            let store = Store::open_postgres(&url)
                .await
                .expect("open PostgreSQL store");
            (store, TestDb::Postgres { admin_url, name })
        }
        None => {
            let dir = std::env::temp_dir().join(new_id("dialtone-test"));
            let store = Store::open_sqlite(&dir).await.expect("open SQLite store");
            (store, TestDb::Sqlite(dir))
        }
    }
}

/// `postgres://host:port/db?x` with the database replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{base}/{db}{query}")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestApp {
        dialtone_api::webhooks::install_tls_provider();
        let (store, db) = fresh_db().await;
        let mut config = ServerConfig::new(SecretString::from(SECRET));
        config.usage_flush_interval = Duration::from_secs(3600);
        config.key_poll_interval = Duration::from_millis(100);
        config.rate_limit_per_key = 10_000;
        config.simulator_step = Duration::from_millis(20);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        // Where carriers call back: this very server.
        config.public_url = Some(format!("http://{}", listener.local_addr().expect("addr")));
        tweak(&mut config);
        let app = App::start(listener, store.clone(), config.clone())
            .await
            .expect("start");
        let org = store.create_org("Acme").await.expect("org");
        TestApp {
            url: format!("http://{}", app.addr),
            app: Some(app),
            store,
            client: reqwest::Client::new(),
            org,
            config,
            db,
        }
    }

    pub fn app(&self) -> &App {
        self.app.as_ref().expect("running")
    }

    /// Creates a key as an operator would and returns it (secret included).
    pub async fn create_key(&self, req: KeyRequest) -> CreatedKey {
        let digester = dialtone_domain::keys::KeyDigester::new(&self.config.server_secret);
        KeyIssuer {
            store: &self.store,
            digester: &digester,
            brand: &self.config.key_brand,
            cap: self.config.key_cap,
            ip: None,
        }
        .create(Actor::Operator, &self.org.id, req)
        .await
        .expect("create key")
    }

    /// A full-access live organization key's secret.
    pub async fn admin_key(&self) -> String {
        self.key(KeyRequest {
            name: "admin".into(),
            ..Default::default()
        })
        .await
    }

    pub async fn key(&self, req: KeyRequest) -> String {
        self.create_key(req).await.secret.expose_secret().to_owned()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let resp = self.request(method, path, key, body, &[]).await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut rb = self
            .client
            .request(method.clone(), format!("{}{path}", self.url));
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let resp = rb.send().await.expect("request");
        checked(&method, path, resp).await
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    /// Stops the server and drops the test database.
    pub async fn finish(mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
        self.store.close().await;
        drop_db(&self.db).await;
    }
}

/// Removes a test database (a SQLite directory, or a PostgreSQL database).
pub async fn drop_db(db: &TestDb) {
    match db {
        TestDb::Sqlite(dir) => {
            let _ = std::fs::remove_dir_all(dir);
        }
        TestDb::Postgres { admin_url, name } => {
            if let Ok(admin) = sqlx::PgPool::connect(admin_url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&admin)
                .await;
                admin.close().await;
            }
        }
    }
}

pub fn unauthorized_body() -> Value {
    serde_json::json!({"statusCode": 401, "message": "Unauthorized", "error": "Unauthorized"})
}

/// Creates an object at `collection` with a live organization key, then checks that
/// it is invisible (404, absent from the list) to a test key and to a key of another
/// workspace, and visible to its creator. Returns the object.
pub async fn assert_isolated(t: &TestApp, collection: &str, body: Value) -> Value {
    let live = t.admin_key().await;
    let test = t
        .key(KeyRequest {
            name: "test".into(),
            mode: Some(dialtone_domain::tenancy::Mode::Test),
            ..Default::default()
        })
        .await;
    let ws = t
        .store
        .create_workspace(&t.org.id, "Other")
        .await
        .expect("workspace");
    let other = t
        .key(KeyRequest {
            name: "other workspace".into(),
            workspace_id: Some(ws.id),
            ..Default::default()
        })
        .await;
    let (status, created) = t.post(collection, &live, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("{collection}/{id}");
    let template = format!("{collection}/{{id}}");
    let deletable = dialtone_api::router::table()
        .iter()
        .any(|r| r.method == Method::DELETE && r.path == template);
    assert_eq!(t.get(&path, &live).await.0, StatusCode::OK);
    for (who, key) in [("test key", &test), ("other workspace", &other)] {
        assert_eq!(
            t.get(&path, key).await.0,
            StatusCode::NOT_FOUND,
            "{who} sees {path}"
        );
        if deletable {
            assert_eq!(
                t.call(Method::DELETE, &path, Some(key), None).await.0,
                StatusCode::NOT_FOUND,
                "{who} deletes {path}"
            );
        }
        let (_, list) = t.get(collection, key).await;
        assert!(
            !list["data"]
                .as_array()
                .expect("list")
                .iter()
                .any(|o| o["id"] == id.as_str()),
            "{who} lists {path}"
        );
    }
    created
}

/// Polls a call until `done` holds (or fails after 10 s).
pub async fn wait_for_call(
    t: &TestApp,
    key: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (status, call) = t.get(&format!("/v1/calls/{id}"), key).await;
        assert_eq!(status, StatusCode::OK, "{call}");
        if done(&call) {
            return call;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "call never got there: {call}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn is_terminal(call: &Value) -> bool {
    !matches!(
        call["status"].as_str(),
        Some("queued" | "ringing" | "in_progress")
    )
}

/// The workspace's root directory.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A Python interpreter with `requirements` (a path under the workspace) installed:
/// the one `env_var` names (`.ci/run` makes them), else a virtualenv made once under
/// `target/{venv}`. Call it from `spawn_blocking`: it may run pip.
pub fn python_venv(env_var: &str, venv: &str, requirements: &str) -> std::path::PathBuf {
    if let Ok(p) = std::env::var(env_var)
        && !p.is_empty()
    {
        return p.into();
    }
    let root = workspace_root();
    let venv = root.join("target").join(venv);
    let python = venv.join("bin/python");
    if !python.exists() {
        let ok = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "python3 -m venv {} failed: these tests need Python 3",
            venv.display()
        );
    }
    let ok = std::process::Command::new(&python)
        .args(["-m", "pip", "install", "-q", "-r"])
        .arg(root.join(requirements))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "pip install -r {requirements} failed");
    python
}

/// A `/v1` JSON answer, checked against the document (`contract::check`) and handed
/// back unchanged. Other answers (streams, HTML, media) pass through untouched.
pub async fn checked(method: &Method, path: &str, resp: reqwest::Response) -> reqwest::Response {
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !path.starts_with("/v1/") || content_type.starts_with("text/event-stream") {
        return resp;
    }
    let status = resp.status();
    let headers = resp.headers().clone();
    let version = resp.version();
    let body = resp.bytes().await.expect("response body");
    crate::contract::check(method.as_str(), path, status.as_u16(), &content_type, &body);
    let mut rebuilt = axum::http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.headers_mut() = headers;
    *rebuilt.version_mut() = version;
    reqwest::Response::from(rebuilt)
}
