//! Events as part of the contract: `GET /v1/event-types`, the 30-day event log
//! (`GET /v1/events`, `GET /v1/events/{id}`) and the OpenAPI `webhooks` section.
//!
//! Everything about an event type comes from `dialtone_domain::events::EventType`;
//! this module only shows it. The log's routes need any valid key (as `/v1/me`): which
//! events a key sees is decided once by `plan_log_read` (the types of the resources
//! it can read) and applied in the store's query.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use dialtone_domain::auth::ApiKeyView;
use dialtone_domain::calls::{Call, Recording, Transcript};
use dialtone_domain::campaigns::Campaign;
use dialtone_domain::contacts::Contact;
use dialtone_domain::events::{
    Event, EventType, EventTypeName, Payload, WebhookTest, plan_log_read,
};
use dialtone_domain::messages::Message;
use dialtone_domain::notes::Note;
use dialtone_domain::page::{Page, PageRequest};
use dialtone_domain::time::{Timestamp, now, truncate};
use dialtone_domain::{Error, Result};
use serde::Serialize;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, PathsBuilder, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

use crate::auth::{Caller, Tenant};
use crate::error::{ApiResult, Query};
use crate::shared::checked_id;
use crate::state::AppState;

/// One event type as `GET /v1/event-types` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeView {
    #[schema(example = "event_type")]
    pub object: &'static str,
    /// The `type` of its events.
    #[schema(example = "call.completed")]
    pub name: &'static str,
    pub description: &'static str,
    /// The permission that lets a key see these events in `GET /v1/events`.
    #[schema(example = "calls:read")]
    pub permission: String,
    /// The JSON Schema of `data.object`: a `$ref` into this document's
    /// `components.schemas`, as in the `webhooks` section.
    #[schema(value_type = Object, example = json!({"$ref": "#/components/schemas/Call"}))]
    pub schema: serde_json::Value,
}

/// Every event type.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    pub data: Vec<EventTypeView>,
}

/// The schema reference of a payload, as the document and `/v1/event-types` give it.
fn payload_ref(p: Payload) -> Ref {
    Ref::from_schema_name(p.schema_name())
}

fn view(t: EventType) -> EventTypeView {
    EventTypeView {
        object: "event_type",
        name: t.as_str(),
        description: t.description(),
        permission: t.read_permission().to_string(),
        schema: serde_json::to_value(payload_ref(t.payload())).unwrap_or_default(),
    }
}

/// List event types
///
/// Every type of event webhooks deliver and the event log keeps, with the schema of
/// its `data.object`. The same list as the document's `webhooks` section.
#[utoipa::path(get, path = "/v1/event-types", tag = "events",
    responses((status = 200, description = "Every event type", body = EventTypeList)))]
pub async fn event_types(_: Caller) -> impl IntoResponse {
    axum::Json(EventTypeList {
        data: EventType::ALL.into_iter().map(view).collect(),
    })
}

/// The query of `GET /v1/events`.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListEventsQuery {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `meta.next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only events of these types: repeat the parameter
    /// (`type=call.completed&type=call.failed`) or separate names with commas.
    /// Naming a type the key may not see answers 403.
    #[param(rename = "type", value_type = Option<Vec<EventTypeName>>, style = Form, explode)]
    pub types: Vec<EventType>,
    /// RFC 3339: events created at or after this time (the log keeps 30 days).
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_after: Option<Timestamp>,
    /// RFC 3339: events created before this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_before: Option<Timestamp>,
}

const PARAMETERS: &str = "limit, cursor, type, created_after, created_before";

fn time_param(field: &str, value: &str) -> Result<Timestamp> {
    // An offset's unencoded `+` arrives as a space.
    DateTime::parse_from_rfc3339(&value.replace(' ', "+"))
        .map(|t| truncate(t.with_timezone(&Utc)))
        .map_err(|_| {
            Error::validation(
                field,
                format!("{field} must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z"),
            )
        })
}

fn once<T>(slot: &mut Option<T>, field: &str, value: T) -> Result<()> {
    if slot.replace(value).is_some() {
        return Err(Error::validation(field, format!("{field} is given twice")));
    }
    Ok(())
}

impl ListEventsQuery {
    /// Reads the query's pairs (`type` may repeat, so serde's struct form cannot).
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self> {
        let mut q = ListEventsQuery::default();
        for (name, value) in pairs {
            match name.as_str() {
                "limit" => {
                    let limit = value.parse::<u32>().map_err(|_| {
                        Error::validation("limit", "limit must be between 1 and 100")
                    })?;
                    once(&mut q.limit, "limit", limit)?;
                }
                "cursor" => once(&mut q.cursor, "cursor", value)?,
                "type" => {
                    for t in value.split(',') {
                        let t = EventType::parse_named("type", t.trim())?;
                        if !q.types.contains(&t) {
                            q.types.push(t);
                        }
                    }
                }
                "created_after" => once(
                    &mut q.created_after,
                    "created_after",
                    time_param("created_after", &value)?,
                )?,
                "created_before" => once(
                    &mut q.created_before,
                    "created_before",
                    time_param("created_before", &value)?,
                )?,
                other => {
                    return Err(Error::validation(
                        other,
                        format!("unknown query parameter {other:?}; expected one of {PARAMETERS}"),
                    ));
                }
            }
        }
        Ok(q)
    }
}

/// List events
///
/// The event log of the last 30 days in this workspace and mode, newest first: what
/// a customer re-syncs from after an outage. A key sees the events of the resources
/// it can read (`contacts:read`: `contact.*`; `calls:read`: `call.*`; …, see
/// `GET /v1/event-types`).
#[utoipa::path(get, path = "/v1/events", tag = "events", params(ListEventsQuery),
    responses((status = 200, description = "Events, newest first", body = Page<Event>)))]
pub async fn list(
    State(state): State<AppState>,
    t: Tenant,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<impl IntoResponse> {
    let q = ListEventsQuery::from_pairs(pairs)?;
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let read = plan_log_read(
        &t.principal.permissions,
        &q.types,
        q.created_after,
        q.created_before,
        now(),
    )?;
    let rows = state.store.scoped(&t.scope).event_log(&read, &page).await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |e| &e.id)))
}

/// Retrieve an event
///
/// An event of the last 30 days, of a type the key may see.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events",
    params(("id" = String, Path, description = "evt_…")),
    responses((status = 200, description = "The event", body = Event)))]
pub async fn get(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = checked_id("evt", "event", &id)?;
    let read = plan_log_read(&t.principal.permissions, &[], None, None, now())?;
    let event = state.store.scoped(&t.scope).event_in_log(id, &read).await?;
    Ok(axum::Json(event))
}

/// Puts `T`'s schema, and those it refers to, into `schemas` (unless there already).
fn add_schema<T: ToSchema>(schemas: &mut BTreeMap<String, RefOr<Schema>>) -> String {
    let mut referenced = Vec::new();
    T::schemas(&mut referenced);
    for (name, schema) in referenced {
        schemas.entry(name).or_insert(schema);
    }
    let name = T::name().into_owned();
    schemas
        .entry(name.clone())
        .or_insert_with(<T as PartialSchema>::schema);
    name
}

/// Puts the schema of a payload into `schemas`; returns its name.
fn add_payload_schema(p: Payload, schemas: &mut BTreeMap<String, RefOr<Schema>>) -> String {
    match p {
        Payload::Contact => add_schema::<Contact>(schemas),
        Payload::Note => add_schema::<Note>(schemas),
        Payload::Message => add_schema::<Message>(schemas),
        Payload::Call => add_schema::<Call>(schemas),
        Payload::Transcript => add_schema::<Transcript>(schemas),
        Payload::Recording => add_schema::<Recording>(schemas),
        Payload::Campaign => add_schema::<Campaign>(schemas),
        Payload::ApiKey => add_schema::<ApiKeyView>(schemas),
        Payload::ApiKeyLeak => add_schema::<dialtone_domain::events::ApiKeyLeak>(schemas),
        Payload::ApiKeyLimitHit => add_schema::<dialtone_domain::events::ApiKeyLimitHit>(schemas),
        Payload::WebhookTest => add_schema::<WebhookTest>(schemas),
    }
}

/// The envelope of one type: the `Event` schema with `type` fixed to `t` and
/// `data.object` its payload's schema.
fn envelope(t: EventType) -> Schema {
    let fixed = ObjectBuilder::new()
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([t.as_str()])),
        )
        .required("type")
        .property(
            "data",
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("object", payload_ref(t.payload()))
                .required("object"),
        )
        .required("data");
    AllOfBuilder::new()
        .item(Ref::from_schema_name(Event::name()))
        .item(fixed)
        .into()
}

/// `contact.created` → `contactCreatedEvent`.
fn operation_id(t: EventType) -> String {
    let mut id = String::new();
    for (i, word) in t.as_str().split(['.', '_']).enumerate() {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            if i == 0 {
                id.push(first);
            } else {
                id.extend(first.to_uppercase());
            }
            id.push_str(chars.as_str());
        }
    }
    id.push_str("Event");
    id
}

fn header(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// The OpenAPI 3.1 `webhooks` section: one entry per event type, the request dialtone
/// sends (its envelope and signature headers); and every payload schema in the
/// components.
pub fn add_webhooks(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    add_schema::<Event>(&mut components.schemas);
    add_schema::<EventTypeName>(&mut components.schemas);
    for p in EventType::ALL.map(EventType::payload) {
        add_payload_schema(p, &mut components.schemas);
    }
    let mut webhooks = PathsBuilder::new();
    for t in EventType::ALL {
        let op = OperationBuilder::new()
            .operation_id(Some(operation_id(t)))
            .summary(Some(t.as_str()))
            .description(Some(format!(
                "{} Seen in `GET /v1/events` by keys with `{}`.",
                t.description(),
                t.read_permission()
            )))
            .tag("events")
            .parameter(header("webhook-id", "The event id (`evt_…`): deduplicate on it; deliveries are at least once."))
            .parameter(header("webhook-timestamp", "Unix seconds when this attempt was signed."))
            .parameter(header(
                "webhook-signature",
                "Standard Webhooks: `v1,base64(HMAC-SHA256(key, \"{webhook-id}.{webhook-timestamp}.{body}\"))`, key = the decoded part of a `whsec_` secret, else the secret's bytes.",
            ))
            .parameter(header(
                "X-Dialtone-Signature",
                "`hex(HMAC-SHA256(secret bytes, raw body))` (the header's name is configurable by the operator).",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(envelope(t))).build(),
                    )
                    .build(),
            ))
            .response(
                "2XX",
                ResponseBuilder::new()
                    .description("Received. Any other answer, or none within the timeout, is retried with backoff."),
            )
            .build();
        webhooks = webhooks.path(t.as_str(), PathItem::new(HttpMethod::Post, op));
    }
    doc.webhooks = Some(webhooks.build());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_payload_schema_is_named_as_the_domain_says() {
        let mut schemas = BTreeMap::new();
        for t in EventType::ALL {
            let name = add_payload_schema(t.payload(), &mut schemas);
            assert_eq!(name, t.payload().schema_name(), "{t}");
            assert!(schemas.contains_key(&name));
        }
    }

    #[test]
    fn webhook_operation_ids_are_camel_case_and_unique() {
        assert_eq!(
            operation_id(EventType::ContactCreated),
            "contactCreatedEvent"
        );
        assert_eq!(operation_id(EventType::ApiKeyRevoked), "apiKeyRevokedEvent");
        assert_eq!(
            operation_id(EventType::CallTranscriptReady),
            "callTranscriptReadyEvent"
        );
        let mut ids: Vec<String> = EventType::ALL.map(operation_id).to_vec();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), EventType::ALL.len());
    }

    #[test]
    fn the_query_reads_repeated_and_comma_separated_types() {
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect::<Vec<_>>()
        };
        let q = ListEventsQuery::from_pairs(pairs(&[
            ("type", "call.completed,call.failed"),
            ("type", "call.completed"),
            ("type", "contact.created"),
            ("limit", "2"),
            ("created_after", "2026-11-01T00:00:00.1234Z"),
        ]))
        .expect("valid");
        assert_eq!(
            q.types,
            [
                EventType::CallCompleted,
                EventType::CallFailed,
                EventType::ContactCreated
            ]
        );
        assert_eq!(q.limit, Some(2));
        assert_eq!(
            q.created_after.map(|t| t.timestamp_millis() % 1000),
            Some(123)
        );
        let offset =
            ListEventsQuery::from_pairs(pairs(&[("created_before", "2026-11-01T01:00:00 01:00")]))
                .expect("an unencoded + is a space");
        assert_eq!(
            offset.created_before.map(|t| t.to_rfc3339()),
            Some("2026-11-01T00:00:00+00:00".to_owned())
        );
        for bad in [
            &[("type", "call.exploded")][..],
            &[("type", "")],
            &[("limit", "x")],
            &[("limit", "1"), ("limit", "2")],
            &[("created_before", "yesterday")],
            &[("status", "x")],
        ] {
            let err = ListEventsQuery::from_pairs(pairs(bad)).expect_err("refused");
            assert!(matches!(err, Error::Validation { .. }), "{bad:?}");
        }
    }
}
