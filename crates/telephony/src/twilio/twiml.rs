//! The TwiML dialtone answers when Twilio asks what a call should do.
//!
//! A call with an agent: real-time transcription starts first (`<Start>
//! <Transcription>`, both tracks, to dialtone's callback), then the agent's greeting
//! (`<Say>` in its voice and language), then — when the agent has a `stream_url` —
//! `<Connect><Stream>` hands the call to the customer's own voice AI (Twilio Media
//! Streams). Without a stream the documented default applies: an inbound call routed
//! to a forwarding number is dialed through; otherwise the call says its greeting and
//! ends.

/// What a call should do once connected.
#[derive(Debug, Clone, Default)]
pub struct CallScript<'a> {
    pub greeting: Option<&'a str>,
    /// Twilio `<Say>` voice (e.g. `Polly.Joanna`, `alice`).
    pub voice: Option<&'a str>,
    /// BCP 47 (`en-US`).
    pub language: Option<&'a str>,
    /// Where Twilio posts transcription events.
    pub transcription_callback: Option<&'a str>,
    /// A `wss://` URL of the customer's voice AI.
    pub stream_url: Option<&'a str>,
    /// Dial this number (inbound calls routed to a forwarding number).
    pub forward_to: Option<&'a str>,
}

/// The `<Response>` document for a call.
pub fn call(script: &CallScript<'_>) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>");
    if let Some(cb) = script.transcription_callback {
        x.push_str("<Start><Transcription statusCallbackUrl=\"");
        x.push_str(&escape(cb));
        x.push_str("\" track=\"both_tracks\"");
        if let Some(lang) = script.language {
            x.push_str(" languageCode=\"");
            x.push_str(&escape(lang));
            x.push('"');
        }
        x.push_str("/></Start>");
    }
    if let Some(greeting) = script.greeting.filter(|g| !g.trim().is_empty()) {
        x.push_str("<Say");
        if let Some(voice) = script.voice {
            x.push_str(" voice=\"");
            x.push_str(&escape(voice));
            x.push('"');
        }
        if let Some(lang) = script.language {
            x.push_str(" language=\"");
            x.push_str(&escape(lang));
            x.push('"');
        }
        x.push('>');
        x.push_str(&escape(greeting));
        x.push_str("</Say>");
    }
    if let Some(stream) = script.stream_url {
        x.push_str("<Connect><Stream url=\"");
        x.push_str(&escape(stream));
        x.push_str("\"/></Connect>");
    } else if let Some(number) = script.forward_to {
        x.push_str("<Dial>");
        x.push_str(&escape(number));
        x.push_str("</Dial>");
    } else {
        x.push_str("<Hangup/>");
    }
    x.push_str("</Response>");
    x
}

/// An empty answer (an SMS that needs no reply, a call refused).
pub fn empty() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_owned()
}

/// Turns away a call (a number no one owns any more).
pub fn reject() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Reject/></Response>".to_owned()
}

/// Text and attribute values, escaped for XML; characters XML 1.0 cannot hold
/// (control characters) are dropped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_transcription_and_stream_in_order_and_escaped() {
        let x = call(&CallScript {
            greeting: Some("Hi <Ada> & \"friends\"\u{0}"),
            voice: Some("Polly.Joanna"),
            language: Some("en-US"),
            transcription_callback: Some("https://d.example/cb?call=1&x=2"),
            stream_url: Some("wss://ai.example/s"),
            forward_to: None,
        });
        let start = x.find("<Start>").expect("transcription");
        let say = x.find("<Say").expect("say");
        let connect = x.find("<Connect>").expect("stream");
        assert!(start < say && say < connect);
        assert!(x.contains("Hi &lt;Ada&gt; &amp; &quot;friends&quot;</Say>"));
        assert!(x.contains("statusCallbackUrl=\"https://d.example/cb?call=1&amp;x=2\""));
        assert!(!x.contains('\u{0}'));
    }

    #[test]
    fn without_a_stream_it_forwards_or_hangs_up() {
        let forward = call(&CallScript {
            forward_to: Some("+14155550100"),
            ..CallScript::default()
        });
        assert!(forward.contains("<Dial>+14155550100</Dial>"));
        assert!(call(&CallScript::default()).ends_with("<Hangup/></Response>"));
    }
}
