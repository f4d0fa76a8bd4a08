//! The BM-SC configuration: a TOML file (`--config`), every field with a default, flags on the
//! command line override it. `docs/bmsc.md` lists the fields; `docs/profile.md` the choices
//! behind the defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use mbms_core::{KeyDomainId, MtkId, MtkIdInterval};
use serde::Deserialize;

/// Default HTTP port of the UE-facing interface.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default address of the admin API (provisioning; loopback only by default).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";
/// Default UDP destination port of MSK pushes (unconfirmed point 8: `mikey`, 2269/udp).
pub const DEFAULT_PUSH_PORT: u16 = 2269;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the UE-facing HTTP interface.
    pub listen: SocketAddr,
    /// Address of the admin API.
    pub admin_listen: SocketAddr,
    /// Directory of the state (the SQLite key store `bmsc.db`).
    pub state_dir: PathBuf,
    /// The key store: `sqlite:PATH` or `postgres://…`, or empty for `state_dir/bmsc.db`.
    pub store: String,
    /// The BM-SC's FQDN: the HTTP Digest realm, and IDi (its NAF-ID) in MSK messages.
    pub naf_fqdn: String,
    /// Key Domain ID (MCC ‖ MNC, 3 bytes) of the MSKs this BM-SC creates, in hex.
    pub key_domain_id: String,
    /// How long a Digest nonce stays fresh, in seconds.
    pub nonce_max_age_secs: u64,
    /// Largest request body accepted, in bytes (larger: 413 before the body is read).
    pub max_body_bytes: usize,
    /// A reverse proxy trusted to tell the UE's address in `X-Forwarded-For`. Off by default:
    /// the UE's address is the source address of the registration request.
    pub trusted_proxy: Option<IpAddr>,
    /// MSK push settings.
    pub push: PushConfig,
    /// The MBMS user services.
    #[serde(rename = "service")]
    pub services: Vec<ServiceConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().unwrap_or_else(|_| unreachable!()),
            admin_listen: DEFAULT_ADMIN_LISTEN
                .parse()
                .unwrap_or_else(|_| unreachable!()),
            state_dir: PathBuf::from("bmsc-state"),
            store: String::new(),
            naf_fqdn: "bmsc.mbms.invalid".into(),
            key_domain_id: "00f110".into(),
            nonce_max_age_secs: 300,
            max_body_bytes: 16 * 1024,
            trusted_proxy: None,
            push: PushConfig::default(),
            services: Vec::new(),
        }
    }
}

/// How MSKs are pushed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Push MSKs unasked (after a registration and for each new MSK). `false` is the operator's
    /// global "no push" switch: UEs then request their MSKs (answers to requests are still
    /// sent over UDP).
    pub enabled: bool,
    /// UDP destination port on the UE.
    pub port: u16,
    /// Local UDP address pushes are sent from and verification replies arrive at.
    pub bind: SocketAddr,
    /// Set the V flag: ask UEs for a verification message.
    pub verify: bool,
    /// Retransmissions of an unverified message before the UE is marked for pull.
    pub retries: u32,
    /// Wait before the first retransmission, in milliseconds; doubled after each.
    pub first_retry_ms: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            port: DEFAULT_PUSH_PORT,
            bind: "0.0.0.0:0".parse().unwrap_or_else(|_| unreachable!()),
            verify: true,
            retries: 3,
            first_retry_ms: 1000,
        }
    }
}

/// Kind of MBMS user service: what the MSK message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// SRTP streaming: the MSK message carries the SRTP security policy (SP payload).
    #[default]
    Streaming,
    /// Download: Empty map, no SP (RFC 4563 §5).
    Download,
}

/// One MBMS user service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The service ID (a URI such as `urn:3gpp:mbms:service:tv1`).
    pub id: String,
    /// Streaming or download.
    #[serde(default)]
    pub kind: ServiceKind,
    /// Per-service "no push": `Some(false)` never pushes this service's MSKs; `None` follows
    /// `push.enabled`.
    #[serde(default)]
    pub push: Option<bool>,
    /// The window of the random back-off UEs apply before an MSK request (TS 33.246
    /// §6.3.2.2.1), in seconds, published in the service's security description.
    #[serde(default = "default_backoff")]
    pub backoff_window_secs: u32,
    /// Key Group of this service's MSKs (MSK ID bytes 0–1).
    #[serde(default)]
    pub key_group: Option<u16>,
    /// The MTK IDs each MSK may protect (KV interval), `[from, to]`.
    #[serde(default = "default_validity")]
    pub mtk_ids: [u16; 2],
    /// Lifetime of each MSK in seconds: the BM-SC then runs the service's MSKs itself (the
    /// next MSK delivered `msk_lead_secs` ahead, current at the end of the lifetime). Unset:
    /// MSKs change only on `POST /admin/msk`.
    #[serde(default)]
    pub msk_lifetime_secs: Option<u64>,
    /// How long before the switch the next MSK is created and pushed [default: a quarter of
    /// the lifetime, at least 1 s].
    #[serde(default)]
    pub msk_lead_secs: Option<u64>,
    /// How long an MSK is kept after it stopped being the service's current MSK; then its
    /// key is deleted from the store (retired) [default: 3600].
    #[serde(default)]
    pub msk_retire_secs: Option<u64>,
}

fn default_backoff() -> u32 {
    60
}

fn default_validity() -> [u16; 2] {
    [1, u16::MAX]
}

impl ServiceConfig {
    /// Whether this service's MSKs are pushed unasked.
    pub fn pushes(&self, push: &PushConfig) -> bool {
        self.push.unwrap_or(push.enabled) && push.enabled
    }

    /// Seconds between the next MSK's delivery and its use.
    pub fn lead_secs(&self) -> u64 {
        self.msk_lead_secs
            .unwrap_or_else(|| (self.msk_lifetime_secs.unwrap_or(0) / 4).max(1))
    }

    /// The Key Group of this service's MSKs (`key_group`, default 1).
    pub fn key_group(&self) -> u16 {
        self.key_group.unwrap_or(1)
    }

    /// Seconds an MSK is kept after it stopped being current.
    pub fn retire_secs(&self) -> u64 {
        self.msk_retire_secs.unwrap_or(3600)
    }

    /// The KV interval of this service's MSKs.
    pub fn validity(&self) -> MtkIdInterval {
        MtkIdInterval {
            from: MtkId(self.mtk_ids[0]),
            to: MtkId(self.mtk_ids[1]),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said (names the line).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("configuration: {0}")]
    Invalid(String),
    /// The directory of the SQLite key store could not be created.
    #[error("state directory {}: {source}", .path.display())]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// `N` bytes given as `2N` hex digits (keys in the admin API and on the command line).
pub fn hex_bytes<const N: usize>(s: &str, what: &str) -> Result<[u8; N], String> {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| format!("{what} must be {} hex digits", 2 * N))
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            // One line: the toml crate's own Display is a multi-line snippet.
            let at = e.span().map_or(String::new(), |span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: ")
            });
            ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("{at}{}", e.message().trim().replace('\n', "; ")),
            }
        })
    }

    /// The Key Domain ID, parsed.
    pub fn key_domain(&self) -> Result<KeyDomainId, ConfigError> {
        let bytes = hex::decode(&self.key_domain_id)
            .ok()
            .and_then(|b| <[u8; 3]>::try_from(b).ok())
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "key_domain_id {:?} is not 3 bytes of hex (MCC ‖ MNC)",
                    self.key_domain_id
                ))
            })?;
        Ok(KeyDomainId(bytes))
    }

    /// The key store URL: `sqlite:PATH` (default `sqlite:STATE_DIR/bmsc.db`) or a PostgreSQL
    /// URL (`postgres://user:password@host/db`), for several instances sharing one state.
    pub fn store_url(&self) -> Result<String, ConfigError> {
        if self.store.is_empty() {
            return Ok(format!(
                "sqlite:{}",
                self.state_dir.join("bmsc.db").display()
            ));
        }
        if self.store.starts_with("sqlite:")
            || self.store.starts_with("postgres://")
            || self.store.starts_with("postgresql://")
        {
            return Ok(self.store.clone());
        }
        Err(ConfigError::Invalid(
            "store: expected sqlite:PATH or postgres://…".into(),
        ))
    }

    /// The SQLite file of the key store, when it is one.
    pub fn sqlite_path(&self) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self
            .store_url()?
            .strip_prefix("sqlite:")
            .map(|p| PathBuf::from(p.strip_prefix("//").unwrap_or(p))))
    }

    /// Creates the directory of the SQLite key store file (nothing for PostgreSQL).
    pub fn create_store_dir(&self) -> Result<(), ConfigError> {
        let path = self.sqlite_path()?;
        let Some(dir) = path
            .as_deref()
            .and_then(std::path::Path::parent)
            .filter(|d| !d.as_os_str().is_empty())
        else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).map_err(|source| ConfigError::StateDir {
            path: dir.to_path_buf(),
            source,
        })
    }

    /// Checks what serde cannot: ranges, duplicates, the key domain.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.key_domain()?;
        self.store_url()?;
        if self.naf_fqdn.is_empty() || self.naf_fqdn.len() > 255 {
            return Err(ConfigError::Invalid(
                "naf_fqdn must be 1..=255 bytes".into(),
            ));
        }
        if !(1..=86_400).contains(&self.nonce_max_age_secs) {
            return Err(ConfigError::Invalid(
                "nonce_max_age_secs must be 1..=86400".into(),
            ));
        }
        if !(256..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be 256..=16777216".into(),
            ));
        }
        if self.push.port == 0 {
            return Err(ConfigError::Invalid("push.port must not be 0".into()));
        }
        if self.push.retries > 16 || !(10..=600_000).contains(&self.push.first_retry_ms) {
            return Err(ConfigError::Invalid(
                "push.retries must be 0..=16 and push.first_retry_ms 10..=600000".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.services {
            if s.id.is_empty() || s.id.len() > 1024 {
                return Err(ConfigError::Invalid(format!(
                    "service id {:?} must be 1..=1024 bytes",
                    s.id
                )));
            }
            if !seen.insert(&s.id) {
                return Err(ConfigError::Invalid(format!(
                    "service {:?} is listed twice",
                    s.id
                )));
            }
            if let Some(life) = s.msk_lifetime_secs
                && (!(2..=10 * 365 * 86_400).contains(&life) || s.lead_secs() >= life)
            {
                return Err(ConfigError::Invalid(format!(
                    "service {:?}: msk_lifetime_secs must be 2 s to 10 years and \
                     msk_lead_secs below it",
                    s.id
                )));
            }
            if s.retire_secs() > 10 * 365 * 86_400 {
                return Err(ConfigError::Invalid(format!(
                    "service {:?}: msk_retire_secs must be at most 10 years",
                    s.id
                )));
            }
            if s.mtk_ids[0] > s.mtk_ids[1] {
                return Err(ConfigError::Invalid(format!(
                    "service {:?}: mtk_ids [from, to] with from > to",
                    s.id
                )));
            }
        }
        Ok(())
    }

    /// The service with ID `id`.
    pub fn service(&self, id: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_service(lines: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(&format!(
            "[[service]]\nid = \"urn:3gpp:mbms:service:tv1\"\n{lines}\n"
        ))
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        cfg.validate().map(|()| cfg)
    }

    #[test]
    fn msk_timing_defaults_and_limits() {
        let cfg = with_service("").unwrap();
        let s = &cfg.services[0];
        assert_eq!((s.msk_lifetime_secs, s.retire_secs()), (None, 3600));
        let cfg = with_service("msk_lifetime_secs = 400").unwrap();
        assert_eq!(
            cfg.services[0].lead_secs(),
            100,
            "a quarter of the lifetime"
        );
        let cfg = with_service("msk_retire_secs = 0").unwrap();
        assert_eq!(cfg.services[0].retire_secs(), 0);
        for bad in [
            "msk_lifetime_secs = 1",
            "msk_lifetime_secs = 10\nmsk_lead_secs = 10",
            "msk_retire_secs = 400000000",
            "msk_retire_secs = -1",
        ] {
            assert!(with_service(bad).is_err(), "{bad}");
        }
    }
}
