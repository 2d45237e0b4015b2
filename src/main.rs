//! The `stepgate` command line: `validate` checks definitions, `run` runs one execution
//! in-process. It parses arguments, reads files, and hands over to the library; `anyhow`
//! lives only here.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use stepgate::asl::validate::{self, Diagnostic};
use stepgate::config::compile::{self, Checked};
use stepgate::config::Config;
use stepgate::engine::{Engine, Outcome, Start, Status};
use stepgate::mock::MockConfig;
use stepgate::time::Clock;

// Requests and executions allocate many small, short-lived values from every worker thread;
// glibc's malloc spent a quarter of the daemon's CPU on them, much of it on arena locks.
// Metered: a JSONata evaluation that allocates past limits.expression_memory_bytes is
// cancelled instead of aborting the process (see stepgate::memory).
#[global_allocator]
static GLOBAL: stepgate::memory::Metered<stepgate::memory::Mimalloc> =
    stepgate::memory::Metered(stepgate::memory::Mimalloc);

#[derive(Parser)]
#[command(name = "stepgate", version, about = "A self-hosted AWS Step Functions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: the AWS Step Functions API over the workflows folder, with durable
    /// Standard executions.
    Serve {
        /// The config file (defaults, then this file, then STEPGATE_* variables).
        #[arg(long, default_value = "config/stepgate.toml")]
        config: PathBuf,
    },
    /// Check Amazon States Language definitions; every problem of every file is reported.
    Validate {
        #[arg(required_unless_present = "config")]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Also check this config file and every workflow of its workflows folder (what the
        /// systemd unit runs before starting the daemon).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run one execution of a definition in-process and print its result.
    Run {
        file: PathBuf,
        /// The execution input as JSON text.
        #[arg(long, conflicts_with = "input_file")]
        input: Option<String>,
        /// A file holding the execution input.
        #[arg(long)]
        input_file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Print the execution history as GetExecutionHistory events.
        #[arg(long)]
        history: bool,
        /// Real seconds spent per second of Wait or Retry interval (0: none; the
        /// workflow's clock still moves).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// A Step Functions Local mock config file.
        #[arg(long, requires = "test_case")]
        mock_config: Option<PathBuf>,
        /// The test case of the mock config to use.
        #[arg(long, requires = "mock_config")]
        test_case: Option<String>,
        /// The stepgate config (local functions, limits).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run N executions and print executions/s and transitions/s on stderr.
        #[arg(long, default_value_t = 1)]
        repeat: u64,
        /// The execution name (a UUID by default).
        #[arg(long)]
        name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Validate { files, format, config } => validate_with_config(files, format, config),
        Command::Run {
            file,
            input,
            input_file,
            format,
            history,
            time_scale,
            mock_config,
            test_case,
            config,
            repeat,
            name,
        } => run(RunArgs {
            file,
            input,
            input_file,
            format,
            history,
            time_scale,
            mock_config,
            test_case,
            config,
            repeat,
            name,
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stepgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `mi_option_purge_delay` and `mi_option_allow_thp` in mimalloc.h's `mi_option_e` (v3, as
/// libmimalloc-sys builds it; it names no constants for them).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// mimalloc keeps the pages a thread freed for that thread's next allocations, and purges
/// them only 10 ms later on that thread's next call into it; after a burst (large request
/// bodies, thousands of executions) they would hold the daemon's resident memory up for good.
/// Pages are purged as soon as they are free, and a worker that runs out of work collects
/// its heap, at most once a second.
///
/// Transparent huge pages are off for the daemon: where the kernel gives them on request
/// (`madvise`, most distributions), mimalloc asks for them, and each thread's heap then holds
/// whole 2 MiB pages: 9 of an idle daemon's 12 MiB of anonymous memory were such pages, for
/// no throughput the load benchmark could measure.
///
/// An operator's `MIMALLOC_PURGE_DELAY` and `MIMALLOC_ALLOW_THP` win.
fn return_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide option before the runtime's threads exist.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: as above; prctl only sets this process's flag, which the kernel reads at
        // each page fault, so regions already reserved get small pages from now on too.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

fn release_idle_memory() {
    thread_local! {
        static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    }
    let now = std::time::Instant::now();
    if LAST.get().is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1)) {
        return;
    }
    LAST.set(Some(now));
    // SAFETY: mi_collect only walks and trims the calling thread's own heap.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

fn serve(config_file: &Path) -> Result<ExitCode> {
    return_memory_promptly();
    let config = match Config::load(Some(config_file)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    init_logging(config.log.format);
    let workers = config.server.workers();
    let compiled = stepgate::config::compile::compile(config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .on_thread_park(release_idle_memory)
        .build()?;
    match rt.block_on(stepgate::daemon::serve(config_file.to_path_buf(), compiled)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(stepgate::daemon::DaemonError::Config(problems)) => {
            for p in &problems {
                tracing::error!(problem = %p, "The config has a problem; the daemon does not start.");
            }
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// `log.format`: text (colours only when stderr is a terminal: under systemd every escape
/// code would land in the journal) or JSON lines; `STEPGATE_LOG` is the filter.
fn init_logging(format: stepgate::config::LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("STEPGATE_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        stepgate::config::LogFormat::Json => builder.json().with_current_span(false).init(),
        stepgate::config::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn check(file: &Path) -> Result<(Option<Value>, Checked)> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(compile::check_text(&text, validate::MachineType::Standard))
}

fn validate_with_config(files: Vec<PathBuf>, format: Format, config: Option<PathBuf>) -> Result<ExitCode> {
    let mut reports = Vec::new();
    let mut ok = true;
    for f in &files {
        let (_, checked) = check(f)?;
        ok &= !checked.has_errors();
        report(f, &checked, format, &mut reports);
    }
    if let Some(c) = config {
        let config = match Config::load(Some(&c)) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(1));
            }
        };
        // The same compile step as `serve`: the workflows as their types, the triggers,
        // every cross-reference.
        let compiled = compile::compile(config);
        for f in &compiled.files {
            ok &= !f.checked.has_errors();
            report(&f.file, &f.checked, format, &mut reports);
        }
        ok &= compiled.problems.is_empty();
        let diagnostics: Vec<Diagnostic> = compiled
            .problems
            .iter()
            .map(|p| Diagnostic {
                severity: validate::Severity::Error,
                code: "CONFIG".into(),
                message: p.message.clone(),
                location: p.key.clone(),
            })
            .collect();
        let checked = Checked::Diagnostics(diagnostics);
        if format == Format::Json || !compiled.problems.is_empty() {
            report(&c, &checked, format, &mut reports);
        } else {
            println!("{}: OK", c.display());
        }
    }
    if format == Format::Json {
        let out = if reports.len() == 1 { reports.pop().unwrap_or_default() } else { Value::Array(reports) };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn report(file: &Path, checked: &Checked, format: Format, reports: &mut Vec<Value>) {
    match format {
        Format::Text => print_checked(file, checked),
        Format::Json => reports.push(json_report(file, checked)),
    }
}

fn print_checked(file: &Path, c: &Checked) {
    match c {
        Checked::Syntax(e) => eprintln!("{}:{e}", file.display()),
        Checked::Diagnostics(d) if d.is_empty() => println!("{}: OK", file.display()),
        Checked::Diagnostics(ds) => {
            for d in ds {
                let sev = match d.severity {
                    validate::Severity::Error => "error",
                    validate::Severity::Warning => "warning",
                };
                let at = if d.location.is_empty() { "/" } else { &d.location };
                eprintln!("{}: {sev}[{}] at {at}: {}", file.display(), d.code, d.message);
            }
        }
    }
}

fn json_report(file: &Path, c: &Checked) -> Value {
    let diagnostics = match c {
        Checked::Syntax(e) => vec![serde_json::to_value(e.diagnostic()).unwrap_or_default()],
        Checked::Diagnostics(d) => d.iter().map(|d| serde_json::to_value(d).unwrap_or_default()).collect(),
    };
    json!({
        "file": file.display().to_string(),
        "result": if c.has_errors() { "FAIL" } else { "OK" },
        "diagnostics": diagnostics,
        "truncated": false,
    })
}

struct RunArgs {
    file: PathBuf,
    input: Option<String>,
    input_file: Option<PathBuf>,
    format: Format,
    history: bool,
    time_scale: f64,
    mock_config: Option<PathBuf>,
    test_case: Option<String>,
    config: Option<PathBuf>,
    repeat: u64,
    name: Option<String>,
}

/// The workflow's name: its file stem without `.asl`.
fn workflow_name(file: &Path) -> String {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("workflow");
    stem.strip_suffix(".asl").unwrap_or(stem).to_string()
}

fn run(a: RunArgs) -> Result<ExitCode> {
    let (definition, checked) = check(&a.file)?;
    if checked.has_errors() {
        // `--format json` promises one JSON object on stdout, also for a bad definition.
        match a.format {
            Format::Json => println!("{}", serde_json::to_string(&json_report(&a.file, &checked))?),
            Format::Text => print_checked(&a.file, &checked),
        }
        return Ok(ExitCode::from(2));
    }
    let definition = definition.expect("a definition without errors was parsed");
    let machine = stepgate::asl::compile(&definition).map_err(|d| {
        anyhow::anyhow!(
            "{}: {}",
            a.file.display(),
            d.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; ")
        )
    })?;
    let input_text = match (&a.input, &a.input_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        (None, None) => "{}".to_string(),
    };
    let input = stepgate::engine::input::parse(&input_text).map_err(anyhow::Error::msg)?;
    let config = Config::load(a.config.as_deref())?;
    let name = workflow_name(&a.file);
    let mocks = match (&a.mock_config, &a.test_case) {
        (Some(f), Some(case)) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            let cfg = MockConfig::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            Some(cfg.test_case(&name, case).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?)
        }
        _ => None,
    };
    if a.time_scale.is_nan() || a.time_scale < 0.0 {
        anyhow::bail!("--time-scale must be a number >= 0");
    }
    // `run` keeps nothing: the connectors are the config's, over a store in memory.
    let built = stepgate::connectors::build(&config, Arc::new(stepgate::store::memory::MemoryStore::new()));
    let registry = match mocks {
        Some(case) => stepgate::mock::Mocked::wrap(built.registry, case),
        None => built.registry,
    };
    let engine = Engine::new(
        registry,
        Arc::new(Clock::new(a.time_scale)),
        config.limits(),
        &config.region,
        &config.account,
    )
    .with_task_limit(config.limits.running_tasks);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let repeat = a.repeat.max(1);
    let began = std::time::Instant::now();
    // All runs happen inside one runtime entry: the loop measures executions, not
    // runtime start-up.
    // Only executions that succeeded count toward the rate: a workflow that fails at its
    // first state would otherwise show a flattering number.
    let (transitions, succeeded, first_failure, outcome) = rt.block_on(async {
        let mut transitions = 0u64;
        let mut succeeded = 0u64;
        let mut first_failure = None;
        let mut outcome = None;
        // Repeated runs share one random prefix: names stay unique without a draw (or a
        // UUID's formatting) each.
        let batch = uuid::Uuid::new_v4().to_string();
        for i in 0..repeat {
            let start = Start {
                state_machine_name: name.clone(),
                execution_name: match &a.name {
                    Some(n) if repeat == 1 => n.clone(),
                    Some(n) => format!("{n}-{i}"),
                    None if repeat == 1 => uuid::Uuid::new_v4().to_string(),
                    None => format!("{batch}-{i}"),
                },
                input: input.clone(),
                record_history: a.history,
                express: false,
                ..Start::new(String::new(), String::new(), Value::Null)
            };
            let o = engine.run(&machine, start).await;
            if o.status == Status::Succeeded {
                succeeded += 1;
                transitions += o.transitions;
            } else if first_failure.is_none() {
                first_failure = Some((i, o.status, o.error.clone(), o.cause.clone()));
            }
            outcome = Some(o);
        }
        (transitions, succeeded, first_failure, outcome)
    });
    if a.repeat > 1 {
        let secs = began.elapsed().as_secs_f64();
        eprintln!(
            "{repeat} executions in {secs:.3} s ({succeeded} succeeded): {:.0} executions/s, \
             {:.0} state transitions/s of the executions that succeeded",
            repeat as f64 / secs,
            transitions as f64 / secs
        );
        if let Some((i, status, error, cause)) = first_failure {
            eprintln!(
                "{} of {repeat} executions did not succeed; the first (run {}) ended {}: {} {}",
                repeat - succeeded,
                i + 1,
                status.as_str(),
                error.unwrap_or_default(),
                cause.unwrap_or_default()
            );
        }
    }
    let outcome = outcome.expect("at least one execution ran");
    print_outcome(&outcome, a.format, a.history)?;
    Ok(if succeeded == repeat { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_outcome(o: &Outcome, format: Format, history: bool) -> Result<()> {
    match format {
        Format::Json => {
            let mut out = json!({"status": o.status.as_str()});
            match o.status {
                Status::Succeeded => out["output"] = o.output.clone().unwrap_or(Value::Null),
                // As DescribeExecution: an error or cause that was not given is left out.
                _ => {
                    if let Some(e) = &o.error {
                        out["error"] = json!(e);
                    }
                    if let Some(c) = &o.cause {
                        out["cause"] = json!(c);
                    }
                }
            }
            if history {
                out["history"] = Value::Array(o.history.iter().map(|e| e.to_json()).collect());
            }
            println!("{}", serde_json::to_string(&out)?);
        }
        Format::Text => {
            if history {
                for e in &o.history {
                    let details = e.details.as_ref().map(|(_, d)| d.to_string()).unwrap_or_default();
                    println!("{:>4} {:<28} {details}", e.id, e.kind);
                }
            }
            println!("{}", o.status.as_str());
            match o.status {
                Status::Succeeded => {
                    println!("{}", serde_json::to_string_pretty(o.output.as_ref().unwrap_or(&Value::Null))?)
                }
                _ => {
                    println!("error: {}", o.error.as_deref().unwrap_or(""));
                    println!("cause: {}", o.cause.as_deref().unwrap_or(""));
                }
            }
        }
    }
    Ok(())
}
