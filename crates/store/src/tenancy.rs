//! Organizations and workspaces.

use dialtone_domain::id::new_id;
use dialtone_domain::time::{Timestamp, now, rfc3339};
use dialtone_domain::{Error, Result};

use crate::Store;
use crate::db::{from_row, query};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub default_workspace_id: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created_at: Timestamp,
}
from_row!(Organization {
    id,
    name,
    default_workspace_id,
    created_at
});

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Workspace {
    pub id: String,
    pub org_id: String,
    pub name: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created_at: Timestamp,
}
from_row!(Workspace {
    id,
    org_id,
    name,
    created_at
});

impl Store {
    /// Creates an organization with its default workspace.
    pub async fn create_org(&self, name: &str) -> Result<Organization> {
        let org = Organization {
            id: new_id("org"),
            name: name.to_owned(),
            default_workspace_id: new_id("ws"),
            created_at: now(),
        };
        let mut tx = self.db.begin().await?;
        tx.execute(
            query("INSERT INTO organizations (id, name, default_workspace_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&org.id)
                .bind(&org.name)
                .bind(&org.default_workspace_id)
                .bind(org.created_at),
        )
        .await?;
        tx.execute(
            query("INSERT INTO workspaces (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&org.default_workspace_id)
                .bind(&org.id)
                .bind("Default")
                .bind(org.created_at),
        )
        .await?;
        tx.commit().await?;
        Ok(org)
    }

    pub async fn get_org(&self, org_id: &str) -> Result<Organization> {
        self.db
            .fetch_optional(
                query("SELECT id, name, default_workspace_id, created_at FROM organizations WHERE id = $1")
                    .bind(org_id),
            )
            .await?
            .ok_or(Error::NotFound { resource: "organization" })
    }

    pub async fn list_orgs(&self) -> Result<Vec<Organization>> {
        self.db
            .fetch_all(query(
                "SELECT id, name, default_workspace_id, created_at FROM organizations ORDER BY id",
            ))
            .await
    }

    pub async fn create_workspace(&self, org_id: &str, name: &str) -> Result<Workspace> {
        self.get_org(org_id).await?;
        let ws = Workspace {
            id: new_id("ws"),
            org_id: org_id.to_owned(),
            name: name.to_owned(),
            created_at: now(),
        };
        self.db
            .execute(
                query(
                    "INSERT INTO workspaces (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&ws.id)
                .bind(&ws.org_id)
                .bind(&ws.name)
                .bind(ws.created_at),
            )
            .await?;
        Ok(ws)
    }

    /// The workspace, if it belongs to the organization.
    pub async fn get_workspace(&self, org_id: &str, workspace_id: &str) -> Result<Workspace> {
        self.db
            .fetch_optional(
                query("SELECT id, org_id, name, created_at FROM workspaces WHERE id = $1 AND org_id = $2")
                    .bind(workspace_id)
                    .bind(org_id),
            )
            .await?
            .ok_or(Error::NotFound { resource: "workspace" })
    }

    pub async fn list_workspaces(&self, org_id: &str) -> Result<Vec<Workspace>> {
        self.db
            .fetch_all(
                query("SELECT id, org_id, name, created_at FROM workspaces WHERE org_id = $1 ORDER BY id")
                    .bind(org_id),
            )
            .await
    }
}
