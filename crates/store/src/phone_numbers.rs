//! Phone numbers owned by a [`Scoped`] tenant: purchase (charged, idempotent),
//! routing, release.

use dialtone_domain::billing::{CURRENCY, Charge, format_amount};
use dialtone_domain::id::new_id;
use dialtone_domain::idempotency::{IdempotencyKey, Outcome};
use dialtone_domain::page::PageRequest;
use dialtone_domain::phone_numbers::{Capabilities, NumberType, PhoneNumber, Routing};
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::{Error, Result};

use crate::Scoped;
use crate::billing::{debit, idempotency_claim, idempotency_finish};
use crate::db::{Scalar, from_row, query, scope_query};

/// A number a purchase may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub number: String,
    pub country: String,
    pub number_type: NumberType,
    /// The carrier that holds it and its id there (`None`: the simulator).
    pub carrier: Option<(&'static str, String)>,
}

struct NumberRow {
    id: String,
    workspace_id: String,
    livemode: bool,
    number: String,
    country: String,
    number_type: String,
    name: Option<String>,
    agent_id: Option<String>,
    forward_to: Option<String>,
    status: String,
    monthly_cost: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
    released_at: Option<Timestamp>,
}
from_row!(NumberRow {
    id,
    workspace_id,
    livemode,
    number,
    country,
    number_type,
    name,
    agent_id,
    forward_to,
    status,
    monthly_cost,
    created_at,
    updated_at,
    released_at,
});

impl TryFrom<NumberRow> for PhoneNumber {
    type Error = Error;

    fn try_from(r: NumberRow) -> Result<PhoneNumber> {
        let number_type = NumberType::parse(&r.number_type).map_err(|_| {
            Error::internal(std::io::Error::other(format!(
                "phone_numbers row {} has an invalid type",
                r.id
            )))
        })?;
        Ok(PhoneNumber {
            id: r.id,
            object: "phone_number",
            workspace_id: r.workspace_id,
            livemode: r.livemode,
            number: r.number,
            country: r.country,
            number_type,
            name: r.name,
            capabilities: Capabilities {
                voice: true,
                sms: number_type.sms(),
            },
            agent_id: r.agent_id,
            forward_to: r.forward_to,
            status: r.status,
            monthly_cost: r.monthly_cost,
            currency: CURRENCY,
            created_at: r.created_at,
            updated_at: r.updated_at,
            released_at: r.released_at,
        })
    }
}

macro_rules! number_columns {
    () => {
        "SELECT id, workspace_id, livemode, number, country, number_type, name, agent_id, \
         forward_to, status, monthly_cost, created_at, updated_at, released_at FROM phone_numbers "
    };
}

const NOT_FOUND: Error = Error::NotFound {
    resource: "phone_number",
};

fn no_such_agent(id: &str) -> Error {
    Error::validation("agent_id", format!("no such agent: {id}"))
}

impl Scoped<'_> {
    /// Numbers of this scope, newest first; `status` is `active`, `released` or `None` for all.
    pub async fn list_numbers(
        &self,
        status: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<PhoneNumber>> {
        let s = self.scope;
        let rows: Vec<NumberRow> = self
            .store
            .db
            .fetch_all(
                scope_query(s, concat!(
                    number_columns!(),
                    "WHERE ",
                    in_scope!(),
                    " AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
                ))
                .bind(status)
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await?;
        rows.into_iter().map(PhoneNumber::try_from).collect()
    }

    pub async fn get_number(&self, id: &str) -> Result<PhoneNumber> {
        let s = self.scope;
        let row: Option<NumberRow> = self
            .store
            .db
            .fetch_optional(
                scope_query(
                    s,
                    concat!(number_columns!(), "WHERE ", in_scope!(), " AND id = $4"),
                )
                .bind(id),
            )
            .await?;
        row.ok_or(NOT_FOUND)?.try_into()
    }

    /// The id of an active number of this scope, by its E.164 form.
    pub async fn find_active_number(
        &self,
        number: Option<&str>,
    ) -> Result<Option<(String, String)>> {
        struct Found(String, String);
        impl crate::db::FromRow for Found {
            fn from_row(r: &crate::db::Row<'_>) -> Result<Self> {
                Ok(Found(r.get("id")?, r.get("number")?))
            }
        }
        let s = self.scope;
        let found: Option<Found> = self
            .store
            .db
            .fetch_optional(
                scope_query(
                    s,
                    concat!(
                        "SELECT id, number FROM phone_numbers WHERE ",
                        in_scope!(),
                        " AND status = 'active' AND ($4 IS NULL OR number = $4) ORDER BY id LIMIT 1"
                    ),
                )
                .bind(number),
            )
            .await?;
        Ok(found.map(|f| (f.0, f.1)))
    }

    /// Whether an agent exists in this scope.
    pub async fn agent_exists(&self, id: &str) -> Result<bool> {
        let s = self.scope;
        let found = self
            .store
            .db
            .fetch_optional::<Scalar<i64>>(
                scope_query(
                    s,
                    concat!(
                        "SELECT CAST(1 AS BIGINT) FROM agents WHERE ",
                        in_scope!(),
                        " AND id = $4"
                    ),
                )
                .bind(id),
            )
            .await?;
        Ok(found.is_some())
    }

    /// Buys the first free candidate. In live mode the month is charged first: a
    /// wallet that cannot pay gets `InsufficientBalance` and nothing happens. With an
    /// idempotency key, a repeat returns the first answer and charges nothing.
    pub async fn purchase_number(
        &self,
        candidates: &[Candidate],
        routing: &Routing,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Outcome<PhoneNumber>> {
        let s = self.scope;
        let Some(first) = candidates.first() else {
            return Err(not_available());
        };
        let cost = first.number_type.monthly_cost();
        let at = now();
        let id = new_id("pn");
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = idempotency_claim(&mut tx, s, idem).await? {
            tx.commit().await?;
            return Ok(Outcome::Replay(stored));
        }
        let description = format!("Phone number, first month ({})", format_amount(cost));
        debit(
            &mut tx,
            s,
            cost,
            Charge::PhoneNumber,
            Some(&id),
            &description,
        )
        .await?;
        if let Some(agent) = &routing.agent_id
            && !crate::agents::agent_in_tx(&mut tx, &self.store.db, s, agent).await?
        {
            return Err(no_such_agent(agent));
        }
        let mut chosen = None;
        for c in candidates {
            let owned = tx
                .fetch_optional::<Scalar<i64>>(
                    query(
                        "SELECT CAST(1 AS BIGINT) FROM phone_numbers \
                         WHERE number = $1 AND livemode = $2 AND status = 'active'",
                    )
                    .bind(&c.number)
                    .bind(s.livemode()),
                )
                .await?;
            if owned.is_none() {
                chosen = Some(c);
                break;
            }
        }
        let c = chosen.ok_or_else(not_available)?;
        let number = PhoneNumber {
            id: id.clone(),
            object: "phone_number",
            workspace_id: s.workspace_id.clone(),
            livemode: s.livemode(),
            number: c.number.clone(),
            country: c.country.clone(),
            number_type: c.number_type,
            name: routing.name.clone(),
            capabilities: Capabilities {
                voice: true,
                sms: c.number_type.sms(),
            },
            agent_id: routing.agent_id.clone(),
            forward_to: routing.forward_to.clone(),
            status: "active".to_owned(),
            monthly_cost: c.number_type.monthly_cost(),
            currency: CURRENCY,
            created_at: at,
            updated_at: at,
            released_at: None,
        };
        tx.execute(
            query(
                "INSERT INTO phone_numbers (id, org_id, workspace_id, livemode, number, country, \
                 number_type, name, agent_id, forward_to, status, monthly_cost, created_at, updated_at, \
                 carrier, carrier_sid) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', $11, $12, $12, $13, $14)",
            )
            .bind(&number.id)
            .bind(&s.org_id)
            .bind(&s.workspace_id)
            .bind(s.livemode())
            .bind(&number.number)
            .bind(&number.country)
            .bind(number.number_type.as_str())
            .bind(&number.name)
            .bind(&number.agent_id)
            .bind(&number.forward_to)
            .bind(number.monthly_cost)
            .bind(at)
            .bind(c.carrier.as_ref().map_or("simulator", |(name, _)| *name))
            .bind(c.carrier.as_ref().map(|(_, sid)| sid.as_str())),
        )
        .await
        .map_err(|e| match e {
            Error::Conflict { .. } => not_available(),
            other => other,
        })?;
        let body = serde_json::to_string(&number).map_err(Error::internal)?;
        idempotency_finish(&mut tx, s, idem, 201, body).await?;
        tx.commit().await?;
        Ok(Outcome::Done(number))
    }

    /// Sets a number's name and routing (a checked [`Routing`]).
    /// The agent is checked in the same transaction as the update (see
    /// [`crate::agents::agent_in_tx`]), so a number never ends up routed to an agent
    /// deleted meanwhile.
    pub async fn update_routing(&self, id: &str, routing: &Routing) -> Result<PhoneNumber> {
        let s = self.scope;
        let mut tx = self.store.db.begin().await?;
        if let Some(agent) = &routing.agent_id
            && !crate::agents::agent_in_tx(&mut tx, &self.store.db, s, agent).await?
        {
            return Err(no_such_agent(agent));
        }
        let done = tx
            .execute(
                scope_query(s, concat!(
                    "UPDATE phone_numbers SET name = $5, agent_id = $6, forward_to = $7, updated_at = $8 \
                     WHERE ",
                    in_scope!(),
                    " AND id = $4 AND status = 'active'"
                ))
                .bind(id)
                .bind(&routing.name)
                .bind(&routing.agent_id)
                .bind(&routing.forward_to)
                .bind(now()),
            )
            .await?;
        tx.commit().await?;
        if done == 0 {
            self.get_number(id).await?;
            return Err(Error::Conflict {
                message: "A released number cannot be configured.".to_owned(),
                details: None,
            });
        }
        self.get_number(id).await
    }

    /// Releases a number (idempotent): it stops being yours; nothing is refunded.
    /// The carrier's id of an active number, when a real carrier holds it.
    pub async fn number_carrier_sid(&self, id: &str) -> Result<Option<String>> {
        let s = self.scope;
        Ok(self
            .store
            .db
            .fetch_optional::<Scalar<Option<String>>>(
                scope_query(
                    s,
                    concat!(
                        "SELECT carrier_sid FROM phone_numbers WHERE ",
                        in_scope!(),
                        " AND id = $4 AND status = 'active'"
                    ),
                )
                .bind(id),
            )
            .await?
            .and_then(|s| s.0))
    }

    pub async fn release_number(&self, id: &str) -> Result<PhoneNumber> {
        let s = self.scope;
        self.store
            .db
            .execute(
                scope_query(s, concat!(
                    "UPDATE phone_numbers SET status = 'released', released_at = $5, updated_at = $5 WHERE ",
                    in_scope!(),
                    " AND id = $4 AND status = 'active'"
                ))
                .bind(id)
                .bind(now()),
            )
            .await?;
        self.get_number(id).await
    }
}

fn not_available() -> Error {
    Error::Conflict {
        message: "That number is not available.".to_owned(),
        details: None,
    }
}
