//! A real OpenStack Swift all-in-one for tests: Debian's
//! packages, started on free 127.0.0.1 ports in a temp dir with tempauth,
//! memcached, one-replica rings and storage on tmpfs (ext4's xattr limit makes
//! Swift fail on larger metadata), stopped by the pids it started. The proxy
//! also speaks S3 (the `s3api` middleware: SigV4, path style, the tempauth
//! user as access key) at [`SwiftServer::s3_endpoint`].
//!
//! Under `CI=true` a missing Swift is a failure that says how to install it;
//! elsewhere [`SwiftServer::start`] returns `None`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};

use std::time::{Duration, Instant};

/// The test cluster's `max_file_size` (small, so that tests can exceed it).
pub const MAX_FILE_SIZE: u64 = 5 << 20;

/// The tempauth user the server knows.
pub const USER: &str = "test:tester";
/// Its key.
pub const KEY: &str = "testing";

/// The S3 access key id of the `s3api` endpoint: the tempauth user.
pub const S3_ACCESS_KEY_ID: &str = USER;
/// The S3 secret access key: the tempauth user's key.
pub const S3_SECRET_ACCESS_KEY: &str = KEY;
/// The region the `s3api` endpoint signs for.
pub const S3_REGION: &str = "us-east-1";

/// A running Swift.
#[derive(Debug)]
pub struct SwiftServer {
    /// Proxy port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    /// The object server's tmpfs storage, removed with the server.
    _devices: tempfile::TempDir,
    children: Vec<Child>,
}

const PACKAGES: &str =
    "apt-get install -y swift swift-proxy swift-object swift-container swift-account memcached python3-swiftclient";

fn installed() -> bool {
    [
        "/usr/bin/swift-ring-builder",
        "/usr/bin/memcached",
        "/usr/bin/swift-proxy-server",
        "/usr/bin/swift-object-server",
    ]
    .iter()
    .all(|p| Path::new(p).exists())
}

impl SwiftServer {
    /// Starts Swift, or returns `None` (outside CI) when it is not installed.
    ///
    /// # Panics
    /// When it cannot start, or under `CI=true` when it is not installed.
    pub fn start() -> Option<SwiftServer> {
        Self::start_with(None)
    }

    /// Starts Swift that also accepts Keystone tokens from `keystone`
    /// (`authtoken` + `keystoneauth`, accounts `KEY_<project id>`), beside tempauth.
    ///
    /// # Panics
    /// As [`SwiftServer::start`].
    pub fn start_with(keystone: Option<&super::KeystoneServer>) -> Option<SwiftServer> {
        if !installed() {
            let msg = format!("OpenStack Swift is not installed: run `{PACKAGES}` (scripts/test-all.sh does)");
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
            eprintln!("SKIPPED (not under CI): {msg}");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("backupapps-swift-").tempdir().unwrap();
        let devices = tempfile::Builder::new()
            .prefix("backupapps-swift-")
            .tempdir_in(shm())
            .unwrap();
        std::fs::create_dir_all(devices.path().join("d1")).unwrap();
        let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
        let (proxy, account, container, object, memcache) = (ports[0], ports[1], ports[2], ports[3], ports[4]);
        let swift_dir = dir.path();
        std::fs::write(
            swift_dir.join("swift.conf"),
            format!("[swift-hash]\nswift_hash_path_suffix = backupapps\nswift_hash_path_prefix = backupapps\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n[swift-constraints]\nmax_file_size = {MAX_FILE_SIZE}\n"),
        )
        .unwrap();
        for (kind, port) in [("account", account), ("container", container), ("object", object)] {
            ring(swift_dir, kind, port);
            std::fs::write(
                swift_dir.join(format!("{kind}-server.conf")),
                format!(
                    "[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = {port}\ndevices = {}\nmount_check = false\nworkers = 0\nswift_dir = {}\nlog_level = WARNING\n[pipeline:main]\npipeline = {kind}-server\n[app:{kind}-server]\nuse = egg:swift#{kind}\n",
                    devices.path().display(),
                    swift_dir.display()
                ),
            )
            .unwrap();
        }
        std::fs::write(
            swift_dir.join("proxy-server.conf"),
            proxy_conf(proxy, memcache, swift_dir, keystone),
        )
        .unwrap();
        let mut server = SwiftServer {
            port: proxy,
            dir,
            _devices: devices,
            children: Vec::new(),
        };
        let memcached = Command::new("memcached")
            .args(["-u", "root", "-l", "127.0.0.1", "-p", &memcache.to_string(), "-U", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        server.children.push(memcached);
        for kind in ["account", "container", "object", "proxy"] {
            server.children.push(server.wsgi(kind));
        }
        server.wait_ready();
        Some(server)
    }

    /// A `python3` running one Swift server, with `swift.conf` from our temp dir.
    fn wsgi(&self, kind: &str) -> Child {
        let script = format!(
            "import sys\nimport swift.common.utils as u\nu.SWIFT_CONF_FILE = {conf:?}\nfrom swift.common.wsgi import run_wsgi\nsys.exit(run_wsgi({server:?}, '{kind}-server'))\n",
            conf = self.dir.path().join("swift.conf").display().to_string(),
            server = self.dir.path().join(format!("{kind}-server.conf")).display().to_string(),
        );
        let log = std::fs::File::create(self.dir.path().join(format!("{kind}.log"))).unwrap();
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-H",
                    &format!("X-Auth-User: {USER}"),
                    "-H",
                    &format!("X-Auth-Key: {KEY}"),
                ])
                .arg(self.auth_url())
                .output();
            if out.is_ok_and(|o| o.stdout == b"200") {
                // The proxy answers before the storage servers do: probe one write.
                if self.probe() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Swift did not start in 60 s; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn probe(&self) -> bool {
        let out = Command::new("swift")
            .args([
                "-q",
                "-V",
                "1",
                "-A",
                &self.auth_url(),
                "-U",
                USER,
                "-K",
                KEY,
                "post",
                "probe",
            ])
            .env_remove("OS_AUTH_URL")
            .output();
        out.is_ok_and(|o| o.status.success())
    }

    /// The v1 auth URL.
    pub fn auth_url(&self) -> String {
        format!("http://127.0.0.1:{}/auth/v1.0", self.port)
    }

    /// The S3 endpoint of Swift's `s3api` middleware (SigV4, path-style
    /// addressing; a bucket is a container of the tempauth user's account).
    pub fn s3_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Arguments for `swift` (python-swiftclient) to reach this server with v1 auth.
    pub fn cli_args(&self) -> Vec<String> {
        vec![
            "-V".into(),
            "1".into(),
            "-A".into(),
            self.auth_url(),
            "-U".into(),
            USER.into(),
            "-K".into(),
            KEY.into(),
        ]
    }

    /// The servers' logs, for assertion messages.
    pub fn logs(&self) -> String {
        ["account", "container", "object", "proxy"]
            .iter()
            .map(|k| {
                format!(
                    "== {k}\n{}",
                    std::fs::read_to_string(self.dir.path().join(format!("{k}.log"))).unwrap_or_default()
                )
            })
            .collect()
    }

    /// A server shared by the tests of one process that overlap in time; it
    /// stops when the last of them drops its handle.
    pub fn shared() -> Option<Arc<SwiftServer>> {
        static SHARED: Mutex<Weak<SwiftServer>> = Mutex::new(Weak::new());
        let mut guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = guard.upgrade() {
            return Some(server);
        }
        let server = Arc::new(SwiftServer::start()?);
        *guard = Arc::downgrade(&server);
        Some(server)
    }
}

impl Drop for SwiftServer {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn shm() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn ring(dir: &Path, kind: &str, port: u16) {
    let builder = dir.join(format!("{kind}.builder"));
    for args in [
        vec!["create", "8", "1", "0"],
        vec!["add", &format!("r1z1-127.0.0.1:{port}/d1"), "1"],
        vec!["rebalance"],
    ] {
        let out = Command::new("swift-ring-builder")
            .arg(&builder)
            .args(&args)
            .current_dir(dir)
            .output()
            .unwrap();
        // rebalance exits 1 with a warning on a one-device ring; the ring file is what counts.
        assert!(
            out.status.success() || args[0] == "rebalance",
            "swift-ring-builder {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(dir.join(format!("{kind}.ring.gz")).exists(), "no {kind} ring");
}

fn proxy_conf(port: u16, memcache: u16, swift_dir: &Path, keystone: Option<&super::KeystoneServer>) -> String {
    let (auth_filters, keystone_sections) = match keystone {
        None => ("tempauth", String::new()),
        Some(ks) => (
            "authtoken keystoneauth tempauth",
            format!(
                "[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = {url}
auth_url = http://127.0.0.1:{port}
auth_type = password
project_domain_id = default
user_domain_id = default
project_name = admin
username = admin
password = {pw}
delay_auth_decision = True
memcached_servers = 127.0.0.1:{memcache}
[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = admin, member
reseller_prefix = KEY_
",
                url = ks.url(),
                port = ks.port,
                pw = ks.admin_password,
            ),
        ),
    };
    format!(
        "[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
swift_dir = {dir}
log_level = WARNING
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api {auth_filters} slo dlo copy proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = {KEY} .admin
token_life = 86400
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcache}
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:copy]
use = egg:swift#copy
[filter:s3api]
use = egg:swift#s3api
location = {S3_REGION}
{keystone_sections}",
        dir = swift_dir.display()
    )
}
