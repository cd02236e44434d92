//! The fault-injecting proxy itself (`support::fault_proxy`), against a real `moto_server`
//! (and, for the raw HTTP framing, a scripted upstream): without faults every S3 call
//! round-trips through it; each fault really happens and makes the SDK call fail the way it
//! should; plans can be swapped at runtime; the fault sequence is a function of the seed.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use support::Moto;
use support::fault_proxy::{Fault, FaultPlan, FaultProxy, Methods};

const READ_TIMEOUT: Duration = Duration::from_secs(1);
const BUCKET: &str = "proxied";

/// A client through the proxy: no retries (each call is one request), short timeouts.
fn proxy_client(proxy: &FaultProxy) -> Client {
    let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test");
    let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(READ_TIMEOUT)
        .operation_timeout(Duration::from_secs(20))
        .build();
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(proxy.endpoint())
        .credentials_provider(creds)
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(timeouts)
        .build();
    Client::from_conf(conf)
}

/// moto, a client straight to it, a bucket, and a proxy in front of it with `plan`.
async fn setup(plan: FaultPlan) -> (Moto, Client, FaultProxy, Client) {
    let moto = Moto::start();
    let direct = moto.client().await;
    support::create_bucket(&direct, BUCKET).await;
    let proxy = FaultProxy::start(moto.port, plan);
    let client = proxy_client(&proxy);
    (moto, direct, proxy, client)
}

/// Deterministic, incompressible-looking bytes.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn put(client: &Client, key: &str, data: &[u8]) -> Result<(), String> {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

async fn head_status(client: &Client, key: &str) -> Result<(), Option<u16>> {
    client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.raw_response().map(|r| r.status().as_u16()))
}

async fn put_direct(direct: &Client, key: &str, data: &[u8]) {
    put(direct, key, data).await.expect("put straight to moto");
}

async fn get(client: &Client, key: &str) -> Option<Vec<u8>> {
    support::get_bytes(client, BUCKET, key).await
}

#[test]
fn decisions_are_a_pure_function_of_seed_and_index() {
    let faults = vec![Fault::DropBeforeBody, Fault::SlowDown503, Fault::TruncateBody];
    let plan = FaultPlan { seed: 42, rate: 0.3, methods: Methods::Writes, faults: faults.clone() };
    let run = |p: &FaultPlan| (0..2000).map(|i| p.decide(i)).collect::<Vec<_>>();
    let first = run(&plan);
    assert_eq!(first, run(&plan.clone()), "same seed, same decisions");
    let other = run(&FaultPlan { seed: 43, ..plan.clone() });
    assert_ne!(first, other, "another seed, other decisions");

    // About `rate` of the requests get a fault, each kind about equally often.
    let injected: Vec<Fault> = first.iter().flatten().copied().collect();
    assert!((500..700).contains(&injected.len()), "{} of 2000 at rate 0.3", injected.len());
    for fault in &faults {
        let n = injected.iter().filter(|f| *f == fault).count();
        assert!(n > injected.len() / 5, "{fault:?} chosen {n} times of {}", injected.len());
    }

    // The edges: never, always, nothing to choose from.
    assert!(run(&FaultPlan { rate: 0.0, ..plan.clone() }).iter().all(Option::is_none));
    assert!(run(&FaultPlan { rate: 1.0, ..plan.clone() }).iter().all(Option::is_some));
    assert!(
        run(&FaultPlan { rate: 1.0, faults: vec![], ..plan.clone() }).iter().all(Option::is_none)
    );
    assert!(run(&FaultPlan::none()).iter().all(Option::is_none));
    let always = FaultPlan::always(Methods::All, Fault::Stall(Duration::from_secs(1)));
    assert!(run(&always).iter().all(|f| *f == Some(Fault::Stall(Duration::from_secs(1)))));

    // Which requests are eligible.
    assert!(Methods::Writes.matches("PUT", "/b/k") && Methods::Writes.matches("POST", "/b/k"));
    assert!(Methods::Writes.matches("DELETE", "/b/k") && !Methods::Writes.matches("GET", "/b"));
    assert!(Methods::Reads.matches("GET", "/b/k") && Methods::Reads.matches("HEAD", "/b/k"));
    assert!(!Methods::Reads.matches("PUT", "/b/k"));
    assert!(
        Methods::Only(&["PUT"]).matches("PUT", "/")
            && !Methods::Only(&["PUT"]).matches("POST", "/")
    );
    let complete = Methods::Matching(|m, t| m == "POST" && t.contains("uploadId="));
    assert!(
        complete.matches("POST", "/b/k?uploadId=1") && !complete.matches("POST", "/b/k?uploads")
    );
}

#[tokio::test]
async fn without_faults_every_call_round_trips() {
    let (_moto, direct, proxy, client) = setup(FaultPlan::none()).await;

    let small = bytes(300_000, 1);
    put(&client, "dir/small.bin", &small).await.expect("put through the proxy");
    assert_eq!(get(&client, "dir/small.bin").await.as_deref(), Some(&small[..]));
    let head = client.head_object().bucket(BUCKET).key("dir/small.bin").send().await.expect("head");
    assert_eq!(head.content_length(), Some(small.len() as i64));
    assert_eq!(head_status(&client, "dir/missing").await, Err(Some(404)));
    assert_eq!(support::list_keys(&client, BUCKET, "dir/").await, ["dir/small.bin"]);
    let empty: &[u8] = &[];
    put(&client, "dir/empty", empty).await.expect("empty put");
    assert_eq!(get(&client, "dir/empty").await.as_deref(), Some(empty));

    // Multipart: create, one 5 MiB part, complete.
    let big = bytes(5 << 20, 2);
    let upload = client.create_multipart_upload().bucket(BUCKET).key("big.bin").send().await;
    let upload_id = upload.expect("create").upload_id().expect("upload id").to_string();
    let part = client
        .upload_part()
        .bucket(BUCKET)
        .key("big.bin")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .expect("upload part");
    let completed = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap_or("")).build())
        .build();
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("big.bin")
        .upload_id(&upload_id)
        .multipart_upload(completed)
        .send()
        .await
        .expect("complete");
    assert_eq!(get(&client, "big.bin").await.as_deref(), Some(&big[..]));
    assert_eq!(get(&direct, "big.bin").await.as_deref(), Some(&big[..]), "really in moto");

    let stats = proxy.stats();
    assert_eq!(stats.requests, 11, "{stats:#?}");
    assert_eq!(stats.total_faults(), 0);
    assert!(stats.events.iter().all(|e| e.fault.is_none()));
    assert!(stats.connections <= 2, "keep-alive connections are reused: {}", stats.connections);
    let methods: Vec<&str> = stats.events.iter().map(|e| e.method.as_str()).collect();
    let expected =
        ["PUT", "GET", "HEAD", "HEAD", "GET", "PUT", "GET", "POST", "PUT", "POST", "GET"];
    assert_eq!(methods, expected);
}

/// A PUT that fails under `fault`, then succeeds once the plan is `none`.
async fn put_fails_then_recovers(fault: Fault) -> (Moto, Client, FaultProxy, Client, Vec<u8>) {
    let (moto, direct, proxy, client) =
        setup(FaultPlan::always(Methods::Only(&["PUT"]), fault)).await;
    let data = bytes(200_000, 3);
    let err = put(&client, "k", &data).await.expect_err("the put must fail");
    let stats = proxy.stats();
    assert_eq!(stats.injected(fault.name()), 1, "{stats:#?}");
    assert_eq!(stats.total_faults(), 1);
    assert_eq!(stats.events[0].fault, Some(fault.name()));

    // Reads are not eligible: untouched.
    assert_eq!(head_status(&client, "nothing").await, Err(Some(404)));
    assert_eq!(proxy.stats().total_faults(), 1);

    proxy.set_plan(FaultPlan::none());
    let again = bytes(1000, 4);
    put(&client, "again", &again).await.expect("no faults any more");
    assert_eq!(get(&direct, "again").await.as_deref(), Some(&again[..]));
    assert_eq!(proxy.stats().total_faults(), 1);
    eprintln!("{fault:?}: {err}");
    (moto, direct, proxy, client, data)
}

#[tokio::test]
async fn drop_before_body_fails_the_put_and_writes_nothing() {
    let (_moto, direct, ..) = put_fails_then_recovers(Fault::DropBeforeBody).await;
    assert_eq!(get(&direct, "k").await, None);
}

#[tokio::test]
async fn drop_after_body_fails_the_put_and_writes_nothing() {
    let (_moto, direct, ..) = put_fails_then_recovers(Fault::DropAfterBody).await;
    assert_eq!(get(&direct, "k").await, None);
}

#[tokio::test]
async fn drop_after_forward_fails_the_put_but_the_object_is_written() {
    let (_moto, direct, _proxy, _client, data) =
        put_fails_then_recovers(Fault::DropAfterForward).await;
    assert_eq!(get(&direct, "k").await.as_deref(), Some(&data[..]));
}

#[tokio::test]
async fn drop_after_forward_on_complete_multipart_upload_completes_it() {
    let complete = Methods::Matching(|m, t| m == "POST" && t.contains("uploadId="));
    let (_moto, direct, proxy, client) =
        setup(FaultPlan::always(complete, Fault::DropAfterForward)).await;
    let big = bytes(5 << 20, 5);
    let upload = client.create_multipart_upload().bucket(BUCKET).key("mp").send().await;
    let upload_id = upload.expect("create is not eligible").upload_id().unwrap_or("").to_string();
    let part = client
        .upload_part()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .expect("upload part is not eligible");
    let completed = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap_or("")).build())
        .build();
    let result = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(&upload_id)
        .multipart_upload(completed)
        .send()
        .await;
    assert!(result.is_err(), "the client never hears of the completion");
    assert_eq!(get(&direct, "mp").await.as_deref(), Some(&big[..]), "yet moto completed it");
    let stats = proxy.stats();
    assert_eq!(stats.injected("DropAfterForward"), 1);
    assert_eq!(stats.fault_sequence(), [None, None, Some("DropAfterForward")]);
}

#[tokio::test]
async fn slow_down_503_is_an_s3_error_on_a_kept_connection() {
    let (_moto, direct, proxy, client) =
        setup(FaultPlan::always(Methods::All, Fault::SlowDown503)).await;
    let err = client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from(bytes(100_000, 6)))
        .send()
        .await
        .expect_err("503");
    assert_eq!(err.code(), Some("SlowDown"), "{err:?}");
    assert_eq!(err.message(), Some("Please reduce your request rate."));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert_eq!(get(&direct, "k").await, None, "not forwarded");
    // HEAD: a 503 without a body, and the connection still in step.
    assert_eq!(head_status(&client, "k").await, Err(Some(503)));
    let err = client.list_objects_v2().bucket(BUCKET).send().await.expect_err("503");
    assert_eq!(err.code(), Some("SlowDown"));

    proxy.set_plan(FaultPlan::none());
    put(&client, "k", b"fine").await.expect("put");
    assert_eq!(head_status(&client, "k").await, Ok(()));
    let stats = proxy.stats();
    assert_eq!(stats.injected("SlowDown503"), 3);
    assert_eq!(stats.requests, 5);
    // The proxy keeps the connection after a 503: the HEAD came on the PUT's connection.
    // (The SDK itself drops a connection after a 503 without an error code, the HEAD's, so
    // the list opened another.)
    assert_eq!(stats.events[1].connection, stats.events[0].connection, "{stats:#?}");
}

#[tokio::test]
async fn stall_outlasts_the_read_timeout() {
    let (_moto, direct, proxy, client) =
        setup(FaultPlan::always(Methods::Reads, Fault::Stall(Duration::from_secs(20)))).await;
    let data = bytes(10_000, 7);
    put_direct(&direct, "k", &data).await;

    let started = Instant::now();
    let result = client.get_object().bucket(BUCKET).key("k").send().await;
    let elapsed = started.elapsed();
    assert!(result.is_err(), "a stalled GET must fail");
    eprintln!("stalled GET failed after {elapsed:?}");
    assert!(
        elapsed >= READ_TIMEOUT.mul_f32(0.8) && elapsed < READ_TIMEOUT * 5,
        "failed after {elapsed:?}, read timeout {READ_TIMEOUT:?}"
    );
    assert_eq!(proxy.stats().injected("Stall"), 1);

    proxy.set_plan(FaultPlan::none());
    assert_eq!(get(&client, "k").await.as_deref(), Some(&data[..]));
}

#[tokio::test]
async fn truncate_body_cuts_a_download_short() {
    let (_moto, direct, proxy, client) =
        setup(FaultPlan::always(Methods::All, Fault::TruncateBody)).await;
    let data = bytes(400_000, 8);
    put_direct(&direct, "k", &data).await;

    match client.get_object().bucket(BUCKET).key("k").send().await {
        Ok(out) => {
            assert_eq!(out.content_length(), Some(data.len() as i64), "the head is intact");
            match out.body.collect().await {
                Err(e) => eprintln!("truncated body: {e}"),
                Ok(body) => {
                    let got = body.into_bytes();
                    assert!(got.len() < data.len(), "a truncated body must be short");
                    assert_eq!(got[..], data[..got.len()]);
                }
            }
        }
        Err(e) => eprintln!("truncated GET failed early: {e}"),
    }
    assert_eq!(proxy.stats().injected("TruncateBody"), 1);

    // Not a GET with a body: dropped after forwarding instead (and counted as that).
    put(&client, "put", b"abc").await.expect_err("dropped");
    assert_eq!(get(&direct, "put").await.as_deref(), Some(&b"abc"[..]));
    let stats = proxy.stats();
    assert_eq!(stats.injected("TruncateBody"), 1);
    assert_eq!(stats.injected("DropAfterForward"), 1);

    proxy.set_plan(FaultPlan::none());
    assert_eq!(get(&client, "k").await.as_deref(), Some(&data[..]));
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    let plan = FaultPlan {
        seed: 7,
        rate: 0.5,
        methods: Methods::Reads,
        faults: vec![Fault::SlowDown503, Fault::DropBeforeBody],
    };
    let (_moto, direct, proxy, client) = setup(plan.clone()).await;
    put_direct(&direct, "k", b"x").await;

    // Alternating PUTs (never eligible) and HEADs (eligible), one at a time.
    let outcomes = async || {
        let mut failed = Vec::new();
        for i in 0..16 {
            put(&client, &format!("w{i}"), b"w").await.expect("PUTs are not eligible");
            failed.push(head_status(&client, "k").await.is_err());
        }
        failed
    };
    let first = outcomes().await;
    let first_stats = proxy.stats();
    proxy.set_plan(plan.clone());
    proxy.reset_stats();
    let second = outcomes().await;
    let second_stats = proxy.stats();

    let expected: Vec<Option<Fault>> = (0..16).map(|i| plan.decide(i)).collect();
    assert_eq!(first, expected.iter().map(Option::is_some).collect::<Vec<_>>());
    assert_eq!(first, second);
    assert!(first.contains(&true) && first.contains(&false), "{first:?}");
    assert_eq!(first_stats.fault_sequence(), second_stats.fault_sequence());
    let heads: Vec<Option<&str>> =
        first_stats.events.iter().filter(|e| e.method == "HEAD").map(|e| e.fault).collect();
    assert_eq!(heads, expected.iter().map(|f| f.map(|f| f.name())).collect::<Vec<_>>());
    assert_eq!(first_stats.requests, 32);
    assert_eq!(
        first_stats.total_faults(),
        expected.iter().flatten().count(),
        "{:?}",
        first_stats.faults
    );
}

/// The framing the SDK does not exercise against moto: a chunked request and response,
/// `Expect: 100-continue` (answered by the proxy, the upstream's own 100 swallowed), a HEAD
/// response announcing a length it does not carry, and a close-delimited response. Bytes
/// pass verbatim both ways.
#[test]
fn raw_http_framing_passes_verbatim() {
    let requests: [&[u8]; 4] = [
        b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"PUT /expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
        b"HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    let responses: [&[u8]; 4] = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    ];

    // The scripted upstream: one connection, reads each request in full, answers.
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream_port = upstream.local_addr().expect("addr").port();
    let (received_tx, received) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = upstream.accept() else { return };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        for (request, response) in requests.iter().zip(responses) {
            let mut got = vec![0; request.len()];
            if conn.read_exact(&mut got).is_err() || received_tx.send(got).is_err() {
                return;
            }
            let _ = conn.write_all(response);
        }
        // Dropping `conn` closes: the end of the close-delimited body.
    });

    let proxy = FaultProxy::start(upstream_port, FaultPlan::none());
    let mut client = TcpStream::connect(("127.0.0.1", proxy.port)).expect("connect");
    client.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let read_exact = |client: &mut TcpStream, len: usize| {
        let mut buf = vec![0; len];
        client.read_exact(&mut buf).expect("response bytes");
        String::from_utf8(buf).expect("utf-8")
    };

    client.write_all(requests[0]).expect("send");
    assert_eq!(read_exact(&mut client, responses[0].len()).as_bytes(), responses[0]);

    // Send the head, wait for the proxy's 100 Continue, then the body.
    let (head, body) = requests[1].split_at(requests[1].len() - 5);
    client.write_all(head).expect("send head");
    assert_eq!(read_exact(&mut client, 25), "HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(body).expect("send body");
    let final_response = &responses[1][25..];
    assert_eq!(read_exact(&mut client, final_response.len()).as_bytes(), final_response);

    client.write_all(requests[2]).expect("send");
    assert_eq!(read_exact(&mut client, responses[2].len()).as_bytes(), responses[2]);

    client.write_all(requests[3]).expect("send");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("read to the close");
    assert_eq!(rest, responses[3], "close-delimited body relayed, then the proxy closes");

    for request in requests {
        assert_eq!(received.recv().expect("upstream got it"), request, "forwarded verbatim");
    }
    let stats = proxy.stats();
    assert_eq!((stats.connections, stats.requests, stats.expect_continue), (1, 4, 1));
}

#[tokio::test]
async fn delay_answers_late_and_flip_last_byte_alters_only_the_last_byte() {
    let delay = Duration::from_millis(300);
    let (_moto, direct, proxy, client) =
        setup(FaultPlan::always(Methods::Writes, Fault::Delay(delay))).await;
    let started = std::time::Instant::now();
    put(&client, "late", b"abc").await.expect("a delayed PUT still succeeds");
    assert!(started.elapsed() >= delay, "answered after {:?}", started.elapsed());
    assert_eq!(get(&direct, "late").await.as_deref(), Some(&b"abc"[..]));
    assert_eq!(proxy.stats().injected("Delay"), 1);

    let data = bytes(100_000, 9);
    put_direct(&direct, "k", &data).await;
    proxy.set_plan(FaultPlan::always(Methods::Reads, Fault::FlipLastByte));
    // Read raw with a presigned URL (the SDK would refuse the altered body on its CRC32
    // before the test saw it).
    let presigned = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(60))
                .expect("presigning config"),
        )
        .await
        .expect("presigned");
    let address = proxy.endpoint().trim_start_matches("http://").to_string();
    let target = presigned.uri().trim_start_matches(proxy.endpoint().as_str()).to_string();
    let mut stream = TcpStream::connect(&address).expect("connect");
    write!(stream, "GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("response");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    let got = &raw[split..];
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&raw[..split]));
    assert_eq!(got.len(), data.len());
    assert_eq!(got[..data.len() - 1], data[..data.len() - 1]);
    assert_eq!(got[data.len() - 1], data[data.len() - 1] ^ 0xff);
    assert_eq!(proxy.stats().injected("FlipLastByte"), 1);
}
