//! The OAuth consent page (`/dashboard/oauth/authorize`): the person signs in (the
//! dashboard session; the sign-in page returns here), sees the client's name and where
//! it redirects, picks the workspace, Live or Test, and the access — read-only by
//! default, full, or resource by resource (pre-selected when the client asked for a
//! narrow set with writes, as a step-up does: `dialtone_domain::oauth::preselected`)
//! — then allows or denies. Allowing creates
//! the grant (an API key row of the client, through `plan_new_key` and the key cap;
//! only roles that may manage keys can allow) and redirects with a one-time code.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dialtone_domain::Error;
use dialtone_domain::auth::{Actor, KeyRequest, plan_new_key};
use dialtone_domain::id::new_id;
use dialtone_domain::oauth::{self as rules, AccessChoice, TokenKind};
use dialtone_domain::permissions::{Permission, Resource};
use dialtone_domain::tenancy::Mode;
use dialtone_domain::time::now;
use dialtone_domain::users::Action;
use dialtone_store::NewKeyRow;
use dialtone_store::oauth::NewCode;

use super::session::Session;
use super::{DashError, DashResult, Form, render, render_status};
use crate::oauth::{AuthRequest, Refusal, check_request, consent_policy, redirect_to};
use crate::state::AppState;

/// The authorization request's parameters, carried through the form unchanged.
const PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "resource",
];

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    client_name: String,
    redirect_host: String,
    email: String,
    org_name: String,
    csrf: String,
    params: Vec<(&'static str, String)>,
    workspaces: Vec<(String, String, bool)>,
    test: bool,
    write_requested: bool,
    /// `read` or `custom`: which access choice starts selected.
    preselected: &'static str,
    /// What the app asks to change, when that is pre-selected (`Messages, Calls`).
    asked_writes: String,
    /// Resource, label, whether write may be chosen, whether write starts selected.
    perms: Vec<(&'static str, String, bool, bool)>,
    can_approve: bool,
    error: Option<String>,
}

/// The consent page may send its form on to the client's redirect URI.
fn with_policy(mut resp: Response, req: &AuthRequest) -> Response {
    if let Some(v) = consent_policy(&req.redirect_uri) {
        resp.headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

fn refused(r: Refusal) -> Response {
    match r {
        Refusal::Page(message) => DashError(Error::validation("oauth", message)).into_response(),
        Refusal::Redirect(resp) => resp,
        Refusal::Store(e) => DashError(e).into_response(),
    }
}

fn page(s: &Session, req: &AuthRequest, form: &Form, error: Option<String>) -> ConsentPage {
    let custom = rules::preselected(req.requested) == AccessChoice::Custom;
    ConsentPage {
        client_name: req.client.name.clone(),
        redirect_host: rules::redirect_host(&req.redirect_uri),
        email: s.user.email.clone(),
        org_name: s.org.name.clone(),
        csrf: s.csrf.clone(),
        params: PARAMS
            .iter()
            .filter_map(|k| form.get(k).map(|v| (*k, v.to_owned())))
            .collect(),
        workspaces: s
            .workspaces
            .iter()
            .map(|w| (w.id.clone(), w.name.clone(), w.id == s.workspace_id))
            .collect(),
        test: s.mode == Mode::Test,
        write_requested: req.requested.has_any_write(),
        preselected: if custom { "custom" } else { "read" },
        asked_writes: Resource::ALL
            .iter()
            .filter(|r| custom && req.requested.allows(Permission::write(**r)))
            .map(|r| rules::resource_label(*r))
            .collect::<Vec<_>>()
            .join(", "),
        perms: Resource::ALL
            .iter()
            .filter(|r| req.requested.allows(Permission::read(**r)))
            .map(|r| {
                let write = r.writable() && req.requested.allows(Permission::write(*r));
                (
                    r.as_str(),
                    rules::resource_label(*r),
                    write,
                    write && custom,
                )
            })
            .collect(),
        can_approve: s.can(Action::ManageKeys),
        error,
    }
}

/// `GET /dashboard/oauth/authorize`: the consent page.
pub(crate) async fn show(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let form = Form::parse(uri.query().unwrap_or("").as_bytes());
    match check_request(&state, &headers, &form).await {
        Ok(req) => with_policy(render(&page(&session, &req, &form, None)), &req),
        Err(r) => refused(r),
    }
}

/// `POST /dashboard/oauth/authorize`: deny (`error=access_denied`) or allow (a grant
/// and a code). The CSRF token is checked before anything else.
pub(crate) async fn decide(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(e) = session.check_csrf(&form) {
        return e.into_response();
    }
    let req = match check_request(&state, &headers, &form).await {
        Ok(r) => r,
        Err(r) => return refused(r),
    };
    if form.get("decision") != Some("approve") {
        return redirect_to(
            &req.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the person denied the request"),
            ],
            req.state.as_deref(),
            &req.issuer,
        );
    }
    match approve(&state, &session, &req, &form).await {
        Ok(resp) => resp,
        Err(DashError(e @ (Error::Validation { .. } | Error::Conflict { .. }))) => {
            let message = e.to_string();
            with_policy(
                render_status(
                    StatusCode::BAD_REQUEST,
                    &page(&session, &req, &form, Some(message)),
                ),
                &req,
            )
        }
        Err(e) => e.into_response(),
    }
}

async fn approve(
    state: &AppState,
    session: &Session,
    req: &AuthRequest,
    form: &Form,
) -> DashResult<Response> {
    session.authorize(Action::ManageKeys)?;
    let workspace_id = Some(form.get("workspace_id").unwrap_or(&session.workspace_id))
        .filter(|w| session.workspaces.iter().any(|x| x.id == *w))
        .ok_or_else(|| Error::validation("workspace_id", "Choose one of your workspaces."))?;
    let mode = match form.get("mode") {
        Some("test") => Mode::Test,
        Some("live") | None => Mode::Live,
        Some(_) => return Err(Error::validation("mode", "Choose Live or Test.").into()),
    };
    let choice = match form.get("access") {
        Some("read") | None => AccessChoice::ReadOnly,
        Some("full") => AccessChoice::Full,
        Some("custom") => AccessChoice::Custom,
        Some(_) => return Err(Error::validation("access", "Choose an access level.").into()),
    };
    let mut custom = Vec::new();
    for r in Resource::ALL {
        match form.get(&format!("perm_{}", r.as_str())) {
            Some("read") => custom.push(Permission::read(*r)),
            Some("write") if r.writable() => custom.push(Permission::write(*r)),
            _ => {}
        }
    }
    let permissions = rules::consented(choice, req.requested, &custom);
    if permissions == dialtone_domain::permissions::Permissions::NONE {
        return Err(
            Error::validation("access", "Choose at least one thing the app may read.").into(),
        );
    }
    let spec = plan_new_key(
        Actor::User(&session.user.id),
        &session.org.id,
        KeyRequest {
            name: req.client.name.clone(),
            read_only: false,
            mode: Some(mode),
            permissions: Some(permissions.to_strings()),
            workspace_id: Some(workspace_id.to_owned()),
            expires_at: None,
            // A live grant gets the organization's default limits, as any new live key.
            default_limits: state.store.org_key_limits(&session.org.id).await?,
            ..KeyRequest::default()
        },
        now(),
    )?;
    // The row's own digest is of a secret nobody ever sees: a grant is used through
    // its OAuth tokens only.
    let brand = &state.config.key_brand;
    let unusable = rules::generate_token(brand, TokenKind::Access);
    let digest = state.digester.digest(&unusable);
    let id = new_id("key");
    let last_four = id[id.len().saturating_sub(4)..].to_owned();
    let prefix = format!("{brand}_oauth_");
    let key = state
        .store
        .insert_key(
            &spec,
            NewKeyRow {
                id: &id,
                digest: &digest,
                prefix: &prefix,
                last_four: &last_four,
                ip: Some(&session.ip),
                oauth_client_id: Some(&req.client.id),
            },
            state.config.key_cap,
            None,
        )
        .await?;
    let code = rules::generate_token(brand, TokenKind::Code);
    state
        .store
        .insert_oauth_code(NewCode {
            digest: &state.digester.digest(&code),
            key_id: &key.id,
            client_id: &req.client.id,
            redirect_uri: &req.redirect_uri,
            code_challenge: &req.code_challenge,
            resource: &req.resource,
            expires_at: now() + rules::CODE_LIFETIME,
        })
        .await?;
    Ok(redirect_to(
        &req.redirect_uri,
        &[("code", &code)],
        req.state.as_deref(),
        &req.issuer,
    ))
}
