//! Keeps the shared rate limiters' Redis connections up (rate limits degrade to the
//! node's own limiter while it is down).

use tokio::sync::watch;

use crate::state::AppState;

pub(super) async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    tokio::select! {
        _ = async {
            tokio::join!(
                state.rate_limiter.connect_loop(),
                state.registration_limiter.connect_loop()
            )
        } => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}
