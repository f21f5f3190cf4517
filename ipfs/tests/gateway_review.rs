//! Attacks on the gateway's admission queue over real connections (127.0.0.1), from a second
//! review of issue 12 item 6: a queued request whose client went away gives its place back.
#![cfg(all(feature = "server", feature = "client"))]

mod net_support;

use std::time::Duration;

use net_support::fixture;
use otaledger_ipfs::gateway::GatewayConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Larger than what the kernel buffers between a gateway and a client that reads nothing and
/// shrank its receive buffer (the gateway's send buffer grows to `tcp_wmem`'s maximum, 4 MiB by
/// default), so the stream stalls and keeps its slot.
const BIG: usize = 12 << 20;

async fn send_get(addr: std::net::SocketAddr, path: &str, small_buffer: bool) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if small_buffer {
        socket.set_recv_buffer_size(4096).unwrap();
    }
    let mut stream = socket.connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream
}

/// The status line and the whole answer of a request sent with [`send_get`].
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

/// A request waiting for a slot holds a place in its client's queue; when its client closes the
/// connection the place is given back at once, not after the queue timeout (60 s here). Every
/// connection comes from 127.0.0.1, so all count as one client with 1 slot and 1 queued request.
#[tokio::test]
async fn a_queued_request_whose_client_left_gives_its_place_back() {
    let fx = fixture(BIG);
    let config = GatewayConfig {
        max_concurrent_requests: 1,
        max_requests_per_client: 1,
        max_queued_requests: 1,
        max_queued_per_client: 1,
        queue_timeout: Duration::from_secs(60),
        ..GatewayConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(otaledger_ipfs::serve(
        listener,
        fx.store.clone(),
        config,
        async {
            let _ = stop_rx.await;
        },
    ));
    let car = format!("/ipfs/{}?format=car", fx.root);
    let raw = format!("/ipfs/{}?format=raw", fx.root);

    // A holds the only slot with a CAR stream it does not read.
    let mut a = send_get(addr, &car, true).await;
    let mut head = [0u8; 12];
    a.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // B waits for the slot.
    let b = send_get(addr, &raw, false).await;
    // Once B is queued, the client's queue is full: a probe is refused at once. Polled (bounded)
    // because B's request reaches the gateway on its own schedule.
    let mut b_queued = false;
    for _ in 0..200 {
        let mut probe = send_get(addr, &raw, false).await;
        let answer = read_answer(&mut probe).await;
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        if answer.contains("1 requests of this client in flight or queued") {
            // Only A: B is not queued yet.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        assert!(
            answer.contains("2 requests of this client in flight or queued"),
            "{answer}"
        );
        b_queued = true;
        break;
    }
    assert!(b_queued, "B never reached the queue");

    // B goes away. Its place is freed: a new request C is queued instead of refused (polled,
    // bounded, while the gateway notices the closed connection).
    drop(b);
    let mut c = None;
    for _ in 0..200 {
        let mut probe = send_get(addr, &raw, false).await;
        match tokio::time::timeout(Duration::from_millis(300), read_answer(&mut probe)).await {
            Ok(answer) => {
                assert!(
                    answer.contains("2 requests of this client in flight or queued"),
                    "{answer}"
                );
            }
            Err(_) => {
                c = Some(probe);
                break;
            }
        }
    }
    let mut c = c.expect("the place of a client that left was never given back");
    // A leaves too: C gets the slot and its block.
    drop(a);
    let answer = read_answer(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

/// Request heads are bounded by hyper: a header line without end, or too many headers, is
/// refused (431, or the connection closed) after a bounded read, never buffered whole.
#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let fx = fixture(1000);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(otaledger_ipfs::serve(
        listener,
        fx.store.clone(),
        GatewayConfig::default(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let raw = format!("/ipfs/{}?format=raw", fx.root);
    // One header line of up to 8 MiB, written in 64 KiB pieces until the gateway stops taking it.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {raw} HTTP/1.1\r\nHost: gw\r\nX-Long: ").as_bytes())
        .await
        .unwrap();
    let piece = vec![b'a'; 64 * 1024];
    let mut written = 0usize;
    for _ in 0..128 {
        match tokio::time::timeout(Duration::from_secs(5), s.write_all(&piece)).await {
            Ok(Ok(())) => written += piece.len(),
            // Refused (reset) or no longer read: either way the gateway stopped taking it.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert!(written < 8 << 20, "the gateway took the whole 8 MiB header");

    // 200 short headers: more than hyper's 100.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {raw} HTTP/1.1\r\nHost: gw\r\n");
    for i in 0..200 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let answer = read_answer(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // The gateway still serves.
    let mut s = send_get(addr, &raw, false).await;
    assert!(read_answer(&mut s).await.starts_with("HTTP/1.1 200"));
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
