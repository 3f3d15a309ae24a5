//! The built-in carrier: no telephony. Magic numbers decide how a call goes
//! (`+15005550001` busy, `+15005550002` no answer, `+15005550003` failed, anything
//! else answers); the platform stores the script and plays it as the simulator's
//! reports, through the same state machine as a real carrier's callbacks.

use dialtone_domain::calls::{CallProgress, Direction, SimulatedOutcome};
use dialtone_domain::messages::simulated_failure;
use dialtone_domain::phone_numbers::AvailableNumber;

use crate::{
    BoxFuture, Carrier, CarrierError, CarrierResult, NumberHooks, NumberSearch, OutboundCall,
    OutboundMessage, OwnedNumber, PlacedCall, ReportedMessage, SentMessage,
};

#[derive(Debug, Clone, Copy, Default)]
pub struct Simulator;

impl Carrier for Simulator {
    fn name(&self) -> &'static str {
        "simulator"
    }

    fn check(&self) -> BoxFuture<'_, CarrierResult<()>> {
        Box::pin(async { Ok(()) })
    }

    fn place_call<'a>(
        &'a self,
        call: &'a OutboundCall<'a>,
    ) -> BoxFuture<'a, CarrierResult<PlacedCall>> {
        Box::pin(async move {
            Ok(PlacedCall {
                sid: None,
                script: Some(SimulatedOutcome::for_number(call.to, call.max_seconds)),
            })
        })
    }

    fn hang_up<'a>(&'a self, _sid: &'a str) -> BoxFuture<'a, CarrierResult<Option<CallProgress>>> {
        Box::pin(async { Ok(None) })
    }

    fn call_status<'a>(
        &'a self,
        _sid: &'a str,
    ) -> BoxFuture<'a, CarrierResult<Option<CallProgress>>> {
        // The simulator's own steps are its reports; there is nothing to ask.
        Box::pin(async { Ok(None) })
    }

    fn message_status<'a>(
        &'a self,
        _sid: &'a str,
    ) -> BoxFuture<'a, CarrierResult<Option<ReportedMessage>>> {
        Box::pin(async { Ok(None) })
    }

    fn send_message<'a>(
        &'a self,
        message: &'a OutboundMessage<'a>,
    ) -> BoxFuture<'a, CarrierResult<SentMessage>> {
        Box::pin(async move {
            Ok(SentMessage {
                sid: None,
                simulated_failure: Some(simulated_failure(message.to, Direction::Outbound)),
            })
        })
    }

    fn search_numbers<'a>(
        &'a self,
        search: &'a NumberSearch,
    ) -> BoxFuture<'a, CarrierResult<Vec<AvailableNumber>>> {
        Box::pin(async move {
            let offered = search.search.offer(search.search.limit);
            Ok(match &search.contains {
                Some(digits) => offered
                    .into_iter()
                    .filter(|a| a.number.contains(digits.as_str()))
                    .collect(),
                None => offered,
            })
        })
    }

    fn buy_number<'a>(
        &'a self,
        number: &'a AvailableNumber,
        _hooks: &'a NumberHooks,
    ) -> BoxFuture<'a, CarrierResult<OwnedNumber>> {
        Box::pin(async move {
            Ok(OwnedNumber {
                sid: None,
                number: number.number.clone(),
                country: number.country.to_owned(),
                number_type: number.number_type,
            })
        })
    }

    fn import_number<'a>(
        &'a self,
        number: &'a str,
        _hooks: &'a NumberHooks,
    ) -> BoxFuture<'a, CarrierResult<OwnedNumber>> {
        Box::pin(async move {
            Err(CarrierError {
                code: None,
                message: format!(
                    "{number} is not a number of a carrier account: the simulator has none to import"
                ),
                status: Some(404),
            })
        })
    }

    fn release_number<'a>(&'a self, _sid: &'a str) -> BoxFuture<'a, CarrierResult<()>> {
        Box::pin(async { Ok(()) })
    }
}
