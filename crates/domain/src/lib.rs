//! The rules of dialtone, with no I/O.
//!
//! Everything that decides something lives here, once: what an API key looks like and
//! how it is verified ([`keys`]), what a key may do ([`permissions`], [`auth`]), what a
//! valid contact or agent is ([`contacts`], [`agents`]), how lists are paged ([`page`]), and the one error
//! type every face of the product speaks ([`Error`]). The storage crate persists these
//! types; the HTTP server, the MCP server and the dashboard ask these modules for every
//! decision instead of re-implementing it.

pub mod agents;
pub mod analytics;
pub mod auth;
pub mod billing;
pub mod calls;
pub mod campaigns;
pub mod contacts;
pub mod conversations;
pub mod error;
pub mod events;
pub mod id;
pub mod idempotency;
pub mod input;
pub mod keys;
pub mod least_privilege;
pub mod limits;
pub mod messages;
pub mod notes;
pub mod oauth;
pub mod page;
pub mod permissions;
pub mod phone_numbers;
pub mod tenancy;
pub mod time;
pub mod timeline;
pub mod users;
pub mod webhooks;

pub use error::{Error, FieldError, Result};
