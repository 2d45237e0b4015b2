//! The config compiled whole, once, for both `stepgate serve` and `stepgate validate
//! --config`: the workflows folder read and every definition checked as its type (an EXPRESS
//! workflow is held to what Express machines may do), every trigger compiled by its own
//! module, and every cross-reference checked (a trigger's workflow, a `[workflow.NAME]`
//! without a file, a broker by name, routes that collide, a Task resource that no connector
//! of the config serves). Every problem is collected, none
//! stops the others from being found.

use super::{Config, Problem, WorkflowType};
use crate::asl::validate::{self, Diagnostic, MachineType as ValidateType, Severity};
use crate::asl::Machine;
use crate::connectors::Registry;
use crate::store::MachineType;
use crate::triggers::{http, Plan, Refs};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What checking one definition found.
#[derive(Debug, Clone)]
pub enum Checked {
    Syntax(validate::SyntaxError),
    Diagnostics(Vec<Diagnostic>),
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        match self {
            Checked::Syntax(_) => true,
            Checked::Diagnostics(d) => d.iter().any(|d| d.severity == Severity::Error),
        }
    }
}

/// Parses and checks a definition's text as a machine of `kind`.
pub fn check_text(text: &str, kind: ValidateType) -> (Option<Value>, Checked) {
    match validate::parse_text(text) {
        Err(e) => (None, Checked::Syntax(e)),
        Ok(v) => {
            let d = validate::validate_for(&v, kind);
            (Some(v), Checked::Diagnostics(d))
        }
    }
}

/// One file of the workflows folder and what checking it found.
#[derive(Debug, Clone)]
pub struct CheckedFile {
    pub file: PathBuf,
    pub checked: Checked,
}

/// A workflow that loads.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub file: PathBuf,
    pub definition: String,
    pub machine_type: MachineType,
    pub machine: Arc<Machine>,
    /// Express: keep each execution's history in memory.
    pub history: bool,
}

/// A config compiled: what runs, and every problem found.
pub struct Compiled {
    pub config: Config,
    /// The workflows that load.
    pub workflows: Vec<Workflow>,
    /// Every file of the workflows folder, with its diagnostics.
    pub files: Vec<CheckedFile>,
    /// The triggers that compiled.
    pub plan: Plan,
    /// Problems of the config itself (keys, triggers, references).
    pub problems: Vec<Problem>,
}

impl Compiled {
    /// Nothing wrong anywhere: every workflow loads and the config has no problem.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.files.iter().all(|f| !f.checked.has_errors())
    }

    /// Every problem as one line each: the config's (`KEY: message`) and the workflows'
    /// (`FILE: error[CODE] at LOCATION: message`).
    pub fn errors(&self) -> Vec<String> {
        let mut out: Vec<String> = self.problems.iter().map(|p| p.to_string()).collect();
        for f in &self.files {
            match &f.checked {
                Checked::Syntax(e) => out.push(format!("{}:{e}", f.file.display())),
                Checked::Diagnostics(ds) => {
                    for d in ds.iter().filter(|d| d.severity == Severity::Error) {
                        let at = if d.location.is_empty() { "/" } else { &d.location };
                        out.push(format!("{}: error[{}] at {at}: {}", f.file.display(), d.code, d.message));
                    }
                }
            }
        }
        out
    }
}

/// The workflow files of a workflows folder, sorted: every `*.json` but the inputs and mock
/// configs that live beside the workflows.
pub fn workflow_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".json") && !name.ends_with(".input.json") && !name.ends_with(".mock.json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The state machine name of a workflow file: its stem, without `.asl`.
pub fn workflow_name(file: &Path) -> String {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    stem.strip_suffix(".asl").unwrap_or(stem).to_string()
}

/// Compiles `config`: reads its workflows folder, checks every definition and every
/// trigger, and collects every problem.
pub fn compile(config: Config) -> Compiled {
    let mut problems = Vec::new();
    let dir = PathBuf::from(&config.workflows.dir);
    let mut files = Vec::new();
    let mut workflows = Vec::new();
    // The connectors as the config makes them, to check each Task's resource against.
    let connectors = crate::connectors::build(&config, Arc::new(crate::store::memory::MemoryStore::new()));
    match workflow_files(&dir) {
        Ok(paths) => {
            for file in paths {
                let (checked, workflow) = load(&config, &connectors.registry, &file);
                workflows.extend(workflow);
                files.push(CheckedFile { file, checked });
            }
        }
        Err(e) => problems.push(Problem::new(
            "workflows.dir",
            format!("the workflows folder {} cannot be read: {e}", dir.display()),
        )),
    }
    let types: BTreeMap<String, MachineType> =
        workflows.iter().map(|w| (w.name.clone(), w.machine_type)).collect();
    let broken: Vec<String> =
        files.iter().filter(|f| f.checked.has_errors()).map(|f| workflow_name(&f.file)).collect();
    for (name, w) in &config.workflow {
        if !w.history && w.kind == WorkflowType::Standard {
            problems.push(Problem::new(
                format!("workflow.{name}.history"),
                "a Standard workflow's history is its journal and is always kept; only an EXPRESS \
                 workflow can go without",
            ));
        }
        if !types.contains_key(name) && !broken.contains(name) {
            problems.push(Problem::new(
                format!("workflow.{name}"),
                format!("no workflow file {name}.asl.json in the workflows folder ({})", dir.display()),
            ));
        }
    }
    storage_problems(&config.storage, &mut problems);
    if let Some(b) = &config.iotdata.broker {
        if !config.brokers.contains_key(b) {
            let known: Vec<&str> = config.brokers.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            problems.push(Problem::new("iotdata.broker", format!("no [brokers.{b}] (configured: {known})")));
        }
    }
    for (name, f) in &config.functions {
        let key = |field: &str| format!("functions.{name}.{field}");
        match (f.command.is_empty(), &f.url) {
            (true, None) => {
                problems.push(Problem::new(format!("functions.{name}"), "needs a command or a url"))
            }
            (false, Some(_)) => {
                problems.push(Problem::new(key("url"), "a function is a command or a url, not both"))
            }
            (true, Some(url)) => {
                if reqwest::Url::parse(url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) {
                    problems
                        .push(Problem::new(key("url"), format!("'{url}' is not an http:// or https:// URL")));
                }
                if f.cwd.is_some() || !f.env.is_empty() {
                    problems.push(Problem::new(
                        key("url"),
                        "cwd and env are a command's; an endpoint has neither",
                    ));
                }
            }
            (false, None) => {}
        }
        if f.timeout_seconds == Some(0) {
            problems.push(Problem::new(key("timeout_seconds"), "must be at least 1"));
        }
    }
    for (name, c) in &config.connections {
        if let Some(why) = c.problem() {
            problems.push(Problem::new(format!("connections.{name}"), why));
        }
    }
    let refs = Refs {
        workflows: &types,
        broken: &broken,
        region: &config.region,
        account: &config.account,
        payload_bytes: config.limits.payload_bytes,
    };
    let plan = Plan::compile(&config.triggers, &config.brokers, &refs, &mut problems);
    let shared = routes_share_the_api_listener(&config);
    http::check_overlaps(&plan.routes, shared, &mut problems);
    let routes_listen = if shared { &config.server.listen } else { &config.http.listen };
    if plan.routes.iter().any(http::Route::is_open) && is_loopback(routes_listen) == Some(false) {
        let open: Vec<&str> = plan.routes.iter().filter(|r| r.is_open()).map(|r| r.name.as_str()).collect();
        problems.push(Problem::new(
            if shared { "server.listen" } else { "http.listen" },
            format!(
                "{routes_listen} is not a loopback address, and these routes have no api_keys, so anyone on the \
                 network could start their workflows: {}. Give each api_keys, or listen on 127.0.0.1",
                open.join(", ")
            ),
        ));
    }
    Compiled { config, workflows, files, plan, problems }
}

/// Checks one workflow file as the workflow its name and `[workflow.NAME]` make it.
fn load(config: &Config, registry: &Registry, file: &Path) -> (Checked, Option<Workflow>) {
    let name = workflow_name(file);
    let settings = config.workflow.get(&name);
    let kind = match settings.map(|w| w.kind) {
        Some(WorkflowType::Express) => MachineType::Express,
        _ => MachineType::Standard,
    };
    let history = settings.is_none_or(|w| w.history);
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            let d = diagnostic("STATES.READ", format!("the file cannot be read: {e}"));
            return (Checked::Diagnostics(vec![d]), None);
        }
    };
    let vt = if kind == MachineType::Express { ValidateType::Express } else { ValidateType::Standard };
    let (value, mut checked) = check_text(&text, vt);
    if let Err(e) = crate::service::check_name(&name) {
        let d = diagnostic(
            e.kind,
            format!(
                "The file name makes '{name}' the state machine's name, which AWS's naming rules refuse \
                 (1 to 80 characters; no whitespace, brackets, wildcards, control characters or any of \
                 \"#%\\^|~`$&,;:/): {}",
                e.message
            ),
        );
        match &mut checked {
            Checked::Diagnostics(ds) => ds.insert(0, d),
            // The text's error comes first; the name's shows once the text parses.
            Checked::Syntax(_) => return (checked, None),
        }
    }
    if let (Some(v), Checked::Diagnostics(ds)) = (&value, &mut checked) {
        for (location, resource, params) in crate::connectors::task_states(v) {
            if let Err(message) = registry.check(resource, params) {
                ds.push(Diagnostic {
                    severity: Severity::Error,
                    code: "STATES.UNSERVED_RESOURCE".into(),
                    message,
                    location,
                });
            }
        }
    }
    if checked.has_errors() {
        return (checked, None);
    }
    let Some(value) = value else { return (checked, None) };
    match crate::asl::compile(&value) {
        Ok(machine) => (
            checked,
            Some(Workflow {
                name,
                file: file.to_path_buf(),
                definition: text,
                machine_type: kind,
                machine: Arc::new(machine),
                history,
            }),
        ),
        Err(ds) => (Checked::Diagnostics(ds), None),
    }
}

fn diagnostic(code: &str, message: String) -> Diagnostic {
    Diagnostic { severity: Severity::Error, code: code.to_string(), message, location: String::new() }
}

/// Whether the HTTP routes are served on the API's listener: `http.listen` is empty or the
/// same address (port 0 asks for a port of its own each time, so it is never the same).
pub fn routes_share_the_api_listener(config: &Config) -> bool {
    let h = &config.http.listen;
    h.is_empty() || (*h == config.server.listen && !h.ends_with(":0"))
}

/// Whether `listen` (host:port) stands only for loopback addresses; `None` when it does not
/// resolve (binding it will say why).
pub fn is_loopback(listen: &str) -> Option<bool> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = listen.to_socket_addrs().ok()?.collect();
    if addrs.is_empty() {
        return None;
    }
    Some(addrs.iter().all(|a| a.ip().to_canonical().is_loopback()))
}

/// The `[storage]` keys that only make sense together.
fn storage_problems(storage: &crate::config::StorageConfig, problems: &mut Vec<Problem>) {
    use crate::config::Backend;
    match storage.backend {
        Backend::Sqlite => {}
        Backend::Postgres if !cfg!(feature = "postgres") => problems.push(Problem::new(
            "storage.backend",
            "this stepgate was built without the postgres feature (cargo build --features postgres)",
        )),
        Backend::Postgres => {
            if storage.url.as_deref().is_none_or(str::is_empty) {
                problems.push(Problem::new(
                    "storage.url",
                    "backend = \"postgres\" needs the database's URL (postgres://user@host:5432/db), \
                     here or in STEPGATE_STORAGE__URL",
                ));
            }
            if storage.pool_size == 0 {
                problems.push(Problem::new("storage.pool_size", "must be at least 1"));
            }
            if storage.lease_seconds < 2 {
                problems.push(Problem::new("storage.lease_seconds", "must be at least 2"));
            }
        }
    }
}
