//! The demo's nurse-call path, ESPA 4.4.4 over TCP on loopback (so it runs on any machine): a
//! nurse-call control station pulls the cord in room 14, atgw's `nurse-call` adapter turns the
//! call into an alert, and on escalation atgw's `dect` sink pages the senior's DECT handset on
//! a paging system the demo runs; the acknowledgement takes the page off the handset (reset).
//! The pages the handset got are printed under the summary.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atgw_espa444::block::{ACK, Block, ENQ, EOT, Field, Header, NAK};
use atgw_espa444::wire::{Reader, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::timeline::Timeline;

/// The senior's DECT handset.
pub const SENIOR_HANDSET: &str = "4711";
/// When each cord is pulled (after the devices start), its call address and display text.
const PULLS: [(Duration, &str, &str); 2] = [
    (Duration::from_millis(2500), "1401", "Pull cord Room 14"),
    (Duration::from_millis(13_500), "1501", "Pull cord Room 15"),
];

/// The nurse-call path's ports and what the handset received.
pub struct NurseCall {
    /// Where atgw's adapter listens for the control station.
    calls_port: u16,
    pager: Option<TcpListener>,
    pager_port: u16,
    /// (call type, text) of each block the handset was sent.
    pages: Arc<Mutex<Vec<(String, String)>>>,
}

impl NurseCall {
    /// Binds the paging system's port and picks the adapter's.
    pub async fn bind() -> Result<NurseCall, String> {
        let pager = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen for the demo's paging system: {e}"))?;
        let pager_port = pager
            .local_addr()
            .map_err(|e| format!("cannot listen for the demo's paging system: {e}"))?
            .port();
        Ok(NurseCall {
            calls_port: crate::tools::mosquitto::free_port().map_err(|e| e.to_string())?,
            pager: Some(pager),
            pager_port,
            pages: Arc::default(),
        })
    }

    /// The config's nurse-call adapter, pull cord and paging sink (the senior route names
    /// the sink `dect`).
    pub fn config(&self) -> String {
        format!(
            r#"
[[adapter]]
name = "nurse-call"
type = "espa444"
listen = "127.0.0.1:{calls}"

[[device]]
id = "pull-cord-14"
adapter = "nurse-call"
match = {{ address = "1401" }}
location = {{ area = "north", room = "14" }}

[[device]]
id = "pull-cord-15"
adapter = "nurse-call"
match = {{ address = "1501" }}
location = {{ area = "north", room = "15" }}

[[sink]]
name = "dect"
type = "espa444"
connect = "127.0.0.1:{pager}"
to = ["{SENIOR_HANDSET}"]
reset_on_close = true
"#,
            calls = self.calls_port,
            pager = self.pager_port,
        )
    }

    pub fn line(&self) -> String {
        format!(
            "  espa    nurse-call link on 127.0.0.1:{}: pull cords 1401 and 1501 (north/14, north/15); the senior's DECT handset {SENIOR_HANDSET} on a paging system at 127.0.0.1:{}",
            self.calls_port, self.pager_port
        )
    }

    /// Runs the paging system and the control station.
    pub fn start(&mut self, started: Instant, tl: Arc<Timeline>) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some(l) = self.pager.take() {
            tasks.push(tokio::spawn(paging_system(
                l,
                self.pages.clone(),
                tl.clone(),
            )));
        }
        tasks.push(tokio::spawn(pull_cord(self.calls_port, started, tl)));
        tasks
    }

    /// Under the summary: what the senior's handset showed.
    pub fn print_summary(&self) {
        let pages = self.pages.lock().map(|p| p.clone()).unwrap_or_default();
        let calls: Vec<&(String, String)> = pages.iter().filter(|(t, _)| t != "1").collect();
        let resets = pages.len() - calls.len();
        match calls.last() {
            Some((_, text)) => println!(
                "  nurse call: DECT handset {SENIOR_HANDSET} paged {} times (last \"{text}\"), {resets} resets",
                calls.len()
            ),
            None => println!("  nurse call: DECT handset {SENIOR_HANDSET} was not paged"),
        }
    }
}

/// The nurse-call system as the control station: a call from each pull cord in turn, over
/// the link procedure of legacy.md §4.3, every answer checked; the link stays up.
async fn pull_cord(port: u16, started: Instant, tl: Arc<Timeline>) {
    let mut link: Option<TcpStream> = None;
    for (at, address, text) in PULLS {
        tokio::time::sleep_until((started + at).into()).await;
        let result = async {
            if link.is_none() {
                link = Some(
                    TcpStream::connect(("127.0.0.1", port))
                        .await
                        .map_err(|e| format!("cannot reach the nurse-call adapter: {e}"))?,
                );
            }
            let Some(s) = link.as_mut() else {
                return Err("no link".to_owned());
            };
            let call = Block::new(
                Header::CallToPager,
                [
                    (Field::CallAddress, address.to_owned()),
                    (Field::Message, text.to_owned()),
                    (Field::CallType, "3".to_owned()),
                    (Field::Priority, "1".to_owned()),
                ],
            );
            s.write_all(&[b'1', ENQ, b'2', ENQ])
                .await
                .map_err(|e| e.to_string())?;
            expect_ack(s, "the select").await?;
            s.write_all(&call.encode())
                .await
                .map_err(|e| e.to_string())?;
            expect_ack(s, "the call").await?;
            s.write_all(&[EOT]).await.map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = result {
            link = None;
            tl.problem(format!("nurse-call pull cord {address}: {e}"));
        }
    }
    // The link stays up: the adapter's supervision would call a closed one down.
    std::future::pending::<()>().await;
}

async fn expect_ack(s: &mut TcpStream, what: &str) -> Result<(), String> {
    let mut b = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await {
        Ok(Ok(1)) if b[0] == ACK => Ok(()),
        Ok(Ok(1)) => Err(format!("{what} was answered with {:#04x}, not ACK", b[0])),
        _ => Err(format!("{what} was not answered")),
    }
}

/// The DECT system as the paging system: ACKs its select and every good block, prints what
/// the handset shows.
async fn paging_system(
    l: TcpListener,
    pages: Arc<Mutex<Vec<(String, String)>>>,
    tl: Arc<Timeline>,
) {
    while let Ok((mut s, _)) = l.accept().await {
        let (pages, tl) = (pages.clone(), tl.clone());
        tokio::spawn(async move {
            let mut reader = Reader::new();
            let mut buf = [0u8; 256];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                for t in reader.feed(&buf[..n]) {
                    let answer = match t {
                        Token::Enq(b'2') => ACK,
                        Token::Block(raw) => match Block::decode(&raw) {
                            Ok(b) => {
                                let kind = b.get(Field::CallType).unwrap_or("3").to_owned();
                                let text = b.get(Field::Message).unwrap_or("").to_owned();
                                let to = b.get(Field::CallAddress).unwrap_or("?").to_owned();
                                tl.handset(&to, &kind, &text);
                                if let Ok(mut p) = pages.lock() {
                                    p.push((kind, text));
                                }
                                ACK
                            }
                            Err(_) => NAK,
                        },
                        _ => continue,
                    };
                    if s.write_all(&[answer]).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}
