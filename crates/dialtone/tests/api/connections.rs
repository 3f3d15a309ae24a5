//! Connections over raw TCP: slow clients are cut off by the header, body and idle
//! timeouts while others are served; the connection cap; early answers (401, 413, 429)
//! keep the connection usable for the next request.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use crate::common::TestApp;

fn short_timeouts(c: &mut dialtone_api::ServerConfig) {
    c.header_read_timeout = Duration::from_millis(1000);
    c.body_read_timeout = Duration::from_millis(1000);
    c.idle_timeout = Duration::from_millis(1000);
}

/// One HTTP/1.1 answer: status, headers (names in lower case), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one answer (bodies with `Content-Length`); `None` if the connection closed
/// before a status line.
async fn read_answer(r: &mut BufReader<OwnedReadHalf>) -> Option<Answer> {
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).await.ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.ok()?;
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// Waits for the server to close the connection; returns what it sent meanwhile.
async fn read_until_closed(mut s: TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut got)).await {
        Ok(_) => Some(got),
        Err(_) => None,
    }
}

#[tokio::test]
async fn stalled_clients_are_cut_off_while_healthz_answers() {
    let t = TestApp::spawn_with(short_timeouts).await;
    let key = t.admin_key().await;
    let addr = t.app().addr;
    // Half send a request line without the end of the headers; half announce a
    // 100-byte body and send 6 bytes of it.
    let mut stalled = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = if i % 2 == 0 {
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\n".to_owned()
        } else {
            format!(
                "POST /v1/contacts HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"firs"
            )
        };
        s.write_all(req.as_bytes()).await.expect("write");
        stalled.push((i, s));
    }
    let opened = Instant::now();
    // Meanwhile everyone else is served promptly, on new connections each time.
    for _ in 0..20 {
        let started = Instant::now();
        let resp = reqwest::Client::new()
            .get(format!("{}/healthz", t.url))
            .send()
            .await
            .expect("healthz");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "/healthz took {:?}",
            started.elapsed()
        );
    }
    let mut waits = tokio::task::JoinSet::new();
    for (i, s) in stalled {
        waits.spawn(async move { (i, read_until_closed(s, Duration::from_secs(10)).await) });
    }
    while let Some(r) = waits.join_next().await {
        let (i, got) = r.expect("join");
        let got = got.unwrap_or_else(|| panic!("stalled connection {i} was never closed"));
        let text = String::from_utf8_lossy(&got);
        if i % 2 == 0 {
            assert!(got.is_empty(), "headers never ended, yet: {text}");
        } else {
            assert!(
                text.starts_with("HTTP/1.1 408") && text.contains("REQUEST_TIMEOUT"),
                "stalled body: {text}"
            );
        }
    }
    let took = opened.elapsed();
    assert!(took < Duration::from_secs(5), "closing took {took:?}");
    t.finish().await;
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout_and_busy_ones_do_not() {
    let t = TestApp::spawn_with(|c| {
        c.header_read_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_millis(1000);
    })
    .await;
    let s = TcpStream::connect(t.app().addr).await.expect("connect");
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    // Several requests, each after a pause longer than the header timeout but shorter
    // than the idle one: the connection is kept.
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        w.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let a = read_answer(&mut r)
            .await
            .expect("answer on the kept connection");
        assert_eq!(a.status, 200);
    }
    let idle = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "an idle connection stayed open");
    assert!(
        idle.elapsed() >= Duration::from_millis(800),
        "closed after {:?}",
        idle.elapsed()
    );
    t.finish().await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let t = TestApp::spawn_with(|c| {
        short_timeouts(c);
        c.max_connections = 20;
    })
    .await;
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(t.app().addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .expect("write");
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The 21st is accepted only once the stalled ones are cut off.
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .get(format!("{}/healthz", t.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "served at once past the cap ({:?})",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(stalled);
    t.finish().await;
}

/// Sends `head` and `body` on `w` while the answer is read (the server may answer
/// before reading the body), then returns the answer.
async fn exchange(
    r: &mut BufReader<OwnedReadHalf>,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    head: &str,
    body: &[u8],
) -> Answer {
    let send = async {
        w.write_all(head.as_bytes()).await.expect("write head");
        // The server may close instead of reading: a failed write shows in the answer.
        let _ = w.write_all(body).await;
    };
    let (_, answer) = tokio::join!(send, read_answer(r));
    answer.expect("an answer")
}

fn post_head(path: &str, key: Option<&str>, len: usize) -> String {
    let auth = key.map_or_else(String::new, |k| format!("Authorization: Bearer {k}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {len}\r\n\r\n"
    )
}

/// A JSON body of exactly `len` bytes.
fn big_json(len: usize) -> Vec<u8> {
    let mut b = br#"{"first_name":"Ada","custom_fields":{"pad":""#.to_vec();
    let tail = br#""}}"#;
    b.resize(len - tail.len(), b'x');
    b.extend_from_slice(tail);
    b
}

#[tokio::test]
async fn early_refusals_keep_the_connection_for_the_next_request() {
    let t = TestApp::spawn_with(|c| c.rate_limit_per_key = 1).await;
    let key = t.admin_key().await;
    let s = TcpStream::connect(t.app().addr).await.expect("connect");
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let body = big_json(100 * 1024);
    let healthz = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";

    // 401: refused before the body is read; the next request on the connection works.
    let a = exchange(
        &mut r,
        &mut w,
        &post_head("/v1/contacts", None, body.len()),
        &body,
    )
    .await;
    assert_eq!(a.status, 401, "{}", String::from_utf8_lossy(&a.body));
    let a = exchange(&mut r, &mut w, healthz, b"").await;
    assert_eq!(a.status, 200, "after a 401");

    // 429: the key's burst used up, then refused before the body is read.
    let mut limited = false;
    for _ in 0..10 {
        let a = exchange(
            &mut r,
            &mut w,
            &post_head("/v1/contacts", Some(&key), body.len()),
            &body,
        )
        .await;
        if a.status == 429 {
            limited = true;
            break;
        }
        // (Read in full, then refused for its content: fine too.)
        assert!(
            a.status < 500,
            "{}: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
    }
    assert!(limited, "never rate limited");
    let a = exchange(&mut r, &mut w, healthz, b"").await;
    assert_eq!(a.status, 200, "after a 429");

    // 413 for a body just past the limit: the rest is read and discarded, the
    // connection is kept.
    let other = t.admin_key().await;
    let limit = t.config.max_body_bytes;
    let over = big_json(limit + 1);
    let head = post_head("/v1/contacts", Some(&other), over.len());
    let a = exchange(&mut r, &mut w, &head, &over).await;
    assert_eq!(a.status, 413, "{}", String::from_utf8_lossy(&a.body));
    let a = exchange(&mut r, &mut w, healthz, b"").await;
    assert_eq!(a.status, 200, "after a 413");

    // Far past it: not worth reading; the answer says the connection closes (and it
    // does), so the client knows to open another one.
    let huge = big_json(3 * limit);
    let head = post_head("/v1/contacts", Some(&other), huge.len());
    let a = exchange(&mut r, &mut w, &head, &huge).await;
    assert_eq!(a.status, 413, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("connection"), Some("close"));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the connection stayed open after Connection: close"
    );
    t.finish().await;
}
