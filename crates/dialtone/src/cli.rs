//! Command-line interface: flags, environment, and what each command does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use dialtone_api::config::CarrierChoice;
use dialtone_api::keys::{ApiKeyView, CreatedKeyView, KeyIssuer};
use dialtone_api::{App, ServerConfig};
use dialtone_domain::auth::{Actor, KeyRequest};
use dialtone_domain::keys::{KeyDigester, generate_server_secret, valid_brand};
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::time::now;
use dialtone_store::Store;
use secrecy::{ExposeSecret, SecretString};
use tracing_subscriber::EnvFilter;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(
    name = "dialtone",
    version,
    about = "The self-hosted public API of a calling platform"
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Where the SQLite database (and its secret) live.
    #[arg(
        long,
        env = "DIALTONE_DATA_DIR",
        default_value = "./dialtone-data",
        global = true
    )]
    data_dir: PathBuf,
    /// Use PostgreSQL instead of SQLite (wins over --data-dir).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    /// Secret for key digests; the same on every node. Default (SQLite): generated
    /// once into <data-dir>/secret.key. Required with PostgreSQL.
    #[arg(
        long,
        env = "DIALTONE_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    secret_key: Option<String>,
    /// First part of every key: `dt` gives dt_live_…
    #[arg(long, env = "DIALTONE_KEY_BRAND", default_value = "dt", global = true)]
    key_brand: String,
    /// Active API keys allowed per organization.
    #[arg(long, env = "DIALTONE_KEY_CAP", default_value_t = 25, global = true)]
    key_cap: usize,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (and run the background workers).
    Serve(Box<ServeArgs>),
    /// Serve MCP on stdin/stdout for an AI assistant, as a client of a running server.
    Mcp(McpArgs),
    /// Apply database migrations and exit (serve does this too).
    Migrate,
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Workspaces of an organization.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// API keys, straight on the database (bootstrap and break-glass).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The wallet live usage is paid from.
    #[command(subcommand)]
    Billing(BillingCommand),
    /// Make inbound traffic to one of your numbers, for demos and tests.
    #[command(subcommand)]
    Simulate(SimulateCommand),
    /// Fill a workspace with realistic demo data (contacts, calls, transcripts, notes).
    Demo(DemoArgs),
    /// Dashboard users.
    #[command(subcommand)]
    User(UserCommand),
    /// Back up the SQLite database and its secret, while `serve` runs (PostgreSQL:
    /// use pg_dump).
    Backup(BackupArgs),
    /// Restore a backup made by `dialtone backup` into --data-dir.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// A new (or empty) directory for the backup: the database, secret.key, manifest.json.
    #[arg(long)]
    to: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// A directory written by `dialtone backup`.
    #[arg(long)]
    from: PathBuf,
    /// Replace the database and secret in a data directory that is not empty (no
    /// server may be running on it).
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a dashboard user of an organization (the password is read from stdin).
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        /// Read the password from standard input (it never goes on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// owner and admin manage keys and webhooks; member only looks.
        #[arg(long, default_value = "member", value_parser = ["owner", "admin", "member"])]
        role: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[arg(long)]
    org: String,
    /// Default: the organization's default workspace.
    #[arg(long)]
    workspace: Option<String>,
    #[arg(long, default_value_t = 200)]
    contacts: usize,
    #[arg(long, default_value_t = 2_000)]
    calls: usize,
    /// Write test-mode data (seen by test keys) instead of live data.
    #[arg(long)]
    test: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum SimulateCommand {
    /// Someone calls one of your numbers; a running server plays the call out.
    InboundCall {
        /// Your number (E.164).
        #[arg(long)]
        to: String,
        /// The caller (E.164).
        #[arg(long)]
        from: String,
        /// The number is a test-mode number.
        #[arg(long)]
        test: bool,
        #[arg(long)]
        json: bool,
    },
    /// Someone texts one of your numbers.
    InboundMessage {
        #[arg(long)]
        to: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        body: String,
        #[arg(long)]
        test: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BillingCommand {
    /// Add funds to an organization's wallet.
    Credit {
        #[arg(long)]
        org: String,
        /// In dollars, at most two decimals: 25 or 10.50.
        #[arg(long)]
        amount: String,
        /// Credit the test wallet instead of the live one.
        #[arg(long)]
        test: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[arg(long, env = "DIALTONE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Share per-key rate limits between nodes through this Redis (e.g. redis://127.0.0.1:6379).
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Requests per second per key (bursts of twice this).
    #[arg(long, env = "DIALTONE_RATE_LIMIT_PER_KEY", default_value_t = 100)]
    rate_limit_per_key: u32,
    /// How often usage counters are written, in milliseconds.
    #[arg(long, env = "DIALTONE_USAGE_FLUSH_MS", default_value_t = 10_000)]
    usage_flush_ms: u64,
    /// Largest request body, in bytes.
    #[arg(long, env = "DIALTONE_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    max_body_bytes: usize,
    /// A request's headers must arrive within this many milliseconds.
    #[arg(
        long,
        env = "DIALTONE_HEADER_READ_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    header_read_timeout_ms: u64,
    /// A request body must keep arriving: at most this many milliseconds between reads.
    #[arg(long, env = "DIALTONE_BODY_READ_TIMEOUT_MS", default_value_t = 30_000)]
    body_read_timeout_ms: u64,
    /// How long a kept-alive connection may wait for its next request, in milliseconds.
    #[arg(long, env = "DIALTONE_IDLE_TIMEOUT_MS", default_value_t = 75_000)]
    idle_timeout_ms: u64,
    /// Connections served at once; more wait to be accepted (keep below `ulimit -n`).
    #[arg(long, env = "DIALTONE_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Trust X-Forwarded-For for the client address (only behind your own proxy).
    #[arg(long, env = "DIALTONE_TRUST_PROXY")]
    trust_proxy: bool,
    /// Wall time between steps of a simulated call, in milliseconds.
    #[arg(long, env = "DIALTONE_SIMULATOR_STEP_MS", default_value_t = 500)]
    simulator_step_ms: u64,
    /// The carrier of live calls, messages and numbers: `none` (live calls answer
    /// 503), `simulator` (charged as real traffic, for demos) or `twilio`. Test keys
    /// always use the simulator.
    #[arg(long, env = "DIALTONE_CARRIER", default_value = "none", value_parser = ["none", "simulator", "twilio"])]
    carrier: String,
    /// Same as `--carrier simulator` (kept for existing setups).
    #[arg(long, env = "DIALTONE_LIVE_SIMULATOR", hide = true)]
    live_simulator: bool,
    /// The Twilio account (`AC…`), with `--carrier twilio`.
    #[arg(long, env = "DIALTONE_TWILIO_ACCOUNT_SID")]
    twilio_account_sid: Option<String>,
    /// The Twilio auth token: from the environment only, never a flag (a secret).
    #[arg(skip = std::env::var("DIALTONE_TWILIO_AUTH_TOKEN").ok().map(secrecy::SecretString::from))]
    twilio_auth_token: Option<secrecy::SecretString>,
    /// Twilio's API (a regional edge, or a test double).
    #[arg(long, env = "DIALTONE_TWILIO_API_URL", default_value = dialtone_telephony::twilio::DEFAULT_API_URL)]
    twilio_api_url: String,
    /// Public base URL of this server: links it hands out (recording media) and where
    /// carriers call back (required with `--carrier twilio`; HTTPS in production).
    #[arg(long, env = "DIALTONE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Allow webhook URLs on loopback, private and reserved addresses (development only).
    #[arg(long, env = "DIALTONE_WEBHOOK_ALLOW_PRIVATE")]
    webhook_allow_private: bool,
    /// The header carrying the hex HMAC signature of each delivery.
    #[arg(
        long,
        env = "DIALTONE_WEBHOOK_SIGNATURE_HEADER",
        default_value = "X-Dialtone-Signature"
    )]
    webhook_signature_header: String,
    /// How long a webhook receiver may take to answer, in milliseconds.
    #[arg(long, env = "DIALTONE_WEBHOOK_TIMEOUT_MS", default_value_t = 15_000)]
    webhook_timeout_ms: u64,
    /// Log format.
    #[arg(long, env = "DIALTONE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Do not serve MCP at /mcp.
    #[arg(long, env = "DIALTONE_MCP_DISABLED")]
    mcp_disabled: bool,
    /// Offer MCP write tools at /mcp (confirmation-gated, only to keys allowed to write).
    #[arg(long, env = "DIALTONE_MCP_ALLOW_WRITES")]
    mcp_allow_writes: bool,
    /// Host names /mcp answers to, comma-separated (default: loopback only). Set your
    /// public host name when serving behind a proxy.
    #[arg(long, env = "DIALTONE_MCP_ALLOWED_HOSTS", value_delimiter = ',')]
    mcp_allowed_hosts: Vec<String>,
    /// OAuth client registrations (POST /oauth/register) one address may make per
    /// hour (at once, then one every 3600/n seconds).
    #[arg(
        long,
        env = "DIALTONE_OAUTH_REGISTRATIONS_PER_HOUR",
        default_value_t = 20
    )]
    oauth_registrations_per_hour: u32,
    /// Registered OAuth clients not yet authorized by anyone that may exist at once
    /// (each is deleted a day after registration); past it registration answers 429.
    #[arg(
        long,
        env = "DIALTONE_OAUTH_MAX_UNUSED_CLIENTS",
        default_value_t = 10_000
    )]
    oauth_max_unused_clients: u64,
    /// Accept leaked-key reports from GitHub secret scanning at
    /// POST /v1/secret-scanning/report, signed with these public keys (a file in the
    /// JSON of GitHub's public-keys endpoint). Without it the route answers 404.
    #[arg(long, env = "DIALTONE_SECRET_SCANNING_KEYS")]
    secret_scanning_keys: Option<PathBuf>,
    /// What a report of a live, active key does: `revoke` it at once, or only `flag` it
    /// (event, audit log, dashboard banner). Test keys are always only flagged.
    #[arg(
        long,
        env = "DIALTONE_SECRET_SCANNING_ACTION",
        default_value = "revoke"
    )]
    secret_scanning_action: dialtone_api::secret_scanning::LeakAction,
}

#[derive(Args)]
struct McpArgs {
    /// The API key the assistant acts with. A read-only key is the right one.
    #[arg(long, env = "DIALTONE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// For an organization key: the workspace to act in (default: the organization's).
    #[arg(long, env = "DIALTONE_WORKSPACE")]
    workspace: Option<String>,
    /// The dialtone server the tools call.
    #[arg(
        long,
        env = "DIALTONE_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    api_url: String,
    /// Offer write tools (send a message, place a call, add a note) to keys allowed
    /// to write; each still needs a preview and a confirmation.
    #[arg(long, env = "DIALTONE_MCP_ALLOW_WRITES")]
    allow_writes: bool,
}

impl std::fmt::Debug for McpArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpArgs")
            .field("api_url", &self.api_url)
            .field("allow_writes", &self.allow_writes)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create an organization (with its default workspace).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List organizations.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Write every object of an organization as JSON Lines (one file per resource,
    /// secrets left out) and a manifest, into a new directory.
    Export {
        #[arg(long)]
        org: String,
        /// A new (or empty) directory for the export.
        #[arg(long)]
        to: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Erase an organization: revoke its keys, then delete every row of it, for good.
    Delete {
        #[arg(long)]
        org: String,
        /// Do not ask for the organization id to be typed (required when stdin is not
        /// a terminal).
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show or set the limits new live API keys of an organization get when none are
    /// given (existing keys keep theirs). With no limit flag it shows them; with any,
    /// the flags given become the defaults (a limit left out: none); `--clear`
    /// removes them all.
    Limits(OrgLimitsArgs),
}

#[derive(Debug, clap::Args)]
struct OrgLimitsArgs {
    /// The organization (`org_…`).
    org: String,
    /// Calls of a key not yet ended.
    #[arg(long)]
    max_concurrent_calls: Option<i64>,
    /// Minutes of calls a key places per UTC day.
    #[arg(long)]
    max_call_minutes_per_day: Option<i64>,
    /// Messages a key sends per UTC day.
    #[arg(long)]
    max_messages_per_day: Option<i64>,
    /// Cents a key's calls and messages cost per UTC day.
    #[arg(long)]
    max_spend_cents_per_day: Option<i64>,
    /// ISO 3166 country codes calls and messages may go to, comma-separated (`US,CA`).
    #[arg(long, value_delimiter = ',')]
    allowed_destination_countries: Option<Vec<String>>,
    /// Remove every default limit.
    #[arg(long, conflicts_with_all = ["max_concurrent_calls", "max_call_minutes_per_day", "max_messages_per_day", "max_spend_cents_per_day", "allowed_destination_countries"])]
    clear: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace in an organization.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; prints its secret once.
    Create(CreateKeyArgs),
    /// List an organization's keys.
    List {
        #[arg(long)]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key, effective on every server within a second.
    Revoke {
        key_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct CreateKeyArgs {
    #[arg(long)]
    org: String,
    #[arg(long)]
    name: String,
    /// Scope the key to one workspace (default: an organization key).
    #[arg(long)]
    workspace: Option<String>,
    /// A test key: simulated calls, test data only.
    #[arg(long)]
    test: bool,
    /// Every :read permission and nothing else.
    #[arg(long)]
    read_only: bool,
    /// Comma-separated, e.g. contacts:read,calls:write (default: full access).
    #[arg(long, value_delimiter = ',')]
    permissions: Option<Vec<String>>,
    /// RFC 3339 time after which the key stops working, e.g. 2026-12-31T23:59:59Z.
    #[arg(long, value_parser = rfc3339_time)]
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long)]
    json: bool,
}

/// A time as `--expires-at` wants it.
fn rfc3339_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| "expected an RFC 3339 time with a zone, e.g. 2026-12-31T23:59:59Z".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(json: bool) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // Colours only for a person at a terminal, never into files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Reads the server secret: the flag/env, else `<data-dir>/secret.key` (SQLite only),
/// created on first start with owner-only permissions.
fn server_secret(g: &Global) -> Result<SecretString, AnyError> {
    if let Some(s) = &g.secret_key {
        if s.len() < 16 {
            return Err("DIALTONE_SECRET_KEY must be at least 16 characters".into());
        }
        return Ok(SecretString::from(s.clone()));
    }
    if g.database_url.is_some() {
        return Err("with DATABASE_URL, set DIALTONE_SECRET_KEY too (the same value on every node), e.g. `openssl rand -base64 48`".into());
    }
    let path = g.data_dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(SecretString::from(s.trim().to_owned())),
        Ok(_) => Err(format!("{} is empty", path.display()).into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            data_dir_ready(&g.data_dir)?;
            let secret = generate_server_secret();
            write_private(&path, secret.expose_secret())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(secret)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display()).into()),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

async fn open_store(g: &Global) -> Result<Store, AnyError> {
    match &g.database_url {
        Some(url) => {
            let place = postgres_place(url)?;
            Store::open_postgres(url)
                .await
                .map_err(|e| format!("cannot use PostgreSQL at {place}: {e}").into())
        }
        None => {
            data_dir_ready(&g.data_dir)?;
            Store::open_sqlite(&g.data_dir).await.map_err(|e| {
                format!(
                    "cannot open the SQLite database in {}: {e}",
                    g.data_dir.display()
                )
                .into()
            })
        }
    }
}

/// Where a PostgreSQL URL points (`host:port/database`), never its password; refuses
/// anything but `postgres://` and `postgresql://`.
fn postgres_place(url: &str) -> Result<String, AnyError> {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        return Err(format!(
            "DATABASE_URL must be a postgres:// or postgresql:// URL{}; for SQLite leave it \
             unset and choose the directory with --data-dir",
            if scheme.is_empty() {
                String::new()
            } else {
                format!(" (not {scheme}://)")
            }
        )
        .into());
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let at_host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    Ok(if at_host.is_empty() {
        "the default host".to_owned()
    } else {
        at_host.to_owned()
    })
}

/// Creates the data directory if needed and checks it can be written, naming it when
/// it cannot.
fn data_dir_ready(dir: &Path) -> Result<(), AnyError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    let probe = dir.join(".write-check");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| format!("cannot write in the data directory {}: {e}", dir.display()))?;
    Ok(())
}

/// Holds `serve.lock` in the data directory while a server runs on it: SQLite has one
/// writer process, so a second `serve` on the same directory refuses to start.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, AnyError> {
    let path = dir.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another `dialtone serve` is already running on {} (it holds {}); stop it, or give \
             this one another --data-dir",
            dir.display(),
            path.display()
        )
        .into()),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(format!("cannot lock {}: {e}", path.display()).into())
        }
    }
}

/// Opens the store and checks the secret is the one this database was set up with
/// (otherwise every existing key would be refused, silently).
async fn open(g: &Global) -> Result<(Store, SecretString), AnyError> {
    if !valid_brand(&g.key_brand) {
        return Err(
            "--key-brand must be 1 to 16 lowercase letters or digits, starting with a letter"
                .into(),
        );
    }
    let secret = server_secret(g)?;
    let store = open_store(g).await?;
    let check = hex_digest(&KeyDigester::new(&secret), "dialtone secret check");
    let stored = store.setting_or_insert("secret_check", &check).await?;
    if stored != check {
        return Err("the server secret does not match the one this database was created with; set DIALTONE_SECRET_KEY to the original value".into());
    }
    Ok((store, secret))
}

fn hex_digest(d: &KeyDigester, s: &str) -> String {
    d.digest(s).iter().map(|b| format!("{b:02x}")).collect()
}

fn print_json(v: &impl serde::Serialize) -> Result<(), AnyError> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn user(g: &Global, cmd: UserCommand) -> Result<(), AnyError> {
    let UserCommand::Create {
        org,
        email,
        password_stdin: _,
        role,
        json,
    } = cmd;
    let mut password = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    let (store, _) = open(g).await?;
    let result =
        dialtone_api::dashboard::create_user(&store, &org, &email, password, role.parse()?).await;
    store.close().await;
    let user = result?;
    if json {
        print_json(&serde_json::json!({
            "id": user.id, "organization_id": user.org_id, "email": user.email, "role": user.role,
        }))
    } else {
        println!(
            "created {} user {} ({}) in {}",
            user.role, user.email, user.id, user.org_id
        );
        Ok(())
    }
}

pub async fn run(cli: Cli) -> Result<(), AnyError> {
    let g = &cli.global;
    match cli.command {
        Command::Serve(args) => serve(g, *args).await,
        Command::Mcp(args) => mcp(args).await,
        Command::User(cmd) => user(g, cmd).await,
        Command::Migrate => {
            open(g).await?.0.close().await;
            eprintln!("database is up to date");
            Ok(())
        }
        Command::Org(OrgCommand::Create { name, json }) => {
            let (store, _) = open(g).await?;
            let org = store.create_org(name.trim()).await?;
            if json {
                print_json(&org)?;
            } else {
                println!(
                    "created organization {} (default workspace {})",
                    org.id, org.default_workspace_id
                );
                println!(
                    "next: dialtone keys create --org {} --name \"My first key\"",
                    org.id
                );
            }
            store.close().await;
            Ok(())
        }
        Command::Org(OrgCommand::List { json }) => {
            let (store, _) = open(g).await?;
            let orgs = store.list_orgs().await?;
            if json {
                print_json(&orgs)?;
            } else {
                for o in orgs {
                    println!("{}\t{}\t{}", o.id, o.default_workspace_id, o.name);
                }
            }
            store.close().await;
            Ok(())
        }
        Command::Org(OrgCommand::Export { org, to, json }) => org_export(g, &org, &to, json).await,
        Command::Org(OrgCommand::Delete { org, yes, json }) => org_delete(g, &org, yes, json).await,
        Command::Org(OrgCommand::Limits(args)) => org_limits(g, args).await,
        Command::Workspace(WorkspaceCommand::Create { org, name, json }) => {
            let (store, _) = open(g).await?;
            let ws = store.create_workspace(&org, name.trim()).await?;
            if json {
                print_json(&ws)?;
            } else {
                println!("created workspace {} in {}", ws.id, ws.org_id);
            }
            store.close().await;
            Ok(())
        }
        Command::Keys(cmd) => keys(g, cmd).await,
        Command::Backup(args) => backup(g, args),
        Command::Restore(args) => restore(g, args).await,
        Command::Simulate(cmd) => simulate(g, cmd).await,
        Command::Demo(args) => demo(g, args).await,
        Command::Billing(BillingCommand::Credit {
            org,
            amount,
            test,
            json,
        }) => {
            let cents = dialtone_domain::billing::parse_amount(&amount)?;
            let (store, _) = open(g).await?;
            let wallet = store
                .credit_wallet(&org, !test, cents, "Credit by operator")
                .await;
            store.close().await;
            let wallet = wallet?;
            if json {
                print_json(&wallet)?;
            } else {
                println!(
                    "{} wallet of {org}: {} {}",
                    if test { "test" } else { "live" },
                    dialtone_domain::billing::format_amount(wallet.balance),
                    wallet.currency
                );
            }
            Ok(())
        }
    }
}

async fn keys(g: &Global, cmd: KeysCommand) -> Result<(), AnyError> {
    let (store, secret) = open(g).await?;
    let result = match cmd {
        KeysCommand::Create(a) => {
            let digester = KeyDigester::new(&secret);
            let issuer = KeyIssuer {
                store: &store,
                digester: &digester,
                brand: &g.key_brand,
                cap: g.key_cap,
                ip: None,
            };
            store.get_org(&a.org).await?;
            let req = KeyRequest {
                name: a.name,
                read_only: a.read_only,
                mode: Some(if a.test { Mode::Test } else { Mode::Live }),
                permissions: a.permissions,
                workspace_id: a.workspace,
                expires_at: a.expires_at.map(dialtone_domain::time::truncate),
                ..KeyRequest::default()
            };
            let created = issuer.create(Actor::Operator, &a.org, req).await?;
            if a.json {
                print_json(&CreatedKeyView::new(&created))
            } else {
                println!("{}", created.secret.expose_secret());
                eprintln!(
                    "created {} ({}); the key above is shown once, store it now",
                    created.key.id,
                    if created.key.read_only() {
                        "read-only"
                    } else {
                        "full access"
                    }
                );
                Ok(())
            }
        }
        KeysCommand::List { org, json } => {
            let at = now();
            let mut all = Vec::new();
            let mut page = PageRequest::new(Some(100), None)?;
            loop {
                let rows = store.list_keys(&org, None, None, &page).await?;
                let more = rows.len() > 100;
                all.extend(rows.into_iter().take(100));
                match (more, all.last()) {
                    (true, Some(last)) => page.before_id = Some(last.id.clone()),
                    _ => break,
                }
            }
            let views: Vec<ApiKeyView> = all.iter().map(|k| ApiKeyView::new(k, at)).collect();
            if json {
                print_json(&views)
            } else {
                for v in views {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        v.id,
                        v.redacted,
                        v.status,
                        if v.read_only { "read-only" } else { "full" },
                        v.name
                    );
                }
                Ok(())
            }
        }
        KeysCommand::Revoke { key_id, json } => {
            let key = store.revoke_key_any_org(&key_id).await?;
            if json {
                print_json(&ApiKeyView::new(&key, now()))
            } else {
                println!("revoked {}", key.id);
                Ok(())
            }
        }
    };
    store.close().await;
    result
}

async fn demo(g: &Global, args: DemoArgs) -> Result<(), AnyError> {
    use std::io::IsTerminal;
    let (store, _) = open(g).await?;
    let org = store.get_org(&args.org).await?;
    let workspace = match args.workspace {
        Some(ws) => store.get_workspace(&org.id, &ws).await?.id,
        None => org.default_workspace_id,
    };
    let scope = dialtone_domain::tenancy::Scope {
        org_id: org.id,
        workspace_id: workspace,
        mode: if args.test { Mode::Test } else { Mode::Live },
    };
    let started = std::time::Instant::now();
    // A bar with an ETA for a person at a terminal; plain lines (every 10 %) otherwise.
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(args.calls as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "calls [{bar:30}] {pos}/{len} ({percent}%), {per_sec}, about {eta} left",
        ) {
            bar.set_style(style.progress_chars("#>-"));
        }
        bar
    });
    let last_tenth = std::sync::atomic::AtomicUsize::new(0);
    let summary = store
        .scoped(&scope)
        .demo(args.contacts, args.calls, |done, total| match &bar {
            Some(bar) => bar.set_position(done as u64),
            None => {
                let tenth = done * 10 / total.max(1);
                if tenth > last_tenth.swap(tenth, std::sync::atomic::Ordering::Relaxed) {
                    eprintln!("calls: {done}/{total} ({}%)", tenth * 10);
                }
            }
        })
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    store.close().await;
    let summary = summary?;
    if args.json {
        print_json(&summary)?;
    } else {
        println!(
            "demo data in {:.1} s: {} contacts, {} calls, {} transcripts, {} notes; agent {}, number {}",
            started.elapsed().as_secs_f64(),
            summary.contacts,
            summary.calls,
            summary.transcripts,
            summary.notes,
            summary.agent_id,
            summary.phone_number
        );
    }
    Ok(())
}

async fn simulate(g: &Global, cmd: SimulateCommand) -> Result<(), AnyError> {
    use dialtone_domain::calls::{Direction, SimulatedOutcome};
    use dialtone_domain::idempotency::Outcome;
    use dialtone_domain::messages::SendMessage;
    use dialtone_store::{NewCall, NewMessage};

    let (store, _) = open(g).await?;
    let mode = |test: bool| if test { Mode::Test } else { Mode::Live };
    let result = match cmd {
        SimulateCommand::InboundCall {
            to,
            from,
            test,
            json,
        } => {
            let (scope, number_id) = store.number_owner(&to, mode(test)).await?;
            let scoped = store.scoped(&scope);
            let number = scoped.get_number(&number_id).await?;
            let new = NewCall {
                id: dialtone_domain::id::new_id("call"),
                direction: Direction::Inbound,
                carrier: dialtone_store::SIMULATOR,
                outcome: Some(SimulatedOutcome::for_number(&from, None)),
                reserved_seconds: None,
                carrier_sid: None,
                from,
                to,
                phone_number_id: Some(number_id),
                agent_id: number.agent_id,
                campaign_id: None,
                recipient_position: None,
                metadata: Default::default(),
                api_key_id: None,
            };
            match scoped
                .place_call(new, chrono::TimeDelta::milliseconds(200), None)
                .await?
            {
                Outcome::Done(call) if json => print_json(&call),
                Outcome::Done(call) => {
                    println!(
                        "inbound call {} queued; a running `dialtone serve` plays it out",
                        call.id
                    );
                    Ok(())
                }
                Outcome::Replay(_) => Err("unexpected replay".into()),
            }
        }
        SimulateCommand::InboundMessage {
            to,
            from,
            body,
            test,
            json,
        } => {
            SendMessage {
                to: to.clone(),
                body: body.clone(),
                from: Some(from.clone()),
            }
            .validate()?;
            let (scope, number_id) = store.number_owner(&to, mode(test)).await?;
            let new = NewMessage {
                id: dialtone_domain::id::new_id("msg"),
                direction: Direction::Inbound,
                from,
                to,
                body,
                phone_number_id: Some(number_id),
                fail: false,
                carrier: dialtone_store::SIMULATOR,
                carrier_sid: None,
                api_key_id: None,
            };
            match store
                .scoped(&scope)
                .create_message(new, chrono::TimeDelta::zero(), None)
                .await?
            {
                Outcome::Done(m) if json => print_json(&m),
                Outcome::Done(m) => {
                    println!("inbound message {} received", m.id);
                    Ok(())
                }
                Outcome::Replay(_) => Err("unexpected replay".into()),
            }
        }
    };
    store.close().await;
    result
}

/// `dialtone mcp`: stdout carries the protocol only; logs go to stderr.
async fn mcp(args: McpArgs) -> Result<(), AnyError> {
    init_logging(false);
    let key = args.api_key.filter(|k| !k.trim().is_empty()).ok_or(
        "no API key: set DIALTONE_API_KEY (a read-only key is the right one for an assistant)",
    )?;
    dialtone_api::webhooks::install_tls_provider();
    dialtone_mcp::serve_stdio(
        &args.api_url,
        SecretString::from(key.trim().to_owned()),
        args.workspace,
        args.allow_writes,
    )
    .await?;
    Ok(())
}

/// The live carrier the flags ask for; a clear refusal when a part is missing.
fn carrier_choice(args: &ServeArgs) -> Result<CarrierChoice, AnyError> {
    let wanted = if args.live_simulator && args.carrier == "none" {
        "simulator"
    } else {
        args.carrier.as_str()
    };
    match wanted {
        "simulator" => Ok(CarrierChoice::Simulator),
        "twilio" => {
            let mut missing = Vec::new();
            if args.twilio_account_sid.as_deref().is_none_or(str::is_empty) {
                missing.push("DIALTONE_TWILIO_ACCOUNT_SID");
            }
            if args
                .twilio_auth_token
                .as_ref()
                .is_none_or(|t| secrecy::ExposeSecret::expose_secret(t).is_empty())
            {
                missing.push("DIALTONE_TWILIO_AUTH_TOKEN");
            }
            if args.public_url.as_deref().is_none_or(str::is_empty) {
                missing
                    .push("--public-url (DIALTONE_PUBLIC_URL: where Twilio calls dialtone back)");
            }
            if !missing.is_empty() {
                return Err(format!("--carrier twilio needs {}", missing.join(", ")).into());
            }
            Ok(CarrierChoice::Twilio(
                dialtone_telephony::twilio::TwilioConfig {
                    account_sid: args.twilio_account_sid.clone().unwrap_or_default(),
                    auth_token: args
                        .twilio_auth_token
                        .clone()
                        .unwrap_or_else(|| secrecy::SecretString::from("")),
                    api_url: args.twilio_api_url.clone(),
                    timeout: Duration::from_secs(10),
                },
            ))
        }
        _ => Ok(CarrierChoice::None),
    }
}

async fn serve(g: &Global, args: ServeArgs) -> Result<(), AnyError> {
    init_logging(args.log_format == LogFormat::Json);
    let carrier = carrier_choice(&args)?;
    let (store, secret) = open(g).await?;
    let first_run = store.list_orgs().await?.is_empty();
    let mut config = ServerConfig::new(secret);
    config.key_brand = g.key_brand.clone();
    config.key_cap = g.key_cap;
    config.rate_limit_per_key = args.rate_limit_per_key;
    config.usage_flush_interval = Duration::from_millis(args.usage_flush_ms.max(50));
    config.max_body_bytes = args.max_body_bytes;
    config.header_read_timeout = Duration::from_millis(args.header_read_timeout_ms.max(100));
    config.body_read_timeout = Duration::from_millis(args.body_read_timeout_ms.max(100));
    config.idle_timeout = Duration::from_millis(args.idle_timeout_ms.max(100));
    config.max_connections = args.max_connections.max(1);
    config.trust_proxy = args.trust_proxy;
    config.redis_url = args.redis_url;
    config.simulator_step = Duration::from_millis(args.simulator_step_ms.max(10));
    config.carrier = carrier;
    config.public_url = args.public_url;
    config.webhook_allow_private = args.webhook_allow_private;
    config.webhook_timeout = Duration::from_millis(args.webhook_timeout_ms.max(100));
    config.mcp_enabled = !args.mcp_disabled;
    config.mcp_allow_writes = args.mcp_allow_writes;
    config.mcp_allowed_hosts = args.mcp_allowed_hosts;
    config.oauth_registrations_per_hour = args.oauth_registrations_per_hour.max(1);
    config.oauth_max_unused_clients = args.oauth_max_unused_clients;
    if let Some(path) = &args.secret_scanning_keys {
        let keys = dialtone_api::secret_scanning::ReporterKeys::load(path)
            .map_err(|e| format!("--secret-scanning-keys: {e}"))?;
        tracing::info!(keys = keys.len(), "secret scanning reports accepted");
        config.secret_scanning_keys = Some(std::sync::Arc::new(keys));
    }
    config.secret_scanning_action = args.secret_scanning_action;
    if axum_header_ok(&args.webhook_signature_header) {
        config.webhook_signature_header = args.webhook_signature_header;
    } else {
        return Err("--webhook-signature-header must be a valid header name".into());
    }
    let _lock = match &g.database_url {
        Some(_) => None,
        None => Some(lock_data_dir(&g.data_dir)?),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "cannot listen on {}: the address is already in use (another server?); \
                 choose another with --listen",
                args.listen
            ),
            _ => format!("cannot listen on {}: {e}", args.listen),
        })?;
    let mut app = App::start(listener, store.clone(), config).await?;
    let backend = match &g.database_url {
        Some(_) => "PostgreSQL".to_owned(),
        None => format!("SQLite in {}", g.data_dir.display()),
    };
    tracing::info!(addr = %app.addr, %backend, "dialtone listening");
    if let Some(token) = dialtone_api::dashboard::issue_setup_token(&app.state).await? {
        let base = app.state.config.public_url.clone().map_or_else(
            || format!("http://{}", app.addr),
            |u| u.trim_end_matches('/').to_owned(),
        );
        eprintln!(
            "\nNo dashboard user yet. Open this one-time link to create the first owner \
             (valid 24 hours):\n\n  {base}/setup/{}\n",
            token.expose_secret()
        );
    }
    if first_run {
        let data = match &g.database_url {
            Some(_) => String::new(),
            None => format!(" --data-dir {}", g.data_dir.display()),
        };
        eprintln!(
            "\nWelcome to dialtone. There is no organization yet; create one and a first key:\n\n  \
             dialtone org create --name \"My company\"{data}\n  \
             dialtone keys create --org org_… --name \"First key\"{data}\n\n\
             The key is printed once by that command (never logged). Then:\n  \
             curl -H \"Authorization: Bearer dt_live_…\" http://{}/v1/me\n",
            app.addr
        );
    }
    tokio::select! {
        r = app.wait() => r?,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            app.shutdown().await;
        }
    }
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn axum_header_ok(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What `dialtone backup` writes next to the files, and `restore` checks.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Manifest {
    /// The layout of this manifest.
    format: u32,
    database: String,
    /// The newest migration applied to the database in the backup.
    schema_version: i64,
    dialtone_version: String,
    created_at: chrono::DateTime<chrono::Utc>,
    files: Vec<BackupFile>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct BackupFile {
    name: String,
    bytes: u64,
    sha256: String,
}

const MANIFEST: &str = "manifest.json";
const SECRET_FILE: &str = "secret.key";

fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// A directory that is missing or holds nothing.
fn dir_is_empty(dir: &Path) -> Result<bool, AnyError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(format!("cannot read {}: {e}", dir.display()).into()),
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}

const POSTGRES_BACKUP: &str = "dialtone backup copies the embedded SQLite database; with DATABASE_URL \
     the data is in PostgreSQL: back it up with pg_dump (e.g. `pg_dump --format=custom \
     --file=dialtone.dump \"$DATABASE_URL\"`) or your provider's snapshots and point-in-time \
     recovery, and keep DIALTONE_SECRET_KEY with it (without that exact value no API key \
     authenticates and no webhook secret can be unsealed). See docs/deploy.md, \"Backups\"";

/// `dialtone backup`: a consistent snapshot of the live SQLite database (VACUUM INTO:
/// one read transaction, no write lock, never `serve.lock`), the secret, a manifest.
fn backup(g: &Global, args: BackupArgs) -> Result<(), AnyError> {
    if g.database_url.is_some() {
        return Err(POSTGRES_BACKUP.into());
    }
    let db = g.data_dir.join(dialtone_store::backup::SQLITE_FILE);
    if !db.is_file() {
        return Err(format!(
            "there is no dialtone database in {} (choose the data directory with --data-dir)",
            g.data_dir.display()
        )
        .into());
    }
    if !dir_is_empty(&args.to)? {
        return Err(format!(
            "{} is not empty: back up into a new directory (one per backup)",
            args.to.display()
        )
        .into());
    }
    std::fs::create_dir_all(&args.to)
        .map_err(|e| format!("cannot create {}: {e}", args.to.display()))?;
    // The backup holds the secret: owner only, like the data directory should be.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&args.to, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {}: {e}", args.to.display()))?;
    }
    let result = write_backup(g, &db, &args.to);
    if result.is_err() {
        // Never leave something that looks like a backup.
        for name in [dialtone_store::backup::SQLITE_FILE, SECRET_FILE, MANIFEST] {
            let _ = std::fs::remove_file(args.to.join(name));
        }
    }
    let manifest = result?;
    let total: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    if args.json {
        print_json(&serde_json::json!({
            "path": args.to,
            "bytes": total,
            "schema_version": manifest.schema_version,
            "dialtone_version": manifest.dialtone_version,
            "created_at": manifest.created_at,
            "files": manifest.files,
        }))
    } else {
        println!(
            "backup written to {} ({}):",
            args.to.display(),
            human_bytes(total)
        );
        for f in &manifest.files {
            println!("  {}\t{}", f.name, human_bytes(f.bytes));
        }
        if manifest.files.iter().any(|f| f.name == SECRET_FILE) {
            eprintln!("it holds secret.key: keep it as private as the data directory itself");
        } else {
            eprintln!(
                "the secret is not in the backup (it comes from DIALTONE_SECRET_KEY): keep \
                 that value too, the backup is useless without it"
            );
        }
        Ok(())
    }
}

fn write_backup(g: &Global, db: &Path, to: &Path) -> Result<Manifest, AnyError> {
    use dialtone_store::backup::{SQLITE_FILE, sqlite_facts, sqlite_snapshot};
    let created_at = now();
    let snapshot = to.join(SQLITE_FILE);
    sqlite_snapshot(db, &snapshot).map_err(|e| {
        format!(
            "cannot snapshot the database in {}: {e}",
            g.data_dir.display()
        )
    })?;
    let facts = sqlite_facts(&snapshot)?;
    if facts.integrity != "ok" {
        return Err(format!(
            "the snapshot fails PRAGMA integrity_check: {}",
            facts.integrity
        )
        .into());
    }
    let schema_version = facts
        .schema_version
        .ok_or("the database has no migrations applied: not a dialtone database")?;
    // The secret the database was set up with: the flag, else secret.key (copied).
    let secret_path = g.data_dir.join(SECRET_FILE);
    let file_secret = match std::fs::read_to_string(&secret_path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", secret_path.display()).into()),
    };
    let secret = match (&g.secret_key, &file_secret) {
        (Some(s), _) => s.clone(),
        (None, Some(s)) => s.trim().to_owned(),
        (None, None) => {
            return Err(format!(
                "no secret: neither DIALTONE_SECRET_KEY nor {} (a backup without the secret \
                 cannot be used)",
                secret_path.display()
            )
            .into());
        }
    };
    let check = hex_digest(
        &KeyDigester::new(&SecretString::from(secret)),
        "dialtone secret check",
    );
    if facts.secret_check.as_deref().is_some_and(|c| c != check) {
        return Err("the server secret does not match the one this database was created with; set DIALTONE_SECRET_KEY to the original value".into());
    }
    let mut names = vec![SQLITE_FILE];
    if let Some(s) = &file_secret {
        write_private(&to.join(SECRET_FILE), s)
            .map_err(|e| format!("cannot write {}: {e}", to.join(SECRET_FILE).display()))?;
        std::fs::File::open(to.join(SECRET_FILE))?.sync_all()?;
        names.push(SECRET_FILE);
    }
    let mut files = Vec::new();
    for name in names {
        let (bytes, sha256) = sha256_file(&to.join(name))?;
        files.push(BackupFile {
            name: name.to_owned(),
            bytes,
            sha256,
        });
    }
    let manifest = Manifest {
        format: 1,
        database: "sqlite".to_owned(),
        schema_version,
        dialtone_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at,
        files,
    };
    // Written last: a backup without its manifest is incomplete, and refused.
    let path = to.join(MANIFEST);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::File::open(&path)?.sync_all()?;
    Ok(manifest)
}

/// `dialtone restore`: everything is checked (checksums, schema, secret, integrity,
/// the target) before a byte is written; then the files are put in place and opened
/// as `serve` would open them.
async fn restore(g: &Global, args: RestoreArgs) -> Result<(), AnyError> {
    use dialtone_store::backup::{SQLITE_FILE, newest_sqlite_migration, sqlite_facts};
    if g.database_url.is_some() {
        return Err(
            "dialtone restore restores the embedded SQLite database; with DATABASE_URL restore \
             PostgreSQL with pg_restore (or your provider's tooling) and start dialtone with the \
             DIALTONE_SECRET_KEY the data was made with. See docs/deploy.md, \"Backups\""
                .into(),
        );
    }
    let from = &args.from;
    let manifest_path = from.join(MANIFEST);
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(&manifest_path).map_err(|e| {
            format!(
                "cannot read {}: {e} (not a complete backup)",
                manifest_path.display()
            )
        })?)
        .map_err(|e| {
            format!(
                "{} is not a dialtone backup manifest: {e}",
                manifest_path.display()
            )
        })?;
    if manifest.format != 1 || manifest.database != "sqlite" {
        return Err(format!(
            "{} is a backup this dialtone cannot read (format {}, database {})",
            from.display(),
            manifest.format,
            manifest.database
        )
        .into());
    }
    // 1. Every file is the one the backup wrote.
    let listed = |name: &str| manifest.files.iter().any(|f| f.name == name);
    if !listed(SQLITE_FILE) {
        return Err(format!("the backup in {} lists no database", from.display()).into());
    }
    for f in &manifest.files {
        if f.name.contains(['/', '\\']) || f.name.starts_with('.') {
            return Err(format!("the manifest names an unexpected file: {}", f.name).into());
        }
        let (bytes, sha256) = sha256_file(&from.join(&f.name))
            .map_err(|e| format!("cannot read {}: {e}", from.join(&f.name).display()))?;
        if bytes != f.bytes || sha256 != f.sha256 {
            return Err(format!(
                "{} does not match its checksum in the manifest: the backup is damaged or was \
                 changed; nothing was restored",
                from.join(&f.name).display()
            )
            .into());
        }
    }
    // 2. This binary knows the schema.
    let newest = newest_sqlite_migration();
    let facts = sqlite_facts(&from.join(SQLITE_FILE))?;
    let actual = facts.schema_version.unwrap_or_default();
    if manifest.schema_version > newest || actual > newest {
        return Err(format!(
            "the backup's schema ({}) is newer than this dialtone knows ({newest}): restore it \
             with the dialtone version that made it ({}) or a newer one",
            manifest.schema_version.max(actual),
            manifest.dialtone_version
        )
        .into());
    }
    if actual != manifest.schema_version {
        return Err(format!(
            "the database's schema ({actual}) is not the one the manifest names ({}): the \
             backup was changed",
            manifest.schema_version
        )
        .into());
    }
    if facts.integrity != "ok" {
        return Err(format!(
            "the backup's database fails PRAGMA integrity_check: {}",
            facts.integrity
        )
        .into());
    }
    // 3. The secret that will be used is the one the database was made with.
    let backup_secret = if listed(SECRET_FILE) {
        Some(std::fs::read_to_string(from.join(SECRET_FILE))?)
    } else {
        None
    };
    let (secret, source) = match (&g.secret_key, &backup_secret) {
        (Some(s), _) => (s.clone(), "DIALTONE_SECRET_KEY"),
        (None, Some(s)) => (s.trim().to_owned(), "the backup's secret.key"),
        (None, None) => {
            return Err(
                "this backup has no secret.key (it was made with DIALTONE_SECRET_KEY): set \
                 DIALTONE_SECRET_KEY to that value to restore it"
                    .into(),
            );
        }
    };
    let check = hex_digest(
        &KeyDigester::new(&SecretString::from(secret)),
        "dialtone secret check",
    );
    match &facts.secret_check {
        Some(c) if *c == check => {}
        Some(_) => {
            return Err(format!(
                "the secret ({source}) does not match the one the backup's database was created \
                 with: keys and webhook secrets would not work; nothing was restored{}",
                if g.secret_key.is_some() && backup_secret.is_some() {
                    " (unset DIALTONE_SECRET_KEY to use the backup's secret.key)"
                } else {
                    ""
                }
            )
            .into());
        }
        None => {
            return Err(
                "the backup's database has no secret check: not a dialtone database".into(),
            );
        }
    }
    // 4. The target: empty, or --force and no server on it.
    let dir = &g.data_dir;
    let mut _lock = None;
    if !dir_is_empty(dir)? {
        if !args.force {
            return Err(format!(
                "{} is not empty: restore into a new directory, or pass --force to replace its \
                 database and secret",
                dir.display()
            )
            .into());
        }
        // Refused while a server runs on it; held until we are done, so none starts.
        _lock = Some(lock_data_dir(dir)?);
    }
    data_dir_ready(dir)?;
    // 5. Copy under temporary names, check, then rename into place.
    let mut placed = Vec::new();
    for f in &manifest.files {
        let tmp = dir.join(format!(".{}.restoring", f.name));
        let _ = std::fs::remove_file(&tmp);
        if f.name == SECRET_FILE {
            write_private(&tmp, backup_secret.as_deref().unwrap_or_default())?;
        } else {
            std::fs::copy(from.join(&f.name), &tmp)
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        }
        std::fs::File::open(&tmp)?.sync_all()?;
        if sha256_file(&tmp)?.1 != f.sha256 {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("{} was not written correctly", tmp.display()).into());
        }
        placed.push((tmp, dir.join(&f.name)));
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{SQLITE_FILE}{suffix}")));
    }
    if !listed(SECRET_FILE) && args.force {
        // A secret.key left from before would not be the backup's.
        let _ = std::fs::remove_file(dir.join(SECRET_FILE));
    }
    for (tmp, target) in &placed {
        std::fs::rename(tmp, target)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    }
    // 6. Opened as `serve` opens it: migrations (an older backup) and the secret check.
    open(g).await?.0.close().await;
    let total: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    if args.json {
        print_json(&serde_json::json!({
            "data_dir": dir,
            "from": from,
            "bytes": total,
            "schema_version": manifest.schema_version,
            "backup_created_at": manifest.created_at,
        }))
    } else {
        println!(
            "restored the backup of {} ({}) into {}; start it with: dialtone serve --data-dir {}",
            manifest
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            human_bytes(total),
            dir.display(),
            dir.display()
        );
        Ok(())
    }
}

/// One file of an organization export, as the manifest lists it.
#[derive(Debug, Clone, serde::Serialize)]
struct ExportFile {
    name: String,
    rows: u64,
    bytes: u64,
    sha256: String,
}

/// Rows read from the database at a time during an export.
const EXPORT_PAGE: usize = 1000;

/// `dialtone org export`: every exported table of the organization as JSON Lines,
/// paged through its key (the server keeps running), its invoices, and a manifest
/// written last.
async fn org_export(g: &Global, org_id: &str, to: &Path, json: bool) -> Result<(), AnyError> {
    if !dir_is_empty(to)? {
        return Err(format!(
            "{} is not empty: export into a new directory (one per export)",
            to.display()
        )
        .into());
    }
    let (store, _) = open(g).await?;
    let result = write_org_export(&store, org_id, to).await;
    store.close().await;
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            // Never leave something that looks like an export.
            if let Ok(entries) = std::fs::read_dir(to) {
                for entry in entries.flatten() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            return Err(e);
        }
    };
    if json {
        print_json(&serde_json::json!({ "path": to, "manifest": manifest }))
    } else {
        let files = manifest["files"].as_array().cloned().unwrap_or_default();
        println!(
            "exported organization {org_id} to {} ({} files):",
            to.display(),
            files.len()
        );
        for f in files {
            println!("  {}\t{} rows", f["name"].as_str().unwrap_or(""), f["rows"]);
        }
        eprintln!("it holds the organization's personal data: keep it private");
        Ok(())
    }
}

async fn write_org_export(
    store: &Store,
    org_id: &str,
    to: &Path,
) -> Result<serde_json::Value, AnyError> {
    use dialtone_store::org_data::{Export, ORG_TABLES};
    use std::io::Write;
    let org = store.get_org(org_id).await?;
    store.check_org_coverage().await?;
    let created_at = now();
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {}: {e}", to.display()))?;
    }
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    // Parents before children: the reverse of the deletion order.
    for table in ORG_TABLES.iter().rev() {
        let Some(name) = table.file() else {
            if let Export::Skip(reason) = table.export {
                skipped.push(serde_json::json!({ "table": table.name, "reason": reason }));
            }
            continue;
        };
        let path = to.join(&name);
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        );
        let mut rows = 0u64;
        let mut after = None;
        loop {
            let page = store
                .org_export_page(&org.id, table, after.as_ref(), EXPORT_PAGE)
                .await?;
            for row in &page.rows {
                serde_json::to_writer(&mut out, row)?;
                out.write_all(b"\n")?;
                rows += 1;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        files.push((name, rows, out));
    }
    // Invoices, as the ledger gives them (organization-wide, per mode).
    let invoices_name = "invoices.jsonl".to_owned();
    let mut out = std::io::BufWriter::new(std::fs::File::create(to.join(&invoices_name))?);
    let mut rows = 0u64;
    for mode in [Mode::Live, Mode::Test] {
        let scope = dialtone_domain::tenancy::Scope {
            org_id: org.id.clone(),
            workspace_id: org.default_workspace_id.clone(),
            mode,
        };
        for invoice in store.scoped(&scope).invoices(true).await? {
            serde_json::to_writer(&mut out, &invoice)?;
            out.write_all(b"\n")?;
            rows += 1;
        }
    }
    files.push((invoices_name, rows, out));
    let mut listed = Vec::new();
    for (name, rows, out) in files {
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let (bytes, sha256) = sha256_file(&to.join(&name))?;
        listed.push(ExportFile {
            name,
            rows,
            bytes,
            sha256,
        });
    }
    let manifest = serde_json::json!({
        "format": 1,
        "organization_id": org.id,
        "organization_name": org.name,
        "database": match store.backend() {
            dialtone_store::Backend::Sqlite => "sqlite",
            dialtone_store::Backend::Postgres => "postgres",
        },
        "schema_version": store.schema_version().await?,
        "dialtone_version": env!("CARGO_PKG_VERSION"),
        "created_at": created_at,
        "files": listed,
        "not_exported": skipped,
    });
    // Written last: an export without its manifest is incomplete.
    let path = to.join(MANIFEST);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::File::open(&path)?.sync_all()?;
    Ok(manifest)
}

/// `dialtone org delete`: confirmation (`--yes`, or the id typed on a terminal), then
/// the store revokes every key and deletes every row of the organization.
async fn org_limits(g: &Global, a: OrgLimitsArgs) -> Result<(), AnyError> {
    use dialtone_domain::limits::KeyLimits;
    let (store, _) = open(g).await?;
    let result = async {
        store.get_org(&a.org).await?;
        let asked = KeyLimits {
            max_concurrent_calls: a.max_concurrent_calls,
            max_call_minutes_per_day: a.max_call_minutes_per_day,
            max_messages_per_day: a.max_messages_per_day,
            max_spend_cents_per_day: a.max_spend_cents_per_day,
            allowed_destination_countries: a.allowed_destination_countries,
        };
        let limits = if a.clear || !asked.is_empty() {
            let limits = asked.validated("limits")?;
            store.set_org_key_limits(&a.org, &limits, "cli").await?;
            limits
        } else {
            store.org_key_limits(&a.org).await?
        };
        if a.json {
            print_json(&limits)?;
        } else if limits.is_empty() {
            println!("{}: new live keys get no limits", a.org);
        } else {
            println!(
                "{}: new live keys get {}",
                a.org,
                serde_json::to_string(&limits)?
            );
        }
        Ok::<_, AnyError>(())
    }
    .await;
    store.close().await;
    result
}

async fn org_delete(g: &Global, org_id: &str, yes: bool, json: bool) -> Result<(), AnyError> {
    use std::io::IsTerminal;
    let (store, _) = open(g).await?;
    let result = async {
        let org = store.get_org(org_id).await?;
        if !yes {
            if !std::io::stdin().is_terminal() {
                return Err::<_, AnyError>(
                    "refusing to erase an organization without confirmation: pass --yes (stdin                      is not a terminal to type the organization id on)"
                        .into(),
                );
            }
            eprintln!(
                "This erases organization {} ({}) for good: its keys are revoked, then every                  row of it is deleted. Export it first (dialtone org export) if anything must                  be kept.",
                org.id, org.name
            );
            eprint!("Type the organization id to confirm: ");
            let mut typed = String::new();
            std::io::stdin().read_line(&mut typed)?;
            if typed.trim() != org.id {
                return Err("the typed id does not match: nothing was erased".into());
            }
        }
        Ok(store.erase_org(&org.id).await?)
    }
    .await;
    store.close().await;
    let erased = result?;
    if json {
        print_json(&serde_json::json!({
            "organization_id": erased.organization_id,
            "revoked_keys": erased.revoked_keys,
            "deleted": erased.deleted.iter()
                .map(|(t, n)| serde_json::json!({ "table": t, "rows": n }))
                .collect::<Vec<_>>(),
        }))
    } else {
        let total: u64 = erased.deleted.iter().map(|(_, n)| n).sum();
        println!(
            "erased organization {}: {} keys revoked, {total} rows deleted",
            erased.organization_id,
            erased.revoked_keys.len()
        );
        Ok(())
    }
}
