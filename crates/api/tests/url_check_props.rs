//! Property test of the webhook URL check (issue 13): whatever form a private,
//! loopback or reserved IPv4 address is written in — dotted, a single number,
//! IPv4-mapped, IPv4-compatible, NAT64 or 6to4 IPv6 — the check refuses it, and the
//! address check refuses every such address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dialtone_api::webhooks::{check_url, is_forbidden};
use proptest::prelude::*;

/// Private, loopback, link-local, shared, unspecified and reserved IPv4 addresses.
fn private_v4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(10, b, c, d)),
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(127, b, c, d)),
        (16u8..32, any::<[u8; 2]>()).prop_map(|(b, [c, d])| Ipv4Addr::new(172, b, c, d)),
        any::<[u8; 2]>().prop_map(|[c, d]| Ipv4Addr::new(192, 168, c, d)),
        any::<[u8; 2]>().prop_map(|[c, d]| Ipv4Addr::new(169, 254, c, d)),
        (64u8..128, any::<[u8; 2]>()).prop_map(|(b, [c, d])| Ipv4Addr::new(100, b, c, d)),
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(0, b, c, d)),
        (240u8..=255, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d)),
    ]
}

/// The ways one IPv4 address can be written in a URL's host.
fn written_forms(v4: Ipv4Addr) -> Vec<String> {
    let [a, b, c, d] = v4.octets();
    let embedded = |prefix: [u16; 6]| {
        let [p0, p1, p2, p3, p4, p5] = prefix;
        Ipv6Addr::new(
            p0,
            p1,
            p2,
            p3,
            p4,
            p5,
            u16::from_be_bytes([a, b]),
            u16::from_be_bytes([c, d]),
        )
    };
    vec![
        v4.to_string(),
        u32::from(v4).to_string(),
        format!("[{}]", v4.to_ipv6_mapped()),
        format!("[{}]", embedded([0; 6])),
        format!("[{}]", embedded([0x64, 0xff9b, 0, 0, 0, 0])),
        format!(
            "[{}]",
            Ipv6Addr::new(
                0x2002,
                u16::from_be_bytes([a, b]),
                u16::from_be_bytes([c, d]),
                0,
                0,
                0,
                0,
                1
            )
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn no_form_of_a_private_address_is_accepted(v4 in private_v4(), port in 1u16..) {
        prop_assert!(is_forbidden(IpAddr::V4(v4)));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        for host in written_forms(v4) {
            let url = format!("http://{host}:{port}/hook");
            let checked = rt.block_on(check_url(&url, false));
            prop_assert!(checked.is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn the_url_check_never_panics(s in "\\PC{0,80}") {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        // Only URLs that cannot leave this machine: literals, so no lookup is slow.
        if !s.contains('.') || s.parse::<IpAddr>().is_ok() {
            let _ = rt.block_on(check_url(&format!("http://{s}/"), false));
        }
    }
}
