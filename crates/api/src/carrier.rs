//! The carrier interface: where calls and messages go out.
//!
//! Test mode always uses the built-in [`Simulator`]; live mode uses the carrier the
//! operator configured, and without one live calls and messages answer 503
//! `CARRIER_UNAVAILABLE`. The only built-in carrier is the simulator (`--live-simulator`
//! lets live keys use it, charged as real traffic). A real telephony carrier plugs in
//! here: it decides how a call goes (the simulator reads it off the number) and whether
//! a message is delivered; the call's lifecycle, events and charges stay the
//! platform's.

use dialtone_domain::calls::{Direction, SimulatedOutcome};
use dialtone_domain::messages::simulated_failure;
use dialtone_domain::tenancy::Mode;

pub trait Carrier: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;

    /// How an outbound call to `to` will go, within `max_seconds` of talk time (what
    /// the wallet can pay for, in live mode).
    fn dial(&self, to: &str, max_seconds: Option<i64>) -> SimulatedOutcome;

    /// Whether a message to `to` will fail to be delivered.
    fn message_fails(&self, to: &str) -> bool;
}

/// The built-in carrier: no telephony; magic numbers decide the outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct Simulator;

impl Carrier for Simulator {
    fn name(&self) -> &'static str {
        "simulator"
    }

    fn dial(&self, to: &str, max_seconds: Option<i64>) -> SimulatedOutcome {
        SimulatedOutcome::for_number(to, max_seconds)
    }

    fn message_fails(&self, to: &str) -> bool {
        simulated_failure(to, Direction::Outbound)
    }
}

static SIMULATOR: Simulator = Simulator;

/// The carrier for a mode: the simulator for test; for live, the configured one.
pub fn for_mode(mode: Mode, live_simulator: bool) -> Option<&'static dyn Carrier> {
    match mode {
        Mode::Test => Some(&SIMULATOR),
        Mode::Live if live_simulator => Some(&SIMULATOR),
        Mode::Live => None,
    }
}
