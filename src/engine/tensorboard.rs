//! A TensorBoard scalar-event writer (tfrecord framing + a hand-encoded `Event` protobuf).
//!
//! Written by hand because the Rust TensorBoard crates are unmaintained and pull in a protobuf
//! toolchain; scalars need ~80 lines: records of [len u64][masked crc32c(len)][data]
//! [masked crc32c(data)] (CRC-32C from the `crc32c` crate), with
//! `Event { wall_time=1, step=2, file_version=3, summary=5 }` and
//! `Summary.Value { tag=1, simple_value=2 }`.
use crate::error::{IoContext, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// CRC-32C (Castagnoli), as tfrecord framing uses it.
fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(field: u32, data: &[u8], out: &mut Vec<u8>) {
    varint(((field << 3) | 2) as u64, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn event(wall_time: f64, step: i64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut e = Vec::new();
    e.push(0x09); // field 1, fixed64
    e.extend_from_slice(&wall_time.to_le_bytes());
    e.push(0x10); // field 2, varint
    varint(step as u64, &mut e);
    body(&mut e);
    e
}

pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    pub fn create(dir: &Path) -> Result<Self> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "segda".into());
        let path = dir.join(format!("events.out.tfevents.{}.{host}.{}", now.as_secs(), std::process::id()));
        let out = BufWriter::new(File::create(&path).at(&path)?);
        let mut w = EventWriter { path, out };
        let rec = event(now.as_secs_f64(), 0, |e| bytes_field(3, b"brain.Event:2", e));
        w.record(&rec)?;
        Ok(w)
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut buf = Vec::with_capacity(data.len() + 16);
        buf.extend_from_slice(&len);
        buf.extend_from_slice(&masked_crc(&len).to_le_bytes());
        buf.extend_from_slice(data);
        buf.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.out.write_all(&buf).at(&self.path)
    }

    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<()> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut v = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut v);
        v.push(0x15); // field 2, fixed32
        v.extend_from_slice(&(value as f32).to_le_bytes());
        let mut summary = Vec::new();
        bytes_field(1, &v, &mut summary);
        let rec = event(now.as_secs_f64(), step as i64, |e| bytes_field(5, &summary, e));
        self.record(&rec)
    }

    /// A session restart at `step` (SessionLog START): TensorBoard discards what earlier files
    /// hold at `step` and later, as it does for a resumed TensorFlow job.
    pub fn restart(&mut self, step: u64) -> Result<()> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        // Event.session_log (field 7) = SessionLog { status (field 1) = START (1) }
        let rec = event(now.as_secs_f64(), step as i64, |e| bytes_field(7, &[0x08, 0x01], e));
        self.record(&rec)?;
        self.flush()
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().at(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_vector() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn records_are_framed_and_checksummed() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalar("loss/seg", 7, 0.5).unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(&w.path).unwrap();
        let mut pos = 0;
        let mut n = 0;
        while pos < bytes.len() {
            let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
            assert_eq!(crc, masked_crc(&bytes[pos..pos + 8]));
            let data = &bytes[pos + 12..pos + 12 + len];
            let dcrc = u32::from_le_bytes(bytes[pos + 12 + len..pos + 16 + len].try_into().unwrap());
            assert_eq!(dcrc, masked_crc(data));
            pos += 16 + len;
            n += 1;
        }
        assert_eq!(n, 2);
        // the scalar's tag and value are in the last record
        assert!(bytes.windows(8).any(|w| w == b"loss/seg"));
        assert!(bytes.windows(4).any(|w| w == 0.5f32.to_le_bytes()));
    }
}
