//! Azurite's blob service (npm `azurite`, binary `azurite-blob`) on a free
//! 127.0.0.1 port, storing in a temp dir, stopped by the pid it started.
//!
//! Under `CI=true` a missing Azurite is a failure that says how to install
//! it; elsewhere [`AzuriteServer::start`] returns `None`.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::Mac as _;

/// The development account Azurite knows.
pub const ACCOUNT: &str = crate::azure::DEV_ACCOUNT;
/// Its well-known key.
pub const ACCOUNT_KEY: &str = crate::azure::DEV_KEY;

const INSTALL: &str =
    "npm install -g azurite (with Node.js from `apt-get install -y nodejs npm`; scripts/test-all.sh does)";

/// A running Azurite blob service.
#[derive(Debug)]
pub struct AzuriteServer {
    /// Blob port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

fn binary() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("azurite-blob"))
        .find(|p| p.is_file())
}

impl AzuriteServer {
    /// Starts Azurite, or returns `None` (outside CI) when it is not installed.
    ///
    /// # Panics
    /// When it cannot start, or under `CI=true` when it is not installed.
    pub fn start() -> Option<AzuriteServer> {
        let Some(bin) = binary() else {
            let msg = format!("Azurite (azurite-blob) is not on PATH: {INSTALL}");
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
            eprintln!("SKIPPED (not under CI): {msg}");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("backupapps-azurite-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("azurite.log")).unwrap();
        let child = Command::new(bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
            .arg(dir.path().join("data"))
            // object_store may speak a newer API version than this Azurite knows.
            .args(["--silent", "--skipApiVersionCheck"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = AzuriteServer { port, dir, child };
        server.wait_ready();
        Some(server)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Azurite did not start in 60 s; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The blob endpoint, path style: `http://127.0.0.1:PORT/devstoreaccount1`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// A connection string for this server (`AZURE_STORAGE_CONNECTION_STRING`).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={};",
            self.endpoint()
        )
    }

    /// Creates the container `name` (a signed `PUT ?restype=container`,
    /// sent with `curl`); an existing one is fine.
    ///
    /// # Panics
    /// When Azurite refuses.
    pub fn create_container(&self, name: &str) {
        self.create_container_with(name, false);
    }

    /// As [`AzuriteServer::create_container`]; with `public_read` anyone may
    /// list and read its blobs (`x-ms-blob-public-access: container`), so
    /// that tests can download them with plain `curl`.
    ///
    /// # Panics
    /// When Azurite refuses.
    pub fn create_container_with(&self, name: &str, public_read: bool) {
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let version = "2021-08-06";
        let public = if public_read {
            "x-ms-blob-public-access:container\n"
        } else {
            ""
        };
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\n{public}x-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        );
        let key = base64::engine::general_purpose::STANDARD.decode(ACCOUNT_KEY).unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
            .args(["-H", "Content-Length: 0", "-H", &format!("x-ms-date: {date}")])
            .args(["-H", &format!("x-ms-version: {version}")])
            .args(if public_read {
                &["-H", "x-ms-blob-public-access: container"][..]
            } else {
                &[]
            })
            .args(["-H", &format!("Authorization: SharedKey {ACCOUNT}:{signature}")])
            .arg(format!("{}/{name}?restype=container", self.endpoint()))
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            code == "201" || code == "409",
            "creating container {name} in Azurite: HTTP {code}; log:\n{}",
            self.logs()
        );
    }

    /// Azurite's log, for assertion messages.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("azurite.log")).unwrap_or_default()
    }

    /// A server shared by the tests of one process that overlap in time; it
    /// stops when the last of them drops its handle.
    pub fn shared() -> Option<Arc<AzuriteServer>> {
        static SHARED: Mutex<Weak<AzuriteServer>> = Mutex::new(Weak::new());
        let mut guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = guard.upgrade() {
            return Some(server);
        }
        let server = Arc::new(AzuriteServer::start()?);
        *guard = Arc::downgrade(&server);
        Some(server)
    }
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
