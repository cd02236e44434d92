//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1, put between the splitter (or a test's own
//! S3 client) and `moto_server`, to check what the splitter does when S3 misbehaves: dropped
//! connections before or after a request took effect, `503 Slow Down`, stalls past the client's
//! read timeout, truncated downloads.
//!
//! ```ignore
//! let moto = Moto::start();
//! let proxy = FaultProxy::start(moto.port, FaultPlan::always(Methods::Writes, Fault::SlowDown503));
//! // run the splitter with AWS_ENDPOINT_URL=proxy.endpoint() ...
//! assert!(proxy.stats().injected("SlowDown503") > 0);
//! proxy.set_plan(FaultPlan::none()); // a re-run without faults
//! ```
//!
//! Each client connection gets its own thread and its own upstream connection. Requests and
//! responses are forwarded verbatim; the proxy parses only what it needs to find where a
//! message ends (`Content-Length`, `Transfer-Encoding: chunked`, no body for HEAD/1xx/204/304,
//! otherwise until the upstream closes). Two exceptions:
//! - `Expect: 100-continue` is answered by the proxy itself, before it reads the body; the
//!   upstream's own interim responses are swallowed.
//! - moto (werkzeug) answers every request with `Connection: close`. To keep the client's
//!   connection alive as real S3 does (so hyper's connection pool is exercised), the proxy
//!   removes that header from a complete HTTP/1.1 response and opens a new upstream
//!   connection for the client's next request. When the upstream closes without a complete
//!   response, or the client asks to close, both sides are closed.
//!
//! Which requests get a fault is decided by [`FaultPlan::decide`], a pure function of the
//! plan's seed and the index of the request among those the plan's [`Methods`] match (counted
//! from the last [`FaultProxy::set_plan`]): the same seed and request order give the same
//! faults. [`FaultProxy::stats`] counts requests and the faults really injected.
//!
//! I/O errors only end the connection they happen on; nothing in the proxy threads panics.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// What the proxy does to a request instead of forwarding it normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Reads the request head, then closes the client connection without reading the body
    /// or answering. Nothing reaches the upstream.
    DropBeforeBody,
    /// Reads the whole request, then closes without forwarding or answering.
    DropAfterBody,
    /// Forwards the whole request and reads the upstream's response, then closes without
    /// answering: the request took effect, but the client never learns it.
    DropAfterForward,
    /// Answers `503 Slow Down` with S3's XML error body (after reading the request body) and
    /// keeps the connection open. Nothing reaches the upstream.
    SlowDown503,
    /// Answers `404 Not Found` with S3's `NoSuchUpload` error (after reading the request
    /// body), as S3 answers a retried CompleteMultipartUpload whose first attempt completed.
    /// Nothing reaches the upstream.
    NoSuchUpload404,
    /// Forwards the request and reads the response, then sends nothing for this long (or
    /// until the proxy is dropped) and closes.
    Stall(Duration),
    /// Forwards the request, relays the response head and about half of the response body
    /// (at least one byte short), then closes. Only for GET responses with a body; any other
    /// request gets [`Fault::DropAfterForward`] instead (and is counted as that).
    TruncateBody,
    /// Not a fault, a slow link: forwards the request and relays the whole response, its body
    /// in 64 KiB pieces with this pause after each, then closes.
    SlowBody(Duration),
    /// Not a fault, a slow server: forwards the request, reads the response, waits this long,
    /// then relays the response (a slow upload, seen from the client).
    Delay(Duration),
    /// Forwards the request and relays the response with the last byte of its body inverted
    /// (same length): an object that changed between two reads, as the client sees it.
    FlipLastByte,
}

impl Fault {
    /// The name [`Stats`] counts this fault under (the variant's name).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::DropBeforeBody => "DropBeforeBody",
            Fault::DropAfterBody => "DropAfterBody",
            Fault::DropAfterForward => "DropAfterForward",
            Fault::SlowDown503 => "SlowDown503",
            Fault::NoSuchUpload404 => "NoSuchUpload404",
            Fault::Stall(_) => "Stall",
            Fault::TruncateBody => "TruncateBody",
            Fault::SlowBody(_) => "SlowBody",
            Fault::Delay(_) => "Delay",
            Fault::FlipLastByte => "FlipLastByte",
        }
    }
}

/// Which requests a plan may inject faults into.
#[derive(Debug, Clone, Copy)]
pub enum Methods {
    /// Every request.
    All,
    /// PUT, POST and DELETE.
    Writes,
    /// GET and HEAD.
    Reads,
    /// These methods (upper case, e.g. `&["PUT", "POST"]`).
    Only(&'static [&'static str]),
    /// Requests for which the function of (method, request target) returns true, e.g. only
    /// CompleteMultipartUpload: `|m, t| m == "POST" && t.contains("uploadId=")`.
    Matching(fn(&str, &str) -> bool),
}

impl Methods {
    /// Whether a request with this method and target (path and query) is eligible.
    pub fn matches(&self, method: &str, target: &str) -> bool {
        match self {
            Methods::All => true,
            Methods::Writes => matches!(method, "PUT" | "POST" | "DELETE"),
            Methods::Reads => matches!(method, "GET" | "HEAD"),
            Methods::Only(list) => list.iter().any(|m| m.eq_ignore_ascii_case(method)),
            Methods::Matching(f) => f(method, target),
        }
    }
}

/// When and which faults to inject.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Seeds the pseudo-random draws (see [`FaultPlan::decide`]).
    pub seed: u64,
    /// Probability that an eligible request gets a fault: 0.0 never, 1.0 always.
    pub rate: f64,
    /// Which requests are eligible.
    pub methods: Methods,
    /// The faults to choose from, uniformly. Empty means no faults.
    pub faults: Vec<Fault>,
}

impl FaultPlan {
    /// No faults: everything is forwarded.
    pub fn none() -> FaultPlan {
        FaultPlan { seed: 0, rate: 0.0, methods: Methods::All, faults: Vec::new() }
    }

    /// `fault` on every request that `methods` matches.
    pub fn always(methods: Methods, fault: Fault) -> FaultPlan {
        FaultPlan { seed: 0, rate: 1.0, methods, faults: vec![fault] }
    }

    /// The fault for the `index`-th eligible request (0-based) under this plan, if any.
    ///
    /// Pure and deterministic: splitmix64 of the seed and index gives a uniform draw in
    /// [0, 1) compared with `rate`, and a second one picks among `faults`.
    pub fn decide(&self, index: u64) -> Option<Fault> {
        if self.faults.is_empty() || self.rate <= 0.0 {
            return None;
        }
        let unit = (splitmix64(self.seed, 2 * index) >> 11) as f64 / (1u64 << 53) as f64;
        if unit >= self.rate {
            return None;
        }
        let pick = splitmix64(self.seed, 2 * index + 1) % self.faults.len() as u64;
        Some(self.faults[pick as usize])
    }
}

/// The `n`-th output of a splitmix64 generator seeded with `seed` (a counter-based PRNG:
/// any output can be computed directly).
fn splitmix64(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One request the proxy read, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Which client connection it came on (numbered from 0 in accept order).
    pub connection: u64,
    pub method: String,
    /// The request target: path and query, as sent.
    pub target: String,
    /// The fault injected into it ([`Fault::name`]), if any.
    pub fault: Option<&'static str>,
    /// Its `Range` header, if any (a resumed download asks for the rest).
    pub range: Option<String>,
}

/// What the proxy has seen since it started (or since [`FaultProxy::reset_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Client connections accepted.
    pub connections: usize,
    /// Connections opened to the upstream.
    pub upstream_connections: usize,
    /// Requests whose head was read.
    pub requests: usize,
    /// Requests that carried `Expect: 100-continue` (answered by the proxy).
    pub expect_continue: usize,
    /// Faults really injected, by [`Fault::name`]. A fault is counted just before the client
    /// can notice it (before the close, the 503, the stall or the partial body).
    pub faults: BTreeMap<&'static str, usize>,
    /// Every request, in the order the proxy read them.
    pub events: Vec<Event>,
}

impl Stats {
    /// How many times the fault named `name` ([`Fault::name`]) was injected.
    pub fn injected(&self, name: &str) -> usize {
        self.faults.get(name).copied().unwrap_or(0)
    }

    /// All faults injected.
    pub fn total_faults(&self) -> usize {
        self.faults.values().sum()
    }

    /// The fault (or none) of each request, in order.
    pub fn fault_sequence(&self) -> Vec<Option<&'static str>> {
        self.events.iter().map(|e| e.fault).collect()
    }
}

/// The proxy: listening on `127.0.0.1:port`, forwarding to `127.0.0.1:upstream_port`.
/// Stops accepting and closes every connection on drop.
#[derive(Debug)]
pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16, plan: FaultPlan) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().expect("fault proxy address").port();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(State { plan, eligible: 0, stats: Stats::default() }),
            live: Mutex::new(Live::default()),
        });
        let accept_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || accept_loop(&listener, &accept_shared, upstream_port))
            .expect("spawn the fault proxy");
        FaultProxy { port, shared }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL` or an SDK client's `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the plan for requests read from now on; the eligible-request count that
    /// [`FaultPlan::decide`] is given restarts at 0.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut state = self.shared.state();
        state.plan = plan;
        state.eligible = 0;
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.state().stats.clone()
    }

    /// Zeroes the counters (the plan and its request count are kept).
    pub fn reset_stats(&self) {
        self.shared.state().stats = Stats::default();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Unblock accept(); the loop sees the flag and ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let mut live = self.shared.live();
        for (client, upstream) in live.streams.values() {
            let _ = client.shutdown(Shutdown::Both);
            if let Some(upstream) = upstream {
                let _ = upstream.shutdown(Shutdown::Both);
            }
        }
        live.streams.clear();
    }
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
    /// Clones of every open socket, to shut them down when the proxy is dropped.
    live: Mutex<Live>,
}

#[derive(Debug)]
struct State {
    plan: FaultPlan,
    /// Eligible requests seen under the current plan.
    eligible: u64,
    stats: Stats,
}

#[derive(Debug, Default)]
struct Live {
    next_id: u64,
    /// By connection id: the client socket and the current upstream socket.
    streams: BTreeMap<u64, (TcpStream, Option<TcpStream>)>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Registers a new connection's socket; returns its id.
    fn register(&self, stream: &TcpStream) -> u64 {
        let mut live = self.live();
        let id = live.next_id;
        live.next_id += 1;
        if let Ok(clone) = stream.try_clone() {
            live.streams.insert(id, (clone, None));
        }
        drop(live);
        self.state().stats.connections += 1;
        if self.stopping() {
            // Dropped while this connection was being accepted.
            let _ = stream.shutdown(Shutdown::Both);
        }
        id
    }

    /// Records a connection's (new) upstream socket, replacing the previous one.
    fn register_upstream(&self, id: u64, stream: &TcpStream) {
        if let (Ok(clone), Some(entry)) = (stream.try_clone(), self.live().streams.get_mut(&id)) {
            entry.1 = Some(clone);
        }
        self.state().stats.upstream_connections += 1;
        if self.stopping() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn unregister(&self, id: u64) {
        if let Some((client, upstream)) = self.live().streams.remove(&id) {
            let _ = client.shutdown(Shutdown::Both);
            if let Some(upstream) = upstream {
                let _ = upstream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Counts a request and decides its fault; returns the fault and the event's index.
    fn on_request(
        &self,
        connection: u64,
        method: &str,
        target: &str,
        expect_continue: bool,
        range: Option<&str>,
    ) -> (Option<Fault>, usize) {
        let mut state = self.state();
        let fault = if state.plan.methods.matches(method, target) {
            let index = state.eligible;
            state.eligible += 1;
            state.plan.decide(index)
        } else {
            None
        };
        let stats = &mut state.stats;
        stats.requests += 1;
        if expect_continue {
            stats.expect_continue += 1;
        }
        stats.events.push(Event {
            connection,
            method: method.to_string(),
            target: target.to_string(),
            fault: None,
            range: range.map(str::to_string),
        });
        (fault, stats.events.len() - 1)
    }

    /// Counts an injected fault against the request's event.
    fn injected(&self, event: usize, fault: Fault) {
        let stats = &mut self.state().stats;
        *stats.faults.entry(fault.name()).or_insert(0) += 1;
        // The events may have been reset meanwhile.
        if let Some(e) = stats.events.get_mut(event) {
            e.fault = Some(fault.name());
        }
    }

    /// Sleeps for `duration`, or until the proxy is dropped.
    fn sleep(&self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while !self.stopping() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, upstream_port: u16) {
    for conn in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let client = match conn {
            Ok(c) => c,
            Err(_) => {
                // E.g. out of file descriptors: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let shared = Arc::clone(shared);
        let spawned = thread::Builder::new().name("fault-proxy-conn".into()).spawn(move || {
            let id = shared.register(&client);
            let _ = Connection::new(&shared, id, client, upstream_port).and_then(|mut c| c.serve());
            shared.unregister(id);
        });
        if spawned.is_err() {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const SLOW_DOWN_BODY: &str =
    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
const NO_SUCH_UPLOAD_BODY: &str = "<Error><Code>NoSuchUpload</Code><Message>The specified \
    upload does not exist. The upload ID may be invalid, or the upload may have been aborted \
    or completed.</Message></Error>";

/// One client connection and its upstream connection.
struct Connection<'a> {
    shared: &'a Shared,
    id: u64,
    upstream_port: u16,
    client: BufReader<TcpStream>,
    client_out: TcpStream,
    upstream: Option<(BufReader<TcpStream>, TcpStream)>,
}

impl<'a> Connection<'a> {
    fn new(
        shared: &'a Shared,
        id: u64,
        client: TcpStream,
        upstream_port: u16,
    ) -> io::Result<Connection<'a>> {
        client.set_nodelay(true)?;
        let client_out = client.try_clone()?;
        Ok(Connection {
            shared,
            id,
            upstream_port,
            client: BufReader::with_capacity(64 * 1024, client),
            client_out,
            upstream: None,
        })
    }

    /// Serves requests until either side closes, a fault ends the connection, or an I/O
    /// error happens. Returning closes both sides.
    fn serve(&mut self) -> io::Result<()> {
        while let Some(head) = read_head(&mut self.client)? {
            if !self.exchange(&head)? {
                break;
            }
        }
        Ok(())
    }

    /// One request and its response; returns whether to keep the connection.
    fn exchange(&mut self, raw_head: &[u8]) -> io::Result<bool> {
        let head = Head::parse(raw_head)?;
        let (method, target) = head.request_line()?;
        let request_body = head.request_framing()?;
        let expect_continue =
            head.header("expect").is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
        let range = head.header("range");
        let (fault, event) =
            self.shared.on_request(self.id, &method, &target, expect_continue, range);

        if fault == Some(Fault::DropBeforeBody) {
            self.shared.injected(event, Fault::DropBeforeBody);
            return Ok(false);
        }
        if expect_continue && request_body != Framing::Length(0) {
            self.client_out.write_all(CONTINUE)?;
        }
        match fault {
            Some(Fault::DropAfterBody) => {
                copy_body(&mut self.client, request_body, &mut |_| Ok(()))?;
                self.shared.injected(event, Fault::DropAfterBody);
                return Ok(false);
            }
            Some(fault @ (Fault::SlowDown503 | Fault::NoSuchUpload404)) => {
                copy_body(&mut self.client, request_body, &mut |_| Ok(()))?;
                self.shared.injected(event, fault);
                let (status, body) = match fault {
                    Fault::SlowDown503 => ("503 Slow Down", SLOW_DOWN_BODY),
                    _ => ("404 Not Found", NO_SUCH_UPLOAD_BODY),
                };
                let mut response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n\
                     Content-Length: {}\r\nx-amz-request-id: FAULTPROXY\r\n\r\n",
                    body.len()
                );
                if method != "HEAD" {
                    response.push_str(body);
                }
                self.client_out.write_all(response.as_bytes())?;
                return Ok(!head.wants_close());
            }
            _ => {}
        }

        // Forward the request.
        self.connect_upstream()?;
        let Some((up_in, up_out)) = self.upstream.as_mut() else {
            return Ok(false);
        };
        up_out.write_all(raw_head)?;
        copy_body(&mut self.client, request_body, &mut |b| up_out.write_all(b))?;

        // Read the response head, skipping interim responses (the client got its 100 from us).
        let (raw_response, response) = loop {
            let Some(raw) = read_head(up_in)? else {
                return Ok(false); // the upstream closed: close the client too
            };
            let response = Head::parse(&raw)?;
            let status = response.status()?;
            if !(100..200).contains(&status) || status == 101 {
                break (raw, response);
            }
        };
        let response_body = response.response_framing(method == "HEAD")?;

        match fault {
            None => {
                // A complete response ends the exchange; only the upstream wants to close.
                let reconnect = response.wants_close()
                    && response_body != Framing::UntilClose
                    && response.version() == "HTTP/1.1"
                    && !head.wants_close();
                if reconnect {
                    self.client_out.write_all(&without_connection_header(&raw_response))?;
                } else {
                    self.client_out.write_all(&raw_response)?;
                }
                let out = &mut self.client_out;
                copy_body(up_in, response_body, &mut |b| out.write_all(b))?;
                if reconnect {
                    if let Some((_, up_out)) = self.upstream.take() {
                        let _ = up_out.shutdown(Shutdown::Both);
                    }
                    return Ok(true);
                }
                Ok(!head.wants_close()
                    && !response.wants_close()
                    && response_body != Framing::UntilClose)
            }
            Some(Fault::Stall(duration)) => {
                copy_body(up_in, response_body, &mut |_| Ok(()))?;
                self.shared.injected(event, Fault::Stall(duration));
                self.shared.sleep(duration);
                Ok(false)
            }
            Some(Fault::TruncateBody) => {
                let body = read_body(up_in, response_body)?;
                if method == "GET" && !body.is_empty() {
                    self.shared.injected(event, Fault::TruncateBody);
                    self.client_out.write_all(&raw_response)?;
                    self.client_out.write_all(&body[..body.len() / 2])?;
                } else {
                    self.shared.injected(event, Fault::DropAfterForward);
                }
                Ok(false)
            }
            Some(Fault::SlowBody(pause)) => {
                let body = read_body(up_in, response_body)?;
                self.shared.injected(event, Fault::SlowBody(pause));
                self.client_out.write_all(&raw_response)?;
                for piece in body.chunks(64 << 10) {
                    self.client_out.write_all(piece)?;
                    self.client_out.flush()?;
                    self.shared.sleep(pause);
                }
                Ok(false)
            }
            Some(Fault::Delay(pause)) => {
                let body = read_body(up_in, response_body)?;
                self.shared.injected(event, Fault::Delay(pause));
                self.shared.sleep(pause);
                self.client_out.write_all(&raw_response)?;
                self.client_out.write_all(&body)?;
                self.client_out.flush()?;
                Ok(false)
            }
            Some(Fault::FlipLastByte) => {
                let mut body = read_body(up_in, response_body)?;
                if let Some(last) = body.last_mut() {
                    *last ^= 0xff;
                }
                self.shared.injected(event, Fault::FlipLastByte);
                self.client_out.write_all(&raw_response)?;
                self.client_out.write_all(&body)?;
                self.client_out.flush()?;
                Ok(false)
            }
            // DropAfterForward (the others were handled before forwarding).
            Some(other) => {
                copy_body(up_in, response_body, &mut |_| Ok(()))?;
                self.shared.injected(event, other);
                Ok(false)
            }
        }
    }

    /// Opens the upstream connection on first use.
    fn connect_upstream(&mut self) -> io::Result<()> {
        if self.upstream.is_none() {
            let stream = TcpStream::connect(("127.0.0.1", self.upstream_port))?;
            stream.set_nodelay(true)?;
            self.shared.register_upstream(self.id, &stream);
            let out = stream.try_clone()?;
            self.upstream = Some((BufReader::with_capacity(64 * 1024, stream), out));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 message framing

const MAX_LINE: u64 = 64 * 1024;
const MAX_HEAD: usize = 256 * 1024;

/// How a message body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

/// A parsed message head (request or response).
#[derive(Debug)]
struct Head {
    start_line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> io::Result<Head> {
        let text = std::str::from_utf8(raw).map_err(|_| invalid("message head is not UTF-8"))?;
        let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
        let start_line = lines.next().unwrap_or("").trim().to_string();
        let headers = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(Head { start_line, headers })
    }

    /// The first value of a header (name in lower case).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn version(&self) -> &str {
        let first = self.start_line.split(' ').next().unwrap_or("");
        if first.starts_with("HTTP/") {
            first // a status line
        } else {
            self.start_line.rsplit(' ').next().unwrap_or("")
        }
    }

    /// Whether the sender will close (or wants the connection closed) after this message.
    fn wants_close(&self) -> bool {
        self.has_token("connection", "close")
            || (self.version() == "HTTP/1.0" && !self.has_token("connection", "keep-alive"))
    }

    /// Method and target of a request line.
    fn request_line(&self) -> io::Result<(String, String)> {
        let mut parts = self.start_line.split(' ');
        match (parts.next(), parts.next()) {
            (Some(method), Some(target)) if !method.is_empty() => {
                Ok((method.to_ascii_uppercase(), target.to_string()))
            }
            _ => Err(invalid("bad request line")),
        }
    }

    fn status(&self) -> io::Result<u16> {
        self.start_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("bad status line"))
    }

    fn content_length(&self) -> io::Result<Option<u64>> {
        self.header("content-length")
            .map(|v| v.parse().map_err(|_| invalid("bad Content-Length")))
            .transpose()
    }

    fn request_framing(&self) -> io::Result<Framing> {
        if self.has_token("transfer-encoding", "chunked") {
            Ok(Framing::Chunked)
        } else {
            Ok(Framing::Length(self.content_length()?.unwrap_or(0)))
        }
    }

    fn response_framing(&self, to_head_request: bool) -> io::Result<Framing> {
        let status = self.status()?;
        if to_head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            Ok(Framing::Length(0))
        } else if self.has_token("transfer-encoding", "chunked") {
            Ok(Framing::Chunked)
        } else {
            Ok(self.content_length()?.map_or(Framing::UntilClose, Framing::Length))
        }
    }
}

/// A raw message head without its `Connection` header lines.
fn without_connection_header(raw: &[u8]) -> Vec<u8> {
    raw.split_inclusive(|&b| b == b'\n')
        .filter(|line| !line.to_ascii_lowercase().starts_with(b"connection:"))
        .flatten()
        .copied()
        .collect()
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// One line including its `\n`; an error at end of stream or past `MAX_LINE`.
fn read_line(input: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    input.by_ref().take(MAX_LINE).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "incomplete line"));
    }
    Ok(line)
}

/// A message head up to and including the empty line, verbatim; `None` if the peer closed
/// (cleanly) before sending anything.
fn read_head(input: &mut BufReader<TcpStream>) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        input.by_ref().take(MAX_LINE).read_until(b'\n', &mut line)?;
        if line.is_empty() && head.is_empty() {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "incomplete message head"));
        }
        let blank = line == b"\r\n" || line == b"\n";
        if blank && head.is_empty() {
            continue; // stray line breaks between messages
        }
        head.extend_from_slice(&line);
        if blank {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Err(invalid("message head too large"));
        }
    }
}

/// Passes a message body, verbatim, from `input` to `sink`.
/// A whole body read into memory (see [`copy_body`]).
fn read_body(input: &mut BufReader<TcpStream>, framing: Framing) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    copy_body(input, framing, &mut |b| {
        body.extend_from_slice(b);
        Ok(())
    })?;
    Ok(body)
}

fn copy_body(
    input: &mut BufReader<TcpStream>,
    framing: Framing,
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    match framing {
        Framing::Length(n) => copy_exact(input, n, sink),
        Framing::UntilClose => loop {
            let chunk = input.fill_buf()?;
            if chunk.is_empty() {
                return Ok(());
            }
            let n = chunk.len();
            sink(chunk)?;
            input.consume(n);
        },
        Framing::Chunked => loop {
            let line = read_line(input)?;
            sink(&line)?;
            let size_text = std::str::from_utf8(&line).map_err(|_| invalid("bad chunk size"))?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailer fields, then the empty line.
                loop {
                    let line = read_line(input)?;
                    sink(&line)?;
                    if line == b"\r\n" || line == b"\n" {
                        return Ok(());
                    }
                }
            }
            copy_exact(input, size, sink)?;
            let end = read_line(input)?; // the CRLF after the chunk data
            sink(&end)?;
        },
    }
}

fn copy_exact(
    input: &mut BufReader<TcpStream>,
    mut n: u64,
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    while n > 0 {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short"));
        }
        let take = chunk.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        sink(&chunk[..take])?;
        input.consume(take);
        n -= take as u64;
    }
    Ok(())
}
