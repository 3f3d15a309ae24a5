//! Carriers: where calls and messages really go.
//!
//! A carrier is an async, event-driven interface ([`Carrier`]): commands go out (place
//! a call, hang up, send a message, search, buy, import and release numbers), and the
//! carrier's reports come back as events — Twilio's signed callbacks, or the
//! simulator's scheduled steps — which the platform applies through one call state
//! machine (`dialtone_domain::calls::walk`). This crate knows nothing of storage or
//! HTTP serving: it speaks to carriers and parses what they send.
//!
//! - [`Simulator`]: the built-in carrier. No telephony; magic numbers decide how a call
//!   goes, and the platform plays the script it returns.
//! - [`twilio`]: Twilio's REST API 2010-04-01, the TwiML dialtone serves, and the
//!   `X-Twilio-Signature` check of its callbacks.

use std::future::Future;
use std::pin::Pin;

use dialtone_domain::calls::{CallProgress, SimulatedOutcome};
use dialtone_domain::phone_numbers::{AvailableNumber, NumberType};

mod simulator;
pub mod twilio;

pub use simulator::Simulator;

/// A future a carrier command returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a carrier calls dialtone back about one call, message or number. Built by
/// the server from its public URL; a carrier without callbacks ignores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Callbacks {
    /// The call's instructions (Twilio fetches TwiML here when the call connects).
    pub instructions: Option<String>,
    /// Status changes.
    pub status: Option<String>,
    /// A recording is ready.
    pub recording: Option<String>,
}

/// A call to place.
#[derive(Debug, Clone)]
pub struct OutboundCall<'a> {
    /// dialtone's id of the call (`call_…`).
    pub call_id: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    /// The longest the call may talk (what the wallet covers); `None`: no limit.
    pub max_seconds: Option<i64>,
    pub callbacks: Callbacks,
}

/// A placed call: the carrier's id for it, or (simulator) the script to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCall {
    pub sid: Option<String>,
    pub script: Option<SimulatedOutcome>,
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct OutboundMessage<'a> {
    pub message_id: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub body: &'a str,
    pub status_callback: Option<String>,
}

/// A sent message: the carrier's id, or (simulator) whether delivery will fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub sid: Option<String>,
    pub simulated_failure: Option<bool>,
}

/// How a message stands at its carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedMessage {
    /// As dialtone names it: `sent`, `delivered` or `failed`.
    pub status: &'static str,
    /// The carrier's error code, when it failed.
    pub error_code: Option<String>,
}

/// Where a number's traffic reaches dialtone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberHooks {
    pub voice_url: Option<String>,
    pub sms_url: Option<String>,
    pub status_callback: Option<String>,
}

/// A number of the account at the carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedNumber {
    /// The carrier's id for it (Twilio's `PN…`); `None` for the simulator.
    pub sid: Option<String>,
    pub number: String,
    pub country: String,
    pub number_type: NumberType,
}

/// A search of the carrier's inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberSearch {
    pub search: dialtone_domain::phone_numbers::Search,
    /// Digits the number must contain.
    pub contains: Option<String>,
}

/// What went wrong at the carrier. Never holds credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CarrierError {
    /// The carrier's own code (Twilio's, e.g. `21211`), when it gave one.
    pub code: Option<String>,
    pub message: String,
    /// The HTTP status the carrier answered, if it answered.
    pub status: Option<u16>,
}

impl CarrierError {
    /// The carrier refused the request itself (a 4xx): retrying will not help.
    pub fn is_rejection(&self) -> bool {
        self.status.is_some_and(|s| (400..500).contains(&s))
    }

    pub fn unreachable(message: impl Into<String>) -> Self {
        CarrierError {
            code: None,
            message: message.into(),
            status: None,
        }
    }
}

pub type CarrierResult<T> = Result<T, CarrierError>;

/// A carrier: commands out. Its reports come back as events the platform applies.
pub trait Carrier: Send + Sync + std::fmt::Debug {
    /// Stored with each call, message and number (`simulator`, `twilio`).
    fn name(&self) -> &'static str;

    /// Checks the credentials (once at start; `/readyz`).
    fn check(&self) -> BoxFuture<'_, CarrierResult<()>>;

    fn place_call<'a>(
        &'a self,
        call: &'a OutboundCall<'a>,
    ) -> BoxFuture<'a, CarrierResult<PlacedCall>>;

    /// Ends a call. The answer is the carrier's own report of how it ended, when it
    /// gives one (Twilio answers with the call's status and duration).
    fn hang_up<'a>(&'a self, sid: &'a str) -> BoxFuture<'a, CarrierResult<Option<CallProgress>>>;

    /// Asks how a call stands (to recover from reports that never arrived): `None`
    /// while it has not ended nor been answered, or for a carrier without far side.
    fn call_status<'a>(
        &'a self,
        sid: &'a str,
    ) -> BoxFuture<'a, CarrierResult<Option<CallProgress>>>;

    fn send_message<'a>(
        &'a self,
        message: &'a OutboundMessage<'a>,
    ) -> BoxFuture<'a, CarrierResult<SentMessage>>;

    /// Asks how a message stands (`None` while it is queued at the carrier).
    fn message_status<'a>(
        &'a self,
        sid: &'a str,
    ) -> BoxFuture<'a, CarrierResult<Option<ReportedMessage>>>;

    fn search_numbers<'a>(
        &'a self,
        search: &'a NumberSearch,
    ) -> BoxFuture<'a, CarrierResult<Vec<AvailableNumber>>>;

    /// Buys `number` and points its traffic at `hooks`.
    fn buy_number<'a>(
        &'a self,
        number: &'a AvailableNumber,
        hooks: &'a NumberHooks,
    ) -> BoxFuture<'a, CarrierResult<OwnedNumber>>;

    /// Adopts a number the account already owns at the carrier and repoints it.
    fn import_number<'a>(
        &'a self,
        number: &'a str,
        hooks: &'a NumberHooks,
    ) -> BoxFuture<'a, CarrierResult<OwnedNumber>>;

    fn release_number<'a>(&'a self, sid: &'a str) -> BoxFuture<'a, CarrierResult<()>>;
}
