//! Property tests of the parsers that read what clients send (issue 13): whatever the
//! input, no panic, and what is accepted is well-formed.

use dialtone_domain::campaigns::CreateCampaign;
use dialtone_domain::contacts::is_e164;
use dialtone_domain::keys;
use dialtone_domain::page::{PageRequest, encode_cursor};
use dialtone_domain::tenancy::Mode;
use proptest::prelude::*;
use secrecy::ExposeSecret;

fn any_text() -> impl Strategy<Value = String> {
    // Any Unicode, with the bytes parsers care about made likely.
    prop::collection::vec(
        prop_oneof![
            any::<char>(),
            prop::sample::select(vec![
                '_', ':', ',', '"', '\n', '\r', '+', '0', '9', 'a', '\u{feff}', '\0'
            ]),
        ],
        0..120,
    )
    .prop_map(|c| c.into_iter().collect())
}

proptest! {
    #[test]
    fn a_token_parser_never_panics_and_only_accepts_checksummed_tokens(s in any_text()) {
        if let Some(parsed) = keys::parse(&s) {
            // Accepted: its mode is in it, and it is exactly what the generator makes.
            let mode = format!("_{}_", parsed.mode.as_str());
            prop_assert!(parsed.token.contains(&mode));
            prop_assert!(parsed.token.is_ascii());
        }
    }

    #[test]
    fn any_one_character_changed_in_a_token_is_refused(
        live in any::<bool>(),
        at in any::<prop::sample::Index>(),
        with in prop::sample::select(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_".to_vec()),
    ) {
        let mode = if live { Mode::Live } else { Mode::Test };
        let token = keys::generate("dt", mode).secret.expose_secret().to_owned();
        prop_assert!(keys::parse(&token).is_some());
        let i = at.index(token.len());
        prop_assume!(token.as_bytes()[i] != with);
        let mut typo = token.into_bytes();
        typo[i] = with;
        let typo = String::from_utf8(typo).expect("ascii");
        prop_assert!(keys::parse(&typo).is_none(), "{typo}");
    }

    #[test]
    fn the_cursor_decoder_never_panics(cursor in any_text(), limit in any::<Option<u32>>()) {
        let _ = PageRequest::new(limit, Some(&cursor));
        let _ = dialtone_domain::conversations::parse_activity_key(&cursor);
    }

    #[test]
    fn a_cursor_round_trips(id in "[a-z]{2,5}_[0-9a-z]{10,26}") {
        let page = PageRequest::new(Some(10), Some(&encode_cursor(&id))).expect("valid cursor");
        prop_assert_eq!(page.before_id.as_deref(), Some(id.as_str()));
    }

    #[test]
    fn the_campaign_csv_reader_never_panics_and_accepts_only_e164(csv in any_text()) {
        let input = CreateCampaign {
            name: "Renewals".into(),
            agent_id: "agt_01jd5x7c2m8n4p6q8r0s2t4v6w".into(),
            recipients: None,
            recipients_csv: Some(csv),
            from: None,
        };
        if let Ok((_, recipients)) = input.checked() {
            prop_assert!(recipients.iter().all(|r| is_e164(r)), "{recipients:?}");
        }
    }
}
