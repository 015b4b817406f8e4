//! A throwaway PostgreSQL cluster for tests (feature `testing`): `initdb` and
//! `pg_ctl` on a free 127.0.0.1 port in a temp dir, stopped by its own pid.
//!
//! As root (CI), the server runs as the `postgres` system user, because
//! `initdb` refuses root. Under `CI=true` a missing server is a failure that
//! says how to install it; elsewhere [`TestCluster::start`] returns `None`.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How clients authenticate over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No password needed.
    Trust,
    /// `scram-sha-256` with the superuser password [`TestCluster::PASSWORD`].
    Scram,
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct TestCluster {
    /// Loopback port it listens on.
    pub port: u16,
    /// Folder of the PostgreSQL binaries used.
    pub bindir: PathBuf,
    dir: tempfile::TempDir,
    run_as: Option<&'static str>,
}

impl TestCluster {
    /// Superuser name.
    pub const USER: &'static str = "postgres";
    /// Superuser password under [`Auth::Scram`].
    pub const PASSWORD: &'static str = "s3cret-Test-pw";

    /// Starts a cluster, or returns `None` (outside CI) when PostgreSQL is missing.
    ///
    /// # Panics
    /// When the cluster cannot start, or under `CI=true` when PostgreSQL is missing.
    pub fn start(auth: Auth) -> Option<TestCluster> {
        let Some(bindir) = find_bindir() else {
            let msg = "PostgreSQL server binaries not found: apt-get install -y postgresql postgresql-contrib (scripts/test-all.sh does)";
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
            eprintln!("SKIPPED (not under CI): {msg}");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("backupapps-pg-").tempdir().unwrap();
        let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let run_as = as_root.then_some("postgres");
        if as_root {
            chown_postgres(dir.path());
        }
        let data = dir.path().join("data");
        let mut initdb = vec![
            bindir.join("initdb").display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-U".into(),
            Self::USER.into(),
            "--auth-local=trust".into(),
            "--no-sync".into(),
            "-E".into(),
            "UTF8".into(),
            "--locale=C".into(),
        ];
        match auth {
            Auth::Trust => initdb.push("--auth-host=trust".into()),
            Auth::Scram => {
                let pwfile = dir.path().join("pw");
                std::fs::write(&pwfile, Self::PASSWORD).unwrap();
                if as_root {
                    chown_postgres(&pwfile);
                }
                initdb.push("--auth-host=scram-sha-256".into());
                initdb.push(format!("--pwfile={}", pwfile.display()));
            }
        }
        run(run_as, &initdb);
        let cluster = TestCluster {
            port: free_port(),
            bindir,
            dir,
            run_as,
        };
        cluster.start_server();
        Some(cluster)
    }

    /// Starts the server (again, after [`TestCluster::stop`]) and waits until it accepts connections.
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
            self.port,
            self.dir.path().display()
        );
        run(
            self.run_as,
            &[
                self.bindir.join("pg_ctl").display().to_string(),
                "-D".into(),
                self.dir.path().join("data").display().to_string(),
                "-o".into(),
                opts,
                "-l".into(),
                self.dir.path().join("log").display().to_string(),
                "-w".into(),
                "-t".into(),
                "60".into(),
                "start".into(),
            ],
        );
    }

    /// The postmaster's pid, from `postmaster.pid`.
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Environment for libpq tools (psql, pg_dump) to reach this cluster.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), "127.0.0.1".into()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), Self::USER.into()),
        ]
    }

    /// Runs SQL with `psql` as the superuser on `db`; returns the unaligned output.
    ///
    /// # Panics
    /// When psql fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
            .envs(self.env())
            .env("PGPASSWORD", Self::PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Stops the server (fast shutdown), waiting until its pid is gone.
    pub fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn find_bindir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .collect();
    candidates.sort();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    candidates
        .into_iter()
        .rev()
        .find(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn chown_postgres(path: &Path) {
    let ok = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success(), "chown postgres {}", path.display());
}

fn run(run_as: Option<&str>, argv: &[String]) {
    let mut cmd = match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).args(argv);
            c
        }
        None => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    let out = cmd.current_dir("/").output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
