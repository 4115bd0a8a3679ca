//! UTC timestamps for audit lines (`2026-11-22T07:16:37.123456Z`, RFC 3339 with
//! microseconds) and for rotated file names (`20261122T071637.123456Z`, which sort by time).
//!
//! A dozen lines of civil-date arithmetic (Howard Hinnant's `civil_from_days`) instead of a
//! date crate: the writer formats one timestamp per event, straight into its line buffer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A broken-down UTC instant with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

impl Utc {
    /// Now, by the system clock. A clock before 1970 is reported as the epoch.
    pub fn now() -> Utc {
        Utc::from_system(SystemTime::now())
    }

    pub fn from_system(t: SystemTime) -> Utc {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = since.as_secs();
        let days = (secs / 86_400) as i64;
        let rem = (secs % 86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            micros: since.subsec_micros(),
        }
    }

    /// Appends `YYYY-MM-DDTHH:MM:SS.ffffffZ`: laid out in a fixed array and copied once
    /// (pushed a digit at a time, each with its capacity check, it was ~330 instructions;
    /// it runs twice a request).
    pub fn write_rfc3339(&self, out: &mut Vec<u8>) {
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        put_num(&mut text[0..4], self.year.clamp(0, 9999) as u32);
        put_num(&mut text[5..7], self.month);
        put_num(&mut text[8..10], self.day);
        put_num(&mut text[11..13], self.hour);
        put_num(&mut text[14..16], self.minute);
        put_num(&mut text[17..19], self.second);
        put_num(&mut text[20..26], self.micros);
        out.extend_from_slice(&text);
    }

    /// `YYYYMMDDTHHMMSS.ffffffZ`: safe in a file name on every platform, sorts by time.
    pub fn file_stamp(&self) -> String {
        let mut text = Vec::with_capacity(27);
        self.write_rfc3339(&mut text);
        // Only ASCII digits and punctuation were written.
        text.iter()
            .filter(|&&byte| byte != b'-' && byte != b':')
            .map(|&byte| char::from(byte))
            .collect()
    }
}

/// Writes `n` into `digits` as exactly that many decimal digits (zero-padded; callers keep
/// `n` in range).
fn put_num(digits: &mut [u8], mut n: u32) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(secs: u64, micros: u32) -> String {
        let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros.into());
        let mut out = Vec::new();
        Utc::from_system(t).write_rfc3339(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(rfc(1_795_000_000, 999_999), "2026-11-18T11:06:40.999999Z");
        assert_eq!(rfc(4_102_444_799, 0), "2099-12-31T23:59:59.000000Z");
    }

    #[test]
    fn file_stamp_sorts_and_has_no_colons() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000) + Duration::from_micros(42);
        assert_eq!(Utc::from_system(t).file_stamp(), "20261118T110640.000042Z");
    }
}
