//! Organizations and workspaces.

use dialtone_domain::id::new_id;
use dialtone_domain::time::{Timestamp, now, rfc3339};
use dialtone_domain::{Error, Result};

use crate::{Store, db_error, read, transaction, write};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub default_workspace_id: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Workspace {
    pub id: String,
    pub org_id: String,
    pub name: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created_at: Timestamp,
}

impl Store {
    /// Creates an organization with its default workspace.
    pub async fn create_org(&self, name: &str) -> Result<Organization> {
        let org = Organization {
            id: new_id("org"),
            name: name.to_owned(),
            default_workspace_id: new_id("ws"),
            created_at: now(),
        };
        transaction!(self, |tx| async {
            sqlx::query(
                "INSERT INTO organizations (id, name, default_workspace_id, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&org.id)
            .bind(&org.name)
            .bind(&org.default_workspace_id)
            .bind(org.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            sqlx::query(
                "INSERT INTO workspaces (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&org.default_workspace_id)
            .bind(&org.id)
            .bind("Default")
            .bind(org.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            Ok::<_, Error>(())
        }
        .await)?;
        Ok(org)
    }

    pub async fn get_org(&self, org_id: &str) -> Result<Organization> {
        read!(self, |c| sqlx::query_as::<_, Organization>(
            "SELECT id, name, default_workspace_id, created_at FROM organizations WHERE id = $1"
        )
        .bind(org_id)
        .fetch_optional(c)
        .await)
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "organization",
        })
    }

    pub async fn list_orgs(&self) -> Result<Vec<Organization>> {
        read!(self, |c| sqlx::query_as::<_, Organization>(
            "SELECT id, name, default_workspace_id, created_at FROM organizations ORDER BY id"
        )
        .fetch_all(c)
        .await)
        .map_err(db_error)
    }

    pub async fn create_workspace(&self, org_id: &str, name: &str) -> Result<Workspace> {
        self.get_org(org_id).await?;
        let ws = Workspace {
            id: new_id("ws"),
            org_id: org_id.to_owned(),
            name: name.to_owned(),
            created_at: now(),
        };
        write!(self, |c| sqlx::query(
            "INSERT INTO workspaces (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)"
        )
        .bind(&ws.id)
        .bind(&ws.org_id)
        .bind(&ws.name)
        .bind(ws.created_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(db_error)?;
        Ok(ws)
    }

    /// The workspace, if it belongs to the organization.
    pub async fn get_workspace(&self, org_id: &str, workspace_id: &str) -> Result<Workspace> {
        read!(self, |c| sqlx::query_as::<_, Workspace>(
            "SELECT id, org_id, name, created_at FROM workspaces WHERE id = $1 AND org_id = $2"
        )
        .bind(workspace_id)
        .bind(org_id)
        .fetch_optional(c)
        .await)
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "workspace",
        })
    }

    pub async fn list_workspaces(&self, org_id: &str) -> Result<Vec<Workspace>> {
        read!(self, |c| sqlx::query_as::<_, Workspace>(
            "SELECT id, org_id, name, created_at FROM workspaces WHERE org_id = $1 ORDER BY id"
        )
        .bind(org_id)
        .fetch_all(c)
        .await)
        .map_err(db_error)
    }
}
