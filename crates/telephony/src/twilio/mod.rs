//! Twilio: the REST API 2010-04-01 with the account's credentials, the TwiML dialtone
//! serves ([`twiml`]), the callbacks' signature ([`signature`]) and what they mean
//! ([`call_progress`], [`message_status`]).
//!
//! Requests follow Twilio's published OpenAPI document (`twilio_api_v2010.json`); the
//! test suite's Twilio double checks every request against it. The auth token is a
//! [`SecretString`]: it never appears in `Debug`, a log or an error.

use std::time::Duration;

use dialtone_domain::calls::CallProgress;
use dialtone_domain::phone_numbers::{AvailableNumber, Capabilities, NumberType};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::{
    BoxFuture, Carrier, CarrierError, CarrierResult, NumberHooks, NumberSearch, OutboundCall,
    OutboundMessage, OwnedNumber, PlacedCall, ReportedMessage, SentMessage,
};

pub mod signature;
pub mod twiml;

pub const DEFAULT_API_URL: &str = "https://api.twilio.com";
/// Twilio's longest `TimeLimit` (4 hours).
const MAX_TIME_LIMIT: i64 = 14_400;

/// An account's credentials and where its API is.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: SecretString,
    /// `https://api.twilio.com`, or a regional edge, or a test double.
    pub api_url: String,
    /// How long one request to Twilio may take.
    pub timeout: Duration,
}

/// The Twilio carrier.
#[derive(Debug, Clone)]
pub struct Twilio {
    config: TwilioConfig,
    http: reqwest::Client,
}

impl Twilio {
    pub fn new(config: TwilioConfig) -> CarrierResult<Twilio> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dialtone/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CarrierError::unreachable(format!("cannot build the HTTP client: {e}")))?;
        Ok(Twilio { config, http })
    }

    pub fn account_sid(&self) -> &str {
        &self.config.account_sid
    }

    /// The key Twilio signs its callbacks with.
    pub fn signing_key(&self) -> &[u8] {
        self.config.auth_token.expose_secret().as_bytes()
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}{path}",
            self.config.api_url.trim_end_matches('/'),
            self.config.account_sid
        )
    }

    /// Whether `url` is a media URL of this account's API (recordings are fetched
    /// with the account's credentials only from there).
    pub fn owns_url(&self, url: &str) -> bool {
        url.starts_with(&self.url("/"))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> CarrierResult<Value> {
        let resp = req
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose_secret()),
            )
            .send()
            .await
            .map_err(|e| {
                CarrierError::unreachable(if e.is_timeout() {
                    "Twilio did not answer in time".to_owned()
                } else {
                    "Twilio could not be reached".to_owned()
                })
            })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|_| CarrierError {
            code: None,
            message: "Twilio's answer was cut off".to_owned(),
            status: Some(status.as_u16()),
        })?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|_| CarrierError {
                code: None,
                message: "Twilio's answer was not JSON".to_owned(),
                status: Some(status.as_u16()),
            });
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(CarrierError {
            code: match body.get("code") {
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::String(s)) => Some(s.clone()),
                _ => None,
            },
            message: body
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| format!("Twilio answered {status}"), str::to_owned),
            status: Some(status.as_u16()),
        })
    }

    async fn post(&self, path: &str, form: &[(&str, String)]) -> CarrierResult<Value> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        self.send(
            self.http
                .post(self.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> CarrierResult<Value> {
        let mut url = self.url(path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
                    .finish(),
            );
        }
        self.send(self.http.get(url)).await
    }

    /// Fetches a recording's audio (WAV), passing `range` through; the response is
    /// streamed by the caller.
    pub async fn fetch_media(
        &self,
        media_url: &str,
        range: Option<&str>,
    ) -> CarrierResult<reqwest::Response> {
        if !self.owns_url(media_url) {
            return Err(CarrierError::unreachable(
                "the recording is not on this Twilio account",
            ));
        }
        let url = if media_url.ends_with(".wav") {
            media_url.to_owned()
        } else {
            format!("{media_url}.wav")
        };
        let mut req = self.http.get(url).basic_auth(
            &self.config.account_sid,
            Some(self.config.auth_token.expose_secret()),
        );
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let resp = req
            .send()
            .await
            .map_err(|_| CarrierError::unreachable("Twilio could not be reached"))?;
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
            Ok(resp)
        } else {
            Err(CarrierError {
                code: None,
                message: format!("Twilio answered {status} for the recording"),
                status: Some(status.as_u16()),
            })
        }
    }
}

fn sid_of(v: &Value) -> CarrierResult<String> {
    v.get("sid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| CarrierError::unreachable("Twilio's answer had no sid"))
}

fn hooks_form(hooks: &NumberHooks) -> Vec<(&'static str, String)> {
    let mut form = Vec::new();
    if let Some(u) = &hooks.voice_url {
        form.push(("VoiceUrl", u.clone()));
        form.push(("VoiceMethod", "POST".to_owned()));
    }
    if let Some(u) = &hooks.sms_url {
        form.push(("SmsUrl", u.clone()));
        form.push(("SmsMethod", "POST".to_owned()));
    }
    if let Some(u) = &hooks.status_callback {
        form.push(("StatusCallback", u.clone()));
        form.push(("StatusCallbackMethod", "POST".to_owned()));
    }
    form
}

fn number_type_path(t: NumberType) -> &'static str {
    match t {
        NumberType::Local => "Local",
        NumberType::TollFree => "TollFree",
        NumberType::Mobile => "Mobile",
    }
}

impl Carrier for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn check(&self) -> BoxFuture<'_, CarrierResult<()>> {
        Box::pin(async move {
            let account = self.get(".json", &[]).await?;
            match account.get("status").and_then(Value::as_str) {
                Some("active") | None => Ok(()),
                Some(other) => Err(CarrierError {
                    code: None,
                    message: format!("the Twilio account is {other}"),
                    status: Some(200),
                }),
            }
        })
    }

    fn place_call<'a>(
        &'a self,
        call: &'a OutboundCall<'a>,
    ) -> BoxFuture<'a, CarrierResult<PlacedCall>> {
        Box::pin(async move {
            let mut form = vec![("To", call.to.to_owned()), ("From", call.from.to_owned())];
            if let Some(u) = &call.callbacks.instructions {
                form.push(("Url", u.clone()));
                form.push(("Method", "POST".to_owned()));
            }
            if let Some(u) = &call.callbacks.status {
                form.push(("StatusCallback", u.clone()));
                form.push(("StatusCallbackMethod", "POST".to_owned()));
                for e in ["initiated", "ringing", "answered", "completed"] {
                    form.push(("StatusCallbackEvent", e.to_owned()));
                }
            }
            if let Some(max) = call.max_seconds {
                form.push(("TimeLimit", max.clamp(1, MAX_TIME_LIMIT).to_string()));
            }
            if let Some(u) = &call.callbacks.recording {
                form.push(("Record", "true".to_owned()));
                form.push(("RecordingStatusCallback", u.clone()));
                form.push(("RecordingStatusCallbackMethod", "POST".to_owned()));
                form.push(("RecordingStatusCallbackEvent", "completed".to_owned()));
            }
            let created = self.post("/Calls.json", &form).await?;
            Ok(PlacedCall {
                sid: Some(sid_of(&created)?),
                script: None,
            })
        })
    }

    fn hang_up<'a>(&'a self, sid: &'a str) -> BoxFuture<'a, CarrierResult<Option<CallProgress>>> {
        Box::pin(async move {
            let current = self.get(&format!("/Calls/{sid}.json"), &[]).await?;
            let status = current.get("status").and_then(Value::as_str).unwrap_or("");
            // Twilio cancels a call that has not connected, and completes one that has.
            let wanted = match status {
                "queued" | "ringing" => "canceled",
                "in-progress" => "completed",
                _ => return Ok(progress_of_resource(&current)),
            };
            let updated = self
                .post(
                    &format!("/Calls/{sid}.json"),
                    &[("Status", wanted.to_owned())],
                )
                .await?;
            Ok(progress_of_resource(&updated))
        })
    }

    fn call_status<'a>(
        &'a self,
        sid: &'a str,
    ) -> BoxFuture<'a, CarrierResult<Option<CallProgress>>> {
        Box::pin(async move {
            let current = self.get(&format!("/Calls/{sid}.json"), &[]).await?;
            Ok(progress_of_resource(&current))
        })
    }

    fn message_status<'a>(
        &'a self,
        sid: &'a str,
    ) -> BoxFuture<'a, CarrierResult<Option<ReportedMessage>>> {
        Box::pin(async move {
            let current = self.get(&format!("/Messages/{sid}.json"), &[]).await?;
            let status = current
                .get("status")
                .and_then(Value::as_str)
                .and_then(message_status);
            let code = current.get("error_code").and_then(|c| match c {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                _ => None,
            });
            Ok(status.map(|status| ReportedMessage {
                status,
                error_code: code,
            }))
        })
    }

    fn send_message<'a>(
        &'a self,
        message: &'a OutboundMessage<'a>,
    ) -> BoxFuture<'a, CarrierResult<SentMessage>> {
        Box::pin(async move {
            let mut form = vec![
                ("To", message.to.to_owned()),
                ("From", message.from.to_owned()),
                ("Body", message.body.to_owned()),
            ];
            if let Some(u) = &message.status_callback {
                form.push(("StatusCallback", u.clone()));
            }
            let created = self.post("/Messages.json", &form).await?;
            Ok(SentMessage {
                sid: Some(sid_of(&created)?),
                simulated_failure: None,
            })
        })
    }

    fn search_numbers<'a>(
        &'a self,
        search: &'a NumberSearch,
    ) -> BoxFuture<'a, CarrierResult<Vec<AvailableNumber>>> {
        Box::pin(async move {
            let s = &search.search;
            let mut query = vec![("PageSize", s.limit.to_string())];
            if let Some(a) = &s.area_code {
                query.push(("AreaCode", a.clone()));
            }
            if let Some(c) = &search.contains {
                query.push(("Contains", c.clone()));
            }
            let path = format!(
                "/AvailablePhoneNumbers/{}/{}.json",
                s.country,
                number_type_path(s.number_type)
            );
            let page = self.get(&path, &query).await?;
            let numbers = page
                .get("available_phone_numbers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Ok(numbers
                .iter()
                .filter_map(|n| {
                    let number = n.get("phone_number")?.as_str()?.to_owned();
                    let caps = n.get("capabilities");
                    let cap = |k: &str| {
                        caps.and_then(|c| c.get(k))
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    };
                    Some(AvailableNumber {
                        object: "available_phone_number",
                        number,
                        country: s.country,
                        number_type: s.number_type,
                        capabilities: Capabilities {
                            voice: cap("voice"),
                            sms: cap("SMS") || cap("sms"),
                        },
                        monthly_cost: s.number_type.monthly_cost(),
                        currency: dialtone_domain::billing::CURRENCY,
                    })
                })
                .take(s.limit as usize)
                .collect())
        })
    }

    fn buy_number<'a>(
        &'a self,
        number: &'a AvailableNumber,
        hooks: &'a NumberHooks,
    ) -> BoxFuture<'a, CarrierResult<OwnedNumber>> {
        Box::pin(async move {
            let mut form = vec![("PhoneNumber", number.number.clone())];
            form.extend(hooks_form(hooks));
            let bought = self.post("/IncomingPhoneNumbers.json", &form).await?;
            Ok(OwnedNumber {
                sid: Some(sid_of(&bought)?),
                number: number.number.clone(),
                country: number.country.to_owned(),
                number_type: number.number_type,
            })
        })
    }

    fn import_number<'a>(
        &'a self,
        number: &'a str,
        hooks: &'a NumberHooks,
    ) -> BoxFuture<'a, CarrierResult<OwnedNumber>> {
        Box::pin(async move {
            let page = self
                .get(
                    "/IncomingPhoneNumbers.json",
                    &[("PhoneNumber", number.to_owned())],
                )
                .await?;
            let found = page
                .get("incoming_phone_numbers")
                .and_then(Value::as_array)
                .and_then(|list| {
                    list.iter()
                        .find(|n| n.get("phone_number").and_then(Value::as_str) == Some(number))
                })
                .ok_or_else(|| CarrierError {
                    code: Some("20404".to_owned()),
                    message: format!("{number} is not a number of this Twilio account"),
                    status: Some(404),
                })?;
            let sid = sid_of(found)?;
            self.post(
                &format!("/IncomingPhoneNumbers/{sid}.json"),
                &hooks_form(hooks),
            )
            .await?;
            let (country, number_type) = dialtone_domain::phone_numbers::classify(number);
            Ok(OwnedNumber {
                sid: Some(sid),
                number: number.to_owned(),
                country: country.to_owned(),
                number_type,
            })
        })
    }

    fn release_number<'a>(&'a self, sid: &'a str) -> BoxFuture<'a, CarrierResult<()>> {
        Box::pin(async move {
            match self
                .send(
                    self.http
                        .delete(self.url(&format!("/IncomingPhoneNumbers/{sid}.json"))),
                )
                .await
            {
                Ok(_) => Ok(()),
                // Already gone at Twilio: released is what was wanted.
                Err(e) if e.status == Some(404) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

/// A call resource's status as a report (`None` while it is still going).
fn progress_of_resource(call: &Value) -> Option<CallProgress> {
    let status = call.get("status").and_then(Value::as_str)?;
    let duration = call
        .get("duration")
        .and_then(|d| match d {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        })
        .unwrap_or(0);
    call_progress(status, Some(duration), None, None)
}

/// What a `CallStatus` of Twilio's means for a call; `None` for statuses that move
/// nothing (`queued`, `initiated`) or that dialtone does not know.
pub fn call_progress(
    status: &str,
    duration_seconds: Option<i64>,
    error_code: Option<&str>,
    error_message: Option<&str>,
) -> Option<CallProgress> {
    Some(match status {
        "ringing" => CallProgress::Ringing,
        "in-progress" | "answered" => CallProgress::Answered,
        "completed" => CallProgress::Completed {
            duration_seconds: duration_seconds.unwrap_or(0).max(0),
        },
        "busy" => CallProgress::Busy,
        "no-answer" => CallProgress::NoAnswer,
        "canceled" => CallProgress::Canceled,
        "failed" => CallProgress::Failed {
            code: error_code.map(str::to_owned),
            message: error_message.map(str::to_owned),
        },
        _ => return None,
    })
}

/// What a `MessageStatus` of Twilio's means: `delivered` or `failed` (with
/// `undelivered`), `sent`; `None` for the rest (`queued`, `accepted`, …).
pub fn message_status(status: &str) -> Option<&'static str> {
    match status {
        "sent" => Some("sent"),
        "delivered" => Some("delivered"),
        "failed" | "undelivered" => Some("failed"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_statuses_map_onto_the_lifecycle() {
        assert_eq!(call_progress("initiated", None, None, None), None);
        assert_eq!(call_progress("queued", None, None, None), None);
        assert_eq!(
            call_progress("ringing", None, None, None),
            Some(CallProgress::Ringing)
        );
        assert_eq!(
            call_progress("in-progress", None, None, None),
            Some(CallProgress::Answered)
        );
        assert_eq!(
            call_progress("completed", Some(62), None, None),
            Some(CallProgress::Completed {
                duration_seconds: 62
            })
        );
        assert_eq!(
            call_progress("no-answer", None, None, None),
            Some(CallProgress::NoAnswer)
        );
        assert_eq!(
            call_progress("failed", None, Some("32009"), Some("no route")),
            Some(CallProgress::Failed {
                code: Some("32009".into()),
                message: Some("no route".into())
            })
        );
        assert_eq!(message_status("undelivered"), Some("failed"));
        assert_eq!(message_status("accepted"), None);
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let t = Twilio::new(TwilioConfig {
            account_sid: "AC123".into(),
            auth_token: SecretString::from("very-secret-token"),
            api_url: DEFAULT_API_URL.into(),
            timeout: Duration::from_secs(1),
        })
        .expect("client");
        assert!(!format!("{t:?}").contains("very-secret-token"));
    }
}
