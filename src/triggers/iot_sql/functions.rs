//! The built-in functions of IoT SQL, which shape an MQTT message into a workflow input
//! (MQTT message -> IoT SQL -> workflow input).
//!
//! One table of rows (`BUILTINS`): a name, an arity, the SQL version that introduced it
//! and a plain function over already-evaluated arguments. Names match in any case, as on
//! AWS (`Round(1.5)`). Results follow the tables of the AWS IoT SQL reference: a function
//! given an argument it cannot use returns Undefined rather than failing the rule. The
//! functions that call an AWS service are a second table (`REFUSED`), turned away when the
//! rule is parsed with the reason.
//!
//! Functions see the message (topic, client, principal, time, a UUID source) through
//! [`FnCx`]; none reads a clock or a random source of its own.

use super::ast::{Expr, Lit};
use super::decimal::Dec;
use super::time::{self, Dialect, Pattern, Zone};
use super::value::{int, whole as whole_val, Numbers, Val};
use super::{Message, SqlVersion};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use regex::{Regex, RegexBuilder};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// How many arguments a function takes, checked when the rule is parsed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Arity {
    Exactly(usize),
    Between(usize, usize),
    AtLeast(usize),
}

impl Arity {
    pub(super) fn admits(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::Between(lo, hi) => (lo..=hi).contains(&n),
            Arity::AtLeast(lo) => n >= lo,
        }
    }
}

impl fmt::Display for Arity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        match *self {
            Arity::Exactly(0) => f.write_str("no arguments"),
            Arity::Exactly(n) => write!(f, "exactly {n} argument{}", plural(n)),
            Arity::Between(lo, hi) => write!(f, "{lo} to {hi} arguments"),
            Arity::AtLeast(n) => write!(f, "at least {n} argument{}", plural(n)),
        }
    }
}

/// What a function sees besides its arguments.
pub(super) struct FnCx<'c> {
    pub(super) msg: &'c Message<'c>,
    pub(super) num: Numbers,
    pub(super) version: SqlVersion,
    pub(super) prepared: &'c Prepared,
    /// The raw payload when the first argument is the message's `*` (`encode(*, 'base64')`
    /// encodes the bytes as published, JSON or not).
    pub(super) payload: Option<&'c [u8]>,
}

type Run = for<'a> fn(&FnCx<'_>, Vec<Val<'a>>) -> Val<'a>;

pub(super) struct Builtin {
    pub(super) name: &'static str,
    pub(super) arity: Arity,
    pub(super) since: SqlVersion,
    run: Run,
    /// Work to do once at parse time, given the argument expressions.
    pub(super) prepare: Option<fn(&[Expr]) -> Prepared>,
}

impl Builtin {
    pub(super) fn run<'a>(&self, cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
        (self.run)(cx, args)
    }
}

impl fmt::Debug for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A literal argument compiled when the rule is parsed.
#[derive(Debug)]
pub(super) enum Prepared {
    Nothing,
    /// A literal regular expression; `None` when it does not compile (the calls are then
    /// Undefined, as AWS documents for an invalid expression).
    Regex(Option<Regex>),
    /// A literal date pattern; `None` when it uses letters stepgate does not offer.
    Time(Option<Pattern>),
}

const V1: SqlVersion = SqlVersion::V2015_10_08;
const V2: SqlVersion = SqlVersion::V2016_03_23;

macro_rules! row {
    ($name:literal, $arity:expr, $since:expr, $run:expr) => {
        Builtin { name: $name, arity: $arity, since: $since, run: $run, prepare: None }
    };
    ($name:literal, $arity:expr, $since:expr, $run:expr, $prepare:expr) => {
        Builtin { name: $name, arity: $arity, since: $since, run: $run, prepare: Some($prepare) }
    };
}

use Arity::{AtLeast, Between, Exactly};

/// Every function stepgate offers, one row each.
static BUILTINS: &[Builtin] = &[
    row!("abs", Exactly(1), V1, abs),
    row!("acos", Exactly(1), V1, |cx, a| double(cx, a, f64::acos)),
    row!("asin", Exactly(1), V1, |cx, a| double(cx, a, f64::asin)),
    row!("atan", Exactly(1), V1, |cx, a| double(cx, a, f64::atan)),
    row!("atan2", Exactly(2), V1, |cx, a| double2(cx, a, f64::atan2)),
    row!("bitand", Exactly(2), V1, |_, a| bits(a, |x, y| x & y)),
    row!("bitnot", Exactly(1), V1, bitnot),
    row!("bitor", Exactly(2), V1, |_, a| bits(a, |x, y| x | y)),
    row!("bitxor", Exactly(2), V1, |_, a| bits(a, |x, y| x ^ y)),
    row!("ceil", Exactly(1), V1, |cx, a| whole(cx, a, Dec::ceil)),
    row!("chr", Exactly(1), V1, chr),
    row!("clientid", Exactly(0), V1, |cx, _| owned(cx.msg.client_id)),
    row!("concat", AtLeast(0), V1, concat),
    row!("cos", Exactly(1), V1, |cx, a| double(cx, a, f64::cos)),
    row!("cosh", Exactly(1), V1, |cx, a| double(cx, a, f64::cosh)),
    row!("decode", Exactly(2), V2, decode),
    row!("encode", Exactly(2), V2, encode),
    row!("endswith", Exactly(2), V1, |_, a| texts2(&a, |s, t| Val::Bool(s.ends_with(t)))),
    row!("exp", Exactly(1), V1, |cx, a| double(cx, a, f64::exp)),
    row!("floor", Exactly(1), V1, |cx, a| whole(cx, a, Dec::floor)),
    row!("get", Exactly(2), V1, get),
    row!("indexof", Exactly(2), V2, |_, a| texts2(&a, indexof)),
    // isArray, isBoolean, isNumber, isObject and isString are stepgate's own type tests,
    // beside AWS's isNull and isUndefined.
    row!("isArray", Exactly(1), V1, |_, a| Val::Bool(a[0].as_array().is_some())),
    row!("isBoolean", Exactly(1), V1, |_, a| Val::Bool(matches!(a[0], Val::Bool(_)))),
    row!("isNull", Exactly(1), V1, |_, a| Val::Bool(matches!(a[0], Val::Null))),
    row!("isNumber", Exactly(1), V1, |_, a| Val::Bool(matches!(a[0], Val::Int(_) | Val::Dec(_)))),
    row!("isObject", Exactly(1), V1, |_, a| Val::Bool(a[0].as_object().is_some())),
    row!("isString", Exactly(1), V1, |_, a| Val::Bool(matches!(a[0], Val::Str(_)))),
    row!("isUndefined", Exactly(1), V2, |_, a| Val::Bool(a[0].is_undefined())),
    row!("length", Exactly(1), V2, |_, a| text1(&a, |s| int(s.chars().count() as i128))),
    row!("ln", Exactly(1), V1, |cx, a| double(cx, a, f64::ln)),
    row!("log", Exactly(1), V1, |cx, a| double(cx, a, f64::log10)),
    row!("lower", Exactly(1), V1, |_, a| text1(&a, |s| owned(&s.to_lowercase()))),
    row!("lpad", Exactly(2), V1, |_, a| pad(a, true)),
    row!("ltrim", Exactly(1), V1, |_, a| text1(&a, |s| owned(s.trim_start_matches(is_blank)))),
    row!("md5", Exactly(1), V1, |_, a| text1(&a, hex_digest::<md5::Md5>)),
    row!("mod", Exactly(2), V1, modulo),
    row!("nanvl", Exactly(2), V1, nanvl),
    row!("newuuid", Exactly(0), V1, |cx, _| Val::Str(Cow::Owned((cx.msg.new_uuid)()))),
    row!("numbytes", Exactly(1), V2, |_, a| text1(&a, |s| int(s.len() as i128))),
    row!("parse_time", Between(2, 3), V2, parse_time, |args| prepare_time(args, 0, Dialect::Joda)),
    row!("power", Exactly(2), V1, |cx, a| double2(cx, a, f64::powf)),
    row!("principal", Exactly(0), V1, |cx, _| owned(cx.msg.principal)),
    row!("rand", Exactly(0), V1, rand),
    row!("regexp_matches", Exactly(2), V1, regexp_matches, prepare_regex),
    row!("regexp_replace", Exactly(3), V1, regexp_replace, prepare_regex),
    row!("regexp_substr", Exactly(2), V1, regexp_substr, prepare_regex),
    row!("remainder", Exactly(2), V1, modulo),
    row!("replace", Exactly(3), V1, replace),
    row!("round", Exactly(1), V1, |cx, a| whole(cx, a, Dec::round_half_up)),
    row!("rpad", Exactly(2), V1, |_, a| pad(a, false)),
    row!("rtrim", Exactly(1), V1, |_, a| text1(&a, |s| owned(s.trim_end_matches(is_blank)))),
    row!("sha1", Exactly(1), V1, |_, a| text1(&a, hex_digest::<sha1::Sha1>)),
    row!("sha224", Exactly(1), V1, |_, a| text1(&a, hex_digest::<sha2::Sha224>)),
    row!("sha256", Exactly(1), V1, |_, a| text1(&a, hex_digest::<sha2::Sha256>)),
    row!("sha384", Exactly(1), V1, |_, a| text1(&a, hex_digest::<sha2::Sha384>)),
    row!("sha512", Exactly(1), V1, |_, a| text1(&a, hex_digest::<sha2::Sha512>)),
    row!("sign", Exactly(1), V1, sign),
    row!("sin", Exactly(1), V1, |cx, a| double(cx, a, f64::sin)),
    row!("sinh", Exactly(1), V1, |cx, a| double(cx, a, f64::sinh)),
    row!("sql_version", Exactly(0), V1, |cx, _| Val::Str(Cow::Borrowed(cx.version.as_str()))),
    row!("sqrt", Exactly(1), V1, |cx, a| double(cx, a, f64::sqrt)),
    row!("startswith", Exactly(2), V1, |_, a| texts2(&a, |s, t| Val::Bool(s.starts_with(t)))),
    row!("substring", Between(2, 3), V1, substring),
    row!("tan", Exactly(1), V1, |cx, a| double(cx, a, f64::tan)),
    row!("tanh", Exactly(1), V1, |cx, a| double(cx, a, f64::tanh)),
    row!("time_to_epoch", Exactly(2), V2, time_to_epoch, |args| prepare_time(args, 1, Dialect::Java)),
    row!("timestamp", Exactly(0), V1, |cx, _| Val::Int(i128::from(cx.msg.timestamp_ms))),
    row!("topic", Between(0, 1), V1, topic),
    row!("transform", Exactly(3), V2, transform),
    row!("trim", Exactly(1), V1, |_, a| text1(&a, |s| owned(s.trim_matches(is_blank)))),
    row!("trunc", Exactly(2), V1, trunc),
    row!("upper", Exactly(1), V1, |_, a| text1(&a, |s| owned(&s.to_uppercase()))),
];

/// Functions AWS offers that stepgate turns away, and why.
static REFUSED: &[(&str, &str)] = &[
    ("aws_lambda", "calls an AWS service"),
    ("get_dynamodb", "calls an AWS service"),
    ("get_registry_data", "calls an AWS service"),
    ("get_secret", "calls an AWS service"),
    ("get_thing_shadow", "calls an AWS service"),
    ("machinelearning_predict", "calls an AWS service"),
    ("accountid", "names the AWS account that owns the rule, and a stepgate rule has none"),
    ("get_mqtt_property", "reads MQTT 5 message properties, which stepgate does not pass to rules"),
    ("traceid", "reads AWS's trace ID of the message, which an MQTT broker does not give"),
    ("md2", "hashes with MD2, which is broken; use md5 or a SHA function"),
];

/// Looks a function up by name, in any case; the error says why it cannot be used.
pub(super) fn find(name: &str) -> Result<&'static Builtin, String> {
    if let Some((refused, why)) = REFUSED.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        return Err(format!("{refused} {why}; stepgate does not offer it"));
    }
    BUILTINS
        .iter()
        .find(|b| b.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| format!("unknown function '{name}'"))
}

fn owned<'a>(s: &str) -> Val<'a> {
    Val::Str(Cow::Owned(s.to_string()))
}

/// Java's `String.trim` set: spaces, tabs, line breaks and other control characters.
fn is_blank(c: char) -> bool {
    c <= ' '
}

/// A function of one argument taken as text ("standard string conversion"); Null and
/// Undefined, which have no text, give Undefined.
fn text1<'a>(args: &[Val<'_>], f: impl FnOnce(&str) -> Val<'a>) -> Val<'a> {
    args[0].to_text().map_or(Val::Undefined, |s| f(&s))
}

fn texts2<'a>(args: &[Val<'_>], f: impl FnOnce(&str, &str) -> Val<'a>) -> Val<'a> {
    match (args[0].to_text(), args[1].to_text()) {
        (Some(a), Some(b)) => f(&a, &b),
        _ => Val::Undefined,
    }
}

/// Functions that AWS computes in doubles ("Decimal arguments are rounded to double
/// precision before function application").
fn double<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>, f: fn(f64) -> f64) -> Val<'a> {
    args[0].to_dec().map_or(Val::Undefined, |d| cx.num.double(f(d.to_f64())))
}

fn double2<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>, f: fn(f64, f64) -> f64) -> Val<'a> {
    match (args[0].to_dec(), args[1].to_dec()) {
        (Some(a), Some(b)) => cx.num.double(f(a.to_f64(), b.to_f64())),
        _ => Val::Undefined,
    }
}

fn abs<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    match &args[0] {
        Val::Int(i) => Val::Int(i.abs()),
        v => v.to_dec().map_or(Val::Undefined, |d| cx.num.dec(d.abs())),
    }
}

/// ceil, floor, round: an Int from a number or a numeric string.
fn whole<'a>(_: &FnCx<'_>, args: Vec<Val<'a>>, f: fn(Dec) -> Dec) -> Val<'a> {
    match &args[0] {
        Val::Int(i) => Val::Int(*i),
        v => v.to_dec().map_or(Val::Undefined, |d| whole_val(f(d))),
    }
}

fn sign<'a>(_: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    args[0].to_dec().map_or(Val::Undefined, |d| Val::Int(i128::from(d.signum())))
}

/// The bitwise functions work on Java longs, from anything that converts to an Int.
fn long(v: &Val<'_>) -> Option<i64> {
    v.to_int().map(|i| i as i64)
}

fn bits<'a>(args: Vec<Val<'a>>, f: fn(i64, i64) -> i64) -> Val<'a> {
    match (long(&args[0]), long(&args[1])) {
        (Some(a), Some(b)) => Val::Int(i128::from(f(a, b))),
        _ => Val::Undefined,
    }
}

/// Two's complement, as Java's `~` gives it: `bitnot(13)` is -14. (The AWS reference's
/// example says 2, which no bitwise NOT of a signed integer gives.)
fn bitnot<'a>(_: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    long(&args[0]).map_or(Val::Undefined, |a| Val::Int(i128::from(!a)))
}

fn chr<'a>(_: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    match args[0].to_int() {
        Some(code @ 0..=127) => owned(&char::from(code as u8).to_string()),
        _ => Val::Undefined,
    }
}

/// Arrays join into one array; otherwise the arguments' texts join into one string.
fn concat<'a>(_: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    if args.is_empty() {
        return Val::Undefined;
    }
    if args.iter().any(|a| a.as_array().is_some()) {
        let num = Numbers { whole_decimals_are_ints: false };
        let mut out = Vec::new();
        for arg in args {
            match arg {
                Val::Json(Cow::Owned(Value::Array(items))) => out.extend(items),
                Val::Json(Cow::Borrowed(Value::Array(items))) => out.extend(items.iter().cloned()),
                other => out.extend(num.to_json(other)),
            }
        }
        return Val::Json(Cow::Owned(Value::Array(out)));
    }
    let mut s = String::new();
    for arg in &args {
        match arg.to_text() {
            Some(t) => s.push_str(&t),
            None => return Val::Undefined,
        }
    }
    Val::Str(Cow::Owned(s))
}

/// Decoding tolerates missing padding, as lenient decoders do.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn is_base64(scheme: &Val<'_>) -> bool {
    matches!(scheme, Val::Str(s) if s.eq_ignore_ascii_case("base64"))
}

/// Decoded JSON (an object or an array) can be addressed (`decode(x, 'base64').temp`);
/// other text is a string; what cannot be decoded is Null.
fn decode<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    if !is_base64(&args[1]) {
        return Val::Undefined;
    }
    let Some(text) = args[0].to_text() else { return Val::Undefined };
    let Ok(bytes) = LENIENT_BASE64.decode(text.trim().as_bytes()) else { return Val::Null };
    let json_like = bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'{' || *b == b'[');
    if json_like {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            return cx.num.read_owned(v);
        }
    }
    match String::from_utf8(bytes) {
        Ok(s) => Val::Str(Cow::Owned(s)),
        Err(e) => Val::Bytes(Cow::Owned(e.into_bytes())),
    }
}

fn encode<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    if !is_base64(&args[1]) {
        return Val::Undefined;
    }
    let encoded = match (cx.payload, &args[0]) {
        (Some(raw), _) => STANDARD.encode(raw),
        (None, Val::Bytes(b)) => STANDARD.encode(b),
        (None, v) => match v.to_text() {
            Some(t) => STANDARD.encode(t.as_bytes()),
            None => return Val::Undefined,
        },
    };
    Val::Str(Cow::Owned(encoded))
}

fn get<'a>(cx: &FnCx<'_>, mut args: Vec<Val<'a>>) -> Val<'a> {
    let key = args.pop().unwrap_or(Val::Undefined);
    let base = args.pop().unwrap_or(Val::Undefined);
    base.item(key, cx.num)
}

/// The character index of the first occurrence, -1 when there is none.
fn indexof<'a>(s: &str, part: &str) -> Val<'a> {
    Val::Int(s.find(part).map_or(-1, |at| s[..at].chars().count() as i128))
}

/// AWS clamps the width to 0..=1000.
fn pad<'a>(args: Vec<Val<'a>>, left: bool) -> Val<'a> {
    let width = match &args[1] {
        Val::Int(_) | Val::Dec(_) | Val::Str(_) => args[1].to_int(),
        _ => None,
    };
    match (args[0].to_text(), width) {
        (Some(s), Some(n)) => {
            let spaces = " ".repeat(n.clamp(0, 1000) as usize);
            owned(&if left { spaces + &s } else { s.into_owned() + &spaces })
        }
        _ => Val::Undefined,
    }
}

fn hex_digest<'a, D: sha2::Digest>(s: &str) -> Val<'a> {
    let digest = D::digest(s.as_bytes());
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    Val::Str(Cow::Owned(out))
}

/// mod and remainder: Java's `%` (the sign of the dividend) for Ints, else the decimal
/// remainder; a zero divisor is Undefined.
fn modulo<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    match (&args[0], &args[1]) {
        (Val::Int(a), Val::Int(b)) => a.checked_rem(*b).map_or(Val::Undefined, Val::Int),
        (a, b) => match (a.to_dec(), b.to_dec()) {
            (Some(a), Some(b)) => cx.num.opt_dec(a.rem(b)),
            _ => Val::Undefined,
        },
    }
}

/// The first argument unless it is no number at all (Undefined or Null; this engine has
/// no NaN decimals).
fn nanvl<'a>(_: &FnCx<'_>, mut args: Vec<Val<'a>>) -> Val<'a> {
    let second = args.pop().unwrap_or(Val::Undefined);
    let first = args.pop().unwrap_or(Val::Undefined);
    match first {
        Val::Undefined | Val::Null => second,
        v => v,
    }
}

/// A double in [0, 1) from 52 random bits of a fresh UUID: randomness comes from the
/// message context like the UUIDs themselves.
fn rand<'a>(cx: &FnCx<'_>, _: Vec<Val<'a>>) -> Val<'a> {
    let uuid = (cx.msg.new_uuid)();
    let hex: String = uuid.chars().filter(char::is_ascii_hexdigit).collect();
    // The last 13 hex digits of a version 4 UUID are all random.
    match hex.len().checked_sub(13).and_then(|at| u64::from_str_radix(&hex[at..], 16).ok()) {
        Some(bits) => cx.num.double(bits as f64 / (1u64 << 52) as f64),
        None => Val::Undefined,
    }
}

fn prepare_regex(args: &[Expr]) -> Prepared {
    match args.get(1) {
        Some(Expr::Lit(Lit::Str(p))) => Prepared::Regex(compile_regex(p)),
        _ => Prepared::Nothing,
    }
}

fn compile_regex(pattern: &str) -> Option<Regex> {
    // Bounded, since patterns may come from payloads.
    RegexBuilder::new(pattern).size_limit(1 << 20).dfa_size_limit(1 << 20).build().ok()
}

fn regex<'r>(cx: &'r FnCx<'_>, pattern: &Val<'_>) -> Option<Cow<'r, Regex>> {
    match cx.prepared {
        Prepared::Regex(r) => r.as_ref().map(Cow::Borrowed),
        _ => compile_regex(&pattern.to_text()?).map(Cow::Owned),
    }
}

fn regexp_matches<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    match (args[0].to_text(), regex(cx, &args[1])) {
        (Some(s), Some(re)) => Val::Bool(re.is_match(&s)),
        _ => Val::Undefined,
    }
}

/// The first match; Undefined when there is none.
fn regexp_substr<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    match (args[0].to_text(), regex(cx, &args[1])) {
        (Some(s), Some(re)) => re.find(&s).map_or(Val::Undefined, |m| owned(m.as_str())),
        _ => Val::Undefined,
    }
}

fn regexp_replace<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    let (Some(s), Some(re), Some(rep)) = (args[0].to_text(), regex(cx, &args[1]), args[2].to_text()) else {
        return Val::Undefined;
    };
    match java_replacement(&rep, re.captures_len()) {
        Some(rep) => owned(&re.replace_all(&s, rep.as_str())),
        None => Val::Undefined,
    }
}

/// Rewrites a Java replacement string (`$1`, `${name}`, `\$`) for the regex crate, whose
/// `$1a` would name a group "1a". Java reads a group number digit by digit while it stays
/// a valid group; an invalid reference makes the replacement invalid (`None`).
fn java_replacement(rep: &str, groups: usize) -> Option<String> {
    let mut out = String::with_capacity(rep.len() + 8);
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '$' => out.push_str("$$"),
                other => out.push(other),
            },
            '$' => {
                if chars.peek() == Some(&'{') {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                        return None;
                    }
                    out.push_str(&format!("${{{name}}}"));
                    continue;
                }
                let mut group = chars.next()?.to_digit(10)? as usize;
                if group >= groups {
                    return None;
                }
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    let longer = group * 10 + d as usize;
                    if longer >= groups {
                        break;
                    }
                    group = longer;
                    chars.next();
                }
                out.push_str(&format!("${{{group}}}"));
            }
            other => out.push(other),
        }
    }
    Some(out)
}

fn replace<'a>(_: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    match (args[0].to_text(), args[1].to_text(), args[2].to_text()) {
        (Some(s), Some(from), Some(to)) => owned(&s.replace(from.as_ref(), &to)),
        _ => Val::Undefined,
    }
}

/// An index argument: anything that converts to an Int, saturating (AWS's own example
/// passes -2.411E247).
fn index_arg(v: &Val<'_>) -> Option<i128> {
    match v {
        Val::Int(_) | Val::Dec(_) | Val::Str(_) => v.to_int(),
        _ => None,
    }
}

/// Characters from `start` (inclusive) to `end` (exclusive), both clamped to the string.
fn substring<'a>(_: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    let Some(s) = args[0].to_text() else { return Val::Undefined };
    let len = s.chars().count() as i128;
    let Some(start) = index_arg(&args[1]) else { return Val::Undefined };
    let end = match args.get(2) {
        Some(v) => match index_arg(v) {
            Some(e) => e,
            None => return Val::Undefined,
        },
        None => len,
    };
    let (start, end) = (start.clamp(0, len) as usize, end.clamp(0, len) as usize);
    if start >= end {
        return owned("");
    }
    owned(&s.chars().skip(start).take(end - start).collect::<String>())
}

fn topic<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    let Some(n) = args.first() else { return owned(cx.msg.topic) };
    match n.to_int().and_then(|n| usize::try_from(n).ok()).filter(|&n| n >= 1) {
        Some(n) => cx.msg.topic.split('/').nth(n - 1).map_or(Val::Undefined, owned),
        None => Val::Undefined,
    }
}

/// `transform('enrichArray', object, array)`: each object of the array with the object's
/// attributes added.
fn transform<'a>(_: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    if !matches!(&args[0], Val::Str(mode) if mode == "enrichArray") {
        return Val::Undefined;
    }
    let (Some(extra), Some(items)) = (args[1].as_object(), args[2].as_array()) else { return Val::Undefined };
    let out = items
        .iter()
        .map(|item| match item {
            Value::Object(map) => {
                let mut map = map.clone();
                map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
                Value::Object(map)
            }
            other => other.clone(),
        })
        .collect();
    Val::Json(Cow::Owned(Value::Array(out)))
}

/// Keeps `places` decimal places (clamped to 0..=34), dropping the rest.
fn trunc<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    let places = match &args[1] {
        Val::Int(_) | Val::Dec(_) => args[1].to_int(),
        _ => None,
    };
    let Some(places) = places else { return Val::Undefined };
    match &args[0] {
        Val::Int(i) => Val::Int(*i),
        v => v.to_dec().map_or(Val::Undefined, |d| cx.num.dec(d.trunc_places(places.clamp(0, 34) as u32))),
    }
}

fn prepare_time(args: &[Expr], at: usize, dialect: Dialect) -> Prepared {
    match args.get(at) {
        Some(Expr::Lit(Lit::Str(p))) => Prepared::Time(time::compile(p, dialect).ok()),
        _ => Prepared::Nothing,
    }
}

fn pattern<'r>(cx: &'r FnCx<'_>, v: &Val<'_>, dialect: Dialect) -> Option<Cow<'r, Pattern>> {
    match cx.prepared {
        Prepared::Time(p) => p.as_ref().map(Cow::Borrowed),
        _ => time::compile(&v.to_text()?, dialect).ok().map(Cow::Owned),
    }
}

/// `parse_time(pattern, epoch_ms[, zone])`: formats a time (Joda-Time patterns), in UTC
/// unless a zone is given.
fn parse_time<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    let Some(p) = pattern(cx, &args[0], Dialect::Joda) else { return Val::Undefined };
    let Some(ms) = args[1].to_int().and_then(|ms| i64::try_from(ms).ok()) else { return Val::Undefined };
    let zone = match args.get(2) {
        Some(z) => match z.to_text().and_then(|z| Zone::parse(&z)) {
            Some(zone) => zone,
            None => return Val::Undefined,
        },
        None => Zone::utc(),
    };
    time::format(&p, ms, zone).map_or(Val::Undefined, |s| Val::Str(Cow::Owned(s)))
}

/// `time_to_epoch(text, pattern)`: milliseconds since the epoch of a time written in a
/// Java `DateTimeFormatter` pattern; UTC unless the text names a zone or an offset.
fn time_to_epoch<'a>(cx: &FnCx<'_>, args: Vec<Val<'a>>) -> Val<'a> {
    let Some(p) = pattern(cx, &args[1], Dialect::Java) else { return Val::Undefined };
    let Some(text) = args[0].to_text() else { return Val::Undefined };
    time::parse(&p, &text).map_or(Val::Undefined, |ms| Val::Int(i128::from(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_one_row() {
        for (i, b) in BUILTINS.iter().enumerate() {
            assert!(
                BUILTINS[i + 1..].iter().all(|o| !o.name.eq_ignore_ascii_case(b.name)),
                "{} is listed twice",
                b.name
            );
            assert!(
                REFUSED.iter().all(|(n, _)| !n.eq_ignore_ascii_case(b.name)),
                "{} is also refused",
                b.name
            );
        }
    }

    #[test]
    fn translates_java_replacements() {
        assert_eq!(java_replacement("$1", 2).as_deref(), Some("${1}"));
        assert_eq!(java_replacement("$1a", 2).as_deref(), Some("${1}a"));
        assert_eq!(java_replacement("$12", 13).as_deref(), Some("${12}"));
        assert_eq!(java_replacement("$12", 3).as_deref(), Some("${1}2"));
        assert_eq!(java_replacement(r"\$5 and \\", 1).as_deref(), Some(r"$$5 and \"));
        assert_eq!(java_replacement("${word}", 2).as_deref(), Some("${word}"));
        assert_eq!(java_replacement("$3", 2), None);
        assert_eq!(java_replacement("cost: $", 1), None);
    }
}
