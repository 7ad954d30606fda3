//! TensorBoard event files: TFRecord framing of `tensorflow.Event` protobufs holding scalar
//! summaries, written by hand (no maintained crate does just this).
//!
//! A record is
//!
//! ```text
//! u64 length (LE) | u32 masked_crc32c(length bytes) | data | u32 masked_crc32c(data)
//! masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8
//! ```
//!
//! and the first record is an `Event { wall_time, file_version: "brain.Event:2" }`. Scalars
//! are `Event { wall_time = 1, step = 2, summary = 5 { value = 1 { tag = 1, simple_value = 2 } } }`.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let mut w = ee_train::logging::tensorboard::EventWriter::create(dir.path()).unwrap();
//! w.scalar("loss", 0.25, 10).unwrap();
//! w.flush().unwrap();
//! let records = ee_train::logging::tensorboard::read_records(w.path()).unwrap();
//! assert_eq!(records.len(), 2); // file_version + one scalar
//! ```

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const MASK_DELTA: u32 = 0xa282_ead8;

/// The masked CRC32-C TFRecord stores.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(MASK_DELTA)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(field: u32, wire: u8, out: &mut Vec<u8>) {
    varint(u64::from(field << 3 | u32::from(wire)), out);
}

fn bytes_field(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The protobuf bytes of `Event { wall_time, file_version }`.
pub fn encode_file_version(wall_time: f64) -> Vec<u8> {
    let mut out = Vec::new();
    key(1, 1, &mut out);
    out.extend_from_slice(&wall_time.to_le_bytes());
    bytes_field(3, b"brain.Event:2", &mut out);
    out
}

/// The protobuf bytes of a scalar summary event.
pub fn encode_scalar(tag: &str, value: f32, step: i64, wall_time: f64) -> Vec<u8> {
    let mut summary_value = Vec::new();
    bytes_field(1, tag.as_bytes(), &mut summary_value);
    key(2, 5, &mut summary_value);
    summary_value.extend_from_slice(&value.to_le_bytes());
    let mut summary = Vec::new();
    bytes_field(1, &summary_value, &mut summary);
    let mut out = Vec::new();
    key(1, 1, &mut out);
    out.extend_from_slice(&wall_time.to_le_bytes());
    key(2, 0, &mut out);
    varint(step as u64, &mut out);
    bytes_field(5, &summary, &mut out);
    out
}

/// Frames `data` as one TFRecord.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// Appends scalar events to `events.out.tfevents.<time>.<host>` in a directory.
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl EventWriter {
    /// Creates a new event file in `dir` (created if needed) and writes its header.
    pub fn create(dir: &Path) -> std::io::Result<EventWriter> {
        std::fs::create_dir_all(dir)?;
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "ee".into());
        let secs = now() as u64;
        let mut path = dir.join(format!("events.out.tfevents.{secs}.{host}"));
        let mut n = 1;
        while path.exists() {
            path = dir.join(format!("events.out.tfevents.{secs}.{host}.{n}"));
            n += 1;
        }
        let mut writer = EventWriter {
            file: BufWriter::new(File::create(&path)?),
            path,
        };
        writer.file.write_all(&frame(&encode_file_version(now())))?;
        writer.flush()?;
        Ok(writer)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one scalar.
    pub fn scalar(&mut self, tag: &str, value: f64, step: u64) -> std::io::Result<()> {
        self.file.write_all(&frame(&encode_scalar(
            tag,
            value as f32,
            step as i64,
            now(),
        )))
    }

    /// Flushes to disk.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A framing or checksum problem in an event file.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A record is cut short or a CRC does not match.
    #[error("record at byte {offset}: {message}")]
    Corrupt {
        /// Byte offset of the record.
        offset: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads every record of a TFRecord file, checking both CRCs of each.
pub fn read_records(path: &Path) -> Result<Vec<Vec<u8>>, RecordError> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let corrupt = |message: &str| RecordError::Corrupt {
            offset: at,
            message: message.into(),
        };
        if bytes.len() - at < 12 {
            return Err(corrupt("truncated header"));
        }
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
        if masked_crc(len_bytes) != len_crc {
            return Err(corrupt("length CRC mismatch"));
        }
        let start = at + 12;
        if bytes.len() < start + len + 4 {
            return Err(corrupt("truncated data"));
        }
        let data = &bytes[start..start + len];
        let data_crc = u32::from_le_bytes(
            bytes[start + len..start + len + 4]
                .try_into()
                .expect("4 bytes"),
        );
        if masked_crc(data) != data_crc {
            return Err(corrupt("data CRC mismatch"));
        }
        records.push(data.to_vec());
        at = start + len + 4;
    }
    Ok(records)
}

/// A scalar decoded from an event record (for tests and tools).
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// Summary tag.
    pub tag: String,
    /// Value.
    pub value: f32,
    /// Global step.
    pub step: i64,
}

fn read_varint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Fields of one protobuf message: (field number, wire type, payload bytes or varint).
/// One protobuf field: number, wire type, payload bytes (length-delimited and fixed), varint.
type Field = (u32, u8, Vec<u8>, u64);

fn fields(data: &[u8]) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let k = read_varint(data, &mut at)?;
        let (field, wire) = ((k >> 3) as u32, (k & 7) as u8);
        match wire {
            0 => out.push((field, wire, Vec::new(), read_varint(data, &mut at)?)),
            1 => {
                out.push((field, wire, data.get(at..at + 8)?.to_vec(), 0));
                at += 8;
            }
            5 => {
                out.push((field, wire, data.get(at..at + 4)?.to_vec(), 0));
                at += 4;
            }
            2 => {
                let len = read_varint(data, &mut at)? as usize;
                out.push((field, wire, data.get(at..at + len)?.to_vec(), 0));
                at += len;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Decodes the scalar of an event record; `None` for other events (e.g. the file version).
pub fn decode_scalar(record: &[u8]) -> Option<Scalar> {
    let event = fields(record)?;
    let step = event
        .iter()
        .find(|f| f.0 == 2 && f.1 == 0)
        .map_or(0, |f| f.3 as i64);
    let summary = &event.iter().find(|f| f.0 == 5 && f.1 == 2)?.2;
    let value = &fields(summary)?.into_iter().find(|f| f.0 == 1)?.2;
    let value_fields = fields(value)?;
    let tag = String::from_utf8(value_fields.iter().find(|f| f.0 == 1)?.2.clone()).ok()?;
    let bits = value_fields
        .iter()
        .find(|f| f.0 == 2 && f.1 == 5)?
        .2
        .clone();
    Some(Scalar {
        tag,
        value: f32::from_le_bytes(bits.try_into().ok()?),
        step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::manual_rotate)] // the mask as TensorFlow's record writer spells it
    fn crc32c_known_value_and_mask() {
        // CRC-32C check value of "123456789" (RFC 3720)
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let crc = 0xe306_9283u32;
        assert_eq!(
            masked_crc(b"123456789"),
            ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn tensorflow_framing_of_empty_record() {
        // A zero-length record: 8 zero bytes, then masked crc of them (value from TensorFlow's
        // record writer), then masked crc of nothing.
        let f = frame(&[]);
        assert_eq!(f.len(), 16);
        assert_eq!(&f[12..16], &masked_crc(&[]).to_le_bytes());
        assert_eq!(masked_crc(&[]), 0xa282_ead8);
    }

    #[test]
    fn scalars_round_trip_and_crcs_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalar("loss", 1.5, 1).unwrap();
        w.scalar("metric/R1/best", 0.75, 300).unwrap();
        w.flush().unwrap();
        let records = read_records(w.path()).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(decode_scalar(&records[0]), None);
        let version = fields(&records[0]).unwrap();
        assert!(version.iter().any(|f| f.0 == 3 && f.2 == b"brain.Event:2"));
        assert_eq!(
            decode_scalar(&records[1]),
            Some(Scalar {
                tag: "loss".into(),
                value: 1.5,
                step: 1
            })
        );
        assert_eq!(
            decode_scalar(&records[2]),
            Some(Scalar {
                tag: "metric/R1/best".into(),
                value: 0.75,
                step: 300
            })
        );
        // flip one byte of the data: the CRC check must catch it
        let mut bytes = std::fs::read(w.path()).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        let bad = dir.path().join("bad");
        std::fs::write(&bad, bytes).unwrap();
        assert!(matches!(
            read_records(&bad),
            Err(RecordError::Corrupt { .. })
        ));
    }
}
