//! The dialtone HTTP server.
//!
//! [`App::start`] takes a bound listener and a [`Store`] and serves the REST API under
//! `/v1`, the OpenAPI document and docs page, `/healthz`, `/readyz` and `/metrics`,
//! and runs the background tasks (usage flushing, key-change polling).
//!
//! Map of the crate:
//! - [`router`]: every route in one table, with the permission each needs;
//! - [`carrier`]: where calls and messages go out (the simulator is built in);
//! - [`auth`]: bearer-key authentication, the key cache, usage counting, rate limits;
//! - [`keys`]: the API-key service (also used by the CLI) and its routes;
//! - [`mcp`]: `/mcp`, the MCP server over streamable HTTP, calling `/v1` in-process;
//! - [`contacts`]: contacts and contact notes; [`agents`]: voice agents;
//!   [`phone_numbers`]: inventory, purchase, routing; [`billing`]: the wallet;
//!   [`calls`]: calls, transcripts, recordings, conversations; [`messages`]: SMS and
//!   conversation notes;
//! - [`dashboard`]: the server-rendered dashboard (sign-in, API keys, webhooks, calls);
//! - [`shared`]: page parameters, the delete answer, id checks;
//! - [`webhooks`]: endpoints, REST hooks, the signed delivery worker;
//! - [`error`]: the one mapping from [`dialtone_domain::Error`] to HTTP;
//! - [`openapi`], [`ops`], [`metrics`]: documentation, health and observability.

pub mod agents;
pub mod analytics;
pub mod auth;
pub mod billing;
pub mod calls;
pub mod campaigns;
pub mod carrier;
pub mod config;
pub mod contacts;
pub mod dashboard;
pub mod error;
pub mod keys;
pub mod mcp;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod phone_numbers;
pub mod router;
pub mod shared;
mod state;
pub mod webhooks;

pub use config::ServerConfig;
pub use state::{App, AppState};
