//! The values an IoT SQL rule computes with, between the MQTT message it reads and the
//! workflow input it builds (MQTT message -> IoT SQL -> workflow input).
//!
//! AWS's types are Int, Decimal, Boolean, String, Array, Object, Null, Undefined and, for a
//! payload that is not JSON, raw bytes. [`Val`] borrows from the payload wherever it can:
//! reading `a.b.c` walks the parsed payload without copying it, and a string field is a
//! borrowed `&str`. Arrays and objects stay `serde_json` values (borrowed from the payload,
//! or owned when SQL builds them), since JSON is what they become in the end.
//!
//! The conversions and comparisons follow the tables of the AWS IoT SQL reference ("Data
//! types", "Operators"); where a table says "Undefined", the result is [`Val::Undefined`].

use super::decimal::Dec;
use base64::Engine as _;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// An Int has at most 34 digits on AWS; a larger whole number is a Decimal.
const INT_LIMIT: u128 = 10u128.pow(34);

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Val<'a> {
    /// Not a value: a missing field, or a function given arguments it cannot use.
    Undefined,
    Null,
    Bool(bool),
    Int(i128),
    Dec(Dec),
    Str(Cow<'a, str>),
    /// A JSON array or object (never a scalar: those are read into the variants above).
    Json(Cow<'a, Value>),
    /// A payload that is not JSON, or decoded base64 that is neither JSON nor text.
    Bytes(Cow<'a, [u8]>),
}

/// How numbers are read. SQL version 2016-03-23 treats a whole number such as `10.0` as
/// the Int 10, wherever it comes from (payload, literal, arithmetic or cast); version
/// 2015-10-08 keeps it a Decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Numbers {
    pub(super) whole_decimals_are_ints: bool,
}

impl Numbers {
    /// A decimal result as the rule's version sees it.
    pub(super) fn dec<'a>(self, d: Dec) -> Val<'a> {
        if self.whole_decimals_are_ints && d.is_integral() {
            if let Some(i) = d.to_i128_exact().filter(|i| i.unsigned_abs() < INT_LIMIT) {
                return Val::Int(i);
            }
        }
        Val::Dec(d)
    }

    /// An optional decimal result: `None` (division by zero, overflow) is Undefined.
    pub(super) fn opt_dec<'a>(self, d: Option<Dec>) -> Val<'a> {
        d.map_or(Val::Undefined, |d| self.dec(d))
    }

    /// The result of a function that computes in doubles ("Decimal with double
    /// precision"); NaN and infinities ("imaginary results") are Undefined.
    pub(super) fn double<'a>(self, f: f64) -> Val<'a> {
        self.opt_dec(Dec::from_f64(f))
    }

    /// Reads a payload value without copying arrays, objects or strings.
    pub(super) fn read<'a>(self, v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => self.number(n),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            Value::Array(_) | Value::Object(_) => Val::Json(Cow::Borrowed(v)),
        }
    }

    pub(super) fn read_owned(self, v: Value) -> Val<'static> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(b),
            Value::Number(n) => self.number(&n),
            Value::String(s) => Val::Str(Cow::Owned(s)),
            v @ (Value::Array(_) | Value::Object(_)) => Val::Json(Cow::Owned(v)),
        }
    }

    fn number<'a>(self, n: &Number) -> Val<'a> {
        if let Some(i) = n.as_i64() {
            Val::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Val::Int(i128::from(u))
        } else {
            self.opt_dec(n.as_f64().and_then(Dec::from_f64))
        }
    }

    /// The JSON a value becomes in the output; `None` for Undefined, which JSON cannot
    /// hold (an object drops the key).
    pub(super) fn to_json(self, v: Val<'_>) -> Option<Value> {
        Some(match v {
            Val::Undefined => return None,
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Int(i) => int_json(i),
            Val::Dec(d) => match self.dec(d) {
                Val::Int(i) => int_json(i),
                _ => Number::from_f64(d.to_f64()).map_or(Value::Null, Value::Number),
            },
            Val::Str(s) => Value::String(s.into_owned()),
            Val::Json(Cow::Borrowed(v)) => self.copy_json(v),
            Val::Json(Cow::Owned(mut v)) => {
                self.tidy_json(&mut v);
                v
            }
            Val::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(&b)),
        })
    }

    /// Copies payload JSON into the output, with whole decimals made ints in version
    /// 2016-03-23 (`SELECT *` of `{"t": 10.0}` gives `{"t": 10}`).
    pub(super) fn copy_json(self, v: &Value) -> Value {
        let mut v = v.clone();
        self.tidy_json(&mut v);
        v
    }

    fn tidy_json(self, v: &mut Value) {
        if !self.whole_decimals_are_ints {
            return;
        }
        match v {
            Value::Number(n) if n.is_f64() => {
                if let Some(Val::Int(i)) = n.as_f64().and_then(Dec::from_f64).map(|d| self.dec(d)) {
                    *v = int_json(i);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.tidy_json(i)),
            Value::Object(map) => map.values_mut().for_each(|i| self.tidy_json(i)),
            _ => {}
        }
    }
}

fn int_json(i: i128) -> Value {
    if let Ok(i) = i64::try_from(i) {
        Value::from(i)
    } else if let Ok(u) = u64::try_from(i) {
        Value::from(u)
    } else {
        // JSON numbers here are doubles past 64 bits: the nearest one.
        Number::from_f64(i as f64).map_or(Value::Null, Value::Number)
    }
}

/// A whole decimal as the functions that "return an Int" give it: an Int while it has at
/// most 34 digits, a Decimal past that.
pub(super) fn whole<'a>(d: Dec) -> Val<'a> {
    Numbers { whole_decimals_are_ints: true }.dec(d)
}

/// A whole-number result: an Int while it has at most 34 digits.
pub(super) fn int<'a>(i: i128) -> Val<'a> {
    if i.unsigned_abs() < INT_LIMIT {
        Val::Int(i)
    } else {
        Val::Dec(Dec::from_i128(i))
    }
}

impl<'a> Val<'a> {
    pub(super) fn into_owned(self) -> Val<'static> {
        match self {
            Val::Undefined => Val::Undefined,
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Int(i) => Val::Int(i),
            Val::Dec(d) => Val::Dec(d),
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Json(j) => Val::Json(Cow::Owned(j.into_owned())),
            Val::Bytes(b) => Val::Bytes(Cow::Owned(b.into_owned())),
        }
    }

    pub(super) fn is_undefined(&self) -> bool {
        matches!(self, Val::Undefined)
    }

    pub(super) fn as_array(&self) -> Option<&[Value]> {
        match self {
            Val::Json(j) => j.as_array().map(Vec::as_slice),
            _ => None,
        }
    }

    pub(super) fn as_object(&self) -> Option<&Map<String, Value>> {
        match self {
            Val::Json(j) => j.as_object(),
            _ => None,
        }
    }

    /// `v.name`: a key of an object; anything else has no fields.
    pub(super) fn member(self, name: &str, num: Numbers) -> Val<'a> {
        match self {
            Val::Json(Cow::Borrowed(v)) => v.get(name).map_or(Val::Undefined, |x| num.read(x)),
            Val::Json(Cow::Owned(Value::Object(mut map))) => {
                // An object SQL built is consumed: the field moves out, nothing is copied.
                map.swap_remove(name).map_or(Val::Undefined, |x| num.read_owned(x))
            }
            _ => Val::Undefined,
        }
    }

    /// `get(v, key)` and `v[key]`: an item of an array or a character of a string by index
    /// (converted to Int), or the value of an object under a string key.
    pub(super) fn item(self, key: Val<'_>, num: Numbers) -> Val<'a> {
        match self {
            Val::Json(Cow::Borrowed(Value::Object(map))) => match key {
                Val::Str(k) => map.get(k.as_ref()).map_or(Val::Undefined, |x| num.read(x)),
                _ => Val::Undefined,
            },
            Val::Json(Cow::Owned(Value::Object(mut map))) => match key {
                Val::Str(k) => map.swap_remove(k.as_ref()).map_or(Val::Undefined, |x| num.read_owned(x)),
                _ => Val::Undefined,
            },
            Val::Json(Cow::Borrowed(Value::Array(items))) => match key.to_index(items.len()) {
                Some(i) => num.read(&items[i]),
                None => Val::Undefined,
            },
            Val::Json(Cow::Owned(Value::Array(mut items))) => match key.to_index(items.len()) {
                Some(i) => num.read_owned(items.swap_remove(i)),
                None => Val::Undefined,
            },
            Val::Str(s) => match key.to_index(s.chars().count()) {
                Some(i) => s.chars().nth(i).map_or(Val::Undefined, |c| Val::Str(Cow::Owned(c.to_string()))),
                None => Val::Undefined,
            },
            _ => Val::Undefined,
        }
    }

    /// An index within `0..len`, from anything that converts to an Int.
    fn to_index(&self, len: usize) -> Option<usize> {
        let i = self.to_int()?;
        usize::try_from(i).ok().filter(|&i| i < len)
    }

    /// "To Decimal": Int, Decimal, and strings that look like numbers. Booleans need an
    /// explicit cast.
    pub(super) fn to_dec(&self) -> Option<Dec> {
        match self {
            Val::Int(i) => Some(Dec::from_i128(*i)),
            Val::Dec(d) => Some(*d),
            Val::Str(s) => Dec::parse(s),
            _ => None,
        }
    }

    /// "To Int": decimals (and numeric strings) lose their fraction, towards zero.
    pub(super) fn to_int(&self) -> Option<i128> {
        match self {
            Val::Int(i) => Some(*i),
            _ => self.to_dec().map(Dec::trunc_i128),
        }
    }

    /// "To Boolean": booleans, and the strings "true" and "false" in any case.
    pub(super) fn to_bool(&self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(*b),
            Val::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Val::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// "To String": numbers and booleans as text, arrays and objects as JSON, raw bytes as
    /// text when they are UTF-8. Null and Undefined have none.
    pub(super) fn to_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Val::Undefined | Val::Null => None,
            Val::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Val::Int(i) => Some(Cow::Owned(i.to_string())),
            Val::Dec(d) => Some(Cow::Owned(d.to_string())),
            Val::Str(s) => Some(Cow::Borrowed(s)),
            Val::Json(j) => serde_json::to_string(j.as_ref()).ok().map(Cow::Owned),
            Val::Bytes(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
        }
    }
}

/// The `=` operator: `None` (Undefined) when either side is Undefined; values of different
/// types are not equal (no error); Int and Decimal compare as numbers; arrays item by item
/// in order; objects key by key in any order.
pub(super) fn sql_eq(a: &Val<'_>, b: &Val<'_>, num: Numbers) -> Option<bool> {
    Some(match (a, b) {
        (Val::Undefined, _) | (_, Val::Undefined) => return None,
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Int(_) | Val::Dec(_), Val::Int(_) | Val::Dec(_)) => a.to_dec() == b.to_dec(),
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Bytes(x), Val::Bytes(y)) => x == y,
        (Val::Json(x), Val::Json(y)) => json_eq(x, y, num),
        _ => false,
    })
}

fn json_eq(a: &Value, b: &Value, num: Numbers) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q, num))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| json_eq(p, q, num)))
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => sql_eq(&num.read(a), &num.read(b), num) == Some(true),
    }
}

/// The ordering operators convert both sides to Decimal; anything that does not convert
/// (booleans, non-numeric strings, Null, Undefined ...) makes the comparison Undefined.
pub(super) fn sql_order(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        _ => Some(a.to_dec()?.cmp(&b.to_dec()?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V2: Numbers = Numbers { whole_decimals_are_ints: true };
    const V1: Numbers = Numbers { whole_decimals_are_ints: false };

    fn s(text: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(text))
    }

    #[test]
    fn whole_decimals_read_as_ints_in_version_2016_only() {
        let ten = json!(10.0);
        assert_eq!(V2.read(&ten), Val::Int(10));
        assert_eq!(V1.read(&ten), Val::Dec(Dec::from_i128(10)));
        assert_eq!(V1.to_json(V1.read(&ten)), Some(json!(10.0)));
        assert_eq!(V2.to_json(V2.read(&ten)), Some(json!(10)));
        assert_eq!(V2.copy_json(&json!({"a": [1.0, 1.5]})), json!({"a": [1, 1.5]}));
    }

    #[test]
    fn converts_strings_as_the_tables_say() {
        assert_eq!(s("-1.2").to_dec(), Dec::parse("-1.2"));
        assert_eq!(s("5E-12").to_dec(), Dec::parse("5E-12"));
        assert_eq!(s("abc").to_dec(), None);
        assert_eq!(s("-7.9").to_int(), Some(-7));
        assert_eq!(s("TRUE").to_bool(), Some(true));
        assert_eq!(s("yes").to_bool(), None);
        assert_eq!(Val::Bool(true).to_dec(), None);
        assert_eq!(Val::Null.to_text(), None);
        assert_eq!(V2.read(&json!(["a", 1, null])).to_text().as_deref(), Some(r#"["a",1,null]"#));
    }

    #[test]
    fn equality_follows_the_operator_table() {
        let eq = |a: Value, b: Value| sql_eq(&V2.read(&a), &V2.read(&b), V2);
        assert_eq!(eq(json!(1), json!(1.0)), Some(true));
        assert_eq!(eq(json!("5"), json!(5)), Some(false));
        assert_eq!(eq(json!(null), json!(null)), Some(true));
        assert_eq!(eq(json!([1, 2]), json!([1, 2])), Some(true));
        assert_eq!(eq(json!([1, 2]), json!([2, 1])), Some(false));
        assert_eq!(eq(json!({"a": 1, "b": [2]}), json!({"b": [2.0], "a": 1})), Some(true));
        assert_eq!(eq(json!([1]), json!({"a": 1})), Some(false));
        assert_eq!(eq(json!({"a": [1]}), json!({"a": {"b": 1}})), Some(false));
        assert_eq!(sql_eq(&Val::Undefined, &Val::Null, V2), None);
    }

    #[test]
    fn ordering_needs_numbers() {
        assert_eq!(sql_order(&s("10"), &Val::Int(9)), Some(Ordering::Greater));
        assert_eq!(sql_order(&s("a"), &s("b")), None);
        assert_eq!(sql_order(&Val::Bool(true), &Val::Int(0)), None);
    }
}
