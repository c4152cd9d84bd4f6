//! Byte sizes written the Kubernetes way: `1GiB`, `512Mi`, `2G`, or a plain number of bytes.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }

    pub fn mebibytes(self) -> u64 {
        self.0 >> 20
    }

    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a size: write a whole number with a unit, e.g. 1GiB or 512Mi"))?;
        if unit.starts_with(['.', ',']) {
            return Err(format!("sizes are whole numbers: write `{text}` in a smaller unit, e.g. 1536MiB for 1.5GiB"));
        }
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KB" | "k" | "kB" => 1_000,
            "M" | "MB" => 1_000_000,
            "G" | "GB" => 1_000_000_000,
            "T" | "TB" => 1_000_000_000_000,
            "Ki" | "KiB" => 1 << 10,
            "Mi" | "MiB" => 1 << 20,
            "Gi" | "GiB" => 1 << 30,
            "Ti" | "TiB" => 1 << 40,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{text}`: use B, KiB, MiB, GiB, TiB (or Ki, Mi, Gi, Ti, K, M, G, T)"
                ));
            }
        };
        number.checked_mul(factor).map(ByteSize).ok_or_else(|| format!("size `{text}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if self.0 != 0 && self.0.is_multiple_of(1u64 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> de::Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 1GiB, 512Mi or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_style_sizes() {
        let cases = [
            ("1GiB", Ok(1 << 30)),
            ("1Gi", Ok(1 << 30)),
            ("512Mi", Ok(512 << 20)),
            ("2G", Ok(2_000_000_000)),
            ("4096", Ok(4096)),
            ("1 GiB", Ok(1 << 30)),
            ("1.5GiB", Err("sizes are whole numbers")),
            ("GiB", Err("not a size")),
            ("3XB", Err("unknown size unit `XB`")),
            ("99999999999TiB", Err("too large")),
        ];
        for (text, want) in cases {
            match (ByteSize::parse(text), want) {
                (Ok(got), Ok(bytes)) => assert_eq!(got.bytes(), bytes, "{text}"),
                (Err(got), Err(fragment)) => assert!(got.contains(fragment), "{text}: {got}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(ByteSize(1 << 30).to_string(), "1GiB");
        assert_eq!(ByteSize(1536 << 20).to_string(), "1536MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }
}
