//! A TCP proxy that can leave the connections it holds half-open.
//!
//! A failover, a dead host or a network partition leaves a client with a
//! connection that neither fails nor answers, while a new connection
//! reaches the new server. No database server does that on demand; this
//! proxy does it at the TCP level: [`TcpProxy::freeze_open_connections`]
//! stops every byte of the connections open at that moment (their sockets
//! stay open, so the client's kernel sees a live peer), and connections
//! made afterwards pass as before.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::Error;

/// Bytes copied at once.
const CHUNK: usize = 16 * 1024;

/// A running proxy in front of one TCP upstream.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    /// The generation whose connections are frozen: every connection of
    /// an earlier or equal generation.
    frozen_through: watch::Sender<u64>,
    generation: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts a proxy on a free 127.0.0.1 port forwarding to `upstream`.
    /// Needs a Tokio runtime.
    pub async fn start(upstream: SocketAddr) -> Result<TcpProxy, Error> {
        Self::start_at(([127, 0, 0, 1], 0).into(), upstream).await
    }

    /// [`TcpProxy::start`] on `listen` (a port that a test saw closed, to
    /// open it later: a server that comes up).
    pub async fn start_at(listen: SocketAddr, upstream: SocketAddr) -> Result<TcpProxy, Error> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| Error::io("binding the TCP proxy", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the TCP proxy's address", e))?;
        let (frozen_through, frozen) = watch::channel(0);
        // Generation 1 is the first; 0 is frozen from the start, so
        // nothing is.
        let generation = Arc::new(AtomicU64::new(1));
        let task = tokio::spawn(accept_loop(listener, upstream, frozen, generation.clone()));
        Ok(TcpProxy {
            addr,
            frozen_through,
            generation,
            task,
        })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops all traffic on the connections open now, for good; later
    /// connections are not affected.
    pub fn freeze_open_connections(&self) {
        let current = self.generation.fetch_add(1, Ordering::SeqCst);
        self.frozen_through.send_replace(current);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    frozen: watch::Receiver<u64>,
    generation: Arc<AtomicU64>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let born = generation.load(Ordering::SeqCst);
        let frozen = frozen.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let up = copy(client_read, server_write, born, frozen.clone());
            let down = copy(server_read, client_write, born, frozen);
            tokio::join!(up, down);
        });
    }
}

/// Copies until either side ends, or forever once this connection's
/// generation is frozen (holding both sockets open).
async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    born: u64,
    mut frozen: watch::Receiver<u64>,
) {
    let mut buffer = vec![0; CHUNK];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = frozen.wait_for(|through| *through >= born) => break,
        };
        let Some(chunk) = read
            .ok()
            .and_then(|n| buffer.get(..n))
            .filter(|c| !c.is_empty())
        else {
            let _ = to.shutdown().await;
            return;
        };
        if *frozen.borrow() >= born || to.write_all(chunk).await.is_err() {
            break;
        }
    }
    // Frozen: keep both halves open and pass nothing.
    let _open = (from, to);
    std::future::pending::<()>().await;
}
