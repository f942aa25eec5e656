//! [`ByteSize`]: a number of bytes in `config.toml`, written "500GB",
//! "256KiB", "0" or as a plain number.
//!
//! Hand-written rather than the `bytesize` crate: that crate writes sizes
//! rounded to one decimal ("47.7 MiB" for 50MB), so a config it wrote would
//! not read back as the value it was written from; this one writes the
//! largest unit that divides the value exactly.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A size or rate in bytes (KB = 1000, KiB = 1024).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

/// Why a text is not a size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// No number where the size starts.
    #[error("{text:?} is not a size like 10GB or 512MiB")]
    NotANumber {
        /// The text as given.
        text: String,
    },
    /// A unit other than B, K(B), M(B), G(B), T(B) or KiB..TiB.
    #[error("unknown unit {unit:?} in {text:?}")]
    UnknownUnit {
        /// The unit as written (lowercased).
        unit: String,
        /// The text as given.
        text: String,
    },
    /// Negative, or more bytes than 64 bits hold.
    #[error("{text:?} is out of range")]
    OutOfRange {
        /// The text as given.
        text: String,
    },
}

/// Parses "123", "10KB", "1.5GiB", "2 mb", ... into bytes (KB = 1000,
/// KiB = 1024; units in any case, a space before them allowed).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| SizeError::NotANumber {
        text: text.to_string(),
    })?;
    let unit = unit.trim().to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(SizeError::UnknownUnit {
                unit,
                text: text.to_string(),
            })
        }
    };
    let v = n * mult;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(SizeError::OutOfRange {
            text: text.to_string(),
        });
    }
    Ok(v as u64)
}

impl FromStr for ByteSize {
    type Err = SizeError;
    fn from_str(s: &str) -> Result<Self, SizeError> {
        parse_size(s).map(ByteSize)
    }
}

/// The largest unit that divides the value exactly ("50MB", "256KiB"), so
/// the text parses back to the same number.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 8] = [
            (1 << 40, "TiB"),
            (1_000_000_000_000, "TB"),
            (1 << 30, "GiB"),
            (1_000_000_000, "GB"),
            (1 << 20, "MiB"),
            (1_000_000, "MB"),
            (1 << 10, "KiB"),
            (1_000, "KB"),
        ];
        let n = self.0;
        match UNITS
            .iter()
            .find(|(unit, _)| n > 0 && n.is_multiple_of(*unit))
        {
            Some((unit, name)) => write!(f, "{}{name}", n / unit),
            None => write!(f, "{n}"),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"500GB\", \"256KiB\" or \"0\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("{v} is out of range")))
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_every_accepted_form() {
        for (text, bytes) in [
            ("0", 0),
            ("123", 123),
            ("10KB", 10_000),
            ("10k", 10_000),
            ("2 mb", 2_000_000),
            ("1.5GiB", 1_610_612_736),
            ("500GB", 500_000_000_000),
            ("256KiB", 262_144),
            (" 7b ", 7),
            ("1TiB", 1 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        assert!(matches!(parse_size("x"), Err(SizeError::NotANumber { .. })));
        assert!(matches!(
            parse_size("5XB"),
            Err(SizeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_size("99999999999TiB"),
            Err(SizeError::OutOfRange { .. })
        ));
    }

    #[test]
    fn sizes_are_written_in_an_exact_unit_and_read_back() {
        for (bytes, text) in [
            (0, "0"),
            (123, "123"),
            (50_000_000, "50MB"),
            (262_144, "256KiB"),
            (1_610_612_736, "1536MiB"),
            (1 << 40, "1TiB"),
        ] {
            let s = ByteSize(bytes).to_string();
            assert_eq!(s, text);
            assert_eq!(s.parse::<ByteSize>(), Ok(ByteSize(bytes)));
        }
        #[derive(Deserialize)]
        struct T {
            a: ByteSize,
            b: ByteSize,
        }
        let t: T = toml::from_str("a = \"1MB\"\nb = 4096\n").unwrap();
        assert_eq!((t.a, t.b), (ByteSize(1_000_000), ByteSize(4096)));
        assert!(toml::from_str::<T>("a = \"1XB\"\nb = 1\n").is_err());
        assert!(toml::from_str::<T>("a = -1\nb = 1\n").is_err());
    }
}
