//! Serving the routes: the profiles' edge memory read back from the journal first, then the
//! capped, idle-timed listener (with TLS when configured), until
//! shutdown, then a short grace for the requests in hand (each is answered only after its
//! commit, so a request cut off here was never acknowledged and the cloud sends it again).

use std::net::SocketAddr;
use std::sync::Arc;

use atgw_sdk::Shutdown;
use atgw_sdk::listener::{Capped, TlsListener};
use axum::serve::ListenerExt;

use crate::config::Config;
use crate::server::{GRACE, Shared};

pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    shutdown: Shutdown,
) {
    let name = config.name.clone();
    // The profiles' edge memory, as last committed, before the first request is read.
    let edges = shared.ingest.load_state_retrying(&shutdown).await;
    if shutdown.is_cancelled() {
        return;
    }
    if let Ok(mut held) = shared.edges.lock() {
        *held = edges;
    }
    // Each wait for a slot is counted (`atgw_rejected_total{reason="connections_capped"}`).
    let health = shared.health.clone();
    let capped = Capped::new(listener, config.max_connections, config.idle_timeout)
        .labelled(format!("adapter {name}"))
        .on_cap(Arc::new(move |_| health.rejected("connections_capped")));
    let app = axum::Router::new()
        .fallback(crate::server::handle)
        .with_state(shared)
        .into_make_service_with_connect_info::<SocketAddr>();
    let stop = shutdown.clone();
    let graceful = async move { stop.cancelled().await };
    let nodelay = |tcp: &tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    };
    let served = async {
        match tls {
            None => {
                let l = capped.tap_io(move |io| nodelay(io.tcp()));
                axum::serve(l, app).with_graceful_shutdown(graceful).await
            }
            Some(tls) => match TlsListener::new(capped, tls) {
                Ok(l) => {
                    let l = l.tap_io(move |io| nodelay(io.get_ref().0.tcp()));
                    axum::serve(l, app).with_graceful_shutdown(graceful).await
                }
                Err(e) => Err(e),
            },
        }
    };
    tokio::select! {
        r = served => if let Err(e) = r {
            tracing::error!(adapter = %name, "HTTP listener stopped: {e}");
        },
        _ = async { shutdown.cancelled().await; tokio::time::sleep(GRACE).await } => {
            tracing::warn!(adapter = %name, "requests still open {GRACE:?} after shutdown; closing them unanswered (their senders retry)");
        }
    }
}
