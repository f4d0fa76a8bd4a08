//! `--config`: a TOML file of `[[service]]` tables; `--service` picks one, flags override it,
//! and a mistake in the file is an error that names it.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use common::{Output, args, new_msk, run, seq_ssrc};

struct Files {
    dir: tempfile::TempDir,
    key: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = common::tempdir();
        let key = dir.path().join("cfg.msk");
        new_msk(&dir.path().join("keys"), "default", &key);
        Self { dir, key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A config of services `a` and `b`, each with its own ports, streams and pcap, all
    /// `--no-network`, `--fast`, generating 30 packets; `extra_b` is appended to `b`'s table.
    fn two_services(&self, extra_b: &str) -> PathBuf {
        let p = self.path("services.toml");
        let state = self.path("state");
        let (key, state) = (self.key.display(), state.display());
        let (pa, pb) = (self.path("a.pcap"), self.path("b.pcap"));
        let text = format!(
            r#"
[[service]]
name = "a"
port = 27000
mikey_port = 27001
streams = 1
payload_size = 50
generate = true
count = 30
fast = true
no_network = true
msk_file = "{key}"
state_dir = "{state}"
pcap_out = "{pa}"

[[service]]
name = "b"
port = 27002
mikey_port = 27003
streams = 3
payload_size = 100
generate = true
count = 30
fast = true
no_network = true
msk_file = "{key}"
state_dir = "{state}"
pcap_out = "{pb}"
{extra_b}
"#,
            pa = pa.display(),
            pb = pb.display()
        );
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn send(config: &Path, service: &str, extra: &[&str]) -> Output {
    let mut a = args([
        "send",
        "--config",
        config.to_str().unwrap(),
        "--service",
        service,
        "--progress",
        "never",
    ]);
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    run(a)
}

/// (media ports, MIKEY ports, SSRCs, media payload lengths) of a pcap.
fn summary(pcap: &Path) -> (HashSet<u16>, HashSet<u16>, HashSet<u32>, HashSet<usize>) {
    let sent = common::read_complete_pcap(pcap);
    let mut s = (
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
    );
    for d in &sent {
        // MIKEY messages start with version 1; RTP with version 2 (0x80).
        if d.payload[0] == 1 {
            s.1.insert(d.dst.port());
        } else {
            s.0.insert(d.dst.port());
            s.2.insert(seq_ssrc(&d.payload).1);
            s.3.insert(d.payload.len());
        }
    }
    s
}

/// `--service b` takes b's table (ports, three streams, payload size, its pcap), not a's.
#[test]
fn config_service_table_is_used() {
    let f = Files::new();
    let cfg = f.two_services("");
    let out = send(&cfg, "b", &[]);
    out.assert_success();
    assert_eq!(out.stats()["packets"], 30);
    assert!(!f.path("a.pcap").exists(), "service a ran");
    let (media, mikey, ssrcs, lens) = summary(&f.path("b.pcap"));
    assert_eq!(media, HashSet::from([27_002]));
    assert_eq!(mikey, HashSet::from([27_003]));
    assert_eq!(ssrcs.len(), 3);
    // 12-byte header + 100 payload bytes + 6-byte MKI + 10-byte tag.
    assert_eq!(lens, HashSet::from([128]));
}

/// A flag beats the file: `--port` and `--count` on the command line win, the rest of b's
/// table still applies.
#[test]
fn config_flag_overrides_file() {
    let f = Files::new();
    let cfg = f.two_services("");
    let out = send(&cfg, "b", &["--port", "27009", "--count", "12"]);
    out.assert_success();
    assert_eq!(out.stats()["packets"], 12);
    let (media, mikey, ssrcs, _) = summary(&f.path("b.pcap"));
    assert_eq!(media, HashSet::from([27_009]));
    assert_eq!(mikey, HashSet::from([27_003]));
    assert_eq!(ssrcs.len(), 3);
}

/// An unknown key in a service table: the error names the file, the service and the key.
#[test]
fn config_unknown_key_is_refused() {
    let f = Files::new();
    let cfg = f.two_services("rotate_sceonds = 5");
    let out = send(&cfg, "b", &[]);
    let err = out.assert_failure();
    assert!(err.contains("services.toml"), "{err}");
    assert!(err.contains("rotate_sceonds"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
    assert!(err.contains("\"b\""), "{err}");
}

/// A service that is not in the file, a value of the wrong type, and a file that is not TOML:
/// each an error naming the file.
#[test]
fn config_other_mistakes_are_refused() {
    let f = Files::new();
    let cfg = f.two_services("");
    let err = send(&cfg, "c", &[]).assert_failure().to_owned();
    assert!(err.contains("no [[service]] named \"c\""), "{err}");

    let cfg = f.two_services("ttl = \"high\"");
    let err = send(&cfg, "b", &[]).assert_failure().to_owned();
    assert!(
        err.contains("services.toml") && err.contains("ttl"),
        "{err}"
    );

    let bad = f.path("broken.toml");
    std::fs::write(&bad, "[[service]\nname = ").unwrap();
    let err = send(&bad, "b", &[]).assert_failure().to_owned();
    assert!(err.contains("broken.toml"), "{err}");
}

/// `--help` says the tables take "the long option names as keys"; the long options are
/// kebab-case (`--mikey-port`), so a file written from `--help` uses `mikey-port`.
#[test]
fn config_accepts_long_option_names() {
    let f = Files::new();
    let cfg = f.two_services("");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("mikey_port", "mikey-port")
        .replace("payload_size", "payload-size")
        .replace("no_network", "no-network");
    std::fs::write(&cfg, text).unwrap();
    send(&cfg, "b", &[]).assert_success();
    let (_, mikey, _, _) = summary(&f.path("b.pcap"));
    assert_eq!(mikey, HashSet::from([27_003]));
}
