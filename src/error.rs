//! The library's error type: every variant names the file or key that failed.
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // not a `source` field: the message already carries it, and `{:#}` would print it twice
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("config key `{key}`: {msg}")]
    Config { key: String, msg: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), err: source }
    }
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.as_ref().to_path_buf(), msg: msg.into() }
    }
    pub fn config(key: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config { key: key.into(), msg: msg.into() }
    }
}

/// Attach a path to io errors: `fs::read(p).at(p)?`.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}
impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_names_its_file_and_cause_once() {
        let e = Error::io("runs/x/eval/latest.json", std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"));
        // what `segda` prints: anyhow's `{:#}` joins the message with its source chain
        let shown = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(shown, "runs/x/eval/latest.json: no such file");
    }
}
