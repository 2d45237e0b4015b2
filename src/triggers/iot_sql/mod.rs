//! AWS IoT SQL, the language of AWS IoT rules, for the MQTT triggers: a trigger's
//! statement picks the messages it wants and shapes each one into a workflow input
//! (MQTT message -> IoT SQL -> workflow input).
//!
//! ```text
//! SET @c = (temp_f - 32) * 5 / 9
//! SELECT @c AS celsius, topic(2) AS device FROM 'sensors/+/data' WHERE @c > 30
//! ```
//!
//! [`parse_rule`] parses a statement once, checking all that can be checked without a
//! message (syntax, topic filter, function names and arities, functions that need AWS);
//! [`Rule::apply`] then runs SET, WHERE and SELECT against each message, cheaply enough for
//! thousands of messages a second. [`parse_expression`] and [`Expression::evaluate`] do the
//! same for a lone expression, such as the one that names executions.
//!
//! The language follows the AWS IoT developer guide's "AWS IoT SQL reference": its types
//! (Int, a 34-digit Decimal, Boolean, String, Array, Object, Null, Undefined and binary
//! payloads), its conversion and operator tables, its functions, both SQL versions
//! (2016-03-23 by default, 2015-10-08 for older rules), nested object queries and the SET
//! clause. The module is pure: time and UUIDs come with the [`Message`].
//!
//! Layout: `lexer` and `parser` build the tree of `ast`; `eval` interprets it over the
//! values of `value` (numbers in `decimal`); `functions` is the table of built-ins, with
//! date patterns in `time`; `topic` matches MQTT topic filters.

mod ast;
mod decimal;
mod eval;
mod functions;
mod lexer;
mod parser;
mod time;
mod topic;
mod value;

#[cfg(test)]
mod tests;

use eval::{Cx, Root};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use value::{Numbers, Val};

pub use topic::topic_matches;

/// The `awsIotSqlVersion` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SqlVersion {
    /// The original version: no literal objects or arrays, no nested queries, whole
    /// decimals stay decimals (`10.0`).
    V2015_10_08,
    /// The current version, and the default.
    #[default]
    V2016_03_23,
}

impl SqlVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SqlVersion::V2015_10_08 => "2015-10-08",
            SqlVersion::V2016_03_23 => "2016-03-23",
        }
    }

    fn numbers(self) -> Numbers {
        Numbers { whole_decimals_are_ints: self == SqlVersion::V2016_03_23 }
    }
}

impl fmt::Display for SqlVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version string other than `2015-10-08` and `2016-03-23`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSqlVersion(pub String);

impl fmt::Display for UnknownSqlVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown AWS IoT SQL version '{}'; expected 2016-03-23 or 2015-10-08", self.0)
    }
}

impl std::error::Error for UnknownSqlVersion {}

impl FromStr for SqlVersion {
    type Err = UnknownSqlVersion;

    fn from_str(s: &str) -> Result<SqlVersion, UnknownSqlVersion> {
        match s {
            "2015-10-08" => Ok(SqlVersion::V2015_10_08),
            "2016-03-23" => Ok(SqlVersion::V2016_03_23),
            other => Err(UnknownSqlVersion(other.to_string())),
        }
    }
}

/// What a rule sees of one MQTT message. The caller supplies time and UUIDs, so a test can
/// fix them.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    /// `clientid()`: AWS gives `n/a` for a message that did not come over MQTT.
    pub client_id: &'a str,
    /// `principal()`: how the publisher authenticated (a certificate thumbprint, a user).
    pub principal: &'a str,
    /// `timestamp()`: when the message arrived, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// `newuuid()` (and `rand()`, which draws its bits from a fresh UUID).
    pub new_uuid: &'a (dyn Fn() -> String + Sync),
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic)
            .field("payload", &String::from_utf8_lossy(self.payload))
            .field("client_id", &self.client_id)
            .field("principal", &self.principal)
            .field("timestamp_ms", &self.timestamp_ms)
            .finish_non_exhaustive()
    }
}

/// The result of a rule for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// WHERE was not true (false, Undefined, or not a boolean): no workflow starts.
    Filtered,
    /// The SELECT's output: an object, or with `SELECT VALUE` any JSON value. A `SELECT
    /// VALUE` that is Undefined gives the empty string, as AWS documents ("Undefined is
    /// converted to an empty string when serialized by itself").
    Output(Value),
}

/// A statement that does not parse, or that uses what stepgate does not offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset in the statement.
    pub offset: usize,
    /// From 1.
    pub line: usize,
    /// From 1, in characters.
    pub column: usize,
    pub message: String,
}

impl SyntaxError {
    fn at(src: &str, offset: usize, message: &str) -> SyntaxError {
        let offset = offset.min(src.len());
        let before = src.get(..offset).unwrap_or(src);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        SyntaxError {
            offset,
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for SyntaxError {}

/// A message that a rule cannot turn into an output at all (most faults are Undefined
/// values instead, as on AWS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub message: String,
}

impl EvalError {
    fn new(message: &str) -> EvalError {
        EvalError { message: message.to_string() }
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}

/// A parsed statement: `[SET ...] SELECT ... FROM 'filter' [WHERE ...]`.
#[derive(Debug)]
pub struct Rule {
    version: SqlVersion,
    topic_filter: String,
    statement: parser::Statement,
    reads_payload: bool,
}

pub fn parse_rule(sql: &str, version: SqlVersion) -> Result<Rule, SyntaxError> {
    let statement = parser::statement(sql, version)?;
    let topic_filter = match &statement.query.from {
        ast::Source::Topic(filter) => filter.clone(),
        ast::Source::Expr(_) => String::new(),
    };
    let reads_payload =
        statement.query.reads_payload() || statement.sets.iter().any(|(_, e)| e.reads_payload());
    Ok(Rule { version, topic_filter, statement, reads_payload })
}

/// The payload as rules see it: JSON when it parses, bytes otherwise.
enum Payload {
    Json(Value),
    Binary,
    Unread,
}

impl Payload {
    fn read(bytes: &[u8], needed: bool) -> Payload {
        if !needed {
            return Payload::Unread;
        }
        match serde_json::from_slice(bytes) {
            Ok(v) => Payload::Json(v),
            Err(_) => Payload::Binary,
        }
    }

    fn root<'a>(&'a self, bytes: &'a [u8]) -> Root<'a> {
        match self {
            Payload::Json(v) => Root::Json(v),
            Payload::Binary => Root::Bytes(bytes),
            Payload::Unread => Root::Nothing,
        }
    }
}

impl Rule {
    /// The FROM filter, with `+` and `#`; see [`topic_matches`].
    pub fn topic_filter(&self) -> &str {
        &self.topic_filter
    }

    pub fn sql_version(&self) -> SqlVersion {
        self.version
    }

    /// Runs the rule on one message: SET, then WHERE (which cannot see SELECT's aliases),
    /// then SELECT. The caller has already matched the topic against the filter.
    pub fn apply(&self, msg: &Message<'_>) -> Result<Outcome, EvalError> {
        let payload = Payload::read(msg.payload, self.reads_payload);
        let root = payload.root(msg.payload);
        let num = self.version.numbers();
        let mut vars: Vec<Val<'_>> = Vec::with_capacity(self.statement.sets.len());
        for (_, expr) in &self.statement.sets {
            let cx = Cx { msg, root, vars: &vars, num, version: self.version, payload: Some(msg.payload) };
            let v = expr.eval(&cx);
            vars.push(v);
        }
        let cx = Cx { msg, root, vars: &vars, num, version: self.version, payload: Some(msg.payload) };
        let query = &self.statement.query;
        let Some(v) = eval::select(query, &cx)? else { return Ok(Outcome::Filtered) };
        if query.value && self.version == SqlVersion::V2015_10_08 && v.as_array().is_some() {
            return Err(EvalError::new(
                "SQL version 2015-10-08 cannot output an array as the whole result; use 2016-03-23",
            ));
        }
        Ok(Outcome::Output(num.to_json(v).unwrap_or_else(|| Value::String(String::new()))))
    }
}

/// One IoT SQL expression on its own, such as `concat(topic(2), '-', msgId)`.
#[derive(Debug)]
pub struct Expression {
    version: SqlVersion,
    expr: ast::Expr,
    reads_payload: bool,
}

pub fn parse_expression(text: &str, version: SqlVersion) -> Result<Expression, SyntaxError> {
    let expr = parser::expression(text, version)?;
    let reads_payload = expr.reads_payload();
    Ok(Expression { version, expr, reads_payload })
}

impl Expression {
    /// The value for one message; `None` when it is Undefined.
    pub fn evaluate(&self, msg: &Message<'_>) -> Result<Option<Value>, EvalError> {
        let payload = Payload::read(msg.payload, self.reads_payload);
        let num = self.version.numbers();
        let cx = Cx {
            msg,
            root: payload.root(msg.payload),
            vars: &[],
            num,
            version: self.version,
            payload: Some(msg.payload),
        };
        Ok(num.to_json(self.expr.eval(&cx)))
    }
}
