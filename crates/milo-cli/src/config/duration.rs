//! Human-readable durations: `"90s"`, `"1m30s"`, `"250ms"`, `"2h"`, `"1.5s"`, `"7d"`.
//!
//! A duration string is one or more `<number><unit>` parts (optionally separated by spaces,
//! also between a number and its unit: `"5 m"`), added up. The number may have a fractional part; the units are `ms`, `s`, `m`, `h` and `d`
//! (24 hours).
//! Arithmetic is exact (nanoseconds), so `"1.1s"` is exactly 1 100 ms.

use std::fmt;
use std::time::Duration;

/// The units a duration string accepts, for messages.
pub const UNITS: &str = "`ms`, `s`, `m`, `h`, `d`";

/// An example for messages.
pub const EXAMPLES: &str = "\"90s\", \"1m30s\", \"250ms\", \"2h\" or \"1.5s\"";

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// The string is empty (or only spaces).
    Empty,
    /// A number with no unit after it, such as `"30"`.
    MissingUnit {
        /// The number as written.
        number: String,
    },
    /// A unit that is not one of [`UNITS`].
    UnknownUnit {
        /// The unit as written.
        unit: String,
    },
    /// Something other than a number where a number should start.
    ExpectedNumber {
        /// The rest of the string from there.
        found: String,
    },
    /// The total does not fit in a [`Duration`].
    TooLarge,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => f.write_str("the duration is empty"),
            DurationError::MissingUnit { number } => {
                write!(f, "`{number}` has no unit (one of {UNITS})")
            }
            DurationError::UnknownUnit { unit } => {
                write!(f, "`{unit}` is not a unit (the units are {UNITS})")?;
                match unit_for(unit) {
                    Some(close) => write!(f, "; did you mean `{close}`?"),
                    None => Ok(()),
                }
            }
            DurationError::ExpectedNumber { found } => {
                write!(f, "expected a number, found `{found}`")
            }
            DurationError::TooLarge => f.write_str("the duration is too large"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration string such as `"1m30s"`; see the [module docs](self).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        // A space may separate a number from its unit ("5 m"), not from the next number.
        let spaced = rest[number_len..].trim_start();
        let after_number = if spaced.starts_with(|c: char| c.is_ascii_alphabetic()) {
            spaced
        } else {
            &rest[number_len..]
        };
        let unit_len = after_number
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after_number.len());
        let unit = &after_number[..unit_len];
        let (whole, frac) = split_number(number).ok_or_else(|| DurationError::ExpectedNumber {
            found: rest.split_whitespace().next().unwrap_or(rest).to_owned(),
        })?;
        if unit.is_empty() {
            return Err(DurationError::MissingUnit {
                number: number.to_owned(),
            });
        }
        let unit_nanos: u128 = match unit {
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            "d" => 86_400 * NANOS_PER_SEC,
            _ => {
                return Err(DurationError::UnknownUnit { unit: unit.to_owned() });
            }
        };
        total = total
            .checked_add(part_nanos(whole, frac, unit_nanos)?)
            .ok_or(DurationError::TooLarge)?;
        rest = after_number[unit_len..].trim_start();
    }
    nanos_to_duration(total)
}

/// The unit meant by a spelled-out or common unit name (`min` → `m`), if it is one.
fn unit_for(unit: &str) -> Option<&'static str> {
    let unit = unit.to_ascii_lowercase();
    Some(match unit.as_str() {
        "msec" | "msecs" | "millis" | "milli" | "millisecond" | "milliseconds" => "ms",
        "sec" | "secs" | "second" | "seconds" => "s",
        "min" | "mins" | "minute" | "minutes" => "m",
        "hr" | "hrs" | "hour" | "hours" => "h",
        "day" | "days" => "d",
        // Only reached for a unit written in capitals (`"5M"`).
        "ms" => "ms",
        "s" => "s",
        "m" => "m",
        "h" => "h",
        "d" => "d",
        _ => return None,
    })
}

/// Splits `"1.25"` into `("1", "25")`; `None` unless it is digits with at most one `.` and at
/// least one digit before or after it.
fn split_number(number: &str) -> Option<(&str, &str)> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    (!(whole.is_empty() && frac.is_empty()) && digits(whole) && digits(frac)).then_some((whole, frac))
}

/// `whole.frac × unit_nanos`, in nanoseconds, rounded down.
fn part_nanos(whole: &str, frac: &str, unit_nanos: u128) -> Result<u128, DurationError> {
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| DurationError::TooLarge)?
    };
    let mut nanos = whole_value.checked_mul(unit_nanos).ok_or(DurationError::TooLarge)?;
    // Digits past the 12th are below a nanosecond even for hours; ignore them.
    let frac = &frac[..frac.len().min(12)];
    if !frac.is_empty() {
        let frac_value: u128 = frac.parse().map_err(|_| DurationError::TooLarge)?;
        nanos = nanos
            .checked_add(frac_value * unit_nanos / 10u128.pow(frac.len() as u32))
            .ok_or(DurationError::TooLarge)?;
    }
    Ok(nanos)
}

fn nanos_to_duration(nanos: u128) -> Result<Duration, DurationError> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| DurationError::TooLarge)?;
    // The remainder is below 10^9, so it fits.
    let subsec = (nanos % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, subsec))
}

/// A number of seconds as a [`Duration`], or why not (negative, not finite, too large).
pub fn seconds_to_duration(secs: f64) -> Result<Duration, String> {
    if secs.is_nan() || secs.is_infinite() {
        return Err(format!("must be a finite number of seconds, found {secs}"));
    }
    if secs < 0.0 {
        return Err(format!("must not be negative, found {secs}"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("is too large ({secs} seconds)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse_duration("90s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("2h"), Ok(ms(7_200_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse_duration("10m"), Ok(ms(600_000)));
    }

    #[test]
    fn days_are_24_hours() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("0.5d"), Ok(Duration::from_secs(12 * 3600)));
    }

    #[test]
    fn parts_add_up_with_or_without_spaces() {
        assert_eq!(parse_duration("1h 2m 3s 4ms"), Ok(ms(3_723_004)));
        assert_eq!(parse_duration("  1h2m3s4ms "), Ok(ms(3_723_004)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn fractions_are_exact() {
        assert_eq!(parse_duration("1.1s"), Ok(Duration::new(1, 100_000_000)));
        assert_eq!(parse_duration(".5m"), Ok(ms(30_000)));
        assert_eq!(parse_duration("2.m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("0.0000000015s"), Ok(Duration::new(0, 1)));
        assert_eq!(parse_duration("1.5ms"), Ok(Duration::new(0, 1_500_000)));
    }

    #[test]
    fn rejects_malformed_strings_with_the_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("   "), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("30"),
            Err(DurationError::MissingUnit { number: "30".into() })
        );
        assert_eq!(
            parse_duration("1m30"),
            Err(DurationError::MissingUnit { number: "30".into() })
        );
        assert_eq!(parse_duration("5 s"), Ok(ms(5_000)));
        assert_eq!(parse_duration("1 m 30 s"), Ok(ms(90_000)));
        assert_eq!(
            parse_duration("5 min"),
            Err(DurationError::UnknownUnit { unit: "min".into() })
        );
        assert_eq!(
            parse_duration("3sec"),
            Err(DurationError::UnknownUnit { unit: "sec".into() })
        );
        assert_eq!(
            parse_duration("1w"),
            Err(DurationError::UnknownUnit { unit: "w".into() })
        );
        assert_eq!(
            parse_duration("-5s"),
            Err(DurationError::ExpectedNumber { found: "-5s".into() })
        );
        assert_eq!(
            parse_duration("1.2.3s"),
            Err(DurationError::ExpectedNumber { found: "1.2.3s".into() })
        );
        assert_eq!(
            parse_duration("s"),
            Err(DurationError::ExpectedNumber { found: "s".into() })
        );
        assert_eq!(parse_duration("99999999999999999999999h"), Err(DurationError::TooLarge));
    }

    #[test]
    fn messages_name_the_valid_units() {
        assert_eq!(
            parse_duration("3sec").unwrap_err().to_string(),
            "`sec` is not a unit (the units are `ms`, `s`, `m`, `h`, `d`); did you mean `s`?"
        );
        assert_eq!(
            parse_duration("5 min").unwrap_err().to_string(),
            "`min` is not a unit (the units are `ms`, `s`, `m`, `h`, `d`); did you mean `m`?"
        );
        assert_eq!(
            parse_duration("2 Hours").unwrap_err().to_string(),
            "`Hours` is not a unit (the units are `ms`, `s`, `m`, `h`, `d`); did you mean `h`?"
        );
        assert_eq!(
            parse_duration("1w").unwrap_err().to_string(),
            "`w` is not a unit (the units are `ms`, `s`, `m`, `h`, `d`)"
        );
        assert_eq!(
            parse_duration("30").unwrap_err().to_string(),
            "`30` has no unit (one of `ms`, `s`, `m`, `h`, `d`)"
        );
    }

    #[test]
    fn seconds_as_numbers() {
        assert_eq!(seconds_to_duration(0.5), Ok(ms(500)));
        assert_eq!(seconds_to_duration(0.0), Ok(Duration::ZERO));
        assert!(seconds_to_duration(-1.0).is_err());
        assert!(seconds_to_duration(f64::NAN).is_err());
        assert!(seconds_to_duration(f64::INFINITY).is_err());
        assert!(seconds_to_duration(1e30).is_err());
    }
}
