//! One run per output directory: `RUN/.lock` holds the training process's id while it runs.
//!
//! A second `segda train` (or `sweep`) into the same directory is refused with the holder's
//! id; a lock left by a process that no longer exists (killed, machine rebooted) is stale and
//! taken over. A stage that another process is training is waited for (`engine::stages`).
use crate::error::{Error, IoContext, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = ".lock";

/// Held for as long as the run trains; removed when dropped (also on errors and Ctrl-C).
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `run` (created if missing), or says which live process holds it.
    pub fn acquire(run: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(run).at(run)?;
        let path = run.join(FILE);
        for _ in 0..3 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id()).at(&path)?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match holder(run) {
                    Some(pid) => {
                        return Err(Error::format(
                            run,
                            format!(
                                "another segda process (pid {pid}) is training into this directory; \
                                 wait for it, stop it, or choose another --out"
                            ),
                        ))
                    }
                    // stale: its process is gone (or the file is unreadable): take it over
                    None => {
                        let _ = std::fs::remove_file(&path);
                    }
                },
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::format(&path, "cannot take the run lock (it keeps reappearing)"))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The live process that holds `run`'s lock, if any (a lock whose process is gone is stale).
pub fn holder(run: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(run.join(FILE)).ok()?.trim().parse().ok()?;
    alive(pid).then_some(pid)
}

/// Whether a process with this id exists. Where the OS offers no cheap check (not Linux), a
/// lock is taken as live: removing a stale one by hand is the safe failure.
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_a_stale_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = RunLock::acquire(&run).unwrap();
        assert_eq!(holder(&run), Some(std::process::id()));
        let e = RunLock::acquire(&run).unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())) && e.contains("run"), "{e}");
        drop(first);
        assert_eq!(holder(&run), None, "released on drop");
        if !cfg!(target_os = "linux") {
            return;
        }
        // a lock left by a process that no longer exists (pids are below 2^22 on Linux)
        std::fs::write(run.join(FILE), "4194304\n").unwrap();
        assert_eq!(holder(&run), None);
        let _again = RunLock::acquire(&run).unwrap();
        assert_eq!(holder(&run), Some(std::process::id()));
    }
}
