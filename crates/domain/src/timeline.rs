//! A contact's timeline: its calls, messages and notes merged into one list, newest
//! first. Every item has a [`Position`] (when it was created, then its id, both
//! descending, so two items of the same millisecond still have one order), and a page
//! is the items strictly older than the last position shown. The dashboard's contact
//! page and MCP's `get_contact_timeline` order and page by these rules.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::time::Timestamp;

/// Where an item stands in a timeline: newer `at` first, then the greater id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub at: Timestamp,
    pub id: String,
}

impl Position {
    pub fn new(at: Timestamp, id: &str) -> Self {
        Position {
            at,
            id: id.to_owned(),
        }
    }

    /// The cursor key of this position, `{millis}_{id}` (encode it with
    /// [`crate::page::encode_cursor`], as every keyed list does).
    pub fn key(&self) -> String {
        format!("{}_{}", self.at.timestamp_millis(), self.id)
    }

    /// A key made by [`Position::key`] (a page request's decoded cursor) back into a
    /// position; anything else is a validation error on `cursor`.
    pub fn parse(key: &str) -> Result<Self> {
        let invalid = || {
            Error::validation(
                "cursor",
                "cursor is invalid; pass meta.next_cursor as given",
            )
        };
        let (millis, id) = key.split_once('_').ok_or_else(invalid)?;
        let millis: i64 = millis.parse().map_err(|_| invalid())?;
        let at = chrono::DateTime::from_timestamp_millis(millis).ok_or_else(invalid)?;
        if id.is_empty() {
            return Err(invalid());
        }
        Ok(Position::new(at, id))
    }

    /// Timeline order: `self` comes before `other` when it is newer (or as new, with
    /// the greater id).
    pub fn timeline_cmp(&self, other: &Position) -> Ordering {
        other.at.cmp(&self.at).then_with(|| other.id.cmp(&self.id))
    }

    /// Whether `self` is shown after `cursor` (strictly older).
    pub fn is_after(&self, cursor: &Position) -> bool {
        self.timeline_cmp(cursor) == Ordering::Greater
    }
}

/// Sorts `items` newest first and keeps only those after `cursor` (when given).
pub fn newest_first<T>(
    items: &mut Vec<T>,
    cursor: Option<&Position>,
    position: impl Fn(&T) -> Position,
) {
    if let Some(c) = cursor {
        items.retain(|i| position(i).is_after(c));
    }
    items.sort_by(|a, b| position(a).timeline_cmp(&position(b)));
}

/// One page of a timeline merged from its sources. Each source must hold its first
/// `limit + 1` items after `cursor` (or all it has): then the page is exact. Returns
/// the page and, when older items remain, the position to continue after.
pub fn merge<T>(
    sources: Vec<Vec<T>>,
    cursor: Option<&Position>,
    limit: usize,
    position: impl Fn(&T) -> Position,
) -> (Vec<T>, Option<Position>) {
    let mut items: Vec<T> = sources.into_iter().flatten().collect();
    newest_first(&mut items, cursor, &position);
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more {
        items.last().map(&position)
    } else {
        None
    };
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        chrono::DateTime::from_timestamp_millis(ms).expect("time")
    }

    #[test]
    fn keys_round_trip_and_bad_keys_are_refused() {
        let p = Position::new(at(1_795_000_000_123), "call_01abc");
        assert_eq!(Position::parse(&p.key()).expect("key"), p);
        for bad in ["", "123", "x_call", "123_", "99999999999999999999_a"] {
            assert!(Position::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_merge_sources_newest_first_with_ties_broken_by_id() {
        let calls = vec![(at(30), "call_b"), (at(10), "call_a")];
        let notes = vec![(at(30), "note_a"), (at(20), "note_b")];
        let msgs = vec![(at(30), "msg_a")];
        let pos = |x: &(Timestamp, &str)| Position::new(x.0, x.1);
        let (page, next) = merge(
            vec![calls.clone(), notes.clone(), msgs.clone()],
            None,
            2,
            pos,
        );
        assert_eq!(page, vec![(at(30), "note_a"), (at(30), "msg_a")]);
        let next = next.expect("more");
        let (page, next) = merge(vec![calls, notes, msgs], Some(&next), 2, pos);
        assert_eq!(page, vec![(at(30), "call_b"), (at(20), "note_b")]);
        let next = next.expect("more");
        let (page, next) = merge(vec![vec![(at(10), "call_a")]], Some(&next), 2, pos);
        assert_eq!(page, vec![(at(10), "call_a")]);
        assert!(next.is_none());
    }
}
