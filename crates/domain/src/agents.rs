//! Voice agents: the AI that speaks on a call (its prompt, voice, language, greeting).

use serde::Deserialize;

use crate::error::{Result, Validator};
use crate::input::{apply, clean, present};
use crate::time::{Timestamp, rfc3339};

pub const NAME_MAX: usize = 200;
pub const PROMPT_MAX: usize = 20_000;
pub const VOICE_MAX: usize = 100;
pub const GREETING_MAX: usize = 1_000;
pub const DEFAULT_VOICE: &str = "default";
pub const DEFAULT_LANGUAGE: &str = "en-US";

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Agent {
    #[schema(example = "agt_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "agent")]
    pub object: &'static str,
    pub workspace_id: String,
    pub livemode: bool,
    #[schema(example = "Front desk")]
    pub name: String,
    /// Instructions the agent follows on every call.
    pub prompt: Option<String>,
    #[schema(example = "default")]
    pub voice: String,
    /// A language tag such as `en-US` or `fr`.
    #[schema(example = "en-US")]
    pub language: String,
    /// What the agent says first.
    pub greeting: Option<String>,
    /// Where a live call's audio is streamed (`wss://…`, Twilio Media Streams): the
    /// customer's own voice AI then talks on the call. Without one, the agent says
    /// its greeting and the call ends.
    #[schema(example = "wss://voice.example.com/twilio")]
    pub stream_url: Option<String>,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// `POST /v1/agents`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200, example = "Front desk")]
    pub name: String,
    /// What the agent is told to do.
    #[schema(example = "Book appointments for Dr. Lee's clinic. Be brief and friendly.")]
    pub prompt: Option<String>,
    /// Defaults to `default`.
    pub voice: Option<String>,
    /// Defaults to `en-US`.
    pub language: Option<String>,
    pub greeting: Option<String>,
    /// `wss://…` (public host, at most 2,000 characters).
    pub stream_url: Option<String>,
}

/// `PATCH /v1/agents/{id}`: absent fields stay, `null` clears (or resets to the default).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200, example = "Front desk (evenings)")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub prompt: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub voice: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub language: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub greeting: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub stream_url: Option<Option<String>>,
}

/// The checked fields of an agent, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFields {
    pub name: String,
    pub prompt: Option<String>,
    pub voice: String,
    pub language: String,
    pub greeting: Option<String>,
    pub stream_url: Option<String>,
}

/// The longest `stream_url`.
pub const STREAM_URL_MAX: usize = 2_000;

/// A Media Streams URL Twilio can connect to: `wss://` with a host and no
/// credentials, spaces or quotes. (Twilio, not dialtone, connects to it, so it is not
/// an SSRF path into dialtone's network.)
pub fn is_stream_url(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("wss://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty()
        && !host.contains('@')
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\'' && c != '<' && c != '>')
}

/// `en`, `en-US`, `pt-BR`, `yue`: 2–3 lowercase letters, optionally `-` and 2 uppercase.
pub fn is_language_tag(s: &str) -> bool {
    let (lang, region) = match s.split_once('-') {
        Some((l, r)) => (l, Some(r)),
        None => (s, None),
    };
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
}

impl AgentInput {
    pub fn into_fields(self) -> Result<AgentFields> {
        let fields = AgentFields {
            name: self.name.trim().to_owned(),
            prompt: clean(self.prompt),
            voice: clean(self.voice).unwrap_or_else(|| DEFAULT_VOICE.to_owned()),
            language: clean(self.language).unwrap_or_else(|| DEFAULT_LANGUAGE.to_owned()),
            greeting: clean(self.greeting),
            stream_url: clean(self.stream_url),
        };
        fields.validate()?;
        Ok(fields)
    }
}

impl AgentPatch {
    /// The agent's fields after this patch, checked as a whole.
    pub fn apply(self, current: &Agent) -> Result<AgentFields> {
        let mut prompt = current.prompt.clone();
        let mut greeting = current.greeting.clone();
        let mut stream_url = current.stream_url.clone();
        let mut voice = Some(current.voice.clone());
        let mut language = Some(current.language.clone());
        apply(&mut prompt, self.prompt);
        apply(&mut greeting, self.greeting);
        apply(&mut stream_url, self.stream_url);
        apply(&mut voice, self.voice);
        apply(&mut language, self.language);
        AgentInput {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            prompt,
            voice,
            language,
            greeting,
            stream_url,
        }
        .into_fields()
    }
}

impl AgentFields {
    fn validate(&self) -> Result<()> {
        let mut v = Validator::new();
        v.check(!self.name.is_empty(), "name", "name must not be empty");
        v.max_len("name", Some(&self.name), NAME_MAX);
        v.max_len("prompt", self.prompt.as_deref(), PROMPT_MAX);
        v.max_len("voice", Some(&self.voice), VOICE_MAX);
        v.max_len("greeting", self.greeting.as_deref(), GREETING_MAX);
        v.max_len("stream_url", self.stream_url.as_deref(), STREAM_URL_MAX);
        v.check(
            self.stream_url.as_deref().is_none_or(is_stream_url),
            "stream_url",
            "stream_url must be a wss:// URL, e.g. wss://voice.example.com/twilio",
        );
        v.check(
            is_language_tag(&self.language),
            "language",
            "language must be a tag such as en-US or fr",
        );
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls() {
        assert!(is_stream_url("wss://voice.example.com/twilio"));
        assert!(is_stream_url("wss://voice.example.com:8443/a?b=c"));
        assert!(!is_stream_url("ws://voice.example.com/"));
        assert!(!is_stream_url("https://voice.example.com/"));
        assert!(!is_stream_url("wss:///path"));
        assert!(!is_stream_url("wss://user:pw@voice.example.com/"));
        assert!(!is_stream_url("wss://voice.example.com/\"><Hangup/>"));
        assert!(!is_stream_url("wss://voice.example.com/ x"));
        assert!(!is_stream_url("wss://voice.example.com/\u{0}"));
    }

    #[test]
    fn language_tags() {
        for ok in ["en", "en-US", "pt-BR", "yue"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in ["EN", "english", "en-us", "en_US", "e", ""] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_and_validation() {
        let f = AgentInput {
            name: " Front desk ".into(),
            ..Default::default()
        }
        .into_fields()
        .expect("valid");
        assert_eq!(f.name, "Front desk");
        assert_eq!(
            (f.voice.as_str(), f.language.as_str()),
            ("default", "en-US")
        );
        let bad = AgentInput {
            name: "".into(),
            language: Some("english".into()),
            ..Default::default()
        };
        match bad.into_fields() {
            Err(crate::Error::Validation { details, .. }) => assert_eq!(details.len(), 2),
            other => panic!("expected validation error, got {other:?}"),
        }
    }
}
