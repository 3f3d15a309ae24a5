//! Revocation propagation across two nodes on one PostgreSQL: a key is revoked on
//! node A; node B is polled until it answers 401. Reports the max and median of 20
//! tries (the target is ≤ 100 ms). Node B's poller is set to an hour, so only the
//! LISTEN/NOTIFY push counts.
//!
//! `DIALTONE_BENCH_PG=postgres://…/empty_db cargo bench -p dialtone-api --bench revocation`

use std::time::{Duration, Instant};

use dialtone_api::keys::KeyIssuer;
use dialtone_api::{App, ServerConfig};
use dialtone_domain::auth::{Actor, KeyRequest};
use dialtone_domain::keys::KeyDigester;
use dialtone_store::Store;
use secrecy::{ExposeSecret, SecretString};

fn main() {
    let Ok(url) = std::env::var("DIALTONE_BENCH_PG") else {
        eprintln!("set DIALTONE_BENCH_PG to an empty PostgreSQL database");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        dialtone_api::webhooks::install_tls_provider();
        let secret = SecretString::from("bench-server-secret-0123456789");
        let mut config = ServerConfig::new(secret.clone());
        config.key_poll_interval = Duration::from_secs(3600);
        let a_store = Store::open_postgres(&url).await.expect("a");
        let b_store = Store::open_postgres(&url).await.expect("b");
        let a = App::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"), a_store.clone(), config.clone()).await.expect("a");
        let b = App::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"), b_store.clone(), config.clone()).await.expect("b");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let org = a_store.create_org("Bench").await.expect("org");
        let digester = KeyDigester::new(&secret);
        let issuer = KeyIssuer { store: &a_store, digester: &digester, brand: "dt", cap: 1000, ip: None };
        let admin = issuer.create(Actor::Operator, &org.id, KeyRequest { name: "admin".into(), ..Default::default() }).await.expect("admin");
        let admin = admin.secret.expose_secret().to_owned();
        let client = reqwest::Client::new();
        let mut times = Vec::new();
        for i in 0..20 {
            let victim = issuer.create(Actor::Operator, &org.id, KeyRequest { name: format!("v{i}"), ..Default::default() }).await.expect("key");
            let secret = victim.secret.expose_secret().to_owned();
            let b_me = format!("http://{}/v1/me", b.addr);
            assert_eq!(client.get(&b_me).bearer_auth(&secret).send().await.expect("b").status(), 200);
            let resp = client.delete(format!("http://{}/v1/api-keys/{}", a.addr, victim.key.id)).bearer_auth(&admin).send().await.expect("revoke");
            assert_eq!(resp.status(), 200);
            let answered = Instant::now();
            loop {
                if client.get(&b_me).bearer_auth(&secret).send().await.expect("b").status() == 401 {
                    break;
                }
                assert!(answered.elapsed() < Duration::from_secs(10), "never refused");
            }
            times.push(answered.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|x, y| x.total_cmp(y));
        println!("| revocation on node A → 401 on node B (20 tries; target ≤ 100 ms) | max {:.1} ms, median {:.1} ms |", times[times.len() - 1], times[times.len() / 2]);
        a.shutdown().await;
        b.shutdown().await;
    });
}
