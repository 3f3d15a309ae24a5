//! Cursor pagination: `limit` ≤ 100 and an opaque `cursor`, newest first.
//!
//! A cursor encodes the id of the last item returned; ids sort by creation time, so
//! the next page is "ids below the cursor". Pages stay stable while rows are added.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    /// Return items whose id is below this one.
    pub before_id: Option<String>,
}

impl PageRequest {
    pub fn new(limit: Option<u32>, cursor: Option<&str>) -> Result<Self> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::validation(
                "limit",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let before_id = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok(PageRequest { limit, before_id })
    }

    /// Rows to fetch: one more than the limit, to learn whether there is a next page.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

fn decode_cursor(c: &str) -> Result<String> {
    let invalid = || {
        Error::validation(
            "cursor",
            "cursor is invalid; pass meta.next_cursor as given",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| invalid())?;
    let id = String::from_utf8(bytes).map_err(|_| invalid())?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(invalid());
    }
    Ok(id)
}

pub fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// One page of a list, as every list endpoint returns it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub meta: PageMeta,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PageMeta {
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(example = "Y3RfMDFqZDV4N2MybThuNHA2cThyMHMydDR2Nnc")]
    pub next_cursor: Option<String>,
    #[schema(example = true)]
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched newest first.
    pub fn from_rows(rows: Vec<T>, req: &PageRequest, id_of: impl Fn(&T) -> &str) -> Self {
        Self::from_rows_keyed(rows, req, |r| id_of(r).to_owned())
    }

    /// Like [`Page::from_rows`], for lists ordered by something else than the id: the
    /// cursor is `key_of` the last row (for example `{millis}_{id}`).
    pub fn from_rows_keyed(
        mut rows: Vec<T>,
        req: &PageRequest,
        key_of: impl Fn(&T) -> String,
    ) -> Self {
        let has_more = rows.len() > req.limit as usize;
        rows.truncate(req.limit as usize);
        let next_cursor = if has_more {
            rows.last().map(|r| encode_cursor(&key_of(r)))
        } else {
            None
        };
        Page {
            data: rows,
            meta: PageMeta {
                next_cursor,
                has_more,
            },
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            meta: self.meta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors_are_validated() {
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(Some(101), None).is_err());
        assert!(PageRequest::new(None, Some("!!!")).is_err());
        let c = encode_cursor("ct_01abc");
        let p = PageRequest::new(Some(5), Some(&c)).expect("valid");
        assert_eq!(p.before_id.as_deref(), Some("ct_01abc"));
    }

    #[test]
    fn has_more_when_an_extra_row_came_back() {
        let req = PageRequest::new(Some(2), None).expect("valid");
        let page = Page::from_rows(vec!["c", "b", "a"], &req, |s| s);
        assert_eq!(page.data, vec!["c", "b"]);
        assert!(page.meta.has_more);
        assert_eq!(page.meta.next_cursor, Some(encode_cursor("b")));
        let last = Page::from_rows(vec!["a"], &req, |s| s);
        assert!(!last.meta.has_more && last.meta.next_cursor.is_none());
    }
}
