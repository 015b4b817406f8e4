//! A real Keystone (Debian's python3-keystone) on loopback: sqlite in WAL
//! mode, fernet tokens, `keystone-wsgi-public`, stopped by its pid. Cold start
//! takes about 15 s, so the tests that need it are opt-in:
//! `BACKUPAPPS_TEST_KEYSTONE=1` (CI sets it).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the Keystone tests are switched on.
pub(crate) fn keystone_tests_enabled() -> bool {
    std::env::var("BACKUPAPPS_TEST_KEYSTONE").is_ok_and(|v| v == "1")
}

/// A running Keystone.
#[derive(Debug)]
pub struct KeystoneServer {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Password of `admin` (project `admin`).
    pub admin_password: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// What [`KeystoneServer::provision`] made.
#[derive(Debug, Clone)]
pub struct KeystoneAccount {
    /// Project `backups`.
    pub project_id: String,
    /// User `backupper`'s password.
    pub password: String,
    /// An application credential of `backupper`.
    pub app_cred_id: String,
    /// Its secret.
    pub app_cred_secret: String,
}

const PACKAGES: &str = "apt-get install -y keystone python3-keystone python3-keystonemiddleware";

impl KeystoneServer {
    /// Starts Keystone when `BACKUPAPPS_TEST_KEYSTONE=1`; `None` otherwise.
    ///
    /// # Panics
    /// When switched on but missing or failing to start.
    pub fn start() -> Option<KeystoneServer> {
        if !keystone_tests_enabled() {
            eprintln!("Keystone tests are opt-in: set BACKUPAPPS_TEST_KEYSTONE=1 (CI does)");
            return None;
        }
        let present = Path::new("/usr/bin/keystone-manage").exists()
            && Path::new("/usr/bin/keystone-wsgi-public").exists()
            && Command::new("/usr/bin/python3")
                .args(["-c", "import keystonemiddleware"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            present,
            "Keystone is not installed: run `{PACKAGES}` (scripts/test-all.sh does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("backupapps-keystone-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.path();
        std::fs::create_dir_all(d.join("fernet")).unwrap();
        std::fs::create_dir_all(d.join("cred")).unwrap();
        let conf = d.join("keystone.conf");
        std::fs::write(
            &conf,
            format!(
                "[DEFAULT]\nuse_stderr = true\n[database]\nconnection = sqlite:///{db}\n[token]\nprovider = fernet\nexpiration = 3600\n[fernet_tokens]\nkey_repository = {d}/fernet\n[credential]\nkey_repository = {d}/cred\n",
                db = d.join("keystone.db").display(),
                d = d.display()
            ),
        )
        .unwrap();
        // Without WAL, sqlite answers concurrent requests with "database is locked" (500).
        run(Command::new("/usr/bin/python3").args([
            "-c",
            &format!(
                "import sqlite3; sqlite3.connect({:?}).execute('PRAGMA journal_mode=WAL')",
                d.join("keystone.db").display().to_string()
            ),
        ]));
        let admin_password = "admin-secret-pw".to_owned();
        let url = format!("http://127.0.0.1:{port}/v3/");
        for args in [
            vec!["db_sync".to_owned()],
            vec![
                "fernet_setup".into(),
                "--keystone-user".into(),
                "root".into(),
                "--keystone-group".into(),
                "root".into(),
            ],
            vec![
                "credential_setup".into(),
                "--keystone-user".into(),
                "root".into(),
                "--keystone-group".into(),
                "root".into(),
            ],
            vec![
                "bootstrap".into(),
                "--bootstrap-password".into(),
                admin_password.clone(),
                "--bootstrap-admin-url".into(),
                url.clone(),
                "--bootstrap-public-url".into(),
                url.clone(),
                "--bootstrap-internal-url".into(),
                url.clone(),
                "--bootstrap-region-id".into(),
                "RegionOne".into(),
            ],
        ] {
            run(Command::new("keystone-manage")
                .arg("--config-file")
                .arg(&conf)
                .args(&args)
                .current_dir(d));
        }
        let log = std::fs::File::create(d.join("keystone.log")).unwrap();
        let child = Command::new("keystone-wsgi-public")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("OS_KEYSTONE_CONFIG_FILES", &conf)
            .current_dir(d)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let server = KeystoneServer {
            port,
            admin_password,
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !Command::new("curl")
            .args(["-sf", "-o", "/dev/null", &server.url()])
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                Instant::now() < deadline,
                "Keystone did not start; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        Some(server)
    }

    /// `http://127.0.0.1:PORT/v3`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v3", self.port)
    }

    /// Registers the Swift on `swift_port` as object-store and makes project
    /// `backups`, user `backupper` (member) and an application credential.
    ///
    /// # Panics
    /// When provisioning fails.
    pub fn provision(&self, swift_port: u16) -> KeystoneAccount {
        let script = self.dir.path().join("provision.py");
        std::fs::write(&script, include_str!("provision_keystone.py")).unwrap();
        let password = "backupper-pw".to_owned();
        let out = Command::new("/usr/bin/python3")
            .arg(&script)
            .args([
                self.url(),
                swift_port.to_string(),
                self.admin_password.clone(),
                password.clone(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "provisioning Keystone failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let field = |k: &str| doc[k].as_str().unwrap().to_owned();
        KeystoneAccount {
            project_id: field("project_id"),
            password,
            app_cred_id: field("app_cred_id"),
            app_cred_secret: field("app_cred_secret"),
        }
    }

    /// The server log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("keystone.log")).unwrap_or_default()
    }
}

impl Drop for KeystoneServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
