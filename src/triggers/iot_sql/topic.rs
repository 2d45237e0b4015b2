//! MQTT topic filters: which messages reach a rule (the first step of MQTT message -> IoT
//! SQL -> workflow input).
//!
//! `+` matches one level, `#` (last, alone in its level) the rest of the topic including
//! none, and, as brokers do, a filter that starts with a wildcard does not match topics
//! that start with `$` (`$SYS/...`, `$aws/...`).

/// Whether `topic` matches the MQTT topic filter `filter`.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut levels = topic.split('/');
    for f in filter.split('/') {
        match (f, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// Checks a rule's FROM filter; the error says what is wrong with it.
pub(super) fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("the topic filter is empty".to_string());
    }
    if filter.contains('\0') {
        return Err("a topic filter cannot contain the NUL character".to_string());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!("'#' must be the whole last level of the topic filter '{filter}'"));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("'+' must be a whole level of the topic filter '{filter}'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_wildcards_level_by_level() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/+/c", "a/x/c", true),
            ("a/+", "a/", true),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/+", "/x", true),
            ("#", "$SYS/broker", false),
            ("+/broker", "$SYS/broker", false),
            ("$SYS/#", "$SYS/broker", true),
            ("a/b", "A/b", false),
        ];
        for (filter, topic, want) in cases {
            assert_eq!(topic_matches(filter, topic), want, "{filter} against {topic}");
        }
    }

    #[test]
    fn rejects_misplaced_wildcards() {
        assert!(check_filter("sensors/+/data").is_ok());
        assert!(check_filter("sensors/#").is_ok());
        assert!(check_filter("").is_err());
        assert!(check_filter("sensors/#/data").is_err());
        assert!(check_filter("sensors/a#").is_err());
        assert!(check_filter("sensors/a+/data").is_err());
    }
}
