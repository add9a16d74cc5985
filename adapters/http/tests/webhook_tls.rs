//! The webhook sink over real TLS: a receiver whose certificate comes from a private CA
//! (generated here) is trusted only when `ca_file` names that CA, and the system store alone
//! refuses it; a receiver that requires mutual TLS accepts the gateway's client certificate
//! (`cert_file`, `key_file`) and refuses a gateway without one. The receiver is a minimal
//! HTTP/1.1 responder behind tokio-rustls.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use atgw_http::WebhookConfig;
use atgw_sdk::sink::{Delivery, Outcome, SinkIo};
use atgw_sdk::{Health, Kind, Priority, Shutdown};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// A CA, a `localhost` server certificate chain and key signed by it, and a client
/// certificate (PEM, as an integrator would install it) signed by the same CA.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_cert_pem: String,
    client_key_pem: String,
}

fn private_pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params =
        CertificateParams::new(vec!["gw-test.atgw.invalid".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().clone(),
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// Answers every well-formed request with 204 after reading its body.
async fn https_receiver(pki: &Pki) -> SocketAddr {
    https_receiver_with(pki, false).await
}

/// As [`https_receiver`]; with `mutual`, only clients with a certificate from the CA get in.
async fn https_receiver_with(pki: &Pki, mutual: bool) -> SocketAddr {
    let builder = rustls::ServerConfig::builder();
    let builder = if mutual {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let cfg = builder
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return; // the client refused our certificate
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn delivery() -> Delivery {
    Delivery {
        outbox_id: 1,
        event_id: "0196f0c2-7b1e-7c3a-9f00-000000000001".into(),
        kind: Kind::Fall,
        priority: Priority::High,
        device_id: "pendant-12".into(),
        json: r#"{"specversion":"1.0","id":"0196f0c2-7b1e-7c3a-9f00-000000000001"}"#.into(),
        attempt: 0,
        alert_id: None,
        lifecycle: false,
        recipients: Default::default(),
    }
}

fn write_private(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Runs the sink for one delivery and returns its outcome.
async fn deliver_once(cfg: WebhookConfig) -> Outcome {
    let (tx, deliveries) = mpsc::channel(4);
    let (outcomes, mut rx) = mpsc::unbounded_channel();
    let io = SinkIo {
        deliveries,
        outcomes,
    };
    let task = tokio::spawn(atgw_http::run(
        cfg,
        io,
        Arc::new(Health::default()),
        Shutdown::new(),
    ));
    tx.send(delivery()).await.unwrap();
    let o = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an outcome within 10 s")
        .expect("the sink is running");
    drop(tx);
    let r = task.await.unwrap();
    assert!(r.is_ok(), "{r:?}");
    o
}

/// Runs the sink with nothing to deliver and returns why it refused to start.
async fn start_error(cfg: WebhookConfig) -> atgw_http::WebhookError {
    let (_tx, deliveries) = mpsc::channel(1);
    let (outcomes, _rx) = mpsc::unbounded_channel();
    let io = SinkIo {
        deliveries,
        outcomes,
    };
    atgw_http::run(cfg, io, Arc::new(Health::default()), Shutdown::new())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn https_to_a_receiver_of_the_pinned_private_ca_is_delivered() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = private_pki();
    let addr = https_receiver(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = WebhookConfig::new(
        "care",
        format!("https://localhost:{}/hook", addr.port()),
        write_private(&dir, "secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    );
    cfg.ca_file = Some(write_private(&dir, "ca.pem", &pki.ca_pem));
    cfg.ca_only = true;
    assert_eq!(deliver_once(cfg.clone()).await, Outcome::Delivered(1));
    // Added to the system store instead of replacing it: trusted all the same.
    cfg.ca_only = false;
    assert_eq!(deliver_once(cfg).await, Outcome::Delivered(1));
}

#[tokio::test]
async fn a_certificate_the_trusted_roots_do_not_vouch_for_is_a_retry() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = private_pki();
    let addr = https_receiver(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = WebhookConfig::new(
        "care",
        format!("https://localhost:{}/hook", addr.port()),
        write_private(&dir, "secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    );
    // The system store knows nothing of the private CA. (On a box without any system CA
    // bundle the sink refuses to start instead, which the error message explains.)
    match deliver_once(cfg).await {
        Outcome::Retry {
            outbox_id: 1,
            after: None,
            reason,
        } => assert!(
            reason.starts_with("cannot connect") && reason.contains("certificate"),
            "{reason}"
        ),
        other => panic!("expected Retry for an untrusted certificate, got {other:?}"),
    }
}

#[tokio::test]
async fn a_ca_file_without_certificates_stops_the_sink_at_start() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = WebhookConfig::new(
        "care",
        "https://localhost:9/hook",
        write_private(&dir, "secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    );
    cfg.ca_file = Some(write_private(&dir, "ca.pem", "not a certificate\n"));
    let e = start_error(cfg).await;
    assert!(matches!(e, atgw_http::WebhookError::CaFile { .. }), "{e}");
    assert!(e.to_string().contains("ca_file"), "{e}");
}

#[tokio::test]
async fn a_receiver_that_requires_mutual_tls_accepts_our_client_certificate_only() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = private_pki();
    let addr = https_receiver_with(&pki, true).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = WebhookConfig::new(
        "care",
        format!("https://localhost:{}/hook", addr.port()),
        write_private(&dir, "secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    );
    cfg.ca_file = Some(write_private(&dir, "ca.pem", &pki.ca_pem));
    cfg.ca_only = true;
    cfg.validate().unwrap();

    // Without a client certificate the receiver ends the handshake: retried, not delivered.
    match deliver_once(cfg.clone()).await {
        Outcome::Retry { outbox_id: 1, .. } => {}
        other => panic!("expected Retry without a client certificate, got {other:?}"),
    }

    cfg.cert_file = Some(write_private(&dir, "gw.pem", &pki.client_cert_pem));
    cfg.key_file = Some(write_private(&dir, "gw.key", &pki.client_key_pem));
    cfg.validate().unwrap();
    assert_eq!(deliver_once(cfg).await, Outcome::Delivered(1));
}

#[tokio::test]
async fn a_client_key_other_users_can_read_stops_the_sink_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = private_pki();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = WebhookConfig::new(
        "care",
        "https://localhost:9/hook",
        write_private(&dir, "secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    );
    cfg.cert_file = Some(write_private(&dir, "gw.pem", &pki.client_cert_pem));
    let key = write_private(&dir, "gw.key", &pki.client_key_pem);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    cfg.key_file = Some(key);
    let e = start_error(cfg).await;
    assert!(
        matches!(e, atgw_http::WebhookError::ClientCert { .. }),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("gw.key") && !text.contains("PRIVATE KEY"),
        "{text}"
    );
}

#[test]
fn a_client_certificate_needs_its_key_and_https() {
    let mut cfg = WebhookConfig::new("care", "https://care.example/hook", "s".into());
    cfg.cert_file = Some("gw.pem".into());
    assert_eq!(cfg.validate().unwrap_err().key, "key_file");
    cfg.key_file = Some("gw.key".into());
    cfg.validate().unwrap();
    cfg.url = "http://127.0.0.1:9/hook".into();
    cfg.allow_http = true;
    assert_eq!(cfg.validate().unwrap_err().key, "cert_file");
}
