//! The SCAIP receiver's SIP over TLS (`sips:`) in the real binary, on loopback: `atgw simulate
//! scaip --tls` (a separate process) authenticates by client certificate and digest, and its
//! alarms are journaled with the registry's room; a unit without a certificate the site's CA
//! signed, and a unit speaking plain SIP to the TLS port, make no event.
//!
//! SIPp over TLS is not tested: Debian's `sip-tester` 3.6.1 is built without OpenSSL
//! (`-t l1` answers "To use a TLS transport you must compile SIPp with OpenSSL").

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use atgw_scaip::simulator::{SimTransport, SimulatorConfig, Step, simulate};
use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "s3cret-unit-678";

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `{prefix}-ca.pem`, and signed by it `{prefix}-server.{pem,key}` (127.0.0.1) and
/// `{prefix}-unit.{pem,key}`.
fn make_pki(dir: &Path, prefix: &str) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{prefix} test CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    write(&dir.join(format!("{prefix}-ca.pem")), &ca.pem(), 0o644);
    for (name, sans) in [("server", vec!["localhost".to_string()]), ("unit", vec![])] {
        let mut params = CertificateParams::new(sans).unwrap();
        if name == "server" {
            params
                .subject_alt_names
                .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        } else {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "unit-678");
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        write(
            &dir.join(format!("{prefix}-{name}.pem")),
            &cert.pem(),
            0o644,
        );
        write(
            &dir.join(format!("{prefix}-{name}.key")),
            &key.serialize_pem(),
            0o600,
        );
    }
}

fn tls_config(dir: &Path, port: u16) -> String {
    let pw = write_secret(&dir.join("unit-678.pass"), &format!("{PASSWORD}\n"));
    let d = dir.display();
    format!(
        r#"
[gateway]
id = "gw-test"
site = "oakview"
data_dir = "{d}/state"
profiles_dir = "{profiles}"

[[sink]]
name = "audit"
type = "file"
path = "{d}/events.jsonl"

[[adapter]]
name = "units"
type = "scaip"
listen_tls = "127.0.0.1:{port}"
tls = {{ cert_file = "{d}/site-server.pem", key_file = "{d}/site-server.key", client_ca_file = "{d}/site-ca.pem" }}
accounts = [{{ user = "678", password_file = "{pw}" }}]

[[device]]
id = "unit-678"
adapter = "units"
match = {{ cid = "678" }}
location = {{ area = "east", room = "12" }}
"#,
        profiles = profiles_dir().display(),
        pw = pw.display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_over_tls_with_a_client_certificate_is_answered_and_journaled_and_units_without_one_are_not()
 {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_pki(d, "site");
    make_pki(d, "rogue");
    let port = free_tcp_udp_port();
    let gw = Gateway::start(d, &tls_config(d, port));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until_async(Duration::from_secs(20), || {
        std::net::TcpStream::connect(addr).is_ok()
    })
    .await
    .unwrap_or_else(|_| panic!("the TLS listener never listened:\n{}", gw.log_text()));

    // atgw's own unit, a separate process, as an installer would run it.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["simulate", "scaip", "--tls", "--target", &addr.to_string()])
        .arg("--ca-file")
        .arg(d.join("site-ca.pem"))
        .arg("--cert-file")
        .arg(d.join("site-unit.pem"))
        .arg("--key-file")
        .arg(d.join("site-unit.key"))
        .arg("--password-file")
        .arg(d.join("unit-678.pass"))
        .args(["--dty", "5", "--count", "2", "--update", "--reset"])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("atgw simulate finished")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{}", gw.log_text());
    let falls = gw.column::<String>("SELECT json FROM events WHERE kind = 'fall' ORDER BY seq");
    assert_eq!(falls.len(), 6, "2 alarms, 2 updates, 2 resets: {text}");
    let first: serde_json::Value = serde_json::from_str(&falls[0]).unwrap();
    assert_eq!(first["data"]["location"]["room"], "12");
    assert_eq!(first["data"]["device"]["id"], "unit-678");

    // A unit whose certificate another CA signed, and one with none: no handshake, no event.
    for client in [Some("rogue"), None] {
        let mut unit = SimulatorConfig::new(addr, "678");
        unit.transport = SimTransport::Tls;
        unit.password = Some(PASSWORD.into());
        unit.steps = vec![Step::Alarm];
        unit.timeout = Duration::from_secs(3);
        let (cert, key) = client
            .map(|p| {
                (
                    d.join(format!("{p}-unit.pem")),
                    d.join(format!("{p}-unit.key")),
                )
            })
            .unzip();
        unit.tls = Some(
            atgw_scaip::tls::client_config(
                &d.join("site-ca.pem"),
                cert.as_deref().zip(key.as_deref()),
            )
            .unwrap(),
        );
        let refused = match simulate(unit).await {
            Err(_) => true,
            Ok(r) => r.good() == 0,
        };
        assert!(refused, "a unit with {client:?} certificate was served");
    }

    // Plain SIP on the TLS port: not answered as SIP.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    let msg = format!(
        "MESSAGE sip:arc@{addr} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKplain\r\nFrom: <sip:678@127.0.0.1>;tag=p\r\nTo: <sip:arc@{addr}>\r\nCall-ID: plain\r\nCSeq: 1 MESSAGE\r\nContent-Type: application/scaip+xml\r\nContent-Length: 0\r\n\r\n"
    );
    plain.write_all(msg.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let got = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut buf)).await;
    if let Ok(Ok(n)) = got {
        assert!(
            !String::from_utf8_lossy(&buf[..n]).contains("SIP/2.0"),
            "plain SIP answered on the TLS port"
        );
    }
    assert_eq!(
        gw.column::<String>("SELECT json FROM events WHERE kind = 'fall'")
            .len(),
        6,
        "no event from the refused units"
    );
}
