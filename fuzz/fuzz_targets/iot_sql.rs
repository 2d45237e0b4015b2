//! An MQTT trigger's IoT SQL over a message: the statement (from the config) and the payload
//! (from any device on the broker) split at the first newline; the statement is parsed, and
//! when it parses it runs on the payload, as the trigger runs it on every message.
#![no_main]

#[path = "common.rs"]
mod common;

use stepgate::triggers::iot_sql::{self, Message, SqlVersion};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let Ok(sql) = std::str::from_utf8(&data[..split]) else { return };
    let payload = data.get(split + 1..).unwrap_or_default();
    let new_uuid = || "2b4d1c4e-2f3a-4b5c-8d9e-0f1a2b3c4d5e".to_string();
    let msg = Message {
        topic: "sensors/kitchen/temperature",
        payload,
        client_id: "n/a",
        principal: "",
        timestamp_ms: 1_796_032_800_000,
        new_uuid: &new_uuid,
    };
    for version in [SqlVersion::V2016_03_23, SqlVersion::V2015_10_08] {
        if let Ok(rule) = iot_sql::parse_rule(sql, version) {
            let _ = rule.apply(&msg);
            let _ = iot_sql::topic_matches(rule.topic_filter(), msg.topic);
        }
        if let Ok(expr) = iot_sql::parse_expression(sql, version) {
            let _ = expr.evaluate(&msg);
        }
    }
});
