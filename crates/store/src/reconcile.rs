//! What the carrier reconciler asks about: live calls and messages of a real carrier
//! whose reports stopped coming (dialtone was down when Twilio called back, or a
//! callback was lost). Twilio does not retry a status callback it could not deliver,
//! so without this a call could stay `in_progress` and unbilled forever.

use dialtone_domain::Result;
use dialtone_domain::time::{Timestamp, now};

use crate::Store;
use crate::db::{from_row, query};

/// How far back the reconciler looks: older calls and messages are left as they are.
const HORIZON_HOURS: i64 = 24;

/// A call or message to ask its carrier about.
#[derive(Debug, Clone)]
pub struct OpenAtCarrier {
    pub id: String,
    pub carrier: String,
    /// `None`: the carrier never confirmed it (dialtone stopped in between).
    pub carrier_sid: Option<String>,
}
from_row!(OpenAtCarrier {
    id,
    carrier,
    carrier_sid
});

impl Store {
    /// Open calls of real carriers that have not changed since `quiet_since`.
    pub async fn quiet_carrier_calls(
        &self,
        quiet_since: Timestamp,
        limit: i64,
    ) -> Result<Vec<OpenAtCarrier>> {
        self.db
            .fetch_all(
                query(
                    "SELECT id, carrier, carrier_sid FROM calls \
                     WHERE carrier <> 'simulator' AND status IN ('queued', 'ringing', 'in_progress') \
                     AND updated_at < $1 AND created_at > $2 ORDER BY updated_at LIMIT $3",
                )
                .bind(quiet_since)
                .bind(now() - chrono::TimeDelta::hours(HORIZON_HOURS))
                .bind(limit),
            )
            .await
    }

    /// Outbound messages of real carriers not yet delivered or failed, quiet since
    /// `quiet_since`.
    pub async fn quiet_carrier_messages(
        &self,
        quiet_since: Timestamp,
        limit: i64,
    ) -> Result<Vec<OpenAtCarrier>> {
        self.db
            .fetch_all(
                query(
                    "SELECT id, carrier, carrier_sid FROM messages \
                     WHERE carrier <> 'simulator' AND status IN ('queued', 'sent') \
                     AND updated_at < $1 AND created_at > $2 ORDER BY updated_at LIMIT $3",
                )
                .bind(quiet_since)
                .bind(now() - chrono::TimeDelta::hours(HORIZON_HOURS))
                .bind(limit),
            )
            .await
    }
}
