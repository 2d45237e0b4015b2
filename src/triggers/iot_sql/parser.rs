//! Parses an IoT SQL statement (or a lone expression) into the tree of `ast.rs`, once, when
//! a trigger is loaded (MQTT message -> IoT SQL -> workflow input).
//!
//! Everything that can be known without a message is checked here: the syntax, the topic
//! filter, function names and argument counts, the functions that need an AWS service,
//! what SQL version 2015-10-08 lacks, and that each variable is set before it is used.
//! Every error names its position and, for syntax, what was expected instead.

use super::ast::{BinOp, Call, Case, CastType, Expr, Item, Lit, Query, Source};
use super::decimal::Dec;
use super::functions;
use super::lexer::{tokenize, Tok, Token};
use super::topic::check_filter;
use super::value::{Numbers, Val};
use super::{SqlVersion, SyntaxError};

/// Deeper nesting than this is surely a mistake, and it bounds the parser's recursion.
const MAX_DEPTH: usize = 64;
/// AWS's limit on variable names.
const MAX_VAR_NAME: usize = 64;

const RESERVED: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "CASE", "WHEN", "THEN", "ELSE", "END", "SET",
    "TRUE", "FALSE", "NULL",
];

/// A parsed statement: its SET variables (in order) and its query.
#[derive(Debug)]
pub(super) struct Statement {
    pub(super) sets: Vec<(Box<str>, Expr)>,
    pub(super) query: Query,
}

pub(super) fn statement(src: &str, version: SqlVersion) -> Result<Statement, SyntaxError> {
    let mut p = Parser::new(src, version, true)?;
    let mut sets = Vec::new();
    if p.eat_kw("SET") {
        loop {
            let at = p.start();
            let name = match p.advance() {
                Tok::Var(name) => name,
                other => return Err(p.error_at(at, "a variable such as @name", &other)),
            };
            if name.len() > MAX_VAR_NAME {
                return Err(p.fail_at(at, &format!("variable names have at most {MAX_VAR_NAME} characters")));
            }
            if p.vars.contains(&name) {
                return Err(p.fail_at(at, &format!("@{name} is already set; variables are set only once")));
            }
            p.expect_sym("=")?;
            let expr = p.expr()?;
            p.vars.push(name.clone());
            sets.push((name.into_boxed_str(), expr));
            if !p.eat_sym(",") {
                break;
            }
        }
    }
    p.expect_kw("SELECT")?;
    let query = p.query(false)?;
    if !p.at_eof() {
        let found = p.peek().clone();
        return Err(p.error_at(p.start(), "an operator or the end of the statement", &found));
    }
    Ok(Statement { sets, query })
}

pub(super) fn expression(src: &str, version: SqlVersion) -> Result<Expr, SyntaxError> {
    let mut p = Parser::new(src, version, false)?;
    let e = p.expr()?;
    if !p.at_eof() {
        let found = p.peek().clone();
        return Err(p.error_at(p.start(), "an operator or the end of the expression", &found));
    }
    Ok(e)
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    version: SqlVersion,
    num: Numbers,
    /// Variables set so far.
    vars: Vec<String>,
    /// False for a lone expression, which has no SET clause.
    statement: bool,
    depth: usize,
}

impl<'s> Parser<'s> {
    fn new(src: &'s str, version: SqlVersion, statement: bool) -> Result<Parser<'s>, SyntaxError> {
        Ok(Parser {
            src,
            toks: tokenize(src)?,
            pos: 0,
            version,
            num: version.numbers(),
            vars: Vec::new(),
            statement,
            depth: 0,
        })
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].tok
    }

    fn start(&self) -> usize {
        self.toks[self.pos].start
    }

    fn at_eof(&self) -> bool {
        matches!(self.peek(), Tok::Eof)
    }

    fn advance(&mut self) -> Tok {
        let t = self.toks[self.pos].tok.clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn is_kw(tok: &Tok, kw: &str) -> bool {
        matches!(tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = Self::is_kw(self.peek(), kw);
        if hit {
            self.advance();
        }
        hit
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SyntaxError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            let found = self.peek().clone();
            Err(self.error_at(self.start(), kw, &found))
        }
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        let hit = matches!(self.peek(), Tok::Sym(s) if *s == sym);
        if hit {
            self.advance();
        }
        hit
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), SyntaxError> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            let found = self.peek().clone();
            Err(self.error_at(self.start(), &format!("'{sym}'"), &found))
        }
    }

    fn error_at(&self, offset: usize, expected: &str, found: &Tok) -> SyntaxError {
        SyntaxError::at(self.src, offset, &format!("expected {expected}, found {}", found.describe()))
    }

    fn fail_at(&self, offset: usize, message: &str) -> SyntaxError {
        SyntaxError::at(self.src, offset, message)
    }

    fn needs_2016(&self, offset: usize, what: &str) -> Result<(), SyntaxError> {
        if self.version == SqlVersion::V2015_10_08 {
            Err(self
                .fail_at(offset, &format!("{what} needs SQL version 2016-03-23 (this rule uses 2015-10-08)")))
        } else {
            Ok(())
        }
    }

    /// After SELECT: `[VALUE] items FROM source [WHERE condition]`.
    fn query(&mut self, nested: bool) -> Result<Query, SyntaxError> {
        let value = self.at_value_keyword();
        if value {
            self.advance();
        }
        let mut items = Vec::new();
        if value {
            items.push(Item::Expr { expr: self.expr()?, key: Vec::new() });
            if matches!(self.peek(), Tok::Sym(",")) {
                return Err(self.fail_at(self.start(), "SELECT VALUE takes a single expression"));
            }
        } else {
            loop {
                items.push(self.item(items.len() + 1)?);
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        if !Self::is_kw(self.peek(), "FROM") {
            let found = self.peek().clone();
            return Err(self.error_at(self.start(), "',' or FROM", &found));
        }
        self.advance();
        let from = if nested {
            Source::Expr(self.expr()?)
        } else {
            let at = self.start();
            match self.advance() {
                Tok::Str(filter) => {
                    check_filter(&filter).map_err(|why| self.fail_at(at, &why))?;
                    Source::Topic(filter)
                }
                other => {
                    return Err(self.error_at(at, "a quoted topic filter such as 'sensors/+/data'", &other))
                }
            }
        };
        let filter = if self.eat_kw("WHERE") { Some(self.expr()?) } else { None };
        Ok(Query { value, items, from, filter })
    }

    /// Is the next word the VALUE of `SELECT VALUE expr`, or a field named `value`? A
    /// keyword when an expression follows it.
    fn at_value_keyword(&self) -> bool {
        if !Self::is_kw(self.peek(), "VALUE") {
            return false;
        }
        match self.peek_at(1) {
            Tok::Ident(s) => !["FROM", "AS", "AND", "OR"].iter().any(|k| s.eq_ignore_ascii_case(k)),
            Tok::Quoted(_) | Tok::Var(_) | Tok::Str(_) | Tok::Num(_) => true,
            Tok::Sym("(" | "{" | "[" | "-" | "+") => true,
            Tok::Sym("*") => Self::is_kw(self.peek_at(2), "FROM"),
            _ => false,
        }
    }

    /// One item of the SELECT list; `position` (from 1) names it when nothing else can.
    fn item(&mut self, position: usize) -> Result<Item, SyntaxError> {
        if matches!(self.peek(), Tok::Sym("*"))
            && (matches!(self.peek_at(1), Tok::Sym(",")) || Self::is_kw(self.peek_at(1), "FROM"))
        {
            self.advance();
            return Ok(Item::Star);
        }
        let expr = self.expr()?;
        let key = if self.eat_kw("AS") {
            let mut path = vec![self.name("a name after AS")?];
            while self.eat_sym(".") {
                path.push(self.name("a name after '.'")?);
            }
            path
        } else {
            vec![derived_key(&expr, position)]
        };
        Ok(Item::Expr { expr, key })
    }

    /// A key name: a bare word that is not reserved, or any name in backticks.
    fn name(&mut self, expected: &str) -> Result<Box<str>, SyntaxError> {
        let at = self.start();
        match self.advance() {
            Tok::Ident(s) if !is_reserved(&s) => Ok(s.into_boxed_str()),
            Tok::Quoted(s) => Ok(s.into_boxed_str()),
            other => Err(self.error_at(at, expected, &other)),
        }
    }

    fn expr(&mut self) -> Result<Expr, SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self
                .fail_at(self.start(), &format!("the expression nests more than {MAX_DEPTH} levels deep")));
        }
        let e = self.or();
        self.depth -= 1;
        e
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.and()?;
        while self.eat_kw("OR") {
            left = Expr::Binary(BinOp::Or, Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.not()?;
        while self.eat_kw("AND") {
            left = Expr::Binary(BinOp::And, Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, SyntaxError> {
        if self.eat_kw("NOT") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.fail_at(self.start(), "too many NOTs in a row"));
            }
            let inner = self.not();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.additive()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("=") => BinOp::Eq,
                Tok::Sym("<>" | "!=") => BinOp::Ne,
                Tok::Sym("<") => BinOp::Lt,
                Tok::Sym("<=") => BinOp::Le,
                Tok::Sym(">") => BinOp::Gt,
                Tok::Sym(">=") => BinOp::Ge,
                _ => return Ok(left),
            };
            self.advance();
            left = Expr::Binary(op, Box::new(left), Box::new(self.additive()?));
        }
    }

    fn additive(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("+") => BinOp::Add,
                Tok::Sym("-") => BinOp::Sub,
                _ => return Ok(left),
            };
            self.advance();
            left = Expr::Binary(op, Box::new(left), Box::new(self.multiplicative()?));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("*") => BinOp::Mul,
                Tok::Sym("/") => BinOp::Div,
                Tok::Sym("%") => BinOp::Rem,
                _ => return Ok(left),
            };
            self.advance();
            left = Expr::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        if self.eat_sym("-") {
            return Ok(match self.unary_operand()? {
                // A negative literal stays a literal.
                Expr::Lit(Lit::Int(i)) => Expr::Lit(Lit::Int(-i)),
                Expr::Lit(Lit::Dec(d)) => Expr::Lit(Lit::Dec(d.neg())),
                e => Expr::Neg(Box::new(e)),
            });
        }
        if self.eat_sym("+") {
            return self.unary_operand();
        }
        self.postfix()
    }

    fn unary_operand(&mut self) -> Result<Expr, SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fail_at(self.start(), "too many signs in a row"));
        }
        let e = self.unary();
        self.depth -= 1;
        e
    }

    fn postfix(&mut self) -> Result<Expr, SyntaxError> {
        let mut e = self.primary()?;
        loop {
            if self.eat_sym(".") {
                let at = self.start();
                // After a dot any word is a key, keywords included (`state.value`).
                e = match self.advance() {
                    Tok::Ident(s) | Tok::Quoted(s) => Expr::Member(Box::new(e), s.into_boxed_str()),
                    other => return Err(self.error_at(at, "a name after '.'", &other)),
                };
            } else if self.eat_sym("[") {
                let index = self.expr()?;
                self.expect_sym("]")?;
                e = Expr::Index(Box::new(e), Box::new(index));
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        let at = self.start();
        match self.advance() {
            Tok::Num(text) => self.number(at, &text),
            Tok::Str(s) => Ok(Expr::Lit(Lit::Str(s.into_boxed_str()))),
            Tok::Quoted(name) => Ok(Expr::Field(name.into_boxed_str())),
            Tok::Var(name) => self.variable(at, name),
            Tok::Sym("*") => Ok(Expr::Star),
            Tok::Sym("(") => {
                if Self::is_kw(self.peek(), "SELECT") {
                    self.needs_2016(at, "a nested SELECT")?;
                    self.advance();
                    let q = self.query(true)?;
                    self.expect_sym(")")?;
                    return Ok(Expr::Query(Box::new(q)));
                }
                let e = self.expr()?;
                self.expect_sym(")")?;
                Ok(e)
            }
            Tok::Sym("{") => {
                self.needs_2016(at, "an object literal")?;
                self.object()
            }
            Tok::Sym("[") => {
                self.needs_2016(at, "an array literal")?;
                let items = self.list("]")?;
                Ok(Expr::Array(items))
            }
            Tok::Ident(word) => self.word(at, word),
            other => Err(self.error_at(at, "an expression", &other)),
        }
    }

    fn number(&self, at: usize, text: &str) -> Result<Expr, SyntaxError> {
        let whole = text.bytes().all(|b| b.is_ascii_digit());
        if whole {
            if let Ok(i) = text.parse::<i128>() {
                if let Val::Int(i) = super::value::int(i) {
                    return Ok(Expr::Lit(Lit::Int(i)));
                }
            }
        }
        // The lexer allows `2.5e+3`; the decimal reader, like AWS's, has no plus sign.
        let d = Dec::parse(&text.replace("e+", "e").replace("E+", "E"))
            .ok_or_else(|| self.fail_at(at, &format!("the number {text} is out of range")))?;
        Ok(Expr::Lit(match self.num.dec(d) {
            Val::Int(i) => Lit::Int(i),
            _ => Lit::Dec(d),
        }))
    }

    fn variable(&self, at: usize, name: String) -> Result<Expr, SyntaxError> {
        if !self.statement {
            return Err(self.fail_at(at, &format!("@{name}: variables exist only in a rule's SET clause")));
        }
        match self.vars.iter().position(|v| *v == name) {
            Some(index) => Ok(Expr::Var { index, name: name.into_boxed_str() }),
            None => {
                Err(self.fail_at(at, &format!("@{name} is not set; set it first with SET @{name} = ...")))
            }
        }
    }

    /// `{'key': value, ...}`
    fn object(&mut self) -> Result<Expr, SyntaxError> {
        let mut entries = Vec::new();
        if self.eat_sym("}") {
            return Ok(Expr::Object(entries));
        }
        loop {
            let at = self.start();
            let key = match self.advance() {
                Tok::Str(s) | Tok::Quoted(s) | Tok::Ident(s) => s.into_boxed_str(),
                other => return Err(self.error_at(at, "a key", &other)),
            };
            self.expect_sym(":")?;
            entries.push((key, self.expr()?));
            if self.eat_sym("}") {
                return Ok(Expr::Object(entries));
            }
            if !self.eat_sym(",") {
                let found = self.peek().clone();
                return Err(self.error_at(self.start(), "',' or '}'", &found));
            }
        }
    }

    /// Comma-separated expressions up to `close`, which is consumed.
    fn list(&mut self, close: &'static str) -> Result<Vec<Expr>, SyntaxError> {
        let mut items = Vec::new();
        if self.eat_sym(close) {
            return Ok(items);
        }
        loop {
            items.push(self.expr()?);
            if self.eat_sym(close) {
                return Ok(items);
            }
            if !self.eat_sym(",") {
                let found = self.peek().clone();
                return Err(self.error_at(self.start(), &format!("',' or '{close}'"), &found));
            }
        }
    }

    /// A bare word: a keyword, a function call, or a field.
    fn word(&mut self, at: usize, word: String) -> Result<Expr, SyntaxError> {
        let upper = word.to_ascii_uppercase();
        match upper.as_str() {
            "TRUE" => return Ok(Expr::Lit(Lit::Bool(true))),
            "FALSE" => return Ok(Expr::Lit(Lit::Bool(false))),
            "NULL" => return Ok(Expr::Lit(Lit::Null)),
            "CASE" => return self.case(),
            _ if is_reserved(&word) => return Err(self.error_at(at, "an expression", &Tok::Ident(word))),
            _ => {}
        }
        if !matches!(self.peek(), Tok::Sym("(")) {
            return Ok(Expr::Field(word.into_boxed_str()));
        }
        self.advance();
        if upper == "CAST" {
            return self.cast();
        }
        let args = self.list(")")?;
        let builtin = functions::find(&word).map_err(|why| self.fail_at(at, &why))?;
        if !builtin.arity.admits(args.len()) {
            return Err(
                self.fail_at(at, &format!("{} takes {}, not {}", builtin.name, builtin.arity, args.len()))
            );
        }
        if builtin.since == SqlVersion::V2016_03_23 {
            self.needs_2016(at, builtin.name)?;
        }
        let prepared = builtin.prepare.map_or(functions::Prepared::Nothing, |prepare| prepare(&args));
        Ok(Expr::Call(Box::new(Call { builtin, args, prepared })))
    }

    /// After `cast(`: `value AS Type)`.
    fn cast(&mut self) -> Result<Expr, SyntaxError> {
        let value = self.expr()?;
        self.expect_kw("AS")?;
        let at = self.start();
        let types = "a type (String, Int, Decimal, Double, Bool)";
        let ty = match self.advance() {
            Tok::Ident(t) => match t.to_ascii_lowercase().as_str() {
                "string" | "nvarchar" | "text" | "ntext" | "varchar" => CastType::String,
                "int" | "integer" => CastType::Int,
                "double" => CastType::Double,
                "decimal" => {
                    self.needs_2016(at, "cast to Decimal")?;
                    CastType::Decimal
                }
                "bool" | "boolean" => {
                    self.needs_2016(at, "cast to Boolean")?;
                    CastType::Bool
                }
                _ => return Err(self.error_at(at, types, &Tok::Ident(t))),
            },
            other => return Err(self.error_at(at, types, &other)),
        };
        self.expect_sym(")")?;
        Ok(Expr::Cast(Box::new(value), ty))
    }

    /// After CASE: `subject WHEN t THEN r ... [ELSE e] END`.
    fn case(&mut self) -> Result<Expr, SyntaxError> {
        let subject = self.expr()?;
        let mut arms = Vec::new();
        while self.eat_kw("WHEN") {
            let when = self.expr()?;
            self.expect_kw("THEN")?;
            arms.push((when, self.expr()?));
        }
        if arms.is_empty() {
            let found = self.peek().clone();
            return Err(self.error_at(self.start(), "WHEN", &found));
        }
        let otherwise = if self.eat_kw("ELSE") { Some(self.expr()?) } else { None };
        if !Self::is_kw(self.peek(), "END") {
            let found = self.peek().clone();
            let expected = if otherwise.is_some() { "END" } else { "WHEN, ELSE or END" };
            return Err(self.error_at(self.start(), expected, &found));
        }
        self.advance();
        Ok(Expr::Case(Box::new(Case { subject, arms, otherwise })))
    }
}

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// The key of an item without AS. AWS's documentation always names computed items, so
/// this follows the common SQL habit: a field keeps its own name (`a.b.c` gives `c`), a
/// variable its name, a function call the function's; anything else is `_1`, `_2` ... by
/// its position in the list.
fn derived_key(expr: &Expr, position: usize) -> Box<str> {
    match expr {
        Expr::Field(name) | Expr::Member(_, name) | Expr::Var { name, .. } => name.clone(),
        Expr::Call(call) => call.builtin.name.into(),
        Expr::Cast(..) => "cast".into(),
        _ => format!("_{position}").into_boxed_str(),
    }
}
