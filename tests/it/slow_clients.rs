//! Issue 12, point 5: slow and numerous clients cannot hold the gateway. Heads
//! and bodies have time limits, connections a cap, and a signed order is
//! answered promptly beside hundreds of trickling sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Sends `head` one byte every `every` (and then `body` the same way) until
/// the server closes the connection; returns how long it stayed open.
async fn trickle(addr: std::net::SocketAddr, head: Vec<u8>, every: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let (mut read, mut write) = stream.split();
    let mut buf = [0u8; 512];
    let mut bytes = head.into_iter().chain(std::iter::repeat(b'x'));
    loop {
        tokio::select! {
            n = read.read(&mut buf) => {
                // An answer (status 3 for a late body) or EOF: either way the
                // server is done with us once it closes.
                match n {
                    Ok(0) | Err(_) => return Some(started.elapsed()),
                    Ok(_) => continue,
                }
            }
            _ = tokio::time::sleep(every) => {
                let byte = bytes.next().unwrap_or(b'x');
                if write.write_all(&[byte]).await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
}

#[tokio::test]
async fn trickling_clients_are_cut_off_and_do_not_delay_a_signed_order() {
    let app = Arc::new(
        spawn_app_with(|s| {
            s.gateway.header_timeout = Duration::from_secs(3);
            s.gateway.body_timeout = Duration::from_secs(3);
        })
        .await,
    );
    let addr = app.addr;
    let started = Instant::now();
    let mut sockets = Vec::new();
    for i in 0..500 {
        // Half trickle the request line and headers, half a body after a full head.
        let head = if i % 2 == 0 {
            b"POST /v1/openapi/order/wechat/coupons HTTP/1.1\r\nHost: x\r\n".to_vec()
        } else {
            b"POST /v1/openapi/order/wechat/coupons HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{".to_vec()
        };
        sockets.push(tokio::spawn(trickle(addr, head, Duration::from_millis(200))));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    let answer = app.order("amid-trickles").await;
    let took = sent.elapsed();
    assert_eq!(answer["status"], 0, "{answer}");
    println!("signed order answered in {took:?} beside 500 trickling sockets");
    assert!(took < Duration::from_secs(1), "order took {took:?}");

    let mut open_for = Vec::new();
    for socket in sockets {
        let lasted = tokio::time::timeout(Duration::from_secs(15), socket).await;
        let lasted = lasted.expect("the server closes every trickling socket").expect("task");
        open_for.push(lasted.expect("connected"));
    }
    let longest = open_for.iter().max().copied().unwrap_or_default();
    println!("500 trickling sockets closed; the last after {longest:?} ({:?} since the first)", started.elapsed());
    assert!(longest < Duration::from_secs(6), "closed after the 3 s limit, not later: {longest:?}");
    stop_shared(app).await;
}

#[tokio::test]
async fn past_the_connection_cap_a_connection_is_closed_at_once() {
    let app = spawn_app_with(|s| {
        s.gateway.max_connections = 20;
        s.gateway.header_timeout = Duration::from_secs(2);
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(app.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = TcpStream::connect(app.addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_millis(500), extra.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the 21st connection is closed at once: {closed:?}");
    let metrics = reqwest::get(app.url("/metrics")).await;
    // The cap is full, so even /metrics waits for the idle ones to time out.
    assert!(metrics.is_err() || metrics.is_ok_and(|r| r.status().is_success()));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let text = reqwest::get(app.url("/metrics")).await.expect("metrics").text().await.expect("text");
    assert!(text.contains("lijian_http_connections_refused_total"), "{text}");
    assert_eq!(app.order("after-cap").await["status"], 0, "idle connections timed out and freed their slots");
    drop(idle);
    app.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_slow_body() {
    let app = spawn_app_with(|s| {
        s.gateway.header_timeout = Duration::from_secs(60);
        s.gateway.body_timeout = Duration::from_secs(60);
        s.process.shutdown_grace = Duration::from_secs(1);
    })
    .await;
    let head = b"POST /v1/openapi/order/wechat/coupons HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{".to_vec();
    let slow = tokio::spawn(trickle(app.addr, head, Duration::from_millis(200)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = Instant::now();
    app.stop().await;
    let took = stopping.elapsed();
    println!("gateway stopped {took:?} after shutdown began, a slow body in flight");
    assert!(took < Duration::from_secs(4), "shutdown waited on the slow body: {took:?}");
    let _ = tokio::time::timeout(Duration::from_secs(5), slow).await;
}
