//! The HTTP side of the BM-SC (axum on tokio).
//!
//! UE-facing (`listen`):
//! - `POST /keymanagement?requesttype=register|deregister|msk-request` (TS 33.246 §6.3.2.1A,
//!   §6.3.2.1B, §6.3.2.2.1/§6.3.2.2.3; path and query are our documented default, digest
//!   unconfirmed point 9), HTTP Digest with the B-TID as user name and the MRK as password;
//!   one response with a status code per item (§6.3.2.4).
//! - `GET /security-description?service=ID`: the back-off window of the service's MSK
//!   requests (§6.3.2.2.1).
//! - `GET /health`.
//!
//! Admin (`admin_listen`, loopback by default; no BSF exists here, so the operator provisions
//! UEs): `POST /admin/ue` (B-TID with MUK and MRK, or with Ks, RAND and IMPI for the GBA_U
//! derivation), `DELETE /admin/ue?btid=`, `POST /admin/msk` (a new MSK for a service, pushed
//! to its registered UEs), `GET /health`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mbms_core::keyfile::MskFile;
use mbms_core::mikey::Identity;
use mbms_core::profile::Profile;
use mbms_core::{CsbId, KeyDomainId, Mrk, Msk, MskId, Muk};
use mbms_keystore::{KeyStore, StoreError, UeKeys};
use mbms_ua::digest::{Algorithm, Challenge, Credentials, NonceKey, NonceState, Qop, mrk_password};
use mbms_ua::xml::{self, KeyStatus, Procedure, ServiceStatus, StatusCode as ItemStatus};
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::{Config, ServiceConfig, ServiceKind, hex_bytes};
use crate::push::{self, PushHandle, PushJob, PushSettings};

/// Media type of registration and deregistration responses.
const REGISTER_RESPONSE: &str = "application/mbms-register-response+xml";
/// Media type of MSK request responses.
const MSK_RESPONSE: &str = "application/mbms-msk-response+xml";
/// Media type of the security description.
const PROTECTION_DESCRIPTION: &str = "application/mbms-protection-description+xml";

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The key store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A socket could not be bound or failed.
    #[error("{what} {addr}: {source}")]
    Io {
        /// Which socket.
        what: &'static str,
        /// Its address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A task of the server failed.
    #[error("internal error: {0}")]
    Internal(String),
    /// No randomness from the OS.
    #[error("no OS randomness: {0}")]
    Rng(String),
}

/// The addresses the server is bound to (ports chosen by the OS when configured as 0).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bound {
    /// UE-facing HTTP.
    pub listen: SocketAddr,
    /// Admin HTTP.
    pub admin: SocketAddr,
    /// UDP source of pushes.
    pub push_from: SocketAddr,
}

/// The key store of the server. Dropped off the async threads: the PostgreSQL client runs a
/// runtime of its own, which may not be dropped (nor used) on a thread driving ours.
pub struct SharedStore(Option<KeyStore>);

impl std::ops::Deref for SharedStore {
    type Target = KeyStore;
    fn deref(&self) -> &KeyStore {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl std::ops::DerefMut for SharedStore {
    fn deref_mut(&mut self) -> &mut KeyStore {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl Drop for SharedStore {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(move || drop(store));
                }
                _ => drop(store),
            }
        }
    }
}

/// Shared state of the handlers.
struct App {
    cfg: Config,
    key_domain: KeyDomainId,
    store: Arc<Mutex<SharedStore>>,
    /// Connections for lookups (the writer above commits; these only read).
    readers: Vec<Arc<Mutex<SharedStore>>>,
    next_reader: std::sync::atomic::AtomicUsize,
    /// Lookups run in place (SQLite) rather than on the blocking pool (PostgreSQL).
    inline_reads: bool,
    /// Registrations waiting for the next group commit.
    registrar: std::sync::mpsc::Sender<Registering>,
    nonce_key: NonceKey,
    /// Highest nonce count seen per nonce (replayed requests are refused).
    nonce_counts: Mutex<HashMap<String, (u32, u64)>>,
    push: PushHandle,
    rng: Mutex<rand_chacha::ChaCha20Rng>,
}

type Shared = Arc<App>;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs the server until `shutdown` turns true (or SIGINT/SIGTERM when `signals`), calling
/// `ready` once every socket is bound.
pub async fn serve(
    cfg: Config,
    mut shutdown: watch::Receiver<bool>,
    ready: impl FnOnce(Bound),
) -> Result<(), ServeError> {
    cfg.validate()?;
    let key_domain = cfg.key_domain()?;
    cfg.create_store_dir()?;
    let app_sqlite = cfg.sqlite_path()?.is_some();
    let url = cfg.store_url()?;
    let store = tokio::task::spawn_blocking(move || KeyStore::open_url(&url))
        .await
        .map_err(|e| ServeError::Internal(format!("key store task: {e}")))??;
    let store = Arc::new(Mutex::new(SharedStore(Some(store))));
    let mut readers = Vec::with_capacity(READERS);
    for _ in 0..READERS {
        let url = cfg.store_url()?;
        let reader = tokio::task::spawn_blocking(move || KeyStore::open_url(&url))
            .await
            .map_err(|e| ServeError::Internal(format!("key store task: {e}")))??;
        readers.push(Arc::new(Mutex::new(SharedStore(Some(reader)))));
    }
    let (registrar, registering) = std::sync::mpsc::channel();
    let registrar_store = store.clone();
    let registrar_thread = std::thread::Builder::new()
        .name("registrar".into())
        .spawn(move || group_commit(registrar_store, registering))
        .map_err(|e| ServeError::Internal(format!("registrar thread: {e}")))?;
    let mut rng =
        rand_chacha::ChaCha20Rng::try_from_os_rng().map_err(|e| ServeError::Rng(e.to_string()))?;
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let nonce_key = NonceKey::new(secret);
    zeroize::Zeroize::zeroize(&mut secret);

    let (push, push_task) = push::start(
        PushSettings {
            push: cfg.push.clone(),
            idi: Identity::nai(cfg.naf_fqdn.as_bytes()),
            profile: Profile::default(),
        },
        store.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(|source| ServeError::Io {
        what: "push socket",
        addr: cfg.push.bind.to_string(),
        source,
    })?;

    let bind = |addr: SocketAddr, what: &'static str| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Io {
                what,
                addr: addr.to_string(),
                source,
            })
    };
    let listener = bind(cfg.listen, "HTTP listener").await?;
    let admin_listener = bind(cfg.admin_listen, "admin listener").await?;
    let local = |l: &tokio::net::TcpListener, what: &'static str, addr: SocketAddr| {
        l.local_addr().map_err(|source| ServeError::Io {
            what,
            addr: addr.to_string(),
            source,
        })
    };
    let bound = Bound {
        listen: local(&listener, "HTTP listener", cfg.listen)?,
        admin: local(&admin_listener, "admin listener", cfg.admin_listen)?,
        push_from: push.local_addr,
    };

    let max_body = cfg.max_body_bytes;
    let app: Shared = Arc::new(App {
        cfg,
        key_domain,
        store,
        readers,
        next_reader: std::sync::atomic::AtomicUsize::new(0),
        inline_reads: app_sqlite,
        registrar,
        nonce_key,
        nonce_counts: Mutex::new(HashMap::new()),
        push,
        rng: Mutex::new(rng),
    });
    let limit = axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            refuse_declared_oversize(req, next, max_body)
        },
    );
    let lifecycle = tokio::spawn(msk_lifecycle(app.clone(), shutdown.clone()));
    let ue_routes = Router::new()
        .route("/keymanagement", post(keymanagement))
        .route("/security-description", get(security_description))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(limit.clone())
        .with_state(app.clone());
    let admin_routes = Router::new()
        .route("/admin/ue", post(admin_put_ue).delete(admin_remove_ue))
        .route("/admin/msk", post(admin_new_msk))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(limit)
        .with_state(app.clone());

    tracing::info!(listen = %bound.listen, admin = %bound.admin, push_from = %bound.push_from, "BM-SC up");
    ready(bound);
    let stop = |mut rx: watch::Receiver<bool>| async move {
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    };
    // Answers go out at once (no Nagle delay behind the client's delayed ACK).
    let nodelay = |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
    };
    let ue_server = axum::serve(
        axum::serve::ListenerExt::tap_io(listener, nodelay),
        ue_routes.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop(shutdown.clone()));
    let admin_server = axum::serve(
        axum::serve::ListenerExt::tap_io(admin_listener, nodelay),
        admin_routes.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop(shutdown.clone()));
    let (a, b) = tokio::join!(ue_server, admin_server);
    for (r, what) in [(a, "HTTP listener"), (b, "admin listener")] {
        r.map_err(|source| ServeError::Io {
            what,
            addr: String::new(),
            source,
        })?;
    }
    // Both servers have stopped: let the push engine stop too.
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    let _ = push_task.await;
    let _ = lifecycle.await;
    drop(app);
    // The registrar ends when the last handler is gone (at once, unless a connection hangs).
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::task::spawn_blocking(move || registrar_thread.join()),
    )
    .await;
    tracing::info!("BM-SC stopped");
    Ok(())
}

/// Answers 413 at once to a request whose `Content-Length` is over the limit, before any of
/// its body is read (the body limit layer only counts bytes as they arrive).
async fn refuse_declared_oversize(
    req: axum::extract::Request,
    next: axum::middleware::Next,
    max: usize,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| u64::try_from(max).is_ok_and(|m| n > m)) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {max} bytes\n"),
        )
            .into_response();
    }
    next.run(req).await
}

/// Runs a blocking key-store operation off the async threads.
async fn with_store<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&mut KeyStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    on_store(app.store.clone(), f).await
}

/// The reader connection to try first: round robin.
fn next_reader(app: &Shared) -> usize {
    app.next_reader
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        % app.readers.len()
}

/// Runs a read-only key-store lookup on one of the reader connections, so that lookups do not
/// wait behind the writer's commits.
async fn with_reader<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&mut KeyStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let i = next_reader(app);
    if app.inline_reads {
        // An SQLite lookup takes microseconds: done in place, it saves two thread hand-offs
        // (which cost milliseconds under load on a small VM), on a free reader only, so that a
        // runtime thread never waits for one busy with a long listing. PostgreSQL's synchronous
        // client may not run on a runtime thread, so its lookups go to the blocking pool.
        for k in 0..app.readers.len() {
            let reader = &app.readers[(i + k) % app.readers.len()];
            let mut s = match reader.try_lock() {
                Ok(s) => s,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            return f(&mut s).map_err(store_error);
        }
    }
    on_store(app.readers[i].clone(), f).await
}

/// Like [`with_reader`], on the blocking pool whatever the backend: for a long read (all the
/// registrations of a service) that must not hold a runtime thread.
async fn with_reader_blocking<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&mut KeyStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    on_store(app.readers[next_reader(app)].clone(), f).await
}

async fn on_store<T: Send + 'static>(
    store: Arc<Mutex<SharedStore>>,
    f: impl FnOnce(&mut KeyStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let outcome = tokio::task::spawn_blocking(move || {
        let mut s = store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    })
    .await;
    match outcome {
        Ok(r) => r.map_err(store_error),
        Err(e) => {
            tracing::error!(error = %e, "key store task");
            Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response())
        }
    }
}

fn store_error(e: StoreError) -> Response {
    tracing::error!(error = %e, "key store");
    (StatusCode::INTERNAL_SERVER_ERROR, "key store error\n").into_response()
}

/// Readers: connections for lookups beside the one writer.
const READERS: usize = 2;

/// Registrations committed together at most.
const GROUP_COMMIT: usize = 4096;

/// One registration request waiting for its commit.
struct Registering {
    btid: String,
    services: Vec<String>,
    addr: IpAddr,
    /// `Ok(true)` once committed, `Ok(false)` if the UE is not provisioned (any more).
    reply: tokio::sync::oneshot::Sender<Result<bool, ()>>,
}

/// Commits registrations in groups, on a thread of its own: everything that arrived while
/// the previous commit ran goes into the next one, so that many registrations share one
/// fsync. Each request is answered only after the commit that holds it. Ends when every
/// sender is gone.
fn group_commit(store: Arc<Mutex<SharedStore>>, rx: std::sync::mpsc::Receiver<Registering>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_COMMIT {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let items: Vec<(&str, &str, IpAddr)> = group
            .iter()
            .flat_map(|r| {
                r.services
                    .iter()
                    .map(|s| (r.btid.as_str(), s.as_str(), r.addr))
            })
            .collect();
        let stored = {
            let mut s = store.lock().unwrap_or_else(|e| e.into_inner());
            s.register_many(&items, now_secs())
        };
        let stored = match stored {
            Ok(stored) => Some(stored),
            Err(e) => {
                tracing::error!(error = %e, "key store: registrations not stored");
                None
            }
        };
        let mut at = 0;
        for r in group {
            let n = r.services.len();
            let answer = match &stored {
                // A registration to no known service stores nothing and needs no UE check.
                Some(stored) => Ok(stored[at..at + n].iter().all(|s| *s)),
                None => Err(()),
            };
            at += n;
            let _ = r.reply.send(answer);
        }
    }
}

#[derive(Debug, Deserialize)]
struct KmQuery {
    requesttype: Option<String>,
}

/// A 401 with a fresh challenge.
fn challenge(app: &App, stale: bool) -> Response {
    let mut random = [0u8; 8];
    app.rng
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .fill_bytes(&mut random);
    let ch = Challenge {
        realm: app.cfg.naf_fqdn.clone(),
        nonce: app.nonce_key.issue(now_secs(), random),
        opaque: None,
        algorithm: Algorithm::Md5,
        qop: vec![Qop::Auth, Qop::AuthInt],
        stale,
    };
    let mut r = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    if let Ok(v) = HeaderValue::from_str(&ch.to_header()) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Authenticates a request: returns the B-TID, or the response to send (401 or 500).
async fn authenticate(
    app: &Shared,
    headers: &HeaderMap,
    uri: &Uri,
    body: &Bytes,
) -> Result<String, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(challenge(app, false));
    };
    let Ok(value) = value.to_str() else {
        return Err(challenge(app, false));
    };
    let creds = match Credentials::parse(value) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(error = %e, "bad Authorization header");
            return Err(challenge(app, false));
        }
    };
    let now = now_secs();
    // A stale nonce (ours, but too old) is only called stale once the response checks out
    // (RFC 7616 §3.3): a wrong password gets a plain challenge.
    let stale = match app
        .nonce_key
        .check(&creds.nonce, now, app.cfg.nonce_max_age_secs)
    {
        NonceState::Fresh => false,
        NonceState::Stale => true,
        NonceState::Invalid => return Err(challenge(app, false)),
    };
    let btid = creds.username.clone();
    let lookup = btid.clone();
    let Some(ue) = with_reader(app, move |s| s.ue(&lookup)).await? else {
        tracing::info!(%btid, "unknown B-TID");
        return Err(challenge(app, false));
    };
    if ue.expires.is_some_and(|e| e <= now) {
        tracing::info!(%btid, "expired B-TID");
        return Err(challenge(app, false));
    }
    let request_uri = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let password = mrk_password(ue.mrk.expose());
    if let Err(e) = creds.verify(&app.cfg.naf_fqdn, "POST", &request_uri, &password, body) {
        tracing::info!(%btid, error = %e, "Digest verification failed");
        return Err(challenge(app, false));
    }
    if stale {
        return Err(challenge(app, true));
    }
    // A nonce count may not repeat or go back (RFC 7616 §3.4: replay protection).
    let nc = creds.nc.unwrap_or(0);
    {
        let mut counts = app.nonce_counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() > 100_000 {
            counts.retain(|_, (_, at)| now.saturating_sub(*at) <= app.cfg.nonce_max_age_secs);
        }
        match counts.get(&creds.nonce) {
            Some((last, _)) if nc <= *last => {
                tracing::info!(%btid, nc, "replayed nonce count");
                return Err(challenge(app, false));
            }
            _ => {
                counts.insert(creds.nonce.clone(), (nc, now));
            }
        }
    }
    Ok(btid)
}

/// The UE's address: the source of the request, or the proxy's `X-Forwarded-For` when the
/// request comes from the configured trusted proxy. An IPv4 peer of a dual-stack listener
/// (`::ffff:a.b.c.d`) is taken as the IPv4 address it is, so pushes reach it.
fn ue_address(app: &App, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    if app.cfg.trusted_proxy.map(|p| p.to_canonical()) == Some(peer_ip) {
        // The proxy appends the address it saw: the LAST entry of the LAST header line. The
        // entries before it came from the client and prove nothing.
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip.to_canonical();
        }
    }
    peer_ip
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn xml_response(media: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, media)], body).into_response()
}

async fn keymanagement(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<KmQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    debug_assert_eq!(method, Method::POST);
    let started = std::time::Instant::now();
    let r = keymanagement_inner(&app, peer, q, &uri, &headers, &body).await;
    tracing::debug!(
        status = r.status().as_u16(),
        us = crate::push::duration_us(started.elapsed()),
        "keymanagement"
    );
    r
}

async fn keymanagement_inner(
    app: &Shared,
    peer: SocketAddr,
    q: KmQuery,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let (procedure, expected) = match q.requesttype.as_deref() {
        Some("register") => (Some(Procedure::Register), xml::REGISTER_MEDIA_TYPE),
        Some("deregister") => (Some(Procedure::Deregister), xml::DEREGISTER_MEDIA_TYPE),
        Some("msk-request") => (None, xml::MSK_REQUEST_MEDIA_TYPE),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "requesttype must be register, deregister or msk-request\n",
            )
                .into_response();
        }
    };
    let btid = match authenticate(app, headers, uri, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if media_type(headers) != expected {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {expected}\n"),
        )
            .into_response();
    }
    match procedure {
        Some(p) => {
            let list = match xml::parse_service_list(p, body) {
                Ok(l) => l,
                Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
            };
            let addr = ue_address(app, peer, headers);
            match p {
                Procedure::Register => register(app, btid, list.service_ids, addr).await,
                Procedure::Deregister => deregister(app, btid, list.service_ids).await,
            }
        }
        None => {
            let req = match xml::parse_msk_request(body) {
                Ok(r) => r,
                Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
            };
            msk_request(app, btid, req.keys).await
        }
    }
}

async fn register(app: &Shared, btid: String, ids: Vec<String>, addr: IpAddr) -> Response {
    let known: Vec<String> = ids
        .iter()
        .filter(|id| app.cfg.service(id).is_some())
        .cloned()
        .collect();
    let (reply, stored) = tokio::sync::oneshot::channel();
    let queued = app.registrar.send(Registering {
        btid: btid.clone(),
        services: known.clone(),
        addr,
        reply,
    });
    match (queued, stored.await) {
        (Ok(()), Ok(Ok(true))) => {}
        (Ok(()), Ok(Ok(false))) => {
            // Removed between authentication and commit.
            return challenge(app, false);
        }
        _ => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "key store error\n").into_response();
        }
    }
    let k = known.clone();
    let msks = with_reader(app, move |s| {
        k.iter()
            .map(|id| Ok((id.clone(), s.current_msk(id)?)))
            .collect::<Result<Vec<_>, StoreError>>()
    })
    .await;
    let msks = match msks {
        Ok(m) => m,
        Err(r) => return r,
    };
    tracing::info!(%btid, %addr, services = known.len(), "registered");
    let jobs = msks
        .into_iter()
        .filter_map(|(id, msk)| {
            let svc = app.cfg.service(&id)?;
            (svc.pushes(&app.cfg.push)).then_some(())?;
            Some(PushJob {
                btid: btid.clone(),
                ue_addr: addr,
                msk: Arc::new(msk?),
                kind: svc.kind,
                shared_counter: false,
            })
        })
        .collect();
    app.push.queue(jobs);
    let items: Vec<ServiceStatus> = ids
        .into_iter()
        .map(|id| {
            let status = if app.cfg.service(&id).is_some() {
                ItemStatus::OK
            } else {
                ItemStatus::NOT_FOUND
            };
            ServiceStatus {
                service_id: id,
                status,
            }
        })
        .collect();
    xml_response(REGISTER_RESPONSE, xml::write_register_response(&items))
}

async fn deregister(app: &Shared, btid: String, ids: Vec<String>) -> Response {
    let (b, i) = (btid.clone(), ids.clone());
    let found = with_store(app, move |s| {
        let mut found = Vec::with_capacity(i.len());
        for id in &i {
            found.push(s.deregister(&b, &[id.as_str()])? > 0);
        }
        Ok(found)
    })
    .await;
    let found = match found {
        Ok(f) => f,
        Err(r) => return r,
    };
    tracing::info!(%btid, "deregistered");
    let items: Vec<ServiceStatus> = ids
        .into_iter()
        .zip(found)
        .map(|(id, was)| ServiceStatus {
            service_id: id,
            status: if was {
                ItemStatus::OK
            } else {
                ItemStatus::NOT_FOUND
            },
        })
        .collect();
    xml_response(REGISTER_RESPONSE, xml::write_register_response(&items))
}

async fn msk_request(app: &Shared, btid: String, keys: Vec<xml::KeyRef>) -> Response {
    let (b, k) = (btid.clone(), keys.clone());
    let groups: Vec<(String, u16)> = app
        .cfg
        .services
        .iter()
        .map(|s| (s.id.clone(), s.key_group()))
        .collect();
    let looked_up = with_reader(app, move |s| {
        let mut out = Vec::with_capacity(k.len());
        for key in &k {
            let msk = s.msk(key.key_domain_id, key.msk_id)?;
            let mut services = s.services_for_msk(&b, key.key_domain_id, key.msk_id)?;
            if services.is_empty() && msk.is_some() {
                // The next MSK of a service the UE is registered to (delivered ahead of use).
                for (id, group) in &groups {
                    if *group != key.msk_id.key_group() || s.registration(&b, id)?.is_none() {
                        continue;
                    }
                    let (_, next) = current_and_next(s, key.key_domain_id, id, *group)?;
                    if next.is_some_and(|n| n.msk_id == key.msk_id) {
                        services.push(id.clone());
                        break;
                    }
                }
            }
            let addr = match services.first() {
                Some(svc) => s.registration(&b, svc)?,
                None => None,
            };
            out.push((msk, services, addr));
        }
        Ok(out)
    })
    .await;
    let looked_up = match looked_up {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut jobs = Vec::new();
    let mut items = Vec::with_capacity(keys.len());
    for (key, (msk, services, addr)) in keys.into_iter().zip(looked_up) {
        let status = match (msk, services.first(), addr) {
            (None, _, _) => ItemStatus::NOT_FOUND,
            (Some(_), None, _) | (Some(_), _, None) => ItemStatus::FORBIDDEN,
            (Some(msk), Some(svc), Some(addr)) => {
                let kind = app
                    .cfg
                    .service(svc)
                    .map_or(ServiceKind::Streaming, |s| s.kind);
                jobs.push(PushJob {
                    btid: btid.clone(),
                    ue_addr: addr,
                    msk: Arc::new(msk),
                    kind,
                    shared_counter: false,
                });
                ItemStatus::OK
            }
        };
        items.push(KeyStatus { key, status });
    }
    tracing::info!(%btid, requested = items.len(), sending = jobs.len(), "MSK request");
    if !app.push.queue(jobs) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    xml_response(MSK_RESPONSE, xml::write_msk_response(&items))
}

#[derive(Debug, Deserialize)]
struct ServiceQuery {
    service: String,
}

/// The service's security description: the back-off window of MSK requests. The element and
/// attribute names are our documented choice (digest unconfirmed point 10).
async fn security_description(
    State(app): State<Shared>,
    Query(q): Query<ServiceQuery>,
) -> Response {
    let Some(svc) = app.cfg.service(&q.service) else {
        return (StatusCode::NOT_FOUND, "unknown service\n").into_response();
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <securityDescription xmlns=\"urn:3GPP:metadata:2005:MBMS:securityDescription\">\n\
         <keyManagement serverURI=\"http://{}/keymanagement\" mskRequestBackoffWindow=\"{}\" \
         mskPush=\"{}\"/>\n</securityDescription>\n",
        escape_attr(&app.cfg.naf_fqdn),
        svc.backoff_window_secs,
        svc.pushes(&app.cfg.push)
    );
    xml_response(PROTECTION_DESCRIPTION, body)
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    ues: u64,
    push: push::PushCounts,
}

async fn health(State(app): State<Shared>) -> Response {
    match with_reader(&app, |s| s.ue_count()).await {
        Ok(ues) => axum::Json(Health {
            status: "ok",
            ues,
            push: app.push.stats.snapshot(),
        })
        .into_response(),
        Err(r) => r,
    }
}

/// `POST /admin/ue`: either `muk` and `mrk` (64 hex digits each), or `ks` (64 hex digits),
/// `rand` (32) and `impi` for the GBA_U derivation (MUK = Ks_int_NAF, MRK = Ks_ext_NAF with
/// NAF_ID = naf_fqdn ‖ the MBMS Ua protocol identifier).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUe {
    btid: String,
    muk: Option<String>,
    mrk: Option<String>,
    ks: Option<String>,
    rand: Option<String>,
    impi: Option<String>,
    expires: Option<u64>,
}

impl NewUe {
    fn keys(&self, naf_fqdn: &str) -> Result<UeKeys, String> {
        if self.btid.is_empty() || self.btid.len() > 255 {
            return Err("btid must be 1..=255 bytes".into());
        }
        if self.expires.is_some_and(|e| i64::try_from(e).is_err()) {
            return Err("expires must be at most 9223372036854775807 (Unix seconds)".into());
        }
        let (muk, mrk) = match (&self.muk, &self.mrk, &self.ks, &self.rand, &self.impi) {
            (Some(muk), Some(mrk), None, None, None) => (
                Muk::from_bytes(hex_bytes(muk, "muk")?),
                Mrk::from_bytes(hex_bytes(mrk, "mrk")?),
            ),
            (None, None, Some(ks), Some(rand), Some(impi)) => {
                let mut ks = hex_bytes(ks, "ks")?;
                let rand: [u8; 16] = hex_bytes(rand, "rand")?;
                let naf = mbms_core::gba::naf_id(naf_fqdn, mbms_core::gba::UA_PROTOCOL_MBMS);
                let keys = mbms_core::gba::gba_u_keys(&ks, &rand, impi, &naf);
                zeroize::Zeroize::zeroize(&mut ks);
                keys
            }
            _ => return Err("give either muk and mrk, or ks, rand and impi".into()),
        };
        Ok(UeKeys {
            muk,
            mrk,
            expires: self.expires,
        })
    }
}

async fn admin_put_ue(State(app): State<Shared>, body: Bytes) -> Response {
    let req: NewUe = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let keys = match req.keys(&app.cfg.naf_fqdn) {
        Ok(k) => k,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let btid = req.btid;
    let b = btid.clone();
    match with_store(&app, move |s| s.put_ue(&b, &keys)).await {
        Ok(()) => {
            tracing::info!(%btid, "UE provisioned");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
struct BtidQuery {
    btid: String,
}

async fn admin_remove_ue(State(app): State<Shared>, Query(q): Query<BtidQuery>) -> Response {
    match with_store(&app, move |s| s.remove_ue(&q.btid)).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, "unknown B-TID\n").into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMsk {
    service: String,
}

#[derive(Debug, Serialize)]
struct NewMskReply {
    key_domain_id: String,
    msk_id: u32,
    pushed_to: usize,
}

/// `POST /admin/msk {"service": ID}`: a new MSK for the service (next Key Number in the
/// service's Key Group), made current, and pushed to every registered UE when the service
/// pushes.
async fn admin_new_msk(State(app): State<Shared>, body: Bytes) -> Response {
    let req: NewMsk = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let Some(svc) = app.cfg.service(&req.service).cloned() else {
        return (StatusCode::NOT_FOUND, "unknown service\n").into_response();
    };
    let created = new_msk_for(&app, &req.service, svc, true).await;
    let (msk, regs) = match created {
        Ok(Some(c)) => c,
        Ok(None) => {
            return (
                StatusCode::CONFLICT,
                "no MSK ID left in the service's key group\n",
            )
                .into_response();
        }
        Err(r) => return r,
    };
    let svc = app.cfg.service(&req.service);
    let pushes = svc.is_some_and(|s| s.pushes(&app.cfg.push));
    let kind = svc.map_or(ServiceKind::Streaming, |s| s.kind);
    let reply = NewMskReply {
        key_domain_id: hex::encode(msk.key_domain_id.0),
        msk_id: msk.msk_id.0,
        pushed_to: if pushes { regs.len() } else { 0 },
    };
    tracing::info!(service = %req.service, msk_id = msk.msk_id.0, pushed_to = reply.pushed_to, "new MSK");
    if pushes {
        push_to_all(&app, msk, regs, kind);
    }
    (StatusCode::CREATED, axum::Json(reply)).into_response()
}

fn push_to_all(app: &App, msk: MskFile, regs: Vec<mbms_keystore::Registration>, kind: ServiceKind) {
    let msk = Arc::new(msk);
    app.push.queue(
        regs.into_iter()
            .map(|r| PushJob {
                btid: r.btid,
                ue_addr: r.ue_addr,
                msk: msk.clone(),
                kind,
                shared_counter: true,
            })
            .collect(),
    );
}

/// Creates the next MSK of the service (next Key Number in its Key Group, above every MSK of
/// the group stored before), current at once or stored as the service's *next* MSK; returns
/// it with the service's registrations (`None`: no Key Number left).
async fn new_msk_for(
    app: &Shared,
    service: &str,
    svc: ServiceConfig,
    make_current: bool,
) -> Result<Option<(MskFile, Vec<mbms_keystore::Registration>)>, Response> {
    let mut key = [0u8; 16];
    let mut csb = [0u8; 4];
    {
        let mut rng = app.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.fill_bytes(&mut key);
        rng.fill_bytes(&mut csb);
    }
    let kd = app.key_domain;
    let service = service.to_owned();
    let created = with_store(app, move |s| {
        let group = svc.key_group();
        // Two instances on one store may pick the same number at once: the second put is
        // refused (same ID, other key) and takes the next one.
        let mut tries = 0;
        let msk = loop {
            let next = match s.highest_msk_id_in_group(kd, group)? {
                Some(h) => h.key_number().checked_add(1),
                None => Some(1),
            };
            let Some(number) = next else {
                return Ok(None);
            };
            let msk = MskFile {
                key_domain_id: kd,
                msk_id: MskId::new(group, number),
                msk: Msk::from_bytes(key),
                validity: svc.validity(),
                csb_id: CsbId(u32::from_be_bytes(csb)),
                rand: None,
            };
            let put = if make_current {
                s.put_msk(&service, &msk)
            } else {
                s.put_next_msk(&msk)
            };
            match put {
                Err(StoreError::MskConflict { .. }) if tries < 8 => tries += 1,
                Err(e) => return Err(e),
                Ok(()) => break msk,
            }
        };
        Ok(Some((msk, service)))
    })
    .await;
    zeroize::Zeroize::zeroize(&mut key);
    let Some((msk, service)) = created? else {
        return Ok(None);
    };
    // On a reader: listing a million registrations takes about a second, during which the
    // writer stays free for registrations (which push the MSK themselves once it is current).
    let regs = with_reader_blocking(app, move |s| s.registrations(&service)).await?;
    Ok(Some((msk, regs)))
}

/// The current MSK of the service and its next one (the highest MSK of its Key Group when
/// that is above the current).
fn current_and_next(
    s: &KeyStore,
    kd: KeyDomainId,
    service: &str,
    group: u16,
) -> Result<(Option<MskFile>, Option<MskFile>), StoreError> {
    let current = s.current_msk(service)?;
    let next = match (&current, s.highest_msk_id_in_group(kd, group)?) {
        (Some(c), Some(h)) if h > c.msk_id => s.msk(kd, h)?,
        _ => None,
    };
    Ok((current, next))
}

/// The MSK lifecycle of services with `msk_lifetime_secs` (TS 33.246 §6.3.2.1: current and
/// next MSK of one Key Group): a service without an MSK gets one; `msk_lead_secs` before the
/// current MSK's lifetime ends, the next MSK is created and pushed to the registered UEs; at
/// the end of the lifetime the next becomes current. The age of the current MSK counts from
/// when this process saw it become current (a restart starts it again).
///
/// For every service: `msk_retire_secs` after an MSK became current, the MSKs of its Key
/// Group below it are retired (their keys deleted from the store; see
/// [`KeyStore::retire_msks_before`]). Counted from when this process saw it become current,
/// so a restart only keeps old MSKs longer.
async fn msk_lifecycle(app: Shared, mut shutdown: watch::Receiver<bool>) {
    struct Seen {
        msk_id: MskId,
        since: std::time::Instant,
        retired: bool,
    }
    let seen_now = |msk_id| Seen {
        msk_id,
        since: std::time::Instant::now(),
        retired: false,
    };
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
            _ = tick.tick() => {}
        }
        for svc in app.cfg.services.clone() {
            let (kd, id, group) = (app.key_domain, svc.id.clone(), svc.key_group());
            let Ok((current, next)) =
                with_reader(&app, move |s| current_and_next(s, kd, &id, group)).await
            else {
                continue;
            };
            let pushes = svc.pushes(&app.cfg.push);
            let Some(current) = current else {
                if svc.msk_lifetime_secs.is_none() {
                    continue;
                }
                if let Ok(Some((msk, regs))) = new_msk_for(&app, &svc.id, svc.clone(), true).await {
                    tracing::info!(service = %svc.id, msk_id = msk.msk_id.0, "first MSK");
                    seen.insert(svc.id.clone(), seen_now(msk.msk_id));
                    if pushes {
                        push_to_all(&app, msk, regs, svc.kind);
                    }
                }
                continue;
            };
            let entry = seen
                .entry(svc.id.clone())
                .or_insert_with(|| seen_now(current.msk_id));
            if entry.msk_id != current.msk_id {
                // Made current by someone else (admin, another instance).
                *entry = seen_now(current.msk_id);
            }
            let age = entry.since.elapsed();
            if !entry.retired && age >= std::time::Duration::from_secs(svc.retire_secs()) {
                let msk_id = current.msk_id;
                match with_store(&app, move |s| s.retire_msks_before(kd, msk_id)).await {
                    Ok(gone) => {
                        entry.retired = true;
                        if !gone.is_empty() {
                            let gone: Vec<u32> = gone.iter().map(|m| m.0).collect();
                            tracing::info!(service = %svc.id, retired = ?gone, "MSKs retired");
                        }
                    }
                    // Logged by with_store; tried again at the next tick.
                    Err(_) => continue,
                }
            }
            let Some(lifetime) = svc.msk_lifetime_secs else {
                continue;
            };
            let lifetime = std::time::Duration::from_secs(lifetime);
            let lead = std::time::Duration::from_secs(svc.lead_secs());
            match next {
                None if age + lead >= lifetime => {
                    if let Ok(Some((msk, regs))) =
                        new_msk_for(&app, &svc.id, svc.clone(), false).await
                    {
                        tracing::info!(service = %svc.id, msk_id = msk.msk_id.0, "next MSK");
                        if pushes {
                            push_to_all(&app, msk, regs, svc.kind);
                        }
                    }
                }
                Some(next) if age >= lifetime => {
                    let id = svc.id.clone();
                    let msk_id = next.msk_id;
                    if with_store(&app, move |s| s.put_msk(&id, &next))
                        .await
                        .is_ok()
                    {
                        tracing::info!(service = %svc.id, msk_id = msk_id.0, "MSK switched");
                        *entry = seen_now(msk_id);
                    }
                }
                _ => {}
            }
        }
    }
}
