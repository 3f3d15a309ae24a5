//! Secret scanning reports verified per second: the ECDSA P-256 / SHA-256 check of a
//! signed report (what every report costs before any token is looked at), for a
//! one-token report and a 100-token one, and a forged signature (refused just as fast).
//!
//! `cargo bench -p dialtone-api --bench secret_scanning`

use std::hint::black_box;

use base64::Engine;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dialtone_api::secret_scanning::ReporterKeys;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};

fn report(tokens: usize) -> Vec<u8> {
    let items: Vec<String> = (0..tokens)
        .map(|i| {
            format!(
                r#"{{"token":"dt_live_{i:030}ABCDEF","type":"dialtone_api_key","url":"https://github.com/o/r/blob/{i}/x","source":"content"}}"#
            )
        })
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

fn bench(c: &mut Criterion) {
    let signing = SigningKey::from_slice(&[7u8; 32]).expect("a valid scalar");
    let pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    let file = serde_json::json!({"public_keys": [
        {"key_identifier": "k1", "key": pem, "is_current": true}
    ]});
    let keys = ReporterKeys::from_json(&file.to_string()).expect("keys");
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut group = c.benchmark_group("secret_scanning");
    group.throughput(Throughput::Elements(1));
    for tokens in [1, 100] {
        let body = report(tokens);
        let sig: Signature = signing.sign(&body);
        let header = b64.encode(sig.to_der().as_bytes());
        assert!(keys.verify("k1", &header, &body));
        group.bench_function(format!("verify_report_{tokens}_tokens"), |b| {
            b.iter(|| keys.verify(black_box("k1"), black_box(&header), black_box(&body)))
        });
    }
    let body = report(1);
    let other: Signature = signing.sign(b"another body");
    let forged = b64.encode(other.to_der().as_bytes());
    group.bench_function("refuse_forged_signature", |b| {
        b.iter(|| keys.verify(black_box("k1"), black_box(&forged), black_box(&body)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
