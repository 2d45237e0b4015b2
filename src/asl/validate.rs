//! The semantic checker of a definition, run before anything else touches it: the CLI's
//! `stepgate validate`, the API's CreateStateMachine and ValidateStateMachineDefinition, and the
//! loader of `workflows/*.asl.json` call it on the raw JSON, before [`super::model`] deserializes
//! it and [`super::compile`] builds a machine. It reports every problem at once, as AWS's
//! ValidateStateMachineDefinition does: AWS's diagnostic code, a message that says what to fix
//! (AWS's own words where AWS has them), and the location as AWS writes it (`/States/Charge/Next`,
//! `/States/C/Choices[0]/Next`). A definition with no ERROR diagnostic compiles.
//!
//! Order: the schema problems of every state in document order (nested machines where they
//! appear), then per machine its transition problems (missing targets, then unreachable states or
//! a missing terminal state), as AWS lists them.

use super::intrinsics;
use super::path::{Path, Root};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{HashSet, VecDeque};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// AWS's code: `SCHEMA_VALIDATION_FAILED`, `MISSING_TRANSITION_TARGET`, ... (see [`code`]).
    pub code: String,
    pub message: String,
    /// Where, as AWS writes it: `/` is the whole definition, `/States/A/Next` a field, arrays
    /// indexed `Choices[0]`, state names unescaped. Empty when AWS gives no location (a missing
    /// terminal state, a JSON syntax error): it is then left out of the serialized form.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub location: String,
}

impl Diagnostic {
    pub fn error(code: &str, message: impl Into<String>, location: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: code.to_string(),
            message: message.into(),
            location: location.into(),
        }
    }

    pub fn warning(code: &str, message: impl Into<String>, location: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message, location) }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `CODE: message at /location`, the form AWS joins into an InvalidDefinition cause.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.location.is_empty() { "null" } else { &self.location };
        write!(f, "{}: {} at {}", self.code, self.message, at)
    }
}

/// The cause of CreateStateMachine's `InvalidDefinition` error, built as AWS builds it from the
/// ERROR diagnostics: `Invalid State Machine Definition: 'CODE: message at /loc, ...'`.
pub fn cause(diagnostics: &[Diagnostic]) -> String {
    let parts: Vec<String> = diagnostics.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect();
    format!("Invalid State Machine Definition: '{}'", parts.join(", "))
}

/// The diagnostic codes, AWS's names.
pub mod code {
    pub const INVALID_JSON_DESCRIPTION: &str = "INVALID_JSON_DESCRIPTION";
    pub const SCHEMA_VALIDATION_FAILED: &str = "SCHEMA_VALIDATION_FAILED";
    pub const MISSING_TRANSITION_TARGET: &str = "MISSING_TRANSITION_TARGET";
    pub const MISSING_END_STATE: &str = "MISSING_END_STATE";
    pub const DUPLICATE_STATE_NAME: &str = "DUPLICATE_STATE_NAME";
    pub const INVALID_STATE_NAME: &str = "INVALID_STATE_NAME";
    pub const DUPLICATE_LABEL_NAME: &str = "DUPLICATE_LABEL_NAME";
    pub const INVALID_LABEL_NAME: &str = "INVALID_LABEL_NAME";
    pub const INVALID_JSONATA_EXPRESSION: &str = "INVALID_JSONATA_EXPRESSION";
    pub const UNSUPPORTED_JSONATA_EXPRESSION: &str = "UNSUPPORTED_JSONATA_EXPRESSION";
    /// Warning: a value that looks like a path in a field whose name lacks `.$`.
    pub const NO_DOLLAR: &str = "NO_DOLLAR";
    /// Warning: `.$` fields inside a Pass state's `Result`, which is never evaluated.
    pub const PASS_RESULT_IS_STATIC: &str = "PASS_RESULT_IS_STATIC";
}

use code::*;

/// What a definition that is not a JSON object gets, in AWS's words.
const NOT_AN_OBJECT: &str = "Definition must be a valid JSON object";

/// A JSON syntax error in a definition's text, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for SyntaxError {}

impl SyntaxError {
    /// The one diagnostic this error is: INVALID_JSON_DESCRIPTION with the line and column, or
    /// AWS's SCHEMA_VALIDATION_FAILED for a text that holds no JSON at all.
    pub fn diagnostic(&self) -> Diagnostic {
        if self.message == NOT_AN_OBJECT {
            Diagnostic::error(SCHEMA_VALIDATION_FAILED, NOT_AN_OBJECT, "")
        } else {
            Diagnostic::error(INVALID_JSON_DESCRIPTION, self.to_string(), "")
        }
    }
}

/// Parses a definition's text. A syntax error says where (`line:column: message`); a blank text is
/// AWS's "Definition must be a valid JSON object".
pub fn parse_text(text: &str) -> Result<Value, SyntaxError> {
    if text.trim().is_empty() {
        return Err(SyntaxError { line: 1, column: 1, message: NOT_AN_OBJECT.to_string() });
    }
    serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        // serde_json appends " at line L column C"; the position is carried separately.
        let message = match full.rfind(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full,
        };
        SyntaxError { line: e.line().max(1), column: e.column().max(1), message }
    })
}

/// STANDARD or EXPRESS: an Express machine refuses activities and `.sync`/`.waitForTaskToken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MachineType {
    #[default]
    Standard,
    Express,
}

/// Every problem of a (STANDARD) definition; empty when it is valid.
pub fn validate(definition: &Value) -> Vec<Diagnostic> {
    validate_for(definition, MachineType::Standard)
}

/// Every problem of a definition for a machine of the given type; empty when it is valid.
pub fn validate_for(definition: &Value, kind: MachineType) -> Vec<Diagnostic> {
    let Some(root) = definition.as_object() else {
        return vec![Diagnostic::error(SCHEMA_VALIDATION_FAILED, NOT_AN_OBJECT, "")];
    };
    let mut c = Checker {
        out: Vec::new(),
        top_lang: Lang::JsonPath,
        express: kind == MachineType::Express,
        names: HashSet::new(),
        labels: HashSet::new(),
        scopes: Vec::new(),
        no_result: false,
    };
    if let Some(q) = root.get("QueryLanguage") {
        c.top_lang = resolve_lang(q);
        c.query_language(q, "/QueryLanguage".into());
    }
    c.scope(root, String::new(), ScopeKind::Machine);
    c.graph();
    shadowing(root, "", &HashSet::new(), &mut c.out);
    c.out
}

/// The variables a machine's states assign (`Assign` of a state, of a Choice rule, of a
/// catcher), by name, with where the first assignment of each is.
fn assigned(machine: &Map<String, Value>, prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(Value::Object(states)) = machine.get("States") else { return out };
    let mut add = |assign: Option<&Value>, at: String| {
        if let Some(Value::Object(a)) = assign {
            for key in a.keys() {
                let name = key.strip_suffix(".$").unwrap_or(key);
                out.push((name.to_string(), at.clone()));
            }
        }
    };
    for (name, state) in states {
        let at = format!("{prefix}/States/{name}");
        add(state.get("Assign"), format!("{at}/Assign"));
        for list in ["Choices", "Catch"] {
            if let Some(Value::Array(items)) = state.get(list) {
                for (i, item) in items.iter().enumerate() {
                    add(item.get("Assign"), format!("{at}/{list}[{i}]/Assign"));
                }
            }
        }
    }
    out
}

/// A Parallel branch or a Map iteration may not assign a variable its outer scopes assign:
/// AWS refuses the definition with "The variable name 'x' was already defined in a parent
/// scope." (recorded for both; the code is not in the recording, and this is a schema check).
fn shadowing(machine: &Map<String, Value>, prefix: &str, outer: &HashSet<String>, out: &mut Vec<Diagnostic>) {
    let own = assigned(machine, prefix);
    for (name, at) in &own {
        if outer.contains(name) {
            out.push(Diagnostic::error(
                SCHEMA_VALIDATION_FAILED,
                format!("The variable name '{name}' was already defined in a parent scope."),
                at.clone(),
            ));
        }
    }
    let Some(Value::Object(states)) = machine.get("States") else { return };
    let mut scope = outer.clone();
    scope.extend(own.into_iter().map(|(name, _)| name));
    for (name, state) in states {
        let at = format!("{prefix}/States/{name}");
        if let Some(Value::Array(branches)) = state.get("Branches") {
            for (i, b) in branches.iter().enumerate() {
                if let Value::Object(b) = b {
                    shadowing(b, &format!("{at}/Branches[{i}]"), &scope, out);
                }
            }
        }
        for key in ["ItemProcessor", "Iterator"] {
            if let Some(Value::Object(p)) = state.get(key) {
                shadowing(p, &format!("{at}/{key}"), &scope, out);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    JsonPath,
    Jsonata,
}

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Lang::JsonPath => "JSONPath",
            Lang::Jsonata => "JSONata",
        }
    }
}

/// AWS resolves a QueryLanguage to JSONPath only on the exact string; any other value present
/// (a wrong case, a number) makes the state JSONata, and is reported on its own.
fn resolve_lang(v: &Value) -> Lang {
    if v.as_str() == Some("JSONPath") {
        Lang::JsonPath
    } else {
        Lang::Jsonata
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeKind {
    Machine,
    Branch,
    ItemProcessor,
    Iterator,
}

/// A `StartAt` + `States` object, kept for the transition checks that follow the schema pass.
struct Scope<'a> {
    prefix: String,
    obj: &'a Map<String, Value>,
    top: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Pass,
    Task,
    Choice,
    Wait,
    Succeed,
    Fail,
    Parallel,
    Map,
}

/// AWS's words for an empty list or object that must hold something (recorded for States,
/// Choices and an empty Or).
const EMPTY: &str = "Value cannot be empty";

/// AWS's words for States.ALL in an ErrorEquals with other errors, or in a retrier or catcher
/// that is not the last (recorded for both).
const STATES_ALL: &str = "States.ALL must appear alone and at end of list";

/// The comparison operators as AWS lists them when a Choice rule has none or several
/// (recorded; the order is AWS's).
const AWS_COMPARISONS: &[&str] = &[
    "StringEquals",
    "IsBoolean",
    "StringLessThan",
    "IsNumeric",
    "BooleanEquals",
    "StringLessThanEqualsPath",
    "NumericLessThan",
    "NumericGreaterThan",
    "NumericLessThanPath",
    "StringMatches",
    "TimestampLessThanEqualsPath",
    "NumericEquals",
    "TimestampGreaterThan",
    "StringGreaterThanEqualsPath",
    "TimestampGreaterThanEqualsPath",
    "TimestampLessThanEquals",
    "NumericLessThanEqualsPath",
    "TimestampEquals",
    "BooleanEqualsPath",
    "IsTimestamp",
    "StringLessThanEquals",
    "NumericLessThanEquals",
    "StringLessThanPath",
    "TimestampGreaterThanPath",
    "StringGreaterThan",
    "StringGreaterThanPath",
    "IsString",
    "StringEqualsPath",
    "TimestampEqualsPath",
    "TimestampLessThan",
    "StringGreaterThanEquals",
    "NumericGreaterThanPath",
    "NumericGreaterThanEquals",
    "NumericEqualsPath",
    "TimestampLessThanPath",
    "IsNull",
    "IsPresent",
    "TimestampGreaterThanEquals",
    "NumericGreaterThanEqualsPath",
];

/// AWS's words when none of `fields` is given where one must be (recorded for a Wait state's
/// timing and a Choice rule's operator).
fn none_of(fields: &[&str]) -> String {
    format!("This object should have only one of the following fields: [{}]", fields.join(", "))
}

/// AWS's words when more than one of `fields` is given.
fn too_many(fields: &[&str]) -> String {
    format!("There should only be one of the following fields: [{}]", fields.join(", "))
}

const TYPE_NAMES: &str = "[Task, Wait, Pass, Succeed, Fail, Choice, Parallel, Map]";

impl Type {
    fn parse(s: &str) -> Option<Type> {
        Some(match s {
            "Pass" => Type::Pass,
            "Task" => Type::Task,
            "Choice" => Type::Choice,
            "Wait" => Type::Wait,
            "Succeed" => Type::Succeed,
            "Fail" => Type::Fail,
            "Parallel" => Type::Parallel,
            "Map" => Type::Map,
            _ => return None,
        })
    }

    /// The fields each state type accepts: in both languages, in JSONPath only, in JSONata only.
    /// `Type`, `Comment` and `QueryLanguage` go everywhere.
    fn fields(self) -> Fields {
        match self {
            Type::Pass => Fields {
                both: &["Next", "End", "Assign"],
                jsonpath: &["InputPath", "OutputPath", "Parameters", "ResultPath", "Result"],
                jsonata: &["Output"],
            },
            Type::Task => Fields {
                both: &[
                    "Next",
                    "End",
                    "Assign",
                    "Resource",
                    "Retry",
                    "Catch",
                    "TimeoutSeconds",
                    "HeartbeatSeconds",
                    "Credentials",
                ],
                jsonpath: &[
                    "InputPath",
                    "OutputPath",
                    "Parameters",
                    "ResultPath",
                    "ResultSelector",
                    "TimeoutSecondsPath",
                    "HeartbeatSecondsPath",
                ],
                jsonata: &["Arguments", "Output"],
            },
            Type::Choice => Fields {
                both: &["Choices", "Default", "Assign"],
                jsonpath: &["InputPath", "OutputPath"],
                jsonata: &["Output"],
            },
            Type::Wait => Fields {
                both: &["Next", "End", "Assign", "Seconds", "Timestamp"],
                jsonpath: &["InputPath", "OutputPath", "SecondsPath", "TimestampPath"],
                jsonata: &["Output"],
            },
            Type::Succeed => {
                Fields { both: &[], jsonpath: &["InputPath", "OutputPath"], jsonata: &["Output"] }
            }
            Type::Fail => {
                Fields { both: &["Error", "Cause"], jsonpath: &["ErrorPath", "CausePath"], jsonata: &[] }
            }
            Type::Parallel => Fields {
                both: &["Next", "End", "Assign", "Branches", "Retry", "Catch"],
                jsonpath: &["InputPath", "OutputPath", "Parameters", "ResultPath", "ResultSelector"],
                jsonata: &["Arguments", "Output"],
            },
            Type::Map => Fields {
                both: &[
                    "Next",
                    "End",
                    "Assign",
                    "ItemProcessor",
                    "Iterator",
                    "ItemSelector",
                    "MaxConcurrency",
                    "ItemReader",
                    "ItemBatcher",
                    "ResultWriter",
                    "ToleratedFailurePercentage",
                    "ToleratedFailureCount",
                    "Label",
                    "Retry",
                    "Catch",
                ],
                jsonpath: &[
                    "InputPath",
                    "OutputPath",
                    "Parameters",
                    "ResultPath",
                    "ResultSelector",
                    "ItemsPath",
                    "MaxConcurrencyPath",
                    "ToleratedFailurePercentagePath",
                    "ToleratedFailureCountPath",
                ],
                jsonata: &["Items", "Output"],
            },
        }
    }
}

struct Fields {
    both: &'static [&'static str],
    jsonpath: &'static [&'static str],
    jsonata: &'static [&'static str],
}

impl Fields {
    fn allows(&self, key: &str, lang: Lang) -> bool {
        self.both.contains(&key)
            || match lang {
                Lang::JsonPath => self.jsonpath.contains(&key),
                Lang::Jsonata => self.jsonata.contains(&key),
            }
    }
}

/// A state's fields as its language sees them: a field of the other language reads as absent
/// (it has been reported already), so its value is not checked a second time.
struct StateView<'a> {
    obj: &'a Map<String, Value>,
    fields: Fields,
    lang: Lang,
    loc: String,
}

impl<'a> StateView<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        if self.fields.allows(key, self.lang) {
            self.obj.get(key)
        } else {
            None
        }
    }

    fn at(&self, key: &str) -> String {
        format!("{}/{key}", self.loc)
    }
}

/// The Choice comparison operators with the type of their operand.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operand {
    String,
    Number,
    Boolean,
    Timestamp,
    Path,
}

const COMPARISONS: &[(&str, Operand)] = &[
    ("StringEquals", Operand::String),
    ("StringLessThan", Operand::String),
    ("StringGreaterThan", Operand::String),
    ("StringLessThanEquals", Operand::String),
    ("StringGreaterThanEquals", Operand::String),
    ("StringMatches", Operand::String),
    ("NumericEquals", Operand::Number),
    ("NumericLessThan", Operand::Number),
    ("NumericGreaterThan", Operand::Number),
    ("NumericLessThanEquals", Operand::Number),
    ("NumericGreaterThanEquals", Operand::Number),
    ("BooleanEquals", Operand::Boolean),
    ("TimestampEquals", Operand::Timestamp),
    ("TimestampLessThan", Operand::Timestamp),
    ("TimestampGreaterThan", Operand::Timestamp),
    ("TimestampLessThanEquals", Operand::Timestamp),
    ("TimestampGreaterThanEquals", Operand::Timestamp),
];

const TESTS: &[&str] = &["IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"];

/// The operand type of a comparison field name, `...Path` forms included.
fn comparison(key: &str) -> Option<Operand> {
    if TESTS.contains(&key) {
        return Some(Operand::Boolean);
    }
    if let Some(base) = key.strip_suffix("Path") {
        if COMPARISONS.iter().any(|(n, _)| *n == base) {
            return Some(Operand::Path);
        }
    }
    COMPARISONS.iter().find(|(n, _)| *n == key).map(|(_, o)| *o)
}

/// AWS's optimized integrations (`arn:aws:states:::service:action`), one row per service. A
/// service named here with an action not listed is refused as AWS refuses it; a service not named
/// here is left alone, so that a connector of this project may bring its own.
const INTEGRATIONS: &[(&str, &[&str])] = &[
    ("lambda", &["invoke"]),
    ("sns", &["publish"]),
    ("sqs", &["sendMessage"]),
    ("dynamodb", &["getItem", "putItem", "updateItem", "deleteItem"]),
    ("states", &["startExecution"]),
    ("events", &["putEvents"]),
    ("http", &["invoke"]),
    ("apigateway", &["invoke"]),
    ("batch", &["submitJob"]),
    ("ecs", &["runTask"]),
    ("glue", &["startJobRun"]),
    ("databrew", &["startJobRun"]),
    ("mediaconvert", &["createJob"]),
    ("bedrock", &["invokeModel", "createModelCustomizationJob"]),
    ("athena", &["startQueryExecution", "stopQueryExecution", "getQueryExecution", "getQueryResults"]),
    (
        "codebuild",
        &[
            "startBuild",
            "stopBuild",
            "batchDeleteBuilds",
            "batchGetReports",
            "startBuildBatch",
            "stopBuildBatch",
            "retryBuildBatch",
            "retryBuild",
            "deleteBuildBatch",
        ],
    ),
    (
        "eks",
        &[
            "createCluster",
            "deleteCluster",
            "createFargateProfile",
            "deleteFargateProfile",
            "createNodegroup",
            "deleteNodegroup",
            "runJob",
            "call",
        ],
    ),
    (
        "elasticmapreduce",
        &[
            "createCluster",
            "terminateCluster",
            "addStep",
            "cancelStep",
            "setClusterTerminationProtection",
            "modifyInstanceFleetByName",
            "modifyInstanceGroupByName",
        ],
    ),
    ("emr-containers", &["startJobRun", "createVirtualCluster", "deleteVirtualCluster"]),
    (
        "emr-serverless",
        &[
            "createApplication",
            "startApplication",
            "stopApplication",
            "deleteApplication",
            "startJobRun",
            "cancelJobRun",
        ],
    ),
    (
        "sagemaker",
        &[
            "createTrainingJob",
            "createTransformJob",
            "createModel",
            "createEndpointConfig",
            "createEndpoint",
            "updateEndpoint",
            "createHyperParameterTuningJob",
            "createLabelingJob",
            "createProcessingJob",
            "startPipelineExecution",
        ],
    ),
];

/// The upper bound AWS puts on most second counts (and the default Task timeout).
const MAX_SECONDS: i64 = 99_999_999;

/// Characters AWS refuses in a Map Label (besides control characters).
const LABEL_FORBIDDEN: &str = " <>{}[]?*\"#%\\^|~`$&,;:/";

fn expected(kind: &str) -> String {
    format!("Expected value of type [{kind}]")
}

/// A field of the other query language on a state (or rule, catcher) of `lang`.
fn wrong_language(lang: Lang, key: &str) -> String {
    let other = match lang {
        Lang::JsonPath => Lang::Jsonata,
        Lang::Jsonata => Lang::JsonPath,
    };
    format!(
        "The QueryLanguage is set to '{}', but field '{key}' is only supported for the '{}' QueryLanguage",
        lang.name(),
        other.name()
    )
}

fn not_supported(key: &str) -> String {
    format!("Field '{key}' is not supported")
}

fn required(keys: &[&str]) -> String {
    format!("These fields are required: [{}]", keys.join(", "))
}

fn one_of(values: &[&str]) -> String {
    format!("Value should be one of the following: [{}]", values.join(", "))
}

/// The root is `/`; every other place is its pointer.
fn here(prefix: &str) -> String {
    if prefix.is_empty() {
        "/".to_string()
    } else {
        prefix.to_string()
    }
}

/// The expression inside `{% ... %}`, when the string is one.
fn expression(s: &str) -> Option<&str> {
    if s.len() >= 4 {
        s.strip_prefix("{%")?.strip_suffix("%}")
    } else {
        None
    }
}

/// A state that ends its machine. `"End": true` counts only on a state that has a Type: AWS
/// finds no terminal state in `{"First": {"End": true}}`, but does in `{"First": {"Type":
/// "Nope", "End": true}}`, where it reports the Type alone (both recorded).
fn is_terminal(state: &Value) -> bool {
    matches!(state.get("Type").and_then(Value::as_str), Some("Succeed" | "Fail"))
        || state.get("End") == Some(&Value::Bool(true)) && state.get("Type").is_some()
}

/// A path or an intrinsic call, as a `.$` field, ErrorPath or CausePath may hold. A call's
/// arguments are not judged here: AWS accepts a call given the wrong number or kind of
/// arguments (`States.MathAdd('-1', 2)`) and fails its state when it runs.
fn path_or_call(s: &str) -> bool {
    if intrinsics::is_call(s) {
        intrinsics::parse(s).is_ok()
    } else {
        Path::parse(s).is_ok()
    }
}

struct Checker<'a> {
    out: Vec<Diagnostic>,
    top_lang: Lang,
    express: bool,
    names: HashSet<&'a str>,
    labels: HashSet<&'a str>,
    scopes: Vec<Scope<'a>>,
    /// The state being checked has no result (Pass, Choice, Wait, Succeed, Fail): AWS refuses
    /// `$states.result` in its expressions (recorded for a Pass state's Output).
    no_result: bool,
}

impl<'a> Checker<'a> {
    fn error(&mut self, code: &str, message: impl Into<String>, location: impl Into<String>) {
        self.out.push(Diagnostic::error(code, message, location));
    }

    fn schema(&mut self, message: impl Into<String>, location: impl Into<String>) {
        self.error(SCHEMA_VALIDATION_FAILED, message, location);
    }

    fn warning(&mut self, code: &str, message: impl Into<String>, location: impl Into<String>) {
        self.out.push(Diagnostic::warning(code, message, location));
    }

    fn query_language(&mut self, v: &Value, loc: String) {
        match v.as_str() {
            Some("JSONPath" | "JSONata") => {}
            Some(_) => self.schema(one_of(&["JSONPath", "JSONata"]), loc),
            None => self.schema(expected("STRING"), loc),
        }
    }

    /// A machine, a Parallel branch or a Map's processor: `StartAt` and `States`.
    fn scope(&mut self, obj: &'a Map<String, Value>, prefix: String, kind: ScopeKind) {
        let at = here(&prefix);
        for key in obj.keys() {
            let ok = match key.as_str() {
                "StartAt" | "States" | "Comment" => true,
                "Version" | "TimeoutSeconds" | "QueryLanguage" => kind == ScopeKind::Machine,
                "ProcessorConfig" => matches!(kind, ScopeKind::ItemProcessor | ScopeKind::Iterator),
                _ => false,
            };
            if !ok {
                self.schema(not_supported(key), at.clone());
            }
        }
        let missing: Vec<&str> =
            ["States", "StartAt"].into_iter().filter(|k| !obj.contains_key(*k)).collect();
        if !missing.is_empty() {
            self.schema(required(&missing), at.clone());
        }
        if kind == ScopeKind::Machine {
            if let Some(v) = obj.get("Version") {
                if v.as_str() != Some("1.0") {
                    self.schema(one_of(&["1.0"]), format!("{prefix}/Version"));
                }
            }
            if let Some(v) = obj.get("TimeoutSeconds") {
                self.int_in(v, format!("{prefix}/TimeoutSeconds"), 1, MAX_SECONDS);
            }
        }
        if let Some(v) = obj.get("Comment") {
            if !v.is_string() {
                self.schema(expected("STRING"), format!("{prefix}/Comment"));
            }
        }
        if let Some(v) = obj.get("StartAt") {
            if !v.is_string() {
                self.schema(expected("STRING"), format!("{prefix}/StartAt"));
            }
        }
        if matches!(kind, ScopeKind::ItemProcessor | ScopeKind::Iterator) {
            if let Some(v) = obj.get("ProcessorConfig") {
                self.processor_config(v, format!("{prefix}/ProcessorConfig"));
            }
        }
        match obj.get("States") {
            Some(Value::Object(states)) => {
                if states.is_empty() {
                    self.schema(EMPTY, format!("{prefix}/States"));
                }
                self.scopes.push(Scope { prefix: prefix.clone(), obj, top: kind == ScopeKind::Machine });
                for (name, state) in states {
                    let loc = format!("{prefix}/States/{name}");
                    self.state_name(name, &loc);
                    self.state(state, loc);
                }
            }
            Some(_) => self.schema(expected("OBJECT"), format!("{prefix}/States")),
            None => {}
        }
    }

    fn state_name(&mut self, name: &'a str, loc: &str) {
        let len = name.chars().count();
        if len == 0 {
            self.error(INVALID_STATE_NAME, "A state name must not be empty", loc);
        } else if len > 80 {
            self.error(
                INVALID_STATE_NAME,
                format!("State name '{name}' is {len} characters long; AWS allows at most 80"),
                loc,
            );
        }
        if !self.names.insert(name) {
            self.error(
                DUPLICATE_STATE_NAME,
                format!(
                    "Duplicate State name: {name}. State names must be unique in the whole state machine, \
                     Parallel branches and Map processors included"
                ),
                loc,
            );
        }
    }

    fn state(&mut self, v: &'a Value, loc: String) {
        let Some(obj) = v.as_object() else {
            self.schema(expected("OBJECT"), loc);
            return;
        };
        let ty = match obj.get("Type") {
            None => {
                self.schema("The field 'Type' is required", loc);
                return;
            }
            Some(Value::String(s)) => match Type::parse(s) {
                Some(t) => t,
                None => {
                    self.schema(
                        format!("The field 'Type' should have one of these values: {TYPE_NAMES}"),
                        format!("{loc}/Type"),
                    );
                    return;
                }
            },
            Some(_) => {
                self.schema(expected("STRING"), format!("{loc}/Type"));
                return;
            }
        };
        let declared = obj.get("QueryLanguage");
        let lang = declared.map_or(self.top_lang, resolve_lang);
        // A state of a JSONata machine cannot go back to JSONPath; AWS then reports that alone
        // and not the fields the state's own language would refuse.
        let downgraded = self.top_lang == Lang::Jsonata && lang == Lang::JsonPath;
        if downgraded {
            self.schema(
                "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
                &loc,
            );
        }
        let fields = ty.fields();
        for key in obj.keys() {
            let key = key.as_str();
            if matches!(key, "Type" | "Comment" | "QueryLanguage") || fields.both.contains(&key) {
                continue;
            }
            let (mine, other) = match lang {
                Lang::JsonPath => (fields.jsonpath, fields.jsonata),
                Lang::Jsonata => (fields.jsonata, fields.jsonpath),
            };
            if mine.contains(&key) {
                continue;
            }
            if other.contains(&key) {
                if !downgraded {
                    self.schema(wrong_language(lang, key), &loc);
                }
                continue;
            }
            self.schema(not_supported(key), &loc);
        }
        if let Some(q) = declared {
            self.query_language(q, format!("{loc}/QueryLanguage"));
        }
        if let Some(c) = obj.get("Comment") {
            if !c.is_string() {
                self.schema(expected("STRING"), format!("{loc}/Comment"));
            }
        }
        let s = StateView { obj, fields, lang, loc };
        // A Map or Parallel state's own fields are checked after the states inside it, which set
        // this for themselves: it is put back at the end.
        let no_result = matches!(ty, Type::Pass | Type::Choice | Type::Wait | Type::Succeed | Type::Fail);
        let outer = std::mem::replace(&mut self.no_result, no_result);
        if matches!(ty, Type::Pass | Type::Task | Type::Wait | Type::Parallel | Type::Map) {
            self.transition(&s);
        }
        self.io(&s);
        match ty {
            Type::Pass => self.pass(&s),
            Type::Task => self.task(&s),
            Type::Choice => self.choice(&s),
            Type::Wait => self.wait(&s),
            Type::Succeed => {}
            Type::Fail => self.fail(&s),
            Type::Parallel => self.parallel(&s),
            Type::Map => self.map(&s),
        }
        if let Some(v) = s.get("Retry") {
            self.retry(v, s.at("Retry"));
        }
        if let Some(v) = s.get("Catch") {
            self.catch(v, s.at("Catch"), lang);
        }
        if let Some(v) = s.get("Assign") {
            self.assign(v, s.at("Assign"), lang, false);
        }
        self.no_result = outer;
    }

    /// Exactly one of `Next` and `"End": true`.
    fn transition(&mut self, s: &StateView<'a>) {
        let next = s.obj.get("Next");
        let end = s.obj.get("End");
        if let Some(n) = next {
            if !n.is_string() {
                self.schema(expected("STRING"), s.at("Next"));
            }
        }
        if let Some(e) = end {
            if !e.is_boolean() {
                self.schema(expected("BOOLEAN"), s.at("End"));
            }
        }
        let ends = end == Some(&Value::Bool(true));
        match (next.is_some(), ends) {
            (true, true) => self.schema(too_many(&["Next", "End"]), &s.loc),
            (false, false) => self.schema(none_of(&["Next", "End"]), &s.loc),
            _ => {}
        }
    }

    /// The input/output fields every state type shares.
    fn io(&mut self, s: &StateView<'a>) {
        for key in ["InputPath", "OutputPath"] {
            if let Some(v) = s.get(key) {
                self.path(v, s.at(key), key, true);
            }
        }
        if let Some(v) = s.get("ResultPath") {
            self.result_path(v, s.at("ResultPath"));
        }
        if let Some(v) = s.get("Parameters") {
            self.template(v, &s.at("Parameters"), true);
        }
        if let Some(v) = s.get("ResultSelector") {
            if v.is_object() {
                self.template(v, &s.at("ResultSelector"), true);
            } else {
                self.schema(expected("OBJECT"), s.at("ResultSelector"));
            }
        }
        for key in ["Arguments", "Output"] {
            if let Some(v) = s.get(key) {
                self.jsonata_value(v, &s.at(key), false);
            }
        }
    }

    fn pass(&mut self, s: &StateView<'a>) {
        if let Some(v) = s.get("Result") {
            if has_dollar_key(v) {
                self.warning(
                    PASS_RESULT_IS_STATIC,
                    "A Pass state's Result is returned as written: its '.$' fields are not evaluated. Move \
                     them to Parameters to evaluate them",
                    s.at("Result"),
                );
            }
        }
    }

    fn task(&mut self, s: &StateView<'a>) {
        match s.obj.get("Resource") {
            None => self.schema(required(&["Resource"]), &s.loc),
            Some(Value::String(r)) => self.resource(r, s.at("Resource"), s.lang),
            Some(_) => self.schema(expected("STRING"), s.at("Resource")),
        }
        let timeout = self.seconds(s, "TimeoutSeconds");
        let heartbeat = self.seconds(s, "HeartbeatSeconds");
        if let Some(hb) = heartbeat {
            let limit = timeout.unwrap_or(MAX_SECONDS);
            if hb >= limit {
                self.schema(
                    format!(
                        "HeartbeatSeconds ({hb}) must be smaller than TimeoutSeconds ({limit}{})",
                        if timeout.is_none() { ", the default" } else { "" }
                    ),
                    s.at("HeartbeatSeconds"),
                );
            }
        }
        if let Some(v) = s.get("Credentials") {
            self.credentials(v, s.at("Credentials"), s.lang);
        }
    }

    /// `TimeoutSeconds`/`HeartbeatSeconds` and their `...Path`; the static value when there is one.
    fn seconds(&mut self, s: &StateView<'a>, key: &str) -> Option<i64> {
        let path_key = format!("{key}Path");
        let value = s.get(key);
        let path = s.get(&path_key);
        if value.is_some() && path.is_some() {
            self.schema(
                format!("Fields '{key}' and '{path_key}' cannot be used together: keep one"),
                s.at(key),
            );
        }
        if let Some(p) = path {
            self.reference_path(p, s.at(&path_key), &path_key);
        }
        let v = value?;
        if s.lang == Lang::Jsonata && v.is_string() {
            self.jsonata_value(v, &s.at(key), false);
            return None;
        }
        self.int_in(v, s.at(key), 1, MAX_SECONDS)
    }

    fn credentials(&mut self, v: &'a Value, loc: String, lang: Lang) {
        let Some(o) = v.as_object() else {
            self.schema(expected("OBJECT"), loc);
            return;
        };
        if !(o.contains_key("RoleArn") || lang == Lang::JsonPath && o.contains_key("RoleArn.$")) {
            self.schema("The field 'RoleArn' is required but was missing", &loc);
        }
        match lang {
            Lang::JsonPath => self.template(v, &loc, false),
            Lang::Jsonata => self.jsonata_value(v, &loc, false),
        }
    }

    /// A Task's Resource: an ARN AWS knows (or a JSONata expression in a JSONata state).
    fn resource(&mut self, r: &str, loc: String, lang: Lang) {
        if lang == Lang::Jsonata && r.starts_with("{%") {
            self.jsonata_string(r, &loc, false);
            return;
        }
        let parts: Vec<&str> = r.split(':').collect();
        let unknown = |r: &str| {
            format!(
                "The resource provided {r} is not recognized. The value is not a valid resource ARN, or the \
                 resource is not available in this region."
            )
        };
        if parts.len() < 6 || parts[0] != "arn" || parts[1].is_empty() || parts[2].is_empty() {
            self.schema(unknown(r), loc);
            return;
        }
        let masked = format!("arn:<partition>:{}", parts[2..].join(":"));
        match (parts[2], parts[5]) {
            ("states", "activity") if self.express => {
                self.schema("Express state machine does not support Activity ARN", loc);
            }
            ("states", "activity") => {}
            ("states", service) if parts[3].is_empty() && parts[4].is_empty() => {
                let rest = parts[6..].join(":");
                let action = rest.split('.').next().unwrap_or("");
                let condition = &rest[action.len()..];
                let known = INTEGRATIONS.iter().find(|(name, _)| *name == service);
                let bad_action =
                    action.is_empty() || known.is_some_and(|(_, actions)| !actions.contains(&action));
                if bad_action || !matches!(condition, "" | ".sync" | ".sync:2" | ".waitForTaskToken") {
                    self.schema(unknown(&masked), loc);
                } else if self.express && condition.starts_with(".sync") {
                    self.schema("Express state machine does not support '.sync' service integration", loc);
                } else if self.express && condition == ".waitForTaskToken" {
                    // AWS's message carries this trailing space before " at".
                    self.schema(
                        "Express state machine does not support '.waitForTaskToken' service integration ",
                        loc,
                    );
                }
            }
            ("lambda", "function") => {
                let name_ok = |s: &str| {
                    !s.is_empty()
                        && s.len() <= 64
                        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                };
                let ok = match &parts[6..] {
                    [name] => name_ok(name),
                    [name, qualifier] => name_ok(name) && (*qualifier == "$LATEST" || name_ok(qualifier)),
                    _ => false,
                };
                if !ok {
                    self.schema(unknown(&masked), loc);
                }
            }
            _ => {}
        }
    }

    fn choice(&mut self, s: &StateView<'a>) {
        match s.get("Choices") {
            None => self.schema(required(&["Choices"]), &s.loc),
            Some(Value::Array(rules)) if rules.is_empty() => {
                self.schema(EMPTY, s.at("Choices"));
            }
            Some(Value::Array(rules)) => {
                for (i, rule) in rules.iter().enumerate() {
                    self.choice_rule(rule, format!("{}/Choices[{i}]", s.loc), s.lang, true);
                }
            }
            Some(_) => self.schema(expected("ARRAY"), s.at("Choices")),
        }
        if let Some(d) = s.get("Default") {
            if !d.is_string() {
                self.schema(expected("STRING"), s.at("Default"));
            }
        }
    }

    fn choice_rule(&mut self, v: &'a Value, loc: String, lang: Lang, top: bool) {
        let Some(o) = v.as_object() else {
            self.schema(expected("OBJECT"), loc);
            return;
        };
        match o.get("Next") {
            Some(n) if top && !n.is_string() => self.schema(expected("STRING"), format!("{loc}/Next")),
            Some(_) if !top => {
                self.schema(
                    "Only a top-level Choice rule can have 'Next': remove it from this nested rule",
                    &loc,
                );
            }
            None if top => self.schema(required(&["Next"]), &loc),
            _ => {}
        }
        match o.get("Assign") {
            Some(a) if top => self.assign(a, format!("{loc}/Assign"), lang, false),
            Some(_) => self.schema(not_supported("Assign"), &loc),
            None => {}
        }
        let is_jsonpath_key =
            |k: &str| matches!(k, "Variable" | "And" | "Or" | "Not") || comparison(k).is_some();
        let is_jsonata_key = |k: &str| matches!(k, "Condition" | "Output");
        for key in o.keys() {
            let k = key.as_str();
            if matches!(k, "Next" | "Comment" | "Assign") {
                continue;
            }
            let (mine, other) = match lang {
                Lang::JsonPath => (is_jsonpath_key(k), is_jsonata_key(k)),
                Lang::Jsonata => (is_jsonata_key(k), is_jsonpath_key(k)),
            };
            if mine && (top || k != "Output") {
                continue;
            }
            if other {
                self.schema(wrong_language(lang, k), &loc);
            } else {
                self.schema(not_supported(k), &loc);
            }
        }
        if lang == Lang::Jsonata {
            match o.get("Condition") {
                None => self.schema(required(&["Condition"]), &loc),
                Some(Value::Bool(_)) => {}
                Some(Value::String(c)) if c.starts_with("{%") => {
                    self.jsonata_string(c, &format!("{loc}/Condition"), false);
                }
                Some(_) => self.schema(
                    "The field 'Condition' must be a JSONata expression written '{% ... %}', or true or \
                     false",
                    format!("{loc}/Condition"),
                ),
            }
            if let Some(out) = o.get("Output").filter(|_| top) {
                self.jsonata_value(out, &format!("{loc}/Output"), false);
            }
            return;
        }
        let ops: Vec<&str> = o
            .keys()
            .map(String::as_str)
            .filter(|k| matches!(*k, "And" | "Or" | "Not") || comparison(k).is_some())
            .collect();
        match ops.len() {
            0 => {
                self.schema(none_of(AWS_COMPARISONS), &loc);
                return;
            }
            1 => {}
            _ => {
                self.schema(too_many(AWS_COMPARISONS), &loc);
                return;
            }
        }
        let op = ops[0];
        match op {
            "And" | "Or" => match o.get(op) {
                Some(Value::Array(rules)) if !rules.is_empty() => {
                    for (i, rule) in rules.iter().enumerate() {
                        self.choice_rule(rule, format!("{loc}/{op}[{i}]"), lang, false);
                    }
                }
                Some(Value::Array(_)) => {
                    self.schema(EMPTY, format!("{loc}/{op}"));
                }
                _ => self.schema(expected("ARRAY"), format!("{loc}/{op}")),
            },
            "Not" => self.choice_rule(&o["Not"], format!("{loc}/Not"), lang, false),
            _ => {
                match o.get("Variable") {
                    None => self.schema(required(&["Variable"]), &loc),
                    Some(Value::String(p)) if Path::parse(p).is_ok() => {}
                    Some(Value::String(p)) if !p.starts_with('$') => self.schema(
                        "Value is not a Reference Path: Reference path didn't start with '$'",
                        format!("{loc}/Variable"),
                    ),
                    Some(_) => self.schema(
                        "The value for the field 'Variable' must be a valid JSONPath",
                        format!("{loc}/Variable"),
                    ),
                }
                let v = &o[op];
                let at = format!("{loc}/{op}");
                match comparison(op) {
                    Some(Operand::String) if !v.is_string() => self.schema(expected("STRING"), at),
                    Some(Operand::Number) if !v.is_number() => self.schema(expected("NUMBER"), at),
                    Some(Operand::Boolean) if !v.is_boolean() => self.schema(expected("BOOLEAN"), at),
                    Some(Operand::Timestamp) => self.timestamp(v, at),
                    Some(Operand::Path) => self.path(v, at, op, false),
                    _ => {}
                }
            }
        }
        if matches!(op, "And" | "Or" | "Not") && o.contains_key("Variable") {
            self.schema(
                format!("A rule with '{op}' takes no 'Variable': move it into the inner rules"),
                &loc,
            );
        }
    }

    fn wait(&mut self, s: &StateView<'a>) {
        let present: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
            .into_iter()
            .filter(|k| s.obj.contains_key(*k))
            .collect();
        const TIMING: &[&str] = &["SecondsPath", "Seconds", "TimestampPath", "Timestamp"];
        match present.len() {
            0 => self.schema(none_of(TIMING), &s.loc),
            1 => {}
            _ => self.schema(too_many(TIMING), &s.loc),
        }
        if let Some(v) = s.get("Seconds") {
            if s.lang == Lang::Jsonata && v.is_string() {
                self.jsonata_value(v, &s.at("Seconds"), false);
            } else {
                self.int_in(v, s.at("Seconds"), 0, MAX_SECONDS);
            }
        }
        if let Some(v) = s.get("Timestamp") {
            match v.as_str() {
                Some(t) if s.lang == Lang::Jsonata && t.starts_with("{%") => {
                    self.jsonata_string(t, &s.at("Timestamp"), false);
                }
                _ => self.timestamp(v, s.at("Timestamp")),
            }
        }
        for key in ["SecondsPath", "TimestampPath"] {
            if let Some(v) = s.get(key) {
                self.reference_path(v, s.at(key), key);
            }
        }
    }

    fn timestamp(&mut self, v: &Value, loc: String) {
        match v.as_str() {
            Some(t) if super::choice::timestamp(t).is_some() => {}
            Some(_) => self.schema("String does not match RFC3339 timestamp", loc),
            None => self.schema(expected("STRING"), loc),
        }
    }

    fn fail(&mut self, s: &StateView<'a>) {
        for (key, path_key) in [("Error", "ErrorPath"), ("Cause", "CausePath")] {
            if s.obj.contains_key(key) && s.get(path_key).is_some() {
                self.schema(
                    format!("Fields '{key}' and '{path_key}' cannot be used together: keep one"),
                    &s.loc,
                );
            }
            if let Some(v) = s.get(key) {
                match (s.lang, v) {
                    (Lang::Jsonata, Value::String(_)) => self.jsonata_value(v, &s.at(key), false),
                    (_, Value::String(_)) => {}
                    _ => self.schema(expected("STRING"), s.at(key)),
                }
            }
            if let Some(v) = s.get(path_key) {
                self.dynamic(v, path_key, s.at(path_key));
            }
        }
    }

    fn parallel(&mut self, s: &StateView<'a>) {
        match s.get("Branches") {
            None => self.schema(required(&["Branches"]), &s.loc),
            Some(Value::Array(branches)) if branches.is_empty() => {
                self.schema(EMPTY, s.at("Branches"));
            }
            Some(Value::Array(branches)) => {
                for (i, b) in branches.iter().enumerate() {
                    let loc = format!("{}/Branches[{i}]", s.loc);
                    match b.as_object() {
                        Some(obj) => self.scope(obj, loc, ScopeKind::Branch),
                        None => self.schema(expected("OBJECT"), loc),
                    }
                }
            }
            Some(_) => self.schema(expected("ARRAY"), s.at("Branches")),
        }
    }

    fn map(&mut self, s: &StateView<'a>) {
        match (s.get("ItemProcessor"), s.get("Iterator")) {
            (None, None) => self.schema(required(&["ItemProcessor"]), &s.loc),
            (Some(_), Some(_)) => {
                self.schema(
                    "Fields 'ItemProcessor' and 'Iterator' cannot be used together: keep ItemProcessor",
                    &s.loc,
                );
            }
            (Some(p), None) => match p.as_object() {
                Some(obj) => self.scope(obj, s.at("ItemProcessor"), ScopeKind::ItemProcessor),
                None => self.schema(expected("OBJECT"), s.at("ItemProcessor")),
            },
            (None, Some(p)) => match p.as_object() {
                Some(obj) => self.scope(obj, s.at("Iterator"), ScopeKind::Iterator),
                None => self.schema(expected("OBJECT"), s.at("Iterator")),
            },
        }
        if let Some(v) = s.get("ItemsPath") {
            self.path(v, s.at("ItemsPath"), "ItemsPath", false);
        }
        if let Some(v) = s.get("Items") {
            match v {
                Value::Array(_) => self.jsonata_value(v, &s.at("Items"), false),
                Value::String(e) if e.starts_with("{%") => self.jsonata_string(e, &s.at("Items"), false),
                _ => self.schema(
                    "The field 'Items' must be an array or a JSONata expression written '{% ... %}'",
                    s.at("Items"),
                ),
            }
        }
        if let Some(v) = s.get("ItemSelector") {
            if s.get("Parameters").is_some() {
                self.schema(
                    "Fields 'ItemSelector' and 'Parameters' cannot be used together: keep ItemSelector",
                    &s.loc,
                );
            }
            match s.lang {
                Lang::JsonPath => self.template(v, &s.at("ItemSelector"), true),
                Lang::Jsonata => self.jsonata_value(v, &s.at("ItemSelector"), false),
            }
        }
        self.count_or_path(s, "MaxConcurrency", 0, i64::MAX);
        self.count_or_path(s, "ToleratedFailureCount", 0, i64::MAX);
        let pct = "ToleratedFailurePercentage";
        if let Some(v) = s.get(pct) {
            if s.lang == Lang::Jsonata && v.is_string() {
                self.jsonata_value(v, &s.at(pct), false);
            } else {
                match v.as_f64() {
                    None => self.schema(expected("NUMBER"), s.at(pct)),
                    Some(n) if n < 0.0 => self.schema("Minimum value is 0", s.at(pct)),
                    Some(n) if n > 100.0 => self.schema("Maximum value is 100", s.at(pct)),
                    Some(_) => {}
                }
            }
        }
        let pct_path = "ToleratedFailurePercentagePath";
        if let Some(p) = s.get(pct_path) {
            if s.obj.contains_key(pct) {
                self.schema(
                    format!("Fields '{pct}' and '{pct_path}' cannot be used together: keep one"),
                    s.at(pct),
                );
            }
            self.reference_path(p, s.at(pct_path), pct_path);
        }
        if let Some(v) = s.get("ItemBatcher") {
            self.item_batcher(v, s.at("ItemBatcher"), s.lang);
        }
        if let Some(v) = s.get("ItemReader") {
            self.item_reader(v, s.at("ItemReader"), s.lang);
        }
        if let Some(v) = s.get("ResultWriter") {
            self.result_writer(v, s.at("ResultWriter"), s.lang);
        }
        if let Some(v) = s.get("Label") {
            self.label(v, s.at("Label"));
        }
    }

    /// `MaxConcurrency`-like fields: a count (or a JSONata expression) or its `...Path`, not both.
    fn count_or_path(&mut self, s: &StateView<'a>, key: &str, min: i64, max: i64) {
        let path_key = format!("{key}Path");
        if let Some(v) = s.get(key) {
            if s.obj.contains_key(&path_key) {
                self.schema(
                    format!("Fields '{key}' and '{path_key}' cannot be used together: keep one"),
                    s.at(key),
                );
            }
            if s.lang == Lang::Jsonata && v.is_string() {
                self.jsonata_value(v, &s.at(key), false);
            } else {
                self.int_in(v, s.at(key), min, max);
            }
        }
        if let Some(p) = s.get(&path_key) {
            self.reference_path(p, s.at(&path_key), &path_key);
        }
    }

    fn processor_config(&mut self, v: &Value, loc: String) {
        let Some(o) = v.as_object() else {
            self.schema(expected("OBJECT"), loc);
            return;
        };
        for key in o.keys() {
            if !matches!(key.as_str(), "Mode" | "ExecutionType") {
                self.schema(not_supported(key), &loc);
            }
        }
        let mode = o.get("Mode");
        if let Some(m) = mode {
            if !matches!(m.as_str(), Some("INLINE" | "DISTRIBUTED")) {
                self.schema(one_of(&["INLINE", "DISTRIBUTED"]), format!("{loc}/Mode"));
            }
        }
        match o.get("ExecutionType") {
            Some(t) if !matches!(t.as_str(), Some("STANDARD" | "EXPRESS")) => {
                self.schema(one_of(&["STANDARD", "EXPRESS"]), format!("{loc}/ExecutionType"));
            }
            None if mode.and_then(Value::as_str) == Some("DISTRIBUTED") => {
                self.schema(required(&["ExecutionType"]), &loc);
            }
            _ => {}
        }
    }

    fn item_batcher(&mut self, v: &'a Value, loc: String, lang: Lang) {
        let Some(o) = v.as_object() else {
            self.schema(expected("OBJECT"), loc);
            return;
        };
        let pairs = [("MaxItemsPerBatch", 1, i64::MAX), ("MaxInputBytesPerBatch", 1, 262_144)];
        for key in o.keys() {
            let k = key.as_str();
            let base = k.strip_suffix("Path").unwrap_or(k);
            let known = k == "BatchInput" || pairs.iter().any(|(n, ..)| *n == base);
            if !known {
                self.schema(not_supported(k), &loc);
            } else if k.ends_with("Path") && lang == Lang::Jsonata {
                self.schema(wrong_language(lang, k), &loc);
            }
        }
        if !pairs.iter().any(|(n, ..)| o.contains_key(*n) || o.contains_key(&format!("{n}Path"))) {
            self.schema(
                "An ItemBatcher needs at least one of MaxItemsPerBatch, MaxInputBytesPerBatch or their \
                 ...Path fields",
                &loc,
            );
        }
        for (key, min, max) in pairs {
            let path_key = format!("{key}Path");
            if let Some(v) = o.get(key) {
                if o.contains_key(&path_key) {
                    self.schema(
                        format!("Fields '{key}' and '{path_key}' cannot be used together: keep one"),
                        &loc,
                    );
                }
                if lang == Lang::Jsonata && v.is_string() {
                    self.jsonata_value(v, &format!("{loc}/{key}"), false);
                } else {
                    self.int_in(v, format!("{loc}/{key}"), min, max);
                }
            }
            if let Some(p) = o.get(&path_key).filter(|_| lang == Lang::JsonPath) {
                self.reference_path(p, format!("{loc}/{path_key}"), &path_key);
            }
        }
        if let Some(b) = o.get("BatchInput") {
            match lang {
                Lang::JsonPath => self.template(b, &format!("{loc}/BatchInput"), true),
                Lang::Jsonata => self.jsonata_value(b, &format!("{loc}/BatchInput"), false),
            }
        }
    }

    /// The arguments of an ItemReader or a ResultWriter: `Parameters` in JSONPath, `Arguments` in
    /// JSONata, each refused in the other language at its own location.
    fn reader_arguments(&mut self, o: &'a Map<String, Value>, loc: &str, lang: Lang) {
        if let Some(p) = o.get("Parameters") {
            match lang {
                Lang::JsonPath => self.template(p, &format!("{loc}/Parameters"), true),
                Lang::Jsonata => self.schema(wrong_language(lang, "Parameters"), format!("{loc}/Parameters")),
            }
        }
        if let Some(a) = o.get("Arguments") {
            match lang {
                Lang::Jsonata => self.jsonata_value(a, &format!("{loc}/Arguments"), false),
                Lang::JsonPath => self.schema(wrong_language(lang, "Arguments"), format!("{loc}/Arguments")),
            }
        }
    }

    /// An S3 resource of an ItemReader or ResultWriter.
    fn s3_resource(&mut self, v: &Value, loc: String, actions: &[&str]) {
        let Some(r) = v.as_str() else {
            self.schema(expected("STRING"), loc);
            return;
        };
        let action = r.strip_prefix("arn:").and_then(|rest| rest.split_once(":states:::s3:")).map(|(_, a)| a);
        if !action.is_some_and(|a| actions.contains(&a)) {
            let masked = match r.split_once(':').and_then(|(_, rest)| rest.split_once(':')) {
                Some((_, tail)) if r.starts_with("arn:") => format!("arn:<partition>:{tail}"),
                _ => r.to_string(),
            };
            self.schema(
                format!(
                    "The resource provided {masked} is not recognized. The value is not a valid resource \
                     ARN, or the resource is not available in this region."
                ),
                loc,
            );
        }
    }

    fn item_reader(&mut self, v: &'a Value, loc: String, lang: Lang) {
        let Some(o) = v.as_object() else {
            self.schema(expected("OBJECT"), loc);
            return;
        };
        for key in o.keys() {
            if !matches!(key.as_str(), "Resource" | "ReaderConfig" | "Parameters" | "Arguments") {
                self.schema(not_supported(key), &loc);
            }
        }
        match o.get("Resource") {
            Some(r) => self.s3_resource(r, format!("{loc}/Resource"), &["getObject", "listObjectsV2"]),
            None => self.schema(required(&["Resource"]), &loc),
        }
        self.reader_arguments(o, &loc, lang);
        let Some(c) = o.get("ReaderConfig") else { return };
        let cl = format!("{loc}/ReaderConfig");
        let Some(c) = c.as_object() else {
            self.schema(expected("OBJECT"), cl);
            return;
        };
        for key in c.keys() {
            let ok = matches!(
                key.as_str(),
                "InputType"
                    | "CSVHeaderLocation"
                    | "CSVHeaders"
                    | "CSVDelimiter"
                    | "MaxItems"
                    | "ManifestType"
            ) || key == "MaxItemsPath" && lang == Lang::JsonPath;
            if !ok {
                self.schema(not_supported(key), &cl);
            }
        }
        if let Some(t) = c.get("InputType") {
            let types = ["CSV", "JSON", "JSONL", "MANIFEST", "PARQUET"];
            if !t.as_str().is_some_and(|t| types.contains(&t)) {
                self.schema(one_of(&types), format!("{cl}/InputType"));
            }
        }
        if let Some(h) = c.get("CSVHeaderLocation") {
            if !matches!(h.as_str(), Some("FIRST_ROW" | "GIVEN")) {
                self.schema(one_of(&["FIRST_ROW", "GIVEN"]), format!("{cl}/CSVHeaderLocation"));
            }
        }
        if let Some(m) = c.get("MaxItems") {
            if c.contains_key("MaxItemsPath") {
                self.schema(
                    "Fields 'MaxItems' and 'MaxItemsPath' cannot be used together: keep one",
                    format!("{cl}/MaxItems"),
                );
            }
            if lang == Lang::Jsonata && m.is_string() {
                self.jsonata_value(m, &format!("{cl}/MaxItems"), false);
            } else {
                self.int_in(m, format!("{cl}/MaxItems"), 0, 100_000_000);
            }
        }
        if let Some(p) = c.get("MaxItemsPath").filter(|_| lang == Lang::JsonPath) {
            self.reference_path(p, format!("{cl}/MaxItemsPath"), "MaxItemsPath");
        }
    }

    fn result_writer(&mut self, v: &'a Value, loc: String, lang: Lang) {
        let Some(o) = v.as_object() else {
            self.schema(expected("OBJECT"), loc);
            return;
        };
        if o.is_empty() {
            self.schema("A ResultWriter needs a Resource with its Parameters, or a WriterConfig", &loc);
            return;
        }
        for key in o.keys() {
            if !matches!(key.as_str(), "Resource" | "Parameters" | "Arguments" | "WriterConfig") {
                self.schema(not_supported(key), &loc);
            }
        }
        if let Some(r) = o.get("Resource") {
            self.s3_resource(r, format!("{loc}/Resource"), &["putObject"]);
            if !o.contains_key("Parameters") && !o.contains_key("Arguments") {
                let args = if lang == Lang::JsonPath { "Parameters" } else { "Arguments" };
                self.schema(
                    format!("A ResultWriter with a Resource needs {args} naming the Bucket and Prefix"),
                    &loc,
                );
            }
        }
        self.reader_arguments(o, &loc, lang);
        if let Some(w) = o.get("WriterConfig") {
            let wl = format!("{loc}/WriterConfig");
            match w.as_object() {
                None => self.schema(expected("OBJECT"), wl),
                Some(w) => {
                    let t = w.get("Transformation");
                    let out = w.get("OutputType");
                    if t.is_none() || out.is_none() {
                        self.schema("A WriterConfig needs both Transformation and OutputType", &wl);
                    }
                    if t.is_some_and(|t| !matches!(t.as_str(), Some("NONE" | "COMPACT" | "FLATTEN")))
                        || out.is_some_and(|o| !matches!(o.as_str(), Some("JSON" | "JSONL")))
                    {
                        self.schema(
                            "Transformation must be NONE, COMPACT or FLATTEN and OutputType JSON or JSONL",
                            &wl,
                        );
                    }
                }
            }
        }
    }

    fn label(&mut self, v: &'a Value, loc: String) {
        let Some(label) = v.as_str() else {
            self.schema(expected("STRING"), loc);
            return;
        };
        if label.is_empty() {
            self.error(INVALID_LABEL_NAME, "Label cannot be empty", loc);
            return;
        }
        if label.chars().count() > 40 {
            self.error(INVALID_LABEL_NAME, "Label cannot exceed 40 characters", loc);
            return;
        }
        let bad = label.chars().find(|c| LABEL_FORBIDDEN.contains(*c) || c.is_control());
        if let Some(c) = bad {
            self.error(
                INVALID_LABEL_NAME,
                format!("Label contains invalid character: {}", python_repr(c)),
                loc,
            );
            return;
        }
        if !self.labels.insert(label) {
            self.error(
                DUPLICATE_LABEL_NAME,
                format!("Duplicate Label: {label}. Each Map Label must be unique"),
                loc,
            );
        }
    }

    fn retry(&mut self, v: &Value, loc: String) {
        let Some(list) = v.as_array() else {
            self.schema(expected("ARRAY"), loc);
            return;
        };
        for (i, r) in list.iter().enumerate() {
            let rl = format!("{loc}[{i}]");
            let Some(o) = r.as_object() else {
                self.schema(expected("OBJECT"), rl);
                continue;
            };
            for key in o.keys() {
                let ok = matches!(
                    key.as_str(),
                    "ErrorEquals"
                        | "IntervalSeconds"
                        | "MaxAttempts"
                        | "BackoffRate"
                        | "MaxDelaySeconds"
                        | "JitterStrategy"
                        | "Comment"
                );
                if !ok {
                    self.schema(not_supported(key), &rl);
                }
            }
            if self.error_equals(o.get("ErrorEquals"), &rl) && i + 1 != list.len() {
                self.schema(STATES_ALL, &rl);
            }
            if let Some(n) = o.get("IntervalSeconds") {
                self.int_in(n, format!("{rl}/IntervalSeconds"), 1, MAX_SECONDS);
            }
            if let Some(n) = o.get("MaxAttempts") {
                self.int_in(n, format!("{rl}/MaxAttempts"), 0, MAX_SECONDS);
            }
            if let Some(n) = o.get("MaxDelaySeconds") {
                self.int_in(n, format!("{rl}/MaxDelaySeconds"), 1, 31_622_400);
            }
            if let Some(n) = o.get("BackoffRate") {
                match n.as_f64() {
                    None => self.schema(expected("NUMBER"), format!("{rl}/BackoffRate")),
                    Some(b) if b < 1.0 => self.schema("Minimum value is 1.0", format!("{rl}/BackoffRate")),
                    Some(_) => {}
                }
            }
            if let Some(j) = o.get("JitterStrategy") {
                if !matches!(j.as_str(), Some("FULL" | "NONE")) {
                    self.schema(one_of(&["FULL", "NONE"]), format!("{rl}/JitterStrategy"));
                }
            }
        }
    }

    fn catch(&mut self, v: &'a Value, loc: String, lang: Lang) {
        let Some(list) = v.as_array() else {
            self.schema(expected("ARRAY"), loc);
            return;
        };
        for (i, c) in list.iter().enumerate() {
            let cl = format!("{loc}[{i}]");
            let Some(o) = c.as_object() else {
                self.schema(expected("OBJECT"), cl);
                continue;
            };
            for key in o.keys() {
                let k = key.as_str();
                match k {
                    "ErrorEquals" | "Next" | "Assign" | "Comment" => {}
                    "ResultPath" | "Output" => {
                        let only = if k == "ResultPath" { Lang::JsonPath } else { Lang::Jsonata };
                        if lang != only {
                            self.schema(wrong_language(lang, k), &cl);
                        }
                    }
                    _ => self.schema(not_supported(k), &cl),
                }
            }
            if self.error_equals(o.get("ErrorEquals"), &cl) && i + 1 != list.len() {
                self.schema(STATES_ALL, &cl);
            }
            match o.get("Next") {
                None => self.schema(required(&["Next"]), &cl),
                Some(n) if !n.is_string() => self.schema(expected("STRING"), format!("{cl}/Next")),
                _ => {}
            }
            if let Some(p) = o.get("ResultPath").filter(|_| lang == Lang::JsonPath) {
                self.result_path(p, format!("{cl}/ResultPath"));
            }
            if let Some(out) = o.get("Output").filter(|_| lang == Lang::Jsonata) {
                self.jsonata_value(out, &format!("{cl}/Output"), true);
            }
            if let Some(a) = o.get("Assign") {
                self.assign(a, format!("{cl}/Assign"), lang, true);
            }
        }
    }

    /// `ErrorEquals`: a non-empty list of error names, `States.ALL` alone. True when it is
    /// `States.ALL`.
    fn error_equals(&mut self, v: Option<&Value>, loc: &str) -> bool {
        let at = format!("{loc}/ErrorEquals");
        let list = match v {
            None => {
                self.schema(required(&["ErrorEquals"]), loc);
                return false;
            }
            Some(Value::Array(list)) => list,
            Some(_) => {
                self.schema(expected("ARRAY"), at);
                return false;
            }
        };
        if list.is_empty() {
            self.schema("The field 'ErrorEquals' must name at least one error", at);
            return false;
        }
        for (j, e) in list.iter().enumerate() {
            if !e.is_string() {
                self.schema(expected("STRING"), format!("{at}[{j}]"));
            }
        }
        let all = list.iter().any(|e| e.as_str() == Some("States.ALL"));
        if all && list.len() > 1 {
            self.schema(STATES_ALL, at);
        }
        all
    }

    fn assign(&mut self, v: &'a Value, loc: String, lang: Lang, in_catch: bool) {
        if !v.is_object() {
            self.schema(expected("OBJECT"), loc);
            return;
        }
        match lang {
            Lang::JsonPath => self.template(v, &loc, false),
            Lang::Jsonata => self.jsonata_value(v, &loc, in_catch),
        }
    }

    /// A `.$` field's value (or ErrorPath's, CausePath's): a path or an intrinsic call.
    fn dynamic(&mut self, v: &Value, field: &str, loc: String) {
        if !v.as_str().is_some_and(path_or_call) {
            let aws = format!(
                "The value for the field '{field}' must be a valid JSONPath or a valid intrinsic function \
                 call"
            );
            self.schema(aws, loc);
        }
    }

    /// `InputPath`, `OutputPath`, `ItemsPath`, a Choice `...Path` operand: any JSONPath.
    fn path(&mut self, v: &Value, loc: String, field: &str, nullable: bool) {
        match v {
            Value::Null if nullable => {}
            Value::String(p) if Path::parse(p).is_ok() => {}
            _ => self.schema(format!("The value for the field '{field}' must be a valid JSONPath"), loc),
        }
    }

    /// `ResultPath`: null, or a definite path into the state's input.
    fn result_path(&mut self, v: &Value, loc: String) {
        match v {
            Value::Null => {}
            Value::String(p) => match Path::parse_reference(p) {
                Ok(path) if *path.root() == Root::Input => {}
                Ok(_) => self.schema(
                    "The value for the field 'ResultPath' must be a valid ReferencePath starting with '$': a \
                     result can be written into the state's input only, not into a variable or the context \
                     object",
                    loc,
                ),
                Err(_) => {
                    self.schema("The value for the field 'ResultPath' must be a valid ReferencePath", loc);
                }
            },
            _ => self.schema(expected("STRING"), loc),
        }
    }

    /// A `...Path` field that must select a single value.
    fn reference_path(&mut self, v: &Value, loc: String, field: &str) {
        if v.as_str().is_none_or(|p| Path::parse_reference(p).is_err()) {
            self.schema(format!("The value for the field '{field}' must be a valid ReferencePath"), loc);
        }
    }

    fn int_in(&mut self, v: &Value, loc: String, min: i64, max: i64) -> Option<i64> {
        let n = match (v.as_i64(), v.as_u64()) {
            (Some(n), _) => n,
            // Above i64: only a field without a practical upper bound takes it.
            (None, Some(_)) if max == i64::MAX => return None,
            (None, Some(_)) => {
                self.schema(format!("Maximum value is {max}"), loc);
                return None;
            }
            _ => {
                self.schema("Expected value of type Integer", loc);
                return None;
            }
        };
        if n < min {
            self.schema(format!("Minimum value is {min}"), loc);
        } else if n > max {
            self.schema(format!("Maximum value is {max}"), loc);
        }
        Some(n)
    }

    /// A JSONPath payload template (`Parameters`, `ResultSelector`, `ItemSelector`, an `Assign` of
    /// a JSONPath state): every `.$` field holds a path or an intrinsic call.
    fn template(&mut self, v: &Value, loc: &str, warn: bool) {
        match v {
            Value::Object(o) => {
                for (k, val) in o {
                    if let Some(name) = k.strip_suffix(".$") {
                        if o.contains_key(name) {
                            self.schema(
                                format!("The fields '{name}' and '{k}' both set '{name}': keep one of them"),
                                loc,
                            );
                        }
                        self.dynamic(val, k, loc.to_string());
                        continue;
                    }
                    let at = format!("{loc}/{k}");
                    if let (true, Value::String(s)) = (warn, val) {
                        if looks_dynamic(s) {
                            self.warning(NO_DOLLAR, no_dollar(k), &at);
                        }
                    }
                    self.template(val, &at, warn);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    self.template(x, &format!("{loc}[{i}]"), warn);
                }
            }
            _ => {}
        }
    }

    /// A value of a JSONata state: every string written `{% ... %}` is an expression that parses.
    fn jsonata_value(&mut self, v: &Value, loc: &str, in_catch: bool) {
        match v {
            Value::String(s) => self.jsonata_string(s, loc, in_catch),
            Value::Object(o) => {
                for (k, val) in o {
                    self.jsonata_value(val, &format!("{loc}/{k}"), in_catch);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    self.jsonata_value(x, &format!("{loc}[{i}]"), in_catch);
                }
            }
            _ => {}
        }
    }

    /// A string of a JSONata state. One that does not start with `{%` is a literal, as AWS takes it.
    fn jsonata_string(&mut self, s: &str, loc: &str, in_catch: bool) {
        if !s.starts_with("{%") {
            return;
        }
        let Some(body) = expression(s) else {
            self.schema(
                "A JSONata expression starts with '{%' and ends with '%}': close this one with '%}'",
                loc,
            );
            return;
        };
        if let Err(e) = jsonata_core::parser::parse(body) {
            self.error(INVALID_JSONATA_EXPRESSION, jsonata_message(&e.to_string()), loc);
            return;
        }
        let mut lexer = jsonata_core::parser::Lexer::new(body.to_string());
        let mut window: [Option<jsonata_core::parser::Token>; 2] = [None, None];
        let mut seen_root = false;
        let mut seen_error_output = false;
        let mut seen_result = false;
        while let Ok(tok) = lexer.next_token() {
            use jsonata_core::parser::Token;
            if tok == Token::Eof {
                break;
            }
            match (&window[0], &window[1], &tok) {
                (_, _, Token::ParentVariable(_)) => seen_root = true,
                (Some(Token::Variable(v)), Some(Token::Dot), Token::Identifier(f))
                    if v == "states" && f == "errorOutput" =>
                {
                    seen_error_output = true;
                }
                (Some(Token::Variable(v)), Some(Token::Dot), Token::Identifier(f))
                    if v == "states" && f == "result" =>
                {
                    seen_result = true;
                }
                _ => {}
            }
            window = [window[1].take(), Some(tok)];
        }
        if seen_root {
            self.error(UNSUPPORTED_JSONATA_EXPRESSION, "Reference to '$$' is not supported.", loc);
        }
        if seen_error_output && !in_catch {
            self.error(UNSUPPORTED_JSONATA_EXPRESSION, "Field '$states.errorOutput' does not exist.", loc);
        }
        if seen_result && self.no_result {
            self.error(UNSUPPORTED_JSONATA_EXPRESSION, "Field '$states.result' does not exist.", loc);
        }
    }

    /// The transition checks of every machine, after the schema pass.
    fn graph(&mut self) {
        let scopes = std::mem::take(&mut self.scopes);
        for s in &scopes {
            self.scope_graph(s);
        }
    }

    fn scope_graph(&mut self, s: &Scope<'a>) {
        let Some(Value::Object(states)) = s.obj.get("States") else { return };
        let missing = |target: &str| format!("Missing 'Next' target: {target}");
        let start = s.obj.get("StartAt").and_then(Value::as_str);
        if let Some(start) = start {
            if !states.contains_key(start) {
                self.error(MISSING_TRANSITION_TARGET, missing(start), format!("{}/StartAt", s.prefix));
            }
        }
        for (name, state) in states {
            for (target, loc) in targets(state, &format!("{}/States/{name}", s.prefix)) {
                if !states.contains_key(target) {
                    self.error(MISSING_TRANSITION_TARGET, missing(target), loc);
                }
            }
        }
        if s.top && !states.values().any(is_terminal) {
            // AWS reports this alone, without listing unreachable states.
            self.error(MISSING_END_STATE, "Workflow has no terminal state", "");
            return;
        }
        let Some(start) = start else {
            // Without a StartAt (reported already) every state would read as unreachable.
            return;
        };
        let mut reached: HashSet<&str> = HashSet::new();
        let mut queue: VecDeque<&str> = Some(start).filter(|s| states.contains_key(*s)).into_iter().collect();
        while let Some(name) = queue.pop_front() {
            if !reached.insert(name) {
                continue;
            }
            for (target, _) in targets(&states[name], "") {
                if states.contains_key(target) && !reached.contains(target) {
                    queue.push_back(target);
                }
            }
        }
        for name in states.keys() {
            if !reached.contains(name.as_str()) {
                self.error(
                    MISSING_TRANSITION_TARGET,
                    format!("State \"{name}\" is not reachable."),
                    format!("{}/States/{name}", s.prefix),
                );
            }
        }
    }
}

/// Where a state can go: `Next`, `Default`, each Choice rule's and each catcher's `Next`, with the
/// location of each.
fn targets<'v>(state: &'v Value, loc: &str) -> Vec<(&'v str, String)> {
    let mut out = Vec::new();
    if let Some(n) = state.get("Next").and_then(Value::as_str) {
        out.push((n, format!("{loc}/Next")));
    }
    if let Some(rules) = state.get("Choices").and_then(Value::as_array) {
        for (i, r) in rules.iter().enumerate() {
            if let Some(n) = r.get("Next").and_then(Value::as_str) {
                out.push((n, format!("{loc}/Choices[{i}]/Next")));
            }
        }
    }
    if let Some(d) = state.get("Default").and_then(Value::as_str) {
        out.push((d, format!("{loc}/Default")));
    }
    if let Some(catchers) = state.get("Catch").and_then(Value::as_array) {
        for (i, c) in catchers.iter().enumerate() {
            if let Some(n) = c.get("Next").and_then(Value::as_str) {
                out.push((n, format!("{loc}/Catch[{i}]/Next")));
            }
        }
    }
    out
}

fn no_dollar(field: &str) -> String {
    format!(
        "The value of the field '{field}' looks like a JSONPath or an intrinsic function call but is passed \
         as a plain string: name the field '{field}.$' to evaluate it"
    )
}

fn has_dollar_key(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.iter().any(|(k, v)| k.ends_with(".$") || has_dollar_key(v)),
        Value::Array(a) => a.iter().any(has_dollar_key),
        _ => false,
    }
}

/// A plain string that would be evaluated had its field name ended with `.$`.
fn looks_dynamic(s: &str) -> bool {
    let path_like = (s == "$" || s.starts_with("$.") || s.starts_with("$$.") || s.starts_with("$["))
        && Path::parse(s).is_ok();
    path_like || intrinsics::is_call(s) && path_or_call(s)
}

/// A character as Python's `repr` writes it, the form of AWS's Label messages (`'\x01'`, `' '`).
fn python_repr(c: char) -> String {
    match c {
        '\\' => "'\\\\'".to_string(),
        '\'' => "\"'\"".to_string(),
        '\n' => "'\\n'".to_string(),
        '\r' => "'\\r'".to_string(),
        '\t' => "'\\t'".to_string(),
        c if (c as u32) < 0x100 && c.is_control() => format!("'\\x{:02x}'", c as u32),
        c => format!("'{c}'"),
    }
}

/// jsonata-core's parser message in jsonata-js's words, as AWS shows them: no `S0xxx: ` code and
/// symbols rather than token names (`Expected "]", got ","`).
fn jsonata_message(raw: &str) -> String {
    let mut msg = raw.strip_prefix("Invalid syntax: ").unwrap_or(raw);
    let b = msg.as_bytes();
    if b.len() > 7 && b[0].is_ascii_uppercase() && b[1..5].iter().all(u8::is_ascii_digit) && &b[5..7] == b": "
    {
        msg = &msg[7..];
    }
    let mut out = String::with_capacity(msg.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match TOKEN_SYMBOLS.iter().find(|(name, _)| *name == word.as_str()) {
            Some((_, sym)) => {
                out.push('"');
                out.push_str(sym);
                out.push('"');
            }
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in msg.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

const TOKEN_SYMBOLS: &[(&str, &str)] = &[
    ("Plus", "+"),
    ("Minus", "-"),
    ("Star", "*"),
    ("StarStar", "**"),
    ("Slash", "/"),
    ("Percent", "%"),
    ("Equal", "="),
    ("NotEqual", "!="),
    ("LessThan", "<"),
    ("LessThanOrEqual", "<="),
    ("GreaterThan", ">"),
    ("GreaterThanOrEqual", ">="),
    ("Ampersand", "&"),
    ("Dot", "."),
    ("DotDot", ".."),
    ("Question", "?"),
    ("QuestionQuestion", "??"),
    ("QuestionColon", "?:"),
    ("Colon", ":"),
    ("ColonEqual", ":="),
    ("TildeArrow", "~>"),
    ("LeftParen", "("),
    ("RightParen", ")"),
    ("LeftBracket", "["),
    ("RightBracket", "]"),
    ("LeftBrace", "{"),
    ("RightBrace", "}"),
    ("Comma", ","),
    ("Semicolon", ";"),
    ("Caret", "^"),
    ("Pipe", "|"),
    ("Hash", "#"),
    ("At", "@"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The ERROR diagnostics as (code, location) pairs.
    fn errors(def: Value) -> Vec<(String, String)> {
        validate(&def).into_iter().filter(|d| d.is_error()).map(|d| (d.code, d.location)).collect()
    }

    /// Asserts the definition has exactly one ERROR: this code at this location.
    #[track_caller]
    fn only(def: Value, code: &str, location: &str) -> Diagnostic {
        let diags: Vec<Diagnostic> = validate(&def).into_iter().filter(|d| d.is_error()).collect();
        assert_eq!(
            diags.iter().map(|d| (d.code.as_str(), d.location.as_str())).collect::<Vec<_>>(),
            vec![(code, location)],
            "{diags:#?}"
        );
        diags.into_iter().next().unwrap()
    }

    /// Asserts the definition has no ERROR.
    #[track_caller]
    fn ok(def: Value) {
        let e: Vec<Diagnostic> = validate(&def).into_iter().filter(|d| d.is_error()).collect();
        assert!(e.is_empty(), "{e:#?}");
    }

    /// A machine of one state `S` (which may need a terminal `Done` to go to).
    fn one(state: Value) -> Value {
        json!({"StartAt": "S", "States": {"S": state, "Done": {"Type": "Succeed"}}})
    }

    fn pass_to_done() -> Value {
        json!({"Type": "Pass", "Next": "Done"})
    }

    #[test]
    fn a_valid_machine_has_no_diagnostic() {
        assert_eq!(
            validate(&json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}})),
            vec![]
        );
    }

    #[test]
    fn not_an_object_and_missing_top_level_fields() {
        let d = validate(&json!([1]));
        assert_eq!(
            d,
            vec![Diagnostic::error(SCHEMA_VALIDATION_FAILED, "Definition must be a valid JSON object", "")]
        );
        let d = only(json!({}), SCHEMA_VALIDATION_FAILED, "/");
        assert_eq!(d.message, "These fields are required: [States, StartAt]");
        let d = only(json!({"States": {"A": {"Type": "Pass", "End": true}}}), SCHEMA_VALIDATION_FAILED, "/");
        assert_eq!(d.message, "These fields are required: [StartAt]");
        let d = only(
            json!({"StartAt": "A", "Bogus": 1, "States": {"A": {"Type": "Pass", "End": true}}}),
            SCHEMA_VALIDATION_FAILED,
            "/",
        );
        assert_eq!(d.message, "Field 'Bogus' is not supported");
    }

    #[test]
    fn top_level_version_and_timeout() {
        let base = |k: &str, v: Value| {
            let mut d = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
            d[k] = v;
            d
        };
        ok(base("Version", json!("1.0")));
        only(base("Version", json!("2.0")), SCHEMA_VALIDATION_FAILED, "/Version");
        ok(base("TimeoutSeconds", json!(60)));
        only(base("TimeoutSeconds", json!(0)), SCHEMA_VALIDATION_FAILED, "/TimeoutSeconds");
        only(base("TimeoutSeconds", json!("60")), SCHEMA_VALIDATION_FAILED, "/TimeoutSeconds");
    }

    #[test]
    fn parse_text_reports_line_and_column() {
        let e = parse_text("{\n  \"StartAt\": \"A\",\n  \"States\": {,}\n}").unwrap_err();
        assert_eq!((e.line, e.column), (3, 14));
        assert!(e.to_string().starts_with("3:14: "), "{e}");
        let d = e.diagnostic();
        assert_eq!((d.code.as_str(), d.location.as_str()), (INVALID_JSON_DESCRIPTION, ""));
        assert!(d.message.contains("3:14"), "{}", d.message);
        let blank = parse_text(" ").unwrap_err().diagnostic();
        assert_eq!(
            blank,
            Diagnostic::error(SCHEMA_VALIDATION_FAILED, "Definition must be a valid JSON object", "")
        );
        assert_eq!(parse_text("{\"a\": 1}").unwrap(), json!({"a": 1}));
    }

    #[test]
    fn diagnostics_serialize_as_aws_sends_them() {
        let d = Diagnostic::error(MISSING_END_STATE, "Workflow has no terminal state", "");
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"severity": "ERROR", "code": "MISSING_END_STATE", "message": "Workflow has no terminal state"})
        );
        assert_eq!(d.to_string(), "MISSING_END_STATE: Workflow has no terminal state at null");
        let w = Diagnostic::warning(NO_DOLLAR, "m", "/States/A");
        assert_eq!(serde_json::to_value(&w).unwrap()["severity"], "WARNING");
        let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}});
        assert_eq!(
            cause(&validate(&def)),
            "Invalid State Machine Definition: 'MISSING_TRANSITION_TARGET: Missing 'Next' target: Nope at \
             /States/A/Next, MISSING_END_STATE: Workflow has no terminal state at null'"
        );
    }

    #[test]
    fn transition_targets_must_exist() {
        let d =
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "Z": {"Type": "Succeed"}}});
        let d: Vec<String> = validate(&d).iter().map(|d| d.to_string()).collect();
        assert_eq!(
            d,
            [
                "MISSING_TRANSITION_TARGET: Missing 'Next' target: B at /States/A/Next",
                "MISSING_TRANSITION_TARGET: State \"Z\" is not reachable. at /States/Z"
            ]
        );
        let choice = json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "Ghost"}], "Default": "Gone"},
            "Z": {"Type": "Succeed"}}});
        assert_eq!(
            errors(choice),
            vec![
                (MISSING_TRANSITION_TARGET.into(), "/States/C/Choices[0]/Next".into()),
                (MISSING_TRANSITION_TARGET.into(), "/States/C/Default".into()),
                (MISSING_TRANSITION_TARGET.into(), "/States/Z".into()),
            ]
        );
        let catch = one(json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Done",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Ghost"}]}));
        only(catch, MISSING_TRANSITION_TARGET, "/States/S/Catch[0]/Next");
    }

    #[test]
    fn start_at_must_name_a_state_and_others_must_be_reachable() {
        let d = json!({"StartAt": "Nope", "States": {"A": {"Type": "Pass", "End": true}}});
        assert_eq!(
            errors(d),
            vec![
                (MISSING_TRANSITION_TARGET.into(), "/StartAt".into()),
                (MISSING_TRANSITION_TARGET.into(), "/States/A".into())
            ]
        );
        let d = only(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}, "a/b": {"Type": "Pass", "End": true}}}),
            MISSING_TRANSITION_TARGET,
            "/States/a/b",
        );
        assert_eq!(d.message, "State \"a/b\" is not reachable.");
    }

    #[test]
    fn a_machine_without_terminal_state_is_reported_alone() {
        let looped = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"},
            "Unused": {"Type": "Pass", "Next": "A"}}});
        let d = only(looped, MISSING_END_STATE, "");
        assert_eq!(d.message, "Workflow has no terminal state");
        // An unreachable terminal state makes it a reachability problem instead.
        let d = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"},
            "C": {"Type": "Pass", "End": true}}});
        only(d, MISSING_TRANSITION_TARGET, "/States/C");
        // Only the top level needs one.
        ok(
            json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "A",
            "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}}}}}),
        );
    }

    #[test]
    fn nested_machines_are_checked_with_their_own_scope() {
        let map = json!({"StartAt": "M", "States": {
            "M": {"Type": "Map", "Next": "Final", "ItemProcessor": {"StartAt": "W", "States": {
                "W": {"Type": "Pass", "Next": "Final"}, "Ghost": {"Type": "Pass", "End": true}}}},
            "Final": {"Type": "Succeed"}}});
        assert_eq!(
            errors(map),
            vec![
                (MISSING_TRANSITION_TARGET.into(), "/States/M/ItemProcessor/States/W/Next".into()),
                (MISSING_TRANSITION_TARGET.into(), "/States/M/ItemProcessor/States/Ghost".into()),
            ]
        );
        let par = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "W", "States": {"W": {"Type": "Pass", "End": true}, "Ghost": {"Type": "Pass", "End": true}}}]}}});
        only(par, MISSING_TRANSITION_TARGET, "/States/P/Branches[0]/States/Ghost");
        let branch_ql = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"QueryLanguage": "JSONata", "StartAt": "W", "States": {"W": {"Type": "Pass", "End": true}}}]}}});
        assert_eq!(
            only(branch_ql, SCHEMA_VALIDATION_FAILED, "/States/P/Branches[0]").message,
            "Field 'QueryLanguage' is not supported"
        );
    }

    #[test]
    fn state_names_are_unique_and_short() {
        let dupe = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "Next": "Final", "Iterator": {"StartAt": "Final",
            "States": {"Final": {"Type": "Pass", "End": true}}}}, "Final": {"Type": "Succeed"}}});
        only(dupe, DUPLICATE_STATE_NAME, "/States/Final");
        let long = "x".repeat(81);
        let d = json!({"StartAt": long.clone(), "States": {long.clone(): {"Type": "Pass", "End": true}}});
        only(d, INVALID_STATE_NAME, &format!("/States/{long}"));
        let ok80 = "x".repeat(80);
        ok(json!({"StartAt": ok80.clone(), "States": {ok80: {"Type": "Pass", "End": true}}}));
    }

    #[test]
    fn types_and_fields_per_type() {
        only(one(json!({"Next": "Done"})), SCHEMA_VALIDATION_FAILED, "/States/S");
        only(one(json!({"Type": "Bogus", "Next": "Done"})), SCHEMA_VALIDATION_FAILED, "/States/S/Type");
        for (field, value) in [("TimeoutSeconds", json!(5)), ("Catch", json!([])), ("Retry", json!([]))] {
            let mut s = pass_to_done();
            s[field] = value;
            let d = only(one(s), SCHEMA_VALIDATION_FAILED, "/States/S");
            assert_eq!(d.message, format!("Field '{field}' is not supported"));
        }
        let typo = json!({"Type": "Pass", "bugInputPath": "$.x", "Next": "Done"});
        assert_eq!(
            only(one(typo), SCHEMA_VALIDATION_FAILED, "/States/S").message,
            "Field 'bugInputPath' is not supported"
        );
        only(one(json!({"Type": "Succeed", "Next": "Done"})), SCHEMA_VALIDATION_FAILED, "/States/S");
    }

    #[test]
    fn next_and_end_exactly_one() {
        let alone = |s: Value| json!({"StartAt": "S", "States": {"S": s}});
        assert_eq!(
            errors(alone(json!({"Type": "Pass"}))),
            vec![
                (SCHEMA_VALIDATION_FAILED.into(), "/States/S".into()),
                (MISSING_END_STATE.into(), String::new())
            ]
        );
        only(
            one(json!({"Type": "Pass", "Next": "Done", "End": true})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S",
        );
        let d = errors(one(json!({"Type": "Pass", "Next": 3})));
        assert_eq!(d[0], (SCHEMA_VALIDATION_FAILED.into(), "/States/S/Next".into()));
        ok(one(json!({"Type": "Pass", "Next": "Done", "End": false})));
    }

    #[test]
    fn query_language_fields() {
        let jsonata = json!({"QueryLanguage": "JSONata", "StartAt": "X", "States": {"X": {"Type": "Pass", "End": true,
            "InputPath": "$.a", "OutputPath": "$.b", "ResultPath": "$.c"}}});
        let d: Vec<String> =
            validate(&jsonata).into_iter().map(|d| format!("{} @ {}", d.message, d.location)).collect();
        assert_eq!(
            d,
            ["InputPath", "OutputPath", "ResultPath"].map(|f| format!(
                "The QueryLanguage is set to 'JSONata', but field '{f}' is only supported for the 'JSONPath' QueryLanguage @ /States/X"
            ))
        );
        let jsonpath = one(
            json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {}, "Next": "Done"}),
        );
        assert_eq!(
            only(jsonpath, SCHEMA_VALIDATION_FAILED, "/States/S").message,
            "The QueryLanguage is set to 'JSONPath', but field 'Arguments' is only supported for the 'JSONata' QueryLanguage"
        );
        ok(one(json!({"Type": "Pass", "Assign": {"n": 1}, "Next": "Done"})));
        // A nested state takes the machine's language, not its Map's.
        let nested = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "QueryLanguage": "JSONata", "End": true,
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": 1, "End": true}}}}}});
        only(nested, SCHEMA_VALIDATION_FAILED, "/States/M/ItemProcessor/States/P");
        let proc_ql = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemProcessor": {"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}});
        only(proc_ql, SCHEMA_VALIDATION_FAILED, "/States/M/ItemProcessor");
    }

    #[test]
    fn a_jsonata_machine_cannot_hold_jsonpath_states() {
        let d = json!({"QueryLanguage": "JSONata", "StartAt": "Pass", "States": {
            "Pass": {"Type": "Pass", "End": true, "QueryLanguage": "JSONPath", "Output": 1}}});
        let d = only(d, SCHEMA_VALIDATION_FAILED, "/States/Pass");
        assert_eq!(
            d.message,
            "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine"
        );
        // The other way round is fine, at any depth.
        ok(
            json!({"StartAt": "Map", "QueryLanguage": "JSONPath", "States": {"Map": {"Type": "Map", "QueryLanguage": "JSONata",
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Pass",
                "States": {"Pass": {"QueryLanguage": "JSONPath", "Type": "Pass", "End": true}}}, "End": true}}}),
        );
    }

    #[test]
    fn query_language_values() {
        let bad = json!({"QueryLanguage": "jsonata", "StartAt": "X", "States": {"X": {"Type": "Pass", "End": true}}});
        let d = only(bad, SCHEMA_VALIDATION_FAILED, "/QueryLanguage");
        assert_eq!(d.message, "Value should be one of the following: [JSONPath, JSONata]");
        let num = json!({"StartAt": "X", "States": {"X": {"Type": "Pass", "QueryLanguage": 5, "End": true}}});
        assert_eq!(
            only(num, SCHEMA_VALIDATION_FAILED, "/States/X/QueryLanguage").message,
            "Expected value of type [STRING]"
        );
    }

    #[test]
    fn paths() {
        let with = |k: &str, v: Value| {
            let mut s = pass_to_done();
            s[k] = v;
            one(s)
        };
        ok(with("InputPath", json!("$$.Execution.Id")));
        ok(with("InputPath", Value::Null));
        ok(with("OutputPath", json!("$.books[-2]")));
        only(with("InputPath", json!("bug$.x")), SCHEMA_VALIDATION_FAILED, "/States/S/InputPath");
        ok(with("ResultPath", Value::Null));
        ok(with("ResultPath", json!("$.a.b")));
        for bad in ["$foo", ".guid", "$...", "$.a[*]", "$$.Execution"] {
            only(with("ResultPath", json!(bad)), SCHEMA_VALIDATION_FAILED, "/States/S/ResultPath");
        }
        let wait = |p: &str| one(json!({"Type": "Wait", "SecondsPath": p, "Next": "Done"}));
        ok(wait("$.s"));
        only(wait("$.s[*]"), SCHEMA_VALIDATION_FAILED, "/States/S/SecondsPath");
    }

    #[test]
    fn payload_templates() {
        let with = |p: Value| one(json!({"Type": "Pass", "Parameters": p, "Next": "Done"}));
        ok(with(
            json!({"a.$": "$.x", "b": {"c.$": "States.Format('{}', $.y)"}, "l": [{"d.$": "$$.Map.Item.Value"}]}),
        ));
        let d = only(with(json!({"lorem.$": "ipsum"})), SCHEMA_VALIDATION_FAILED, "/States/S/Parameters");
        assert_eq!(
            d.message,
            "The value for the field 'lorem.$' must be a valid JSONPath or a valid intrinsic function call"
        );
        only(with(json!({"n": {"x.$": 3}})), SCHEMA_VALIDATION_FAILED, "/States/S/Parameters/n");
        only(
            with(json!({"conflict": 1, "conflict.$": "$.v"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Parameters",
        );
        // AWS's recorded verdicts on escapes inside intrinsic strings.
        let escaped = with(
            json!({"parsed.$": "States.StringToJson('{\"text\":\"An \\\"escaped double quote\\\" here\"}')"}),
        );
        let d = only(escaped, SCHEMA_VALIDATION_FAILED, "/States/S/Parameters");
        assert_eq!(
            d.message,
            "The value for the field 'parsed.$' must be a valid JSONPath or a valid intrinsic function call"
        );
        only(
            with(
                json!({"parsed.$": "States.Format('He said, \\\"Hello, {}!\\\"', 'Test \\\"Name\\\" Here')"}),
            ),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Parameters",
        );
        // AWS accepts a call given the wrong kind or number of arguments, and fails its state
        // when it runs (recorded).
        ok(with(json!({"foo.$": "States.MathAdd(1,'-1')"})));
        ok(with(json!({"foo.$": "States.MathAdd(1)"})));
        ok(with(json!({"foo.$": "States.UUID('x')"})));
        ok(with(json!({"foo.$": "States.MathAdd(States.ArrayLength($.a), -1)"})));
        only(with(json!({"foo.$": "States.NoSuch($.a)"})), SCHEMA_VALIDATION_FAILED, "/States/S/Parameters");
    }

    #[test]
    fn warnings_do_not_fail_a_definition() {
        let d = validate(&one(
            json!({"Type": "Pass", "Parameters": {"id": "$.id"}, "Result": {"x.$": "$.y"}, "Next": "Done"}),
        ));
        let codes: Vec<(&str, Severity, &str)> =
            d.iter().map(|d| (d.code.as_str(), d.severity, d.location.as_str())).collect();
        assert_eq!(
            codes,
            vec![
                (NO_DOLLAR, Severity::Warning, "/States/S/Parameters/id"),
                (PASS_RESULT_IS_STATIC, Severity::Warning, "/States/S/Result"),
            ]
        );
    }

    #[test]
    fn wait_fields() {
        let wait = |f: Value| {
            let mut s = json!({"Type": "Wait", "Next": "Done"});
            s.as_object_mut().unwrap().extend(f.as_object().unwrap().clone());
            one(s)
        };
        ok(wait(json!({"Seconds": 0})));
        ok(wait(json!({"Timestamp": "2016-03-14T01:59:00Z"})));
        ok(wait(json!({"Timestamp": "2016-03-14T01:59:00.123+02:00"})));
        only(wait(json!({})), SCHEMA_VALIDATION_FAILED, "/States/S");
        only(wait(json!({"Seconds": 10, "SecondsPath": "$.s"})), SCHEMA_VALIDATION_FAILED, "/States/S");
        only(wait(json!({"Seconds": -1})), SCHEMA_VALIDATION_FAILED, "/States/S/Seconds");
        for bad in [
            "2016-13-05T21:29:29Z",
            "05-12-2016T21:29:29Z",
            "2016-12-05T25:29:29Z",
            "2016-12-05 21:29:29Z",
            "2016-12-05T21:29:29",
        ] {
            let d = only(wait(json!({"Timestamp": bad})), SCHEMA_VALIDATION_FAILED, "/States/S/Timestamp");
            assert_eq!(d.message, "String does not match RFC3339 timestamp");
        }
    }

    #[test]
    fn fail_fields() {
        let fail = |f: Value| json!({"StartAt": "F", "States": {"F": f}});
        ok(fail(json!({"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('{}{}', $.a, $b)"})));
        only(
            fail(json!({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/F",
        );
        only(
            fail(json!({"Type": "Fail", "Cause": "C", "CausePath": "$.c"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/F",
        );
        only(
            fail(json!({"Type": "Fail", "CausePath": "nope"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/F/CausePath",
        );
        only(fail(json!({"Type": "Fail", "End": true})), SCHEMA_VALIDATION_FAILED, "/States/F");
    }

    #[test]
    fn task_resource() {
        let task = |r: &str| one(json!({"Type": "Task", "Resource": r, "Next": "Done"}));
        ok(task("arn:aws:lambda:us-east-1:123456789012:function:Hello"));
        ok(task("arn:aws:lambda:region-1:1234567890:function:F:$LATEST"));
        ok(task("arn:aws:states:::lambda:invoke.waitForTaskToken"));
        ok(task("arn:aws:states:::states:startExecution.sync:2"));
        ok(task("arn:aws:states:::aws-sdk:s3:getObject"));
        ok(task("arn:aws:states:us-east-1:123456789012:activity:a"));
        only(
            task("arn:aws:lambda:region-1:1234567890:function:F:"),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Resource",
        );
        only(
            task("arn:aws:lambda:region-1:1234567890:function:F:$*#$7485"),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Resource",
        );
        only(task("${lambdaArn"), SCHEMA_VALIDATION_FAILED, "/States/S/Resource");
        only(task("arn:aws:states:::lambda:invoke.later"), SCHEMA_VALIDATION_FAILED, "/States/S/Resource");
        let d = only(task("arn:aws:states:::dynamodb:query"), SCHEMA_VALIDATION_FAILED, "/States/S/Resource");
        assert_eq!(
            d.message,
            "The resource provided arn:<partition>:states:::dynamodb:query is not recognized. The value is not a \
             valid resource ARN, or the resource is not available in this region."
        );
        only(one(json!({"Type": "Task", "Next": "Done"})), SCHEMA_VALIDATION_FAILED, "/States/S");
        only(
            one(json!({"Type": "Task", "Resource": {"Ref": "x"}, "Next": "Done"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Resource",
        );
    }

    #[test]
    fn express_machines_refuse_waiting_resources() {
        let task =
            |r: &str| json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": r, "End": true}}});
        let express = |def: Value| {
            validate_for(&def, MachineType::Express).into_iter().map(|d| format!("{d}")).collect::<Vec<_>>()
        };
        assert_eq!(
            express(task("arn:aws:states:us-east-1:111111111111:activity:a")),
            ["SCHEMA_VALIDATION_FAILED: Express state machine does not support Activity ARN at /States/T/Resource"]
        );
        assert_eq!(
            express(task("arn:aws:states:::states:startExecution.sync")),
            ["SCHEMA_VALIDATION_FAILED: Express state machine does not support '.sync' service integration at /States/T/Resource"]
        );
        assert_eq!(
            express(task("arn:aws:states:::sns:publish.waitForTaskToken")),
            ["SCHEMA_VALIDATION_FAILED: Express state machine does not support '.waitForTaskToken' service integration  at /States/T/Resource"]
        );
        assert!(express(task("arn:aws:states:::lambda:invoke")).is_empty());
        assert!(validate(&task("arn:aws:states:::sns:publish.waitForTaskToken")).is_empty());
    }

    #[test]
    fn task_timeouts_and_credentials() {
        let task = |f: Value| {
            let mut s = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Done"});
            s.as_object_mut().unwrap().extend(f.as_object().unwrap().clone());
            one(s)
        };
        ok(task(json!({"TimeoutSeconds": 60, "HeartbeatSeconds": 10})));
        ok(task(json!({"TimeoutSecondsPath": "$.t", "HeartbeatSecondsPath": "$.h"})));
        only(task(json!({"TimeoutSeconds": 0})), SCHEMA_VALIDATION_FAILED, "/States/S/TimeoutSeconds");
        only(task(json!({"TimeoutSeconds": 1.5})), SCHEMA_VALIDATION_FAILED, "/States/S/TimeoutSeconds");
        only(
            task(json!({"TimeoutSeconds": 20, "TimeoutSecondsPath": "$.t"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/TimeoutSeconds",
        );
        only(
            task(json!({"HeartbeatSeconds": 20, "HeartbeatSecondsPath": "$.t"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/HeartbeatSeconds",
        );
        only(
            task(json!({"TimeoutSeconds": 10, "HeartbeatSeconds": 10})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/HeartbeatSeconds",
        );
        ok(task(json!({"Credentials": {"RoleArn": "arn:aws:iam::1:role/r"}})));
        ok(task(json!({"Credentials": {"RoleArn.$": "$.role"}})));
        for creds in [json!({}), json!({"InvalidField": "invalid"})] {
            let d =
                only(task(json!({"Credentials": creds})), SCHEMA_VALIDATION_FAILED, "/States/S/Credentials");
            assert_eq!(d.message, "The field 'RoleArn' is required but was missing");
        }
        only(task(json!({"Credentials": null})), SCHEMA_VALIDATION_FAILED, "/States/S/Credentials");
        let jsonata = json!({"StartAt": "State0", "QueryLanguage": "JSONata", "States": {"State0": {"Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke", "Arguments": "{% $state.input %}", "Credentials": {}, "End": true}}});
        only(jsonata, SCHEMA_VALIDATION_FAILED, "/States/State0/Credentials");
    }

    #[test]
    fn choice_rules() {
        let choice = |rules: Value| json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": rules, "Default": "Done"}, "Done": {"Type": "Succeed"}}});
        ok(choice(json!([
            {"Variable": "$.n", "NumericEquals": 1, "Next": "Done"},
            {"Or": [{"Variable": "$.n", "NumericLessThanPath": "$.m"}, {"Not": {"Variable": "$.s", "IsNull": true}}], "Next": "Done"},
            {"Variable": "$.t", "TimestampGreaterThan": "2020-01-01T00:00:00Z", "Next": "Done"}
        ])));
        only(choice(json!([])), SCHEMA_VALIDATION_FAILED, "/States/C/Choices");
        only(
            choice(json!([{"Variable": "$.n", "Next": "Done"}])),
            SCHEMA_VALIDATION_FAILED,
            "/States/C/Choices[0]",
        );
        only(
            choice(json!([{"Variable": "$.n", "NumericEquals": 1, "StringEquals": "a", "Next": "Done"}])),
            SCHEMA_VALIDATION_FAILED,
            "/States/C/Choices[0]",
        );
        only(
            choice(json!([{"NumericEquals": 1, "Next": "Done"}])),
            SCHEMA_VALIDATION_FAILED,
            "/States/C/Choices[0]",
        );
        only(
            choice(json!([{"Variable": "$.n", "NumericEquals": 1}])),
            SCHEMA_VALIDATION_FAILED,
            "/States/C/Choices[0]",
        );
        only(
            choice(
                json!([{"And": [{"Variable": "$.n", "NumericEquals": 1, "Next": "Done"}], "Next": "Done"}]),
            ),
            SCHEMA_VALIDATION_FAILED,
            "/States/C/Choices[0]/And[0]",
        );
        only(
            choice(json!([{"Variable": "$.n", "NumericEquals": "1", "Next": "Done"}])),
            SCHEMA_VALIDATION_FAILED,
            "/States/C/Choices[0]/NumericEquals",
        );
        only(
            choice(json!([{"Variable": "$.n", "IsNull": "yes", "Next": "Done"}])),
            SCHEMA_VALIDATION_FAILED,
            "/States/C/Choices[0]/IsNull",
        );
        only(
            choice(
                json!([{"Variable": "States.ArrayContains($.a, 'x')", "BooleanEquals": true, "Next": "Done"}]),
            ),
            SCHEMA_VALIDATION_FAILED,
            "/States/C/Choices[0]/Variable",
        );
        only(
            choice(json!([{"Variable": "$.t", "TimestampEquals": "yesterday", "Next": "Done"}])),
            SCHEMA_VALIDATION_FAILED,
            "/States/C/Choices[0]/TimestampEquals",
        );
        let end = errors(choice(json!([{"Variable": "$.x", "NumericEquals": 1, "End": true}])));
        assert_eq!(end, vec![(SCHEMA_VALIDATION_FAILED.into(), "/States/C/Choices[0]".into()); 2]);
        let jsonata = json!({"QueryLanguage": "JSONata", "StartAt": "C", "States": {"C": {"Type": "Choice",
            "Choices": [{"Condition": "{% $states.input.n > 1 %}", "Next": "Done"}, {"Variable": "$.x", "IsNull": true, "Next": "Done"}],
            "Default": "Done"}, "Done": {"Type": "Succeed"}}});
        assert_eq!(
            errors(jsonata),
            vec![
                (SCHEMA_VALIDATION_FAILED.into(), "/States/C/Choices[1]".into()),
                (SCHEMA_VALIDATION_FAILED.into(), "/States/C/Choices[1]".into()),
                (SCHEMA_VALIDATION_FAILED.into(), "/States/C/Choices[1]".into()),
            ]
        );
    }

    #[test]
    fn retry_and_catch() {
        let task = |f: Value| {
            let mut s = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Done"});
            s.as_object_mut().unwrap().extend(f.as_object().unwrap().clone());
            one(s)
        };
        ok(task(
            json!({"Retry": [{"ErrorEquals": ["A"], "IntervalSeconds": 1, "MaxAttempts": 0, "BackoffRate": 1.5,
            "MaxDelaySeconds": 5, "JitterStrategy": "FULL"}, {"ErrorEquals": ["States.ALL"]}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done", "ResultPath": "$.error"}]}),
        ));
        only(
            task(json!({"Retry": [{"ErrorEquals": []}]})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Retry[0]/ErrorEquals",
        );
        only(
            task(json!({"Retry": [{"ErrorEquals": [true]}]})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Retry[0]/ErrorEquals[0]",
        );
        only(
            task(json!({"Retry": [{"ErrorEquals": ["States.ALL", "A"]}]})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Retry[0]/ErrorEquals",
        );
        only(
            task(json!({"Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["A"]}]})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Retry[0]",
        );
        only(
            task(json!({"Retry": [{"ErrorEquals": ["A"], "BackoffRate": 0.5}]})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Retry[0]/BackoffRate",
        );
        only(
            task(json!({"Retry": [{"ErrorEquals": ["A"], "JitterStrategy": "SOME"}]})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Retry[0]/JitterStrategy",
        );
        let typo = errors(task(json!({"Catch": [{"Error Equals": ["A"], "Next": "Done"}]})));
        assert_eq!(typo, vec![(SCHEMA_VALIDATION_FAILED.into(), "/States/S/Catch[0]".into()); 2]);
        only(
            task(json!({"Catch": [{"ErrorEquals": ["A"]}]})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Catch[0]",
        );
        only(
            task(
                json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}, {"ErrorEquals": ["A"], "Next": "Done"}]}),
            ),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Catch[0]",
        );
    }

    #[test]
    fn parallel_branches() {
        let par = |b: Value| json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": b, "End": true}}});
        only(
            json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true}}}),
            SCHEMA_VALIDATION_FAILED,
            "/States/P",
        );
        only(par(json!([])), SCHEMA_VALIDATION_FAILED, "/States/P/Branches");
        only(
            par(json!([[{"StartAt": "B", "States": {"B": {"Type": "Fail"}}}]])),
            SCHEMA_VALIDATION_FAILED,
            "/States/P/Branches[0]",
        );
        only(
            par(json!([{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1}}}])),
            SCHEMA_VALIDATION_FAILED,
            "/States/P/Branches[0]/States/W",
        );
    }

    #[test]
    fn map_fields() {
        let map = |f: Value| {
            let mut s = json!({"Type": "Map", "Next": "Done", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}});
            s.as_object_mut().unwrap().extend(f.as_object().unwrap().clone());
            one(s)
        };
        ok(map(
            json!({"ItemsPath": "$.items", "MaxConcurrency": 0, "ToleratedFailureCount": 0, "ToleratedFailurePercentage": 0}),
        ));
        ok(map(json!({"MaxConcurrency": 9_223_372_036_854_775_807u64})));
        only(one(json!({"Type": "Map", "Next": "Done"})), SCHEMA_VALIDATION_FAILED, "/States/S");
        only(map(json!({"MaxConcurrency": -1})), SCHEMA_VALIDATION_FAILED, "/States/S/MaxConcurrency");
        only(
            map(json!({"MaxConcurrency": 2, "MaxConcurrencyPath": "$.n"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/MaxConcurrency",
        );
        only(
            map(json!({"MaxConcurrencyPath": "$.n[*]"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/MaxConcurrencyPath",
        );
        only(
            map(json!({"ToleratedFailurePercentage": 105})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ToleratedFailurePercentage",
        );
        only(
            map(json!({"ToleratedFailureCount": 0, "ToleratedFailureCountPath": "$.f"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ToleratedFailureCount",
        );
        only(
            map(json!({"ItemBatcher": {"MaxItemsPerBatch": 2, "MaxItemsPerBatchPath": "$.b"}})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ItemBatcher",
        );
        only(
            map(json!({"ItemBatcher": {"BatchInput": {}}})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ItemBatcher",
        );
        let proc = |config: Value| {
            one(
                json!({"Type": "Map", "Next": "Done", "ItemProcessor": {"ProcessorConfig": config, "StartAt": "P",
                "States": {"P": {"Type": "Pass", "End": true}}}}),
            )
        };
        ok(proc(json!({"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"})));
        only(
            proc(json!({"Mode": "SOMETIMES"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ItemProcessor/ProcessorConfig/Mode",
        );
        only(
            proc(json!({"Mode": "DISTRIBUTED"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ItemProcessor/ProcessorConfig",
        );
        let reader = |r: Value| map(json!({"ItemReader": r}));
        ok(reader(json!({"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "CSV",
            "CSVHeaderLocation": "FIRST_ROW", "MaxItems": 1}, "Parameters": {"Bucket": "b", "Key": "k"}})));
        only(
            reader(json!({"Resource": "arn:aws:states:::s3:unknownOperation"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ItemReader/Resource",
        );
        only(
            reader(
                json!({"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "XML"}}),
            ),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ItemReader/ReaderConfig/InputType",
        );
        only(
            reader(
                json!({"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"MaxItems": 1, "MaxItemsPath": "$.m"}}),
            ),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ItemReader/ReaderConfig/MaxItems",
        );
        let writer = |w: Value| map(json!({"ResultWriter": w}));
        ok(writer(
            json!({"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b", "Prefix": "p"}}),
        ));
        only(writer(json!({})), SCHEMA_VALIDATION_FAILED, "/States/S/ResultWriter");
        only(
            writer(json!({"Resource": "arn:aws:states:::s3:putObject"})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ResultWriter",
        );
        only(
            writer(json!({"WriterConfig": {"Transformation": "COMPACT"}})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ResultWriter/WriterConfig",
        );
        only(
            writer(json!({"Resource": "arn:aws:states:::s3:putObject", "Parameters": {}, "Arguments": {}})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/ResultWriter/Arguments",
        );
    }

    #[test]
    fn map_labels() {
        let map = |label: &str| {
            one(
                json!({"Type": "Map", "Label": label, "Next": "Done", "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED",
                "ExecutionType": "STANDARD"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}),
            )
        };
        ok(map("label_1-A"));
        assert_eq!(only(map(""), INVALID_LABEL_NAME, "/States/S/Label").message, "Label cannot be empty");
        assert_eq!(
            only(map(&"1".repeat(41)), INVALID_LABEL_NAME, "/States/S/Label").message,
            "Label cannot exceed 40 characters"
        );
        for (label, shown) in [
            ("label_ ", "' '"),
            ("label_;", "';'"),
            ("label_\\", "'\\\\'"),
            ("label_\r", "'\\r'"),
            ("label_\u{1}", "'\\x01'"),
            ("label_\u{9f}", "'\\x9f'"),
            ("label_\"", "'\"'"),
        ] {
            let d = only(map(label), INVALID_LABEL_NAME, "/States/S/Label");
            assert_eq!(d.message, format!("Label contains invalid character: {shown}"));
        }
        let twice = json!({"StartAt": "A", "States": {
            "A": {"Type": "Map", "Label": "L", "Next": "B", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}},
            "B": {"Type": "Map", "Label": "L", "End": true, "ItemProcessor": {"StartAt": "Q", "States": {"Q": {"Type": "Pass", "End": true}}}}}});
        only(twice, DUPLICATE_LABEL_NAME, "/States/B/Label");
    }

    #[test]
    fn jsonata_expressions() {
        let output = |o: Value| json!({"QueryLanguage": "JSONata", "StartAt": "Main", "States": {"Main": {"Type": "Pass", "Output": o, "End": true}}});
        ok(output(json!("{% $states.input.items %}")));
        ok(output(json!({"a": ["{% 1+2 %}", "plain text", "10 %}"]})));
        ok(output(json!("{%10%}")));
        for (expr, message) in [
            ("a[1,2)", "Expected \"]\", got \",\""),
            ("\"unterminated", "String literal must be terminated by a matching quote"),
            ("1 +", "Unexpected end of expression"),
            ("{\"a\":}", "The symbol \"}\" cannot be used as a unary operator"),
            ("phone %.other", "The symbol \".\" cannot be used as a unary operator"),
            ("", "Unexpected end of expression"),
        ] {
            let d = only(
                output(json!(format!("{{% {expr} %}}"))),
                INVALID_JSONATA_EXPRESSION,
                "/States/Main/Output",
            );
            assert_eq!(d.message, message, "{expr}");
        }
        only(output(json!({"x": ["{% 420. %}"]})), INVALID_JSONATA_EXPRESSION, "/States/Main/Output/x[0]");
        only(output(json!("{% 10 %")), SCHEMA_VALIDATION_FAILED, "/States/Main/Output");
        let d = only(output(json!("{% $$ %}")), UNSUPPORTED_JSONATA_EXPRESSION, "/States/Main/Output");
        assert_eq!(d.message, "Reference to '$$' is not supported.");
        let d = only(
            output(json!("{% $states.errorOutput %}")),
            UNSUPPORTED_JSONATA_EXPRESSION,
            "/States/Main/Output",
        );
        assert_eq!(d.message, "Field '$states.errorOutput' does not exist.");
        // A state without a result has no `$states.result` either (recorded on AWS for a Pass
        // state's Output, gabrielmoreira/tiny-asl-machine Feature.JSONataValidation-002).
        let pass = json!({"QueryLanguage": "JSONata", "StartAt": "P",
            "States": {"P": {"Type": "Pass", "Output": "{% $states.result %}", "End": true}}});
        let d = only(pass, UNSUPPORTED_JSONATA_EXPRESSION, "/States/P/Output");
        assert_eq!(d.message, "Field '$states.result' does not exist.");
        ok(json!({"QueryLanguage": "JSONata", "StartAt": "T", "States": {"T": {"Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "Output": "{% $states.result %}", "End": true}}}));
        let caught = json!({"QueryLanguage": "JSONata", "StartAt": "Main", "States": {
            "Main": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Handled",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handled", "Output": "{% $states.errorOutput %}",
                    "Assign": {"e": "{% $states.errorOutput %}"}}]},
            "Handled": {"Type": "Pass", "End": true}}});
        ok(caught);
    }

    #[test]
    fn jsonata_typed_fields() {
        let m = |states: Value| json!({"QueryLanguage": "JSONata", "StartAt": "S", "States": states});
        ok(m(
            json!({"S": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": "{% 120 %}",
            "HeartbeatSeconds": "{% 20 %}", "End": true}}),
        ));
        ok(m(json!({"S": {"Type": "Wait", "Seconds": "{% $states.input.n %}", "Next": "T"},
            "T": {"Type": "Wait", "Timestamp": "{% $states.input.t %}", "End": true}})));
        ok(m(
            json!({"S": {"Type": "Map", "Items": "{% $states.input.a %}", "MaxConcurrency": "{% 2 %}", "End": true,
            "ItemSelector": {"v": "{% $states.context.Map.Item.Value %}"},
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}),
        ));
        only(
            m(json!({"S": {"Type": "Map", "Items": "{% $states.input.a %}", "ItemsPath": "$.a", "End": true,
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S",
        );
        only(
            m(
                json!({"S": {"Type": "Pass", "Assign": {"top": {"array": [{"c": "{% 420. %}"}]}}, "End": true}}),
            ),
            INVALID_JSONATA_EXPRESSION,
            "/States/S/Assign/top/array[0]/c",
        );
        only(
            m(json!({"S": {"Type": "Map", "Items": "abc", "End": true,
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}})),
            SCHEMA_VALIDATION_FAILED,
            "/States/S/Items",
        );
        // In a JSONPath state "{% ... %}" is just text.
        ok(one(json!({"Type": "Pass", "Result": "{% not jsonata", "Next": "Done"})));
    }

    #[test]
    fn schema_failures_are_worded_as_aws_words_them() {
        // Each as recorded on AWS (gabrielmoreira/tiny-asl-machine, Feature.ChoiceValidation,
        // Feature.WaitValidation, Validation.Structure and Validation.BasicStructure).
        let message = |def: Value, location: &str| only(def, SCHEMA_VALIDATION_FAILED, location).message;
        assert_eq!(
            message(one(json!({"Type": "Choice", "Choices": [], "Default": "Done"})), "/States/S/Choices"),
            EMPTY
        );
        let rule = |r: Value| one(json!({"Type": "Choice", "Choices": [r], "Default": "Done"}));
        let none = message(rule(json!({"Variable": "$.x", "Next": "Done"})), "/States/S/Choices[0]");
        assert!(none.starts_with(
            "This object should have only one of the following fields: [StringEquals, IsBoolean,"
        ));
        let both =
            rule(json!({"Variable": "$.x", "StringEquals": "a", "NumericGreaterThan": 1, "Next": "Done"}));
        assert!(message(both, "/States/S/Choices[0]")
            .starts_with("There should only be one of the following fields:"));
        assert_eq!(
            message(
                rule(json!({"Variable": "x", "StringEquals": "a", "Next": "Done"})),
                "/States/S/Choices[0]/Variable"
            ),
            "Value is not a Reference Path: Reference path didn't start with '$'"
        );
        assert_eq!(
            message(one(json!({"Type": "Wait", "Seconds": 1, "Timestamp": "2024-01-01T00:00:00Z", "Next": "Done"})), "/States/S"),
            "There should only be one of the following fields: [SecondsPath, Seconds, TimestampPath, Timestamp]"
        );
        assert_eq!(
            message(one(json!({"Type": "Wait", "Next": "Done"})), "/States/S"),
            "This object should have only one of the following fields: [SecondsPath, Seconds, TimestampPath, Timestamp]"
        );
        assert_eq!(
            message(one(json!({"Type": "Wait", "Seconds": 1.5, "Next": "Done"})), "/States/S/Seconds"),
            "Expected value of type Integer"
        );
        assert_eq!(
            message(one(json!({"Type": "Nope", "Next": "Done"})), "/States/S/Type"),
            "The field 'Type' should have one of these values: [Task, Wait, Pass, Succeed, Fail, Choice, Parallel, Map]"
        );
        let task = |retry: Value| {
            one(
                json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "Retry": retry, "Next": "Done"}),
            )
        };
        let alone = task(json!([{"ErrorEquals": ["States.ALL", "X"]}]));
        assert_eq!(message(alone, "/States/S/Retry[0]/ErrorEquals"), STATES_ALL);
        let last = task(json!([{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]));
        assert_eq!(message(last, "/States/S/Retry[0]"), STATES_ALL);
        // A state of an unknown type with "End" ends its machine; one without a Type does not.
        let unknown =
            validate(&json!({"StartAt": "First", "States": {"First": {"Type": "Nope", "End": true}}}));
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        // A state without a Type ends nothing, "End" or not: AWS gives both diagnostics.
        let untyped = validate(&json!({"StartAt": "First", "States": {"First": {"End": true}}}));
        let got: Vec<(&str, &str)> = untyped.iter().map(|d| (d.code.as_str(), d.message.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (SCHEMA_VALIDATION_FAILED, "The field 'Type' is required"),
                (MISSING_END_STATE, "Workflow has no terminal state")
            ]
        );
    }

    #[test]
    fn an_inner_scope_may_not_assign_a_variable_an_outer_scope_assigns() {
        // Recorded on AWS (gabrielmoreira/tiny-asl-machine, Feature.JsonataScopeSource-001 and
        // Feature.JSONataComposition-006): a Map iteration or a Parallel branch reassigning the
        // outer scope's variable is refused.
        let inner = json!({"StartAt": "Shadow", "States": {"Shadow": {"Type": "Pass",
            "QueryLanguage": "JSONata", "Assign": {"shared": "inner"}, "End": true}}});
        let outer = |state: Value| {
            json!({"StartAt": "Seed", "States": {
                "Seed": {"Type": "Pass", "QueryLanguage": "JSONata", "Assign": {"shared": "outer"}, "Next": "In"},
                "In": state}})
        };
        let map = outer(json!({"Type": "Map", "ItemsPath": "$.items", "Iterator": inner, "End": true}));
        let d = only(map, SCHEMA_VALIDATION_FAILED, "/States/In/Iterator/States/Shadow/Assign");
        assert_eq!(d.message, "The variable name 'shared' was already defined in a parent scope.");
        let parallel = outer(json!({"Type": "Parallel", "Branches": [inner.clone()], "End": true}));
        only(parallel, SCHEMA_VALIDATION_FAILED, "/States/In/Branches[0]/States/Shadow/Assign");
        // A JSONPath Assign's "name.$" names the same variable; other names are free.
        let path_assign = outer(json!({"Type": "Parallel", "End": true, "Branches": [{"StartAt": "S",
            "States": {"S": {"Type": "Pass", "Assign": {"shared.$": "$.x"}, "End": true}}}]}));
        only(path_assign, SCHEMA_VALIDATION_FAILED, "/States/In/Branches[0]/States/S/Assign");
        ok(outer(json!({"Type": "Parallel", "End": true, "Branches": [{"StartAt": "S",
            "States": {"S": {"Type": "Pass", "Assign": {"mine": 1}, "End": true}}}]})));
    }

    #[test]
    fn python_repr_matches_awss_label_messages() {
        assert_eq!(python_repr('a'), "'a'");
        assert_eq!(python_repr('\''), "\"'\"");
        assert_eq!(python_repr('\u{7f}'), "'\\x7f'");
    }
}
