//! The parsed form of an IoT SQL statement: built once when a trigger's rule is loaded,
//! then evaluated for every MQTT message that reaches it (MQTT message -> IoT SQL ->
//! workflow input). One closed enum, interpreted by one match in `eval.rs`.

use super::decimal::Dec;
use super::functions::{Builtin, Prepared};

#[derive(Debug)]
pub(super) enum Expr {
    Lit(Lit),
    /// `*`: the whole payload (or, inside a nested query, the current item).
    Star,
    /// A key of the payload (or of the current item of a nested query).
    Field(Box<str>),
    /// `@name`, by its position in the SET clause.
    Var {
        index: usize,
        name: Box<str>,
    },
    /// `base.name`
    Member(Box<Expr>, Box<str>),
    /// `base[index]`, which reads like `get(base, index)`.
    Index(Box<Expr>, Box<Expr>),
    Call(Box<Call>),
    Cast(Box<Expr>, CastType),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Case(Box<Case>),
    /// `{'key': expr, ...}`
    Object(Vec<(Box<str>, Expr)>),
    /// `[expr, ...]`
    Array(Vec<Expr>),
    /// `(SELECT ... FROM expr WHERE ...)`
    Query(Box<Query>),
}

#[derive(Debug)]
pub(super) enum Lit {
    Null,
    Bool(bool),
    Int(i128),
    Dec(Dec),
    Str(Box<str>),
}

#[derive(Debug)]
pub(super) struct Call {
    pub(super) builtin: &'static Builtin,
    pub(super) args: Vec<Expr>,
    /// Work done once at parse time for a literal argument (a regular expression, a
    /// date pattern) instead of once per message.
    pub(super) prepared: Prepared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CastType {
    String,
    Int,
    Decimal,
    Double,
    Bool,
}

/// `CASE subject WHEN t THEN r ... ELSE e END`
#[derive(Debug)]
pub(super) struct Case {
    pub(super) subject: Expr,
    pub(super) arms: Vec<(Expr, Expr)>,
    pub(super) otherwise: Option<Expr>,
}

/// A SELECT: the rule itself, or a nested query over part of the payload.
#[derive(Debug)]
pub(super) struct Query {
    /// `SELECT VALUE expr`: the value itself rather than an object of named items.
    pub(super) value: bool,
    pub(super) items: Vec<Item>,
    pub(super) from: Source,
    pub(super) filter: Option<Expr>,
}

#[derive(Debug)]
pub(super) enum Source {
    /// The rule's `FROM 'topic/filter'`.
    Topic(String),
    /// A nested query's `FROM expr`: an array to run over, or one object.
    Expr(Expr),
}

#[derive(Debug)]
pub(super) enum Item {
    /// `*` among the items: the payload's keys.
    Star,
    /// An expression and the key path it lands at: `AS a.b` builds `{"a": {"b": ...}}`.
    Expr { expr: Expr, key: Vec<Box<str>> },
}

impl Expr {
    /// Whether evaluating this needs the payload; a rule that only reads the topic and the
    /// clock skips parsing it.
    pub(super) fn reads_payload(&self) -> bool {
        match self {
            Expr::Star | Expr::Field(_) => true,
            Expr::Lit(_) | Expr::Var { .. } => false,
            Expr::Member(e, _) | Expr::Cast(e, _) | Expr::Neg(e) | Expr::Not(e) => e.reads_payload(),
            Expr::Index(a, b) | Expr::Binary(_, a, b) => a.reads_payload() || b.reads_payload(),
            Expr::Call(c) => c.args.iter().any(Expr::reads_payload),
            Expr::Case(c) => {
                c.subject.reads_payload()
                    || c.arms.iter().any(|(w, t)| w.reads_payload() || t.reads_payload())
                    || c.otherwise.as_ref().is_some_and(Expr::reads_payload)
            }
            Expr::Object(kv) => kv.iter().any(|(_, v)| v.reads_payload()),
            Expr::Array(items) => items.iter().any(Expr::reads_payload),
            // Inside, fields are the items of the source, which is what matters here.
            Expr::Query(q) => match &q.from {
                Source::Expr(e) => e.reads_payload(),
                Source::Topic(_) => true,
            },
        }
    }
}

impl Query {
    pub(super) fn reads_payload(&self) -> bool {
        self.items.iter().any(|i| match i {
            Item::Star => true,
            Item::Expr { expr, .. } => expr.reads_payload(),
        }) || self.filter.as_ref().is_some_and(Expr::reads_payload)
    }
}
