//! Serving connections: HTTP/1.1 through hyper, with the limits `axum::serve` lacks.
//!
//! - **Header read timeout**: a request's headers must arrive within
//!   `header_read_timeout`, counted from its first byte (from the opening of the
//!   connection for its first request).
//! - **Idle timeout**: a kept-alive connection waits at most `idle_timeout` for the
//!   first byte of its next request.
//! - **Body progress timeout**: a request body must keep arriving, at most
//!   `body_read_timeout` between two reads; a stalled body answers 408 and closes.
//! - **Connection cap**: at most `max_connections` are served at once; more wait in the
//!   listen backlog until one closes.
//! - **Early answers keep the connection**: when a request is answered without its body
//!   being read (401, 413, 429, …), the rest of the body is read and discarded (up to
//!   the body limit) so the client can send its next request on the same connection;
//!   when that cannot be done (too big, `Expect: 100-continue`, stalled), the answer
//!   says `Connection: close`.
//!
//! Graceful shutdown: stop accepting, let each connection finish its request, wait
//! for all of them (each holds one of the cap's permits).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::config::ServerConfig;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connection limits of a server (from [`ServerConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// The most of an unread body discarded after an early answer.
    pub drain_limit: usize,
}

impl Limits {
    pub(crate) fn from_config(c: &ServerConfig) -> Limits {
        Limits {
            header_read_timeout: c.header_read_timeout,
            body_read_timeout: c.body_read_timeout,
            idle_timeout: c.idle_timeout,
            max_connections: c
                .max_connections
                .clamp(1, Semaphore::MAX_PERMITS.min(1 << 30)),
            drain_limit: c.max_body_bytes,
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true (or its sender is dropped),
/// then finishes in-flight requests and returns once every connection is closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_rx) = watch::channel(false);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = turned_on(&mut stop) => break,
        };
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = turned_on(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let closing = closing_rx.clone();
        tokio::spawn(async move {
            connection(stream, addr, router, limits, closing).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Each connection holds a permit until it closes: all of them back means all closed.
    let _ = permits.acquire_many(limits.max_connections as u32).await;
    Ok(())
}

/// Until `rx` holds true (or its sender is gone).
async fn turned_on(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|on| *on).await;
}

async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    // Typically out of file descriptors: wait for some connections to close.
    tracing::error!(error = %e, "accept error");
    tokio::time::sleep(Duration::from_millis(250)).await;
}

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    router: Router,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(TimedIo {
        inner: stream,
        activity: activity.clone(),
        limits,
        sleep: None,
    });
    let service = ConnService {
        router,
        addr,
        limits,
        activity,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Header and idle timeouts are TimedIo's (hyper's one timer cannot tell them apart).
    builder.header_read_timeout(None).keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::trace!(error = %e, client = %addr, "connection ended");
                }
                break;
            }
            _ = turned_on(&mut closing), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What a connection is doing, shared by its reader ([`TimedIo`]) and its requests.
struct Activity {
    opened: Instant,
    /// Requests handed to the router whose answer is not fully written yet.
    in_flight: AtomicUsize,
    /// Bytes of a request not handed to the router yet have arrived (true at first:
    /// a new connection is there to send a request).
    receiving: AtomicBool,
    /// When `receiving` last changed or the last answer ended (ms since `opened`).
    since_ms: AtomicU64,
    /// The reader waiting without a deadline while a request was in flight: woken when
    /// the answer ends, to start the idle deadline.
    reader: Mutex<Option<std::task::Waker>>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            receiving: AtomicBool::new(true),
            since_ms: AtomicU64::new(0),
            reader: Mutex::new(None),
        }
    }

    fn mark(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.since_ms.store(ms, Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.receiving.store(false, Ordering::Relaxed);
    }

    fn request_done(&self) {
        self.mark();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = reader {
            w.wake();
        }
    }

    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0 && !self.receiving.load(Ordering::Relaxed) {
            self.mark();
            self.receiving.store(true, Ordering::Relaxed);
        }
    }

    /// When the connection must have made progress: none while a request is being
    /// handled (its body has its own timeout).
    fn deadline(&self, limits: &Limits, cx: &Context<'_>) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            *self.reader.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            // Ended meanwhile? Then its wake-up may have been missed: go on below.
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                return None;
            }
        }
        let wait = if self.receiving.load(Ordering::Relaxed) {
            limits.header_read_timeout
        } else {
            limits.idle_timeout
        };
        let since = Duration::from_millis(self.since_ms.load(Ordering::Relaxed));
        Some(self.opened + since + wait)
    }
}

/// The socket, failing a read that waits past the header or idle deadline.
struct TimedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    limits: Limits,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = this.activity.deadline(&this.limits, cx) else {
                    return Poll::Pending;
                };
                let sleep = match &mut this.sleep {
                    Some(s) => {
                        if s.deadline() != deadline {
                            s.as_mut().reset(deadline);
                        }
                        s
                    }
                    None => this
                        .sleep
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request (or not all of its headers) in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// One connection's service: the router, with the client address, a timed request
/// body, and what happens to a body left unread.
#[derive(Clone)]
struct ConnService {
    router: Router,
    addr: SocketAddr,
    limits: Limits,
    activity: Arc<Activity>,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<Answer>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Answer>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let expects_continue = req
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ConnectInfo(self.addr));
        let left = Arc::new(Mutex::new(None));
        let body = TimedBody {
            inner: Some(body),
            timeout: self.limits.body_read_timeout,
            sleep: None,
            polled: false,
            timed_out: false,
            left: left.clone(),
        };
        let req = Request::from_parts(parts, Body::new(body));
        let router = self.router.clone();
        let limits = self.limits;
        let activity = self.activity.clone();
        Box::pin(async move {
            let resp = match router.oneshot(req).await {
                Ok(resp) => resp,
                Err(e) => match e {},
            };
            let unread = left.lock().unwrap_or_else(|e| e.into_inner()).take();
            let resp = settle(resp, unread, expects_continue, &limits).await;
            Ok(resp.map(|inner| Answer {
                inner,
                activity: Some(activity),
            }))
        })
    }
}

/// What a request body left behind when it was dropped.
struct Unread {
    /// The rest of the body, when it was dropped before its end.
    body: Option<Incoming>,
    polled: bool,
    timed_out: bool,
}

/// Decides the fate of a body the router did not read to its end.
async fn settle(
    mut resp: Response<Body>,
    unread: Option<Unread>,
    expects_continue: bool,
    limits: &Limits,
) -> Response<Body> {
    let Some(unread) = unread else {
        // Read to its end, or still held by someone (nothing to decide here).
        return resp;
    };
    if unread.timed_out {
        return body_timed_out();
    }
    let Some(mut body) = unread.body else {
        return resp;
    };
    if body.is_end_stream() {
        return resp;
    }
    let keep = if expects_continue && !unread.polled {
        // The client waits for our go-ahead; it will not send the body now.
        false
    } else if body.size_hint().lower() > limits.drain_limit as u64 {
        false
    } else {
        drain(&mut body, limits).await
    };
    if !keep {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Reads and discards the rest of a body; false if it is too long or stalls.
async fn drain(body: &mut Incoming, limits: &Limits) -> bool {
    let mut read = 0usize;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx));
        match tokio::time::timeout(limits.body_read_timeout, frame).await {
            Ok(None) => return true,
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    read += data.len();
                    if read > limits.drain_limit {
                        return false;
                    }
                }
            }
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

/// 408, and the connection closes.
fn body_timed_out() -> Response<Body> {
    let status = StatusCode::REQUEST_TIMEOUT;
    let mut resp = (
        status,
        axum::Json(crate::error::ErrorBody {
            status_code: status.as_u16(),
            error: "REQUEST_TIMEOUT",
            message: "The request body stopped arriving; send it without pauses.".to_owned(),
            required_permission: None,
            details: None,
        }),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The error of a body that stopped arriving.
#[derive(Debug)]
struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body stopped arriving")
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body that fails when no data arrives for `timeout`, and hands what is
/// left of it back when dropped.
struct TimedBody {
    inner: Option<Incoming>,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    polled: bool,
    timed_out: bool,
    left: Arc<Mutex<Option<Unread>>>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.polled = true;
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.inner = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.inner = None;
                    this.timed_out = true;
                    return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        if self.inner.is_none() && !self.timed_out {
            return;
        }
        let unread = Unread {
            body: self.inner.take(),
            polled: self.polled,
            timed_out: self.timed_out,
        };
        *self.left.lock().unwrap_or_else(|e| e.into_inner()) = Some(unread);
    }
}

/// A response body that tells its connection when it has been written (or dropped).
struct Answer {
    inner: Body,
    activity: Option<Arc<Activity>>,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(a) = self.activity.take() {
            a.request_done();
        }
    }
}
