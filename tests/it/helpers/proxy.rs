//! A TCP proxy the test controls, to cut a role off PostgreSQL or RabbitMQ without
//! stopping the shared servers other tests are using.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct TcpProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Cancelling it drops every connection currently relayed.
    generation: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

/// `host:port` in a `postgres://` or `amqp://` URL.
fn authority(url: &str) -> &str {
    let after_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let authority = after_scheme.split('/').next().unwrap_or_default();
    authority.rsplit('@').next().unwrap_or(authority)
}

impl TcpProxy {
    /// A proxy in front of the server `url` points at.
    pub async fn in_front_of(url: &str) -> TcpProxy {
        use std::net::ToSocketAddrs;
        let target = authority(url).to_socket_addrs().ok().and_then(|mut a| a.next()).expect("resolvable host:port");
        TcpProxy::start(target).await
    }

    /// The same URL, pointed at this proxy.
    pub fn route(&self, url: &str) -> String {
        url.replacen(&format!("@{}", authority(url)), &format!("@{}", self.addr), 1)
    }

    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (up2, generation2, stop2) = (up.clone(), generation.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop2.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((mut inbound, _)) = accepted else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let token = generation2.lock().expect("proxy lock").clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        TcpProxy { addr, up, generation, stop }
    }

    /// Drops every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut generation = self.generation.lock().expect("proxy lock");
        generation.cancel();
        *generation = CancellationToken::new();
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Ok(g) = self.generation.lock() {
            g.cancel();
        }
    }
}
