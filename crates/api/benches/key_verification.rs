//! What verifying a key costs on the request path, step by step: parse and checksum,
//! the keyed digest, the cache lookup, and the three together (a cache hit). The
//! cache miss adds one indexed database read; `bench/run` measures it end to end.
//!
//! `cargo bench -p dialtone-api --bench key_verification`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use dialtone_api::auth::cache::KeyCache;
use dialtone_domain::auth::Principal;
use dialtone_domain::keys::{KeyDigester, generate, parse};
use dialtone_domain::permissions::Permissions;
use dialtone_domain::tenancy::Mode;
use secrecy::{ExposeSecret, SecretString};

fn bench(c: &mut Criterion) {
    let digester = KeyDigester::new(&SecretString::from("bench-server-secret-0123456789"));
    let cache = KeyCache::default();
    // A cache the size of a busy installation.
    let mut token = String::new();
    for i in 0..1000 {
        let t = generate("dt", Mode::Live);
        let p = Principal {
            key_id: format!("key_{i}"),
            org_id: "org_1".into(),
            workspace_id: None,
            default_workspace_id: "ws_1".into(),
            mode: Mode::Live,
            permissions: Permissions::full(),
            expires_at: None,
            limits: Default::default(),
        };
        cache.insert(
            cache.generation(),
            digester.digest(t.secret.expose_secret()),
            Arc::new(p),
        );
        token = t.secret.expose_secret().to_owned();
    }
    let digest = digester.digest(&token);

    c.bench_function("parse_and_checksum", |b| {
        b.iter(|| parse(black_box(&token)))
    });
    c.bench_function("keyed_digest", |b| {
        b.iter(|| digester.digest(black_box(&token)))
    });
    c.bench_function("cache_lookup", |b| b.iter(|| cache.get(black_box(&digest))));
    c.bench_function("verify_cache_hit", |b| {
        b.iter(|| {
            let parsed = parse(black_box(&token)).expect("valid");
            let d = digester.digest(parsed.token);
            cache.get(&d).expect("cached")
        })
    });
    let unknown = generate("dt", Mode::Live).secret.expose_secret().to_owned();
    c.bench_function("verify_cache_miss_before_db", |b| {
        b.iter(|| {
            let parsed = parse(black_box(&unknown)).expect("valid");
            let d = digester.digest(parsed.token);
            cache.get(&d).is_none()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
