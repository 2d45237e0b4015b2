//! Splits an IoT SQL statement into tokens, each with its byte offset, so that a syntax error
//! in a trigger's rule can name the line and column (MQTT message -> IoT SQL -> workflow
//! input).
//!
//! Strings are quoted with `'` or `"` (AWS's own examples use both); a backslash escapes
//! the quote, itself, and the usual JSON letters, and any other backslash stays as written
//! so that regular expressions such as `'\d+'` read naturally. Names quoted with backticks
//! reach keys that are keywords or not identifiers (`` `value` ``, `` `my-key` ``).

use super::SyntaxError;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// A bare name: a field, a function, or a keyword (keywords are recognized by the
    /// parser, in any case).
    Ident(String),
    /// A name in backticks: always a field or an alias, never a keyword.
    Quoted(String),
    /// `@name`
    Var(String),
    Str(String),
    /// A number as written; the parser decides between Int and Decimal.
    Num(String),
    Sym(&'static str),
    Eof,
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) start: usize,
}

impl Tok {
    /// How an error message names the token.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Quoted(s) => format!("`{s}`"),
            Tok::Var(s) => format!("'@{s}'"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Num(s) => format!("number {s}"),
            Tok::Sym(s) => format!("'{s}'"),
            Tok::Eof => "the end of the statement".to_string(),
        }
    }
}

/// Two-character symbols first, so that `<=` is not read as `<` `=`.
const SYMBOLS: &[&str] = &[
    "<>", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "*", "/", "%", "+", "-", "=", "<",
    ">",
];

pub(super) fn tokenize(src: &str) -> Result<Vec<Token>, SyntaxError> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            Tok::Ident(src[start..i].to_string())
        } else if c.is_ascii_digit() {
            i = number_end(b, i);
            Tok::Num(src[start..i].to_string())
        } else if c == b'@' {
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            if i == start + 1 {
                return Err(SyntaxError::at(src, start, "expected a variable name after '@'"));
            }
            Tok::Var(src[start + 1..i].to_string())
        } else if c == b'\'' || c == b'"' {
            let (text, end) = string(src, start)?;
            i = end;
            Tok::Str(text)
        } else if c == b'`' {
            let end = src[start + 1..]
                .find('`')
                .ok_or_else(|| SyntaxError::at(src, start, "this quoted name has no closing backtick"))?;
            i = start + 1 + end + 1;
            if end == 0 {
                return Err(SyntaxError::at(src, start, "a quoted name cannot be empty"));
            }
            Tok::Quoted(src[start + 1..start + 1 + end].to_string())
        } else if let Some(sym) = SYMBOLS.iter().find(|s| src[i..].starts_with(**s)) {
            i += sym.len();
            Tok::Sym(sym)
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(SyntaxError::at(src, start, &format!("unexpected character '{ch}'")));
        };
        out.push(Token { tok, start });
    }
    out.push(Token { tok: Tok::Eof, start: src.len() });
    Ok(out)
}

/// `12`, `1.5`, `5E-12`, `2.5e+3`: digits, an optional fraction, an optional exponent.
fn number_end(b: &[u8], mut i: usize) -> usize {
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    i = digits(i);
    if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i = digits(i + 1);
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            i = digits(j);
        }
    }
    i
}

/// A quoted string starting at `start`; returns its text and the offset after it.
fn string(src: &str, start: usize) -> Result<(String, usize), SyntaxError> {
    let quote = src.as_bytes()[start] as char;
    let mut text = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((k, c)) = chars.next() {
        let at = start + 1 + k;
        if c == quote {
            return Ok((text, at + 1));
        }
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some((_, e @ ('\'' | '"' | '\\' | '/'))) => text.push(e),
            Some((_, 'n')) => text.push('\n'),
            Some((_, 't')) => text.push('\t'),
            Some((_, 'r')) => text.push('\r'),
            Some((_, 'b')) => text.push('\u{8}'),
            Some((_, 'f')) => text.push('\u{c}'),
            Some((_, 'u')) => {
                let hex: String = chars.by_ref().take(4).map(|(_, h)| h).collect();
                match u32::from_str_radix(&hex, 16).ok().filter(|_| hex.len() == 4).and_then(char::from_u32) {
                    Some(ch) => text.push(ch),
                    None => return Err(SyntaxError::at(src, at, "expected four hex digits after '\\u'")),
                }
            }
            // Any other escape is kept as written: it is meant for a regular expression.
            Some((_, other)) => {
                text.push('\\');
                text.push(other);
            }
            None => break,
        }
    }
    Err(SyntaxError::at(src, start, "this string has no closing quote"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap_or_else(|e| panic!("{src}: {e}")).into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn splits_a_statement() {
        use Tok::*;
        assert_eq!(
            toks("SELECT a.b AS `x-y`, @v <= 5E-2 FROM 'a/+'"),
            vec![
                Ident("SELECT".into()),
                Ident("a".into()),
                Sym("."),
                Ident("b".into()),
                Ident("AS".into()),
                Quoted("x-y".into()),
                Sym(","),
                Var("v".into()),
                Sym("<="),
                Num("5E-2".into()),
                Ident("FROM".into()),
                Str("a/+".into()),
                Eof
            ]
        );
    }

    #[test]
    fn reads_escapes_and_keeps_regex_backslashes() {
        assert_eq!(
            toks(r#"'it\'s' "a\"b" '\d+\.' '\u00e9'"#)[..4],
            [
                Tok::Str("it's".into()),
                Tok::Str("a\"b".into()),
                Tok::Str("\\d+\\.".into()),
                Tok::Str("é".into())
            ]
        );
    }

    #[test]
    fn reports_where_a_token_goes_wrong() {
        let e = tokenize("SELECT 'abc FROM t").err().map(|e| (e.column, e.message));
        assert_eq!(e, Some((8, "this string has no closing quote".to_string())));
        let e = tokenize("SELECT a FROM 't' WHERE a # 1").err().map(|e| (e.column, e.message));
        assert_eq!(e, Some((27, "unexpected character '#'".to_string())));
    }
}
