//! What a real carrier reports about a call after the fact: recordings it keeps (their
//! audio stays at the carrier, fetched on demand) and live transcript segments, put
//! together into the call's transcript when the carrier says transcription stopped.
//!
//! Every report may arrive twice or out of order: a recording is keyed by the
//! carrier's id, a segment by the carrier's sequence, and the transcript is rebuilt
//! from its segments when a late one arrives (its event fires once).

use dialtone_domain::calls::{Recording, Segment, Transcript};
use dialtone_domain::events::EventType;
use dialtone_domain::id::new_id;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::{Error, Result};

use crate::Store;
use crate::calls::{RecordingRow, record_event};
use crate::db::{FromRow, Row, Scalar, Tx, from_row, query};

/// A recording the carrier made, as its callback reports it.
#[derive(Debug, Clone)]
pub struct CarrierRecording {
    /// The carrier's id (Twilio's `RE…`).
    pub sid: String,
    /// Where the carrier keeps the audio.
    pub media_url: String,
    pub duration_seconds: i64,
}

/// One final piece of a live transcript.
#[derive(Debug, Clone)]
pub struct CarrierSegment {
    /// Unique per call and piece (a replay carries the same key).
    pub key: String,
    /// `agent` or `caller`.
    pub speaker: String,
    /// When it was said, by the carrier's clock.
    pub at: Option<Timestamp>,
    pub text: String,
}

/// Where a recording's audio is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingMedia {
    /// Made by the simulator: generated on demand, this long.
    Simulated { duration_seconds: i64 },
    /// Kept by a carrier, at this URL.
    Carrier { media_url: String },
}

struct CallOwner {
    org_id: String,
    workspace_id: String,
    livemode: bool,
    answered_at: Option<Timestamp>,
}
from_row!(CallOwner {
    org_id,
    workspace_id,
    livemode,
    answered_at
});

impl CallOwner {
    fn scope(&self) -> Scope {
        Scope {
            org_id: self.org_id.clone(),
            workspace_id: self.workspace_id.clone(),
            mode: Mode::from_livemode(self.livemode),
        }
    }
}

async fn owner(tx: &mut Tx, call_id: &str) -> Result<CallOwner> {
    tx.fetch_optional(
        query("SELECT org_id, workspace_id, livemode, answered_at FROM calls WHERE id = $1")
            .bind(call_id),
    )
    .await?
    .ok_or(Error::NotFound { resource: "call" })
}

struct SegmentRow(Segment);

impl FromRow for SegmentRow {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(SegmentRow(Segment {
            speaker: r.get("speaker")?,
            start_seconds: r.get("start_seconds")?,
            text: r.get("text")?,
        }))
    }
}

/// The call's segments so far, in the order they were said.
async fn segments(tx: &mut Tx, call_id: &str) -> Result<Vec<Segment>> {
    let rows: Vec<SegmentRow> = tx
        .fetch_all(
            query(
                "SELECT speaker, start_seconds, text FROM transcript_segments WHERE call_id = $1 \
                 ORDER BY start_seconds, created_at, segment_key",
            )
            .bind(call_id),
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(Error::internal)
}

impl Store {
    /// Records a carrier's recording of a call, with `call.recording.ready`. `None`:
    /// it was recorded before (a replayed callback).
    pub async fn record_carrier_recording(
        &self,
        call_id: &str,
        r: &CarrierRecording,
    ) -> Result<Option<Recording>> {
        let mut tx = self.db.begin().await?;
        let call = owner(&mut tx, call_id).await?;
        let scope = call.scope();
        let at = now();
        let row = RecordingRow {
            id: new_id("rec"),
            call_id: call_id.to_owned(),
            livemode: call.livemode,
            duration_seconds: r.duration_seconds.max(0),
            created_at: at,
        };
        let inserted = tx
            .execute(
                query(
                    "INSERT INTO recordings (id, org_id, workspace_id, livemode, call_id, \
                     duration_seconds, carrier_sid, media_url, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                )
                .bind(&row.id)
                .bind(&scope.org_id)
                .bind(&scope.workspace_id)
                .bind(scope.livemode())
                .bind(call_id)
                .bind(row.duration_seconds)
                .bind(&r.sid)
                .bind(&r.media_url)
                .bind(at),
            )
            .await?;
        if inserted == 0 {
            return Ok(None);
        }
        let recording = Recording::from(row);
        record_event(
            &mut tx,
            &scope,
            EventType::CallRecordingReady,
            to_json(&recording)?,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(recording))
    }

    /// Where a recording's audio is, by id alone: for a download whose signed URL
    /// already proved the caller may have it.
    pub async fn recording_media(&self, id: &str) -> Result<RecordingMedia> {
        struct Media(i64, Option<String>);
        impl FromRow for Media {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                Ok(Media(r.get("duration_seconds")?, r.get("media_url")?))
            }
        }
        let found: Media = self
            .db
            .fetch_optional(
                query("SELECT duration_seconds, media_url FROM recordings WHERE id = $1").bind(id),
            )
            .await?
            .ok_or(Error::NotFound {
                resource: "recording",
            })?;
        Ok(match found.1 {
            Some(media_url) => RecordingMedia::Carrier { media_url },
            None => RecordingMedia::Simulated {
                duration_seconds: found.0,
            },
        })
    }

    /// Adds a final transcript segment. If the transcript was already put together
    /// (the segment arrived after the carrier said it stopped), it is rebuilt with it.
    pub async fn add_transcript_segment(&self, call_id: &str, seg: &CarrierSegment) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let call = owner(&mut tx, call_id).await?;
        let at = now();
        let start = match (seg.at, call.answered_at) {
            (Some(said), Some(answered)) => (said - answered).num_seconds().max(0),
            _ => 0,
        };
        let inserted = tx
            .execute(
                query(
                    "INSERT INTO transcript_segments (call_id, segment_key, speaker, start_seconds, \
                     text, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(call_id)
                .bind(&seg.key)
                .bind(&seg.speaker)
                .bind(start)
                .bind(&seg.text)
                .bind(at),
            )
            .await?;
        if inserted > 0 {
            let all = segments(&mut tx, call_id).await?;
            tx.execute(
                query("UPDATE transcripts SET segments = $1 WHERE call_id = $2")
                    .bind(to_json(&all)?)
                    .bind(call_id),
            )
            .await?;
        }
        tx.commit().await
    }

    /// Puts the call's transcript together from its segments, with
    /// `call.transcript.ready`. `None`: it was put together before.
    pub async fn finish_transcript(&self, call_id: &str) -> Result<Option<Transcript>> {
        let mut tx = self.db.begin().await?;
        let call = owner(&mut tx, call_id).await?;
        let scope = call.scope();
        let exists = tx
            .fetch_optional::<Scalar<String>>(
                query("SELECT call_id FROM transcripts WHERE call_id = $1").bind(call_id),
            )
            .await?;
        if exists.is_some() {
            return Ok(None);
        }
        let transcript = Transcript {
            object: "transcript",
            call_id: call_id.to_owned(),
            livemode: call.livemode,
            segments: segments(&mut tx, call_id).await?,
            created_at: now(),
        };
        tx.execute(
            query(
                "INSERT INTO transcripts (call_id, org_id, workspace_id, livemode, segments, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(call_id)
            .bind(&scope.org_id)
            .bind(&scope.workspace_id)
            .bind(scope.livemode())
            .bind(to_json(&transcript.segments)?)
            .bind(transcript.created_at),
        )
        .await?;
        record_event(
            &mut tx,
            &scope,
            EventType::CallTranscriptReady,
            to_json(&transcript)?,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(transcript))
    }
}
