//! Date patterns for `parse_time` (which formats, with Joda-Time patterns) and
//! `time_to_epoch` (which parses, with Java `DateTimeFormatter` patterns), the two IoT SQL
//! functions that turn times in an MQTT message into a workflow input (MQTT message -> IoT
//! SQL -> workflow input).
//!
//! The common pattern letters are offered: era `G`, years `y u Y`, months `M L` (numbers,
//! `MMM` and `MMMM` names), days `d D`, weekdays `E`, `a`, hours `H k K h`, `m`, `s`,
//! fractions `S`, zones `z VV`, offsets `Z X x O`, and `'quoted'` text; names are English.
//! Zones are IANA names (`America/Los_Angeles`), `UTC`/`GMT`/`Z`, or offsets such as
//! `UTC+01:00`. A pattern with other letters does not compile, and the functions are then
//! Undefined. Where Java would refuse a time without a date, a missing date is
//! 1970-01-01.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike};
use chrono_tz::{OffsetName, Tz};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// Joda-Time, which `parse_time` documents.
    Joda,
    /// `java.time`, which `time_to_epoch` documents.
    Java,
}

#[derive(Debug, Clone)]
pub(super) struct Pattern {
    items: Vec<Item>,
    dialect: Dialect,
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Text(String),
    /// A pattern letter and how many times it repeats (`yyyy` is `('y', 4)`).
    Field(char, usize),
}

const LETTERS: &str = "GyuYMLdDEahHkKmsSzZXxVO";

pub(super) fn compile(pattern: &str, dialect: Dialect) -> Result<Pattern, String> {
    let mut items = Vec::new();
    let mut text = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                text.push('\'');
                continue;
            }
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        text.push('\'');
                    }
                    Some('\'') => break,
                    Some(ch) => text.push(ch),
                    None => return Err("a quote in the pattern is not closed".to_string()),
                }
            }
        } else if c.is_ascii_alphabetic() {
            if !LETTERS.contains(c) {
                return Err(format!("the pattern letter '{c}' is not supported"));
            }
            let mut n = 1;
            while chars.peek() == Some(&c) {
                chars.next();
                n += 1;
            }
            if !text.is_empty() {
                items.push(Item::Text(std::mem::take(&mut text)));
            }
            items.push(Item::Field(c, n));
        } else {
            text.push(c);
        }
    }
    if !text.is_empty() {
        items.push(Item::Text(text));
    }
    Ok(Pattern { items, dialect })
}

/// A time zone: a named IANA zone, or a fixed offset in seconds east of UTC.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Zone {
    Named(Tz),
    Fixed(i32),
}

impl Zone {
    pub(super) fn utc() -> Zone {
        Zone::Named(Tz::UTC)
    }

    /// `America/Belize`, `UTC`, `Z`, `UTC+01:00`, `GMT-5`, `+02:00`.
    pub(super) fn parse(s: &str) -> Option<Zone> {
        if s == "Z" {
            return Some(Zone::utc());
        }
        for prefix in ["UTC", "GMT", "UT"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                if rest.is_empty() {
                    break;
                }
                return match parse_offset(rest) {
                    Some((secs, used)) if used == rest.len() => Some(Zone::Fixed(secs)),
                    _ => None,
                };
            }
        }
        if s.starts_with(['+', '-']) {
            return match parse_offset(s) {
                Some((secs, used)) if used == s.len() => Some(Zone::Fixed(secs)),
                _ => None,
            };
        }
        // Java reads these abbreviations as the zones that use them.
        let s = match s {
            "PST" | "PDT" => "America/Los_Angeles",
            "MDT" => "America/Denver",
            "CST" | "CDT" => "America/Chicago",
            "EDT" => "America/New_York",
            other => other,
        };
        s.parse::<Tz>().ok().map(Zone::Named)
    }

    fn offset_at(self, utc: &NaiveDateTime) -> i32 {
        match self {
            Zone::Named(tz) => tz.offset_from_utc_datetime(utc).fix().local_minus_utc(),
            Zone::Fixed(secs) => secs,
        }
    }

    /// The UTC time of a wall-clock time here; in a gap or an overlap, the earlier offset.
    fn to_utc(self, local: &NaiveDateTime) -> Option<NaiveDateTime> {
        match self {
            Zone::Named(tz) => {
                let resolved = tz.from_local_datetime(local);
                let offset = match resolved.earliest() {
                    Some(t) => t.offset().fix(),
                    // A wall time skipped by a change: Java shifts it by the gap's length.
                    None => tz.offset_from_utc_datetime(local).fix(),
                };
                Some(*local - chrono::Duration::seconds(i64::from(offset.local_minus_utc())))
            }
            Zone::Fixed(secs) => Some(*local - chrono::Duration::seconds(i64::from(secs))),
        }
    }

    fn id(self) -> String {
        match self {
            Zone::Named(tz) => tz.name().to_string(),
            Zone::Fixed(0) => "UTC".to_string(),
            Zone::Fixed(secs) => format!("UTC{}", offset_text(secs, true, false)),
        }
    }

    fn abbreviation(self, utc: &NaiveDateTime) -> String {
        match self {
            Zone::Named(tz) => {
                let offset = tz.offset_from_utc_datetime(utc);
                offset
                    .abbreviation()
                    .map_or_else(|| offset_text(offset.fix().local_minus_utc(), true, false), str::to_string)
            }
            Zone::Fixed(_) => self.id(),
        }
    }
}

/// `+01`, `+0100`, `+01:00`, `-5`, `+01:00:30`: seconds east of UTC and the bytes used.
fn parse_offset(s: &str) -> Option<(i32, usize)> {
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits_at = |i: usize, n: usize| -> Option<i32> {
        let part = s.get(i..i + n)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
    };
    let mut i = 1;
    let hours_len = if b.len() > 2 && b[2].is_ascii_digit() { 2 } else { 1 };
    let hours = digits_at(i, hours_len)?;
    i += hours_len;
    let mut secs = hours * 3600;
    for unit in [60, 1] {
        let colon = b.get(i) == Some(&b':');
        let at = if colon { i + 1 } else { i };
        match digits_at(at, 2) {
            Some(v) if v < 60 => {
                secs += v * unit;
                i = at + 2;
            }
            _ => break,
        }
    }
    (hours <= 18).then_some((sign * secs, i))
}

/// `+01:00` (with colon) or `+0100`; `hours_only` allows `+01` when the minutes are 0.
fn offset_text(secs: i32, colon: bool, hours_only: bool) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let (h, m) = (secs.abs() / 3600, secs.abs() / 60 % 60);
    if hours_only && m == 0 {
        format!("{sign}{h:02}")
    } else if colon {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}")
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

fn padded(v: i64, width: usize) -> String {
    if v < 0 {
        format!("-{:0width$}", -v)
    } else {
        format!("{v:0width$}")
    }
}

/// Formats `ms` since the epoch in `zone`; `None` past the range of dates.
pub(super) fn format(p: &Pattern, ms: i64, zone: Zone) -> Option<String> {
    let utc = DateTime::from_timestamp_millis(ms)?.naive_utc();
    let offset = zone.offset_at(&utc);
    let t = utc.checked_add_signed(chrono::Duration::seconds(i64::from(offset)))?;
    let mut out = String::new();
    for item in &p.items {
        let (c, n) = match item {
            Item::Text(s) => {
                out.push_str(s);
                continue;
            }
            Item::Field(c, n) => (*c, *n),
        };
        let year = i64::from(t.year());
        let hour = i64::from(t.hour());
        let piece = match c {
            'G' => (if year > 0 { "AD" } else { "BC" }).to_string(),
            'y' | 'Y' | 'u' => {
                let y = if c == 'u' || year > 0 { year } else { 1 - year };
                if n == 2 {
                    padded(y.rem_euclid(100), 2)
                } else {
                    padded(y, n)
                }
            }
            'M' | 'L' => match n {
                1 | 2 => padded(i64::from(t.month()), n),
                3 => MONTHS[t.month0() as usize][..3].to_string(),
                _ => MONTHS[t.month0() as usize].to_string(),
            },
            'd' => padded(i64::from(t.day()), n),
            'D' => padded(i64::from(t.ordinal()), n),
            'E' => {
                let day = DAYS[t.weekday().num_days_from_monday() as usize];
                if n >= 4 { day } else { &day[..3] }.to_string()
            }
            'a' => (if hour < 12 { "AM" } else { "PM" }).to_string(),
            'H' => padded(hour, n),
            'k' => padded(if hour == 0 { 24 } else { hour }, n),
            'K' => padded(hour % 12, n),
            'h' => padded(if hour % 12 == 0 { 12 } else { hour % 12 }, n),
            'm' => padded(i64::from(t.minute()), n),
            's' => padded(i64::from(t.second()), n),
            'S' => {
                let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                if n <= 9 {
                    nanos[..n].to_string()
                } else {
                    nanos + &"0".repeat(n - 9)
                }
            }
            'z' if n >= 4 => zone.id(),
            'z' => zone.abbreviation(&utc),
            'V' => zone.id(),
            'Z' => match (p.dialect, n) {
                (Dialect::Joda, 1) | (Dialect::Java, 1..=3) => offset_text(offset, false, false),
                (Dialect::Joda, 2) => offset_text(offset, true, false),
                (Dialect::Joda, _) => zone.id(),
                (Dialect::Java, 4) if offset == 0 => "GMT".to_string(),
                (Dialect::Java, 4) => format!("GMT{}", offset_text(offset, true, false)),
                (Dialect::Java, _) if offset == 0 => "Z".to_string(),
                (Dialect::Java, _) => offset_text(offset, true, false),
            },
            'X' if offset == 0 => "Z".to_string(),
            'X' | 'x' => match n {
                1 => offset_text(offset, false, true),
                2 => offset_text(offset, false, false),
                _ => offset_text(offset, true, false),
            },
            'O' if offset == 0 => "GMT".to_string(),
            'O' if n >= 4 => format!("GMT{}", offset_text(offset, true, false)),
            'O' => {
                let (h, m) = (offset.abs() / 3600, offset.abs() / 60 % 60);
                let sign = if offset < 0 { '-' } else { '+' };
                if m == 0 {
                    format!("GMT{sign}{h}")
                } else {
                    format!("GMT{sign}{h}:{m:02}")
                }
            }
            _ => return None,
        };
        out.push_str(&piece);
    }
    Some(out)
}

/// What a parse has read so far.
#[derive(Default)]
struct Fields {
    year: Option<i64>,
    year_of_era: Option<i64>,
    bc: bool,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    hour: Option<u32>,
    hour12: Option<u32>,
    pm: Option<bool>,
    minute: u32,
    second: u32,
    nano: u32,
    offset: Option<i32>,
    zone: Option<Zone>,
}

fn is_numeric(item: Option<&Item>) -> bool {
    matches!(item, Some(Item::Field(c, n)) if "yuYdDHkKhmsS".contains(*c) || ("ML".contains(*c) && *n <= 2))
}

/// Parses `text` whole; `None` when it does not match the pattern.
pub(super) fn parse(p: &Pattern, text: &str) -> Option<i64> {
    let mut f = Fields::default();
    let mut rest = text;
    for (k, item) in p.items.iter().enumerate() {
        let (c, n) = match item {
            Item::Text(s) => {
                rest = rest.strip_prefix(s.as_str())?;
                continue;
            }
            Item::Field(c, n) => (*c, *n),
        };
        // A numeric field right before another takes exactly its width (`yyyyMMdd`).
        let adjacent = is_numeric(p.items.get(k + 1));
        let number = |rest: &mut &str, min: usize, max: usize| -> Option<i64> {
            let max = if adjacent { min.max(1) } else { max };
            let len = rest.bytes().take(max).take_while(u8::is_ascii_digit).count();
            if len < min.max(1) {
                return None;
            }
            let v = rest[..len].parse().ok()?;
            *rest = &rest[len..];
            Some(v)
        };
        let small = |v: i64| u32::try_from(v).ok();
        match c {
            'y' | 'u' | 'Y' if n == 2 => f.year = Some(2000 + number(&mut rest, 2, 2)?),
            'y' | 'Y' => f.year_of_era = Some(number(&mut rest, n, 10)?),
            'u' => f.year = Some(number(&mut rest, n, 10)?),
            'M' | 'L' if n <= 2 => f.month = small(number(&mut rest, n, 2)?),
            'M' | 'L' => {
                let (i, used) = MONTHS.iter().enumerate().find_map(|(i, m)| {
                    let name = if n == 3 { &m[..3] } else { m };
                    starts_with_ignore_case(rest, name).then_some((i, name.len()))
                })?;
                f.month = Some(i as u32 + 1);
                rest = &rest[used..];
            }
            'd' => f.day = small(number(&mut rest, n, 2)?),
            'D' => f.day_of_year = small(number(&mut rest, n, 3)?),
            'E' => {
                let used = DAYS.iter().find_map(|d| {
                    [*d, &d[..3]].into_iter().find(|name| starts_with_ignore_case(rest, name)).map(str::len)
                })?;
                rest = &rest[used..];
            }
            'G' => {
                let (bc, used) =
                    [("AD", false), ("BC", true), ("CE", false), ("BCE", true)].iter().rev().find_map(
                        |(name, bc)| starts_with_ignore_case(rest, name).then_some((*bc, name.len())),
                    )?;
                f.bc = bc;
                rest = &rest[used..];
            }
            'a' => {
                let pm = if starts_with_ignore_case(rest, "AM") {
                    false
                } else if starts_with_ignore_case(rest, "PM") {
                    true
                } else {
                    return None;
                };
                f.pm = Some(pm);
                rest = &rest[2..];
            }
            'H' => f.hour = small(number(&mut rest, n, 2)?),
            'k' => f.hour = small(number(&mut rest, n, 2)? % 24),
            'K' => f.hour12 = small(number(&mut rest, n, 2)?),
            'h' => f.hour12 = small(number(&mut rest, n, 2)? % 12),
            'm' => f.minute = small(number(&mut rest, n, 2)?)?,
            's' => f.second = small(number(&mut rest, n, 2)?)?,
            'S' => {
                let len = rest.bytes().take(n).take_while(u8::is_ascii_digit).count();
                if len != n {
                    return None;
                }
                let digits = &rest[..n.min(9)];
                f.nano = digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32);
                rest = &rest[n..];
            }
            'z' | 'V' => {
                // The longest run of zone-like characters that names a zone.
                let run = rest
                    .char_indices()
                    .find(|(_, ch)| !(ch.is_ascii_alphanumeric() || "/_+-:".contains(*ch)))
                    .map_or(rest.len(), |(i, _)| i);
                let (zone, used) =
                    (1..=run).rev().find_map(|len| Zone::parse(&rest[..len]).map(|z| (z, len)))?;
                f.zone = Some(zone);
                rest = &rest[used..];
            }
            'Z' | 'X' | 'x' | 'O' => {
                for prefix in ["GMT", "UTC"] {
                    if let Some(r) = rest.strip_prefix(prefix) {
                        rest = r;
                        if c == 'O' || !r.starts_with(['+', '-']) {
                            f.offset = Some(0);
                        }
                        break;
                    }
                }
                if let Some(r) = rest.strip_prefix('Z') {
                    rest = r;
                    f.offset = Some(0);
                } else if let Some((secs, used)) = parse_offset(rest) {
                    f.offset = Some(secs);
                    rest = &rest[used..];
                } else if f.offset.is_none() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    if !rest.is_empty() {
        return None;
    }
    let year = match (f.year, f.year_of_era) {
        (Some(y), _) => y,
        (None, Some(y)) if f.bc => 1 - y,
        (None, Some(y)) => y,
        (None, None) => 1970,
    };
    let year = i32::try_from(year).ok()?;
    let date = match (f.day_of_year, f.month) {
        (Some(doy), None) => NaiveDate::from_yo_opt(year, doy)?,
        _ => NaiveDate::from_ymd_opt(year, f.month.unwrap_or(1), f.day.unwrap_or(1))?,
    };
    let hour = match (f.hour, f.hour12) {
        (Some(h), _) => h,
        (None, Some(h)) => h + if f.pm == Some(true) { 12 } else { 0 },
        (None, None) => 0,
    };
    let local = date.and_time(NaiveTime::from_hms_nano_opt(hour, f.minute, f.second, f.nano)?);
    let utc = match (f.offset, f.zone) {
        (Some(secs), _) => local - chrono::Duration::seconds(i64::from(secs)),
        (None, Some(zone)) => zone.to_utc(&local)?,
        (None, None) => local,
    };
    Some(utc.and_utc().timestamp_millis())
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(pattern: &str, ms: i64, zone: &str) -> Option<String> {
        let p = compile(pattern, Dialect::Joda).ok()?;
        format(&p, ms, Zone::parse(zone)?)
    }

    fn epoch(text: &str, pattern: &str) -> Option<i64> {
        parse(&compile(pattern, Dialect::Java).ok()?, text)
    }

    #[test]
    fn formats_the_documented_example() {
        let ts = fmt("yyyy.MM.dd G 'at' HH:mm:ss z", 100_000_000, "America/Belize");
        assert_eq!(ts.as_deref(), Some("1970.01.01 AD at 21:46:40 CST"));
        assert_eq!(fmt("yyyy", 1_481_825_251_155, "UTC").as_deref(), Some("2016"));
    }

    #[test]
    fn formats_common_letters() {
        let ms = 1_196_705_730_592; // 2007-12-03T18:15:30.592Z, a Monday
        let cases = [
            ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", "UTC", "2007-12-03T18:15:30.592+0000"),
            ("yyyy-MM-dd HH:mm:ss.SSS ZZ", "America/Los_Angeles", "2007-12-03 10:15:30.592 -08:00"),
            ("EEE, d MMM yy h:mm a", "UTC", "Mon, 3 Dec 07 6:15 PM"),
            ("EEEE MMMM dd, D", "Europe/Paris", "Monday December 03, 337"),
            ("HH:mm z", "UTC+01:00", "19:15 UTC+01:00"),
            ("kk KK hh", "Asia/Tokyo", "03 03 03"),
            ("''yy''", "UTC", "'07'"),
        ];
        for (pattern, zone, want) in cases {
            assert_eq!(fmt(pattern, ms, zone).as_deref(), Some(want), "{pattern} in {zone}");
        }
        assert_eq!(fmt("yyyy QQ", ms, "UTC"), None);
        assert_eq!(fmt("yyyy", ms, "Mars/Olympus"), None);
    }

    #[test]
    fn parses_the_documented_examples() {
        assert_eq!(epoch("2020-04-03 09:45:18 UTC+01:00", "yyyy-MM-dd HH:mm:ss VV"), Some(1_585_903_518_000));
        assert_eq!(epoch("18 December 2015", "dd MMMM yyyy"), Some(1_450_396_800_000));
        assert_eq!(
            epoch("2007-12-03 10:15:30.592 America/Los_Angeles", "yyyy-MM-dd HH:mm:ss.SSS z"),
            Some(1_196_705_730_592)
        );
    }

    #[test]
    fn parses_offsets_and_adjacent_numbers() {
        assert_eq!(epoch("20071203181530", "yyyyMMddHHmmss"), Some(1_196_705_730_000));
        assert_eq!(epoch("2007-12-03T19:15:30+01:00", "yyyy-MM-dd'T'HH:mm:ssXXX"), Some(1_196_705_730_000));
        assert_eq!(epoch("2007-12-03T18:15:30Z", "yyyy-MM-dd'T'HH:mm:ssX"), Some(1_196_705_730_000));
        assert_eq!(epoch("03/12/2007 06:15:30 PM GMT", "dd/MM/yyyy hh:mm:ss a z"), Some(1_196_705_730_000));
        assert_eq!(epoch("2007-12-03", "yyyy-MM-dd"), Some(1_196_640_000_000));
        assert_eq!(epoch("Dec 3, 2007 10:15 AM PST", "MMM d, yyyy hh:mm a z"), Some(1_196_705_700_000));
        assert_eq!(epoch("2007-07-03 10:15 PDT", "yyyy-MM-dd HH:mm z"), Some(1_183_482_900_000));
        assert_eq!(epoch("2007-12-03 trailing", "yyyy-MM-dd"), None);
        assert_eq!(epoch("2007-13-03", "yyyy-MM-dd"), None);
    }
}
