//! Load generator for `mbms-bmsc` (used by `scripts/bench-bmsc.sh`).
//!
//! HTTP Digest needs a fresh MD5 response per request, which general HTTP load tools (wrk, oha)
//! cannot compute, so this tool plays the UEs itself: each client is one UE with its own B-TID
//! and MRK, on its own keep-alive connection; it takes one challenge, then sends registrations
//! and MSK requests alternately, answering with increasing nonce counts (and taking a new
//! challenge when told the nonce is stale).
//!
//! ```text
//! bmsc-load provision --store sqlite:DIR/bmsc.db --count N [--register SERVICE --addr 127.0.0.1]
//! bmsc-load http --target 127.0.0.1:8080 --clients 500 --seconds 10 [--rate PER_CLIENT_PER_S]
//!                [--only register|msk]
//! bmsc-load push --admin 127.0.0.1:8081 --service ID --sink-port P --expect N
//! ```
//! Each mode prints one JSON line.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mbms_core::{Mrk, Muk};
use mbms_keystore::{KeyStore, UeKeys};
use mbms_ua::digest::{Challenge, Credentials, mrk_password};
use mbms_ua::xml;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SERVICE: &str = "urn:3gpp:mbms:service:load";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    arg(args, name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
    })
}

/// UE `i`'s B-TID, MUK and MRK (deterministic, so that provisioning and load agree).
fn ue(i: u64) -> (String, [u8; 32], [u8; 32]) {
    let mut muk = [0u8; 32];
    let mut mrk = [0u8; 32];
    muk[..8].copy_from_slice(&i.to_be_bytes());
    mrk[..8].copy_from_slice(&i.to_be_bytes());
    muk[31] = 0x11;
    mrk[31] = 0x22;
    (format!("load{i}@bsf.example.org"), muk, mrk)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("provision") => provision(&args),
        Some("http") => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(http(&args)),
        Some("push") => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(push(&args)),
        _ => {
            eprintln!("usage: bmsc-load provision|http|push … (see the source)");
            std::process::exit(2);
        }
    }
}

fn provision(args: &[String]) {
    let url = arg(args, "--store").expect("--store sqlite:PATH");
    let count: u64 = num(args, "--count", 1000);
    let start = Instant::now();
    let mut store = KeyStore::open_url(&url).unwrap();
    let keys: Vec<(String, UeKeys)> = (0..count)
        .map(|i| {
            let (btid, muk, mrk) = ue(i);
            (
                btid,
                UeKeys {
                    muk: Muk::from_bytes(muk),
                    mrk: Mrk::from_bytes(mrk),
                    expires: None,
                },
            )
        })
        .collect();
    for chunk in keys.chunks(100_000) {
        store
            .put_ues(chunk.iter().map(|(b, k)| (b.as_str(), k)))
            .unwrap();
    }
    let mut registered = 0;
    if let Some(service) = arg(args, "--register") {
        let addr: IpAddr = arg(args, "--addr")
            .unwrap_or_else(|| "127.0.0.1".into())
            .parse()
            .unwrap();
        for chunk in keys.chunks(100_000) {
            let items: Vec<(&str, &str, IpAddr)> = chunk
                .iter()
                .map(|(b, _)| (b.as_str(), service.as_str(), addr))
                .collect();
            store.register_many(&items, 0).unwrap();
            registered += chunk.len();
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "provisioned": count, "registered": registered,
            "seconds": start.elapsed().as_secs_f64()
        })
    );
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

struct Reply {
    status: u16,
    www_authenticate: Option<String>,
}

impl Conn {
    async fn request(
        &mut self,
        target: &str,
        headers: &str,
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: bmsc\r\nContent-Length: {}\r\n{headers}\r\n",
            body.len()
        );
        let mut msg = head.into_bytes();
        msg.extend_from_slice(body);
        self.stream.write_all(&msg).await?;
        // Read the head, then Content-Length bytes of body.
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let mut status = 0;
                let mut len = 0usize;
                let mut www = None;
                for (i, line) in head.split("\r\n").enumerate() {
                    if i == 0 {
                        status = line
                            .split(' ')
                            .nth(1)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                    } else if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        } else if k.eq_ignore_ascii_case("www-authenticate") {
                            www = Some(v.trim().to_owned());
                        }
                    }
                }
                while self.buf.len() < end + 4 + len {
                    self.fill().await?;
                }
                self.buf.drain(..end + 4 + len);
                return Ok(Reply {
                    status,
                    www_authenticate: www,
                });
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut tmp = [0u8; 8192];
        let n = self.stream.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }
}

#[derive(Default)]
struct Totals {
    ok: AtomicU64,
    errors: AtomicU64,
    challenges: AtomicU64,
}

async fn client(
    target: SocketAddr,
    i: u64,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
    interval: Option<Duration>,
    only: Option<String>,
    phase: f64,
) -> Vec<u32> {
    let (btid, _, mrk) = ue(i);
    let password = mrk_password(&mrk).to_string();
    let register = xml::write_service_list(
        xml::Procedure::Register,
        &xml::ServiceList {
            service_ids: vec![SERVICE.into()],
        },
    );
    let mut latencies_us = Vec::new();
    let mut conn = match TcpStream::connect(target).await {
        Ok(s) => Conn {
            stream: s,
            buf: Vec::new(),
        },
        Err(_) => {
            totals.errors.fetch_add(1, Ordering::Relaxed);
            return latencies_us;
        }
    };
    let _ = conn.stream.set_nodelay(true);
    let reg_target = "/keymanagement?requesttype=register";
    let msk_target = "/keymanagement?requesttype=msk-request";
    let mut challenge: Option<Challenge> = None;
    let mut nc = 0u32;
    // Clients are spread evenly over the first interval (client i starts i/clients of an
    // interval late), as a population of UEs would be: paced clients started at one instant
    // would stay in lockstep and measure their own bursts.
    let mut next = Instant::now() + interval.map_or(Duration::ZERO, |iv| iv.mul_f64(phase));
    let mut n = 0u64;
    let mut msk_body = String::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(iv) = interval {
            next += iv;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        let register_now = match only.as_deref() {
            Some("register") => true,
            Some("msk") => msk_body.is_empty(),
            _ => n.is_multiple_of(2) || msk_body.is_empty(),
        };
        let (tgt, media, body) = if register_now {
            (reg_target, xml::REGISTER_MEDIA_TYPE, register.as_bytes())
        } else {
            (msk_target, xml::MSK_REQUEST_MEDIA_TYPE, msk_body.as_bytes())
        };
        n += 1;
        let started = Instant::now();
        let reply = match &challenge {
            None => {
                let r = conn
                    .request(tgt, &format!("Content-Type: {media}\r\n"), body)
                    .await;
                match r {
                    Ok(r) if r.status == 401 => {
                        totals.challenges.fetch_add(1, Ordering::Relaxed);
                        challenge = r
                            .www_authenticate
                            .as_deref()
                            .and_then(|h| Challenge::parse(h).ok());
                        nc = 0;
                        continue;
                    }
                    other => other,
                }
            }
            Some(ch) => {
                nc += 1;
                let creds = Credentials::answer(
                    ch,
                    &btid,
                    &password,
                    "POST",
                    tgt,
                    Some(body),
                    "c0ffee",
                    nc,
                );
                conn.request(
                    tgt,
                    &format!(
                        "Content-Type: {media}\r\nAuthorization: {}\r\n",
                        creds.to_header()
                    ),
                    body,
                )
                .await
            }
        };
        match reply {
            Ok(r) if r.status == 200 => {
                totals.ok.fetch_add(1, Ordering::Relaxed);
                latencies_us.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if msk_body.is_empty() {
                    // The service's MSK ID is not known to the client: ask for MSK 1 of
                    // group 1 (granted or 403/404 per item, both a 200 HTTP answer).
                    msk_body = xml::write_msk_request(&xml::MskRequest {
                        keys: vec![xml::KeyRef {
                            key_domain_id: mbms_core::KeyDomainId([0x00, 0xf1, 0x10]),
                            msk_id: mbms_core::MskId::new(1, 1),
                        }],
                    });
                }
            }
            Ok(r) if r.status == 401 => {
                // Stale nonce: take the new challenge (not an error).
                totals.challenges.fetch_add(1, Ordering::Relaxed);
                challenge = r
                    .www_authenticate
                    .as_deref()
                    .and_then(|h| Challenge::parse(h).ok());
                nc = 0;
            }
            Ok(r) => {
                totals.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("HTTP {}", r.status);
            }
            Err(e) => {
                totals.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("client {i}: {e}");
                return latencies_us;
            }
        }
    }
    latencies_us
}

async fn http(args: &[String]) {
    let target: SocketAddr = arg(args, "--target").expect("--target").parse().unwrap();
    let clients: u64 = num(args, "--clients", 500);
    let seconds: f64 = num(args, "--seconds", 10.0);
    let first: u64 = num(args, "--first-ue", 0);
    let rate: f64 = num(args, "--rate", 0.0);
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals::default());
    let mut tasks = Vec::new();
    for i in 0..clients {
        tasks.push(tokio::spawn(client(
            target,
            first + i,
            stop.clone(),
            totals.clone(),
            interval,
            arg(args, "--only"),
            i as f64 / clients as f64,
        )));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[i]) / 1000.0
    };
    println!(
        "{}",
        serde_json::json!({
            "clients": clients,
            "seconds": elapsed,
            "requests_ok": totals.ok.load(Ordering::Relaxed),
            "errors": totals.errors.load(Ordering::Relaxed),
            "challenges": totals.challenges.load(Ordering::Relaxed),
            "requests_per_second": totals.ok.load(Ordering::Relaxed) as f64 / elapsed,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": pct(1.0),
        })
    );
}

async fn push(args: &[String]) {
    let admin: SocketAddr = arg(args, "--admin").expect("--admin").parse().unwrap();
    let service = arg(args, "--service").unwrap_or_else(|| SERVICE.into());
    let port: u16 = num(args, "--sink-port", 0);
    let expect: u64 = num(args, "--expect", 0);
    let sink = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let sock = socket2::SockRef::from(&sink);
    let _ = sock.set_recv_buffer_size(64 << 20);
    sink.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let last = Arc::new(std::sync::Mutex::new(Instant::now()));
    let (r2, l2) = (received.clone(), last.clone());
    let drain = std::thread::spawn(move || {
        use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;
        // recvmmsg, 64 datagrams per call: the sink should cost the machine little.
        let mut bufs = vec![[0u8; 512]; 64];
        let mut idle = 0;
        loop {
            let n = {
                let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                    bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
                let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(iovs.len(), None);
                recvmmsg(
                    sink.as_raw_fd(),
                    &mut headers,
                    iovs.iter_mut(),
                    MsgFlags::empty(),
                    None,
                )
                .map(Iterator::count)
            };
            match n {
                Ok(n) if n > 0 => {
                    idle = 0;
                    *l2.lock().unwrap() = Instant::now();
                    if r2.fetch_add(n as u64, Ordering::Relaxed) + n as u64 >= expect {
                        return;
                    }
                }
                _ => {
                    idle += 1;
                    if idle > 6 {
                        return;
                    }
                }
            }
        }
    });
    let start = Instant::now();
    let mut s = TcpStream::connect(admin).await.unwrap();
    let body = serde_json::json!({ "service": service }).to_string();
    let req = format!(
        "POST /admin/msk HTTP/1.1\r\nHost: bmsc\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await.unwrap();
    let answered = start.elapsed().as_secs_f64();
    drain.join().unwrap();
    let done = last.lock().unwrap().duration_since(start).as_secs_f64();
    let text = String::from_utf8_lossy(&reply);
    println!(
        "{}",
        serde_json::json!({
            "expected": expect,
            "received": received.load(Ordering::Relaxed),
            "admin_answer_seconds": answered,
            "seconds_to_last_message": done,
            "messages_per_second": received.load(Ordering::Relaxed) as f64 / done,
            "admin_status": text.lines().next().unwrap_or(""),
        })
    );
}
