//! The sms sink over TLS to the SMPP peer (the npm `smpp` package's TLS server), with a private
//! CA in `ca_file`; and a server whose certificate the CA did not sign is never bound.

mod common;

use std::path::Path;

use atgw_sdk::sink::Outcome;
use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA and a `localhost` certificate it signed, written to `dir`: (ca, cert, key).
fn pki(dir: &Path, tag: &str) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let paths = (
        dir.join(format!("{tag}-ca.pem")),
        dir.join(format!("{tag}-cert.pem")),
        dir.join(format!("{tag}-key.pem")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    paths
}

#[tokio::test]
async fn a_tls_session_with_a_private_ca_delivers() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(tmp.path(), "smsc");
    let smsc = Smsc::start_with(&[&cert, &key]).await;
    let mut cfg = config(
        smsc.port,
        password_file(tmp.path(), PASSWORD),
        &NUMBERS[..1],
    );
    cfg.host = "localhost".into();
    cfg.tls = true;
    cfg.ca_file = Some(ca);
    let mut sink = start(cfg).await;
    sink.to_sink
        .send(alert_delivery(1, 0, "Fall"))
        .await
        .unwrap();
    assert_eq!(sink.next_outcome().await, Outcome::Delivered(1));
    assert_eq!(smsc.wait_for("submit", 1).await[0]["data_coding"], 0);
    smsc.wait_for("receipt_acked", 1).await;
    sink.stop().await;
    smsc.stop().await;
}

#[tokio::test]
async fn a_server_the_ca_did_not_sign_is_never_sent_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, cert, key) = pki(tmp.path(), "smsc");
    let (other_ca, _, _) = pki(tmp.path(), "other");
    let smsc = Smsc::start_with(&[&cert, &key]).await;
    let mut cfg = config(
        smsc.port,
        password_file(tmp.path(), PASSWORD),
        &NUMBERS[..1],
    );
    cfg.host = "localhost".into();
    cfg.tls = true;
    cfg.ca_file = Some(other_ca);
    let mut sink = start(cfg).await;
    sink.to_sink
        .send(alert_delivery(1, 0, "Fall"))
        .await
        .unwrap();
    match sink.next_outcome().await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("TLS"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let h = sink.health.snapshot();
    assert!(!h.connected && h.errors >= 1, "{h:?}");
    assert!(
        smsc.events("bind").is_empty(),
        "no bind over an untrusted TLS session"
    );
    sink.stop().await;
    smsc.stop().await;
}
