//! The tools that shape data rather than pass a page through: a transcript paged by
//! segment, and `get_contact_timeline`.

use dialtone_domain::permissions::{Permission, Resource};
use dialtone_domain::time::Timestamp;
use dialtone_domain::timeline::{Position, newest_first};
use rmcp::model::CallToolResult;
use serde_json::{Map, Value, json};

use crate::backend::{Backend, Caller};
use crate::catalog::ToolSpec;
use crate::output::{self, MAX_RESULT_CHARS};
use crate::server::{DialtoneMcp, Failure, Me, fill_path};

/// Room for the items of a timeline or transcript page (the rest of the result is
/// the envelope).
const ITEMS_BUDGET: usize = MAX_RESULT_CHARS - 2_000;
/// The most items of each kind a timeline reads from the API.
const SOURCE_CAP: usize = 1_000;
/// The most REST requests one timeline makes (they count against the key's rate
/// limit); past it, what was not read is reported as `source_truncated`.
const REQUEST_BUDGET: usize = 60;

fn offset(args: &Map<String, Value>) -> Result<usize, Failure> {
    match args.get("cursor").and_then(Value::as_str) {
        None | Some("") => Ok(0),
        Some(c) => c
            .parse()
            .map_err(|_| Failure::validation("cursor", "cursor is not one this tool gave.")),
    }
}

fn size(v: &Value) -> usize {
    serde_json::to_string(v).map_or(0, |s| s.len())
}

pub(crate) async fn transcript<B: Backend>(
    mcp: &DialtoneMcp<B>,
    spec: &ToolSpec,
    args: &Map<String, Value>,
    caller: &Caller,
) -> Result<CallToolResult, Failure> {
    let (path, _) = fill_path("/v1/calls/{call_id}/transcript", args)?;
    let start = offset(args)?;
    let body = mcp.get(caller, path).await?.body();
    let segments = body
        .get("segments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut page = Vec::new();
    let mut used = 0;
    for s in segments.iter().skip(start) {
        let mut s = s.clone();
        output::fit(&mut s, ITEMS_BUDGET);
        let n = size(&s);
        if !page.is_empty() && used + n > ITEMS_BUDGET {
            break;
        }
        used += n;
        page.push(s);
    }
    let make = |page: &[Value]| {
        let end = start + page.len();
        let next = (end < segments.len()).then(|| end.to_string());
        json!({
            "object": "transcript",
            "call_id": body.get("call_id"),
            "livemode": body.get("livemode"),
            "created_at": body.get("created_at"),
            "total_segments": segments.len(),
            "offset": start,
            "segments": page,
            "next_cursor": next,
        })
    };
    // Items were measured alone: trim to the size of the whole answer.
    let mut value = make(&page);
    while page.len() > 1 && output::rendered_len(&value) > MAX_RESULT_CHARS {
        page.pop();
        value = make(&page);
    }
    let end = start + page.len();
    let hint = value["next_cursor"].as_str().map(|c| {
        format!(
            "Segments {start}-{} of {}. More: call {} with cursor=\"{c}\".",
            end.saturating_sub(1),
            segments.len(),
            spec.name
        )
    });
    Ok(output::data(spec.name, value, hint))
}

/// One thing that happened with the contact.
struct Entry {
    at: String,
    id: String,
    kind: &'static str,
    item: Value,
}

impl Entry {
    /// The cursor of this entry: `{created_at}|{id}`.
    fn cursor(&self) -> String {
        format!("{}|{}", self.at, self.id)
    }

    /// Where it stands in the timeline (an unreadable time sorts as the oldest).
    fn position(&self) -> Position {
        Position::new(parse_at(&self.at).unwrap_or_default(), &self.id)
    }
}

fn parse_at(at: &str) -> Option<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// A cursor this tool gave (`{created_at}|{id}`) as a timeline position.
fn parse_cursor(c: &str) -> Result<Position, Failure> {
    let invalid = || Failure::validation("cursor", "cursor is not one this tool gave.");
    let (at, id) = c.split_once('|').ok_or_else(invalid)?;
    let at = parse_at(at).ok_or_else(invalid)?;
    if id.is_empty() {
        return Err(invalid());
    }
    Ok(Position::new(at, id))
}

/// Reads every page of `path` (up to [`SOURCE_CAP`] items); says whether it stopped early.
async fn all_pages<B: Backend>(
    mcp: &DialtoneMcp<B>,
    caller: &Caller,
    path: &str,
    requests: &mut usize,
) -> Result<(Vec<Value>, bool), Failure> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        if *requests == 0 {
            return Ok((items, true));
        }
        *requests -= 1;
        let mut url = format!("{path}{sep}limit=100");
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(&form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>());
        }
        let body = mcp.get(caller, url).await?.body();
        let data = body.get("data").and_then(Value::as_array);
        let empty = data.is_none_or(Vec::is_empty);
        if let Some(data) = data {
            items.extend(data.iter().cloned());
        }
        let next = body
            .pointer("/meta/next_cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        // An empty page or a cursor that does not move ends the walk.
        if next.is_none() || empty || next == cursor {
            return Ok((items, false));
        }
        cursor = next;
        if items.len() >= SOURCE_CAP {
            return Ok((items, true));
        }
    }
}

fn pick(v: &Value, fields: &[&str]) -> Value {
    let mut m = Map::new();
    for f in fields {
        if let Some(x) = v.get(*f).filter(|x| !x.is_null()) {
            m.insert((*f).to_owned(), x.clone());
        }
    }
    Value::Object(m)
}

fn str_of(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

pub(crate) async fn timeline<B: Backend>(
    mcp: &DialtoneMcp<B>,
    spec: &ToolSpec,
    args: &Map<String, Value>,
    caller: &Caller,
    me: &Me,
) -> Result<CallToolResult, Failure> {
    let (contact_path, _) = fill_path("/v1/contacts/{contact_id}", args)?;
    let contact_id = str_of(&Value::Object(args.clone()), "contact_id");
    let after = args
        .get("cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(parse_cursor)
        .transpose()?;
    let contact = mcp.get(caller, contact_path.clone()).await?.body();
    let may = |r| me.permissions.allows(Permission::read(r));
    let mut entries = Vec::new();
    let mut requests = REQUEST_BUDGET;
    let mut not_included = Vec::new();
    let mut source_truncated = false;

    if may(Resource::Calls) {
        let (calls, cut) = all_pages(
            mcp,
            caller,
            &format!("/v1/calls?contact_id={contact_id}"),
            &mut requests,
        )
        .await?;
        source_truncated |= cut;
        for c in calls {
            entries.push(Entry {
                at: str_of(&c, "created_at"),
                id: str_of(&c, "id"),
                kind: "call",
                item: pick(
                    &c,
                    &[
                        "id",
                        "direction",
                        "status",
                        "from",
                        "to",
                        "duration_seconds",
                        "started_at",
                        "ended_at",
                    ],
                ),
            });
        }
    } else {
        not_included.push("calls (the key lacks calls:read)");
    }
    if may(Resource::Notes) {
        let (notes, cut) =
            all_pages(mcp, caller, &format!("{contact_path}/notes"), &mut requests).await?;
        source_truncated |= cut;
        for n in notes {
            entries.push(note_entry(&n));
        }
    } else {
        not_included.push("notes (the key lacks notes:read)");
    }
    if may(Resource::Conversations) {
        let (conversations, cut) = all_pages(
            mcp,
            caller,
            &format!("/v1/conversations?contact_id={contact_id}"),
            &mut requests,
        )
        .await?;
        source_truncated |= cut;
        for conv in conversations {
            let conv_id = str_of(&conv, "id");
            if may(Resource::Messages) {
                let (messages, cut) = all_pages(
                    mcp,
                    caller,
                    &format!("/v1/messages?conversation_id={conv_id}"),
                    &mut requests,
                )
                .await?;
                source_truncated |= cut;
                for m in messages {
                    entries.push(Entry {
                        at: str_of(&m, "created_at"),
                        id: str_of(&m, "id"),
                        kind: "message",
                        item: pick(
                            &m,
                            &[
                                "id",
                                "conversation_id",
                                "direction",
                                "status",
                                "from",
                                "to",
                                "body",
                            ],
                        ),
                    });
                }
            }
            if may(Resource::Notes) {
                let (notes, cut) = all_pages(
                    mcp,
                    caller,
                    &format!("/v1/conversations/{conv_id}/notes"),
                    &mut requests,
                )
                .await?;
                source_truncated |= cut;
                for n in notes {
                    entries.push(note_entry(&n));
                }
            }
        }
        if !may(Resource::Messages) {
            not_included.push("messages (the key lacks messages:read)");
        }
    } else {
        not_included.push("messages and conversation notes (the key lacks conversations:read)");
    }

    // Newest first, as every timeline; the cursor is the position of the last item shown.
    newest_first(&mut entries, after.as_ref(), Entry::position);

    let mut items = Vec::new();
    let mut used = 0;
    for e in &entries {
        let mut item = e.item.clone();
        if let Value::Object(m) = &mut item {
            m.insert("kind".into(), e.kind.into());
            m.insert("at".into(), e.at.clone().into());
        }
        if e.kind == "call" && requests > 0 {
            requests -= 1;
            add_excerpt(mcp, caller, &mut item, &e.id).await;
        }
        output::fit(&mut item, ITEMS_BUDGET / 2);
        let n = size(&item);
        if !items.is_empty() && used + n > ITEMS_BUDGET {
            break;
        }
        used += n;
        items.push(item);
    }
    let contact = pick(
        &contact,
        &[
            "id",
            "first_name",
            "last_name",
            "phone_number",
            "email",
            "company",
        ],
    );
    let make = |items: &[Value]| {
        let shown = items.len();
        let rest = &entries[shown..];
        let count = |k| rest.iter().filter(|e| e.kind == k).count();
        let next = (!rest.is_empty() && shown > 0).then(|| entries[shown - 1].cursor());
        json!({
            "object": "timeline",
            "contact": contact,
            "items": items,
            "left_out": {"calls": count("call"), "messages": count("message"), "notes": count("note")},
            "next_cursor": next,
            "not_included": not_included,
            "source_truncated": source_truncated,
        })
    };
    // Items were measured alone: trim to the size of the whole answer.
    let mut value = make(&items);
    while items.len() > 1 && output::rendered_len(&value) > MAX_RESULT_CHARS {
        items.pop();
        value = make(&items);
    }
    let left = entries.len() - items.len();
    let hint = value["next_cursor"].as_str().map(|c| {
        format!(
            "{left} older items left out. More: call {} with cursor=\"{c}\".",
            spec.name
        )
    });
    Ok(output::data(spec.name, value, hint))
}

fn note_entry(n: &Value) -> Entry {
    Entry {
        at: str_of(n, "created_at"),
        id: str_of(n, "id"),
        kind: "note",
        item: pick(
            n,
            &[
                "id",
                "contact_id",
                "conversation_id",
                "content",
                "created_by",
            ],
        ),
    }
}

/// The first lines of a call's transcript, when it has one.
async fn add_excerpt<B: Backend>(
    mcp: &DialtoneMcp<B>,
    caller: &Caller,
    item: &mut Value,
    call_id: &str,
) {
    if item.get("status").and_then(Value::as_str) != Some("completed") {
        return;
    }
    let Ok(r) = mcp
        .get(caller, format!("/v1/calls/{call_id}/transcript"))
        .await
    else {
        return;
    };
    let body = r.body();
    let Some(segments) = body.get("segments").and_then(Value::as_array) else {
        return;
    };
    let excerpt: Vec<Value> = segments
        .iter()
        .take(3)
        .map(|s| {
            let mut s = pick(s, &["speaker", "start_seconds", "text"]);
            output::fit(&mut s, 400);
            s
        })
        .collect();
    if let Value::Object(m) = item {
        m.insert("transcript_excerpt".into(), excerpt.into());
        m.insert("transcript_segments".into(), segments.len().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{ApiRequest, ApiResponse, Unreachable};
    use crate::catalog;
    use crate::confirm::Confirmations;
    use crate::server::KeySource;
    use secrecy::SecretString;

    /// The API's answer to a transcript request, fixed: the simulator's transcripts
    /// are short, and this is about paging a long one.
    struct LongTranscript(Value);

    impl Backend for LongTranscript {
        async fn send(&self, _: &Caller, r: ApiRequest) -> Result<ApiResponse, Unreachable> {
            assert_eq!(r.path, "/v1/calls/call_1/transcript");
            Ok(ApiResponse::json(200, &self.0))
        }
    }

    #[tokio::test]
    async fn a_long_transcript_comes_in_pages_within_the_cap_and_whole() {
        let segments: Vec<Value> = (0..400)
            .map(|i| json!({"speaker": if i % 2 == 0 { "agent" } else { "caller" }, "start_seconds": i * 7, "text": format!("Line {i}: {}", "and then we talked about the schedule ".repeat(3))}))
            .collect();
        let body = json!({"object": "transcript", "call_id": "call_1", "livemode": false, "segments": segments, "created_at": "2026-11-23T00:00:00.000Z"});
        let mcp = DialtoneMcp::new(
            LongTranscript(body),
            KeySource::Fixed(SecretString::from("dt_test_x"), None),
            false,
            Confirmations::random(),
        );
        let caller = Caller {
            key: SecretString::from("dt_test_x"),
            client_addr: None,
            host: None,
            workspace: None,
        };
        let spec = catalog::find("get_call_transcript").expect("tool");
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut args = Map::new();
            args.insert("call_id".into(), "call_1".into());
            if let Some(c) = &cursor {
                args.insert("cursor".into(), c.clone().into());
            }
            let r = transcript(&mcp, spec, &args, &caller).await.expect("page");
            let content = serde_json::to_value(&r.content).expect("json");
            let text = content[0]["text"].as_str().unwrap_or_default();
            assert!(
                text.len() <= MAX_RESULT_CHARS,
                "a page of {} characters",
                text.len()
            );
            let v = output::unfence(text).expect("fenced data");
            assert_eq!(v["total_segments"], 400);
            got.extend(v["segments"].as_array().expect("segments").iter().cloned());
            pages += 1;
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert!(pages > 3, "{pages} pages");
        assert_eq!(got, segments);
    }
}
