//! Input and output processing in AWS's order: InputPath -> Parameters -> (the state's
//! work) -> ResultSelector -> ResultPath -> OutputPath. Each function consumes the value
//! it transforms, so `$` everywhere costs nothing.

use super::{transition, Assigned, Ctx, Step};
use crate::asl::compile::{Assign, ResultPath, Select, State};
use crate::asl::template::JTemplate;
use crate::asl::template::{path_failure, select};
use crate::error::{names, Failure};
use serde_json::{Map, Value};

/// InputPath applied to the raw input.
pub fn effective_input(ctx: &Ctx<'_>, state: &State, raw: Value) -> Result<Value, Failure> {
    apply_select(ctx, &state.input_path, raw)
}

/// Parameters applied to the effective input (the effective input itself without them).
pub fn parameters(ctx: &Ctx<'_>, state: &State, effective: Value) -> Result<Value, Failure> {
    if state.jsonata {
        return match &state.arguments {
            None => Ok(effective),
            Some(t) => t.eval(&states_doc(ctx, state, effective), ctx.env),
        };
    }
    match &state.parameters {
        None => Ok(effective),
        Some(t) => t.eval(&effective, ctx.env),
    }
}

/// OutputPath applied to the state's output.
pub fn output(ctx: &Ctx<'_>, state: &State, v: Value) -> Result<Value, Failure> {
    apply_select(ctx, &state.output_path, v)
}

fn apply_select(ctx: &Ctx<'_>, sel: &Select, v: Value) -> Result<Value, Failure> {
    match sel {
        Select::All => Ok(v),
        Select::Nothing => Ok(Value::Object(Map::new())),
        Select::Path(p) => {
            if matches!(p.root(), crate::asl::path::Root::Input) {
                p.select_owned(v).map_err(path_failure)
            } else {
                select(p, &v, ctx.env).map_err(path_failure)
            }
        }
    }
}

/// Merges `result` into the raw input as ResultPath says.
pub fn result_path(rp: &ResultPath, raw: Value, result: Value) -> Result<Value, Failure> {
    match rp {
        ResultPath::Replace => Ok(result),
        ResultPath::Discard => Ok(raw),
        ResultPath::Path(p) => {
            p.write(raw, result).map_err(|cause| Failure::new(names::RESULT_PATH_MATCH_FAILURE, cause))
        }
    }
}

/// `*doc = result.clone()` (ResultPath `$` of a result the caller keeps), in the memory `doc`
/// already holds wherever the two have the same shape: a Task that answers with a document
/// like the one it was given (an echo, a mocked `Return`) allocates and frees nothing.
pub fn replace_with_copy(doc: &mut Value, result: &Value) {
    match (doc, result) {
        (Value::Object(d), Value::Object(r)) if d.len() == r.len() && d.keys().eq(r.keys()) => {
            for (dv, rv) in d.values_mut().zip(r.values()) {
                replace_with_copy(dv, rv);
            }
        }
        (Value::Array(d), Value::Array(r)) => {
            d.truncate(r.len());
            let kept = d.len();
            for (dv, rv) in d.iter_mut().zip(r) {
                replace_with_copy(dv, rv);
            }
            d.extend_from_slice(&r[kept..]);
        }
        (Value::String(d), Value::String(r)) => d.clone_from(r),
        (Value::Number(d), Value::Number(r)) => d.clone_from(r),
        (Value::Bool(d), Value::Bool(r)) => *d = *r,
        (d, r) => *d = r.clone(),
    }
}

/// Completes a state whose work produced `result`: ResultSelector, ResultPath and
/// OutputPath, then the transition.
pub fn finish(ctx: &Ctx<'_>, index: usize, raw: Value, result: Value) -> Step {
    let state = &ctx.machine.states[index];
    if state.jsonata {
        return match jsonata_exit(ctx, state, raw, Some(result), state.output.as_ref(), state.assign.as_ref())
        {
            Ok((out, assign)) => transition(state.transition, out, assign),
            Err(f) => Step::Error(f),
        };
    }
    let done = (|| {
        let result = match &state.result_selector {
            None => result,
            Some(t) => t.eval(&result, ctx.env)?,
        };
        // Assign reads the (selected) result, with the variables from before the state.
        let assign = match &state.assign {
            None => None,
            Some(a) => assign(ctx, a, &result)?,
        };
        let merged = result_path(&state.result_path, raw, result)?;
        Ok((output(ctx, state, merged)?, assign))
    })();
    match done {
        Ok((out, assign)) => transition(state.transition, out, assign),
        Err(f) => Step::Error(f),
    }
}

/// Evaluates an Assign block against `source` (`$` in its JSONPath templates).
pub fn assign(ctx: &Ctx<'_>, a: &Assign, source: &Value) -> Result<Assigned, Failure> {
    match a {
        Assign::Path(t) => match t.eval(source, ctx.env)? {
            Value::Object(m) if m.is_empty() => Ok(None),
            Value::Object(m) => Ok(Some(Box::new(m))),
            _ => Ok(None),
        },
        Assign::Jsonata(_) => {
            let mut m = Map::new();
            m.insert("input".into(), source.clone());
            jsonata_assign(ctx, Some(a), &Value::Object(m))
        }
    }
}

/// `$states` for a JSONata state: `input` (moved in), `context` when the state's
/// expressions read it, and `result` / `errorOutput` where AWS allows them.
pub fn states_doc(ctx: &Ctx<'_>, state: &State, input: Value) -> Value {
    let mut m = Map::new();
    m.insert("input".into(), input);
    if state.reads_context {
        m.insert("context".into(), ctx.env.context().into_owned());
    }
    Value::Object(m)
}

/// Takes a value back out of a `$states` document.
pub fn take(doc: &mut Value, key: &str) -> Value {
    doc.as_object_mut().and_then(|m| m.remove(key)).unwrap_or(Value::Null)
}

/// Evaluates a JSONata Assign block.
pub fn jsonata_assign(ctx: &Ctx<'_>, a: Option<&Assign>, doc: &Value) -> Result<Assigned, Failure> {
    match a {
        None => Ok(None),
        Some(Assign::Jsonata(t)) => match t.eval(doc, ctx.env)? {
            Value::Object(m) if m.is_empty() => Ok(None),
            Value::Object(m) => Ok(Some(Box::new(m))),
            _ => Ok(None),
        },
        // A JSONPath Assign in a JSONata state is refused by the validator.
        Some(Assign::Path(t)) => assign(ctx, &Assign::Path(t.clone()), &doc["input"]),
    }
}

/// How a JSONata state ends: Assign and Output both see `$states` as it is before any
/// variable changes; the output is `Output`, else the result, else the input.
pub fn jsonata_exit(
    ctx: &Ctx<'_>,
    state: &State,
    input: Value,
    result: Option<Value>,
    output: Option<&JTemplate>,
    assign: Option<&Assign>,
) -> Result<(Value, Assigned), Failure> {
    let mut doc = states_doc(ctx, state, input);
    let has_result = result.is_some();
    if let Some(r) = result {
        doc.as_object_mut().expect("$states is an object").insert("result".into(), r);
    }
    let assigned = jsonata_assign(ctx, assign, &doc)?;
    let out = match output {
        Some(t) => t.eval(&doc, ctx.env)?,
        None if has_result => take(&mut doc, "result"),
        None => take(&mut doc, "input"),
    };
    Ok((out, assigned))
}

/// A JSONata field that must give a whole number of seconds or an item count.
/// AWS's words for a JSONata field whose result is not of the type the field takes (recorded
/// for Items and TimeoutSeconds).
pub fn unexpected_type(t: &JTemplate, field: &str, expected: &str, v: &Value) -> Failure {
    use crate::asl::template::compact;
    let text = match t {
        JTemplate::Expr { expr, .. } => expr.text().to_string(),
        _ => compact(v),
    };
    Failure::new(
        names::QUERY_EVALUATION_ERROR,
        format!(
            "The JSONata expression '{text}' specified for the field '{field}' returned an unexpected result \
             type. Expected '{expected}', but was '{}' for value: {}",
            crate::asl::path::type_name(v),
            compact(v)
        ),
    )
}

/// AWS's words (recorded for TimeoutSeconds): a result that is no number is of an unexpected
/// type, and a number with a fraction "cannot be parsed as an integer".
pub fn jsonata_integer(ctx: &Ctx<'_>, t: &JTemplate, doc: &Value, what: &str) -> Result<i64, Failure> {
    use crate::asl::template::compact;
    let v = t.eval(doc, ctx.env)?;
    let Value::Number(n) = &v else {
        return Err(unexpected_type(t, what, "number", &v));
    };
    n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)).ok_or_else(|| {
        Failure::new(
            names::QUERY_EVALUATION_ERROR,
            format!("The {what} field cannot be parsed as an integer: {}", compact(&v)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::replace_with_copy;
    use serde_json::{json, Value};

    /// Whatever the document held, it ends equal to the result, keys in the result's order.
    #[test]
    fn replace_with_copy_gives_the_result_whatever_the_document_held() {
        let results = [
            json!({"hello": "world", "n": 1}),
            json!({"hello": "a longer text than before", "n": 2.5}),
            json!({"n": 3, "hello": "x"}),
            json!({"n": 3}),
            json!({"n": {"deep": [1, 2, {"k": null}]}, "more": true}),
            json!([1, {"b": null}, "s"]),
            json!([false]),
            json!([true, "t", {"c": 1}, [2]]),
            json!("text"),
            json!(7),
            json!(null),
            json!({}),
        ];
        for from in &results {
            for to in &results {
                let mut doc: Value = from.clone();
                replace_with_copy(&mut doc, to);
                assert_eq!(doc, *to, "from {from} to {to}");
                let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
                assert_eq!(keys(&doc), keys(to), "key order, from {from} to {to}");
            }
        }
    }
}
