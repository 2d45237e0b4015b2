//! Execution input as the API receives it: text that must hold JSON. A bad input gets
//! AWS's `InvalidExecutionInput` message, which quotes the JSON parser AWS runs (Jackson)
//! for the mistakes people make most: a bare word, single quotes, nothing at all.

use serde_json::Value;

/// Parses an execution input; the error is the message of AWS's InvalidExecutionInput.
pub fn parse(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Err("Invalid State Machine Execution Input: 'Invalid execution input.'".into());
    }
    parse_with(text, "Invalid State Machine Execution Input")
}

/// Parses JSON text that the API received (a Task's output in SendTaskSuccess, ...); the
/// error is `"{what}: '<the parser's complaint>'"`.
pub fn parse_with(text: &str, what: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("{what}: '{}'", jackson_message(text, &e)))
}

fn jackson_message(text: &str, e: &serde_json::Error) -> String {
    // The character serde stopped at (its column is 1-based and counts characters).
    let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("");
    let at = e.column().saturating_sub(1);
    let ch = line.chars().nth(at);
    let msg = e.to_string();
    if msg.starts_with("key must be a string") {
        if let Some(c) = ch {
            return format!(
                "Unexpected character ('{c}' (code {})): was expecting double-quote to start field name",
                c as u32
            );
        }
    }
    if msg.starts_with("expected ident") || msg.starts_with("expected value") {
        let start = line[..line.char_indices().nth(at).map(|(i, _)| i).unwrap_or(line.len())]
            .rfind(|c: char| !c.is_alphanumeric())
            .map(|i| i + 1)
            .unwrap_or(0);
        let word: String = line[start..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !word.is_empty() {
            return format!(
                "Unrecognized token '{word}': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
            );
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_inputs_get_awss_messages() {
        assert_eq!(
            parse("").unwrap_err(),
            "Invalid State Machine Execution Input: 'Invalid execution input.'"
        );
        assert_eq!(
            parse("not json").unwrap_err(),
            "Invalid State Machine Execution Input: 'Unrecognized token 'not': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')'"
        );
        assert_eq!(
            parse("{'a': 1}").unwrap_err(),
            "Invalid State Machine Execution Input: 'Unexpected character (''' (code 39)): was expecting double-quote to start field name'"
        );
        assert_eq!(parse("{\"a\": [1]}").unwrap()["a"][0], 1);
    }
}
