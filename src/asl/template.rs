//! Payload templates (`Parameters`, `ResultSelector`, `ItemSelector`, a Pass `Result`
//! that holds `.$` keys): compiled once from the definition into a tree whose constant
//! parts are kept as ready values, then evaluated by the interpreter against the state's
//! effective input. Also the one place a path is resolved against `$`, `$$` or `$var`.

use super::intrinsics::{self, Call};
use super::path::{Path, PathMiss, Root};
use super::Env;
use crate::error::{names, Failure};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A compiled payload template.
#[derive(Debug, Clone)]
pub enum Template {
    /// No `.$` anywhere below: the value as written.
    Literal(Value),
    Path {
        field: String,
        path: Path,
    },
    Call {
        field: String,
        call: Call,
    },
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
}

impl Template {
    /// Compiles a template; the error names the offending field as AWS's validator does.
    pub fn compile(v: &Value) -> Result<Template, String> {
        match v {
            Value::Object(o) => {
                if !has_dynamic(v) {
                    return Ok(Template::Literal(v.clone()));
                }
                let mut fields = Vec::with_capacity(o.len());
                for (k, v) in o {
                    if let Some(name) = k.strip_suffix(".$") {
                        let expr = v.as_str().ok_or_else(|| {
                            format!("The value for the field '{k}' must be a valid JSONPath or a valid intrinsic function call")
                        })?;
                        fields.push((name.to_string(), Template::expression(k, expr)?));
                    } else {
                        fields.push((k.clone(), Template::compile(v)?));
                    }
                }
                Ok(Template::Object(fields))
            }
            Value::Array(a) if has_dynamic(v) => {
                Ok(Template::Array(a.iter().map(Template::compile).collect::<Result<_, _>>()?))
            }
            _ => Ok(Template::Literal(v.clone())),
        }
    }

    /// One path or intrinsic call, for the field `field` (which errors name).
    pub fn expression(field: &str, expr: &str) -> Result<Template, String> {
        let invalid = || {
            format!("The value for the field '{field}' must be a valid JSONPath or a valid intrinsic function call")
        };
        if intrinsics::is_call(expr) {
            let call = intrinsics::parse(expr).map_err(|_| invalid())?;
            return Ok(Template::Call { field: field.to_string(), call });
        }
        let path = Path::parse(expr).map_err(|_| invalid())?;
        Ok(Template::Path { field: field.to_string(), path })
    }

    /// Evaluates against the effective input, within the memory one evaluation may take
    /// (`limits.expression_memory_bytes`): a template that names a large input many times
    /// over fails instead of copying it without end.
    pub fn eval(&self, input: &Value, env: &dyn Env) -> Result<Value, Failure> {
        let budget = env.expression_memory_bytes();
        match crate::memory::metered(budget, &|| {}, || self.eval_within(input, env)) {
            (_, true) => Err(Failure::new(
                names::DATA_LIMIT_EXCEEDED,
                format!(
                    "The payload template took more than {budget} bytes of memory to build \
                     (limits.expression_memory_bytes)."
                ),
            )),
            (r, false) => r,
        }
    }

    fn eval_within(&self, input: &Value, env: &dyn Env) -> Result<Value, Failure> {
        if crate::memory::exhausted() {
            // What fails is reported by `eval` once the budget has run out.
            return Ok(Value::Null);
        }
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Path { field, path } => select(path, input, env).map_err(|_| {
                Failure::runtime(format!(
                    "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                    path.text(),
                    compact(if matches!(path.root(), Root::Context) { env.context() } else { Cow::Borrowed(input) }.as_ref())
                ))
            }),
            Template::Call { call, .. } => call.eval(input, env),
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    out.insert(k.clone(), t.eval_within(input, env)?);
                }
                Ok(Value::Object(out))
            }
            Template::Array(items) => Ok(Value::Array(
                items.iter().map(|t| t.eval_within(input, env)).collect::<Result<_, _>>()?,
            )),
        }
    }
}

fn has_dynamic(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.iter().any(|(k, v)| k.ends_with(".$") || has_dynamic(v)),
        Value::Array(a) => a.iter().any(has_dynamic),
        _ => false,
    }
}

/// Resolves a path against what its root names: the effective input, the context object
/// or a variable.
pub fn select(path: &Path, input: &Value, env: &dyn Env) -> Result<Value, PathMiss> {
    match path.root() {
        Root::Input => path.select(input),
        Root::Context => match path.first_field() {
            Some(key) => path.select(&env.context_part(key)),
            None => path.select(&env.context()),
        },
        Root::Variable(name) => match env.variable(name) {
            Some(v) => path.select(&v),
            None => Err(PathMiss {
                message: format!("Invalid path '{}': The variable '{name}' is not defined", path.text()),
            }),
        },
    }
}

/// JSON as AWS quotes it inside causes: compact.
pub fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The failure for a path that found nothing in an InputPath, OutputPath, ItemsPath and
/// the like: AWS quotes Jayway's message.
pub fn path_failure(miss: PathMiss) -> Failure {
    Failure::new(names::RUNTIME, miss.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct NoEnv;
    impl Env for NoEnv {
        fn context(&self) -> Cow<'_, Value> {
            Cow::Owned(json!({"Execution": {"Name": "exec"}}))
        }
        fn variable(&self, name: &str) -> Option<Cow<'_, Value>> {
            (name == "v").then(|| Cow::Owned(json!({"x": 7})))
        }
        fn random(&self) -> u64 {
            4
        }
    }

    fn give(template: Value, input: Value) -> Result<Value, Failure> {
        Template::compile(&template).unwrap().eval(&input, &NoEnv)
    }

    #[test]
    fn constant_parts_stay_and_dollar_keys_resolve() {
        let out = give(
            json!({"a": 1, "b.$": "$.x", "c": {"d.$": "$$.Execution.Name", "e": [1, {"f.$": "$v.x"}]}}),
            json!({"x": "hi"}),
        );
        assert_eq!(out, Ok(json!({"a": 1, "b": "hi", "c": {"d": "exec", "e": [1, {"f": 7}]}})));
    }

    #[test]
    fn a_missing_path_names_the_field_and_the_input() {
        let err = give(json!({"value.$": "$.no_such_jsonpath"}), json!({"a": 1})).unwrap_err();
        assert_eq!(err.error, "States.Runtime");
        assert_eq!(
            err.cause,
            "The JSONPath '$.no_such_jsonpath' specified for the field 'value.$' could not be found in the input '{\"a\":1}'"
        );
    }

    #[test]
    fn a_bad_expression_is_refused_at_compile_time() {
        let err = Template::compile(&json!({"parsed.$": "not a path"})).unwrap_err();
        assert_eq!(
            err,
            "The value for the field 'parsed.$' must be a valid JSONPath or a valid intrinsic function call"
        );
    }
}

/// A JSONata field (`Output`, `Arguments`, `Assign`, `Items`, ...): any string of the form
/// `{% expr %}`, at any depth, is an expression; everything else is taken as written.
#[derive(Debug, Clone)]
pub enum JTemplate {
    Literal(Value),
    Expr { field: String, expr: super::jsonata::Expr },
    Object(Vec<(String, JTemplate)>),
    Array(Vec<JTemplate>),
}

/// The text inside `{% ... %}`, when `s` is an expression.
pub fn jsonata_text(s: &str) -> Option<&str> {
    let t = s.strip_prefix("{%")?.strip_suffix("%}")?;
    Some(t.trim())
}

impl JTemplate {
    /// Compiles `v`, the value of the field named `field` (AWS quotes the field path, e.g.
    /// `Output/FunctionResult`, in its causes).
    pub fn compile(v: &Value, field: &str) -> Result<JTemplate, String> {
        Ok(match v {
            Value::String(s) => match jsonata_text(s) {
                Some(text) => {
                    JTemplate::Expr { field: field.to_string(), expr: super::jsonata::compile(text)? }
                }
                None => JTemplate::Literal(v.clone()),
            },
            Value::Object(o) if has_jsonata(v) => JTemplate::Object(
                o.iter()
                    .map(|(k, v)| Ok((k.clone(), JTemplate::compile(v, &format!("{field}/{k}"))?)))
                    .collect::<Result<_, String>>()?,
            ),
            Value::Array(a) if has_jsonata(v) => JTemplate::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| JTemplate::compile(v, &format!("{field}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            _ => JTemplate::Literal(v.clone()),
        })
    }

    /// Whether any expression in it may read `$states.context` (which is then built).
    pub fn reads_context(&self) -> bool {
        match self {
            JTemplate::Literal(_) => false,
            JTemplate::Expr { expr, .. } => {
                let t = expr.text();
                t.contains("context") || t.match_indices("$states").any(|(i, _)| !t[i + 7..].starts_with('.'))
            }
            JTemplate::Object(f) => f.iter().any(|(_, t)| t.reads_context()),
            JTemplate::Array(a) => a.iter().any(JTemplate::reads_context),
        }
    }

    /// Evaluates with `states` as `$states` (an object: `input`, `context`, and where AWS
    /// allows them `result` and `errorOutput`).
    pub fn eval(&self, states: &Value, env: &dyn Env) -> Result<Value, Failure> {
        match self {
            JTemplate::Literal(v) => Ok(v.clone()),
            JTemplate::Expr { field, expr } => {
                let variables = |name: &str| env.variable(name).map(Cow::into_owned);
                let random = || env.random();
                let now = || env.now();
                let offload = |work: &mut dyn FnMut()| env.offload(work);
                let b = super::jsonata::Bindings {
                    states,
                    variables: &variables,
                    random: &random,
                    now: &now,
                    region_partition: "aws",
                    memory_bytes: env.expression_memory_bytes(),
                    offload: Some(&offload),
                };
                expr.eval(&b).map_err(|e| jsonata_failure(expr.text(), field, e))
            }
            JTemplate::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    out.insert(k.clone(), t.eval(states, env)?);
                }
                Ok(Value::Object(out))
            }
            JTemplate::Array(items) => {
                Ok(Value::Array(items.iter().map(|t| t.eval(states, env)).collect::<Result<_, _>>()?))
            }
        }
    }
}

fn has_jsonata(v: &Value) -> bool {
    match v {
        Value::String(s) => jsonata_text(s).is_some(),
        Value::Object(o) => o.values().any(has_jsonata),
        Value::Array(a) => a.iter().any(has_jsonata),
        _ => false,
    }
}

/// States.QueryEvaluationError, worded as AWS words it.
pub fn jsonata_failure(text: &str, field: &str, e: super::jsonata::EvalError) -> Failure {
    use super::jsonata::EvalError;
    let cause = match e {
        EvalError::Undefined => {
            format!("The JSONata expression '{text}' specified for the field '{field}' returned nothing (undefined).")
        }
        EvalError::Failed(m) => format!(
            "The JSONata expression '{text}' specified for the field '{field}' threw an error during evaluation. {m}"
        ),
    };
    Failure::new(names::QUERY_EVALUATION_ERROR, cause)
}
