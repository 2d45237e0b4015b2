//! Compiles a valid definition into the form the interpreter runs: states in a vector
//! (transitions are indexes, not names), paths and templates parsed once, Choice rules and
//! Retry/Catch ready to evaluate. Runs after [`super::validate`] has accepted the JSON.

use super::choice::Rule;
use super::model::{self, QueryLanguage};
use super::path::Path;
use super::template::{jsonata_text, JTemplate, Template};
use super::validate::{self, Diagnostic};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A compiled state machine (the top level, a Parallel branch or a Map processor).
#[derive(Debug)]
pub struct Machine {
    pub states: Vec<State>,
    pub start: usize,
    pub timeout_seconds: Option<u64>,
    /// Whether any expression reads the context object (`$$`): when none does, an
    /// execution need not keep a copy of its input for `$$.Execution.Input`.
    pub uses_context: bool,
    index: HashMap<String, usize>,
}

impl Machine {
    pub fn state_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// Where a state goes when its work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Next(usize),
    End,
}

/// InputPath / OutputPath: `$` (absent), `null` (an empty object) or a path.
#[derive(Debug, Clone)]
pub enum Select {
    All,
    Nothing,
    Path(Path),
}

/// ResultPath: `$` (absent: the result replaces the input), `null` (the result is
/// discarded) or a reference path into the input.
#[derive(Debug, Clone)]
pub enum ResultPath {
    Replace,
    Discard,
    Path(Path),
}

#[derive(Debug)]
pub struct State {
    pub name: Arc<str>,
    pub kind: Kind,
    pub input_path: Select,
    pub output_path: Select,
    pub result_path: ResultPath,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub transition: Transition,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    /// Variables the state assigns once its work is done.
    pub assign: Option<Assign>,
    /// A JSONata state: `Arguments` and `Output` below replace the JSONPath fields.
    pub jsonata: bool,
    pub arguments: Option<JTemplate>,
    pub output: Option<JTemplate>,
    /// Whether a JSONata expression of this state may read `$states.context`.
    pub reads_context: bool,
    /// A Pass state that hands its input on unchanged (no Result, Parameters, paths, Assign
    /// or Output): an execution that records nothing moves through it without the interpreter.
    pub passes_through: bool,
    /// A Task state whose result is its output as it comes (no Parameters, paths,
    /// ResultSelector, Assign, Output, credentials, or timeouts to evaluate): a result its
    /// connector gives at once moves an execution that records nothing straight on.
    pub plain_task: bool,
}

/// An `Assign` block: a JSONPath payload template (`"x.$": "$.path"`) or JSONata
/// (`"x": "{% expr %}"`).
#[derive(Debug, Clone)]
pub enum Assign {
    Path(Template),
    Jsonata(JTemplate),
}

/// One Choice rule and where it leads; a rule may assign variables of its own.
#[derive(Debug)]
pub struct ChoiceRule {
    pub test: ChoiceTest,
    pub next: usize,
    pub assign: Option<Assign>,
    /// JSONata only: the state's output when this rule matches.
    pub output: Option<JTemplate>,
}

#[derive(Debug)]
pub enum ChoiceTest {
    Rule(Rule),
    /// JSONata `Condition`: an expression that must give a boolean.
    Condition(JTemplate),
}

#[derive(Debug)]
pub enum Kind {
    /// `Result` is taken as written: `.$` keys inside it are not evaluated.
    Pass {
        result: Option<Value>,
    },
    Task(Box<Task>),
    Choice {
        rules: Vec<ChoiceRule>,
        default: Option<usize>,
    },
    Wait(WaitFor),
    Succeed,
    Fail {
        error: Text,
        cause: Text,
    },
    Parallel {
        branches: Vec<Arc<Machine>>,
    },
    Map(Box<MapSpec>),
}

#[derive(Debug)]
pub struct Task {
    pub resource: Arc<str>,
    pub timeout: Seconds,
    pub heartbeat: Seconds,
    pub credentials: Option<Value>,
}

/// A number of seconds given literally, by path, or not at all.
#[derive(Debug, Clone)]
pub enum Seconds {
    None,
    Fixed(u64),
    Path(Path),
    Expr(JTemplate),
}

/// Fail's Error and Cause: a literal, a path or intrinsic call (ErrorPath/CausePath),
/// or absent.
#[derive(Debug, Clone)]
pub enum Text {
    None,
    Literal(String),
    Expr(Template),
    Jsonata(JTemplate),
}

#[derive(Debug, Clone)]
pub enum WaitFor {
    Seconds(u64),
    Timestamp(String),
    SecondsPath(Path),
    TimestampPath(Path),
    SecondsExpr(JTemplate),
    TimestampExpr(JTemplate),
}

#[derive(Debug)]
pub struct MapSpec {
    pub processor: Arc<Machine>,
    pub items_path: Option<Path>,
    pub item_selector: Option<Template>,
    /// JSONata: `Items` and `ItemSelector`.
    pub items: Option<JTemplate>,
    pub item_selector_jsonata: Option<JTemplate>,
    pub max_concurrency: Count,
    pub tolerated_failure_count: Count,
    pub tolerated_failure_percentage: Percent,
    pub batcher: Option<Batcher>,
    pub distributed: bool,
}

#[derive(Debug, Clone)]
pub enum Count {
    None,
    Fixed(i64),
    Path(Path),
    Expr(JTemplate),
}

#[derive(Debug, Clone)]
pub enum Percent {
    None,
    Fixed(f64),
    Path(Path),
    Expr(JTemplate),
}

#[derive(Debug)]
pub struct Batcher {
    pub max_items: Count,
    pub max_bytes: Count,
    pub batch_input: Option<Template>,
}

#[derive(Debug, Clone)]
pub struct Retrier {
    pub errors: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub full_jitter: bool,
}

#[derive(Debug, Clone)]
pub struct Catcher {
    pub errors: Vec<String>,
    pub next: usize,
    pub result_path: ResultPath,
    pub assign: Option<Assign>,
    /// JSONata only: the output handed to `next` (default: the error output).
    pub output: Option<JTemplate>,
}

/// Checks and compiles a definition. Every problem is reported, with its location.
pub fn compile(definition: &Value) -> Result<Machine, Vec<Diagnostic>> {
    let diags: Vec<Diagnostic> = validate::validate(definition)
        .into_iter()
        .filter(|d| d.severity == validate::Severity::Error)
        .collect();
    if !diags.is_empty() {
        return Err(diags);
    }
    let model: model::StateMachine =
        serde_json::from_value(definition.clone()).map_err(|e| vec![schema("", e.to_string())])?;
    let uses_context = reads_context(&definition.to_string());
    Builder {
        language: model.query_language.unwrap_or_default(),
        uses_context,
        resources: Default::default(),
    }
    .machine(&model, "")
    .map_err(|d| vec![d])
}

/// Whether a definition's text can read the context object: `$$` in JSONPath, or in JSONata
/// `$states` other than `$states.input`, `.result` and `.errorOutput` (`$states.context`, or
/// the whole `$states` handed to a function). The engine keeps the execution's input for
/// `Execution.Input` only then.
fn reads_context(text: &str) -> bool {
    if text.contains("$$") {
        return true;
    }
    text.match_indices("$states").any(|(at, m)| {
        let rest = &text[at + m.len()..];
        let plain = [".input", ".result", ".errorOutput"].iter().any(|field| {
            rest.strip_prefix(field)
                .is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        });
        !plain
    })
}

fn schema(location: &str, message: String) -> Diagnostic {
    Diagnostic {
        severity: validate::Severity::Error,
        code: "SCHEMA_VALIDATION_FAILED".into(),
        message,
        location: location.into(),
    }
}

struct Builder {
    language: QueryLanguage,
    uses_context: bool,
    /// Task resources, one copy of each: the engine keeps what it resolved a resource to by
    /// the address of its text, so the states that call one resource share what was resolved.
    resources: std::cell::RefCell<HashMap<String, Arc<str>>>,
}

impl Builder {
    fn resource(&self, text: &str) -> Arc<str> {
        let mut known = self.resources.borrow_mut();
        if let Some(r) = known.get(text) {
            return r.clone();
        }
        let r: Arc<str> = Arc::from(text);
        known.insert(text.to_string(), r.clone());
        r
    }

    fn machine(&self, m: &model::StateMachine, at: &str) -> Result<Machine, Diagnostic> {
        let index: HashMap<String, usize> =
            m.states.keys().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        let lookup = |name: &str, loc: &str| {
            index.get(name).copied().ok_or_else(|| Diagnostic {
                severity: validate::Severity::Error,
                code: "MISSING_TRANSITION_TARGET".into(),
                message: format!("Missing 'Next' target: {name}"),
                location: loc.into(),
            })
        };
        let start = lookup(&m.start_at, &format!("{at}/StartAt"))?;
        let mut states = Vec::with_capacity(m.states.len());
        for (name, s) in &m.states {
            let loc = format!("{at}/States/{}", pointer_escape(name));
            states.push(self.state(name, s, &loc, &lookup)?);
        }
        Ok(Machine {
            states,
            start,
            timeout_seconds: m.timeout_seconds,
            uses_context: self.uses_context,
            index,
        })
    }

    fn state(
        &self,
        name: &str,
        s: &model::State,
        loc: &str,
        lookup: &dyn Fn(&str, &str) -> Result<usize, Diagnostic>,
    ) -> Result<State, Diagnostic> {
        use model::State as S;
        let empty = model::Results::default();
        let no_recovery = model::Recovery::default();
        let (common, results, recovery) = match s {
            S::Pass(p) => (&p.common, &p.results, &no_recovery),
            S::Task(t) => (&t.common, &t.results, &t.recovery),
            S::Choice(c) => (&c.common, &empty, &no_recovery),
            S::Wait(w) => (&w.common, &empty, &no_recovery),
            S::Succeed(x) => (&x.common, &empty, &no_recovery),
            S::Fail(f) => (&f.common, &empty, &no_recovery),
            S::Parallel(p) => (&p.common, &p.results, &p.recovery),
            S::Map(m) => (&m.common, &m.results, &m.recovery),
        };
        let jsonata = common.query_language.unwrap_or(self.language) == QueryLanguage::JSONata;
        let err = |field: &str, e: String| schema(&format!("{loc}/{field}"), e);
        let jt = |field: &str, v: &Value| JTemplate::compile(v, field).map_err(|e| err(field, e));
        let jt_opt = |field: &str, v: Option<&Value>| v.map(|v| jt(field, v)).transpose();
        // In JSONata states a number field may also be an expression string.
        let is_expr = |v: &Value| v.as_str().is_some_and(|s| jsonata_text(s).is_some());
        let assign_of = |v: &Value| -> Result<Assign, Diagnostic> {
            if jsonata {
                Ok(Assign::Jsonata(jt("Assign", v)?))
            } else {
                assign_block(v).map_err(|e| err("Assign", e))
            }
        };
        let seconds_expr = |field: &str, v: &Option<Value>| -> Result<Seconds, Diagnostic> {
            Ok(match v {
                Some(v) if is_expr(v) => Seconds::Expr(jt(field, v)?),
                Some(v) => Seconds::Fixed(v.as_u64().unwrap_or(0)),
                None => Seconds::None,
            })
        };
        let path = |field: &str, p: &str| Path::parse(p).map_err(|e| err(field, e));
        let select = |field: &str, v: &Option<Option<String>>| -> Result<Select, Diagnostic> {
            Ok(match v {
                None => Select::All,
                Some(None) => Select::Nothing,
                Some(Some(p)) if p == "$" => Select::All,
                Some(Some(p)) => Select::Path(path(field, p)?),
            })
        };
        let result_path = |field: &str, v: &Option<Option<String>>| -> Result<ResultPath, Diagnostic> {
            Ok(match v {
                None => ResultPath::Replace,
                Some(None) => ResultPath::Discard,
                Some(Some(p)) if p == "$" => ResultPath::Replace,
                Some(Some(p)) => ResultPath::Path(Path::parse_reference(p).map_err(|e| err(field, e))?),
            })
        };
        let template = |field: &str, v: &Option<Value>| -> Result<Option<Template>, Diagnostic> {
            v.as_ref().map(|v| Template::compile(v).map_err(|e| err(field, e))).transpose()
        };
        let transition = match (&common.next, common.end) {
            (Some(n), _) => Transition::Next(lookup(n, &format!("{loc}/Next"))?),
            _ => Transition::End,
        };
        let kind = match s {
            S::Pass(p) => Kind::Pass { result: p.result.clone() },
            S::Task(t) if jsonata => Kind::Task(Box::new(Task {
                resource: self.resource(t.resource.as_str().unwrap_or_default()),
                timeout: seconds_expr("TimeoutSeconds", &t.timeout_seconds)?,
                heartbeat: seconds_expr("HeartbeatSeconds", &t.heartbeat_seconds)?,
                credentials: t.credentials.clone(),
            })),
            S::Task(t) => Kind::Task(Box::new(Task {
                resource: self.resource(t.resource.as_str().unwrap_or_default()),
                timeout: seconds(
                    &t.timeout_seconds,
                    &t.timeout_seconds_path,
                    |f, p| path(f, p),
                    "TimeoutSecondsPath",
                )?,
                heartbeat: seconds(
                    &t.heartbeat_seconds,
                    &t.heartbeat_seconds_path,
                    |f, p| path(f, p),
                    "HeartbeatSecondsPath",
                )?,
                credentials: t.credentials.clone(),
            })),
            S::Choice(c) => {
                let mut rules = Vec::with_capacity(c.choices.len());
                for (i, rule) in c.choices.iter().enumerate() {
                    let rloc = format!("Choices/{i}");
                    let test = if jsonata {
                        let cond = rule.get("Condition").cloned().unwrap_or(Value::Bool(false));
                        ChoiceTest::Condition(jt("Condition", &cond)?)
                    } else {
                        ChoiceTest::Rule(Rule::compile(rule).map_err(|e| err(&rloc, e))?)
                    };
                    let next = rule.get("Next").and_then(Value::as_str).unwrap_or_default();
                    rules.push(ChoiceRule {
                        test,
                        next: lookup(next, &format!("{loc}/{rloc}/Next"))?,
                        assign: rule.get("Assign").map(assign_of).transpose()?,
                        output: if jsonata { jt_opt("Output", rule.get("Output"))? } else { None },
                    });
                }
                let default =
                    c.default.as_deref().map(|d| lookup(d, &format!("{loc}/Default"))).transpose()?;
                Kind::Choice { rules, default }
            }
            S::Wait(w) if jsonata && w.seconds.as_ref().is_some_and(is_expr) => {
                Kind::Wait(WaitFor::SecondsExpr(jt("Seconds", w.seconds.as_ref().expect("checked"))?))
            }
            S::Wait(w) if jsonata && w.timestamp.as_ref().is_some_and(is_expr) => {
                Kind::Wait(WaitFor::TimestampExpr(jt("Timestamp", w.timestamp.as_ref().expect("checked"))?))
            }
            S::Wait(w) => Kind::Wait(if let Some(v) = &w.seconds {
                WaitFor::Seconds(v.as_u64().unwrap_or(0))
            } else if let Some(t) = &w.timestamp {
                WaitFor::Timestamp(t.as_str().unwrap_or_default().to_string())
            } else if let Some(p) = &w.seconds_path {
                WaitFor::SecondsPath(path("SecondsPath", p)?)
            } else if let Some(p) = &w.timestamp_path {
                WaitFor::TimestampPath(path("TimestampPath", p)?)
            } else {
                return Err(err(
                    "",
                    "A Wait state needs Seconds, Timestamp, SecondsPath or TimestampPath".into(),
                ));
            }),
            S::Succeed(_) => Kind::Succeed,
            S::Fail(f) if jsonata => {
                let text = |field: &str, v: &Option<String>| -> Result<Text, Diagnostic> {
                    Ok(match v {
                        None => Text::None,
                        Some(s) if jsonata_text(s).is_some() => {
                            Text::Jsonata(jt(field, &Value::String(s.clone()))?)
                        }
                        Some(s) => Text::Literal(s.clone()),
                    })
                };
                Kind::Fail { error: text("Error", &f.error)?, cause: text("Cause", &f.cause)? }
            }
            S::Fail(f) => Kind::Fail {
                error: text(&f.error, &f.error_path, "ErrorPath").map_err(|e| err("ErrorPath", e))?,
                cause: text(&f.cause, &f.cause_path, "CausePath").map_err(|e| err("CausePath", e))?,
            },
            S::Parallel(p) => Kind::Parallel {
                branches: p
                    .branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| self.machine(b, &format!("{loc}/Branches/{i}")).map(Arc::new))
                    .collect::<Result<_, _>>()?,
            },
            S::Map(m) => {
                let (proc_model, field) = match (&m.item_processor, &m.iterator) {
                    (Some(p), _) => (p, "ItemProcessor"),
                    (None, Some(p)) => (p, "Iterator"),
                    (None, None) => return Err(err("", "A Map state needs an ItemProcessor".into())),
                };
                let processor = Arc::new(self.machine(proc_model, &format!("{loc}/{field}"))?);
                let distributed =
                    proc_model.processor_config.as_ref().and_then(|c| c.get("Mode")).and_then(Value::as_str)
                        == Some("DISTRIBUTED");
                let batcher = m
                    .item_batcher
                    .as_ref()
                    .map(|b| -> Result<Batcher, Diagnostic> {
                        Ok(Batcher {
                            max_items: count(&b.max_items_per_batch, &b.max_items_per_batch_path, |p| {
                                path("ItemBatcher/MaxItemsPerBatchPath", p)
                            })?,
                            max_bytes: count(
                                &b.max_input_bytes_per_batch,
                                &b.max_input_bytes_per_batch_path,
                                |p| path("ItemBatcher/MaxInputBytesPerBatchPath", p),
                            )?,
                            batch_input: template("ItemBatcher/BatchInput", &b.batch_input)?,
                        })
                    })
                    .transpose()?;
                Kind::Map(Box::new(MapSpec {
                    processor,
                    items_path: match m.items_path.as_deref() {
                        None | Some("$") => None,
                        Some(p) => Some(path("ItemsPath", p)?),
                    },
                    // A JSONata state's ItemSelector is a JSONata template (below): its keys
                    // are taken as written, `.$` or not.
                    item_selector: match (jsonata, &m.item_selector, &m.results.parameters) {
                        (true, _, _) => None,
                        (false, Some(_), _) => template("ItemSelector", &m.item_selector)?,
                        (false, None, Some(_)) => template("Parameters", &m.results.parameters)?,
                        (false, None, None) => None,
                    },
                    items: if jsonata { jt_opt("Items", m.items.as_ref())? } else { None },
                    item_selector_jsonata: if jsonata {
                        jt_opt("ItemSelector", m.item_selector.as_ref())?
                    } else {
                        None
                    },
                    max_concurrency: count(&m.max_concurrency, &m.max_concurrency_path, |p| {
                        path("MaxConcurrencyPath", p)
                    })?,
                    tolerated_failure_count: count(
                        &m.tolerated_failure_count,
                        &m.tolerated_failure_count_path,
                        |p| path("ToleratedFailureCountPath", p),
                    )?,
                    tolerated_failure_percentage: match (
                        &m.tolerated_failure_percentage,
                        &m.tolerated_failure_percentage_path,
                    ) {
                        (Some(v), _) => Percent::Fixed(v.as_f64().unwrap_or(0.0)),
                        (None, Some(p)) => Percent::Path(path("ToleratedFailurePercentagePath", p)?),
                        (None, None) => Percent::None,
                    },
                    batcher,
                    distributed,
                }))
            }
        };
        // A Map's Parameters are its ItemSelector; the state itself has none.
        let parameters = match s {
            S::Map(_) => None,
            _ => template("Parameters", &results.parameters)?,
        };
        let retry = recovery
            .retry
            .iter()
            .map(|r| Retrier {
                errors: r.error_equals.clone(),
                interval_seconds: r.interval_seconds.unwrap_or(1.0),
                max_attempts: r.max_attempts.unwrap_or(3),
                backoff_rate: r.backoff_rate.unwrap_or(2.0),
                max_delay_seconds: r.max_delay_seconds,
                full_jitter: r.jitter_strategy.as_deref() == Some("FULL"),
            })
            .collect();
        let catch = recovery
            .catch
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Ok(Catcher {
                    errors: c.error_equals.clone(),
                    next: lookup(&c.next, &format!("{loc}/Catch/{i}/Next"))?,
                    result_path: result_path(&format!("Catch/{i}/ResultPath"), &c.result_path)?,
                    assign: c.assign.as_ref().map(assign_of).transpose()?,
                    output: if jsonata { jt_opt("Output", c.output.as_ref())? } else { None },
                })
            })
            .collect::<Result<_, Diagnostic>>()?;
        Ok(State {
            name: Arc::from(name),
            kind,
            input_path: select("InputPath", &common.input_path)?,
            output_path: select("OutputPath", &common.output_path)?,
            result_path: result_path("ResultPath", &results.result_path)?,
            parameters,
            result_selector: template("ResultSelector", &results.result_selector)?,
            transition,
            retry,
            catch,
            assign: common.assign.as_ref().map(assign_of).transpose()?,
            jsonata,
            arguments: if jsonata { jt_opt("Arguments", results.arguments.as_ref())? } else { None },
            output: match &common.output {
                Some(o) if jsonata => Some(jt("Output", o.as_ref().unwrap_or(&Value::Null))?),
                _ => None,
            },
            reads_context: false,
            passes_through: false,
            plain_task: false,
        }
        .with_context_flag())
    }
}

impl State {
    /// Sets `reads_context`: building `$states.context` costs a copy of the execution's
    /// input, so it is built only for states whose expressions may read it.
    fn with_context_flag(mut self) -> State {
        let t = |o: &Option<JTemplate>| o.as_ref().is_some_and(JTemplate::reads_context);
        let a = |o: &Option<Assign>| matches!(o, Some(Assign::Jsonata(x)) if x.reads_context());
        let secs = |x: &Seconds| matches!(x, Seconds::Expr(e) if e.reads_context());
        let count = |x: &Count| matches!(x, Count::Expr(e) if e.reads_context());
        let text = |x: &Text| matches!(x, Text::Jsonata(e) if e.reads_context());
        let kind = match &self.kind {
            Kind::Choice { rules, .. } => rules.iter().any(|r| {
                matches!(&r.test, ChoiceTest::Condition(c) if c.reads_context())
                    || t(&r.output)
                    || a(&r.assign)
            }),
            Kind::Task(task) => secs(&task.timeout) || secs(&task.heartbeat),
            Kind::Wait(WaitFor::SecondsExpr(x) | WaitFor::TimestampExpr(x)) => x.reads_context(),
            Kind::Fail { error, cause } => text(error) || text(cause),
            Kind::Map(m) => {
                t(&m.items)
                    || count(&m.max_concurrency)
                    || count(&m.tolerated_failure_count)
                    || matches!(&m.tolerated_failure_percentage, Percent::Expr(e) if e.reads_context())
            }
            _ => false,
        };
        self.reads_context =
            self.jsonata && (kind || t(&self.arguments) || t(&self.output) || a(&self.assign));
        let plain = matches!(self.input_path, Select::All)
            && matches!(self.output_path, Select::All)
            && matches!(self.result_path, ResultPath::Replace)
            && self.parameters.is_none()
            && self.result_selector.is_none()
            && self.arguments.is_none()
            && self.output.is_none()
            && self.assign.is_none();
        self.passes_through = plain && matches!(self.kind, Kind::Pass { result: None });
        let fixed = |s: &Seconds| matches!(s, Seconds::None | Seconds::Fixed(_));
        self.plain_task = plain
            && matches!(&self.kind, Kind::Task(t) if t.credentials.is_none() && fixed(&t.timeout) && fixed(&t.heartbeat));
        self
    }
}

fn assign_block(v: &Value) -> Result<Assign, String> {
    if !v.is_object() {
        return Err("Assign must be an object of variable names".into());
    }
    Ok(Assign::Path(Template::compile(v)?))
}

fn seconds(
    fixed: &Option<Value>,
    by_path: &Option<String>,
    path: impl Fn(&str, &str) -> Result<Path, Diagnostic>,
    field: &str,
) -> Result<Seconds, Diagnostic> {
    Ok(match (fixed, by_path) {
        (Some(v), _) => Seconds::Fixed(v.as_u64().unwrap_or(0)),
        (None, Some(p)) => Seconds::Path(path(field, p)?),
        (None, None) => Seconds::None,
    })
}

fn count(
    fixed: &Option<Value>,
    by_path: &Option<String>,
    path: impl Fn(&str) -> Result<Path, Diagnostic>,
) -> Result<Count, Diagnostic> {
    Ok(match (fixed, by_path) {
        (Some(v), _) => Count::Fixed(v.as_i64().unwrap_or(0)),
        (None, Some(p)) => Count::Path(path(p)?),
        (None, None) => Count::None,
    })
}

fn text(literal: &Option<String>, expr: &Option<String>, field: &str) -> Result<Text, String> {
    Ok(match (literal, expr) {
        (Some(s), _) => Text::Literal(s.clone()),
        (None, Some(e)) => Text::Expr(Template::expression(field, e)?),
        (None, None) => Text::None,
    })
}

/// RFC 6901: `~` and `/` inside a state name are escaped in a JSON pointer.
pub fn pointer_escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod context_tests {
    use super::reads_context;

    #[test]
    fn the_context_is_read_through_dollar_dollar_or_states_context() {
        for (text, reads) in [
            (r#"{"x.$": "$$.Execution.Input"}"#, true),
            (r#"{"Output": "{% $states.context.Execution.Input %}"}"#, true),
            (r#"{"Output": "{% $keys($states) %}"}"#, true),
            (r#"{"Output": "{% $states.input.a & $states.result.b %}"}"#, false),
            (r#"{"Output": "{% $states.errorOutput %}"}"#, false),
            (r#"{"Output": "{% $states.inputs %}"}"#, true),
            (r#"{"x.$": "$.a"}"#, false),
        ] {
            assert_eq!(reads_context(text), reads, "{text}");
        }
    }
}
