//! Agents of the current workspace and mode: list, create, edit, delete (confirmed
//! on a page of its own), with the domain's checks and the store calls `/v1/agents`
//! uses; every change is audited.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_domain::Result;
use dialtone_domain::agents::{Agent, AgentInput, AgentPatch};
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::users::Action;

use super::pages::{confirm, done, form_error, render_with};
use super::session::{Nav, Session, audit};
use super::{DashResult, Form, see_other, when};
use crate::shared::checked_id;
use crate::state::AppState;

/// Agents listed (a workspace has few; the API pages beyond).
const LIST: u32 = 100;

fn agent_id(id: &str) -> Result<&str> {
    checked_id("agt", "agent", id)
}

struct AgentView {
    id: String,
    name: String,
    voice: String,
    language: String,
    prompt: String,
    created: String,
}

fn view(a: &Agent) -> AgentView {
    AgentView {
        id: a.id.clone(),
        name: a.name.clone(),
        voice: a.voice.clone(),
        language: a.language.clone(),
        prompt: a.prompt.clone().unwrap_or_default(),
        created: when(Some(a.created_at)),
    }
}

/// The agent form as typed.
#[derive(Default)]
struct AgentForm {
    name: String,
    prompt: String,
    voice: String,
    language: String,
    greeting: String,
    stream_url: String,
}

impl AgentForm {
    fn from_form(f: &Form) -> Self {
        let v = |k: &str| f.get(k).unwrap_or("").to_owned();
        AgentForm {
            name: v("name"),
            prompt: v("prompt"),
            voice: v("voice"),
            language: v("language"),
            greeting: v("greeting"),
            stream_url: v("stream_url"),
        }
    }

    fn of(a: &Agent) -> Self {
        AgentForm {
            name: a.name.clone(),
            prompt: a.prompt.clone().unwrap_or_default(),
            voice: a.voice.clone(),
            language: a.language.clone(),
            greeting: a.greeting.clone().unwrap_or_default(),
            stream_url: a.stream_url.clone().unwrap_or_default(),
        }
    }

    fn opt(s: &str) -> Option<String> {
        Some(s.to_owned()).filter(|s| !s.trim().is_empty())
    }

    fn input(&self) -> AgentInput {
        AgentInput {
            name: self.name.clone(),
            prompt: Self::opt(&self.prompt),
            voice: Self::opt(&self.voice),
            language: Self::opt(&self.language),
            greeting: Self::opt(&self.greeting),
            stream_url: Self::opt(&self.stream_url),
        }
    }

    fn patch(&self) -> AgentPatch {
        AgentPatch {
            name: Some(self.name.clone()),
            prompt: Some(Self::opt(&self.prompt)),
            voice: Some(Self::opt(&self.voice)),
            language: Some(Self::opt(&self.language)),
            greeting: Some(Self::opt(&self.greeting)),
            stream_url: Some(Self::opt(&self.stream_url)),
        }
    }
}

#[derive(Template)]
#[template(path = "agents.html")]
struct AgentsPage {
    nav: Nav,
    workspace: String,
    test_mode: bool,
    agents: Vec<AgentView>,
    can_manage: bool,
    form: AgentForm,
    form_error: Option<String>,
}

async fn list_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    form: AgentForm,
    form_error: Option<String>,
) -> DashResult<Response> {
    let scope = session.scope();
    let page = PageRequest::new(Some(LIST), None)?;
    let mut agents = state.store.scoped(&scope).list_agents(&page).await?;
    agents.truncate(LIST as usize);
    Ok(render_with(
        status,
        &AgentsPage {
            nav: session.nav("agents", "/dashboard/agents"),
            workspace: session.workspace_name().to_owned(),
            test_mode: session.mode == Mode::Test,
            agents: agents.iter().map(view).collect(),
            can_manage: session.can(Action::ManageAgents),
            form,
            form_error,
        },
    ))
}

pub(crate) async fn page(State(state): State<AppState>, session: Session) -> DashResult<Response> {
    list_page(&state, &session, StatusCode::OK, AgentForm::default(), None).await
}

pub(crate) async fn create(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageAgents)?;
    let form = AgentForm::from_form(&f);
    let scope = session.scope();
    let made = match form.input().into_fields() {
        Ok(fields) => state
            .store
            .scoped(&scope)
            .create_agent_once(fields, None)
            .await
            .and_then(done),
        Err(e) => Err(e),
    };
    match made {
        Ok(a) => {
            audit(
                &state,
                &session.org.id,
                &session.user.id,
                "agent.created",
                &a.id,
                &format!("Created agent {}", a.name),
                &session.ip,
            )
            .await;
            Ok(see_other(&format!("/dashboard/agents/{}", a.id)))
        }
        Err(e) => {
            let (status, message) = form_error(e)?;
            list_page(&state, &session, status, form, Some(message)).await
        }
    }
}

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentPage {
    nav: Nav,
    agent: AgentView,
    form: AgentForm,
    form_error: Option<String>,
    can_manage: bool,
}

async fn agent_page(
    state: &AppState,
    session: &Session,
    id: &str,
    status: StatusCode,
    form: Option<(AgentForm, String)>,
) -> DashResult<Response> {
    let scope = session.scope();
    let a = state.store.scoped(&scope).get_agent(agent_id(id)?).await?;
    let (form, form_error) = match form {
        Some((f, e)) => (f, Some(e)),
        None => (AgentForm::of(&a), None),
    };
    Ok(render_with(
        status,
        &AgentPage {
            nav: session.nav("agents", &format!("/dashboard/agents/{}", a.id)),
            agent: view(&a),
            form,
            form_error,
            can_manage: session.can(Action::ManageAgents),
        },
    ))
}

pub(crate) async fn agent(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    agent_page(&state, &session, &id, StatusCode::OK, None).await
}

pub(crate) async fn update(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageAgents)?;
    let form = AgentForm::from_form(&f);
    let scope = session.scope();
    let store = state.store.scoped(&scope);
    let current = store.get_agent(agent_id(&id)?).await?;
    let updated = match form.patch().apply(&current) {
        Ok(fields) => store.update_agent(&current.id, fields).await,
        Err(e) => Err(e),
    };
    match updated {
        Ok(a) => {
            audit(
                &state,
                &session.org.id,
                &session.user.id,
                "agent.updated",
                &a.id,
                &format!("Edited agent {}", a.name),
                &session.ip,
            )
            .await;
            Ok(see_other(&format!("/dashboard/agents/{}", a.id)))
        }
        Err(e) => {
            let (status, message) = form_error(e)?;
            agent_page(&state, &session, &id, status, Some((form, message))).await
        }
    }
}

pub(crate) async fn delete_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    session.authorize(Action::ManageAgents)?;
    let scope = session.scope();
    let a = state.store.scoped(&scope).get_agent(agent_id(&id)?).await?;
    Ok(confirm(
        &session,
        "agents",
        &format!("/dashboard/agents/{}/delete", a.id),
        format!("Delete the agent {}?", a.name),
        "Calls already placed keep their record of it. Numbers routed to it and running or \
         paused campaigns that call with it must be pointed elsewhere or canceled first."
            .to_owned(),
        "Delete agent",
        &format!("/dashboard/agents/{}", a.id),
    ))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    session.check_csrf(&Form::parse(&body))?;
    session.authorize(Action::ManageAgents)?;
    let scope = session.scope();
    let store = state.store.scoped(&scope);
    let a = store.get_agent(agent_id(&id)?).await?;
    store.delete_agent(&a.id).await?;
    audit(
        &state,
        &session.org.id,
        &session.user.id,
        "agent.deleted",
        &a.id,
        &format!("Deleted agent {}", a.name),
        &session.ip,
    )
    .await;
    Ok(see_other("/dashboard/agents"))
}
