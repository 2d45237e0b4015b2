//! Schedule expressions as Amazon EventBridge Scheduler writes them: `cron(...)`, `rate(...)` and
//! `at(...)`, read in an IANA time zone. A `[[triggers.schedule]]` entry of the config is compiled
//! here once ([`parse`]); the schedule runner that starts executions then asks for the next tick
//! ([`Schedule::next_after`]) and, after a restart, for the latest tick it missed while the daemon
//! was down ([`Schedule::last_between`]), and fills EventBridge's context placeholders into the
//! target input ([`fill_placeholders`]). Pure: the current time is always an argument.
//!
//! What the expressions mean (EventBridge Scheduler User Guide, "Schedule types", and the
//! CreateSchedule reference):
//! - `cron(minutes hours day-of-month month day-of-week year)`: six fields, read on the wall clock
//!   of the schedule's zone. Day-of-week counts 1-7 from Sunday; one of the two day fields is `?`;
//!   `L`, `W`, `LW`, `nL` and `n#k` as the User Guide lists them; years 1970-2199.
//! - Daylight saving: "When time shifts forward in the Spring, if a cron expression falls on a
//!   non-existent date and time, your schedule invocation is skipped. When time shifts backwards in
//!   the Fall, your schedule runs only once and does not repeat its invocation", and the Guide's
//!   example runs "only once at 2:30 a.m. before the shift occurs": a repeated wall time fires at
//!   its first showing. This holds for every wall time, so a `*/15` schedule is quiet during the
//!   replayed hour. An `at(...)` in a skipped hour never fires, by the same rule.
//! - `rate(N unit)`: minute(s), hour(s), day(s), singular only with 1, plus second(s) for polling
//!   on edge devices. Ticks are every multiple of the period since the Unix epoch, not since the
//!   schedule was created as on AWS, so every restart and every daemon sharing a database computes
//!   the same ticks; a rate knows no zone and no daylight saving ("days represents a 24-hour
//!   duration").
//!
//! The calendar (ranges, steps, `L`, `W`, `#`, years) is matched by `croner`, which is only ever
//! asked about wall-clock readings; turning a reading into an instant, where the daylight-saving
//! rule lives, is done here, so croner's own policy (a skipped fixed time fires after the gap, a
//! repeated wildcard hour fires twice) never applies.

use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde_json::Value;
use std::fmt;

/// A parsed schedule expression and the zone it is read in.
#[derive(Clone)]
pub struct Schedule {
    /// As written in the config, for logs.
    expression: Box<str>,
    zone: Tz,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// Matched on the zone's wall clock, seconds always 0.
    Cron(Box<Cron>),
    /// A tick every `period` seconds, counted from the Unix epoch.
    Rate { period: i64 },
    /// The one tick; none when the wall time falls in a daylight-saving gap.
    At(Option<DateTime<Utc>>),
}

impl fmt::Debug for Schedule {
    // croner's Debug prints every bit of its fields; the expression says the same in one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("expression", &self.expression)
            .field("timezone", &self.zone.name())
            .finish()
    }
}

/// A schedule expression or time zone that cannot be read: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ScheduleError {
    pub message: String,
}

fn error(message: String) -> ScheduleError {
    ScheduleError { message }
}

/// Reads `expression` in `timezone` (an IANA name; `None` is UTC).
pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Schedule, ScheduleError> {
    let zone = match timezone {
        None => Tz::UTC,
        Some(name) => name.parse::<Tz>().map_err(|_| {
            error(format!(
                "unknown time zone `{name}`: expected an IANA name such as Europe/Dublin or America/New_York"
            ))
        })?,
    };
    let text = expression.trim();
    let not_an_expression =
        || error(format!("schedule expression `{text}` is not cron(...), rate(...) or at(...)"));
    let (name, rest) = text.split_once('(').ok_or_else(not_an_expression)?;
    let body = || rest.strip_suffix(')').ok_or_else(|| error(format!("{name}(...) lacks its closing `)`")));
    let kind = match name {
        "cron" => {
            // Error positions count characters of the expression as the config wrote it.
            let body_at = expression.len() - expression.trim_start().len() + name.len() + 1;
            let column = |byte| expression[..body_at + byte].chars().count() + 1;
            Kind::Cron(Box::new(parse_cron(body()?, column)?))
        }
        "rate" => Kind::Rate { period: parse_rate(body()?).map_err(error)? },
        "at" => Kind::At(first_instant(zone, parse_at(body()?).map_err(error)?)),
        _ => return Err(not_an_expression()),
    };
    Ok(Schedule { expression: text.into(), zone, kind })
}

impl Schedule {
    /// The first tick strictly after `after`, or None when there is none (an at() in the past, a
    /// cron whose years are over).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Cron(cron) => {
                // Readings up to the one shown at `after` first showed at or before `after`, so the
                // first later reading whose first showing is later still is the next tick.
                let mut reading = after.with_timezone(&self.zone).naive_local().with_nanosecond(0)?;
                loop {
                    reading = cron.find_next_occurrence(&reading, false).ok()?;
                    match first_instant(self.zone, reading) {
                        Some(tick) if tick > after => return Some(tick),
                        // Skipped by the clocks, or replayed after its first showing was past.
                        _ => continue,
                    }
                }
            }
            Kind::Rate { period } => {
                let tick = after.timestamp().div_euclid(*period).checked_add(1)?.checked_mul(*period)?;
                DateTime::from_timestamp(tick, 0)
            }
            Kind::At(tick) => tick.filter(|tick| *tick > after),
        }
    }

    /// The last tick at or before `at` and strictly after `after` (used to find the latest tick
    /// missed while the daemon was down), or None.
    pub fn last_between(&self, after: DateTime<Utc>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let tick = match &self.kind {
            Kind::Cron(cron) => {
                let mut reading = self.latest_reading(at)?;
                let mut inclusive = true;
                loop {
                    reading = cron.find_previous_occurrence(&reading, inclusive).ok()?;
                    inclusive = false;
                    // First showings rise with the readings, so the first one at or before `at`,
                    // going down, is the latest tick, and one at or before `after` ends the search.
                    match first_instant(self.zone, reading) {
                        Some(tick) if tick <= after => return None,
                        Some(tick) if tick <= at => break tick,
                        _ => continue,
                    }
                }
            }
            Kind::Rate { period } => {
                DateTime::from_timestamp(at.timestamp().div_euclid(*period).checked_mul(*period)?, 0)?
            }
            Kind::At(tick) => (*tick)?,
        };
        (after < tick && tick <= at).then_some(tick)
    }

    /// The latest wall-clock reading the zone has shown by `at`. While a fall-back hour replays,
    /// the clock has already shown the rest of that hour once, so this is `at` read with the
    /// offset of a day before when that offset was larger (one change a day at most, as in every
    /// zone's rules).
    fn latest_reading(&self, at: DateTime<Utc>) -> Option<NaiveDateTime> {
        let offset = |instant: DateTime<Utc>| {
            self.zone.offset_from_utc_datetime(&instant.naive_utc()).fix().local_minus_utc()
        };
        let day_before = at.checked_sub_signed(TimeDelta::days(1)).unwrap_or(at);
        let seconds = offset(at).max(offset(day_before));
        at.naive_utc().checked_add_signed(TimeDelta::seconds(i64::from(seconds)))?.with_nanosecond(0)
    }
}

/// The instant a wall-clock reading first shows in `zone`: none inside a spring-forward gap, the
/// earlier of the two inside a fall-back overlap.
fn first_instant(zone: Tz, reading: NaiveDateTime) -> Option<DateTime<Utc>> {
    zone.from_local_datetime(&reading).earliest().map(|instant| instant.with_timezone(&Utc))
}

/// One field of a cron expression: its name in errors, its values and its value names.
struct Field {
    name: &'static str,
    /// What one value is, in "`x` is not a valid ...".
    noun: &'static str,
    min: u32,
    max: u32,
    /// Names of `min`, `min + 1`, ... (months and weekdays).
    names: &'static [&'static str],
    /// The two day fields have symbols of their own.
    days: Option<Days>,
}

#[derive(Clone, Copy)]
enum Days {
    OfMonth,
    OfWeek,
}

const MONTHS: [&str; 12] =
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const DAY_OF_MONTH: usize = 2;
const DAY_OF_WEEK: usize = 4;
const FIELDS: [Field; 6] = [
    Field { name: "minutes", noun: "minute", min: 0, max: 59, names: &[], days: None },
    Field { name: "hours", noun: "hour", min: 0, max: 23, names: &[], days: None },
    Field {
        name: "day-of-month",
        noun: "day of the month",
        min: 1,
        max: 31,
        names: &[],
        days: Some(Days::OfMonth),
    },
    Field { name: "month", noun: "month", min: 1, max: 12, names: &MONTHS, days: None },
    Field {
        name: "day-of-week",
        noun: "day of the week",
        min: 1,
        max: 7,
        names: &WEEKDAYS,
        days: Some(Days::OfWeek),
    },
    Field { name: "year", noun: "year", min: 1970, max: 2199, names: &[], days: None },
];

/// Reads the fields and hands croner the same schedule with numbers only and explicit ranges,
/// so that croner's own readings of `?`, `*`, names and `L` (and its defaults) never decide
/// anything. `column` turns a byte offset in `body` into a character position for errors.
fn parse_cron(body: &str, column: impl Fn(usize) -> usize) -> Result<Cron, ScheduleError> {
    let fields = words(body);
    if fields.len() != FIELDS.len() {
        let hint = if fields.len() == 5 { "; end with `*` for every year" } else { "" };
        return Err(error(format!(
            "cron(...) needs 6 fields (minutes hours day-of-month month day-of-week year), found {}{hint}",
            fields.len()
        )));
    }
    let mut translated = Vec::with_capacity(FIELDS.len());
    for (field, &(start, text)) in FIELDS.iter().zip(&fields) {
        let croner_text = translate_field(field, text).map_err(|(offset, problem)| {
            let name = field.name;
            error(format!("cron(...) {name} `{text}` at character {}: {problem}", column(start + offset)))
        })?;
        translated.push(croner_text);
    }
    let (dom, dow) = (fields[DAY_OF_MONTH].1, fields[DAY_OF_WEEK].1);
    match (dom == "?", dow == "?") {
        (true, true) => {
            return Err(error(
                "cron(...) day-of-month and day-of-week are both `?`: one of them must name the days"
                    .to_owned(),
            ))
        }
        (false, false) => {
            return Err(error(format!(
                "cron(...) day-of-month `{dom}` and day-of-week `{dow}`: one of the two must be `?`"
            )))
        }
        _ => {}
    }
    let pattern = format!("0 {}", translated.join(" "));
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .alternative_weekdays(true)
        .build()
        .parse(&pattern)
        .map_err(|e| error(format!("cron({body}): {e}")))
}

/// The whitespace-separated words of `text`, each with its byte offset.
fn words(text: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                words.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    words
}

/// One field in croner's syntax, or the byte offset in `text` of what is wrong and what it is.
fn translate_field(field: &Field, text: &str) -> Result<String, (usize, String)> {
    let mut items = Vec::new();
    let mut offset = 0;
    for item in text.split(',') {
        items.push((offset, item));
        offset += item.len() + 1;
    }
    let mut out = Vec::with_capacity(items.len());
    for &(offset, item) in &items {
        let translated = match field.symbol(item) {
            // As in Quartz, from which EventBridge's cron comes, these name the whole field.
            Some(_) if items.len() > 1 && item.contains('#') => {
                Err(format!("only one `#` expression is allowed in day-of-week (`{text}` has a list)"))
            }
            Some(_) if items.len() > 1 => {
                Err(format!("`{item}` must be the whole {} field, not part of a list", field.name))
            }
            Some(symbol) => symbol,
            None => field.plain(item).map_err(|problem| match symbol_homes(field, item) {
                Some(homes) => format!("`{item}` belongs to {homes}, not {}", field.name),
                None => problem,
            }),
        };
        out.push(translated.map_err(|problem| (offset, problem))?);
    }
    Ok(out.join(","))
}

/// The day fields, other than `field`, of which `item` is a symbol: a hint for a symbol written
/// into the wrong field.
fn symbol_homes(field: &Field, item: &str) -> Option<String> {
    let homes: Vec<&str> = [&FIELDS[DAY_OF_MONTH], &FIELDS[DAY_OF_WEEK]]
        .into_iter()
        .filter(|home| home.name != field.name && matches!(home.symbol(item), Some(Ok(_))))
        .map(|home| home.name)
        .collect();
    (!homes.is_empty()).then(|| homes.join(" or "))
}

impl Field {
    /// The day fields' own forms (`?`, `L`, `LW`, `15W`; `?`, `L`, `6L`, `3#2`) in croner's
    /// syntax; None when `item` is none of them.
    fn symbol(&self, item: &str) -> Option<Result<String, String>> {
        let upper = item.to_ascii_uppercase();
        match self.days? {
            Days::OfMonth => Some(match upper.as_str() {
                "?" => Ok("*".to_owned()),
                "L" => Ok("L".to_owned()),
                "LW" => Ok("LW".to_owned()),
                _ if upper.starts_with("L-") => {
                    Err(format!("`{item}`: offsets from the last day (`L-n`) are not supported"))
                }
                _ => {
                    let day = upper.strip_suffix('W').filter(|day| !day.is_empty())?;
                    self.value(day).map(|day| format!("{day}W"))
                }
            }),
            Days::OfWeek => Some(match upper.as_str() {
                "?" => Ok("*".to_owned()),
                // "The L wildcard in the Day-of-month or Day-of-week fields specifies the last day
                // of the month or week": Saturday, in a week that starts on Sunday.
                "L" => Ok("7".to_owned()),
                _ => match upper.split_once('#') {
                    Some((day, nth)) => self.value(day).and_then(|day| match nth {
                        "1" | "2" | "3" | "4" | "5" => Ok(format!("{day}#{nth}")),
                        _ => Err(format!("`#{nth}`: the week after `#` is 1-5")),
                    }),
                    None => {
                        let day = upper.strip_suffix('L').filter(|day| !day.is_empty())?;
                        self.value(day).map(|day| format!("{day}L"))
                    }
                },
            }),
        }
    }

    /// `*`, a value or a range, with an optional `/step`: croner gets `first-last[/step]`.
    fn plain(&self, item: &str) -> Result<String, String> {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(self.step(step)?)),
            None => (item, None),
        };
        let (first, last) = if range == "*" {
            (self.min, self.max)
        } else if let Some((from, to)) = range.split_once('-') {
            let (first, last) = (self.value(from)?, self.value(to)?);
            if first > last {
                let named = from.bytes().any(|b| b.is_ascii_alphabetic());
                let show = |v: u32| match named {
                    true => self.names[(v - self.min) as usize].to_owned(),
                    false => v.to_string(),
                };
                let hint = match step {
                    None => format!("; write `{from}-{},{}-{to}`", show(self.max), show(self.min)),
                    Some(_) => String::new(),
                };
                return Err(format!("`{range}` runs backwards: ranges do not wrap around{hint}"));
            }
            (first, last)
        } else {
            // Quartz's `5/15`: from 5 to the end of the field, every 15.
            let first = self.value(range)?;
            (first, if step.is_some() { self.max } else { first })
        };
        Ok(match step {
            Some(step) => format!("{first}-{last}/{step}"),
            None if first == last => first.to_string(),
            None => format!("{first}-{last}"),
        })
    }

    fn step(&self, text: &str) -> Result<u32, String> {
        let span = self.max - self.min + 1;
        text.parse::<u32>()
            .ok()
            .filter(|step| text.bytes().all(|b| b.is_ascii_digit()) && (1..=span).contains(step))
            .ok_or_else(|| format!("`/{text}`: the step after `/` is a whole number from 1 to {span}"))
    }

    /// A number in the field's range, or a name.
    fn value(&self, token: &str) -> Result<u32, String> {
        let found = if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            token.parse::<u32>().ok().filter(|v| (self.min..=self.max).contains(v))
        } else {
            let position = self.names.iter().position(|name| name.eq_ignore_ascii_case(token));
            position.map(|i| self.min + i as u32)
        };
        let span = match (self.names.first(), self.names.last()) {
            (Some(first), Some(last)) => format!("{}-{} or {first}-{last}", self.min, self.max),
            _ => format!("{}-{}", self.min, self.max),
        };
        found.ok_or_else(|| match token.is_empty() {
            true => format!("a {} is missing ({span})", self.noun),
            false => format!("`{token}` is not a valid {} ({span})", self.noun),
        })
    }
}

/// `rate(N unit)` in seconds.
fn parse_rate(body: &str) -> Result<i64, String> {
    let words: Vec<&str> = body.split_whitespace().collect();
    let [value, unit] = words[..] else {
        return Err(format!("rate(...) takes a value and a unit, as in rate(5 minutes); found `{body}`"));
    };
    let n = value
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0 && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("rate(...) value `{value}` is not a positive whole number"))?;
    let (seconds, singular) = match unit {
        "second" | "seconds" => (1, "second"),
        "minute" | "minutes" => (60, "minute"),
        "hour" | "hours" => (3600, "hour"),
        "day" | "days" => (86_400, "day"),
        _ => return Err(format!("rate(...) unit `{unit}` is not minute(s), hour(s), day(s) or second(s)")),
    };
    // EventBridge: "If the value is equal to 1, then the unit must be singular. If the value is
    // greater than 1, the unit must be plural."
    match (n == 1, unit == singular) {
        (true, false) => Err(format!("rate(1 {unit}): with 1 the unit is singular, rate(1 {singular})")),
        (false, true) => Err(format!("rate({n} {unit}): with {n} the unit is plural, rate({n} {unit}s)")),
        _ => Ok(i64::from(n) * seconds),
    }
}

/// `at(yyyy-mm-ddThh:mm:ss)`: a wall-clock reading.
fn parse_at(body: &str) -> Result<NaiveDateTime, String> {
    let shaped = body.len() == 19
        && body.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return Err(format!("at(...) takes a local date and time as yyyy-mm-ddThh:mm:ss, found `{body}`"));
    }
    NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S")
        .ok()
        // chrono reads a leap second 60 into the nanoseconds.
        .filter(|reading| reading.nanosecond() == 0)
        .ok_or_else(|| format!("at(...) `{body}` is not a date and time of the calendar"))
}

/// The values EventBridge Scheduler's context placeholders stand for at one invocation.
#[derive(Debug, Clone, Copy)]
pub struct Placeholders<'a> {
    pub scheduled_time: DateTime<Utc>,
    pub schedule_arn: &'a str,
    pub execution_id: &'a str,
    pub attempt_number: u32,
}

const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";
const SCHEDULE_ARN: &str = "<aws.scheduler.schedule-arn>";
const EXECUTION_ID: &str = "<aws.scheduler.execution-id>";
const ATTEMPT_NUMBER: &str = "<aws.scheduler.attempt-number>";

/// EventBridge Scheduler's context placeholders in a target input: every JSON string in `input`
/// (keys too, as AWS replaces them in the input's text) has `<aws.scheduler.scheduled-time>`
/// (ISO-8601 UTC, as EventBridge writes it, e.g. 2027-01-01T09:00:00Z),
/// `<aws.scheduler.schedule-arn>`, `<aws.scheduler.execution-id>`, `<aws.scheduler.attempt-number>`
/// replaced.
pub fn fill_placeholders(input: &Value, ctx: &Placeholders) -> Value {
    let time = ctx.scheduled_time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let attempt = ctx.attempt_number.to_string();
    let values = [
        (SCHEDULED_TIME, time.as_str()),
        (SCHEDULE_ARN, ctx.schedule_arn),
        (EXECUTION_ID, ctx.execution_id),
        (ATTEMPT_NUMBER, attempt.as_str()),
    ];
    fill(input, &values)
}

fn fill(value: &Value, values: &[(&str, &str)]) -> Value {
    match value {
        Value::String(text) => Value::String(fill_text(text, values)),
        Value::Array(items) => Value::Array(items.iter().map(|item| fill(item, values)).collect()),
        Value::Object(map) => Value::Object(
            map.iter().map(|(key, item)| (fill_text(key, values), fill(item, values))).collect(),
        ),
        other => other.clone(),
    }
}

/// One pass over `text`, so that a value which happens to contain a placeholder is not filled again.
fn fill_text(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("<aws.scheduler.") {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        match values.iter().find(|(placeholder, _)| rest.starts_with(placeholder)) {
            Some((placeholder, value)) => {
                out.push_str(value);
                rest = &rest[placeholder.len()..];
            }
            None => {
                out.push('<');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn time(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}")).with_timezone(&Utc)
    }

    fn schedule(expression: &str, zone: &str) -> Schedule {
        parse(expression, Some(zone)).unwrap_or_else(|e| panic!("{expression} in {zone}: {e}"))
    }

    fn show(tick: Option<DateTime<Utc>>) -> String {
        tick.map_or("none".to_owned(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    }

    /// Each row: expression, zone, `after`, the next tick ("none" when there is none).
    #[track_caller]
    fn next(rows: &[(&str, &str, &str, &str)]) {
        for &(expression, zone, after, expected) in rows {
            let got = show(schedule(expression, zone).next_after(time(after)));
            assert_eq!(got, expected, "{expression} in {zone} after {after}");
        }
    }

    /// Each row: expression, zone, `after`, `at`, the last tick in (after, at].
    #[track_caller]
    fn last(rows: &[(&str, &str, &str, &str, &str)]) {
        for &(expression, zone, after, at, expected) in rows {
            let got = show(schedule(expression, zone).last_between(time(after), time(at)));
            assert_eq!(got, expected, "{expression} in {zone} between {after} and {at}");
        }
    }

    /// Each row: expression, zone, a piece of the error message.
    #[track_caller]
    fn refused(rows: &[(&str, Option<&str>, &str)]) {
        for &(expression, zone, what) in rows {
            match parse(expression, zone) {
                Ok(s) => panic!("{expression} parsed as {s:?}"),
                Err(e) => assert!(e.message.contains(what), "{expression}: {:?} lacks {what:?}", e.message),
            }
        }
    }

    #[test]
    fn weekdays_in_dublin_across_spring_forward() {
        next(&[
            ("cron(0 8 ? * MON-FRI *)", "Europe/Dublin", "2027-03-26T09:00:00Z", "2027-03-29T07:00:00Z"),
            ("cron(0 8 ? * MON-FRI *)", "Europe/Dublin", "2027-03-25T12:00:00Z", "2027-03-26T08:00:00Z"),
            ("cron(0 8 ? * 2-6 *)", "Europe/Dublin", "2027-03-26T09:00:00Z", "2027-03-29T07:00:00Z"),
            ("cron(0 8 ? * mon-fri *)", "Europe/Dublin", "2027-03-26T09:00:00Z", "2027-03-29T07:00:00Z"),
        ]);
    }

    #[test]
    fn a_wall_time_the_clocks_skip_is_skipped() {
        next(&[
            // New York: 2027-03-14 02:00 EST jumps to 03:00 EDT.
            ("cron(30 2 * * ? *)", "America/New_York", "2027-03-13T08:00:00Z", "2027-03-15T06:30:00Z"),
            ("cron(30 2 * * ? *)", "America/New_York", "2027-03-13T07:00:00Z", "2027-03-13T07:30:00Z"),
            ("cron(0,30 * * * ? *)", "America/New_York", "2027-03-14T06:30:00Z", "2027-03-14T07:00:00Z"),
            ("cron(0 2 ? * SUN *)", "America/New_York", "2027-03-08T00:00:00Z", "2027-03-21T06:00:00Z"),
            // Dublin: 2027-03-28 01:00 GMT jumps to 02:00 IST.
            ("cron(30 1 * * ? *)", "Europe/Dublin", "2027-03-27T02:00:00Z", "2027-03-29T00:30:00Z"),
            ("cron(*/20 1 * * ? *)", "Europe/Dublin", "2027-03-27T01:40:00Z", "2027-03-29T00:00:00Z"),
            // Wall times around the gap still fire.
            ("cron(59 0 * * ? *)", "Europe/Dublin", "2027-03-27T12:00:00Z", "2027-03-28T00:59:00Z"),
            ("cron(0 2 * * ? *)", "Europe/Dublin", "2027-03-27T12:00:00Z", "2027-03-28T01:00:00Z"),
        ]);
    }

    #[test]
    fn a_wall_time_the_clocks_repeat_fires_once_at_its_first_showing() {
        next(&[
            // New York: 2027-11-07 02:00 EDT falls back to 01:00 EST.
            ("cron(30 1 * * ? *)", "America/New_York", "2027-11-07T04:00:00Z", "2027-11-07T05:30:00Z"),
            ("cron(30 1 * * ? *)", "America/New_York", "2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"),
            ("cron(30 1 * * ? *)", "America/New_York", "2027-11-07T06:00:00Z", "2027-11-08T06:30:00Z"),
            // The replayed hour is quiet for wildcards too: every reading fires once.
            ("cron(*/30 * * * ? *)", "America/New_York", "2027-11-07T05:30:00Z", "2027-11-07T07:00:00Z"),
            ("cron(*/30 * * * ? *)", "America/New_York", "2027-11-07T06:10:00Z", "2027-11-07T07:00:00Z"),
            // Dublin: 2027-10-31 02:00 IST falls back to 01:00 GMT.
            ("cron(30 1 * * ? *)", "Europe/Dublin", "2027-10-30T23:00:00Z", "2027-10-31T00:30:00Z"),
            ("cron(30 1 * * ? *)", "Europe/Dublin", "2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z"),
            ("cron(0 2 * * ? *)", "Europe/Dublin", "2027-10-31T00:30:00Z", "2027-10-31T02:00:00Z"),
        ]);
    }

    #[test]
    fn last_day_nearest_weekday_and_nth_weekday() {
        next(&[
            ("cron(0 9 L * ? *)", "UTC", "2028-02-01T00:00:00Z", "2028-02-29T09:00:00Z"),
            ("cron(0 9 L * ? *)", "UTC", "2027-02-01T00:00:00Z", "2027-02-28T09:00:00Z"),
            // 2027-05-15 is a Saturday: the nearest weekday is Friday the 14th.
            ("cron(0 9 15W * ? *)", "UTC", "2027-05-01T00:00:00Z", "2027-05-14T09:00:00Z"),
            // 2027-05-01 is a Saturday; 1W stays in May: Monday the 3rd.
            ("cron(0 9 1W * ? *)", "UTC", "2027-04-30T00:00:00Z", "2027-05-03T09:00:00Z"),
            // 2027-10-31 is a Sunday: the last weekday is Friday the 29th.
            ("cron(0 9 LW * ? *)", "UTC", "2027-10-01T00:00:00Z", "2027-10-29T09:00:00Z"),
            ("cron(0 9 ? * 3#2 *)", "UTC", "2027-01-01T00:00:00Z", "2027-01-12T09:00:00Z"),
            ("cron(0 9 ? * TUE#2 *)", "UTC", "2027-01-12T09:00:00Z", "2027-02-09T09:00:00Z"),
            ("cron(0 9 ? * 2#5 *)", "UTC", "2027-01-01T00:00:00Z", "2027-03-29T09:00:00Z"),
            // The User Guide's example: the last Friday of each month, 2022 to 2023.
            ("cron(15 10 ? * 6L 2022-2023)", "UTC", "2023-01-01T00:00:00Z", "2023-01-27T10:15:00Z"),
            ("cron(15 10 ? * 6L 2022-2023)", "UTC", "2023-12-29T10:15:00Z", "none"),
            // `L` alone in day-of-week is the last day of the week: Saturday.
            ("cron(0 12 ? * L *)", "UTC", "2027-01-01T00:00:00Z", "2027-01-02T12:00:00Z"),
            ("cron(0 12 ? * L *)", "UTC", "2027-01-02T12:00:00Z", "2027-01-09T12:00:00Z"),
        ]);
    }

    #[test]
    fn years() {
        next(&[
            ("cron(0 12 * * ? 2027)", "UTC", "2027-12-31T11:00:00Z", "2027-12-31T12:00:00Z"),
            ("cron(0 12 * * ? 2027)", "UTC", "2027-12-31T12:00:00Z", "none"),
            ("cron(0 12 * * ? 2027)", "UTC", "2026-05-05T00:00:00Z", "2027-01-01T12:00:00Z"),
            ("cron(0 0 1 1 ? 2030/10)", "UTC", "2031-01-01T00:00:00Z", "2040-01-01T00:00:00Z"),
            ("cron(0 0 1 1 ? 2027,2029)", "UTC", "2027-01-01T00:00:00Z", "2029-01-01T00:00:00Z"),
            ("cron(0 0 1 1 ? *)", "UTC", "2199-01-01T00:00:00Z", "none"),
            // The year is the zone's: New Year in Auckland is still 2027 in UTC.
            ("cron(0 0 1 1 ? 2028)", "Pacific/Auckland", "2027-06-01T00:00:00Z", "2027-12-31T11:00:00Z"),
        ]);
    }

    #[test]
    fn ranges_steps_and_lists() {
        next(&[
            ("cron(5/20 9-17/4 ? * 2,4,6 *)", "UTC", "2027-01-01T17:45:00Z", "2027-01-04T09:05:00Z"),
            ("cron(5/20 9-17/4 ? * 2,4,6 *)", "UTC", "2027-01-04T09:05:00Z", "2027-01-04T09:25:00Z"),
            ("cron(5/20 9-17/4 ? * 2,4,6 *)", "UTC", "2027-01-04T09:45:00Z", "2027-01-04T13:05:00Z"),
            ("cron(0/15 * * * ? *)", "UTC", "2027-01-01T10:07:30Z", "2027-01-01T10:15:00Z"),
            ("cron(*/10 * * * ? *)", "UTC", "2027-01-01T10:50:00Z", "2027-01-01T11:00:00Z"),
            ("cron(0 0 1 JAN,jul ? *)", "UTC", "2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z"),
            ("cron(0 0 1 */3 ? *)", "UTC", "2027-01-01T00:00:00Z", "2027-04-01T00:00:00Z"),
            ("cron(0 0 1 FEB-APR ? *)", "UTC", "2027-04-01T00:00:00Z", "2028-02-01T00:00:00Z"),
            ("cron(0 0 ? * SAT,SUN *)", "UTC", "2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z"),
            ("cron(0 0 ? * */2 *)", "UTC", "2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z"),
            ("cron(0 0 10-12,20 * ? *)", "UTC", "2027-01-12T00:00:00Z", "2027-01-20T00:00:00Z"),
            ("cron(0 8 * * ? *)", "UTC", "2027-01-01T08:00:00.500Z", "2027-01-02T08:00:00Z"),
            ("cron(0 8 * * ? *)", "UTC", "2027-01-01T07:59:59.999Z", "2027-01-01T08:00:00Z"),
            // A day that no month has never comes.
            ("cron(0 0 31 2 ? *)", "UTC", "2027-01-01T00:00:00Z", "none"),
        ]);
    }

    #[test]
    fn no_zone_is_utc() {
        let daily = parse("cron(0 8 * * ? *)", None).unwrap();
        assert_eq!(show(daily.next_after(time("2027-07-01T09:00:00Z"))), "2027-07-02T08:00:00Z");
    }

    #[test]
    fn rates_are_aligned_to_the_epoch_and_ignore_zones() {
        next(&[
            ("rate(5 minutes)", "UTC", "2027-01-01T10:07:30Z", "2027-01-01T10:10:00Z"),
            ("rate(1 minute)", "UTC", "2027-01-01T10:07:30Z", "2027-01-01T10:08:00Z"),
            ("rate(1 hour)", "UTC", "2027-01-01T10:00:00Z", "2027-01-01T11:00:00Z"),
            ("rate(3 hours)", "UTC", "2027-01-01T10:00:00Z", "2027-01-01T12:00:00Z"),
            // 2027-01-01 is day 20819 of the epoch; 20825 is the next multiple of 7.
            ("rate(7 days)", "UTC", "2027-01-01T00:00:00Z", "2027-01-07T00:00:00Z"),
            ("rate(1 day)", "Europe/Dublin", "2027-03-28T00:30:00Z", "2027-03-29T00:00:00Z"),
            ("rate(1 day)", "America/New_York", "2027-11-07T05:30:00Z", "2027-11-08T00:00:00Z"),
            ("rate(30 seconds)", "UTC", "2027-01-01T10:00:10Z", "2027-01-01T10:00:30Z"),
            ("rate(1 second)", "UTC", "2027-01-01T10:00:10.250Z", "2027-01-01T10:00:11Z"),
            ("rate(90 minutes)", "UTC", "1970-01-01T00:00:00Z", "1970-01-01T01:30:00Z"),
        ]);
    }

    #[test]
    fn one_time_schedules() {
        next(&[
            ("at(2027-01-01T09:00:00)", "America/New_York", "2026-12-01T00:00:00Z", "2027-01-01T14:00:00Z"),
            ("at(2027-01-01T09:00:00)", "America/New_York", "2027-01-01T13:59:59Z", "2027-01-01T14:00:00Z"),
            ("at(2027-01-01T09:00:00)", "America/New_York", "2027-01-01T14:00:00Z", "none"),
            ("at(2027-01-01T09:00:00)", "America/New_York", "2030-01-01T00:00:00Z", "none"),
            ("at(2027-07-01T09:00:00)", "Europe/Dublin", "2027-01-01T00:00:00Z", "2027-07-01T08:00:00Z"),
            ("at(2027-07-01T09:00:00)", "UTC", "2027-01-01T00:00:00Z", "2027-07-01T09:00:00Z"),
            // In the spring-forward gap: the reading never shows, so it never fires.
            ("at(2027-03-14T02:30:00)", "America/New_York", "2027-01-01T00:00:00Z", "none"),
            // In the fall-back overlap: its first showing, in EDT.
            ("at(2027-11-07T01:30:00)", "America/New_York", "2027-01-01T00:00:00Z", "2027-11-07T05:30:00Z"),
        ]);
    }

    #[test]
    fn latest_missed_tick() {
        last(&[
            (
                "cron(0 8 ? * MON-FRI *)",
                "Europe/Dublin",
                "2027-03-26T09:00:00Z",
                "2027-03-31T12:00:00Z",
                "2027-03-31T07:00:00Z",
            ),
            (
                "cron(0 8 ? * MON-FRI *)",
                "Europe/Dublin",
                "2027-03-26T09:00:00Z",
                "2027-03-29T06:59:59Z",
                "none",
            ),
            // `at` is included, `after` is not.
            (
                "cron(0 8 ? * MON-FRI *)",
                "Europe/Dublin",
                "2027-03-26T09:00:00Z",
                "2027-03-29T07:00:00Z",
                "2027-03-29T07:00:00Z",
            ),
            (
                "cron(0 8 ? * MON-FRI *)",
                "Europe/Dublin",
                "2027-03-29T07:00:00Z",
                "2027-03-29T08:00:00Z",
                "none",
            ),
            // During the replayed hour the clock reads 01:10 again, but 01:45 has already fired.
            (
                "cron(45 1 * * ? *)",
                "America/New_York",
                "2027-11-06T00:00:00Z",
                "2027-11-07T06:10:00Z",
                "2027-11-07T05:45:00Z",
            ),
            (
                "cron(*/15 * * * ? *)",
                "America/New_York",
                "2027-11-07T00:00:00Z",
                "2027-11-07T06:50:00Z",
                "2027-11-07T05:45:00Z",
            ),
            (
                "cron(*/15 * * * ? *)",
                "America/New_York",
                "2027-11-07T00:00:00Z",
                "2027-11-07T07:20:00Z",
                "2027-11-07T07:15:00Z",
            ),
            // The skipped 02:30 of 2027-03-14 was never a tick.
            (
                "cron(30 2 * * ? *)",
                "America/New_York",
                "2027-03-13T12:00:00Z",
                "2027-03-15T06:00:00Z",
                "none",
            ),
            (
                "cron(0 12 * * ? 2027)",
                "UTC",
                "2027-06-01T00:00:00Z",
                "2029-01-01T00:00:00Z",
                "2027-12-31T12:00:00Z",
            ),
            (
                "rate(5 minutes)",
                "UTC",
                "2027-01-01T10:00:00Z",
                "2027-01-01T10:12:00Z",
                "2027-01-01T10:10:00Z",
            ),
            ("rate(5 minutes)", "UTC", "2027-01-01T10:10:00Z", "2027-01-01T10:14:59Z", "none"),
            (
                "rate(5 minutes)",
                "UTC",
                "2027-01-01T10:09:59Z",
                "2027-01-01T10:10:00Z",
                "2027-01-01T10:10:00Z",
            ),
            (
                "at(2027-01-01T09:00:00)",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2028-01-01T00:00:00Z",
                "2027-01-01T09:00:00Z",
            ),
            ("at(2027-01-01T09:00:00)", "UTC", "2027-01-01T09:00:00Z", "2028-01-01T00:00:00Z", "none"),
            ("at(2027-01-01T09:00:00)", "UTC", "2026-01-01T00:00:00Z", "2027-01-01T08:59:59Z", "none"),
        ]);
    }

    /// Walks each schedule tick by tick with `next_after` through both changes of 2027 and checks
    /// that `last_between` agrees around each tick, and that no cron fires a wall-clock reading
    /// twice (a rate may: it knows no wall clock).
    #[test]
    fn next_after_and_last_between_agree() {
        let cases = [
            ("cron(*/20 * * * ? *)", "America/New_York", "2027-03-13T20:00:00Z", "2027-03-14T12:00:00Z"),
            ("cron(*/20 * * * ? *)", "America/New_York", "2027-11-06T20:00:00Z", "2027-11-07T12:00:00Z"),
            ("cron(30 1,2 * * ? *)", "Europe/Dublin", "2027-03-26T00:00:00Z", "2027-03-30T00:00:00Z"),
            ("cron(30 1,2 * * ? *)", "Europe/Dublin", "2027-10-29T00:00:00Z", "2027-11-02T00:00:00Z"),
            ("cron(0 8 ? * 6L *)", "Europe/Dublin", "2027-01-01T00:00:00Z", "2027-12-31T00:00:00Z"),
            ("rate(7 minutes)", "Europe/Dublin", "2027-10-31T00:00:00Z", "2027-10-31T03:00:00Z"),
        ];
        for (expression, zone, from, to) in cases {
            let s = schedule(expression, zone);
            let (from, to) = (time(from), time(to));
            let mut ticks = Vec::new();
            let mut cursor = from;
            while let Some(tick) = s.next_after(cursor).filter(|t| *t <= to) {
                assert!(tick > cursor, "{expression}: {tick} after {cursor}");
                ticks.push(tick);
                cursor = tick;
            }
            assert!(ticks.len() > 2, "{expression} ticked {} times", ticks.len());
            if expression.starts_with("cron") {
                let tz: Tz = zone.parse().unwrap();
                let mut readings: Vec<_> = ticks.iter().map(|t| t.with_timezone(&tz).naive_local()).collect();
                readings.sort();
                readings.dedup();
                assert_eq!(readings.len(), ticks.len(), "{expression}: a reading fired twice");
            }
            for (i, tick) in ticks.iter().enumerate() {
                let second = TimeDelta::seconds(1);
                let before = i.checked_sub(1).map(|i| ticks[i]);
                assert_eq!(s.last_between(from, *tick), Some(*tick), "{expression} at {tick}");
                assert_eq!(s.last_between(from, *tick - second), before, "{expression} before {tick}");
                assert_eq!(s.last_between(*tick, *tick + second), None, "{expression} after {tick}");
            }
        }
    }

    #[test]
    fn cron_errors_say_what_and_where() {
        refused(&[
            (
                "cron(0 8 ? * MON-FRI)",
                None,
                "cron(...) needs 6 fields (minutes hours day-of-month month day-of-week year), found 5",
            ),
            ("cron(0 8 ? * MON-FRI * *)", None, "found 7"),
            ("cron()", None, "found 0"),
            ("cron(0 8 ? * MON-FRX *)", None, "day-of-week `MON-FRX` at character 14: `FRX` is not a valid day of the week (1-7 or SUN-SAT)"),
            ("cron(60 8 ? * MON *)", None, "minutes `60` at character 6: `60` is not a valid minute (0-59)"),
            ("  cron(0 24 ? * MON *)", None, "hours `24` at character 10"),
            ("cron(0 8 32 * ? *)", None, "day-of-month `32` at character 10: `32` is not a valid day of the month (1-31)"),
            ("cron(0 8 1 13 ? *)", None, "month `13` at character 12: `13` is not a valid month (1-12 or JAN-DEC)"),
            ("cron(0 8 1 JANUARY ? *)", None, "`JANUARY` is not a valid month"),
            ("cron(0 8 ? * 0 *)", None, "`0` is not a valid day of the week (1-7 or SUN-SAT)"),
            ("cron(0 8 ? * 8 *)", None, "`8` is not a valid day of the week"),
            ("cron(0 8 1 * ? 1969)", None, "year `1969` at character 16: `1969` is not a valid year (1970-2199)"),
            ("cron(0 8 1 * ? 2200)", None, "`2200` is not a valid year"),
            ("cron(0 8 1 * ? 2027-2200)", None, "`2200` is not a valid year"),
            ("cron(0,,5 8 1 * ? *)", None, "minutes `0,,5` at character 8: a minute is missing (0-59)"),
            ("cron(0- 8 1 * ? *)", None, "a minute is missing"),
            ("cron(*/0 8 1 * ? *)", None, "`/0`: the step after `/` is a whole number from 1 to 60"),
            ("cron(*/x 8 1 * ? *)", None, "`/x`"),
            ("cron(0 8 ? * FRI-MON *)", None, "`FRI-MON` runs backwards: ranges do not wrap around; write `FRI-SAT,SUN-MON`"),
            ("cron(0 22-2 1 * ? *)", None, "`22-2` runs backwards: ranges do not wrap around; write `22-23,0-2`"),
            ("cron(0 8 ? * ? *)", None, "day-of-month and day-of-week are both `?`"),
            ("cron(0 8 * * * *)", None, "day-of-month `*` and day-of-week `*`: one of the two must be `?`"),
            ("cron(0 8 1 * MON *)", None, "one of the two must be `?`"),
            ("cron(? 8 1 * ? *)", None, "minutes `?` at character 6: `?` belongs to day-of-month or day-of-week, not minutes"),
            ("cron(0 8 1 L ? *)", None, "`L` belongs to day-of-month or day-of-week, not month"),
            ("cron(0 8 ? * 3#1,6#3 *)", None, "only one `#` expression is allowed in day-of-week"),
            ("cron(0 8 ? * 3#6 *)", None, "`#6`: the week after `#` is 1-5"),
            ("cron(0 8 ? * 9#2 *)", None, "`9` is not a valid day of the week"),
            ("cron(0 8 L,15 * ? *)", None, "`L` must be the whole day-of-month field, not part of a list"),
            ("cron(0 8 1,15W * ? *)", None, "day-of-month `1,15W` at character 12: `15W` must be the whole"),
            ("cron(0 8 32W * ? *)", None, "`32` is not a valid day of the month"),
            ("cron(0 8 L-3 * ? *)", None, "`L-3`: offsets from the last day (`L-n`) are not supported"),
            ("cron(0 8 ? * 9L *)", None, "`9` is not a valid day of the week"),
            ("cron(0 8 ? * 15W *)", None, "day-of-week `15W` at character 14: `15W` belongs to day-of-month, not day-of-week"),
            ("cron(0 8 6L * ? *)", None, "`6L` belongs to day-of-week, not day-of-month"),
            ("cron(0 8 15W ? * *)", None, "month `?` at character 14: `?` belongs to day-of-month or day-of-week, not month"),
            ("cron(0 8 ? * 2,6L *)", None, "`6L` must be the whole day-of-week field"),
        ]);
    }

    #[test]
    fn rate_at_and_zone_errors() {
        refused(&[
            ("rate(5 minute)", None, "rate(5 minute): with 5 the unit is plural, rate(5 minutes)"),
            ("rate(1 minutes)", None, "rate(1 minutes): with 1 the unit is singular, rate(1 minute)"),
            ("rate(1 days)", None, "rate(1 day)"),
            ("rate(0 minutes)", None, "rate(...) value `0` is not a positive whole number"),
            ("rate(-5 minutes)", None, "`-5` is not a positive whole number"),
            ("rate(+5 minutes)", None, "`+5` is not a positive whole number"),
            ("rate(1.5 hours)", None, "`1.5` is not a positive whole number"),
            ("rate(5 weeks)", None, "rate(...) unit `weeks` is not minute(s), hour(s), day(s) or second(s)"),
            ("rate(5 Minutes)", None, "unit `Minutes`"),
            ("rate(5)", None, "rate(...) takes a value and a unit, as in rate(5 minutes); found `5`"),
            ("rate(5 minutes now)", None, "takes a value and a unit"),
            ("at(2027-01-01 09:00:00)", None, "at(...) takes a local date and time as yyyy-mm-ddThh:mm:ss"),
            ("at(2027-01-01T09:00)", None, "yyyy-mm-ddThh:mm:ss, found `2027-01-01T09:00`"),
            ("at(2027-01-01T09:00:00Z)", None, "yyyy-mm-ddThh:mm:ss"),
            (
                "at(2027-02-30T09:00:00)",
                None,
                "at(...) `2027-02-30T09:00:00` is not a date and time of the calendar",
            ),
            ("at(2027-01-01T24:00:00)", None, "is not a date and time"),
            ("at(2027-06-30T23:59:60)", None, "is not a date and time"),
            (
                "every 5 minutes",
                None,
                "schedule expression `every 5 minutes` is not cron(...), rate(...) or at(...)",
            ),
            ("Cron(0 8 * * ? *)", None, "is not cron(...), rate(...) or at(...)"),
            ("cron(0 8 * * ? *", None, "cron(...) lacks its closing `)`"),
            ("", None, "is not cron(...)"),
            ("rate(5 minutes)", Some("Europe/Dubln"), "unknown time zone `Europe/Dubln`"),
            ("rate(5 minutes)", Some(""), "unknown time zone ``"),
        ]);
    }

    #[test]
    fn a_schedule_can_be_shared_between_threads() {
        fn shareable<T: Clone + Send + Sync + fmt::Debug + 'static>(_: &T) {}
        let s = schedule("cron(0 8 ? * MON-FRI *)", "Europe/Dublin");
        shareable(&s);
        assert_eq!(
            format!("{s:?}"),
            r#"Schedule { expression: "cron(0 8 ? * MON-FRI *)", timezone: "Europe/Dublin" }"#
        );
    }

    #[test]
    fn placeholders_are_filled_in_every_string() {
        let ctx = Placeholders {
            scheduled_time: time("2027-01-01T09:00:00Z"),
            schedule_arn: "arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly",
            execution_id: "d32c5kddcf5bb8c3",
            attempt_number: 2,
        };
        let input = json!({
            "time": "<aws.scheduler.scheduled-time>",
            "note": "run <aws.scheduler.execution-id> try <aws.scheduler.attempt-number> of <aws.scheduler.schedule-arn>",
            "nested": [{"at": "<aws.scheduler.scheduled-time>"}, 1, true, null, 2.5],
            "<aws.scheduler.execution-id>": "keys too",
            "unknown": "<aws.scheduler.other> stays, and so does <aws.scheduler.",
            "attempt": 3,
        });
        let expected = json!({
            "time": "2027-01-01T09:00:00Z",
            "note": "run d32c5kddcf5bb8c3 try 2 of arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly",
            "nested": [{"at": "2027-01-01T09:00:00Z"}, 1, true, null, 2.5],
            "d32c5kddcf5bb8c3": "keys too",
            "unknown": "<aws.scheduler.other> stays, and so does <aws.scheduler.",
            "attempt": 3,
        });
        let filled = fill_placeholders(&input, &ctx);
        assert_eq!(filled, expected);
        // Key order is kept (preserve_order), as the input was written.
        let keys: Vec<_> = filled.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        assert_eq!(keys, ["time", "note", "nested", "d32c5kddcf5bb8c3", "unknown", "attempt"]);
    }

    #[test]
    fn a_filled_value_is_not_filled_again() {
        let ctx = Placeholders {
            scheduled_time: time("2027-01-01T09:00:00.750Z"),
            schedule_arn: "<aws.scheduler.execution-id>",
            execution_id: "x",
            attempt_number: 1,
        };
        let input = json!("<aws.scheduler.schedule-arn>|<aws.scheduler.scheduled-time>");
        assert_eq!(
            fill_placeholders(&input, &ctx),
            json!("<aws.scheduler.execution-id>|2027-01-01T09:00:00Z")
        );
    }
}
