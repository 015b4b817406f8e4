//! A program to run: argv, working folder, extra environment.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::error::CommandError;

/// An argv (no shell involved), with its working folder and environment.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    argv: Vec<String>,
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
    removed: Vec<String>,
}

impl CommandSpec {
    /// A program and its arguments.
    ///
    /// # Errors
    /// [`CommandError::Empty`] for an empty argv or an empty program name.
    pub fn new(argv: Vec<String>) -> Result<Self, CommandError> {
        if argv.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(CommandError::Empty);
        }
        Ok(CommandSpec {
            argv,
            dir: None,
            env: Vec::new(),
            removed: Vec::new(),
        })
    }

    /// Runs the program in `dir` (default: this process's current folder).
    #[must_use]
    pub fn with_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Adds `key=value` to the program's environment.
    #[must_use]
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Leaves `key` out of the environment the program inherits (a secret it does not need).
    #[must_use]
    pub fn without_env(mut self, key: impl Into<String>) -> Self {
        self.removed.push(key.into());
        self
    }

    /// The program (argv\[0\]).
    pub fn program(&self) -> &str {
        &self.argv[0]
    }

    /// The whole argv.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The command, in a process group of its own (so that killing the
    /// group also ends what a shell script started) and killed when dropped.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]).process_group(0).kill_on_drop(true);
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        for k in &self.removed {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub(crate) fn start_error(&self, source: std::io::Error) -> CommandError {
        CommandError::Start {
            program: self.program().to_owned(),
            source,
        }
    }
}

/// Where `program` would be found when run in `dir`: a path with a `/`
/// (relative to `dir`), else the first executable file of that name on
/// `PATH`. `None` when there is none.
pub fn find_program(program: &str, dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let path = dir.join(program);
        return executable(&path).then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| dir.join(d).join(program))
        .find(|p| executable(p))
}
