//! Map: selects the items (ItemsPath), resolves MaxConcurrency and the failure
//! tolerance, groups items into batches (ItemBatcher); the engine runs the iterations and
//! asks [`map_item_input`] for each one's input (ItemSelector sees `$$.Map.Item`).

use super::super::{io, Ctx, Step};
use crate::asl::compile::{Count, MapSpec, Percent, State};
use crate::asl::template::{compact, path_failure, select};
use crate::error::{names, Failure};
use serde_json::{Map, Value};

/// What the engine needs to run a Map's iterations.
#[derive(Debug, Clone)]
pub struct MapRun {
    /// One entry per iteration: an item, or with ItemBatcher a batch of items.
    pub items: Vec<Value>,
    /// The Map state's effective input: `$` inside ItemSelector.
    pub effective: Value,
    pub raw: Value,
    /// 0: no limit.
    pub max_concurrency: usize,
    pub tolerated_count: Option<u64>,
    pub tolerated_percentage: Option<f64>,
    pub batch_input: Option<Value>,
}

pub fn enter(ctx: &Ctx<'_>, state: &State, spec: &MapSpec, raw: Value) -> Result<Step, Failure> {
    let effective = io::effective_input(ctx, state, raw.clone())?;
    let doc = state.jsonata.then(|| io::states_doc(ctx, state, effective.clone()));
    let items = match (&spec.items, &doc, &spec.items_path) {
        (Some(t), Some(doc), _) => match t.eval(doc, ctx.env)? {
            Value::Array(a) => Value::Array(a),
            other => return Err(io::unexpected_type(t, "Items", "array", &other)),
        },
        (_, _, None) => effective.clone(),
        (_, _, Some(p)) => select(p, &effective, ctx.env).map_err(path_failure)?,
    };
    let Value::Array(items) = items else {
        let cause = format!("Map state input must be an array but was: {}", compact(&items));
        return Err(if state.jsonata {
            Failure::new(names::QUERY_EVALUATION_ERROR, cause)
        } else {
            Failure::runtime(cause)
        });
    };
    let count = |c: &Count, field: &str| -> Result<Option<i64>, Failure> {
        match (c, &doc) {
            (Count::Expr(t), Some(doc)) => io::jsonata_integer(ctx, t, doc, field).map(Some),
            _ => integer(ctx, c, &effective, field),
        }
    };
    let max_concurrency = match count(&spec.max_concurrency, "MaxConcurrencyPath")? {
        Some(n) if n < 0 => return Err(Failure::runtime("MaxConcurrency cannot be negative.")),
        Some(n) => n as usize,
        None => 0,
    };
    let tolerated_count = match count(&spec.tolerated_failure_count, "ToleratedFailureCountPath")? {
        Some(n) if n < 0 => return Err(Failure::runtime("ToleratedFailureCount cannot be negative.")),
        other => other.map(|n| n as u64),
    };
    let tolerated_percentage = match &spec.tolerated_failure_percentage {
        Percent::None => None,
        Percent::Fixed(p) => Some(*p),
        Percent::Expr(t) => {
            let v = t.eval(doc.as_ref().unwrap_or(&Value::Null), ctx.env)?;
            Some(v.as_f64().ok_or_else(|| {
                Failure::new(
                    names::QUERY_EVALUATION_ERROR,
                    format!(
                        "The ToleratedFailurePercentage field must be a number, but was: {}",
                        compact(&v)
                    ),
                )
            })?)
        }
        Percent::Path(p) => {
            let v = select(p, &effective, ctx.env).map_err(path_failure)?;
            // AWS also takes a number written as a string ("50").
            let pct = v
                .as_f64()
                .filter(|_| v.is_number())
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            Some(pct.ok_or_else(|| {
                Failure::runtime(format!(
                    "The ToleratedFailurePercentagePath field refers to value \"{}\" which is not a valid float: {}",
                    shown(&v),
                    p.text()
                ))
            })?)
        }
    };
    if matches!(tolerated_percentage, Some(p) if !(0.0..=100.0).contains(&p)) {
        return Err(Failure::runtime("ToleratedFailurePercentage must be between 0 and 100."));
    }
    let (items, batch_input) = match &spec.batcher {
        None => (items, None),
        Some(b) => {
            let max_items = count(&b.max_items, "MaxItemsPerBatchPath")?.unwrap_or(0).max(0) as usize;
            let max_bytes = count(&b.max_bytes, "MaxInputBytesPerBatchPath")?.unwrap_or(0).max(0) as usize;
            let batch_input = b.batch_input.as_ref().map(|t| t.eval(&effective, ctx.env)).transpose()?;
            (batches(items, max_items, max_bytes), batch_input)
        }
    };
    Ok(Step::Map(Box::new(MapRun {
        items,
        effective,
        raw,
        max_concurrency,
        tolerated_count,
        tolerated_percentage,
        batch_input,
    })))
}

/// The input of iteration `index`: ItemSelector (or Parameters) evaluated with
/// `$$.Map.Item` in `ctx.env`, else the item itself; batches become
/// `{"Items": [...], "BatchInput": ...}`.
pub fn map_item_input(
    ctx: &Ctx<'_>,
    spec: &MapSpec,
    effective: &Value,
    batch_input: Option<&Value>,
    item: Value,
) -> Result<Value, Failure> {
    let input = match (&spec.item_selector_jsonata, &spec.item_selector) {
        // `$states.context.Map.Item` is what an ItemSelector reads: always built here.
        (Some(t), _) => {
            let mut m = Map::new();
            m.insert("input".into(), effective.clone());
            m.insert("context".into(), ctx.env.context().into_owned());
            t.eval(&Value::Object(m), ctx.env)?
        }
        (None, None) => item,
        (None, Some(t)) => t.eval(effective, ctx.env)?,
    };
    if spec.batcher.is_none() {
        return Ok(input);
    }
    let mut batch = Map::new();
    batch.insert("Items".into(), input);
    if let Some(b) = batch_input {
        batch.insert("BatchInput".into(), b.clone());
    }
    Ok(Value::Object(batch))
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => compact(other),
    }
}

fn integer(ctx: &Ctx<'_>, c: &Count, input: &Value, field: &str) -> Result<Option<i64>, Failure> {
    match c {
        // Expressions are evaluated by the caller, which holds `$states`.
        Count::None | Count::Expr(_) => Ok(None),
        Count::Fixed(n) => Ok(Some(*n)),
        Count::Path(p) => {
            let v = select(p, input, ctx.env).map_err(path_failure)?;
            // AWS also takes an integer written as a string ("1").
            let n = v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            n.map(Some).ok_or_else(|| {
                Failure::runtime(format!(
                    "The {field} field refers to value \"{}\" which is not a valid integer: {}",
                    shown(&v),
                    p.text()
                ))
            })
        }
    }
}

/// Groups items by count and by serialized size; 0 means no bound on that measure.
fn batches(items: Vec<Value>, max_items: usize, max_bytes: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cur: Vec<Value> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let size = if max_bytes > 0 { compact(&item).len() } else { 0 };
        let full = (max_items > 0 && cur.len() >= max_items)
            || (max_bytes > 0 && !cur.is_empty() && bytes + size > max_bytes);
        if full {
            out.push(Value::Array(std::mem::take(&mut cur)));
            bytes = 0;
        }
        bytes += size;
        cur.push(item);
    }
    if !cur.is_empty() {
        out.push(Value::Array(cur));
    }
    out
}
