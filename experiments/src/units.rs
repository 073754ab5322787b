//! Quantities with units, as a person writes them in a scenario file:
//! durations (`"2s"`, `"150ms"`, `"1.5min"`), byte sizes (`"64KiB"`, `"1MB"`)
//! and rates (`"1.25MB/s"`).
//!
//! Parsing is exact decimal arithmetic, never floating point, so `"0.1s"` is
//! 100 ms to the nanosecond on every machine, and a value too large for its type
//! is an error rather than a wrapped or saturated number.

use core::time::Duration;

/// Why a quantity could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// No number before the unit.
    #[error("{given:?} does not start with a number (write e.g. {example})")]
    NoNumber {
        /// What was given.
        given: String,
        /// A well-formed value of the expected kind.
        example: &'static str,
    },
    /// A unit this kind of quantity does not have.
    #[error("{given:?}: unknown unit {unit:?} (known: {known})")]
    UnknownUnit {
        /// What was given.
        given: String,
        /// The unit as written.
        unit: String,
        /// The units accepted here.
        known: &'static str,
    },
    /// The value does not fit its type.
    #[error("{given:?} is too large")]
    TooLarge {
        /// What was given.
        given: String,
    },
    /// A byte count must be whole.
    #[error("{given:?} is not a whole number of bytes")]
    FractionalBytes {
        /// What was given.
        given: String,
    },
}

/// Duration units and their length in nanoseconds.
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("min", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];
const DURATION_KNOWN: &str = "ns, us, ms, s, min, h, d";

/// Byte units: SI (powers of 1000) and IEC (powers of 1024).
const BYTE_UNITS: &[(&str, u128)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];
const BYTES_KNOWN: &str = "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB";

/// A decimal number as an exact fraction: `mantissa / 10^scale`.
struct Decimal {
    mantissa: u128,
    scale: u32,
}

/// Splits `"1.5min"` into the number `1.5` and the unit `"min"` (spaces between
/// allowed); the number has at most 18 fraction digits.
fn split<'a>(given: &'a str, example: &'static str) -> Result<(Decimal, &'a str), UnitError> {
    let s = given.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(end);
    let no_number = || UnitError::NoNumber {
        given: given.into(),
        example,
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let int: String = int.chars().filter(|c| *c != '_').collect();
    let frac: String = frac.chars().filter(|c| *c != '_').collect();
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 18 {
        return Err(no_number());
    }
    let too_large = || UnitError::TooLarge {
        given: given.into(),
    };
    let digits = format!("{int}{frac}");
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| too_large())?
    };
    let scale = u32::try_from(frac.len()).map_err(|_| no_number())?;
    Ok((Decimal { mantissa, scale }, unit.trim()))
}

/// `d · factor`, exactly if it is whole; `None` on overflow. Rounds to the
/// nearest unit otherwise (half up).
fn times(d: &Decimal, factor: u128) -> Option<(u128, bool)> {
    let pow = 10u128.checked_pow(d.scale)?;
    let product = d.mantissa.checked_mul(factor)?;
    Some(((product + pow / 2) / pow, product % pow == 0))
}

/// Reads a duration: a number and one of ns, us (µs), ms, s, min, h, d.
/// Fractions finer than a nanosecond round to the nearest nanosecond.
pub fn parse_duration(given: &str) -> Result<Duration, UnitError> {
    let (number, unit) = split(given, "\"2s\", \"150ms\" or \"1.5min\"")?;
    let Some(&(_, nanos)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(UnitError::UnknownUnit {
            given: given.into(),
            unit: unit.into(),
            known: DURATION_KNOWN,
        });
    };
    let too_large = || UnitError::TooLarge {
        given: given.into(),
    };
    let (total, _) = times(&number, nanos).ok_or_else(too_large)?;
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| too_large())?;
    let sub = u32::try_from(total % 1_000_000_000).map_err(|_| too_large())?;
    Ok(Duration::new(secs, sub))
}

/// Reads a byte count: a number and one of B, KB, MB, GB, TB (powers of 1000)
/// or KiB, MiB, GiB, TiB (powers of 1024); the result must be whole.
pub fn parse_bytes(given: &str) -> Result<u64, UnitError> {
    let (number, unit) = split(given, "\"64KiB\" or \"1MB\"")?;
    bytes_of(given, &number, unit, BYTES_KNOWN)
}

/// Reads a rate in bytes per second: a byte count with `/s` (`"1.25MB/s"`).
pub fn parse_rate(given: &str) -> Result<u64, UnitError> {
    let (number, unit) = split(given, "\"1.25MB/s\"")?;
    let Some(per_byte) = unit.strip_suffix("/s") else {
        return Err(UnitError::UnknownUnit {
            given: given.into(),
            unit: unit.into(),
            known: "B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s",
        });
    };
    bytes_of(
        given,
        &number,
        per_byte.trim(),
        "B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s",
    )
}

fn bytes_of(
    given: &str,
    number: &Decimal,
    unit: &str,
    known: &'static str,
) -> Result<u64, UnitError> {
    let Some(&(_, factor)) = BYTE_UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(UnitError::UnknownUnit {
            given: given.into(),
            unit: unit.into(),
            known,
        });
    };
    let too_large = || UnitError::TooLarge {
        given: given.into(),
    };
    let (total, exact) = times(number, factor).ok_or_else(too_large)?;
    if !exact {
        return Err(UnitError::FractionalBytes {
            given: given.into(),
        });
    }
    u64::try_from(total).map_err(|_| too_large())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("2s"), Ok(ms(2_000)));
        assert_eq!(parse_duration("150ms"), Ok(ms(150)));
        assert_eq!(parse_duration("1.5min"), Ok(ms(90_000)));
        assert_eq!(parse_duration("0.1s"), Ok(ms(100)));
        assert_eq!(parse_duration(" 22 h "), Ok(ms(22 * 3_600_000)));
        assert_eq!(parse_duration("2d"), Ok(ms(2 * 86_400_000)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("1_000ms"), Ok(ms(1_000)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_say_why() {
        assert!(matches!(
            parse_duration("2"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("2 sec"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("s"),
            Err(UnitError::NoNumber { .. })
        ));
        assert!(matches!(
            parse_duration("-1s"),
            Err(UnitError::NoNumber { .. })
        ));
        assert!(matches!(
            parse_duration("1.2.3s"),
            Err(UnitError::NoNumber { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999999999999999999999999d"),
            Err(UnitError::TooLarge { .. })
        ));
        assert_eq!(
            parse_duration("3 fortnights").map_err(|e| e.to_string()),
            Err(
                "\"3 fortnights\": unknown unit \"fortnights\" (known: ns, us, ms, s, min, h, d)"
                    .into()
            )
        );
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!(parse_bytes("64KiB"), Ok(65_536));
        assert_eq!(parse_bytes("1MB"), Ok(1_000_000));
        assert_eq!(parse_bytes("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_bytes("256 KiB"), Ok(262_144));
        assert_eq!(parse_bytes("10B"), Ok(10));
        assert_eq!(parse_rate("1.25MB/s"), Ok(1_250_000));
        assert_eq!(parse_rate("100 KiB/s"), Ok(102_400));
        assert!(matches!(
            parse_bytes("1.5B"),
            Err(UnitError::FractionalBytes { .. })
        ));
        assert!(matches!(
            parse_bytes("1MB/s"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_rate("1MB"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_bytes("64kib"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_bytes("99999999999TiB"),
            Err(UnitError::TooLarge { .. })
        ));
    }

    proptest::proptest! {
        /// No string makes a parser panic.
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
            let _ = parse_bytes(&s);
            let _ = parse_rate(&s);
        }

        /// Whole milliseconds read back as themselves.
        #[test]
        fn milliseconds_round_trip(ms in 0u64..1_000_000_000) {
            proptest::prop_assert_eq!(parse_duration(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
        }
    }
}
