//! `/v1/contacts` and `/v1/contacts/{id}/notes`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dialtone_domain::Result;
use dialtone_domain::contacts::{Contact, ContactInput, ContactPatch};
use dialtone_domain::notes::{Note, NoteInput};
use dialtone_domain::page::{Page, PageRequest};
use dialtone_store::ContactFilter;
use serde::Deserialize;

use crate::auth::Tenant;
use crate::error::{ApiResult, Json, JsonBytes, Query};
use crate::shared::{Deleted, PageQuery, checked_id, created, idempotency_key};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListContactsQuery {
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `meta.next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Case-insensitive text in the name, email, phone number or company.
    pub search: Option<String>,
    /// Exact E.164 number.
    pub phone_number: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
}

fn contact_id(id: &str) -> Result<&str> {
    checked_id("ct", "contact", id)
}

/// List contacts
///
/// Contacts of the workspace and mode the key acts in, newest first. Filter by
/// `search` (name or company, case-insensitive), `phone_number`, `email` or `external_id`.
/// Cursor-paged: pass `meta.next_cursor` back as `cursor` while `meta.has_more`.
#[utoipa::path(get, path = "/v1/contacts", tag = "contacts", params(ListContactsQuery),
    responses((status = 200, description = "Contacts, newest first", body = Page<Contact>)))]
pub async fn list(
    State(state): State<AppState>,
    t: Tenant,
    Query(q): Query<ListContactsQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let filter = ContactFilter {
        search: q
            .search
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_owned()),
        phone_number: q.phone_number,
        email: q.email,
        external_id: q.external_id,
    };
    let rows = state
        .store
        .scoped(&t.scope)
        .list_contacts(&filter, &page)
        .await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |c| &c.id)))
}

/// Create a contact
///
/// A contact needs at least one of `first_name`, `last_name`, `phone_number`, `email`
/// or `company`. Text is trimmed; an empty string means none. `external_id` is unique
/// within a workspace and mode (409 when taken). Send `Idempotency-Key` to retry safely.
/// Emits `contact.created`.
#[utoipa::path(post, path = "/v1/contacts", tag = "contacts", request_body = ContactInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "The new contact", body = Contact),
              (status = 409, description = "external_id already used, or the Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<ContactInput>,
) -> ApiResult<Response> {
    let idem = idempotency_key(&headers, "POST", "/v1/contacts", &raw)?;
    let input = input.normalize()?;
    let outcome = state
        .store
        .scoped(&t.scope)
        .create_contact_once(input, idem.as_ref())
        .await?;
    created(outcome, idem.as_ref())
}

/// Retrieve a contact
///
/// By id (`ct_…`), in the key's workspace and mode; any other id is a 404.
#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "ct_…")),
    responses((status = 200, description = "The contact", body = Contact)))]
pub async fn get(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let contact = state
        .store
        .scoped(&t.scope)
        .get_contact(contact_id(&id)?)
        .await?;
    Ok(axum::Json(contact))
}

/// Update a contact
///
/// Fields left out stay as they are; `null` clears a field. `PUT` does the same.
#[utoipa::path(patch, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "ct_…")), request_body = ContactPatch,
    responses((status = 200, description = "The updated contact", body = Contact)))]
pub async fn update(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    Json(patch): Json<ContactPatch>,
) -> ApiResult<impl IntoResponse> {
    let store = state.store.scoped(&t.scope);
    let current = store.get_contact(contact_id(&id)?).await?;
    let next = patch.apply(&current)?;
    Ok(axum::Json(store.update_contact(&id, next).await?))
}

/// Update a contact (same as `PATCH`)
///
/// Accepted for clients that only speak `PUT`; it behaves exactly as `PATCH`
/// (absent fields stay). Emits `contact.updated`.
#[utoipa::path(put, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "ct_…")), request_body = ContactPatch,
    responses((status = 200, description = "The updated contact", body = Contact)))]
pub async fn replace(
    state: State<AppState>,
    t: Tenant,
    id: Path<String>,
    patch: Json<ContactPatch>,
) -> ApiResult<impl IntoResponse> {
    update(state, t, id, patch).await
}

/// Delete a contact
///
/// Deletes the contact and its notes.
#[utoipa::path(delete, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "ct_…")),
    responses((status = 200, description = "Deleted", body = crate::shared::Deleted)))]
pub async fn delete(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    state
        .store
        .scoped(&t.scope)
        .delete_contact(contact_id(&id)?)
        .await?;
    Ok(axum::Json(Deleted::new(id, "contact")))
}

/// List a contact's notes
///
/// Newest first, cursor-paged.
#[utoipa::path(get, path = "/v1/contacts/{id}/notes", tag = "contacts",
    params(("id" = String, Path, description = "ct_…"), PageQuery),
    responses((status = 200, description = "Notes, newest first", body = Page<Note>)))]
pub async fn list_notes(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .scoped(&t.scope)
        .list_contact_notes(contact_id(&id)?, &page)
        .await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |n| &n.id)))
}

/// Add a note to a contact
///
/// 1 to 5,000 characters. Send `Idempotency-Key` to retry safely. Emits `note.created`.
#[utoipa::path(post, path = "/v1/contacts/{id}/notes", tag = "contacts",
    params(("id" = String, Path, description = "ct_…"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    request_body = NoteInput,
    responses((status = 201, description = "The new note", body = Note)))]
pub async fn create_note(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<NoteInput>,
) -> ApiResult<Response> {
    let path = format!("/v1/contacts/{id}/notes");
    let idem = idempotency_key(&headers, "POST", &path, &raw)?;
    input.validate()?;
    let outcome = state
        .store
        .scoped(&t.scope)
        .create_contact_note(
            contact_id(&id)?,
            &input.content,
            &t.principal.key_id,
            idem.as_ref(),
        )
        .await?;
    created(outcome, idem.as_ref())
}
