//! Pieces every resource's routes use: page parameters, the delete answer, id checks.

use dialtone_domain::id::looks_like;
use dialtone_domain::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `meta.next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The answer to a delete.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub id: String,
    #[schema(example = "contact")]
    pub object: &'static str,
    pub deleted: bool,
}

impl Deleted {
    pub fn new(id: String, object: &'static str) -> Self {
        Deleted {
            id,
            object,
            deleted: true,
        }
    }
}

/// An id of the wrong shape cannot exist: answer 404 without asking the database.
pub fn checked_id<'a>(prefix: &str, resource: &'static str, id: &'a str) -> Result<&'a str> {
    if looks_like(prefix, id) {
        Ok(id)
    } else {
        Err(Error::NotFound { resource })
    }
}
