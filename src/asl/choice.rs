//! Choice rules: compiled from a Choice state's `Choices` into a closed enum of
//! comparisons and evaluated by the interpreter against the state's effective input.
//! A comparison whose operands are not of its type is false, as AWS decides it.

use super::path::Path;
use super::template::select;
use super::Env;
use crate::error::Failure;
use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
    /// StringMatches: `*` matches any run; `\*` and `\\` are literal.
    Matches,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    Null,
    Present,
    Numeric,
    String,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone)]
pub enum Operand {
    Value(Value),
    Path(Path),
}

#[derive(Debug, Clone)]
pub enum Rule {
    Compare { variable: Path, kind: Kind, op: Op, operand: Operand },
    Is { variable: Path, test: Test, expected: bool },
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
}

/// The comparison operators, one row each: (name, kind, op). `...Path` forms are derived.
const OPERATORS: &[(&str, Kind, Op)] = &[
    ("StringEquals", Kind::String, Op::Equals),
    ("StringLessThan", Kind::String, Op::LessThan),
    ("StringGreaterThan", Kind::String, Op::GreaterThan),
    ("StringLessThanEquals", Kind::String, Op::LessThanEquals),
    ("StringGreaterThanEquals", Kind::String, Op::GreaterThanEquals),
    ("StringMatches", Kind::String, Op::Matches),
    ("NumericEquals", Kind::Numeric, Op::Equals),
    ("NumericLessThan", Kind::Numeric, Op::LessThan),
    ("NumericGreaterThan", Kind::Numeric, Op::GreaterThan),
    ("NumericLessThanEquals", Kind::Numeric, Op::LessThanEquals),
    ("NumericGreaterThanEquals", Kind::Numeric, Op::GreaterThanEquals),
    ("BooleanEquals", Kind::Boolean, Op::Equals),
    ("TimestampEquals", Kind::Timestamp, Op::Equals),
    ("TimestampLessThan", Kind::Timestamp, Op::LessThan),
    ("TimestampGreaterThan", Kind::Timestamp, Op::GreaterThan),
    ("TimestampLessThanEquals", Kind::Timestamp, Op::LessThanEquals),
    ("TimestampGreaterThanEquals", Kind::Timestamp, Op::GreaterThanEquals),
];

const TESTS: &[(&str, Test)] = &[
    ("IsNull", Test::Null),
    ("IsPresent", Test::Present),
    ("IsNumeric", Test::Numeric),
    ("IsString", Test::String),
    ("IsBoolean", Test::Boolean),
    ("IsTimestamp", Test::Timestamp),
];

/// Every field name that makes a rule a comparison (for the validator).
pub fn operator_names() -> impl Iterator<Item = String> {
    OPERATORS
        .iter()
        .flat_map(|(n, ..)| [n.to_string(), format!("{n}Path")])
        .chain(TESTS.iter().map(|(n, _)| n.to_string()))
}

impl Rule {
    /// Compiles one rule object (without its `Next`).
    pub fn compile(rule: &Value) -> Result<Rule, String> {
        let obj = rule.as_object().ok_or("a Choice rule must be an object")?;
        if let Some(list) = obj.get("And").or_else(|| obj.get("Or")) {
            let list = list.as_array().ok_or("And and Or take an array of rules")?;
            let rules = list.iter().map(Rule::compile).collect::<Result<Vec<_>, _>>()?;
            return Ok(if obj.contains_key("And") { Rule::And(rules) } else { Rule::Or(rules) });
        }
        if let Some(inner) = obj.get("Not") {
            return Ok(Rule::Not(Box::new(Rule::compile(inner)?)));
        }
        let var = obj.get("Variable").and_then(Value::as_str).ok_or("a Choice rule needs a Variable")?;
        let variable = Path::parse(var)?;
        for (name, test) in TESTS {
            if let Some(v) = obj.get(*name) {
                let expected = v.as_bool().ok_or_else(|| format!("{name} takes true or false"))?;
                return Ok(Rule::Is { variable, test: *test, expected });
            }
        }
        for (name, kind, op) in OPERATORS {
            if let Some(v) = obj.get(*name) {
                return Ok(Rule::Compare {
                    variable,
                    kind: *kind,
                    op: *op,
                    operand: Operand::Value(v.clone()),
                });
            }
            if let Some(v) = obj.get(&format!("{name}Path")) {
                let p = v.as_str().ok_or_else(|| format!("{name}Path takes a path"))?;
                return Ok(Rule::Compare {
                    variable,
                    kind: *kind,
                    op: *op,
                    operand: Operand::Path(Path::parse(p)?),
                });
            }
        }
        Err("a Choice rule needs a comparison operator".into())
    }

    pub fn eval(&self, input: &Value, env: &dyn Env) -> Result<bool, Failure> {
        match self {
            Rule::And(rs) => {
                for r in rs {
                    if !r.eval(input, env)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rs) => {
                for r in rs {
                    if r.eval(input, env)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(r) => Ok(!r.eval(input, env)?),
            Rule::Is { variable, test, expected } => {
                // Only IsPresent may test a path that is not there; the type tests fail the
                // state on it (recorded on AWS for IsString, IsBoolean and IsTimestamp).
                let v = match test {
                    Test::Present => select(variable, input, env).ok(),
                    _ => Some(condition_value(variable, input, env)?),
                };
                let got = match (test, &v) {
                    (Test::Present, v) => v.is_some(),
                    (_, None) => false,
                    (Test::Null, Some(v)) => v.is_null(),
                    (Test::Numeric, Some(v)) => v.is_number(),
                    (Test::String, Some(v)) => v.is_string(),
                    (Test::Boolean, Some(v)) => v.is_boolean(),
                    (Test::Timestamp, Some(v)) => v.as_str().and_then(timestamp).is_some(),
                };
                Ok(got == *expected)
            }
            Rule::Compare { variable, kind, op, operand } => {
                let value = condition_value(variable, input, env)?;
                let other = match operand {
                    Operand::Value(v) => std::borrow::Cow::Borrowed(v),
                    Operand::Path(p) => std::borrow::Cow::Owned(condition_value(p, input, env)?),
                };
                Ok(compare(&value, *kind, *op, &other))
            }
        }
    }
}

/// The value a comparison reads. A path that selects nothing fails the state as AWS does
/// (recorded: "Invalid path '$.missing': The choice state's condition path references an
/// invalid value."), for `Variable` and for a `...Path` operand alike, and for the type tests
/// (`IsString`, ...); only `IsPresent` may test a path that is not there. An undefined `$variable` keeps its own sentence.
fn condition_value(path: &Path, input: &Value, env: &dyn Env) -> Result<Value, Failure> {
    select(path, input, env).map_err(|miss| match path.root() {
        super::path::Root::Variable(_) => super::template::path_failure(miss),
        _ => Failure::new(
            crate::error::names::RUNTIME,
            format!(
                "Invalid path '{}': The choice state's condition path references an invalid value.",
                path.text()
            ),
        ),
    })
}

fn compare(value: &Value, kind: Kind, op: Op, other: &Value) -> bool {
    let ord = match kind {
        Kind::String => match (value, other) {
            (Value::String(a), Value::String(b)) => {
                if op == Op::Matches {
                    return matches(a, b);
                }
                a.cmp(b)
            }
            _ => return false,
        },
        Kind::Numeric => match (value.as_f64(), other.as_f64()) {
            (Some(a), Some(b)) if value.is_number() && other.is_number() => match a.partial_cmp(&b) {
                Some(o) => o,
                None => return false,
            },
            _ => return false,
        },
        Kind::Boolean => {
            return matches!((value, other), (Value::Bool(a), Value::Bool(b)) if a == b) && op == Op::Equals
        }
        Kind::Timestamp => match (value.as_str().and_then(timestamp), other.as_str().and_then(timestamp)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => return false,
        },
    };
    match op {
        Op::Equals => ord == Ordering::Equal,
        Op::LessThan => ord == Ordering::Less,
        Op::GreaterThan => ord == Ordering::Greater,
        Op::LessThanEquals => ord != Ordering::Greater,
        Op::GreaterThanEquals => ord != Ordering::Less,
        Op::Matches => false,
    }
}

/// RFC 3339 as AWS accepts it in Timestamp comparisons and Wait states.
pub fn timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    // AWS requires an upper-case 'T' and an explicit offset or 'Z'.
    if !s.contains('T') {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok()
}

/// StringMatches: `*` is any run of characters; a backslash escapes `*` and `\`.
fn matches(text: &str, pattern: &str) -> bool {
    #[derive(PartialEq)]
    enum Tok {
        Any,
        Char(char),
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some(n) => toks.push(Tok::Char(n)),
                None => toks.push(Tok::Char('\\')),
            },
            '*' => toks.push(Tok::Any),
            c => toks.push(Tok::Char(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Classic wildcard matching with one backtrack point.
    let (mut t, mut p) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < toks.len() && toks[p] == Tok::Char(text[t]) {
            t += 1;
            p += 1;
        } else if p < toks.len() && toks[p] == Tok::Any {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    while p < toks.len() && toks[p] == Tok::Any {
        p += 1;
    }
    p == toks.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_matches_wildcards_and_escapes() {
        assert!(matches("log-2024.txt", "log-*.txt"));
        assert!(matches("anything", "*"));
        assert!(!matches("log.txt", "log-*"));
        assert!(matches("a*b", "a\\*b"));
        assert!(!matches("axb", "a\\*b"));
        assert!(matches("a\\b", "a\\\\b"));
    }

    #[test]
    fn mismatched_types_compare_false() {
        assert!(!compare(&Value::from("1"), Kind::Numeric, Op::Equals, &Value::from(1)));
        assert!(compare(&Value::from(1.0), Kind::Numeric, Op::Equals, &Value::from(1)));
        assert!(!compare(&Value::from(0), Kind::Timestamp, Op::Equals, &Value::from("2012-10-09T19:00:55Z")));
        assert!(compare(
            &Value::from("2012-10-09T19:00:55Z"),
            Kind::Timestamp,
            Op::Equals,
            &Value::from("2012-10-09T19:00:55+00:00")
        ));
    }
}
