//! The sinks' side of the fault-injection suite: the carers' webhook ([`Hook`]), which records
//! every request, answers with a settable status, and can be taken down and brought back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;

/// The carers' webhook: records every request and answers with a settable status; can be taken
/// down (connection refused) and brought back on the same port.
pub(crate) struct Hook {
    pub(crate) addr: SocketAddr,
    pub(crate) status: Arc<AtomicU16>,
    /// (webhook-id, status answered, body).
    pub(crate) got: Arc<Mutex<Vec<(String, u16, Value)>>>,
    pub(crate) server: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Hook {
    pub(crate) async fn start() -> Hook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut h = Hook {
            addr: listener.local_addr().unwrap(),
            status: Arc::new(AtomicU16::new(200)),
            got: Arc::default(),
            server: None,
        };
        h.serve(listener);
        h
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub(crate) fn serve(&mut self, listener: tokio::net::TcpListener) {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, StatusCode};
        let (status, got) = (self.status.clone(), self.got.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (status, got) = (status.clone(), got.clone());
                async move {
                    let answered = status.load(Ordering::SeqCst);
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let json = serde_json::from_slice(&body).unwrap_or_default();
                    got.lock().unwrap().push((id, answered, json));
                    StatusCode::from_u16(answered).unwrap_or(StatusCode::OK)
                }
            }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        self.server = Some((tx, task));
    }

    /// Stops listening and closes its connections: atgw now sees "connection refused".
    pub(crate) async fn down(&mut self) {
        if let Some((tx, task)) = self.server.take() {
            let _ = tx.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Listens again on the same address.
    pub(crate) async fn up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.set_reuseaddr(true).unwrap();
            match s.bind(self.addr).and_then(|()| s.listen(128)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("webhook receiver: rebinding {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Event ids answered 2xx, with their bodies.
    pub(crate) fn delivered(&self) -> Vec<(String, Value)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s, _)| *s < 300)
            .map(|(id, _, v)| (id.clone(), v.clone()))
            .collect()
    }

    pub(crate) fn refused_answers(&self) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s, _)| *s >= 300)
            .count()
    }
}
