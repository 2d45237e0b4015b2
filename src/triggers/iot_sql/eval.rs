//! Evaluates a parsed IoT SQL statement against one MQTT message to build a workflow input
//! (MQTT message -> IoT SQL -> workflow input): SET, then WHERE, then SELECT, one match
//! over the expression tree.
//!
//! Values borrow from the parsed payload and from the tree: a field path walks the payload
//! without copying it, and only what the SELECT outputs is copied into the result.

use super::ast::{BinOp, CastType, Expr, Item, Lit, Query, Source};
use super::decimal::Dec;
use super::functions::FnCx;
use super::value::{int, sql_eq, sql_order, whole, Numbers, Val};
use super::{EvalError, Message, SqlVersion};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// What `*` and bare field names refer to.
#[derive(Clone, Copy)]
pub(super) enum Root<'a> {
    Json(&'a Value),
    Bytes(&'a [u8]),
    /// The payload was not read (nothing refers to it).
    Nothing,
}

/// The evaluation context: `'a` is what values may borrow (the payload and the parsed
/// statement), `'c` the context's own borrows.
pub(super) struct Cx<'a, 'c> {
    pub(super) msg: &'c Message<'c>,
    pub(super) root: Root<'a>,
    pub(super) vars: &'c [Val<'a>],
    pub(super) num: Numbers,
    pub(super) version: SqlVersion,
    /// The raw payload while `*` means the whole message (not inside a nested query).
    pub(super) payload: Option<&'c [u8]>,
}

impl Expr {
    pub(super) fn eval<'a>(&'a self, cx: &Cx<'a, '_>) -> Val<'a> {
        let num = cx.num;
        match self {
            Expr::Lit(lit) => match lit {
                Lit::Null => Val::Null,
                Lit::Bool(b) => Val::Bool(*b),
                Lit::Int(i) => Val::Int(*i),
                Lit::Dec(d) => Val::Dec(*d),
                Lit::Str(s) => Val::Str(Cow::Borrowed(s)),
            },
            Expr::Star => root_value(cx),
            Expr::Field(name) => match cx.root {
                Root::Json(v) => v.get(name.as_ref()).map_or(Val::Undefined, |x| num.read(x)),
                // A binary payload has no fields.
                _ => Val::Undefined,
            },
            Expr::Var { index, .. } => cx.vars.get(*index).cloned().unwrap_or(Val::Undefined),
            Expr::Member(base, name) => base.eval(cx).member(name, num),
            Expr::Index(base, key) => {
                let base = base.eval(cx);
                base.item(key.eval(cx), num)
            }
            Expr::Call(call) => {
                let args = call.args.iter().map(|a| a.eval(cx)).collect();
                let fcx = FnCx {
                    msg: cx.msg,
                    num,
                    version: cx.version,
                    prepared: &call.prepared,
                    payload: if matches!(call.args.first(), Some(Expr::Star)) { cx.payload } else { None },
                };
                call.builtin.run(&fcx, args)
            }
            Expr::Cast(e, ty) => cast(e.eval(cx), *ty, num),
            Expr::Neg(e) => match e.eval(cx) {
                Val::Int(i) => int(-i),
                v => v.to_dec().map_or(Val::Undefined, |d| num.dec(d.neg())),
            },
            Expr::Not(e) => e.eval(cx).to_bool().map_or(Val::Undefined, |b| Val::Bool(!b)),
            Expr::Binary(op, a, b) => binary(*op, a.eval(cx), b.eval(cx), num),
            Expr::Case(case) => {
                let subject = case.subject.eval(cx);
                if subject.is_undefined() {
                    return Val::Undefined;
                }
                for (when, then) in &case.arms {
                    if sql_eq(&subject, &when.eval(cx), num) == Some(true) {
                        return then.eval(cx);
                    }
                }
                case.otherwise.as_ref().map_or(Val::Undefined, |e| e.eval(cx))
            }
            Expr::Object(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (k, e) in entries {
                    if let Some(v) = num.to_json(e.eval(cx)) {
                        map.insert(k.to_string(), v);
                    }
                }
                Val::Json(Cow::Owned(Value::Object(map)))
            }
            Expr::Array(items) => Val::Json(Cow::Owned(Value::Array(
                items.iter().filter_map(|e| num.to_json(e.eval(cx))).collect(),
            ))),
            Expr::Query(q) => nested(q, cx),
        }
    }
}

fn binary<'a>(op: BinOp, a: Val<'a>, b: Val<'a>, num: Numbers) -> Val<'a> {
    let order = |test: fn(Ordering) -> bool| sql_order(&a, &b).map_or(Val::Undefined, |o| Val::Bool(test(o)));
    match op {
        BinOp::And | BinOp::Or => match (a.to_bool(), b.to_bool()) {
            (Some(x), Some(y)) => Val::Bool(if op == BinOp::And { x && y } else { x || y }),
            // The operator table has no three-valued logic: Undefined unless both sides are
            // booleans.
            _ => Val::Undefined,
        },
        BinOp::Eq => sql_eq(&a, &b, num).map_or(Val::Undefined, Val::Bool),
        BinOp::Ne => sql_eq(&a, &b, num).map_or(Val::Undefined, |e| Val::Bool(!e)),
        BinOp::Lt => order(Ordering::is_lt),
        BinOp::Le => order(Ordering::is_le),
        BinOp::Gt => order(Ordering::is_gt),
        BinOp::Ge => order(Ordering::is_ge),
        BinOp::Add => add(a, b, num),
        BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => arithmetic(op, &a, &b, num),
    }
}

/// `+` adds numbers and, when either side is a string, concatenates the text of both.
fn add<'a>(a: Val<'a>, b: Val<'a>, num: Numbers) -> Val<'a> {
    match (&a, &b) {
        (Val::Undefined, _) | (_, Val::Undefined) => Val::Undefined,
        (Val::Str(_), _) | (_, Val::Str(_)) => match (a.to_text(), b.to_text()) {
            (Some(x), Some(y)) => Val::Str(Cow::Owned(format!("{x}{y}"))),
            _ => Val::Undefined,
        },
        (Val::Int(x), Val::Int(y)) => x.checked_add(*y).map_or(Val::Undefined, int),
        (Val::Int(_) | Val::Dec(_), Val::Int(_) | Val::Dec(_)) => match (a.to_dec(), b.to_dec()) {
            (Some(x), Some(y)) => num.opt_dec(x.add(y)),
            _ => Val::Undefined,
        },
        _ => Val::Undefined,
    }
}

/// `- * / %`: Ints stay Ints (division truncates, as in Java); otherwise both sides are
/// converted to Decimal, numeric strings included. Dividing by zero is Undefined.
fn arithmetic<'a>(op: BinOp, a: &Val<'a>, b: &Val<'a>, num: Numbers) -> Val<'a> {
    if let (Val::Int(x), Val::Int(y)) = (a, b) {
        let r = match op {
            BinOp::Sub => x.checked_sub(*y),
            BinOp::Mul => x.checked_mul(*y),
            BinOp::Div => x.checked_div(*y),
            _ => x.checked_rem(*y),
        };
        return match r {
            Some(r) => int(r),
            // A product past 38 digits is still a number, as a Decimal.
            None if op == BinOp::Mul => num.opt_dec(Dec::from_i128(*x).mul(Dec::from_i128(*y))),
            None => Val::Undefined,
        };
    }
    let (Some(x), Some(y)) = (a.to_dec(), b.to_dec()) else { return Val::Undefined };
    num.opt_dec(match op {
        BinOp::Sub => x.sub(y),
        BinOp::Mul => x.mul(y),
        BinOp::Div => x.div(y),
        _ => x.rem(y),
    })
}

/// `cast(value AS Type)`: the standard conversions, plus numbers to and from booleans.
fn cast<'a>(v: Val<'a>, ty: CastType, num: Numbers) -> Val<'a> {
    match ty {
        CastType::String => match v {
            Val::Str(s) => Val::Str(s),
            v => v.to_text().map_or(Val::Undefined, |s| Val::Str(Cow::Owned(s.into_owned()))),
        },
        CastType::Int => match v {
            Val::Bool(b) => Val::Int(i128::from(b)),
            Val::Int(i) => Val::Int(i),
            v => v.to_dec().map_or(Val::Undefined, |d| whole(d.trunc())),
        },
        CastType::Decimal | CastType::Double => {
            let d = match v {
                Val::Bool(b) => Some(Dec::from_i128(i128::from(b))),
                v => v.to_dec(),
            };
            match (d, ty) {
                (Some(d), CastType::Double) => num.double(d.to_f64()),
                (Some(d), _) => num.dec(d),
                (None, _) => Val::Undefined,
            }
        }
        CastType::Bool => match v {
            Val::Int(i) => Val::Bool(i != 0),
            Val::Dec(d) => Val::Bool(!d.is_zero()),
            v => v.to_bool().map_or(Val::Undefined, Val::Bool),
        },
    }
}

/// A nested `(SELECT ... FROM source WHERE ...)`: over an array, one result per item that
/// passes WHERE (an array); over anything else, one result for the source itself.
fn nested<'a>(q: &'a Query, cx: &Cx<'a, '_>) -> Val<'a> {
    let Source::Expr(from) = &q.from else { return Val::Undefined };
    match from.eval(cx) {
        Val::Undefined => Val::Undefined,
        Val::Json(Cow::Borrowed(src)) => over(q, src, cx),
        Val::Json(Cow::Owned(src)) => {
            // Built by SQL, so it lives only here: the results must not borrow it.
            let local = Cx {
                msg: cx.msg,
                root: Root::Nothing,
                vars: cx.vars,
                num: cx.num,
                version: cx.version,
                payload: None,
            };
            over(q, &src, &local).into_owned()
        }
        _ => select(q, &Cx { root: Root::Nothing, payload: None, ..*cx })
            .ok()
            .flatten()
            .unwrap_or(Val::Undefined),
    }
}

/// An item that cannot be shaped (a `*` of a non-object beside other items) is left out,
/// as an Undefined would be: one odd item should not fail the whole rule.
fn over<'a>(q: &'a Query, src: &'a Value, cx: &Cx<'a, '_>) -> Val<'a> {
    let at = |root| Cx {
        msg: cx.msg,
        root: Root::Json(root),
        vars: cx.vars,
        num: cx.num,
        version: cx.version,
        payload: None,
    };
    match src {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Ok(Some(v)) = select(q, &at(item)) {
                    out.extend(cx.num.to_json(v));
                }
            }
            Val::Json(Cow::Owned(Value::Array(out)))
        }
        one => select(q, &at(one)).ok().flatten().unwrap_or(Val::Undefined),
    }
}

/// WHERE then SELECT against `cx.root`; `None` when WHERE is not true.
pub(super) fn select<'a>(q: &'a Query, cx: &Cx<'a, '_>) -> Result<Option<Val<'a>>, EvalError> {
    if let Some(filter) = &q.filter {
        if filter.eval(cx) != Val::Bool(true) {
            return Ok(None);
        }
    }
    if let [Item::Star] = q.items.as_slice() {
        return Ok(Some(root_value(cx)));
    }
    if q.value {
        return Ok(Some(match q.items.first() {
            Some(Item::Expr { expr, .. }) => expr.eval(cx),
            _ => Val::Undefined,
        }));
    }
    let mut out = Map::new();
    for item in &q.items {
        match item {
            Item::Star => match cx.root {
                Root::Json(Value::Object(map)) => {
                    out.extend(map.iter().map(|(k, v)| (k.clone(), cx.num.copy_json(v))));
                }
                Root::Bytes(_) => {
                    return Err(EvalError::new(
                        "the payload is not JSON, so `*` must be the only item of the SELECT (or use encode(*, 'base64'))",
                    ))
                }
                _ => return Err(EvalError::new("the payload is not a JSON object, so `*` cannot be combined with other items")),
            },
            Item::Expr { expr, key } => {
                if let Some(v) = cx.num.to_json(expr.eval(cx)) {
                    insert_at(&mut out, key, v);
                }
            }
        }
    }
    Ok(Some(Val::Json(Cow::Owned(Value::Object(out)))))
}

/// `*`: the payload, or the current item of a nested query.
fn root_value<'a>(cx: &Cx<'a, '_>) -> Val<'a> {
    match cx.root {
        Root::Json(v) => cx.num.read(v),
        Root::Bytes(b) => Val::Bytes(Cow::Borrowed(b)),
        Root::Nothing => Val::Undefined,
    }
}

/// Puts `v` at a dotted alias path, making the objects on the way (`AS a.b`).
fn insert_at(map: &mut Map<String, Value>, key: &[Box<str>], v: Value) {
    match key {
        [] => {}
        [last] => {
            map.insert(last.to_string(), v);
        }
        [first, rest @ ..] => {
            let slot = map.entry(first.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                insert_at(inner, rest, v);
            }
        }
    }
}
