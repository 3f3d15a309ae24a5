//! The dialtone HTTP server.
//!
//! [`App::start`] takes a bound listener and a [`Store`] and serves the REST API under
//! `/v1`, the OpenAPI document and docs page, `/healthz`, `/readyz` and `/metrics`,
//! and runs the background jobs of `workers`.
//!
//! Map of the crate:
//! - [`router`]: every route in one table, with the permission each needs;
//! - [`carrier`]: the carriers of a server and the operations that use them (place a
//!   call, hang up), shared by REST, the campaign runner and the dashboard;
//! - `twilio`: the routes Twilio calls back (signed), and the TwiML served;
//! - [`auth`]: bearer-key authentication, the key cache, usage counting, rate limits;
//! - [`keys`]: the API-key service (also used by the CLI) and its routes;
//! - [`mcp`]: `/mcp`, the MCP server over streamable HTTP, calling `/v1` in-process;
//!   `step_up`: the 403 `insufficient_scope` an OAuth client gets for a tool its
//!   grant lacks;
//! - [`contacts`]: contacts and contact notes; [`agents`]: voice agents;
//!   [`phone_numbers`]: inventory, purchase, routing; [`billing`]: the wallet;
//!   [`calls`]: calls, transcripts, recordings, conversations; [`messages`]: SMS and
//!   conversation notes;
//! - `cors`: CORS for browser-based MCP clients (OAuth endpoints and `/mcp`);
//! - [`dashboard`]: the server-rendered dashboard (sign-in, API keys, webhooks, calls);
//! - [`shared`]: page parameters, the delete answer, id checks;
//! - [`webhooks`]: endpoints, REST hooks, the SSRF guard;
//! - `workers`: background jobs (webhook delivery, the simulator, campaigns, usage,
//!   key changes), one per file;
//! - `server`: serving connections (header, body and idle timeouts, the connection
//!   cap, keeping connections after early answers);
//! - [`error`]: the one mapping from [`dialtone_domain::Error`] to HTTP;
//! - [`openapi`], [`ops`], [`metrics`]: documentation, health and observability;
//! - [`secret_scanning`]: leaked-key reports from GitHub secret scanning (signed, no key);
//! - [`reference`]: the API reference page (`/docs`, the vendored Stoplight Elements).

pub mod agents;
pub mod analytics;
pub mod auth;
pub mod billing;
pub mod calls;
pub mod campaigns;
pub mod carrier;
pub mod config;
pub mod contacts;
mod cors;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod keys;
pub mod mcp;
pub mod messages;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod ops;
pub mod phone_numbers;
pub mod reference;
pub mod router;
pub mod secret_scanning;
mod server;
pub mod shared;
mod state;
mod step_up;
mod twilio;
pub mod webhooks;
mod workers;

pub use config::ServerConfig;
pub use state::{App, AppState};
