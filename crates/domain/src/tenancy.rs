//! Organizations, workspaces and modes: who owns a piece of data.
//!
//! Every row of customer data belongs to one organization, one workspace and one mode
//! (live or test). A [`Scope`] names all three; the storage crate takes a `Scope` on
//! every data query, so no query can forget the tenant. A `Scope` is made from an
//! authenticated key ([`crate::auth::Principal::scope`]) or by an operator command.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Live,
    Test,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Test => "test",
        }
    }

    pub fn is_live(self) -> bool {
        self == Mode::Live
    }

    pub fn from_livemode(livemode: bool) -> Self {
        if livemode { Mode::Live } else { Mode::Test }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "live" => Ok(Mode::Live),
            "test" => Ok(Mode::Test),
            _ => Err(Error::validation(
                "mode",
                "mode must be \"live\" or \"test\"",
            )),
        }
    }
}

/// The tenant of a query: organization, workspace and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub org_id: String,
    pub workspace_id: String,
    pub mode: Mode,
}

impl Scope {
    pub fn livemode(&self) -> bool {
        self.mode.is_live()
    }
}

/// Length limit for organization and workspace names.
pub const NAME_MAX: usize = 200;
