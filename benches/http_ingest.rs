//! `cargo bench --bench http_ingest`: a vendor cloud (`atgw simulate http`'s client, Netlia's
//! signed-by-key SOS presses, each with a fresh `EventId`) posting webhooks over HTTPS to
//! atgw's HTTP ingest adapter (route → profile → journal, durable → file sink), `concurrency`
//! requests in flight. Reports webhooks/s acknowledged (2xx, each only after its commit) and
//! the request → answer latency p50/p99.
//!
//! The floor, measured in the same run with the same client, certificate and concurrency: a
//! bare HTTPS responder in its own runtime (two worker threads, as the daemon's) on the same
//! SDK listener (capped, rustls), which reads the body and answers `200` at once: no route,
//! no authentication, no mapping, no journal. atgw's figure over the floor's is what those
//! cost, the durable commit before every answer above all.
//!
//! `BENCH_HTTP_CONCURRENCY` (a comma list, default `1,16`), `BENCH_HTTP_REQUESTS` (per run,
//! 2000), `BENCH_RUNS` (3).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use atgw_http_ingest::simulator::{Report, Run, Vendor, run};
use common::*;

const KEY: &str = "bench-api-key";

struct Figures {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
}

fn figures(r: &Report) -> Figures {
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    Figures {
        per_sec: r.ok as f64 / r.elapsed.as_secs_f64().max(1e-9),
        p50_ms: ms(r.percentile(0.50)),
        p99_ms: ms(r.percentile(0.99)),
        failed: r.failed.values().sum(),
    }
}

/// A CA and a server certificate for 127.0.0.1, as PEM files in `dir`.
fn pki(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let key = KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    secret(&dir.join("server.key"), &key.serialize_pem());
}

fn secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn client(dir: &Path) -> reqwest::Client {
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn drive(rt: &tokio::runtime::Runtime, dir: &Path, port: u16, n: u64, c: usize) -> Report {
    rt.block_on(run(Run {
        vendor: Vendor::Netlia,
        base: format!("https://127.0.0.1:{port}"),
        secret: KEY.into(),
        client: client(dir),
        count: n,
        concurrency: c,
        run_id: uuid::Uuid::now_v7().simple().to_string(),
    }))
    .expect("the simulator runs")
}

/// The bare responder: the same listener, an answer without any work.
fn floor_server(dir: &Path) -> (tokio::runtime::Runtime, u16) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tls =
        atgw_sdk::listener::server_config(&dir.join("server.pem"), &dir.join("server.key"), None)
            .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        let capped = atgw_sdk::listener::Capped::new(listener, 256, Duration::from_secs(60));
        let l = atgw_sdk::listener::TlsListener::new(capped, Arc::new(tls)).unwrap();
        let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
            std::hint::black_box(body);
            (axum::http::StatusCode::OK, "{\"ids\":[]}")
        });
        let _ = axum::serve(l, app).await;
    });
    (rt, port)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let concurrency: Vec<usize> = std::env::var("BENCH_HTTP_CONCURRENCY")
        .unwrap_or_else(|_| "1,16".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let n: u64 = env_or("BENCH_HTTP_REQUESTS", 2000);
    let runs = runs();
    let rt = runtime();
    println!(
        "http_ingest: {n} webhooks per run, {runs} runs, concurrency {concurrency:?}, binary {}",
        atgw_bin().display()
    );
    let scratch_dir = scratch("http_ingest");
    let dir = scratch_dir.path();
    pki(dir);
    secret(&dir.join("netlia.key"), KEY);
    let (floor_rt, floor_port) = floor_server(dir);
    let mut results = Vec::new();
    for &c in &concurrency {
        let (mut atgw_runs, mut floor_runs) = (Vec::new(), Vec::new());
        for r in 0..runs {
            let data = dir.join(format!("c{c}-r{r}"));
            std::fs::create_dir_all(&data).unwrap();
            let port = atgw::tools::mosquitto::free_port().unwrap();
            let config = format!(
                "{}\n[[adapter]]\nname = \"clouds\"\ntype = \"http\"\nlisten = \"127.0.0.1:{port}\"\n\
                 tls = {{ cert_file = \"{d}/server.pem\", key_file = \"{d}/server.key\" }}\n\
                 requests_per_sec = 1000000\n\n[[adapter.route]]\npath = \"/netlia\"\nprofiles = [\"netlia\"]\n\
                 auth = {{ scheme = \"api_key\", secret_file = \"{d}/netlia.key\" }}\ndedupe = \"EventId\"\n{}",
                gateway_section(&data.join("state")),
                file_sink(&data.join("events.jsonl")),
                d = dir.display(),
            );
            let g = Gateway::start(&data, &config);
            // Floor and atgw alternate within a run, so both see the same box.
            let floor = drive(&rt, dir, floor_port, n, c);
            let atgw = drive(&rt, dir, port, n, c);
            g.stop();
            let journaled: i64 = rusqlite::Connection::open(data.join("state/atgw.db"))
                .and_then(|db| {
                    db.query_row(
                        "SELECT count(*) FROM events WHERE kind = 'pendant_press'",
                        [],
                        |r| r.get(0),
                    )
                })
                .unwrap_or(-1);
            let (a, f) = (figures(&atgw), figures(&floor));
            println!(
                "  concurrency {c} run {r}: atgw {:.0}/s p50 {:.2} p99 {:.2} ms ({} failed, {journaled} journaled); floor {:.0}/s p50 {:.2} p99 {:.2} ms",
                a.per_sec, a.p50_ms, a.p99_ms, a.failed, f.per_sec, f.p50_ms, f.p99_ms
            );
            assert_eq!(a.failed, 0, "every webhook acknowledged");
            assert_eq!(
                journaled, n as i64,
                "every acknowledged webhook journaled once"
            );
            atgw_runs.push(a);
            floor_runs.push(f);
        }
        let s = |v: &[Figures], f: fn(&Figures) -> f64| {
            summary(&v.iter().map(f).collect::<Vec<_>>()).json()
        };
        results.push(serde_json::json!({
            "concurrency": c,
            "atgw": {
                "webhooks_per_sec": s(&atgw_runs, |f| f.per_sec),
                "p50_ms": s(&atgw_runs, |f| f.p50_ms),
                "p99_ms": s(&atgw_runs, |f| f.p99_ms),
            },
            "floor": {
                "webhooks_per_sec": s(&floor_runs, |f| f.per_sec),
                "p50_ms": s(&floor_runs, |f| f.p50_ms),
                "p99_ms": s(&floor_runs, |f| f.p99_ms),
            },
        }));
    }
    drop(floor_rt);
    emit(serde_json::json!({
        "bench": "http_ingest",
        "requests_per_run": n,
        "runs": runs,
        "machine": machine(),
        "results": results,
    }));
}
