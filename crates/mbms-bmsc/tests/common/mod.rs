//! Test harness: the `mbms-bmsc` binary on loopback, a minimal HTTP/1.1 client, and UEs that
//! answer Digest challenges and receive MSK pushes on a UDP socket.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mbms_core::mbms::{OpenedMskMessage, ReplayCounter, open_msk_message, seal_verification};
use mbms_core::profile::Profile;
use mbms_core::{Muk, keyfile::MskFile};
use mbms_ua::digest::{Challenge, Credentials, mrk_password};

/// A running BM-SC.
pub struct Bmsc {
    child: Option<Child>,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub push_from: SocketAddr,
    pub state_dir: PathBuf,
    /// The key store URL the server uses.
    pub store_url: String,
    pub config: PathBuf,
    stderr: PathBuf,
}

/// The configuration of a test BM-SC: loopback, ports chosen by the OS, pushes to `push_port`.
pub fn config(state_dir: &Path, push_port: u16, extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nstate_dir = {:?}\n\
         naf_fqdn = \"bmsc.example.org\"\n{extra}\n[push]\nport = {push_port}\n\
         bind = \"127.0.0.1:0\"\nfirst_retry_ms = 150\nretries = 2\n\n\
         [[service]]\nid = \"urn:3gpp:mbms:service:tv1\"\n\n\
         [[service]]\nid = \"urn:3gpp:mbms:service:tv2\"\nkey_group = 2\n\n\
         [[service]]\nid = \"urn:3gpp:mbms:service:files\"\nkind = \"download\"\nkey_group = 3\n",
        state_dir
    )
}

impl Bmsc {
    /// Starts `mbms-bmsc serve --config <dir>/bmsc.toml` with `toml` written there.
    pub fn start(dir: &Path, toml: &str, args: &[&str]) -> Self {
        let config = dir.join("bmsc.toml");
        std::fs::write(&config, toml).unwrap();
        let stderr = dir.join(format!("bmsc-{}.log", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_mbms-bmsc"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        let mut reader = BufReader::new(out);
        reader.read_line(&mut line).unwrap();
        if line.is_empty() {
            let _ = child.wait();
            panic!(
                "mbms-bmsc did not start:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let store_url = toml
            .lines()
            .find_map(|l| l.strip_prefix("store = "))
            .map_or_else(
                || format!("sqlite:{}", dir.join("state").join("bmsc.db").display()),
                |v| v.trim().trim_matches('"').to_owned(),
            );
        let addr = |k: &str| v["listening"][k].as_str().unwrap().parse().unwrap();
        Self {
            child: Some(child),
            listen: addr("listen"),
            admin: addr("admin"),
            push_from: addr("push_from"),
            state_dir: dir.join("state"),
            store_url,
            config,
            stderr,
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `GET /health` as JSON.
    pub fn health(&self) -> serde_json::Value {
        let r = http(self.listen, "GET", "/health", &[], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    /// A push counter from `/health`.
    pub fn push_count(&self, name: &str) -> u64 {
        self.health()["push"][name].as_u64().unwrap()
    }

    /// Waits until the push counter `name` reaches `want` (panics after 5 s).
    pub fn wait_push_count(&self, name: &str, want: u64) {
        let start = Instant::now();
        loop {
            let got = self.push_count(name);
            if got >= want {
                assert_eq!(got, want, "push counter {name}");
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "push counter {name} is {got}, want {want}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `POST /admin/ue` for `ue`.
    pub fn provision(&self, ue: &Ue) {
        let body = serde_json::json!({
            "btid": ue.btid, "muk": hex::encode(ue.muk), "mrk": hex::encode(ue.mrk)
        })
        .to_string();
        let r = http(self.admin, "POST", "/admin/ue", &[], body.as_bytes());
        assert_eq!(r.status, 204, "{}", r.text());
    }

    /// `POST /admin/msk` for `service`: returns the new MSK ID.
    pub fn new_msk(&self, service: &str) -> u32 {
        let body = serde_json::json!({ "service": service }).to_string();
        let r = http(self.admin, "POST", "/admin/msk", &[], body.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        u32::try_from(v["msk_id"].as_u64().unwrap()).unwrap()
    }

    /// The current MSK of `service`, read from the key store file.
    pub fn current_msk(&self, service: &str) -> Option<MskFile> {
        let store = mbms_keystore::KeyStore::open_url(&self.store_url).unwrap();
        store.current_msk(service).unwrap()
    }

    /// Whether the key store still holds the MSK (`kd`, `msk_id`).
    pub fn has_msk(&self, kd: mbms_core::KeyDomainId, msk_id: u32) -> bool {
        let store = mbms_keystore::KeyStore::open_url(&self.store_url).unwrap();
        store.msk(kd, mbms_core::MskId(msk_id)).unwrap().is_some()
    }

    /// SIGTERM, then waits for the exit (panics after 10 s); returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Bmsc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), response read to EOF.
pub fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body and close: ignore write errors.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

/// A UE: B-TID, MUK and MRK, and its Digest state.
pub struct Ue {
    pub btid: String,
    pub muk: [u8; 32],
    pub mrk: [u8; 32],
    pub replay: ReplayCounter,
    nc: u32,
}

pub const REGISTER: &str = "application/mbms-register+xml";
pub const DEREGISTER: &str = "application/mbms-deregister+xml";
pub const MSK_REQUEST: &str = "application/mbms-msk+xml";

impl Ue {
    pub fn new(n: u8) -> Self {
        Self {
            btid: format!("tid{n}@bsf.example.org"),
            muk: [n; 32],
            mrk: [n.wrapping_add(100); 32],
            replay: ReplayCounter::default(),
            nc: 0,
        }
    }

    pub fn muk(&self) -> Muk {
        Muk::from_bytes(self.muk)
    }

    pub fn password(&self) -> String {
        mrk_password(&self.mrk).to_string()
    }

    /// POSTs `body` to `/keymanagement?requesttype=<rt>` with Digest: first without
    /// credentials (expects 401 and a challenge), then with them.
    pub fn post(&mut self, bmsc: &Bmsc, rt: &str, media: &str, body: &[u8]) -> Response {
        let target = format!("/keymanagement?requesttype={rt}");
        let first = http(
            bmsc.listen,
            "POST",
            &target,
            &[("Content-Type", media)],
            body,
        );
        assert_eq!(first.status, 401, "{}", first.text());
        let ch = Challenge::parse(first.header("www-authenticate").unwrap()).unwrap();
        self.post_with(bmsc, &ch, &target, media, body)
    }

    /// POSTs with credentials answering `ch` (next nonce count).
    pub fn post_with(
        &mut self,
        bmsc: &Bmsc,
        ch: &Challenge,
        target: &str,
        media: &str,
        body: &[u8],
    ) -> Response {
        self.nc += 1;
        let creds = Credentials::answer(
            ch,
            &self.btid,
            &self.password(),
            "POST",
            target,
            Some(body),
            "0a4f113b",
            self.nc,
        );
        http(
            bmsc.listen,
            "POST",
            target,
            &[
                ("Content-Type", media),
                ("Authorization", &creds.to_header()),
            ],
            body,
        )
    }

    pub fn register(&mut self, bmsc: &Bmsc, services: &[&str]) -> Response {
        let body = mbms_ua::xml::write_service_list(
            mbms_ua::xml::Procedure::Register,
            &mbms_ua::xml::ServiceList {
                service_ids: services.iter().map(|s| (*s).to_owned()).collect(),
            },
        );
        self.post(bmsc, "register", REGISTER, body.as_bytes())
    }

    pub fn deregister(&mut self, bmsc: &Bmsc, services: &[&str]) -> Response {
        let body = mbms_ua::xml::write_service_list(
            mbms_ua::xml::Procedure::Deregister,
            &mbms_ua::xml::ServiceList {
                service_ids: services.iter().map(|s| (*s).to_owned()).collect(),
            },
        );
        self.post(bmsc, "deregister", DEREGISTER, body.as_bytes())
    }

    pub fn msk_request(&mut self, bmsc: &Bmsc, keys: &[(mbms_core::KeyDomainId, u32)]) -> Response {
        let body = mbms_ua::xml::write_msk_request(&mbms_ua::xml::MskRequest {
            keys: keys
                .iter()
                .map(|(kd, id)| mbms_ua::xml::KeyRef {
                    key_domain_id: *kd,
                    msk_id: mbms_core::MskId(*id),
                })
                .collect(),
        });
        self.post(bmsc, "msk-request", MSK_REQUEST, body.as_bytes())
    }

    /// Opens an MSK message with this UE's MUK (advancing its replay counter).
    pub fn open(&mut self, bytes: &[u8]) -> OpenedMskMessage {
        open_msk_message(&self.muk(), bytes, &mut self.replay).unwrap()
    }

    /// The verification message for `opened`.
    pub fn verification(&self, opened: &OpenedMskMessage) -> Vec<u8> {
        let mut out = Vec::new();
        seal_verification(&self.muk(), opened, &Profile::default(), &mut out);
        out
    }
}

/// The UEs' side of MSK pushes: one UDP socket on loopback (all test UEs share 127.0.0.1).
pub struct Phone {
    pub sock: UdpSocket,
}

impl Phone {
    pub fn new() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Self { sock }
    }

    pub fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    /// The next datagram within `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = vec![0u8; 4096];
        match self.sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                buf.truncate(n);
                Some((buf, from))
            }
            Err(_) => None,
        }
    }

    /// Every datagram that arrives within `window`.
    pub fn drain(&self, window: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.recv(left.max(Duration::from_millis(1))) {
                Some((d, _)) => out.push(d),
                None => break,
            }
        }
        out
    }
}

/// The IDr (B-TID) an MSK message is addressed to, read without a key.
pub fn idr_of(bytes: &[u8]) -> String {
    let ids = mbms_core::mbms::MessageIds::peek(bytes).unwrap();
    String::from_utf8(ids.idr.unwrap().value).unwrap()
}

/// The configured Key Domain ID of test BM-SCs.
pub fn kd() -> mbms_core::KeyDomainId {
    mbms_core::KeyDomainId([0x00, 0xf1, 0x10])
}

// ---------------------------------------------------------------------------------------------
// Helpers for the bad-request and crash tests (added; the ones above are unchanged).
// ---------------------------------------------------------------------------------------------

/// Like [`http`], but never panics: connection errors and answers that are not HTTP are
/// `Err` (for requests that may meet a server being killed).
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw);
    match try_parse_response(&raw) {
        Some(r) => Ok(r),
        None => Err(read.err().unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "no complete HTTP response",
            )
        })),
    }
}

/// Parses a complete HTTP/1.1 response (head, and a body of `Content-Length` bytes or
/// chunked); `None` for anything else.
pub fn try_parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        if !rest.ends_with(b"0\r\n\r\n") {
            return None;
        }
        dechunk(rest)
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().ok()?;
        rest.get(..len)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

/// What a run of the `mbms-bmsc` binary that is expected to exit printed, and how it ended.
#[derive(Debug)]
pub struct Exit {
    /// The exit code (`None`: killed by a signal, or still running at the deadline and killed).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `mbms-bmsc ARGS` to its exit, killing it after `deadline`.
pub fn run_cli(args: &[&str], deadline: Duration) -> Exit {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mbms-bmsc"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    Exit {
        code: status.and_then(|s| s.code()),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
        elapsed,
    }
}

impl Bmsc {
    /// The key store file of this BM-SC, opened (a second connection; the server may run).
    pub fn store(&self) -> mbms_keystore::KeyStore {
        mbms_keystore::KeyStore::open_url(&self.store_url).unwrap()
    }

    /// `POST /admin/ue` for every UE of `ues`, from `threads` threads at once.
    pub fn provision_many(&self, ues: &[Ue], threads: usize) {
        let per = ues.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|s| {
            for chunk in ues.chunks(per) {
                s.spawn(move || {
                    for ue in chunk {
                        self.provision(ue);
                    }
                });
            }
        });
    }
}

/// The body of a registration to `services`.
pub fn register_body(services: &[&str]) -> String {
    mbms_ua::xml::write_service_list(
        mbms_ua::xml::Procedure::Register,
        &mbms_ua::xml::ServiceList {
            service_ids: services.iter().map(|s| (*s).to_owned()).collect(),
        },
    )
}

/// The Digest challenge of a 401 (panics without one).
pub fn challenge_of(r: &Response) -> Challenge {
    assert_eq!(r.status, 401, "{}", r.text());
    Challenge::parse(r.header("www-authenticate").expect("WWW-Authenticate")).unwrap()
}

impl Ue {
    /// A UE with the given B-TID and keys.
    pub fn with_keys(btid: &str, muk: [u8; 32], mrk: [u8; 32]) -> Self {
        Self {
            btid: btid.to_owned(),
            muk,
            mrk,
            replay: ReplayCounter::default(),
            nc: 0,
        }
    }

    /// A fresh challenge: a POST to `target` without credentials (expects 401).
    pub fn challenge(bmsc: &Bmsc, target: &str) -> Challenge {
        challenge_of(&http(bmsc.listen, "POST", target, &[], b""))
    }

    /// The `Authorization` value answering `ch` for `POST target` with `body` (next nonce
    /// count; auth-int when offered).
    pub fn authorization(&mut self, ch: &Challenge, target: &str, body: &[u8]) -> String {
        self.nc += 1;
        Credentials::answer(
            ch,
            &self.btid,
            &self.password(),
            "POST",
            target,
            Some(body),
            "0a4f113b",
            self.nc,
        )
        .to_header()
    }

    /// A registration to `services` that never panics on a dying server: the challenge, then
    /// the answer (`Err` if either request got no complete answer).
    pub fn try_register(
        &mut self,
        listen: SocketAddr,
        services: &[&str],
    ) -> std::io::Result<Response> {
        let target = "/keymanagement?requesttype=register";
        let body = register_body(services);
        let first = try_http(
            listen,
            "POST",
            target,
            &[("Content-Type", REGISTER)],
            body.as_bytes(),
        )?;
        let Some(ch) = first
            .header("www-authenticate")
            .and_then(|h| Challenge::parse(h).ok())
        else {
            return Ok(first);
        };
        let auth = self.authorization(&ch, target, body.as_bytes());
        try_http(
            listen,
            "POST",
            target,
            &[("Content-Type", REGISTER), ("Authorization", &auth)],
            body.as_bytes(),
        )
    }
}

impl Phone {
    /// A phone whose socket asks for a receive buffer of `bytes` (the kernel may give less, up
    /// to `net.core.rmem_max`): for bursts of hundreds of pushes.
    pub fn with_receive_buffer(bytes: usize) -> Self {
        let phone = Self::new();
        nix::sys::socket::setsockopt(&phone.sock, nix::sys::socket::sockopt::RcvBuf, &bytes)
            .unwrap();
        phone
    }
}

/// A fresh PostgreSQL database for one test, from `MBMS_TEST_POSTGRES_URL` (an admin URL with
/// CREATEDB): `None` (test skipped) when unset, unless `MBMS_REQUIRE_POSTGRES=1`, which makes
/// a missing server a failure. Dropped with the value.
pub struct PgDb {
    admin: String,
    name: String,
    pub url: String,
}

impl PgDb {
    pub fn new() -> Option<Self> {
        let Ok(admin) = std::env::var("MBMS_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("MBMS_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "MBMS_REQUIRE_POSTGRES=1 but MBMS_TEST_POSTGRES_URL is unset \
                 (eval \"$(scripts/postgres-for-tests.sh)\")"
            );
            eprintln!("skipped: MBMS_TEST_POSTGRES_URL unset");
            return None;
        };
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "mbms_bmsc_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        // The admin URL with the database name replaced.
        let (base, query) = admin
            .split_once('?')
            .map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
        let base = match base.rfind('/') {
            Some(i) if i > base.find("//").map_or(0, |j| j + 1) => &base[..i],
            _ => base,
        };
        let url = match query {
            Some(q) => format!("{base}/{name}?{q}"),
            None => format!("{base}/{name}"),
        };
        Some(Self { admin, name, url })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
