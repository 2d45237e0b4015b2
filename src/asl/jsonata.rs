//! JSONata, the query language of `QueryLanguage: "JSONata"` states: the text between `{%` and
//! `%}` in `Arguments`, `Output`, `Assign`, `Condition`, `Items` and the other JSONata fields.
//!
//! Where it sits: the definition compiler ([`super::compile()`]) calls [`compile`] once per
//! expression, so a running execution never parses; the interpreter calls [`Expr::eval`] each
//! time a field is evaluated, with the state's `$states` object and a view of the workflow
//! variables ([`Bindings`]), and turns an [`EvalError`] into `States.QueryEvaluationError` with
//! AWS's cause text. Like the rest of `asl`, nothing here does I/O: randomness comes in through
//! [`Bindings::random`].
//!
//! The engine is the jsonata-core crate (pinned) behind the [`Engine`] and [`CompiledExpr`]
//! traits, so another engine can replace it without touching the interpreter. What this module
//! adds to plain JSONata is what AWS adds and removes:
//! - AWS's functions, one row each in [`AWS_FUNCTIONS`]: `$partition`, `$range`, `$hash`,
//!   `$random` (with an optional seed), `$uuid` and `$parse`; and jsonata's `$now` and `$millis`
//!   in the same table, reading the workflow's clock instead of the wall clock;
//! - `$eval` is gone: calling it fails with `T1006` as on AWS, and `$eval` as a value is undefined;
//! - errors read as jsonata-js prints them (`T1006: Attempted to invoke a non-function`), which is
//!   what AWS quotes in its causes;
//! - numbers come back as AWS writes them: `1`, not `1.0`;
//! - evaluation is bounded by [`LIMITS`] (time, nesting depth, sequence length), so a runaway
//!   expression fails with an error instead of holding a worker.
//!
//! Cost: variables are bound lazily in the only way jsonata-core allows (it has no lookup hook):
//! [`compile`] scans the expression once for the variables it names and for the field paths it
//! reads from each (`$states.input.count` reads `input.count` only), and an evaluation converts
//! just those parts of `$states` and of those variables. An expression that is only such a path
//! (`$states.input.count`, `$myVar.field`), the most common kind, is read straight from the
//! serde value without the engine. Measured in a release build on the 2-core development machine
//! (compile once, evaluate many times), whatever the size of the input: `$states.input.count + 1`
//! about 1.1 to 1.5 µs, `$states.input.count` about 50 ns. See the ignored test
//! `cost_of_one_evaluation` (`cargo test --release --lib asl::jsonata::tests::cost -- --ignored
//! --nocapture`).

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use jsonata_core::ast::{AstNode, BinaryOp, PathStep, Stage};
use jsonata_core::evaluator::{
    error_code_prefix, CancelToken, Context, Evaluator, EvaluatorError, EvaluatorOptions,
};
use jsonata_core::value::{with_stack, JArray, JValue};
use serde_json::{Map, Number, Value};

/// What an evaluation can see.
pub struct Bindings<'a> {
    /// `$states`: an object with `input`, `context` and, where AWS allows them, `result` and
    /// `errorOutput`.
    pub states: &'a Value,
    /// The workflow variables by name (`$name`); asked only for the names the expression uses.
    pub variables: &'a dyn Fn(&str) -> Option<Value>,
    /// A fresh random 64-bit number; drawn once per evaluation that calls `$random()` or `$uuid()`.
    pub random: &'a dyn Fn() -> u64,
    /// The workflow's time (which a time scale may run ahead of the wall clock); read once per
    /// evaluation that calls `$now()` or `$millis()`, so they agree within it as in jsonata-js.
    pub now: &'a dyn Fn() -> DateTime<Utc>,
    /// The ARN partition (`aws`). No JSONata function reads it: AWS's `$partition` is the
    /// array-chunking function, not the partition name.
    pub region_partition: &'a str,
    /// The most memory the evaluation may take, net, in bytes (`limits.expression_memory_bytes`):
    /// past it, the evaluation is cancelled and fails. Enforced where the program's global
    /// allocator is [`crate::memory::Metered`] (the `stepgate` binary).
    pub memory_bytes: usize,
    /// Where an evaluation that outlasts [`Limits::inline_ms`] runs again, so that a costly
    /// expression does not hold up what else shares the caller's thread (the engine hands
    /// it to a blocking thread). `None`: it runs on here, within the whole time limit.
    pub offload: Option<&'a Offload<'a>>,
}

/// See [`Bindings::offload`]: runs the work it is given, somewhere.
pub type Offload<'a> = dyn Fn(&mut dyn FnMut()) + 'a;

/// The default of [`Bindings::memory_bytes`]: room for JSONata's largest sequence (a
/// million items take about 80 MB in jsonata-core) with some to spare.
pub const MEMORY_BYTES: usize = 128 << 20;

/// Why an evaluation gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// The expression evaluated to nothing (`$doesNotExist`); AWS says it "returned nothing
    /// (undefined)".
    Undefined,
    /// The expression threw: the code and message as jsonata-js prints them, e.g.
    /// `T1006: Attempted to invoke a non-function`.
    Failed(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Undefined => f.write_str("returned nothing (undefined)"),
            EvalError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for EvalError {}

/// A JSONata engine: parses an expression once into something that can be evaluated many times.
pub trait Engine: Send + Sync {
    /// `Err` holds the syntax error as jsonata-js words it (`S0207: Unexpected end of expression`).
    fn compile(&self, text: &str) -> Result<Box<dyn CompiledExpr>, String>;
}

/// One parsed expression of some [`Engine`].
pub trait CompiledExpr: Send + Sync {
    fn eval(&self, b: &Bindings<'_>) -> Result<Value, EvalError>;
}

/// A parsed JSONata expression: cheap to clone and shared between threads.
#[derive(Clone)]
pub struct Expr(Arc<Parsed>);

struct Parsed {
    text: Box<str>,
    body: Box<dyn CompiledExpr>,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.text()).finish()
    }
}

/// Parses `text` (what is inside `{% ... %}`) with the default engine, [`JsonataCore`].
pub fn compile(text: &str) -> Result<Expr, String> {
    compile_with(&JsonataCore, text)
}

/// Parses `text` with another engine.
pub fn compile_with(engine: &dyn Engine, text: &str) -> Result<Expr, String> {
    let body = engine.compile(text)?;
    Ok(Expr(Arc::new(Parsed { text: text.into(), body })))
}

impl Expr {
    pub fn eval(&self, b: &Bindings<'_>) -> Result<Value, EvalError> {
        self.0.body.eval(b)
    }

    /// The expression as written, which AWS quotes in its causes.
    pub fn text(&self) -> &str {
        &self.0.text
    }
}

/// Bounds on one evaluation. jsonata-js has none of its own; these keep a runaway expression
/// from holding a worker or its memory, and sit far above what a workflow field needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time, in milliseconds (error `D1012`).
    pub timeout_ms: u64,
    /// Nesting of evaluation, about three levels per nested function call (error `D1011`).
    pub max_depth: usize,
    /// Items in one sequence that a path, filter, range or function builds (error `D2015`).
    pub max_sequence: usize,
    /// How long an evaluation may run on the caller's thread before it is run again through
    /// [`Bindings::offload`], in milliseconds.
    pub inline_ms: u64,
}

/// The bounds [`compile`] uses.
pub const LIMITS: Limits =
    Limits { timeout_ms: 5_000, max_depth: 3_000, max_sequence: 1_000_000, inline_ms: 10 };

/// The jsonata-core engine, with AWS's functions.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonataCore;

impl Engine for JsonataCore {
    fn compile(&self, text: &str) -> Result<Box<dyn CompiledExpr>, String> {
        let ast = jsonata_core::parser::parse(text).map_err(|e| {
            let raw = e.to_string();
            js_message(raw.strip_prefix("Invalid syntax: ").unwrap_or(&raw))
        })?;
        Ok(Box::new(CoreExpr::new(ast, LIMITS)))
    }
}

struct CoreExpr {
    ast: AstNode,
    uses: Uses,
    /// Set when the whole expression is `$name` or `$name.field...`, the most common kind.
    lookup: Option<Lookup>,
    /// Set when it is such a path compared with or combined with a number literal
    /// (`$states.input.count + 1`, `$n >= 1000`), the next most common kind.
    arith: Option<Arith>,
    limits: Limits,
}

impl CoreExpr {
    fn new(ast: AstNode, limits: Limits) -> Self {
        CoreExpr { uses: Uses::of(&ast), lookup: Lookup::of(&ast), arith: Arith::of(&ast), ast, limits }
    }
}

/// `path OP number` or `number OP path` with an arithmetic or comparison operator, evaluated
/// without the engine when the path gives a number (anything else goes to the engine, which
/// then raises JSONata's own errors).
struct Arith {
    path: Lookup,
    number: f64,
    path_first: bool,
    op: BinaryOp,
}

impl Arith {
    fn of(ast: &AstNode) -> Option<Arith> {
        let AstNode::Binary { op, lhs, rhs } = ast else { return None };
        use BinaryOp::*;
        if !matches!(
            op,
            Add | Subtract
                | Multiply
                | Divide
                | Modulo
                | Equal
                | NotEqual
                | LessThan
                | LessThanOrEqual
                | GreaterThan
                | GreaterThanOrEqual
        ) {
            return None;
        }
        let (path, number, path_first) = match (&**lhs, &**rhs) {
            (AstNode::Number(n), other) => (Lookup::of(other)?, *n, false),
            (other, AstNode::Number(n)) => (Lookup::of(other)?, *n, true),
            _ => return None,
        };
        Some(Arith { path, number, path_first, op: *op })
    }

    fn run(&self, b: &Bindings<'_>) -> Option<Result<Value, EvalError>> {
        let v = match self.path.run(b)? {
            Ok(Value::Number(n)) => n.as_f64()?,
            _ => return None,
        };
        let (x, y) = if self.path_first { (v, self.number) } else { (self.number, v) };
        use BinaryOp::*;
        let out = match self.op {
            Add => number(x + y),
            Subtract => number(x - y),
            Multiply => number(x * y),
            // Division by zero and the like: JSONata's own errors, from the engine.
            Divide | Modulo if y == 0.0 => return None,
            Divide => number(x / y),
            Modulo => number(x % y),
            Equal => Value::Bool(x == y),
            NotEqual => Value::Bool(x != y),
            LessThan => Value::Bool(x < y),
            LessThanOrEqual => Value::Bool(x <= y),
            GreaterThan => Value::Bool(x > y),
            GreaterThanOrEqual => Value::Bool(x >= y),
            _ => return None,
        };
        Some(Ok(out))
    }
}

impl CompiledExpr for CoreExpr {
    fn eval(&self, b: &Bindings<'_>) -> Result<Value, EvalError> {
        if let Some(result) = self.lookup.as_ref().and_then(|l| l.run(b)) {
            return result;
        }
        if let Some(result) = self.arith.as_ref().and_then(|a| a.run(b)) {
            return result;
        }
        // Drawn once, so that an evaluation run again off the caller's thread sees the same.
        let seed = if self.uses.draws { (b.random)() } else { 0 };
        let now = if self.uses.clock { (b.now)() } else { DateTime::UNIX_EPOCH };
        let Some(offload) = b.offload.filter(|_| self.limits.inline_ms < self.limits.timeout_ms) else {
            return self.run(b, seed, now, self.limits.timeout_ms);
        };
        // Most evaluations take microseconds. One that outlasts its inline slice is run again
        // from the start where it holds up nothing else (the engine: a blocking thread), with
        // the whole time limit.
        match self.run(b, seed, now, self.limits.inline_ms) {
            Err(EvalError::Failed(m)) if m.starts_with("D1012") => {
                let mut result = None;
                offload(&mut || result = Some(self.run(b, seed, now, self.limits.timeout_ms)));
                result.unwrap_or_else(|| self.run(b, seed, now, self.limits.timeout_ms))
            }
            other => other,
        }
    }
}

impl CoreExpr {
    /// One evaluation by jsonata-core, within `timeout_ms` and the memory budget.
    fn run(
        &self,
        b: &Bindings<'_>,
        seed: u64,
        now: DateTime<Utc>,
        timeout_ms: u64,
    ) -> Result<Value, EvalError> {
        let mut context = Context::new();
        if self.uses.eval {
            // Bound to nothing, `$eval` is not a function: calling it fails with T1006 and
            // reading it gives undefined, which is what AWS's removal of it looks like.
            context.bind("eval".to_string(), JValue::Undefined);
        }
        for (name, need) in &self.uses.variables {
            let value = if &**name == "states" {
                Some(project(b.states, need))
            } else {
                (b.variables)(name).map(|v| project(&v, need))
            };
            if let Some(value) = value {
                context.bind(String::from(&**name), value);
            }
        }
        // The memory meter cancels the evaluation through this token.
        let cancel = CancelToken::new();
        let options = EvaluatorOptions {
            timeout_ms: Some(timeout_ms),
            max_stack_depth: Some(self.limits.max_depth),
            max_sequence_length: Some(self.limits.max_sequence),
            cancel: Some(cancel.clone()),
        };
        let mut evaluator = Evaluator::with_options(context, options);
        if self.uses.functions != 0 {
            let sources = Rc::new(Sources { random: Random::new(seed), now });
            for (i, row) in AWS_FUNCTIONS.iter().enumerate() {
                if self.uses.functions & (1 << i) != 0 {
                    let sources = Rc::clone(&sources);
                    let call = move |args: &[JValue]| {
                        (row.run)(args, &sources).map_err(EvaluatorError::EvaluationError)
                    };
                    // Overriding rather than registering, so `$random` replaces jsonata's own.
                    evaluator
                        .register_fn_override(row.name, call)
                        .map_err(|e| EvalError::Failed(e.message().to_string()))?;
                }
            }
        }
        // The result is turned into JSON under the same budget: a value that shares one
        // array many times over is small in jsonata-core and can be huge as a tree.
        let (result, exhausted) = crate::memory::metered(b.memory_bytes, &|| cancel.cancel(), || {
            let result = evaluator
                .evaluate(&self.ast, &JValue::Undefined)
                .map_err(|e| EvalError::Failed(js_message(e.message())))?;
            match to_json(&result) {
                Ok(Some(value)) => Ok(value),
                Ok(None) if result.is_undefined() => Err(EvalError::Undefined),
                Ok(None) => {
                    Err(EvalError::Failed("The expression evaluated to a function, which is not JSON".into()))
                }
                Err(Exhausted) => Err(EvalError::Failed(String::new())),
            }
        });
        if exhausted {
            return Err(EvalError::Failed(format!(
                "The evaluation took more than {} bytes of memory (limits.expression_memory_bytes).",
                b.memory_bytes
            )));
        }
        result
    }
}

// ---------------------------------------------------------------------------------------------
// The fast path: `$name.a.b` read straight from the serde value.

/// `$name.a.b...` with plain field steps: evaluated without the engine while every value on the
/// way is an object, which gives what JSONata gives (a path that meets an array maps over it, so
/// that case goes to the engine).
#[derive(Debug)]
struct Lookup {
    variable: Box<str>,
    fields: Vec<Box<str>>,
}

impl Lookup {
    fn of(ast: &AstNode) -> Option<Lookup> {
        let (head, tail) = match ast {
            AstNode::Variable(name) => (name, &[][..]),
            AstNode::Path { steps } => match steps.split_first() {
                Some((PathStep { node: AstNode::Variable(name), .. }, tail)) if plain(&steps[0]) => {
                    (name, tail)
                }
                _ => return None,
            },
            _ => return None,
        };
        // `$` is the context item; `$eval` and AWS's functions may be function values.
        if head.is_empty() || head == "eval" || AWS_FUNCTIONS.iter().any(|f| f.name == head) {
            return None;
        }
        let mut fields = Vec::with_capacity(tail.len());
        for step in tail {
            match &step.node {
                AstNode::Name(field) if plain(step) => fields.push(field.as_str().into()),
                _ => return None,
            }
        }
        Some(Lookup { variable: head.as_str().into(), fields })
    }

    /// `None` when the path meets something other than an object before its end.
    fn run(&self, b: &Bindings<'_>) -> Option<Result<Value, EvalError>> {
        let owned;
        let mut v = if &*self.variable == "states" {
            b.states
        } else {
            match (b.variables)(&self.variable) {
                Some(value) => {
                    owned = value;
                    &owned
                }
                None => return Some(Err(EvalError::Undefined)),
            }
        };
        for field in &self.fields {
            let Value::Object(map) = v else { return None };
            match map.get(&**field) {
                Some(x) => v = x,
                None => return Some(Err(EvalError::Undefined)),
            }
        }
        Some(Ok(normalized(v)))
    }
}

/// A copy of `v` with its numbers as a round trip through JSONata leaves them (f64, then written
/// as AWS writes them).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) if i.unsigned_abs() <= 1 << 53 => v.clone(),
            _ => number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Array(items) => with_stack(|| Value::Array(items.iter().map(normalized).collect())),
        Value::Object(map) => {
            with_stack(|| Value::Object(map.iter().map(|(k, v)| (k.clone(), normalized(v))).collect()))
        }
        _ => v.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// What an expression reads, found once at compile time.

/// The parts of a value an expression can reach: all of it, or only some fields, each with
/// what is read below it.
#[derive(Debug, Default, PartialEq)]
struct Need {
    whole: bool,
    fields: Vec<(Box<str>, Need)>,
}

impl Need {
    fn add(&mut self, path: &[&str]) {
        if self.whole {
            return;
        }
        let Some((first, rest)) = path.split_first() else {
            self.whole = true;
            self.fields.clear();
            return;
        };
        let i = match self.fields.iter().position(|(name, _)| &**name == *first) {
            Some(i) => i,
            None => {
                self.fields.push(((*first).into(), Need::default()));
                self.fields.len() - 1
            }
        };
        self.fields[i].1.add(rest);
    }
}

#[derive(Debug, Default)]
struct Uses {
    /// Every `$name` the expression reads, `states` included, and which parts of it.
    variables: Vec<(Box<str>, Need)>,
    /// One bit per row of [`AWS_FUNCTIONS`] that the expression names.
    functions: u32,
    /// Whether one of those draws random numbers.
    draws: bool,
    /// Whether one of those reads the time.
    clock: bool,
    /// Whether it names `$eval`.
    eval: bool,
}

impl Uses {
    fn of(ast: &AstNode) -> Uses {
        let mut uses = Uses::default();
        uses.node(ast);
        uses
    }

    fn read(&mut self, name: &str, path: &[&str]) {
        if name.is_empty() {
            return; // `$`, the context item, not a variable.
        }
        self.mention(name);
        match self.variables.iter_mut().find(|(n, _)| &**n == name) {
            Some((_, need)) => need.add(path),
            None => {
                let mut need = Need::default();
                need.add(path);
                self.variables.push((name.into(), need));
            }
        }
    }

    /// A name in function position or as a value may be one of AWS's functions or `$eval`.
    fn mention(&mut self, name: &str) {
        if let Some(i) = AWS_FUNCTIONS.iter().position(|row| row.name == name) {
            self.functions |= 1 << i;
            self.draws |= AWS_FUNCTIONS[i].reads == Reads::Random;
            self.clock |= AWS_FUNCTIONS[i].reads == Reads::Clock;
        }
        self.eval |= name == "eval";
    }

    fn node(&mut self, node: &AstNode) {
        with_stack(|| self.node_inner(node));
    }

    fn node_inner(&mut self, node: &AstNode) {
        match node {
            AstNode::Variable(name) => self.read(name, &[]),
            AstNode::Path { steps } => self.path(steps),
            AstNode::Binary { op: BinaryOp::ColonEqual, lhs, rhs } => {
                // `$x := ...` binds x; only the right side reads anything.
                if !matches!(**lhs, AstNode::Variable(_)) {
                    self.node(lhs);
                }
                self.node(rhs);
            }
            AstNode::Binary { lhs, rhs, .. } => {
                self.node(lhs);
                self.node(rhs);
            }
            AstNode::Unary { operand, .. } => self.node(operand),
            AstNode::Function { name, args, .. } => {
                self.mention(name);
                args.iter().for_each(|a| self.node(a));
            }
            AstNode::Call { procedure, args } => {
                self.node(procedure);
                args.iter().for_each(|a| self.node(a));
            }
            AstNode::Lambda { body, .. } => self.node(body),
            AstNode::Array(items) | AstNode::Block(items) | AstNode::ArrayGroup(items) => {
                items.iter().for_each(|i| self.node(i));
            }
            AstNode::Object(pairs) => self.pairs(pairs),
            AstNode::ObjectTransform { input, pattern } => {
                self.node(input);
                self.pairs(pattern);
            }
            AstNode::Conditional { condition, then_branch, else_branch } => {
                self.node(condition);
                self.node(then_branch);
                if let Some(e) = else_branch {
                    self.node(e);
                }
            }
            AstNode::FunctionApplication(inner) => self.node(inner),
            AstNode::Sort { input, terms } => {
                self.node(input);
                terms.iter().for_each(|(t, _)| self.node(t));
            }
            AstNode::Transform { location, update, delete } => {
                self.node(location);
                self.node(update);
                if let Some(d) = delete {
                    self.node(d);
                }
            }
            AstNode::String(_)
            | AstNode::Name(_)
            | AstNode::Number(_)
            | AstNode::Boolean(_)
            | AstNode::Null
            | AstNode::Undefined
            | AstNode::Placeholder
            | AstNode::Regex { .. }
            | AstNode::ParentVariable(_)
            | AstNode::Wildcard
            | AstNode::Descendant
            | AstNode::Parent(_) => {}
        }
    }

    fn pairs(&mut self, pairs: &[(AstNode, AstNode)]) {
        for (k, v) in pairs {
            self.node(k);
            self.node(v);
        }
    }

    /// `$name.a.b...`: the variable is read along the leading plain field steps only. A step with
    /// a predicate, a binding or a parent reference ends that path: whatever it reaches is read
    /// whole, so the value it sees is the same as in the full variable.
    fn path(&mut self, steps: &[PathStep]) {
        let mut rest = steps;
        if let Some((head, tail)) = steps.split_first() {
            if let AstNode::Variable(name) = &head.node {
                if plain(head) {
                    let mut fields = Vec::new();
                    for step in tail {
                        let AstNode::Name(field) = &step.node else { break };
                        if step.ancestor_label.is_some() || step.is_tuple {
                            break; // `%` reads the object this step starts from.
                        }
                        fields.push(field.as_str());
                        if !plain(step) {
                            break;
                        }
                    }
                    self.read(name, &fields);
                    rest = tail;
                }
            }
        }
        for step in rest {
            self.node(&step.node);
            for stage in &step.stages {
                if let Stage::Filter(filter) = stage {
                    self.node(filter);
                }
            }
        }
    }
}

fn plain(step: &PathStep) -> bool {
    step.stages.is_empty()
        && step.focus.is_none()
        && step.index_var.is_none()
        && step.ancestor_label.is_none()
        && !step.is_tuple
}

// ---------------------------------------------------------------------------------------------
// Values in and out.

/// The parts of `v` that `need` reaches, as a jsonata value. A field path stops at anything that
/// is not an object (an array is mapped over by the path step, so it is taken whole).
fn project(v: &Value, need: &Need) -> JValue {
    match v {
        Value::Object(map) if !need.whole => {
            let mut out = IndexMap::with_capacity(need.fields.len());
            for (name, below) in &need.fields {
                if let Some(x) = map.get(&**name) {
                    out.insert(String::from(&**name), project(x, below));
                }
            }
            JValue::object(out)
        }
        _ => to_jvalue(v),
    }
}

fn to_jvalue(v: &Value) -> JValue {
    match v {
        Value::Null => JValue::Null,
        Value::Bool(b) => JValue::Bool(*b),
        Value::Number(n) => JValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => JValue::string(s.as_str()),
        Value::Array(items) => with_stack(|| {
            let flat = !items.iter().any(Value::is_array);
            JValue::Array(JArray::new_flat(items.iter().map(to_jvalue).collect(), flat))
        }),
        Value::Object(map) => {
            with_stack(|| JValue::object(map.iter().map(|(k, v)| (k.clone(), to_jvalue(v))).collect()))
        }
    }
}

/// `v` as JSON, as `JSON.stringify` writes it: `None` for undefined and for functions (left out
/// of objects, `null` in arrays), `null` for a non-finite number, integers without a fraction.
/// Stops once the evaluation's memory budget is spent.
fn to_json(v: &JValue) -> Result<Option<Value>, Exhausted> {
    Ok(Some(match v {
        JValue::Null => Value::Null,
        JValue::Bool(b) => Value::Bool(*b),
        JValue::Number(n) => number(*n),
        JValue::String(s) => Value::String(s.to_string()),
        JValue::Array(items) => with_stack(|| {
            let mut out = Vec::with_capacity(items.len());
            for i in items.iter() {
                if crate::memory::exhausted() {
                    return Err(Exhausted);
                }
                out.push(to_json(i)?.unwrap_or(Value::Null));
            }
            Ok(Value::Array(out))
        })?,
        JValue::Object(map) => with_stack(|| {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map.iter() {
                if crate::memory::exhausted() {
                    return Err(Exhausted);
                }
                if let Some(v) = to_json(v)? {
                    out.insert(k.clone(), v);
                }
            }
            Ok(Value::Object(out))
        })?,
        _ => return Ok(None),
    }))
}

/// The evaluation's memory budget ran out while its result was turned into JSON.
struct Exhausted;

/// A JSONata number (an f64) as AWS writes it: an integral value as an integer.
fn number(n: f64) -> Value {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if !n.is_finite() {
        return Value::Null;
    }
    if n.fract() == 0.0 {
        if n.abs() < TWO_63 {
            return Value::from(n as i64); // -0 becomes 0, as JSON.stringify writes it
        }
        if n > 0.0 && n < 2.0 * TWO_63 {
            return Value::from(n as u64);
        }
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

// ---------------------------------------------------------------------------------------------
// Error messages as jsonata-js words them.

/// jsonata-js's messages that take no inserts. jsonata-core words some of these its own way;
/// AWS quotes jsonata-js's, so the code picks the text. Coded messages not listed here (those
/// with an inserted value) keep jsonata-core's wording.
const JS_MESSAGES: &[(&str, &str)] = &[
    ("S0101", "String literal must be terminated by a matching quote"),
    ("S0104", "The escape sequence \\u must be followed by 4 hex digits"),
    ("S0105", "Quoted property name must be terminated with a backquote (`)"),
    ("S0106", "Comment has no closing tag"),
    ("S0207", "Unexpected end of expression"),
    ("S0209", "A predicate cannot follow a grouping expression in a step"),
    ("S0210", "Each step can only have one grouping expression"),
    ("S0212", "The left side of := must be a variable name (start with $)"),
    ("S0301", "Empty regular expressions are not allowed"),
    ("S0302", "No terminating / in regular expression"),
    ("D1004", "Regular expression matches zero length string"),
    ("T1006", "Attempted to invoke a non-function"),
    ("T1008", "Attempted to partially apply a non-function"),
    ("T2003", "The left side of the range operator (..) must evaluate to an integer"),
    ("T2004", "The right side of the range operator (..) must evaluate to an integer"),
    ("T2006", "The right side of the function application operator ~> must be a function"),
    ("T2008", "The expressions within an order-by clause must evaluate to numeric or string values"),
    ("D3001", "Attempting to invoke string function on Infinity or NaN"),
    ("D3010", "Second argument of replace function cannot be an empty string"),
    ("D3011", "Fourth argument of replace function must evaluate to a positive number"),
    ("D3012", "Attempted to replace a matched string with a non-string value"),
    ("D3020", "Third argument of split function must evaluate to a positive number"),
    ("D3040", "Third argument of match function must evaluate to a positive number"),
    ("D3050", "First argument of reduce function must be a function with two arguments"),
    (
        "D3070",
        "The single argument form of the sort function can only be applied to an array of strings or \
         an array of numbers.  Use the second argument to specify a comparison function",
    ),
    ("D3138", "The $single() function expected exactly 1 matching result.  Instead it matched more."),
    ("D3139", "The $single() function expected exactly 1 matching result.  Instead it matched 0."),
];

/// A coded jsonata-core message in jsonata-js's words, where they differ and can be recovered.
fn js_message(raw: &str) -> String {
    let Some(code) = error_code_prefix(raw) else {
        return raw.to_string();
    };
    if let Some((_, text)) = JS_MESSAGES.iter().find(|(c, _)| *c == code) {
        return format!("{code}: {text}");
    }
    // jsonata-js quotes the operator: `The left side of the "+" operator must ...`.
    if code == "T2001" || code == "T2002" {
        if let Some((before, after)) = raw.split_once(" side of the ") {
            if let Some((op, tail)) = after.split_once(" operator ") {
                if !op.starts_with('"') {
                    return format!("{before} side of the \"{op}\" operator {tail}");
                }
            }
        }
    }
    raw.to_string()
}

// ---------------------------------------------------------------------------------------------
// AWS's functions.

/// One of the functions Step Functions adds to JSONata.
pub struct AwsFunction {
    /// Called as `$name(...)`.
    pub name: &'static str,
    /// What it reads besides its arguments.
    pub reads: Reads,
    run: fn(&[JValue], &Sources) -> Result<JValue, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    Nothing,
    Random,
    Clock,
}

/// The functions Step Functions adds to JSONata ("JSONata functions provided by Step Functions"
/// in AWS's developer guide); each is registered only for expressions that name it.
pub static AWS_FUNCTIONS: &[AwsFunction] = &[
    AwsFunction { name: "partition", reads: Reads::Nothing, run: partition },
    AwsFunction { name: "range", reads: Reads::Nothing, run: range },
    AwsFunction { name: "hash", reads: Reads::Nothing, run: hash },
    AwsFunction { name: "random", reads: Reads::Random, run: random },
    AwsFunction { name: "uuid", reads: Reads::Random, run: uuid },
    AwsFunction { name: "parse", reads: Reads::Nothing, run: parse },
    // jsonata's own, read from the workflow's clock instead of the wall clock.
    AwsFunction { name: "now", reads: Reads::Clock, run: now },
    AwsFunction { name: "millis", reads: Reads::Clock, run: millis },
];

/// The most steps `$range` takes from its start: AWS's limit of 1,000 counts the steps, so
/// `$range(1, 1001, 1)` gives 1,001 values on AWS (recorded), one more than
/// `States.ArrayRange` returns.
const MAX_RANGE_STEPS: i64 = 1000;

/// The message jsonata-js gives when an argument does not fit a function's signature.
fn signature_error(function: &str, position: usize) -> String {
    format!("T0410: Argument {position} of function \"{function}\" does not match function signature")
}

fn arity(function: &str, args: &[JValue], min: usize, max: usize) -> Result<(), String> {
    match args.len() {
        n if n < min => Err(signature_error(function, n + 1)),
        n if n > max => Err(signature_error(function, max + 1)),
        _ => Ok(()),
    }
}

/// A number argument as an integer, the fraction dropped as a Java cast drops it (recorded on
/// AWS: `$range(1.4, 5.6, 2.2)` is `[1, 3, 5]`); `None` when it is undefined.
fn truncated(function: &str, args: &[JValue], position: usize) -> Result<Option<i64>, String> {
    match args.get(position - 1) {
        None | Some(JValue::Undefined) => Ok(None),
        Some(JValue::Number(n)) if n.is_finite() => Ok(Some(n.trunc().clamp(-9.0e15, 9.0e15) as i64)),
        Some(_) => Err(signature_error(function, position)),
    }
}

/// `$partition(array, size)`: the array in chunks of `size` items, the last one maybe shorter.
/// As recorded on AWS: without a size the whole array is one chunk; a size of 0 (after the
/// fraction is dropped) gives nothing (undefined); a negative one and an argument that is not
/// an array are errors in jsonata's words.
fn partition(args: &[JValue], _: &Sources) -> Result<JValue, String> {
    arity("partition", args, 0, 2)?;
    let items: &[JValue] = match args.first() {
        None | Some(JValue::Undefined) => return Ok(JValue::Undefined),
        Some(JValue::Array(items)) => items,
        Some(_) => {
            return Err("T0412: Argument 1 of function \"partition\" must be an array of undefined".into())
        }
    };
    let size = match truncated("partition", args, 2)? {
        None => items.len().max(1),
        Some(0) => return Ok(JValue::Undefined),
        Some(n) if n < 0 => return Err("D3137: Second argument must be zero or greater".into()),
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    Ok(JValue::array(items.chunks(size).map(|c| JValue::array(c.to_vec())).collect()))
}

/// `$range(start, end, step)`: from `start` towards `end` (included when reached) by `step`.
/// As recorded on AWS: fractions are dropped, and a step of 0 or a missing argument gives
/// nothing (undefined).
fn range(args: &[JValue], _: &Sources) -> Result<JValue, String> {
    arity("range", args, 0, 3)?;
    let (Some(start), Some(end), Some(step)) =
        (truncated("range", args, 1)?, truncated("range", args, 2)?, truncated("range", args, 3)?)
    else {
        return Ok(JValue::Undefined);
    };
    if step == 0 {
        return Ok(JValue::Undefined);
    }
    let span = end - start;
    let count = if span != 0 && (span < 0) != (step < 0) { 0 } else { span / step + 1 };
    if count - 1 > MAX_RANGE_STEPS {
        return Err(format!(
            "The array of $range cannot contain more than {} items, but it would contain {count}",
            MAX_RANGE_STEPS + 1
        ));
    }
    Ok(JValue::array((0..count).map(|k| JValue::Number((start + k * step) as f64)).collect()))
}

/// `$hash(data, algorithm)`: the hex digest of the string `data`.
fn hash(args: &[JValue], _: &Sources) -> Result<JValue, String> {
    arity("hash", args, 2, 2)?;
    let data = match &args[0] {
        JValue::Undefined => return Ok(JValue::Undefined),
        JValue::String(s) => s.as_bytes(),
        _ => return Err(signature_error("hash", 1)),
    };
    let algorithm = match &args[1] {
        JValue::String(s) => &**s,
        _ => return Err(signature_error("hash", 2)),
    };
    match super::intrinsics::hex_digest(algorithm, data) {
        Some(hex) => Ok(JValue::string(hex)),
        // AWS's words and order (recorded; the names are matched exactly, so "sha-256" fails).
        None => Err(format!(
            "D3137: Hash algorithm '{algorithm}' must be one of SHA-1, SHA-384, SHA-256, SHA-512, MD5"
        )),
    }
}

/// `$random()` and `$random(seed)`: a number in [0, 1); the same seed gives the same number.
fn random(args: &[JValue], sources: &Sources) -> Result<JValue, String> {
    arity("random", args, 0, 1)?;
    match args.first() {
        None => Ok(JValue::Number(sources.random.unit())),
        Some(JValue::Number(seed)) if seed.is_finite() => {
            // A seeded draw is java.util.Random's nextDouble, like States.MathRandom's seed.
            let mut java = super::intrinsics::JavaRandom::new(*seed as i64);
            Ok(JValue::Number(java.next_double()))
        }
        Some(_) => Err(signature_error("random", 1)),
    }
}

/// `$uuid()`: a version 4 UUID.
fn uuid(args: &[JValue], sources: &Sources) -> Result<JValue, String> {
    arity("uuid", args, 0, 0)?;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&sources.random.next().to_le_bytes());
    bytes[8..].copy_from_slice(&sources.random.next().to_le_bytes());
    Ok(JValue::string(uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()))
}

/// `$now()`: the time as ISO 8601 text with milliseconds, as jsonata prints it.
fn now(args: &[JValue], sources: &Sources) -> Result<JValue, String> {
    if !args.is_empty() {
        // jsonata-core's own `$now` takes no picture or time zone either.
        return Err("T0410: now() takes no arguments".into());
    }
    Ok(JValue::string(sources.now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
}

/// `$millis()`: the time in milliseconds since the epoch.
fn millis(args: &[JValue], sources: &Sources) -> Result<JValue, String> {
    if !args.is_empty() {
        return Err("T0410: millis() takes no arguments".into());
    }
    Ok(JValue::Number(sources.now.timestamp_millis() as f64))
}

/// `$parse(json)`: the value a JSON string stands for (AWS's stand-in for `$eval`). As
/// recorded on AWS: no argument gives nothing (undefined), and text that is not JSON (the
/// empty string too) fails with "Invalid JSON".
fn parse(args: &[JValue], _: &Sources) -> Result<JValue, String> {
    arity("parse", args, 0, 1)?;
    match args.first() {
        None | Some(JValue::Undefined) => Ok(JValue::Undefined),
        Some(JValue::String(s)) => {
            serde_json::from_str::<Value>(s).map(|v| to_jvalue(&v)).map_err(|_| "D3137: Invalid JSON".into())
        }
        Some(_) => Err(signature_error("parse", 1)),
    }
}

/// What one evaluation's functions read besides their arguments.
struct Sources {
    random: Random,
    now: DateTime<Utc>,
}

/// The randomness of one evaluation: splitmix64 from one seed the interpreter gives, so an
/// evaluation asks [`Bindings::random`] once however often it calls `$random()` or `$uuid()`.
struct Random(Cell<u64>);

impl Random {
    fn new(seed: u64) -> Self {
        Random(Cell::new(seed))
    }

    fn next(&self) -> u64 {
        let state = self.0.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.0.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in [0, 1) from 53 random bits.
    fn unit(&self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The workflow clock the tests' evaluations read.
    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(250)
    }
    use serde_json::json;

    const _: () = {
        const fn shared<T: Send + Sync + Clone>() {}
        shared::<Expr>();
    };

    fn eval_with(text: &str, input: Value, vars: &[(&str, Value)]) -> Result<Value, EvalError> {
        let states = json!({"input": input, "context": {"Execution": {"Id": "arn:x"}}});
        let lookup = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
        let draws = Cell::new(0u64);
        let random = || {
            draws.set(draws.get() + 1);
            0x1234_5678_9ABC_DEF0 ^ draws.get()
        };
        let b = Bindings {
            states: &states,
            variables: &lookup,
            random: &random,
            now: &noon,
            region_partition: "aws",
            memory_bytes: MEMORY_BYTES,
            offload: None,
        };
        compile(text).expect("compiles").eval(&b)
    }

    #[test]
    fn the_arithmetic_fast_path_gives_what_the_engine_gives() {
        // `(expr)` is a block, which always goes through the engine.
        let input = json!({"count": 41, "f": 2.5, "s": "x", "neg": -3});
        for e in [
            "$states.input.count + 1",
            "1 + $states.input.count",
            "$states.input.count - 50",
            "$states.input.f * 2",
            "$states.input.count / 4",
            "$states.input.count % 5",
            "$states.input.count >= 41",
            "$states.input.count < 41",
            "1000 <= $states.input.count",
            "$states.input.count = 41",
            "$states.input.count != 41",
            "$states.input.neg * 1",
            "$states.input.missing + 1",
            "$states.input.s > 1",
            "$states.input.count / 0",
            "$n + 1",
        ] {
            let fast = eval_with(e, input.clone(), &[("n", json!(9))]);
            let engine = eval_with(&format!("({e})"), input.clone(), &[("n", json!(9))]);
            assert_eq!(fast, engine, "{e}");
        }
        assert!(core("$states.input.count + 1").arith.is_some());
        assert!(core("$states.input.count + $x").arith.is_none());
    }

    fn core(text: &str) -> CoreExpr {
        CoreExpr::new(jsonata_core::parser::parse(text).unwrap(), LIMITS)
    }

    fn give(text: &str, input: Value, output: Value) {
        assert_eq!(eval_with(text, input, &[]), Ok(output), "{text}");
    }

    fn fail(text: &str, input: Value, message: &str) {
        match eval_with(text, input, &[]) {
            Err(EvalError::Failed(m)) => assert!(m.contains(message), "{text}: {m:?} lacks {message:?}"),
            other => panic!("{text}: expected a failure with {message:?}, got {other:?}"),
        }
    }

    #[test]
    fn now_and_millis_read_the_workflow_clock() {
        give("$now()", json!({}), json!("2024-05-01T12:00:00.250Z"));
        give("$millis()", json!({}), json!(1_714_564_800_250i64));
        give("$toMillis($now()) = $millis()", json!({}), json!(true));
        give("$now() & ' ' & $states.input.x", json!({"x": 1}), json!("2024-05-01T12:00:00.250Z 1"));
        fail("$now('[Y]')", json!({}), "T0410");
        fail("$millis(1)", json!({}), "T0410");
    }

    #[test]
    fn states_access_and_numbers() {
        give("$states.input.count + 1", json!({"count": 41}), json!(42));
        give("$states.input", json!({"a": [1, 2.5]}), json!({"a": [1, 2.5]}));
        give("$states.input.items[1].id", json!({"items": [{"id": "a"}, {"id": "b"}]}), json!("b"));
        give("$states.input.items.id", json!({"items": [{"id": "a"}, {"id": "b"}]}), json!(["a", "b"]));
        give("$states.context.Execution.Id", json!({}), json!("arn:x"));
        give("$keys($states)", json!({}), json!(["input", "context"]));
        give("$states.input.a.%.b", json!({"a": {"x": 1}, "b": 2}), json!(2));
        give("10 / 4", json!({}), json!(2.5));
        give("2 * 3", json!({}), json!(6));
        give("-0", json!({}), json!(0));
        give("$sum($states.input.v) + 0.5", json!({"v": [1, 2]}), json!(3.5));
        give("[1, 'two', 3]", json!({}), json!([1, "two", 3]));
        give("{'foo': 'bar'}", json!({}), json!({"foo": "bar"}));
        give("[]", json!({}), json!([]));
        give("null", json!({}), json!(null));
        give("$states.input = '\"'", json!("\""), json!(true));
        give("$states.input.value >= 20 and $states.input.value < 30", json!({"value": 25}), json!(true));
        give("$contains('hello$world', /^hello\\$/)", json!({}), json!(true));
        give("1e300 * 10", json!({}), json!(1e301));
        give("9007199254740993", json!({}), json!(9_007_199_254_740_992_i64));
    }

    #[test]
    fn plain_lookups_read_the_value_directly() {
        let e = compile("$states.input.a.b").unwrap();
        assert!(core("$states.input.a.b").lookup.is_some());
        assert!(core("$states.input.a[0]").lookup.is_none());
        assert!(core("$uuid").lookup.is_none());
        assert_eq!(e.text(), "$states.input.a.b");
        give("$states.input.a.b", json!({"a": {"b": [1.0, {"c": 2.50}]}}), json!([1, {"c": 2.5}]));
        give("$states.input.one", json!({"one": [1]}), json!([1]));
        give(
            "$states.input.big",
            json!({"big": 12_345_678_901_234_567_u64}),
            json!(12_345_678_901_234_568_u64),
        );
        // A path that meets an array maps over it: that is the engine's to do.
        give("$states.input.a.b", json!({"a": [{"b": 1}, {"b": 2}]}), json!([1, 2]));
        give("$states.input.a.b", json!({"a": [{"b": 1}]}), json!(1));
        let vars = [("v", json!([{"x": 1}, {"x": 2}])), ("w", json!({"x": null}))];
        assert_eq!(eval_with("$v.x", json!({}), &vars), Ok(json!([1, 2])));
        assert_eq!(eval_with("$w.x", json!({}), &vars), Ok(json!(null)));
        assert_eq!(eval_with("$w.y", json!({}), &vars), Err(EvalError::Undefined));
        assert_eq!(eval_with("$w.x.y", json!({}), &vars), Err(EvalError::Undefined));
        assert_eq!(eval_with("$nothing.x", json!({}), &vars), Err(EvalError::Undefined));
    }

    #[test]
    fn undefined_results() {
        assert_eq!(eval_with("$doesNotExist", json!({}), &[]), Err(EvalError::Undefined));
        assert_eq!(eval_with("$state.input", json!({}), &[]), Err(EvalError::Undefined));
        assert_eq!(eval_with("$states.input.missing", json!({}), &[]), Err(EvalError::Undefined));
        // Inside an object an undefined field is left out, in an array it is skipped.
        give("{'a': $states.input.missing, 'b': 1}", json!({}), json!({"b": 1}));
        give("[$states.input.missing, 1]", json!({}), json!([1]));
    }

    #[test]
    fn variables() {
        let vars = [("varname", json!({"varfield": 7, "other": [1]})), ("n", json!(2))];
        assert_eq!(eval_with("$varname.varfield * $n", json!({}), &vars), Ok(json!(14)));
        assert_eq!(eval_with("$varname", json!({}), &vars), Ok(vars[0].1.clone()));
        assert_eq!(eval_with("$variable := 1", json!({}), &vars), Ok(json!(1)));
        assert_eq!(eval_with("($n := $n + 1; $n)", json!({}), &vars), Ok(json!(3)));
        assert_eq!(
            eval_with("$exists($status) ? 'completed' : 'running'", json!({}), &vars),
            Ok(json!("running"))
        );
        assert_eq!(
            eval_with("$map([1, 2], function($n) { $n * 10 })", json!({}), &vars),
            Ok(json!([10, 20]))
        );
        // A variable named like a function is a value, not the function.
        assert_eq!(eval_with("$hash", json!({}), &[("hash", json!("h"))]), Ok(json!("h")));
    }

    #[test]
    fn only_what_is_read_is_asked_for_and_converted() {
        let asked = std::cell::RefCell::new(Vec::new());
        let lookup = |name: &str| {
            asked.borrow_mut().push(name.to_string());
            Some(json!({"a": 1, "b": {"c": 2}}))
        };
        let states = json!({"input": {"big": [1, 2, 3], "count": 1}, "context": {}});
        let b = Bindings {
            states: &states,
            variables: &lookup,
            random: &|| 0,
            now: &noon,
            region_partition: "aws",
            memory_bytes: MEMORY_BYTES,
            offload: None,
        };
        let e = compile("$x.b.c + $states.input.count + $length($uppercase('a'))").unwrap();
        assert_eq!(e.eval(&b), Ok(json!(4)));
        assert_eq!(*asked.borrow(), ["x"]);
        let CoreExpr { uses, .. } = &core("$states.input.count + $states.input.items[0]");
        let (name, need) = &uses.variables[0];
        assert_eq!(&**name, "states");
        let mut expected = Need::default();
        expected.add(&["input", "count"]);
        expected.add(&["input", "items"]);
        assert_eq!(*need, expected);
        let projected = project(&states, need);
        assert_eq!(to_json(&projected).ok().flatten(), Some(json!({"input": {"count": 1}})));
    }

    #[test]
    fn partition() {
        give(
            "$partition([1, 2, 3, 4, 5, 6, 7, 8, 9], 3)",
            json!({}),
            json!([[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
        );
        // The cases AWS recorded (intrinsic_functions/test_array_jsonata__test_array_partition).
        let cases = [
            (json!([0]), 1, json!([[0]])),
            (json!([0]), 2, json!([[0]])),
            (json!([0, 1]), 1, json!([[0], [1]])),
            (json!([0, 1]), 3, json!([[0, 1]])),
            (json!([0, 1, 2]), 2, json!([[0, 1], [2]])),
            (json!([0, 1, 2]), 4, json!([[0, 1, 2]])),
            (json!([0, 1, 2, 3]), 3, json!([[0, 1, 2], [3]])),
            (json!([0, 1, 2, 3]), 5, json!([[0, 1, 2, 3]])),
        ];
        for (fst, snd, out) in cases {
            give(
                "$partition($states.input.FunctionInput.fst, $states.input.FunctionInput.snd)",
                json!({"FunctionInput": {"fst": fst, "snd": snd}}),
                out,
            );
        }
        give("$partition([], 2)", json!({}), json!([]));
        give(
            "$partition($states.input.items.id, 1)",
            json!({"items": [{"id": 1}, {"id": 2}]}),
            json!([[1], [2]]),
        );
        give("$partition([[1, 2], [3]], 1)[0]", json!({}), json!([[1, 2]]));
        // Recorded on AWS (gabrielmoreira/tiny-asl-machine, Feature.JSONataBuiltins-008 to -015).
        give("$partition([1, 2, 3, 4, 5], 2.6)", json!({}), json!([[1, 2], [3, 4], [5]]));
        assert_eq!(eval_with("$partition([1, 2, 3], 0)", json!({}), &[]), Err(EvalError::Undefined));
        fail("$partition([1, 2, 3], -1)", json!({}), "D3137: Second argument must be zero or greater");
        fail("$partition([1, 2, 3], null)", json!({}), "T0410: Argument 2 of function \"partition\"");
        fail(
            "$partition('not-array', 2)",
            json!({}),
            "T0412: Argument 1 of function \"partition\" must be an array of undefined",
        );
        give("$partition([1, 2, 3])", json!({}), json!([[1, 2, 3]]));
        fail("$partition([1, 2, 3], 2, 99)", json!({}), "T0410: Argument 3 of function \"partition\"");
        fail("$partition([1], 'a')", json!({}), "T0410: Argument 2 of function \"partition\"");
        assert_eq!(eval_with("$partition($states.input.none, 2)", json!({}), &[]), Err(EvalError::Undefined));
    }

    #[test]
    fn range() {
        give("$range(0, 10, 2)", json!({}), json!([0, 2, 4, 6, 8, 10]));
        let expr = "$range($states.input.FunctionInput.fst, $states.input.FunctionInput.snd, \
                    $states.input.FunctionInput.trd)";
        for (fst, snd, trd, out) in [
            (0, 9, 3, json!([0, 3, 6, 9])),
            (0, 10, 3, json!([0, 3, 6, 9])),
            (1, 9, 9, json!([1])),
            (1, 9, 2, json!([1, 3, 5, 7, 9])),
        ] {
            give(expr, json!({"FunctionInput": {"fst": fst, "snd": snd, "trd": trd}}), out);
        }
        give("$range(5, 1, -2)", json!({}), json!([5, 3, 1]));
        give("$range(5, 1, 2)", json!({}), json!([]));
        give("$count($range(1, 1000, 1))", json!({}), json!(1000));
        give("$count($range(1, 1001, 1))", json!({}), json!(1001));
        fail("$range(0, 1001, 1)", json!({}), "more than 1001 items");
        // Recorded on AWS (Feature.JSONataBuiltins-016 to -023): fractions dropped, a step of 0
        // (also after dropping) and a missing step give nothing.
        give("$range(1.4, 5.6, 2.2)", json!({}), json!([1, 3, 5]));
        for expr in ["$range(1, 10, 0)", "$range(1, 10, 0.49)", "$range(1, 5)"] {
            assert_eq!(eval_with(expr, json!({}), &[]), Err(EvalError::Undefined), "{expr}");
        }
        fail("$range('0', 10, 1)", json!({}), "T0410: Argument 1 of function \"range\"");
        fail("$range(1, 5, null)", json!({}), "T0410: Argument 3 of function \"range\"");
        fail("$range(1, 5, 1, 99)", json!({}), "T0410: Argument 4 of function \"range\"");
    }

    #[test]
    fn hash() {
        let input = json!({"s": "input data"});
        give("$hash($states.input.s, 'MD5')", input.clone(), json!("812f45842bc6d66ee14572ce20db8e86"));
        give(
            "$hash($states.input.s, 'SHA-1')",
            input.clone(),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7"),
        );
        give(
            "$hash($states.input.s, 'SHA-256')",
            input.clone(),
            json!("b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
        );
        for (algorithm, hex_len) in [("SHA-384", 96), ("SHA-512", 128)] {
            let out = eval_with(&format!("$hash('x', '{algorithm}')"), json!({}), &[]).unwrap();
            assert_eq!(out.as_str().map(str::len), Some(hex_len), "{algorithm}");
        }
        // AWS's words (recorded, Feature.JSONataBuiltins-027 and -028).
        let words = "D3137: Hash algorithm 'sha-256' must be one of SHA-1, SHA-384, SHA-256, SHA-512, MD5";
        fail("$hash('hello', 'sha-256')", json!({}), words);
        fail("$hash('x', 'SHA-3')", json!({}), "Hash algorithm 'SHA-3' must be one of");
        fail("$hash(1, 'MD5')", json!({}), "T0410: Argument 1 of function \"hash\"");
    }

    #[test]
    fn random_and_uuid() {
        let r = eval_with("$random()", json!({}), &[]).unwrap().as_f64().unwrap();
        assert!((0.0..1.0).contains(&r));
        // Two draws in one evaluation differ; a seed makes the draw java.util.Random's nextDouble:
        // new Random(42).nextDouble() is 0.7275636800328681 and new Random(0) gives
        // 0.730967787376657 (checked with a JDK).
        give("$random() = $random()", json!({}), json!(false));
        give("$random(42)", json!({}), json!(0.727_563_680_032_868_1));
        give("$random($states.input.seed)", json!({"seed": 0}), json!(0.730_967_787_376_657));
        give("$random(-7)", json!({}), json!(0.269_121_809_326_076_1));
        give("$random(7) = $random(7)", json!({}), json!(true));
        fail("$random('fst')", json!({}), "T0410: Argument 1 of function \"random\"");
        let id = eval_with("$uuid()", json!({}), &[]).unwrap();
        let id = uuid::Uuid::parse_str(id.as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 4);
        give("$uuid() = $uuid()", json!({}), json!(false));
        // As in AWS's recording: an unknown function is not a function.
        fail(
            "$randomSeeded($states.input.FunctionInput.fst)",
            json!({}),
            "T1006: Attempted to invoke a non-function",
        );
    }

    #[test]
    fn parse() {
        // The cases AWS recorded (intrinsic_functions/test_json_manipulation_jsonata__test_parse).
        for (text, out) in [
            ("-0", json!(0)),
            ("1", json!(1)),
            ("1.1", json!(1.1)),
            ("true", json!(true)),
            ("\"HelloWorld\"", json!("HelloWorld")),
            ("[1, 2, \"HelloWorld\"]", json!([1, 2, "HelloWorld"])),
            ("{\"Arg1\": 1, \"Arg2\": []}", json!({"Arg1": 1, "Arg2": []})),
            ("null", json!(null)),
        ] {
            give("$parse($states.input.FunctionInput)", json!({"FunctionInput": text}), out);
        }
        // Recorded on AWS (Feature.JSONataBuiltins-033, -034 and -038).
        fail("$parse('{bad json}')", json!({}), "D3137: Invalid JSON");
        fail("$parse('')", json!({}), "D3137: Invalid JSON");
        assert_eq!(eval_with("$parse()", json!({}), &[]), Err(EvalError::Undefined));
        fail("$parse(1)", json!({}), "T0410: Argument 1 of function \"parse\"");
    }

    #[test]
    fn eval_is_removed() {
        fail("$eval('1 + 1')", json!({}), "T1006: Attempted to invoke a non-function");
        assert_eq!(eval_with("$eval", json!({}), &[]), Err(EvalError::Undefined));
        assert_eq!(eval_with("$type($eval)", json!({}), &[]), Err(EvalError::Undefined));
    }

    #[test]
    fn error_codes_as_jsonata_js_prints_them() {
        let cases = [
            ("$undefinedFn()", "T1006: Attempted to invoke a non-function"),
            ("'a' + 1", "T2001: The left side of the \"+\" operator must evaluate to a number"),
            ("1 - 'a'", "T2002: The right side of the \"-\" operator must evaluate to a number"),
            (
                "$single([1, 2])",
                "D3138: The $single() function expected exactly 1 matching result.  Instead it matched more.",
            ),
            ("$error('boom')", "D3137: boom"),
            ("{'a': 1, 'a': 2}", "D1009: Multiple key definitions evaluate to same key: \"a\""),
        ];
        for (text, message) in cases {
            assert_eq!(eval_with(text, json!({}), &[]), Err(EvalError::Failed(message.into())), "{text}");
        }
        assert_eq!(compile("1 +").unwrap_err(), "S0207: Unexpected end of expression");
        assert!(compile("(").is_err());
    }

    #[test]
    fn runaway_expressions_are_stopped() {
        fail("($f := function($n) { $f($n + 1) + 1 }; $f(0))", json!({}), "D1011");
        fail("$count([1..10000000])", json!({}), "D2015");
        let spin = "($f := function($n) { $n > 0 ? $f($n - 1) : 0 }; $f(100000000))";
        let started = std::time::Instant::now();
        fail(spin, json!({}), "D1012");
        assert!(started.elapsed() < std::time::Duration::from_millis(LIMITS.timeout_ms + 2_000));
    }

    #[test]
    fn expressions_are_shared_between_threads() {
        let e = compile("$states.input.n * 2").unwrap();
        assert_eq!(e.text(), "$states.input.n * 2");
        assert_eq!(format!("{e:?}"), "Expr(\"$states.input.n * 2\")");
        std::thread::scope(|s| {
            for n in 0..4 {
                let e = e.clone();
                s.spawn(move || {
                    let states = json!({"input": {"n": n}});
                    let b = Bindings {
                        states: &states,
                        variables: &|_| None,
                        random: &|| 0,
                        now: &noon,
                        region_partition: "aws",
                        memory_bytes: MEMORY_BYTES,
                        offload: None,
                    };
                    assert_eq!(e.eval(&b), Ok(json!(n * 2)));
                });
            }
        });
    }

    /// The cost of one evaluation, compiled once. Run with
    /// `cargo test --release --lib asl::jsonata::tests::cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn cost_of_one_evaluation() {
        let filler: Map<String, Value> =
            (0..200).map(|i| (format!("k{i}"), json!({"v": [i, i, i]}))).collect();
        let vars = |name: &str| (name == "flag").then(|| json!(true));
        for text in ["$states.input.count + 1", "$states.input.count", "$states.input.count > 10 and $flag"] {
            let e = compile(text).unwrap();
            for (label, mut input) in
                [("small input", json!({})), ("200 more fields", Value::Object(filler.clone()))]
            {
                input["count"] = json!(41);
                let states = json!({"input": input, "context": {"Execution": {"Id": "arn"}}});
                let b = Bindings {
                    states: &states,
                    variables: &vars,
                    random: &|| 0,
                    now: &noon,
                    region_partition: "aws",
                    memory_bytes: MEMORY_BYTES,
                    offload: None,
                };
                let expected = e.eval(&b).unwrap();
                let n = 200_000;
                let started = std::time::Instant::now();
                for _ in 0..n {
                    assert_eq!(e.eval(&b).as_ref(), Ok(&expected));
                }
                println!("{text:40} {label:16} {:5} ns per evaluation", started.elapsed().as_nanos() / n);
            }
        }
    }
}
