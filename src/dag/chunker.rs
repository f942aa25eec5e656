//! Streaming chunkers: split a byte stream into leaf-sized pieces without
//! holding more than one chunk (plus the CDC window) in memory.
//!
//! - `size-N`: fixed-size chunks of N bytes (Kubo's default, N = 262144).
//! - `cdc-MIN-AVG-MAX`: content-defined chunks (FastCDC 2020), so an edit in
//!   the middle of a file moves chunk boundaries only near the edit.

use bytes::Bytes;
use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

/// Largest chunk any chunker may produce: leaves must stay well under the
/// 2 MiB block limit once wrapped in dag-pb.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;
/// Kubo's default chunk size.
pub const DEFAULT_CHUNK_BYTES: usize = 256 * 1024;

/// How a file is cut into chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkerSpec {
    /// Chunks of `size` bytes (the last one shorter).
    Fixed {
        /// Bytes per chunk.
        size: usize,
    },
    /// Content-defined chunks (FastCDC 2020) between `min` and `max` bytes,
    /// `avg` on average.
    Cdc {
        /// Smallest chunk.
        min: usize,
        /// Average chunk size the cut points aim at.
        avg: usize,
        /// Largest chunk.
        max: usize,
    },
}

impl Default for ChunkerSpec {
    fn default() -> Self {
        ChunkerSpec::Fixed {
            size: DEFAULT_CHUNK_BYTES,
        }
    }
}

impl fmt::Display for ChunkerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkerSpec::Fixed { size } => write!(f, "size-{size}"),
            ChunkerSpec::Cdc { min, avg, max } => write!(f, "cdc-{min}-{avg}-{max}"),
        }
    }
}

/// A chunker spec that does not parse (as `size-N` or `cdc-MIN-AVG-MAX`).
#[derive(Debug, thiserror::Error)]
pub enum ChunkerSpecError {
    /// A part of the spec that should be a number is not.
    #[error("chunker {spec:?}: {part:?} is not a number")]
    NotANumber {
        /// The whole spec.
        spec: String,
        /// The part that is not a number.
        part: String,
        /// Why it does not parse.
        #[source]
        source: std::num::ParseIntError,
    },
    /// `size-N` with N zero or over [`MAX_CHUNK_BYTES`].
    #[error("chunker {spec:?}: size must be between 1 and {MAX_CHUNK_BYTES}")]
    FixedSize {
        /// The whole spec.
        spec: String,
    },
    /// `cdc-` followed by other than three numbers.
    #[error("chunker {spec:?}: expected cdc-MIN-AVG-MAX")]
    CdcShape {
        /// The whole spec.
        spec: String,
    },
    /// CDC sizes out of FastCDC's bounds or out of order.
    #[error(
        "chunker {spec:?}: need 64 <= MIN <= AVG <= MAX, AVG >= 256, 1024 <= MAX <= {MAX_CHUNK_BYTES}"
    )]
    CdcBounds {
        /// The whole spec.
        spec: String,
    },
    /// Neither `size-N` nor `cdc-MIN-AVG-MAX`.
    #[error(
        "unknown chunker {spec:?} (expected size-N or cdc-MIN-AVG-MAX; rabin and buzhash are not supported)"
    )]
    Unknown {
        /// The whole spec.
        spec: String,
    },
}

impl FromStr for ChunkerSpec {
    type Err = ChunkerSpecError;
    fn from_str(s: &str) -> Result<Self, ChunkerSpecError> {
        let spec = || s.to_string();
        let num = |t: &str| -> Result<usize, ChunkerSpecError> {
            t.parse::<usize>()
                .map_err(|source| ChunkerSpecError::NotANumber {
                    spec: spec(),
                    part: t.to_string(),
                    source,
                })
        };
        if let Some(n) = s.strip_prefix("size-") {
            let size = num(n)?;
            if size == 0 || size > MAX_CHUNK_BYTES {
                return Err(ChunkerSpecError::FixedSize { spec: spec() });
            }
            return Ok(ChunkerSpec::Fixed { size });
        }
        if let Some(rest) = s.strip_prefix("cdc-") {
            let parts: Vec<&str> = rest.split('-').collect();
            if parts.len() != 3 {
                return Err(ChunkerSpecError::CdcShape { spec: spec() });
            }
            let (min, avg, max) = (num(parts[0])?, num(parts[1])?, num(parts[2])?);
            let ok = (64..=67_108_864).contains(&min)
                && (256..=268_435_456).contains(&avg)
                && (1024..=MAX_CHUNK_BYTES).contains(&max)
                && min <= avg
                && avg <= max;
            if !ok {
                return Err(ChunkerSpecError::CdcBounds { spec: spec() });
            }
            return Ok(ChunkerSpec::Cdc { min, avg, max });
        }
        if s == "default" {
            return Ok(ChunkerSpec::default());
        }
        Err(ChunkerSpecError::Unknown { spec: spec() })
    }
}

impl ChunkerSpec {
    /// Largest chunk this spec produces.
    pub fn max_chunk(&self) -> usize {
        match *self {
            ChunkerSpec::Fixed { size } => size,
            ChunkerSpec::Cdc { max, .. } => max,
        }
    }

    /// Cuts `data`, a body already in memory, exactly as
    /// [`chunks`](Self::chunks) cuts the same bytes from a reader; fixed-size
    /// chunks are slices of `data`, with no copy and no chunk-sized buffer
    /// (a 4 KiB body does not allocate a 1 MiB one).
    pub fn chunks_of(&self, data: Bytes) -> Box<dyn Iterator<Item = io::Result<Bytes>>> {
        match *self {
            ChunkerSpec::Fixed { size } => {
                let (size, len) = (size.max(1), data.len());
                Box::new(
                    (0..len)
                        .step_by(size)
                        .map(move |at| Ok(data.slice(at..len.min(at + size)))),
                )
            }
            ChunkerSpec::Cdc { .. } => Box::new(self.chunks(io::Cursor::new(data))),
        }
    }

    /// Starts chunking `reader`.
    pub fn chunks<R: Read>(&self, reader: R) -> Chunks<R> {
        match *self {
            ChunkerSpec::Fixed { size } => Chunks::Fixed {
                reader,
                size,
                done: false,
            },
            ChunkerSpec::Cdc { min, avg, max } => Chunks::Cdc(Box::new(
                fastcdc::v2020::StreamCDC::new(reader, min as u32, avg as u32, max as u32),
            )),
        }
    }
}

/// An iterator of chunks from a reader.
pub enum Chunks<R: Read> {
    /// Fixed-size chunks read straight from `reader`.
    Fixed {
        /// The input.
        reader: R,
        /// Bytes per chunk.
        size: usize,
        /// Whether the input has ended (or failed).
        done: bool,
    },
    /// Content-defined chunks.
    Cdc(Box<fastcdc::v2020::StreamCDC<R>>),
}

impl<R: Read> Iterator for Chunks<R> {
    type Item = io::Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Chunks::Fixed { reader, size, done } => {
                if *done {
                    return None;
                }
                let mut buf = vec![0u8; *size];
                let mut filled = 0;
                while filled < buf.len() {
                    match reader.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            *done = true;
                            return Some(Err(e));
                        }
                    }
                }
                if filled < buf.len() {
                    *done = true;
                    if filled == 0 {
                        return None;
                    }
                    buf.truncate(filled);
                }
                Some(Ok(Bytes::from(buf)))
            }
            Chunks::Cdc(cdc) => cdc.next().map(|r| {
                r.map(|c| Bytes::from(c.data)).map_err(|e| match e {
                    fastcdc::v2020::Error::IoError(io) => io,
                    other => io::Error::other(other),
                })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_chunks_cover_input_exactly() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let spec: ChunkerSpec = "size-1000".parse().unwrap();
        let chunks: Vec<Bytes> = spec.chunks(&data[..]).map(|c| c.unwrap()).collect();
        assert_eq!(chunks.len(), 10);
        assert_eq!(chunks.concat(), data);
        let chunks: Vec<Bytes> = spec.chunks(&data[..1001]).map(|c| c.unwrap()).collect();
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [1000, 1]
        );
        assert_eq!(spec.chunks(&b""[..]).count(), 0);
    }

    #[test]
    fn bodies_in_memory_are_cut_as_readers_are() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for spec in [
            "size-1000",
            "size-262144",
            "size-1048576",
            "cdc-4096-16384-65536",
        ] {
            let spec: ChunkerSpec = spec.parse().unwrap();
            for len in [0, 1, 999, 1000, 1001, 65_536, 300_000] {
                let body = Bytes::copy_from_slice(&data[..len]);
                let read: Vec<Bytes> = spec.chunks(&data[..len]).map(|c| c.unwrap()).collect();
                let sliced: Vec<Bytes> = spec.chunks_of(body).map(|c| c.unwrap()).collect();
                assert_eq!(sliced, read, "{spec:?}, {len} bytes");
            }
        }
    }

    #[test]
    fn specs_parse_and_reject() {
        assert_eq!(
            "size-262144".parse::<ChunkerSpec>().unwrap(),
            ChunkerSpec::default()
        );
        assert!("size-0".parse::<ChunkerSpec>().is_err());
        assert!("size-1048577".parse::<ChunkerSpec>().is_err());
        assert!("cdc-1-2".parse::<ChunkerSpec>().is_err());
        assert!("rabin".parse::<ChunkerSpec>().is_err());
        assert!("cdc-65536-262144-1048576".parse::<ChunkerSpec>().is_ok());
        assert!("cdc-65536-262144-2097152".parse::<ChunkerSpec>().is_err());
    }

    #[test]
    fn cdc_chunks_cover_input() {
        let mut x: u64 = 1;
        let data: Vec<u8> = (0..3_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let spec: ChunkerSpec = "cdc-16384-65536-262144".parse().unwrap();
        let chunks: Vec<Bytes> = spec.chunks(&data[..]).map(|c| c.unwrap()).collect();
        assert!(chunks.len() > 10);
        assert!(chunks.iter().all(|c| c.len() <= 262144));
        assert_eq!(chunks.concat(), data);
    }
}
