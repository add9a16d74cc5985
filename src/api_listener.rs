//! The local API's connection cap, as the core alarms it: each time the listener
//! ([`atgw_sdk::listener::Capped`]) finds every slot taken it is counted
//! (`atgw_api_connections_capped_total`), and the first time each run it is raised as a gateway
//! alert (`gateway:<id>:api_connections`): a full API is either an attack from the LAN or a
//! client leaking connections, and either way someone should look.

use std::sync::Arc;

use atgw_sdk::listener::OnCap;

/// Who hears that the cap was reached: the metrics every time, and once per run the journal,
/// as a gateway alert.
#[derive(Clone, Debug)]
pub struct CapAlarm {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub writer: crate::journal::WriterHandle,
    pub gateway_id: String,
    pub max: usize,
}

impl CapAlarm {
    fn raise(&self) {
        let d = crate::gateway_alerts::cap_reached(
            &self.gateway_id,
            "api_connections",
            format!(
                "Local API reached max_connections ({}); new clients wait (something holds connections open)",
                self.max
            ),
            "api_connections_capped",
        );
        self.writer.send(crate::journal::WriterCmd::Gateway {
            draft: Box::new(d),
            reply: None,
        });
    }

    /// The listener's callback.
    pub fn on_cap(self) -> OnCap {
        Arc::new(move |first| {
            self.metrics.api_connections_capped();
            if first {
                self.raise();
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atgw_sdk::listener::Capped;
    use axum::serve::Listener;
    use std::time::Duration;
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn reaching_the_cap_is_counted_each_time_and_alerted_once() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new(&[], &[]));
        let (writer, mut cmds) = crate::journal::writer::test_handle();
        let alarm = CapAlarm {
            metrics: metrics.clone(),
            writer,
            gateway_id: "gw-test".into(),
            max: 1,
        };
        let mut capped = Capped::new(l, 1, Duration::from_secs(60)).on_cap(alarm.on_cap());
        let _a = TcpStream::connect(addr).await.unwrap();
        let (first, _) = capped.accept().await;
        for _ in 0..3 {
            let _b = TcpStream::connect(addr).await.unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(50), capped.accept()).await;
            assert!(waited.is_err(), "the cap holds");
        }
        let counted = metrics.encode().unwrap().lines().find_map(|l| {
            l.strip_prefix("atgw_api_connections_capped_total ")
                .map(str::to_owned)
        });
        assert_eq!(counted.as_deref(), Some("3"), "each wait is counted");
        let mut alerts = Vec::new();
        while let Ok(cmd) = cmds.try_recv() {
            if let crate::journal::WriterCmd::Gateway { draft, .. } = cmd {
                alerts.push(draft.data.device.id.clone());
            }
        }
        assert_eq!(
            alerts,
            ["gateway:gw-test:api_connections"],
            "one gateway alert"
        );
        drop(first);
    }
}
