//! Interpreter benchmarks: the four workloads of ../shared/bench (pass10, map1000,
//! choice1000, task10), each run as whole executions through the in-memory engine, with
//! no history recorded. Criterion reports executions/s; multiply by the transitions per
//! execution (printed at start) for transitions/s. `STEPGATE_BENCH_DIR` overrides where
//! the workloads are read from.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use stepgate::connectors::function::{Function, Functions};
use stepgate::connectors::Registry;
use stepgate::engine::{Engine, Start};
use stepgate::interpreter::Limits;
use stepgate::time::Clock;

fn bench_dir() -> PathBuf {
    std::env::var_os("STEPGATE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench"))
}

/// A workload by name; `NAME-jsonata` is our JSONata version of a shared workload
/// (definition in benches/workloads, input shared with the JSONPath one).
fn load(name: &str) -> (stepgate::asl::Machine, Value) {
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e} (set STEPGATE_BENCH_DIR)", p.display()))
    };
    let (def_path, base) = match name.strip_suffix("-jsonata") {
        Some(base) => (
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("benches/workloads/{name}.asl.json")),
            base,
        ),
        None => (bench_dir().join(format!("{name}.asl.json")), name),
    };
    let def: Value = serde_json::from_str(&read(def_path)).expect("a JSON definition");
    let input: Value =
        serde_json::from_str(&read(bench_dir().join(format!("{base}.input.json")))).expect("a JSON input");
    let machine = stepgate::asl::compile(&def).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    (machine, input)
}

fn engine() -> Engine {
    let mut functions = Functions::default();
    // task10's resource is bound to an in-process identity function: a process per call
    // would measure process start-up, not the interpreter.
    functions.insert("Echo", Function::Native(Arc::new(Ok)));
    Engine::new(
        Registry::new(functions),
        Arc::new(Clock::new(0.0)),
        Limits::default(),
        "us-east-1",
        "123456789012",
    )
}

fn workloads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let engine = engine();
    for name in ["pass10", "map1000", "choice1000", "task10", "map1000-jsonata", "choice1000-jsonata"] {
        let (machine, input) = load(name);
        let start = || Start {
            state_machine_name: name.to_string(),
            execution_name: "bench".to_string(),
            input: input.clone(),
            record_history: false,
            express: false,
            ..Start::new(String::new(), String::new(), Value::Null)
        };
        let probe = rt.block_on(engine.run(&machine, start()));
        assert_eq!(probe.status.as_str(), "SUCCEEDED", "{name}: {:?} {:?}", probe.error, probe.cause);
        eprintln!("{name}: {} transitions per execution", probe.transitions);
        let mut group = c.benchmark_group("interpreter");
        group.throughput(Throughput::Elements(probe.transitions));
        group.bench_function(name, |b| b.iter(|| rt.block_on(engine.run(&machine, start()))));
        group.finish();
    }
}

/// One evaluation of `count + 1` in each query language: an intrinsic in a JSONPath
/// payload template against a JSONata expression, both parsed once beforehand.
fn expressions(c: &mut Criterion) {
    use serde_json::json;
    use std::borrow::Cow;
    use stepgate::asl::template::{JTemplate, Template};
    struct NoVars;
    impl stepgate::asl::Env for NoVars {
        fn context(&self) -> Cow<'_, Value> {
            Cow::Owned(Value::Null)
        }
        fn variable(&self, _: &str) -> Option<Cow<'_, Value>> {
            None
        }
        fn random(&self) -> u64 {
            4
        }
    }
    let input = json!({"count": 41});
    let jsonpath = Template::compile(&json!({"count.$": "States.MathAdd($.count, 1)"})).expect("a template");
    let jsonata =
        JTemplate::compile(&json!({"count": "{% $states.input.count + 1 %}"}), "Output").expect("JSONata");
    let states = json!({"input": input.clone()});
    let mut group = c.benchmark_group("expression");
    group.bench_function("jsonpath_mathadd", |b| {
        b.iter(|| jsonpath.eval(&input, &NoVars).expect("evaluates"))
    });
    group.bench_function("jsonata_add", |b| b.iter(|| jsonata.eval(&states, &NoVars).expect("evaluates")));
    // The same sum as a block: no fast path, the whole jsonata-core evaluator runs.
    let general =
        JTemplate::compile(&json!({"count": "{% ($states.input.count + 1) %}"}), "Output").expect("JSONata");
    group.bench_function("jsonata_add_engine", |b| {
        b.iter(|| general.eval(&states, &NoVars).expect("evaluates"))
    });
    group.finish();
}

criterion_group!(benches, workloads, expressions);
criterion_main!(benches);
