//! Black-box tests: each spawns a real server on port 0 with its own database and
//! drives it over HTTP. Run on SQLite by default, on PostgreSQL with
//! `DIALTONE_TEST_DATABASE_URL=postgres://…`.

mod agents;
mod analytics;
mod backup;
mod billing;
mod calls;
mod campaigns;
mod cli;
mod common;
mod connections;
mod contacts;
mod contract;
mod dashboard;
mod dashboard_pages;
mod event_log;
mod events;
mod idempotency;
mod keys;
mod least_privilege;
mod mcp;
mod messages;
mod nodes;
mod nul;
mod oauth;
mod ops;
mod org_data;
mod pagination;
mod phone_numbers;
mod secret_scanning;
mod secrets;
mod setup_links;
mod signin;
mod ssrf;
mod twilio;
mod webhooks;
