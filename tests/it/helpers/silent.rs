//! A server that accepts TCP and then says nothing: what a broker out of file
//! handles looks like to a client.

use std::net::SocketAddr;

/// Accepts connections and keeps them open without ever writing a byte.
pub struct SilentListener {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SilentListener {
    pub async fn start() -> SilentListener {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind silent listener");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        SilentListener { addr, task }
    }

    /// `url` with its host:port replaced by this listener's.
    pub fn route(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) =
            rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
        let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
