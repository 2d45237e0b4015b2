//! The `States.*` intrinsic functions of JSONPath states. A `.$` field whose value is a
//! call (`"id.$": "States.Format('order-{}', $.n)"`) is parsed once when the definition is
//! compiled ([`parse`]: syntax, known names, nesting depth) and evaluated by the
//! interpreter's payload templates against the state's input ([`Call::eval`]), reading the
//! context object, variables and randomness through [`Env`].
//!
//! The functions are one table of rows (`BUILTINS`): a name, an arity and a plain
//! function over already-evaluated arguments. Results follow what AWS (a Java service)
//! produces: numbers print as Java prints them, States.Format renders objects as Java maps,
//! MathAdd rounds like `Math.round` where the other functions that take integers truncate
//! like a Java cast, and a seeded MathRandom is `java.util.Random`. As on AWS, a call with
//! the wrong number of arguments, or a literal of the wrong type, is accepted with the
//! definition and fails its state when it runs.

use crate::asl::path::{Path, Root};
use crate::asl::Env;
use crate::error::{names, Failure};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// AWS accepts up to 10 intrinsic functions nested within one field.
const MAX_DEPTH: usize = 10;
/// The input limit of States.Hash, Base64Encode and Base64Decode, in (UTF-16) characters.
const MAX_INPUT_CHARS: usize = 10_000;
/// The most items States.ArrayRange may return.
const MAX_RANGE_ITEMS: i64 = 1000;

/// A parsed intrinsic call; its arguments may be nested calls.
#[derive(Debug, Clone)]
pub struct Call {
    /// As written in the definition: AWS quotes it verbatim in its causes.
    text: Arc<str>,
    func: Func,
}

#[derive(Debug, Clone)]
struct Func {
    builtin: &'static Builtin,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Arg {
    /// A number, `true`, `false` or `null`.
    Literal(Value),
    /// A quoted string, unescaped, with the byte offsets of its unescaped `{}` pairs:
    /// only those are placeholders when the string is a States.Format template.
    Text {
        value: String,
        holes: Vec<usize>,
        /// The first unescaped brace that is not half of a `{}`: AWS refuses such a
        /// States.Format template.
        lone_brace: Option<char>,
    },
    Path(Path),
    Call(Func),
}

/// How many arguments a function takes, checked when it runs (AWS accepts the definition).
#[derive(Debug, Clone, Copy)]
enum Arity {
    Exactly(usize),
    Between(usize, usize),
    AtLeast(usize),
}

impl Arity {
    fn admits(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::Between(lo, hi) => (lo..=hi).contains(&n),
            Arity::AtLeast(lo) => n >= lo,
        }
    }
}

impl fmt::Display for Arity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        match *self {
            Arity::Exactly(n) => write!(f, "exactly {n} argument{}", plural(n)),
            Arity::Between(lo, hi) => write!(f, "{lo} to {hi} arguments"),
            Arity::AtLeast(n) => write!(f, "at least {n} argument{}", plural(n)),
        }
    }
}

/// What a function sees besides its arguments.
struct Ctx<'a> {
    env: &'a dyn Env,
    /// The placeholders of the first argument when it is a quoted string (States.Format),
    /// and its first unescaped brace that is not half of a `{}`.
    holes: Option<(&'a [usize], Option<char>)>,
}

/// A function's own failure, in words; [`Call::eval`] frames it as AWS does.
type Outcome = Result<Value, String>;

struct Builtin {
    name: &'static str,
    arity: Arity,
    run: fn(&Ctx<'_>, Vec<Value>) -> Outcome,
}

impl fmt::Debug for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Every intrinsic function AWS offers, one row each.
static BUILTINS: &[Builtin] = &[
    Builtin { name: "States.Format", arity: Arity::AtLeast(1), run: format },
    Builtin { name: "States.StringToJson", arity: Arity::Exactly(1), run: string_to_json },
    Builtin { name: "States.JsonToString", arity: Arity::Exactly(1), run: json_to_string },
    Builtin { name: "States.Array", arity: Arity::AtLeast(0), run: array },
    Builtin { name: "States.ArrayPartition", arity: Arity::Exactly(2), run: array_partition },
    Builtin { name: "States.ArrayContains", arity: Arity::Exactly(2), run: array_contains },
    Builtin { name: "States.ArrayRange", arity: Arity::Exactly(3), run: array_range },
    Builtin { name: "States.ArrayGetItem", arity: Arity::Exactly(2), run: array_get_item },
    Builtin { name: "States.ArrayLength", arity: Arity::Exactly(1), run: array_length },
    Builtin { name: "States.ArrayUnique", arity: Arity::Exactly(1), run: array_unique },
    Builtin { name: "States.Base64Encode", arity: Arity::Exactly(1), run: base64_encode },
    Builtin { name: "States.Base64Decode", arity: Arity::Exactly(1), run: base64_decode },
    Builtin { name: "States.Hash", arity: Arity::Exactly(2), run: hash },
    Builtin { name: "States.JsonMerge", arity: Arity::Exactly(3), run: json_merge },
    Builtin { name: "States.MathRandom", arity: Arity::Between(2, 3), run: math_random },
    Builtin { name: "States.MathAdd", arity: Arity::Exactly(2), run: math_add },
    Builtin { name: "States.StringSplit", arity: Arity::Exactly(2), run: string_split },
    // AWS ignores what States.UUID is given (recorded: `States.UUID('x')` returns a UUID).
    Builtin { name: "States.UUID", arity: Arity::AtLeast(0), run: uuid },
];

/// Cheap test for a `.$` value: does it look like an intrinsic call rather than a path?
pub fn is_call(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

/// Parses a call when the definition is compiled. The error says what is wrong and where.
pub fn parse(text: &str) -> Result<Call, String> {
    let mut p = Parser { text, i: 0 };
    p.ws();
    let func = p.call(1)?;
    p.ws();
    if p.i != text.len() {
        return Err(p.err("unexpected text after the closing ')'"));
    }
    Ok(Call { text: Arc::from(text), func })
}

/// AWS's sentence for States.JsonToString given other than one argument (recorded).
const JSON_TO_STRING_ARITY: &str =
    "Invalid arguments in States.JsonToString: only a single argument is allowed.";

/// Why an evaluation stopped, before it is framed with the call's text.
enum Stop {
    /// A path argument selected nothing: `States.Runtime` on AWS.
    Miss { path: String, input: String },
    /// A function refused its arguments: which, and why in our words (logged; AWS's cause
    /// says only that the arguments were invalid).
    Refused { function: &'static str, why: String },
}

impl Call {
    /// Evaluates against the state's effective input (`$`); `$$` and `$name` come from `env`.
    pub fn eval(&self, input: &Value, env: &dyn Env) -> Result<Value, Failure> {
        self.func.eval(input, env).map_err(|stop| {
            // AWS names the whole expression, not the inner call that failed.
            let head = format!("The function '{}' had the following error: ", self.text);
            match stop {
                // AWS fails the state with States.Runtime (which States.ALL does not catch),
                // naming the call and the function whose arguments it refused; a States.Format
                // template and a JsonToString of many arguments get sentences of their own.
                Stop::Refused { function, why } => {
                    tracing::debug!(call = %self.text, why = %why, "An intrinsic function refused its arguments.");
                    let detail = if why.starts_with("Invalid template in ") || why == JSON_TO_STRING_ARITY {
                        why
                    } else {
                        format!("Invalid arguments in {function}")
                    };
                    Failure::new(
                        names::RUNTIME,
                        format!("There was an error while evaluating the intrinsic function: {}. {detail}", self.text),
                    )
                }
                Stop::Miss { path, input } => Failure::new(
                    names::RUNTIME,
                    format!(
                        "{head}The JsonPath argument for the field '{path}' could not be found in the \
                         input '{input}'"
                    ),
                ),
            }
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

impl Func {
    fn eval(&self, input: &Value, env: &dyn Env) -> Result<Value, Stop> {
        let mut values = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            if crate::memory::exhausted() {
                // The template around the call reports the spent budget.
                return Ok(Value::Null);
            }
            values.push(arg.eval(input, env)?);
        }
        let function = self.builtin.name;
        if !self.builtin.arity.admits(values.len()) {
            let why = match function {
                "States.JsonToString" => JSON_TO_STRING_ARITY.to_string(),
                _ => format!("{function} takes {}, but {} were given", self.builtin.arity, values.len()),
            };
            return Err(Stop::Refused { function, why });
        }
        let holes = match self.args.first() {
            Some(Arg::Text { holes, lone_brace, .. }) => Some((holes.as_slice(), *lone_brace)),
            _ => None,
        };
        (self.builtin.run)(&Ctx { env, holes }, values).map_err(|why| Stop::Refused { function, why })
    }
}

impl Arg {
    fn eval(&self, input: &Value, env: &dyn Env) -> Result<Value, Stop> {
        match self {
            Arg::Literal(v) => Ok(v.clone()),
            Arg::Text { value, .. } => Ok(Value::String(value.clone())),
            Arg::Call(f) => f.eval(input, env),
            Arg::Path(path) => {
                let doc: Option<Cow<'_, Value>> = match path.root() {
                    Root::Input => Some(Cow::Borrowed(input)),
                    Root::Context => Some(env.context()),
                    Root::Variable(name) => env.variable(name),
                };
                let found = doc.as_deref().map(|d| path.select(d));
                match found {
                    Some(Ok(v)) => Ok(v),
                    _ => Err(Stop::Miss {
                        path: path.text().to_string(),
                        input: serde_json::to_string(doc.as_deref().unwrap_or(input)).unwrap_or_default(),
                    }),
                }
            }
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        let column = self.text[..self.i].chars().count() + 1;
        format!("invalid intrinsic function call '{}': {what} at column {column}", self.text)
    }

    fn rest(&self) -> &str {
        &self.text[self.i..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn ws(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.i += c.len_utf8();
        }
    }

    /// `States.Name(arg, ...)`, at nesting `depth` (the outermost call is 1).
    fn call(&mut self, depth: usize) -> Result<Func, String> {
        if depth > MAX_DEPTH {
            return Err(self.err(&format!("more than {MAX_DEPTH} nested intrinsic functions")));
        }
        let start = self.i;
        if !self.rest().starts_with("States.") {
            return Err(self.err("expected an intrinsic function 'States.<Name>(...)'"));
        }
        self.i += "States.".len();
        let len = self.rest().find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(self.rest().len());
        self.i += len;
        let name = &self.text[start..self.i];
        let Some(builtin) = BUILTINS.iter().find(|b| b.name == name) else {
            self.i = start;
            return Err(self.err(&format!("unknown intrinsic function '{name}'")));
        };
        self.ws();
        if self.peek() != Some('(') {
            return Err(self.err(&format!("expected '(' after {name}")));
        }
        self.i += 1;
        self.ws();
        let mut args = Vec::new();
        if self.peek() == Some(')') {
            self.i += 1;
        } else {
            loop {
                args.push(self.arg(depth)?);
                self.ws();
                match self.peek() {
                    Some(',') => {
                        self.i += 1;
                        self.ws();
                    }
                    Some(')') => {
                        self.i += 1;
                        break;
                    }
                    Some(_) => return Err(self.err("expected ',' or ')' after an argument")),
                    None => return Err(self.err(&format!("missing ')' to close {name}"))),
                }
            }
        }
        Ok(Func { builtin, args })
    }

    fn arg(&mut self, depth: usize) -> Result<Arg, String> {
        match self.peek() {
            Some('\'') => self.quoted(),
            Some('$') => self.path(),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(_) if self.rest().starts_with("States.") => Ok(Arg::Call(self.call(depth + 1)?)),
            Some(_) => {
                for (word, value) in
                    [("true", Value::Bool(true)), ("false", Value::Bool(false)), ("null", Value::Null)]
                {
                    if self.rest().starts_with(word) && self.ends_token(word.len()) {
                        self.i += word.len();
                        return Ok(Arg::Literal(value));
                    }
                }
                Err(self
                    .err("expected an argument: a 'string', a number, true, false, null, a path or a call"))
            }
            None => Err(self.err("expected an argument")),
        }
    }

    /// True when the token of `len` bytes from here is followed by a delimiter.
    fn ends_token(&self, len: usize) -> bool {
        self.rest()[len..].chars().next().is_none_or(|c| c == ',' || c == ')' || c.is_whitespace())
    }

    /// A single-quoted string. AWS's only escapes are `\'`, `\{`, `\}` and `\\`; an escaped
    /// brace is literal text, never part of a placeholder.
    fn quoted(&mut self) -> Result<Arg, String> {
        self.i += 1;
        let mut value = String::new();
        let mut holes = Vec::new();
        let mut lone_brace = None;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string literal"));
            };
            match c {
                '\'' => {
                    self.i += 1;
                    return Ok(Arg::Text { value, holes, lone_brace });
                }
                '\\' => match self.rest()[1..].chars().next() {
                    Some(e @ ('\'' | '{' | '}' | '\\')) => {
                        value.push(e);
                        self.i += 2;
                    }
                    _ => return Err(self.err("invalid escape sequence (only \\' \\{ \\} \\\\ are allowed)")),
                },
                '{' if self.rest()[1..].starts_with('}') => {
                    holes.push(value.len());
                    value.push_str("{}");
                    self.i += 2;
                }
                '{' | '}' => {
                    lone_brace = lone_brace.or(Some(c));
                    value.push(c);
                    self.i += 1;
                }
                _ => {
                    value.push(c);
                    self.i += c.len_utf8();
                }
            }
        }
    }

    /// A path runs to the next top-level ',' ')' or space; brackets (filters, quoted
    /// names) and the parentheses of `.length()` are kept whole.
    fn path(&mut self) -> Result<Arg, String> {
        let start = self.i;
        let (mut brackets, mut parens, mut quote) = (0usize, 0usize, None::<char>);
        while let Some(c) = self.peek() {
            if let Some(q) = quote {
                if c == '\\' {
                    self.i += 1;
                } else if c == q {
                    quote = None;
                }
                self.i += self.peek().map_or(0, char::len_utf8);
                continue;
            }
            match c {
                '\'' | '"' if brackets > 0 => quote = Some(c),
                '[' => brackets += 1,
                ']' => brackets = brackets.saturating_sub(1),
                '(' if brackets == 0 => parens += 1,
                ')' if brackets == 0 && parens == 0 => break,
                ')' if brackets == 0 => parens -= 1,
                ',' if brackets == 0 && parens == 0 => break,
                c if c.is_whitespace() && brackets == 0 => break,
                _ => {}
            }
            self.i += c.len_utf8();
        }
        let text = &self.text[start..self.i];
        Path::parse(text).map(Arg::Path).map_err(|e| {
            self.i = start;
            self.err(&e)
        })
    }

    fn number(&mut self) -> Result<Arg, String> {
        let start = self.i;
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
            .unwrap_or(self.rest().len());
        let token = &self.text[start..start + len];
        match serde_json::from_str::<Value>(token) {
            Ok(v @ Value::Number(_)) if self.ends_token(len) => {
                self.i += len;
                Ok(Arg::Literal(v))
            }
            _ => Err(self.err(&format!("'{token}' is not a valid number"))),
        }
    }
}

// ---- the functions -------------------------------------------------------------------

fn format(ctx: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    let mut args = args.into_iter();
    let Some(Value::String(template)) = args.next() else {
        return Err("Invalid arguments in States.Format: the first argument must be a string".into());
    };
    // A template read from the input has no escapes: every "{}" in it is a placeholder.
    let found;
    let (holes, lone_brace) = match ctx.holes {
        Some(h) => h,
        None => {
            found = template.match_indices("{}").map(|(i, _)| i).collect::<Vec<_>>();
            let lone = template.char_indices().find(|&(i, c)| {
                (c == '{' && !template[i + 1..].starts_with('}'))
                    || (c == '}' && !template[..i].ends_with('{'))
            });
            (found.as_slice(), lone.map(|(_, c)| c))
        }
    };
    // AWS's own sentences (recorded for both braces).
    match lone_brace {
        Some('{') => return Err("Invalid template in States.Format: matching '}' not found for '{'.".into()),
        Some(_) => return Err("Invalid template in States.Format: matching '{' not found for '}'.".into()),
        None => {}
    }
    let values: Vec<Value> = args.collect();
    if holes.len() != values.len() {
        return Err(format!(
            "Invalid arguments in States.Format: the template has {} '{{}}' placeholder(s) but {} \
             value(s) were given",
            holes.len(),
            values.len()
        ));
    }
    let mut out = String::with_capacity(template.len());
    let mut from = 0;
    for (hole, value) in holes.iter().zip(&values) {
        out.push_str(&template[from..*hole]);
        java_text(value, &mut out);
        from = hole + 2;
    }
    out.push_str(&template[from..]);
    Ok(Value::String(out))
}

fn string_to_json(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    let text = string_arg("States.StringToJson", &args[0], 1)?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let mut value = serde_json::from_str(text).map_err(|e| {
        format!("Invalid arguments in States.StringToJson: the string is not valid JSON ({e})")
    })?;
    integral_zero(&mut value);
    Ok(value)
}

/// Jackson reads `-0` as the integer 0 where serde_json reads the double -0.0.
fn integral_zero(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()) => {
            *v = Value::from(0)
        }
        Value::Array(items) => items.iter_mut().for_each(integral_zero),
        Value::Object(map) => map.values_mut().for_each(integral_zero),
        _ => {}
    }
}

fn json_to_string(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    let mut out = String::new();
    java_json(&args[0], &mut out);
    Ok(Value::String(out))
}

fn array(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    Ok(Value::Array(args))
}

fn array_partition(_: &Ctx<'_>, mut args: Vec<Value>) -> Outcome {
    const NAME: &str = "States.ArrayPartition";
    let size = truncated_int_arg(NAME, &args[1], 2)?;
    if size <= 0 {
        return Err(format!(
            "Invalid arguments in {NAME}: the chunk size must be a positive integer, but got {size}"
        ));
    }
    let items = take_array(NAME, args.swap_remove(0), 1)?;
    let chunks = items.chunks(usize::try_from(size).unwrap_or(usize::MAX)).map(|c| Value::Array(c.to_vec()));
    Ok(Value::Array(chunks.collect()))
}

fn array_contains(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    let items = array_arg("States.ArrayContains", &args[0], 1)?;
    Ok(Value::Bool(items.contains(&args[1])))
}

fn array_range(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    const NAME: &str = "States.ArrayRange";
    let start = truncated_int_arg(NAME, &args[0], 1)?;
    let end = truncated_int_arg(NAME, &args[1], 2)?;
    let step = truncated_int_arg(NAME, &args[2], 3)?;
    if step == 0 {
        return Err(format!("Invalid arguments in {NAME}: the step must not be 0"));
    }
    let span = end - start;
    let count = if span != 0 && (span < 0) != (step < 0) { 0 } else { span / step + 1 };
    if count > MAX_RANGE_ITEMS {
        return Err(format!(
            "Invalid arguments in {NAME}: the array cannot contain more than {MAX_RANGE_ITEMS} items, \
             but it would contain {count}"
        ));
    }
    Ok(Value::Array((0..count).map(|k| Value::from(start + k * step)).collect()))
}

fn array_get_item(_: &Ctx<'_>, mut args: Vec<Value>) -> Outcome {
    const NAME: &str = "States.ArrayGetItem";
    let index = truncated_int_arg(NAME, &args[1], 2)?;
    let mut items = take_array(NAME, args.swap_remove(0), 1)?;
    let len = items.len();
    match usize::try_from(index).ok().filter(|&i| i < len) {
        Some(i) => Ok(items.swap_remove(i)),
        None => Err(format!(
            "Invalid arguments in {NAME}: the index {index} is out of bounds for an array of length {len}"
        )),
    }
}

fn array_length(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    Ok(Value::from(array_arg("States.ArrayLength", &args[0], 1)?.len()))
}

fn array_unique(_: &Ctx<'_>, mut args: Vec<Value>) -> Outcome {
    let items = take_array("States.ArrayUnique", args.swap_remove(0), 1)?;
    let mut unique: Vec<Value> = Vec::with_capacity(items.len());
    // Scalars are looked up by their JSON text (which tells 1 from 1.0, as `==` on values
    // does); only arrays and objects are compared one by one, so a long array of scalars
    // takes linear time.
    let mut scalars = std::collections::HashSet::new();
    let mut composites: Vec<usize> = Vec::new();
    for item in items {
        let new = if item.is_array() || item.is_object() {
            !composites.iter().any(|&i| unique[i] == item)
        } else {
            scalars.insert(item.to_string())
        };
        if new {
            if item.is_array() || item.is_object() {
                composites.push(unique.len());
            }
            unique.push(item);
        }
    }
    Ok(Value::Array(unique))
}

fn base64_encode(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    const NAME: &str = "States.Base64Encode";
    let text = limited_string_arg(NAME, &args[0])?;
    Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(text)))
}

fn base64_decode(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const NAME: &str = "States.Base64Decode";
    // Java's decoder, which AWS uses, accepts the padding but does not require it.
    const DECODER: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let text = limited_string_arg(NAME, &args[0])?;
    let bytes = DECODER
        .decode(text)
        .map_err(|e| format!("Invalid arguments in {NAME}: the string is not valid base64 ({e})"))?;
    Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
}

fn hash(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    const NAME: &str = "States.Hash";
    let data = limited_string_arg(NAME, &args[0])?;
    let algorithm = string_arg(NAME, &args[1], 2)?;
    let Some(digest) = hex_digest(algorithm, data.as_bytes()) else {
        return Err(format!(
            "Invalid arguments in {NAME}: the hash algorithm '{algorithm}' is not supported; use one of \
             MD5, SHA-1, SHA-256, SHA-384, SHA-512"
        ));
    };
    Ok(Value::String(digest))
}

/// The hex digest of `data` with one of the algorithms AWS offers (States.Hash, `$hash`);
/// `None` for another name.
pub(crate) fn hex_digest(algorithm: &str, data: &[u8]) -> Option<String> {
    use sha2::Digest;
    let digest: Vec<u8> = match algorithm {
        "MD5" => md5::Md5::digest(data).to_vec(),
        "SHA-1" => sha1::Sha1::digest(data).to_vec(),
        "SHA-256" => sha2::Sha256::digest(data).to_vec(),
        "SHA-384" => sha2::Sha384::digest(data).to_vec(),
        "SHA-512" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    };
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn json_merge(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    const NAME: &str = "States.JsonMerge";
    let mut args = args.into_iter();
    let (first, second, deep) = (args.next(), args.next(), args.next());
    match deep {
        Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Err(format!(
                "Invalid arguments in {NAME}: Step Functions only supports the shallow merging mode; \
                 therefore, you must specify the boolean value as false"
            ))
        }
        other => {
            let got = other.as_ref().map_or("nothing".into(), shown);
            return Err(format!("Invalid arguments in {NAME}: argument 3 must be a boolean, but got {got}"));
        }
    }
    let mut merged = object_arg(NAME, first, 1)?;
    // Shallow: a key of the second object replaces the first's whole value, in place.
    for (k, v) in object_arg(NAME, second, 2)? {
        merged.insert(k, v);
    }
    Ok(Value::Object(merged))
}

fn math_random(ctx: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    const NAME: &str = "States.MathRandom";
    let start = in_int32(NAME, truncated_int_arg(NAME, &args[0], 1)?, 1)?;
    let end = in_int32(NAME, truncated_int_arg(NAME, &args[1], 2)?, 2)?;
    if end <= start {
        return Err(format!(
            "Invalid arguments in {NAME}: the end number ({end}) must be greater than the start number \
             ({start})"
        ));
    }
    let seed = match args.get(2) {
        Some(seed) => int_arg(NAME, seed, 3)?,
        None => ctx.env.random() as i64,
    };
    // The start is inclusive and the end exclusive, as with java.util.Random#nextInt.
    let mut rng = JavaRandom::new(seed);
    Ok(Value::from(start + rng.next_below(end - start)))
}

fn math_add(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    const NAME: &str = "States.MathAdd";
    let a = in_int32(NAME, int_arg(NAME, &args[0], 1)?, 1)?;
    let b = in_int32(NAME, int_arg(NAME, &args[1], 2)?, 2)?;
    // The sum is a Java `int` too: AWS refuses one that overflows it (recorded:
    // `States.MathAdd(2147483647, 1)`).
    match i32::try_from(a + b) {
        Ok(sum) => Ok(Value::from(sum)),
        Err(_) => Err(format!(
            "Invalid arguments in {NAME}: the sum {} is outside the range {} to {}",
            a + b,
            i32::MIN,
            i32::MAX
        )),
    }
}

fn string_split(_: &Ctx<'_>, args: Vec<Value>) -> Outcome {
    const NAME: &str = "States.StringSplit";
    let text = string_arg(NAME, &args[0], 1)?;
    let delimiters = string_arg(NAME, &args[1], 2)?;
    // Like java.util.StringTokenizer: every character of the second argument is a
    // delimiter, and empty pieces are dropped.
    let pieces = text.split(|c| delimiters.contains(c)).filter(|p| !p.is_empty());
    Ok(Value::Array(pieces.map(|p| Value::String(p.to_string())).collect()))
}

fn uuid(ctx: &Ctx<'_>, _: Vec<Value>) -> Outcome {
    let (hi, lo) = (ctx.env.random(), ctx.env.random());
    let bytes = ((u128::from(hi) << 64) | u128::from(lo)).to_be_bytes();
    Ok(Value::String(uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()))
}

// ---- argument checks -----------------------------------------------------------------

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as a cause shows it: its JSON text, cut short when long.
fn shown(v: &Value) -> String {
    let text = serde_json::to_string(v).unwrap_or_default();
    if text.chars().count() <= 100 {
        return text;
    }
    let cut: String = text.chars().take(100).collect();
    format!("{cut}...")
}

fn refuse(name: &str, position: usize, wanted: &str, got: &Value) -> String {
    format!("Invalid arguments in {name}: argument {position} must be {wanted}, but got {}", kind(got))
}

fn string_arg<'v>(name: &str, v: &'v Value, position: usize) -> Result<&'v str, String> {
    v.as_str().ok_or_else(|| refuse(name, position, "a string", v))
}

fn limited_string_arg<'v>(name: &str, v: &'v Value) -> Result<&'v str, String> {
    let text = string_arg(name, v, 1)?;
    let chars = text.encode_utf16().count();
    if chars > MAX_INPUT_CHARS {
        return Err(format!(
            "Invalid arguments in {name}: the input string must be {MAX_INPUT_CHARS} characters or less, \
             but it has {chars}"
        ));
    }
    Ok(text)
}

fn array_arg<'v>(name: &str, v: &'v Value, position: usize) -> Result<&'v Vec<Value>, String> {
    v.as_array().ok_or_else(|| refuse(name, position, "an array", v))
}

fn take_array(name: &str, v: Value, position: usize) -> Result<Vec<Value>, String> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(refuse(name, position, "an array", &other)),
    }
}

fn object_arg(name: &str, v: Option<Value>, position: usize) -> Result<Map<String, Value>, String> {
    match v {
        Some(Value::Object(o)) => Ok(o),
        other => Err(refuse(name, position, "a JSON object", &other.unwrap_or(Value::Null))),
    }
}

/// A number as an integer the way States.MathAdd takes it (and MathRandom its seed): rounded to
/// the nearest one, half up, as the recorded MathAdd cases show.
fn int_arg(name: &str, v: &Value, position: usize) -> Result<i64, String> {
    let Value::Number(n) = v else {
        return Err(refuse(name, position, "a number", v));
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    let rounded = java_round(f);
    if !(i64::MIN as f64..=i64::MAX as f64).contains(&rounded) {
        return Err(format!(
            "Invalid arguments in {name}: argument {position} ({}) is out of range",
            shown(v)
        ));
    }
    Ok(rounded as i64)
}

/// A number as an integer the way a Java cast makes it: the fraction dropped, towards zero
/// (recorded on AWS: `States.MathRandom(1.6, 5.4)` draws 1 to 4; `States.ArrayPartition` with
/// a size of 0.49 refuses it as 0).
fn truncated_int_arg(name: &str, v: &Value, position: usize) -> Result<i64, String> {
    let Value::Number(n) = v else {
        return Err(refuse(name, position, "a number", v));
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    let f = n.as_f64().unwrap_or(f64::NAN).trunc();
    if !(i64::MIN as f64..=i64::MAX as f64).contains(&f) {
        return Err(format!(
            "Invalid arguments in {name}: argument {position} ({}) is out of range",
            shown(v)
        ));
    }
    Ok(f as i64)
}

/// `i` if it is in Java's `int` range, which MathAdd and MathRandom take.
fn in_int32(name: &str, i: i64, position: usize) -> Result<i64, String> {
    if i32::try_from(i).is_err() {
        return Err(format!(
            "Invalid arguments in {name}: argument {position} ({i}) is outside the range {} to {}",
            i32::MIN,
            i32::MAX
        ));
    }
    Ok(i)
}

/// `Math.round`: the nearest integer, halves towards positive infinity (-2.5 -> -2).
fn java_round(f: f64) -> f64 {
    let floor = f.floor();
    if f - floor >= 0.5 {
        floor + 1.0
    } else {
        floor
    }
}

// ---- Java's renderings -----------------------------------------------------------------

/// A value as Java's `toString` renders it, which is what States.Format inserts: strings
/// bare, objects as `{a=1, b=[]}`, arrays as `[1, 2]`.
fn java_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                java_text(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (n, (k, item)) in map.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                java_text(item, out);
            }
            out.push('}');
        }
        Value::Number(n) => out.push_str(&java_number(n)),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

/// Compact JSON as Jackson writes it (States.JsonToString): no spaces, doubles in Java's
/// notation (`1.0`, `1.0E10`).
fn java_json(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                java_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (n, (k, item)) in map.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                java_json(item, out);
            }
            out.push('}');
        }
        Value::Number(n) => out.push_str(&java_number(n)),
        other => out.push_str(&serde_json::to_string(other).unwrap_or_default()),
    }
}

fn java_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    java_double(n.as_f64().unwrap_or(0.0))
}

/// `Double.toString`: plain notation with at least one decimal for 1e-3 <= |d| < 1e7,
/// otherwise `d.dddE<n>`; always the shortest digits that read back as the same double.
fn java_double(d: f64) -> String {
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    if !d.is_finite() {
        return if d.is_nan() {
            "NaN".into()
        } else if d > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-7", "1e10".
    let sci = format!("{:e}", d.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if d < 0.0 { "-" } else { "" };
    let abs = d.abs();
    if (1e-3..1e7).contains(&abs) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            let mut int_part = digits.chars().take(int_len).collect::<String>();
            while int_part.len() < int_len {
                int_part.push('0');
            }
            let frac: String = digits.chars().skip(int_len).collect();
            let frac = if frac.is_empty() { "0".to_string() } else { frac };
            format!("{sign}{int_part}.{frac}")
        } else {
            let zeros = "0".repeat((-exp - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exp}")
    }
}

/// `java.util.Random`: the same seed gives the same numbers as AWS's Java runtime would
/// (States.MathRandom here, `$random(seed)` in JSONata).
pub(crate) struct JavaRandom(u64);

impl JavaRandom {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;

    pub(crate) fn new(seed: i64) -> Self {
        JavaRandom((seed as u64 ^ Self::MULTIPLIER) & Self::MASK)
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.0 = self.0.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB) & Self::MASK;
        (self.0 >> (48 - bits)) as i32
    }

    /// `nextDouble()`: 53 bits, in [0, 1).
    pub(crate) fn next_double(&mut self) -> f64 {
        let hi = self.next(26) as u64;
        let lo = self.next(27) as u64;
        ((hi << 27) + lo) as f64 / (1u64 << 53) as f64
    }

    /// `nextInt(bound)` for bounds that fit an `int`; a wider span (possible only when the
    /// start is negative) draws from 62 bits instead.
    fn next_below(&mut self, bound: i64) -> i64 {
        let Ok(bound) = i32::try_from(bound) else {
            let wide = (i64::from(self.next(31)) << 31) | i64::from(self.next(31));
            return wide % bound;
        };
        let mut r = self.next(31);
        let m = bound - 1;
        if bound & m == 0 {
            return (i64::from(bound) * i64::from(r)) >> 31;
        }
        let mut u = r;
        loop {
            r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return i64::from(r);
            }
            u = self.next(31);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A context object, two variables and a counting source of randomness.
    struct TestEnv {
        context: Value,
        vars: Map<String, Value>,
        draws: AtomicU64,
    }

    impl Default for TestEnv {
        fn default() -> Self {
            let context = json!({"Execution": {"Id": "arn:aws:states:us-east-1:111111111111:execution:sm:ex1",
                "Name": "ex1", "Input": {"csv": "a,b,c"}}, "StateMachine": {"Name": "order-flow-v2"}});
            let vars =
                json!({"template": "It's {}!", "nums": [3, 1, 3]}).as_object().cloned().unwrap_or_default();
            TestEnv { context, vars, draws: AtomicU64::new(0) }
        }
    }

    impl Env for TestEnv {
        fn context(&self) -> Cow<'_, Value> {
            Cow::Borrowed(&self.context)
        }
        fn variable(&self, name: &str) -> Option<Cow<'_, Value>> {
            self.vars.get(name).map(Cow::Borrowed)
        }
        fn random(&self) -> u64 {
            // splitmix64: distinct, well-mixed draws, the same in every run.
            let x = self
                .draws
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
                .wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    fn run(input: &Value, expr: &str) -> Result<Value, Failure> {
        let call = parse(expr).unwrap_or_else(|e| panic!("{expr} does not parse: {e}"));
        call.eval(input, &TestEnv::default())
    }

    #[track_caller]
    fn give(input: Value, expr: &str, output: Value) {
        match run(&input, expr) {
            Ok(v) => assert_eq!(v, output, "{expr}"),
            Err(f) => panic!("{expr} failed: {f}"),
        }
    }

    /// `fail`'s mark for a function that refuses its arguments: the state fails with
    /// States.Runtime and AWS's cause, and the refusal's own words (logged) hold `cause`.
    const REFUSED: &str = "refused";

    /// Fails with `error`, and the cause holds `cause`.
    #[track_caller]
    fn fail(input: Value, expr: &str, error: &str, cause: &str) {
        if error == REFUSED {
            let f = run(&input, expr).expect_err(expr);
            assert_eq!(f.error, names::RUNTIME, "{expr}: {}", f.cause);
            let head =
                format!("There was an error while evaluating the intrinsic function: {expr}. Invalid ");
            assert!(f.cause.starts_with(&head), "{expr}: {}", f.cause);
            let call = parse(expr).unwrap();
            match call.func.eval(&input, &TestEnv::default()) {
                Err(Stop::Refused { why, .. }) => {
                    assert!(why.contains(cause), "{expr}: {why:?} lacks {cause:?}")
                }
                other => panic!("{expr}: not refused: {:?}", other.map_err(|_| "a missing path")),
            }
            return;
        }
        match run(&input, expr) {
            Ok(v) => panic!("{expr} gave {v} instead of failing"),
            Err(f) => {
                assert_eq!(f.error, error, "{expr}: {}", f.cause);
                assert!(f.cause.contains(cause), "{expr}: cause {:?} lacks {cause:?}", f.cause);
            }
        }
    }

    #[track_caller]
    fn refused(text: &str, what: &str) {
        match parse(text) {
            Ok(c) => panic!("{text} parsed as {c:?}"),
            Err(e) => assert!(e.contains(what), "{text}: {e:?} lacks {what:?}"),
        }
    }

    #[test]
    fn format() {
        give(json!({"n": "World"}), "States.Format('Hello, {}!', $.n)", json!("Hello, World!"));
        give(json!({}), "States.Format('no holes')", json!("no holes"));
        give(
            json!({"a": null, "b": 1.1, "c": 1}),
            "States.Format('{} {} {}', $.a, $.b, $.c)",
            json!("null 1.1 1"),
        );
        give(
            json!({"o": {"Arg1": 1, "Arg2": []}}),
            "States.Format('o={}', $.o)",
            json!("o={Arg1=1, Arg2=[]}"),
        );
        give(json!({"a": ["x", {"k": "v"}, true]}), "States.Format('{}', $.a)", json!("[x, {k=v}, true]"));
        give(json!({}), "States.Format('\\{\\} is {}', 'kept')", json!("{} is kept"));
        give(json!({}), "States.Format('It\\'s {} \\\\ {}', 1, 2.5)", json!("It's 1 \\ 2.5"));
        give(json!({"x": "Pikachu"}), "States.Format($template, $.x)", json!("It's Pikachu!"));
        give(json!({}), "States.Format('{}', 1.0)", json!("1.0"));
        fail(json!({}), "States.Format('{} {}', 'one')", REFUSED, "placeholder");
        fail(json!({}), "States.Format('{}', 'a', 'b')", REFUSED, "placeholder");
        fail(json!({"n": 5}), "States.Format($.n)", REFUSED, "must be a string");
        // AWS's sentences for a brace that is not half of a placeholder (recorded).
        fail(
            json!({}),
            "States.Format('}')",
            REFUSED,
            "Invalid template in States.Format: matching '{' not found for '}'.",
        );
        fail(json!({}), "States.Format('a {', 1)", REFUSED, "matching '}' not found for '{'.");
        fail(json!({"t": "x }{"}), "States.Format($.t)", REFUSED, "matching '{' not found for '}'.");
        give(json!({}), "States.Format('\\}')", json!("}"));
    }

    #[test]
    fn json_to_string_of_many_arguments_has_awss_own_sentence() {
        let failure = run(&json!({}), "States.JsonToString(1, 2)").unwrap_err();
        assert!(
            failure.cause.ends_with(
                "States.JsonToString(1, 2). Invalid arguments in States.JsonToString: only a single argument is allowed."
            ),
            "{}",
            failure.cause
        );
    }

    #[test]
    fn string_to_json() {
        give(
            json!({"s": "{\"Arg1\": 1, \"Arg2\": []}"}),
            "States.StringToJson($.s)",
            json!({"Arg1": 1, "Arg2": []}),
        );
        give(json!({"s": ""}), "States.StringToJson($.s)", Value::Null);
        give(json!({"s": " "}), "States.StringToJson($.s)", Value::Null);
        give(json!({"s": "null"}), "States.StringToJson($.s)", Value::Null);
        give(json!({"s": "-0"}), "States.StringToJson($.s)", json!(0));
        give(json!({"s": "1.1"}), "States.StringToJson($.s)", json!(1.1));
        give(json!({"s": "\"HelloWorld\""}), "States.StringToJson($.s)", json!("HelloWorld"));
        give(json!({}), "States.StringToJson('{\"a\": [true]}')", json!({"a": [true]}));
        fail(json!({"s": "{nope"}), "States.StringToJson($.s)", REFUSED, "not valid JSON");
        fail(json!({"s": 1}), "States.StringToJson($.s)", REFUSED, "must be a string");
    }

    #[test]
    fn json_to_string() {
        give(
            json!({"v": {"Arg1": 1, "Arg2": []}}),
            "States.JsonToString($.v)",
            json!("{\"Arg1\":1,\"Arg2\":[]}"),
        );
        give(json!({"v": [1, 2, "HelloWorld"]}), "States.JsonToString($.v)", json!("[1,2,\"HelloWorld\"]"));
        give(json!({"v": "HelloWorld"}), "States.JsonToString($.v)", json!("\"HelloWorld\""));
        give(json!({"v": null}), "States.JsonToString($.v)", json!("null"));
        give(json!({"v": 1.1}), "States.JsonToString($.v)", json!("1.1"));
        give(json!({"v": 1.0}), "States.JsonToString($.v)", json!("1.0"));
        give(json!({"v": 1e10}), "States.JsonToString($.v)", json!("1.0E10"));
        give(json!({"v": true}), "States.JsonToString($.v)", json!("true"));
        give(json!({"v": "a\"b\n"}), "States.JsonToString($.v)", json!("\"a\\\"b\\n\""));
    }

    #[test]
    fn array() {
        give(json!({}), "States.Array()", json!([]));
        give(
            json!({"a": {"b": 1}}),
            "States.Array('x', 1, -2.5, true, false, null, $.a)",
            json!(["x", 1, -2.5, true, false, null, {"b": 1}]),
        );
    }

    #[test]
    fn array_partition() {
        give(
            json!({"a": [1, 2, 3, 4, 5, 6, 7, 8, 9]}),
            "States.ArrayPartition($.a, 4)",
            json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]]),
        );
        give(json!({"a": []}), "States.ArrayPartition($.a, 2)", json!([]));
        give(json!({"a": [0, 1]}), "States.ArrayPartition($.a, 5)", json!([[0, 1]]));
        fail(json!({"a": [1]}), "States.ArrayPartition($.a, 0)", REFUSED, "positive");
        // Recorded on AWS: 0.49 and -0.4 are refused (a Java cast makes them 0), and so is '2'.
        fail(json!({"a": [1, 2, 3]}), "States.ArrayPartition($.a, 0.49)", REFUSED, "positive");
        fail(json!({"a": [1, 2, 3]}), "States.ArrayPartition($.a, -0.4)", REFUSED, "positive");
        fail(json!({"a": [1, 2, 3]}), "States.ArrayPartition($.a, '2')", REFUSED, "must be a number");
        give(json!({"a": [1, 2, 3, 4, 5]}), "States.ArrayPartition($.a, 2.6)", json!([[1, 2], [3, 4], [5]]));
        fail(json!({"a": "x"}), "States.ArrayPartition($.a, 1)", REFUSED, "must be an array");
    }

    #[test]
    fn array_contains() {
        let input = json!({"a": [[1, 2, 3], 2, {"1": 2, "2": []}, true]});
        give(input.clone(), "States.ArrayContains($.a, 2)", json!(true));
        give(input.clone(), "States.ArrayContains($.a, $.a[0])", json!(true));
        give(input.clone(), "States.ArrayContains($.a, $.a[2])", json!(true));
        give(input.clone(), "States.ArrayContains($.a, null)", json!(false));
        give(input.clone(), "States.ArrayContains($.a, 2.0)", json!(false));
        give(json!({"a": []}), "States.ArrayContains($.a, $.a)", json!(false));
        fail(input, "States.ArrayContains($.a[1], 2)", REFUSED, "must be an array");
    }

    #[test]
    fn array_range() {
        give(json!({}), "States.ArrayRange(1, 9, 2)", json!([1, 3, 5, 7, 9]));
        give(json!({}), "States.ArrayRange(0, 10, 3)", json!([0, 3, 6, 9]));
        give(json!({}), "States.ArrayRange(1, 9, 9)", json!([1]));
        give(json!({}), "States.ArrayRange(5, 1, -2)", json!([5, 3, 1]));
        give(json!({}), "States.ArrayRange(5, 1, 2)", json!([]));
        give(json!({}), "States.ArrayRange(1, 1, 3)", json!([1]));
        give(json!({}), "States.ArrayRange(0.5, 2.4, 1)", json!([0, 1, 2]));
        give(json!({}), "States.ArrayRange(1.6, 1.4, 1)", json!([1]));
        fail(json!({}), "States.ArrayRange(1, 10, 0.49)", REFUSED, "step");
        give(json!({}), "States.ArrayRange(1, 1000, 1)", Value::Array((1..=1000).map(Value::from).collect()));
        fail(json!({}), "States.ArrayRange(0, 1000, 1)", REFUSED, "more than 1000 items");
        fail(json!({}), "States.ArrayRange(0, 10, 0)", REFUSED, "step");
        fail(json!({}), "States.ArrayRange('0', 10, 1)", REFUSED, "must be a number");
    }

    #[test]
    fn array_get_item() {
        let input = json!({"a": [1, 2, 3, 4, 5, 6, 7, 8, 9], "i": 5});
        give(input.clone(), "States.ArrayGetItem($.a, $.i)", json!(6));
        give(input.clone(), "States.ArrayGetItem($.a, 0)", json!(1));
        fail(input.clone(), "States.ArrayGetItem($.a, 9)", REFUSED, "out of bounds");
        fail(input.clone(), "States.ArrayGetItem($.a, -1)", REFUSED, "out of bounds");
        // A Java cast: the fraction is dropped.
        give(input.clone(), "States.ArrayGetItem($.a, 1.5)", json!(2));
        fail(input, "States.ArrayGetItem($.a, '1')", REFUSED, "must be a number");
    }

    #[test]
    fn array_length() {
        give(json!({"a": [1, 2, 3]}), "States.ArrayLength($.a)", json!(3));
        give(json!({"a": []}), "States.ArrayLength($.a)", json!(0));
        fail(json!({"a": {}}), "States.ArrayLength($.a)", REFUSED, "must be an array");
    }

    #[test]
    fn array_unique() {
        give(json!({"a": [1, 2, 3, 3, 3, 3, 3, 3, 4]}), "States.ArrayUnique($.a)", json!([1, 2, 3, 4]));
        give(
            json!({"a": [null, null, true, 1, 1, 1.1, "x", "x", [], [], {"a": 1}, {"a": 1}, {"a": 2}]}),
            "States.ArrayUnique($.a)",
            json!([null, true, 1, 1.1, "x", [], {"a": 1}, {"a": 2}]),
        );
        give(json!({}), "States.ArrayUnique($nums)", json!([3, 1]));
    }

    #[test]
    fn base64() {
        give(json!({"s": "Data to encode"}), "States.Base64Encode($.s)", json!("RGF0YSB0byBlbmNvZGU="));
        give(json!({"s": ""}), "States.Base64Encode($.s)", json!(""));
        give(json!({"s": "RGF0YSB0byBlbmNvZGU="}), "States.Base64Decode($.s)", json!("Data to encode"));
        give(json!({"s": "RGF0YSB0byBlbmNvZGU"}), "States.Base64Decode($.s)", json!("Data to encode"));
        give(json!({"s": ""}), "States.Base64Decode($.s)", json!(""));
        fail(json!({"s": "not base64!"}), "States.Base64Decode($.s)", REFUSED, "not valid base64");
        let long = "x".repeat(10_001);
        fail(json!({ "s": long }), "States.Base64Encode($.s)", REFUSED, "10000 characters or less");
    }

    #[test]
    fn hash() {
        let input = json!({"s": "input data"});
        give(input.clone(), "States.Hash($.s, 'MD5')", json!("812f45842bc6d66ee14572ce20db8e86"));
        give(input.clone(), "States.Hash($.s, 'SHA-1')", json!("aaff4a450a104cd177d28d18d74485e8cae074b7"));
        give(
            input.clone(),
            "States.Hash($.s, 'SHA-256')",
            json!("b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
        );
        give(
            input.clone(),
            "States.Hash($.s, 'SHA-384')",
            json!("d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b87525bdc835ebb27e1fb9e9374a15562"),
        );
        give(
            json!({}),
            "States.Hash('Hash this string', 'SHA-256')",
            json!("1cac63f39fd68d8c531f27b807610fb3d50f0fc3f186995767fb6316e7200a3e"),
        );
        let sha512 = run(&input, "States.Hash($.s, 'SHA-512')").map(|v| v.as_str().map(str::len));
        assert_eq!(sha512, Ok(Some(128)));
        fail(input.clone(), "States.Hash($.s, 'sha-256')", REFUSED, "not supported");
        fail(json!({ "s": "y".repeat(10_001) }), "States.Hash($.s, 'MD5')", REFUSED, "10000");
        fail(json!({"s": 1}), "States.Hash($.s, 'MD5')", REFUSED, "must be a string");
    }

    #[test]
    fn json_merge() {
        give(
            json!({"a": {"a": {"a1": 1, "a2": 2}, "b": 2, "d": 3}, "b": {"a": {"a3": 1, "a4": 2}, "c": 3, "d": 4}}),
            "States.JsonMerge($.a, $.b, false)",
            json!({"a": {"a3": 1, "a4": 2}, "b": 2, "d": 4, "c": 3}),
        );
        give(
            json!({"f": {"x": 1}}),
            "States.JsonMerge(States.StringToJson('{\"k\": \"false\"}'), $.f, false)",
            json!({"k": "false", "x": 1}),
        );
        fail(json!({"a": {}}), "States.JsonMerge($.a, $.a, true)", REFUSED, "shallow");
        fail(json!({"a": {}}), "States.JsonMerge($.a, 1, false)", REFUSED, "JSON object");
        fail(json!({"a": {}}), "States.JsonMerge($.a, $.a, 'false')", REFUSED, "boolean");
    }

    #[test]
    fn math_random() {
        let env = TestEnv::default();
        let call = parse("States.MathRandom($.s, $.e)").unwrap();
        for (s, e) in [(12.5_f64, 44.51_f64), (9999.0, 99999.0), (-99999.0, -9999.0), (0.0, 1.0)] {
            let input = json!({"s": s, "e": e});
            for _ in 0..50 {
                let n = call.eval(&input, &env).unwrap().as_i64().unwrap();
                assert!((s.trunc() as i64..e.trunc() as i64).contains(&n), "{n} not in [{s}, {e})");
            }
        }
        // A seed makes it deterministic, and java.util.Random's: new Random(3).nextInt(999)
        // is 239 and new Random(-5).nextInt(1 << 20) is 282382 (checked with a JDK).
        give(json!({}), "States.MathRandom(0, 999, 3)", json!(239));
        give(json!({}), "States.MathRandom(10, 1009, 3)", json!(249));
        give(json!({}), "States.MathRandom(0, 1048576, -5)", json!(282_382));
        fail(json!({}), "States.MathRandom(5, 5)", REFUSED, "greater than");
        fail(json!({}), "States.MathRandom(1.4, 1.6)", REFUSED, "greater than");
        // Recorded on AWS with a seed.
        give(json!({}), "States.MathRandom(1, 100, 42)", json!(63));
        give(json!({}), "States.MathRandom(1, 10, -10)", json!(1));
        give(json!({}), "States.MathRandom(2147483640, 2147483647, 1)", json!(2_147_483_644));
        fail(json!({}), "States.MathRandom('a', 5)", REFUSED, "must be a number");
    }

    #[test]
    fn math_add() {
        give(json!({"a": -9, "b": 3}), "States.MathAdd($.a, $.b)", json!(-6));
        give(json!({}), "States.MathAdd(111, -1)", json!(110));
        // Math.round: halves go up, also for negative numbers.
        for (a, b, sum) in [
            (1.49, 1.5, 3),
            (1.5, 1.51, 4),
            (-1.49, -1.5, -2),
            (-1.5, -1.51, -3),
            (0.5, 0.0, 1),
            (2.5, 0.0, 3),
            (-0.5, 0.5, 1),
            (-0.5, 0.0, 0),
            (-2.5, 0.0, -2),
            (-3.5, 0.0, -3),
        ] {
            give(json!({"a": a, "b": b}), "States.MathAdd($.a, $.b)", json!(sum));
        }
        // Recorded on AWS: a sum past Java's int range, a string and the wrong arity all fail.
        fail(json!({}), "States.MathAdd(2147483647, 1)", REFUSED, "the sum 2147483648");
        fail(json!({}), "States.MathAdd(-2147483648, -1)", REFUSED, "outside the range");
        fail(json!({}), "States.MathAdd('-1', 2)", REFUSED, "must be a number");
        fail(json!({}), "States.MathAdd(1)", REFUSED, "takes exactly 2 arguments");
        fail(json!({}), "States.MathAdd(1, 2, 999)", REFUSED, "takes exactly 2 arguments");
        fail(json!({}), "States.MathAdd(2147483648, 1)", REFUSED, "outside the range");
        fail(json!({}), "States.MathAdd('1', 1)", REFUSED, "must be a number");
    }

    #[test]
    fn string_split() {
        give(json!({"s": "1,2,3,4,5"}), "States.StringSplit($.s, ',')", json!(["1", "2", "3", "4", "5"]));
        give(
            json!({"s": "This.is+a,test=string"}),
            "States.StringSplit($.s, '.+,=')",
            json!(["This", "is", "a", "test", "string"]),
        );
        give(json!({"s": ", , ,"}), "States.StringSplit($.s, ',')", json!([" ", " "]));
        give(json!({"s": " "}), "States.StringSplit($.s, ',')", json!([" "]));
        give(json!({"s": ""}), "States.StringSplit($.s, ',')", json!([]));
        give(
            json!({"s": "split on T and \nnew line"}),
            "States.StringSplit($.s, 'T\n')",
            json!(["split on ", " and ", "new line"]),
        );
        give(json!({}), "States.StringSplit($$.Execution.Input.csv, ',')", json!(["a", "b", "c"]));
        fail(json!({"s": 1}), "States.StringSplit($.s, ',')", REFUSED, "must be a string");
    }

    #[test]
    fn uuid() {
        let env = TestEnv::default();
        let call = parse("States.UUID()").unwrap();
        let a = call.eval(&json!({}), &env).unwrap();
        let b = call.eval(&json!({}), &env).unwrap();
        assert_ne!(a, b);
        let parsed = ::uuid::Uuid::parse_str(a.as_str().unwrap()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(a.as_str().unwrap(), parsed.hyphenated().to_string());
        // Recorded on AWS: arguments are ignored.
        for text in ["States.UUID('x')", "States.UUID(1, 2)"] {
            let v = parse(text).unwrap().eval(&json!({}), &env).unwrap();
            assert!(::uuid::Uuid::parse_str(v.as_str().unwrap()).is_ok(), "{text}: {v}");
        }
    }

    #[test]
    fn nested_calls() {
        give(
            json!({}),
            "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), 0)",
            json!("order"),
        );
        give(
            json!({}),
            "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), States.MathAdd(States.ArrayLength(States.StringSplit($$.StateMachine.Name, '-')), -1))",
            json!("v2"),
        );
        give(
            json!({"ImageRecipe": {"Arn": "arn:aws:imagebuilder:us-east-1:1:image-recipe/my.recipe.name/1.0.0"}}),
            "States.Format('{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 1))",
            json!("1.0"),
        );
        let mut deep = "States.Array()".to_string();
        for _ in 0..9 {
            deep = format!("States.Array({deep})");
        }
        assert!(parse(&deep).is_ok(), "10 levels are allowed");
        refused(&format!("States.Array({deep})"), "more than 10 nested");
    }

    #[test]
    fn arguments_and_paths() {
        give(json!({"a b": 1}), "States.Array($['a b'])", json!([1]));
        give(json!({"items": [{"p": 1}, {"p": 5}]}), "States.Array($.items[?(@.p > 2)].p)", json!([[5]]));
        give(json!({"a": [1, 2]}), "States.Array($.a.length())", json!([2]));
        give(json!({"a": 1}), "States.Array($)", json!([{"a": 1}]));
        give(json!({}), "States.Array( 'a' ,\t'b' )", json!(["a", "b"]));
        give(json!({}), "  States.Array(1e2, -0.5, 0)", json!([100.0, -0.5, 0]));
        give(json!({}), "States.Format('{}', $$.Execution.Name)", json!("ex1"));
        give(json!({}), "States.StringSplit('Hello\nWorld', '\n')", json!(["Hello", "World"]));
    }

    #[test]
    fn missing_paths_fail_the_state_as_aws_words_it() {
        let expr = "States.Format('{}', States.Format('{}', $.nope))";
        let cause = "The function 'States.Format('{}', States.Format('{}', $.nope))' had the following error: \
                     The JsonPath argument for the field '$.nope' could not be found in the input '{\"other\":1}'";
        let failure = run(&json!({"other": 1}), expr).unwrap_err();
        assert_eq!(failure, Failure::new(names::RUNTIME, cause));
        fail(json!({}), "States.Array($noSuchVar)", names::RUNTIME, "'$noSuchVar' could not be found");
        fail(
            json!({}),
            "States.Array($$.Execution.Nope)",
            names::RUNTIME,
            "'$$.Execution.Nope' could not be found",
        );
    }

    #[test]
    fn definitions_are_checked_when_parsed() {
        assert!(is_call(" States.UUID()"));
        assert!(!is_call("$.States.x"));
        refused("States.Nope(1)", "unknown intrinsic function 'States.Nope'");
        refused("States.format('x')", "unknown intrinsic function");
        // The number of arguments is judged when the call runs, as AWS does.
        assert!(parse("States.MathAdd(1)").is_ok());
        fail(json!({}), "States.MathRandom(1, 2, 3, 4)", REFUSED, "2 to 3 arguments");
        fail(json!({}), "States.Format()", REFUSED, "at least 1 argument");
        refused("States.Array(1", "missing ')'");
        refused("States.Array(1) x", "after the closing ')'");
        refused("States.Array('abc)", "unterminated string");
        refused("States.StringToJson('{\"text\":\"An \\\"escaped\\\" quote\"}')", "invalid escape sequence");
        refused("States.Format('He said, \\\"Hello, {}!\\\"', 'x')", "invalid escape sequence");
        refused("States.Array(1 2)", "expected ',' or ')'");
        refused("States.Array(01)", "not a valid number");
        refused("States.Array(truth)", "expected an argument");
        refused("States.Array($.a[)", "invalid JSONPath");
        refused("$.a", "expected an intrinsic function");
        let text = "States.Format('{}', $.a)";
        assert_eq!(parse(text).map(|c| c.text().to_string()), Ok(text.to_string()));
    }

    #[test]
    fn java_doubles() {
        for (d, s) in [
            (1.0, "1.0"),
            (1.1, "1.1"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (1234567.0, "1234567.0"),
            (1e7, "1.0E7"),
            (1.5e10, "1.5E10"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1.2345e-7, "1.2345E-7"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (123456789.123, "1.23456789123E8"),
            (1e21, "1.0E21"),
            (1.7976931348623157e308, "1.7976931348623157E308"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(java_double(d), s, "{d}");
        }
    }
}
