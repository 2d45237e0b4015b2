//! Table tests of IoT SQL as MQTT triggers use it (MQTT message -> IoT SQL -> workflow
//! input). Most cases are the examples of the AWS IoT SQL reference: its payloads, its
//! statements and the outputs it documents; where the reference is silent the case says
//! so.

use super::*;
use serde_json::json;

const UUID: &str = "123a4567-b89c-12d3-e456-789012345000";
const TIMESTAMP: i64 = 1_481_825_251_155;
const TOPIC: &str = "things/myThings/thingOne";

fn fixed_uuid() -> String {
    UUID.to_string()
}

fn message<'a>(topic: &'a str, payload: &'a [u8]) -> Message<'a> {
    Message {
        topic,
        payload,
        client_id: "sensor-7",
        principal: "ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373",
        timestamp_ms: TIMESTAMP,
        new_uuid: &fixed_uuid,
    }
}

fn run(sql: &str, version: SqlVersion, payload: &[u8]) -> Result<Outcome, EvalError> {
    let rule = parse_rule(sql, version).unwrap_or_else(|e| panic!("{sql}\n does not parse: {e}"));
    rule.apply(&message(TOPIC, payload))
}

/// The rule turns `payload` into `output` (SQL version 2016-03-23).
#[track_caller]
fn give(sql: &str, payload: Value, output: Value) {
    give_in(SqlVersion::V2016_03_23, sql, payload, output);
}

#[track_caller]
fn give_in(version: SqlVersion, sql: &str, payload: Value, output: Value) {
    match run(sql, version, payload.to_string().as_bytes()) {
        Ok(Outcome::Output(v)) => assert_eq!(v, output, "{sql}"),
        other => panic!("{sql}\n gave {other:?}, not {output}"),
    }
}

/// WHERE keeps the message out.
#[track_caller]
fn filtered(sql: &str, payload: Value) {
    let got = run(sql, SqlVersion::V2016_03_23, payload.to_string().as_bytes());
    assert_eq!(got, Ok(Outcome::Filtered), "{sql}");
}

/// A lone expression evaluated against `payload`; `None` is Undefined.
fn eval_in(version: SqlVersion, expr: &str, payload: &Value) -> Option<Value> {
    let e = parse_expression(expr, version).unwrap_or_else(|e| panic!("{expr} does not parse: {e}"));
    let bytes = payload.to_string();
    e.evaluate(&message(TOPIC, bytes.as_bytes())).unwrap_or_else(|e| panic!("{expr} failed: {e}"))
}

/// Each expression, alone, against an empty payload: `(expression, value)`.
#[track_caller]
fn values(version: SqlVersion, cases: &[(&str, Value)]) {
    for (expr, want) in cases {
        assert_eq!(eval_in(version, expr, &json!({})), Some(want.clone()), "{expr}");
    }
}

#[track_caller]
fn undefined(cases: &[&str]) {
    for expr in cases {
        assert_eq!(eval_in(SqlVersion::V2016_03_23, expr, &json!({})), None, "{expr} is not Undefined");
    }
}

/// The statement is refused at `line`:`column` with a message containing `message`.
#[track_caller]
fn syntax_in(version: SqlVersion, sql: &str, line: usize, column: usize, message: &str) {
    match parse_rule(sql, version) {
        Ok(_) => panic!("{sql}\n parses, but should not"),
        Err(e) => {
            assert_eq!((e.line, e.column), (line, column), "{sql}\n {e}");
            assert!(e.message.contains(message), "{sql}\n said {e}, not ...{message}...");
        }
    }
}

#[track_caller]
fn syntax(sql: &str, column: usize, message: &str) {
    syntax_in(SqlVersion::V2016_03_23, sql, 1, column, message);
}

// The SELECT clause page.

#[test]
fn select_clause_examples() {
    let p = json!({"color": "red", "temperature": 50});
    give("SELECT * FROM 'topic/subtopic'", p.clone(), p.clone());
    give("SELECT color FROM 'topic/subtopic'", p.clone(), json!({"color": "red"}));
    give("SELECT color AS my_color FROM 'topic/subtopic'", p.clone(), json!({"my_color": "red"}));
    give(
        "SELECT color as my_color, temperature as fahrenheit FROM 'topic/subtopic'",
        p.clone(),
        json!({"my_color": "red", "fahrenheit": 50}),
    );
    give(
        "SELECT *, 15 as speed FROM 'topic/subtopic'",
        p.clone(),
        json!({"color": "red", "temperature": 50, "speed": 15}),
    );
    give("SELECT VALUE color FROM 'topic/subtopic'", p.clone(), json!("red"));
    give(
        "SELECT color.red as red_value FROM 'topic/subtopic'",
        json!({"color": {"red": 255, "green": 0, "blue": 0}, "temperature": 50}),
        json!({"red_value": 255}),
    );
    give(
        "SELECT (temperature - 32) * 5 / 9 AS celsius, upper(color) as my_color FROM 'topic/subtopic'",
        p,
        json!({"celsius": 10, "my_color": "RED"}),
    );
}

#[test]
fn reference_and_where_examples() {
    give(
        "SELECT color AS rgb FROM 'topic/subtopic' WHERE temperature > 50",
        json!({"color": "red", "temperature": 100}),
        json!({"rgb": "red"}),
    );
    filtered(
        "SELECT color AS my_color FROM 'a/b' WHERE temperature > 50 AND color <> 'red'",
        json!({"color": "red", "temperature": 40}),
    );
}

#[test]
fn where_runs_before_select_and_passes_only_true() {
    // WHERE cannot see SELECT's aliases: `c` is a payload field here, and missing.
    filtered("SELECT temperature AS c FROM 't' WHERE c > 0", json!({"temperature": 5}));
    for not_true in ["false", "1", "'true'", "missing", "NULL", "missing = 1"] {
        filtered(&format!("SELECT * FROM 't' WHERE {not_true}"), json!({"a": 1}));
    }
    give("SELECT a FROM 't' WHERE a = 1 OR a = 2", json!({"a": 2}), json!({"a": 2}));
    give("SELECT a FROM 't' WHERE NOT (a < 1)", json!({"a": 2}), json!({"a": 2}));
}

#[test]
fn keywords_and_function_names_match_in_any_case_but_keys_do_not() {
    give(
        "select Upper(color) as c from 't' where temperature > 1 And color = 'red' oR false",
        json!({"color": "red", "temperature": 5}),
        json!({"c": "RED"}),
    );
    give("SELECT Color FROM 't'", json!({"color": "red"}), json!({}));
}

// Data types and Undefined.

#[test]
fn undefined_is_dropped_and_null_is_kept() {
    give("SELECT foo, bar FROM 't'", json!({"foo": null}), json!({"foo": null}));
    give("SELECT NULL AS n FROM 'topic/subtopic'", json!({}), json!({"n": null}));
    give(
        "SELECT a.b.c AS deep, a.x.y AS nothing FROM 't'",
        json!({"a": {"b": {"c": 1}}}),
        json!({"deep": 1}),
    );
    give(
        "SELECT {'a': missing, 'b': 1} AS o, [1, missing, 2] AS l FROM 't'",
        json!({}),
        json!({"o": {"b": 1}, "l": [1, 2]}),
    );
    // "Undefined is converted to an empty string when serialized by itself."
    give("SELECT VALUE missing FROM 't'", json!({}), json!(""));
}

#[test]
fn whole_numbers_are_ints_in_2016_and_decimals_in_2015() {
    let p = json!({"t": 10.0, "u": 2.5});
    give(
        "SELECT t, u, t * 2 AS d, cast(t AS Decimal) AS c FROM 't'",
        p.clone(),
        json!({"t": 10, "u": 2.5, "d": 20, "c": 10}),
    );
    give("SELECT * FROM 't'", p.clone(), json!({"t": 10, "u": 2.5}));
    give_in(
        SqlVersion::V2015_10_08,
        "SELECT t, t * 2 AS d FROM 't'",
        p.clone(),
        json!({"t": 10.0, "d": 20.0}),
    );
    give_in(SqlVersion::V2015_10_08, "SELECT * FROM 't'", p, json!({"t": 10.0, "u": 2.5}));
}

#[test]
fn whole_decimals_divide_as_ints_in_2016() {
    // "With SQL V2 (2016-03-23), numeric values that are whole numbers, such as 10.0, are
    // processed as an Int value (10)", and Int / Int is an Int.
    values(
        SqlVersion::V2016_03_23,
        &[
            ("10 / 4.0", json!(2)),
            ("10 / cast(4 AS Decimal)", json!(2)),
            ("10 / 4.5", json!(2.2222222222222223)),
        ],
    );
    values(SqlVersion::V2015_10_08, &[("10 / 4.0", json!(2.5))]);
}

#[test]
fn decimals_keep_34_digits() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("0.1 + 0.2", json!(0.3)),
            ("1.5 / 4.5", json!(0.3333333333333333)),
            ("cast(2 / 3.5 AS String)", json!("0.5714285714285714285714285714285714")),
            ("cast(1.1 * 1.1 AS String)", json!("1.21")),
            ("cast(12345678901234567890123456789.5 + 1 AS String)", json!("12345678901234567890123456790.5")),
            ("7.5 / 2", json!(3.75)),
        ],
    );
}

// The operators page.

#[test]
fn logical_operators_take_booleans_and_boolean_strings() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("true AND 'TRUE'", json!(true)),
            ("true AND false", json!(false)),
            ("false OR 'true'", json!(true)),
            ("NOT 'false'", json!(true)),
            ("NOT true", json!(false)),
        ],
    );
    // "Other value" on either side: Undefined, even where SQL's three-valued logic would
    // decide (`true OR Undefined`).
    undefined(&["true AND 1", "false OR 'yes'", "NOT 1", "true OR missing", "false AND missing"]);
}

#[test]
fn ordering_operators_compare_as_decimals() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("5 > 4.99", json!(true)),
            ("'10' > 9", json!(true)),
            ("'1E3' >= 1000", json!(true)),
            ("-1 < 0", json!(true)),
            ("2 <= 2.0", json!(true)),
        ],
    );
    undefined(&["'abc' > 1", "'a' < 'b'", "true > false", "missing < 1", "NULL >= 0"]);
}

#[test]
fn equality_operators_follow_their_table() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("5 = 5", json!(true)),
            ("1 = 1.0", json!(true)),
            ("5 = '5'", json!(false)),
            ("5 <> '5'", json!(true)),
            ("'a' = 'a'", json!(true)),
            ("[1, 2] = [1, 2]", json!(true)),
            ("[1, 2] = [2, 1]", json!(false)),
            ("{'a': 1, 'b': 2} = {'b': 2, 'a': 1.0}", json!(true)),
            ("NULL = NULL", json!(true)),
            ("NULL <> NULL", json!(false)),
            ("true != false", json!(true)),
        ],
    );
    undefined(&["missing = 1", "1 <> missing", "missing = missing"]);
}

#[test]
fn arithmetic_operators_follow_their_tables() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("1 + 2", json!(3)),
            ("1 + 2.5", json!(3.5)),
            ("'a' + 1", json!("a1")),
            ("1 + 'a'", json!("1a")),
            ("'10' + 1", json!("101")),
            ("'x' + true", json!("xtrue")),
            ("'10' - 2", json!(8)),
            ("'2.5' * 2", json!(5)),
            ("7 / 2", json!(3)),
            ("-7 / 2", json!(-3)),
            ("7 % 3", json!(1)),
            ("-7 % 3", json!(-1)),
            ("5.5 % 2", json!(1.5)),
            ("-(2 - 5)", json!(3)),
            ("- '4'", json!(-4)),
            (
                "cast(99999999999999999999 * 99999999999999999999 AS String)",
                json!("9.9999999999999999998E+39"),
            ),
        ],
    );
    undefined(&["1 / 0", "1.5 % 0", "true + 1", "'x' - 2", "NULL + 1", "missing + 'a'", "[1] * 2", "-true"]);
}

// The SET clause page.

#[test]
fn set_clause_examples() {
    // The reference shows {"celsius": 23.89}, a rounded figure: by its operator tables Int
    // arithmetic stays Int, and (75 - 32) * 5 / 9 is 23.
    give(
        "SET @temp_celsius = (temp_fahrenheit - 32) * 5 / 9 SELECT @temp_celsius AS celsius, humidity FROM 'device/data'",
        json!({"temp_fahrenheit": 75, "humidity": 60}),
        json!({"celsius": 23, "humidity": 60}),
    );
    // In 2015-10-08 the decimal 9.0 stays a decimal, and so does the quotient.
    give_in(
        SqlVersion::V2015_10_08,
        "SET @temp_celsius = (temp_fahrenheit - 32) * 5 / 9.0 SELECT trunc(@temp_celsius, 2) AS celsius FROM 'device/data'",
        json!({"temp_fahrenheit": 75}),
        json!({"celsius": 23.88}),
    );
    give(
        "SET @device_sensor_data = device1.deviceData.sensors \
         SELECT @device_sensor_data.temp_fahrenheit AS temp_fahrenheit, @device_sensor_data.humidity as humidity \
         FROM 'device/data'",
        json!({"device1": {"deviceId": "weather_sensor", "deviceData": {
            "sensors": {"temp_fahrenheit": 75, "humidity": 60}, "location": [47.606, -122.332]}}}),
        json!({"temp_fahrenheit": 75, "humidity": 60}),
    );
}

#[test]
fn variables_serve_where_later_variables_and_nested_queries() {
    let sql = "SET @limit = 20, @hot = temp > @limit, @label = concat(topic(3), ':', temp) \
               SELECT @label AS label, (SELECT VALUE v FROM readings WHERE v > @limit) AS high \
               FROM 'things/+/+' WHERE @hot";
    give(
        sql,
        json!({"temp": 25, "readings": [{"v": 10}, {"v": 30}]}),
        json!({"label": "thingOne:25", "high": [30]}),
    );
    filtered(sql, json!({"temp": 15, "readings": []}));
    give("SET @n = missing SELECT isUndefined(@n) AS u, @n AS n FROM 't'", json!({}), json!({"u": true}));
}

// The CASE, literals and JSON extensions pages.

#[test]
fn case_examples() {
    let sql = "SELECT CASE color WHEN 'green' THEN 'go' WHEN 'yellow' THEN 'caution' WHEN 'red' THEN 'stop' \
               ELSE 'you are not at a stop light' END as instructions FROM 'a/b'";
    give(sql, json!({"color": "yellow"}), json!({"instructions": "caution"}));
    give(sql, json!({"color": "blue"}), json!({"instructions": "you are not at a stop light"}));
    // If v is Undefined, the result is Undefined (and the key is dropped).
    give(sql, json!({}), json!({}));
    give(
        "SELECT CASE n WHEN 1 THEN 'one' WHEN 1.0 THEN 'again' END AS w FROM 't'",
        json!({"n": 1}),
        json!({"w": "one"}),
    );
    give("SELECT CASE n WHEN 1 THEN 'one' END AS w FROM 't'", json!({"n": 2}), json!({}));
}

#[test]
fn literal_examples() {
    give(
        "SELECT {'latitude': get(lat_long, 0),'longitude':get(lat_long, 1)} as lat_long FROM 'topic/subtopic'",
        json!({"lat_long": [47.606, -122.332]}),
        json!({"lat_long": {"latitude": 47.606, "longitude": -122.332}}),
    );
    // The reference's output repeats 47.606, a slip for the payload's 47.696.
    give(
        "SELECT [lat,long] as lat_long FROM 'topic/subtopic'",
        json!({"lat": 47.696, "long": -122.332}),
        json!({"lat_long": [47.696, -122.332]}),
    );
}

#[test]
fn json_extension_examples() {
    give(
        "SELECT temp, md5(deviceid) AS hashed_id FROM 'topic/#'",
        json!({"deviceid": "iot123", "temp": 54.98, "humidity": 32.43,
               "coords": {"latitude": 47.615694, "longitude": -122.3359976}}),
        json!({"temp": 54.98, "hashed_id": "e37f81fb397e595c4aeb5645b8cbbbd1"}),
    );
    give("SELECT foo.bar AS bar.baz FROM 'a/b'", json!({"foo": {"bar": 7}}), json!({"bar": {"baz": 7}}));
    give("SELECT a AS x.y, b AS x.z, c AS x FROM 't'", json!({"a": 1, "b": 2, "c": 3}), json!({"x": 3}));
    give("SELECT a AS x.y, b AS x.z FROM 't'", json!({"a": 1, "b": 2}), json!({"x": {"y": 1, "z": 2}}));
}

#[test]
fn keys_that_are_not_identifiers() {
    let p = json!({"serial.no": "00001", "my-key": 1, "value": 2, "item1": {"0": {"my-key": "myValue"}},
                   "arr": [10, 20, 30], "state": {"end": "yes"}});
    give(
        "SELECT get(*, 'serial.no') AS serial_no, get(get(get(*, 'item1'), '0'), 'my-key') AS my_key FROM 'my/topic'",
        p.clone(),
        json!({"serial_no": "00001", "my_key": "myValue"}),
    );
    give(
        "SELECT `my-key`, `value` AS v, value, state.end FROM 't'",
        p.clone(),
        json!({"my-key": 1, "v": 2, "value": 2, "end": "yes"}),
    );
    give(
        "SELECT arr[1] AS second, arr[-1] AS none, arr[5] AS past FROM 't'",
        p.clone(),
        json!({"second": 20}),
    );
    give("SELECT VALUE arr[0] + arr[2] FROM 't'", p, json!(40));
}

#[test]
fn items_without_alias_take_a_name() {
    // The reference always names computed items; these names are stepgate's choice.
    give(
        "SELECT a.b, topic(1), cast(n AS String), n + 1 FROM 't'",
        json!({"a": {"b": 1}, "n": 5}),
        json!({"b": 1, "topic": "things", "cast": "5", "_4": 6}),
    );
}

// Nested object queries and the transform function.

#[test]
fn nested_object_query_examples() {
    let p = json!({"e": [
        {"n": "temperature", "u": "Cel", "t": 1234, "v": 22.5},
        {"n": "light", "u": "lm", "t": 1235, "v": 135},
        {"n": "acidity", "u": "pH", "t": 1235, "v": 7}
    ]});
    give(
        "SELECT (SELECT VALUE n FROM e) as sensors FROM 'my/topic'",
        p.clone(),
        json!({"sensors": ["temperature", "light", "acidity"]}),
    );
    give(
        "SELECT (SELECT v FROM e WHERE n = 'temperature') as temperature FROM 'my/topic'",
        p.clone(),
        json!({"temperature": [{"v": 22.5}]}),
    );
    give(
        "SELECT get((SELECT v FROM e WHERE n = 'temperature'), 0).v as temperature FROM 'topic'",
        p.clone(),
        json!({"temperature": 22.5}),
    );
    give(
        "SELECT VALUE (SELECT * FROM e WHERE t > 1234 AND v < 100) FROM 't'",
        p.clone(),
        json!([
            {"n": "acidity", "u": "pH", "t": 1235, "v": 7}
        ]),
    );
    give("SELECT (SELECT VALUE u FROM e WHERE missing = 1) AS none, (SELECT VALUE n FROM nothing) AS gone FROM 't'", p, json!({"none": []}));
    give(
        "SELECT (SELECT VALUE x * 2 FROM [{'x': 1}, {'x': 2}]) AS doubled FROM 't'",
        json!({}),
        json!({"doubled": [2, 4]}),
    );
}

#[test]
fn transform_examples() {
    let p = json!({"attributes": {"data1": 1, "data2": 2}, "values": [{"a": 3}, {"b": 4}, {"c": 5}]});
    give(
        "select value transform(\"enrichArray\", attributes, values) from 'A/B'",
        p.clone(),
        json!([{"a": 3, "data1": 1, "data2": 2}, {"b": 4, "data1": 1, "data2": 2}, {"c": 5, "data1": 1, "data2": 2}]),
    );
    give(
        "select value transform(\"enrichArray\", {\"key\": attributes.data1}, values) from 'A/B'",
        p.clone(),
        json!([{"a": 3, "key": 1}, {"b": 4, "key": 1}, {"c": 5, "key": 1}]),
    );
    give(
        "select value transform('enrichArray', (select a, b from data2), (select value c from data2)) from 'A/B'",
        json!({"data1": "example", "data2": {"a": "first attribute", "b": "second attribute", "c": [
            {"x": {"someInt": 5, "someString": "hello"}, "y": true},
            {"x": {"someInt": 10, "someString": "world"}, "y": false}]}}),
        json!([
            {"x": {"someInt": 5, "someString": "hello"}, "y": true, "a": "first attribute", "b": "second attribute"},
            {"x": {"someInt": 10, "someString": "world"}, "y": false, "a": "first attribute", "b": "second attribute"}
        ]),
    );
    give("select value transform('other', attributes, values) from 'A/B'", p, json!(""));
}

// SQL versions.

#[test]
fn version_2016_outputs_arrays_and_2015_does_not() {
    let p = json!({"a": {"b": "c"}, "arr": [1, 2, 3, 4]});
    give("SELECT VALUE arr FROM 'topic'", p.clone(), json!([1, 2, 3, 4]));
    let got = run("SELECT VALUE arr FROM 'topic'", SqlVersion::V2015_10_08, p.to_string().as_bytes());
    assert!(matches!(got, Err(EvalError { ref message }) if message.contains("2015-10-08")), "{got:?}");
    give_in(SqlVersion::V2015_10_08, "SELECT VALUE a FROM 'topic'", p, json!({"b": "c"}));
}

#[test]
fn version_2015_refuses_what_2016_added() {
    let v1 = SqlVersion::V2015_10_08;
    syntax_in(v1, "SELECT {'a': 1} AS o FROM 't'", 1, 8, "an object literal needs SQL version 2016-03-23");
    syntax_in(v1, "SELECT [1] AS o FROM 't'", 1, 8, "an array literal needs SQL version 2016-03-23");
    syntax_in(v1, "SELECT (SELECT VALUE n FROM e) AS s FROM 't'", 1, 8, "a nested SELECT needs");
    syntax_in(v1, "SELECT decode(x, 'base64') AS s FROM 't'", 1, 8, "decode needs SQL version 2016-03-23");
    syntax_in(v1, "SELECT cast(x AS Decimal) AS s FROM 't'", 1, 18, "cast to Decimal needs");
    give_in(
        v1,
        "SELECT cast(x AS Double) AS d, sql_version() AS v FROM 't'",
        json!({"x": 3}),
        json!({"d": 3.0, "v": "2015-10-08"}),
    );
}

// Binary payloads.

#[test]
fn binary_payload_examples() {
    let bytes: &[u8] = &[0xff, 0x00, 0x01, b'{'];
    let out = |sql: &str| run(sql, SqlVersion::V2016_03_23, bytes);
    assert_eq!(out("SELECT * FROM 'a/b'"), Ok(Outcome::Output(json!("/wABew=="))));
    assert_eq!(
        out("SELECT encode(*, 'base64') AS data, timestamp() AS ts FROM 'a/b'"),
        Ok(Outcome::Output(json!({"data": "/wABew==", "ts": TIMESTAMP})))
    );
    assert_eq!(out("SELECT * FROM 'a/b' WHERE device_type = 'thermostat'"), Ok(Outcome::Filtered));
    assert!(out("SELECT *, timestamp() AS timestamp FROM 'a/b'").is_err());
    // timestamp() % 12 is 3 for this message.
    assert_eq!(out("SELECT * FROM 'a/b' WHERE timestamp() % 12 = 3"), Ok(Outcome::Output(json!("/wABew=="))));
    assert_eq!(out("SELECT * FROM 'a/b' WHERE timestamp() % 12 = 0"), Ok(Outcome::Filtered));
    assert_eq!(out("SELECT VALUE * FROM 'a/b'"), Ok(Outcome::Output(json!("/wABew=="))));
    // encode(*) takes the bytes as published, JSON or not.
    assert_eq!(
        run("SELECT encode(*, 'base64') AS raw FROM 'a'", SqlVersion::V2016_03_23, br#"{"a": 1}"#),
        Ok(Outcome::Output(json!({"raw": "eyJhIjogMX0="})))
    );
}

// The functions page, one function after another.

#[test]
fn numeric_functions() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("abs(-5)", json!(5)),
            ("abs('-5.123')", json!(5.123)),
            // The reference prints pi/2 as 1.5707963267948966 and e as 2.718281828459045.
            ("acos(0)", json!(std::f64::consts::FRAC_PI_2)),
            ("asin(0)", json!(0)),
            ("atan(0)", json!(0)),
            ("atan2(1, 0)", json!(std::f64::consts::FRAC_PI_2)),
            ("ceil(1.2)", json!(2)),
            ("ceil(-1.2)", json!(-1)),
            ("ceil(1.5E40)", json!(1.5e40)),
            ("cast(cast(-1.5E40 AS Int) AS String)", json!("-1.5E+40")),
            ("cos(0)", json!(1)),
            ("cosh(2.3)", json!(5.037220649268761)),
            ("exp(1)", json!(std::f64::consts::E)),
            ("floor(1.2)", json!(1)),
            ("floor(-1.2)", json!(-2)),
            ("ln(exp(2))", json!(2)),
            ("log(100)", json!(2)),
            ("mod(8, 3)", json!(2)),
            ("remainder(8, 3)", json!(2)),
            ("mod('8.5', 3)", json!(2.5)),
            ("Nanvl(8, 3)", json!(8)),
            ("nanvl(missing, 3)", json!(3)),
            ("nanvl(NULL, 'x')", json!("x")),
            ("power(2, 5)", json!(32)),
            ("Round(1.2)", json!(1)),
            ("Round(1.5)", json!(2)),
            ("Round(1.7)", json!(2)),
            ("Round(-1.1)", json!(-1)),
            ("Round(-1.5)", json!(-2)),
            ("sign(-7)", json!(-1)),
            ("sign(0)", json!(0)),
            ("sign(13)", json!(1)),
            ("sin(0)", json!(0)),
            ("sinh(2.3)", json!(4.936961805545957)),
            ("sqrt(9)", json!(3)),
            ("tan(3)", json!(-0.1425465430742778)),
            ("tanh(2.3)", json!(0.9800963962661914)),
            ("trunc(2.3, 0)", json!(2)),
            ("trunc(2.3123, 2)", json!(2.31)),
            ("trunc(2.888, 2)", json!(2.88)),
            ("trunc(2.00, 5)", json!(2)),
            ("trunc(7, 2)", json!(7)),
        ],
    );
    // Doubles in 2015-10-08 keep their decimal point.
    values(
        SqlVersion::V2015_10_08,
        &[
            ("power(2, 5)", json!(32.0)),
            ("sqrt(9)", json!(3.0)),
            ("log(100)", json!(2.0)),
            ("asin(0)", json!(0.0)),
        ],
    );
    undefined(&[
        "abs(true)",
        "abs('x')",
        "sqrt(-1)",
        "ln(0)",
        "acos(2)",
        "floor([1,2,3])",
        "mod(1, 0)",
        "power('a', 2)",
    ]);
}

#[test]
fn bitwise_functions() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("bitand(13, 5)", json!(5)),
            ("bitor(8, 5)", json!(13)),
            ("bitxor(13, 5)", json!(8)),
            ("bitand('13', 5.9)", json!(5)),
            // The reference's example says 2; a bitwise NOT of the long 13 is -14.
            ("bitnot(13)", json!(-14)),
        ],
    );
    undefined(&["bitand(1, true)", "bitor('x', 1)", "bitnot(NULL)"]);
}

#[test]
fn cast_function() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("cast(true as Int)", json!(1)),
            ("cast(false AS Integer)", json!(0)),
            ("cast(1.9 AS Int)", json!(1)),
            ("cast(-1.9 AS Int)", json!(-1)),
            ("cast('-1.2' AS Int)", json!(-1)),
            ("cast('5E-12' AS Decimal)", json!(5e-12)),
            ("cast(true AS Decimal)", json!(1)),
            ("cast(0 AS Bool)", json!(false)),
            ("cast(0.5 AS Boolean)", json!(true)),
            ("cast('TRUE' AS Bool)", json!(true)),
            ("cast(12 AS String)", json!("12")),
            ("cast(1.5 AS varchar)", json!("1.5")),
            ("cast(true AS Text)", json!("true")),
            ("cast([1, 'a'] AS String)", json!("[1,\"a\"]")),
            ("cast({'k': [true, null]} AS String)", json!("{\"k\":[true,null]}")),
            ("cast(0.1 AS Double)", json!(0.1)),
        ],
    );
    undefined(&["cast(NULL AS String)", "cast('yes' AS Bool)", "cast([1] AS Int)", "cast('x' AS Decimal)"]);
}

#[test]
fn string_functions() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("chr(65)", json!("A")),
            ("chr(49)", json!("1")),
            ("concat(1)", json!("1")),
            ("concat([1, 2, 3], 4)", json!([1, 2, 3, 4])),
            ("concat([1, 2, 3], \"hello\")", json!([1, 2, 3, "hello"])),
            ("concat(\"con\", \"cat\")", json!("concat")),
            ("concat(1, \"hello\")", json!("1hello")),
            ("concat(\"he\",\"is\",\"man\")", json!("heisman")),
            ("concat([1, 2, 3], \"hello\", [4, 5, 6])", json!([1, 2, 3, "hello", 4, 5, 6])),
            ("endswith(\"cat\",\"at\")", json!(true)),
            ("startswith(\"ranger\",\"ran\")", json!(true)),
            ("startswith(123, 12)", json!(true)),
            ("indexof(\"abcd\", \"bc\")", json!(1)),
            ("indexof(\"héllo\", \"llo\")", json!(2)),
            ("indexof(\"abcd\", \"x\")", json!(-1)),
            ("length(\"hi\")", json!(2)),
            ("length(false)", json!(5)),
            ("lower(\"HELLO\")", json!("hello")),
            ("lower([\"HELLO\"])", json!("[\"hello\"]")),
            ("upper(\"hello\")", json!("HELLO")),
            ("upper([\"hello\"])", json!("[\"HELLO\"]")),
            ("lpad(\"hello\", 2)", json!("  hello")),
            ("lpad(1, 3)", json!("   1")),
            ("lpad('x', -4)", json!("x")),
            ("rpad(\"hello\", 2)", json!("hello  ")),
            ("rpad(1, 3)", json!("1   ")),
            ("Ltrim(\" h i \")", json!("h i ")),
            ("rtrim(\" h i \")", json!(" h i")),
            ("Trim(\" hi \")", json!("hi")),
            ("trim('\thi\n')", json!("hi")),
            ("numbytes(\"hi\")", json!(2)),
            ("numbytes(\"€\")", json!(3)),
            ("replace(\"abcd\", \"bc\", \"x\")", json!("axd")),
            ("replace(\"abcdabcd\", \"b\", \"x\")", json!("axcdaxcd")),
            ("substring(\"012345\", 0)", json!("012345")),
            ("substring(\"012345\", 2)", json!("2345")),
            ("substring(\"012345\", 2.745)", json!("2345")),
            ("substring(123, 2)", json!("3")),
            ("substring(\"012345\", -1)", json!("012345")),
            ("substring(true, 1.2)", json!("rue")),
            ("substring(false, -2.411E247)", json!("false")),
            ("substring(\"012345\", 1, 3)", json!("12")),
            ("substring(\"012345\", -50, 50)", json!("012345")),
            ("substring(\"012345\", 3, 1)", json!("")),
        ],
    );
    undefined(&[
        "concat()",
        "concat('a', NULL)",
        "chr(300)",
        "endswith(NULL, 'a')",
        "startswith('a', missing)",
        "lower(NULL)",
        "lpad('x', true)",
        "rtrim(missing)",
        "substring('abc', 'x')",
        "substring(NULL, 1)",
        "length(missing)",
    ]);
}

#[test]
fn regular_expression_functions() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("regexp_matches(\"aaaa\", \"a{2,}\")", json!(true)),
            ("regexp_matches(\"aaaa\", \"b\")", json!(false)),
            ("regexp_matches('id-42', '\\d+')", json!(true)),
            ("regexp_replace(\"abcd\", \"bc\", \"x\")", json!("axd")),
            ("regexp_replace(\"abcd\", \"b(.*)d\", \"$1\")", json!("ac")),
            ("regexp_replace('abcd', 'b(.)', '$1$1!')", json!("acc!d")),
            ("regexp_substr(\"hihihello\", \"hi\")", json!("hi")),
            ("regexp_substr(\"hihihello\", \"(hi)*\")", json!("hihi")),
            ("regexp_matches(42, concat('4', '2'))", json!(true)),
        ],
    );
    // Invalid expressions and replacements are Undefined, as is a search that finds nothing.
    undefined(&[
        "regexp_matches('a', '(')",
        "regexp_replace('a', 'a', '$2')",
        "regexp_substr('abc', 'x')",
        "regexp_matches(NULL, 'a')",
    ]);
}

#[test]
fn hashing_functions() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("md5(\"hello\")", json!("5d41402abc4b2a76b9719d911017c592")),
            ("sha1('hello')", json!("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")),
            ("sha224('hello')", json!("ea09ae9cc6768c50fcee903ed054556e5bfc8347907f12598aa24193")),
            ("sha256('hello')", json!("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")),
            ("sha384('')", json!("38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b")),
            ("md5(123)", json!("202cb962ac59075b964b07152d234b70")),
        ],
    );
    assert_eq!(
        eval_in(SqlVersion::V2016_03_23, "sha512('hello')", &json!({})).map(|v| v.to_string().len()),
        Some(130)
    );
    undefined(&["md5(NULL)"]);
}

#[test]
fn type_test_functions() {
    let p = json!({"n": 1, "d": 1.5, "s": "x", "b": true, "a": [], "o": {}, "z": null});
    let cases = [
        ("isNull(5)", false),
        ("isNull(Null)", true),
        ("isNull(z)", true),
        ("isNull(missing)", false),
        ("isUndefined(5)", false),
        ("isUndefined(floor([1,2,3]))", true),
        ("isUndefined(missing)", true),
        ("isNumber(n) AND isNumber(d) AND NOT isNumber(s)", true),
        ("isString(s) AND NOT isString(n)", true),
        ("isBoolean(b) AND NOT isBoolean('true')", true),
        ("isArray(a) AND NOT isArray(o)", true),
        ("isObject(o) AND NOT isObject(a)", true),
    ];
    for (expr, want) in cases {
        assert_eq!(eval_in(SqlVersion::V2016_03_23, expr, &p), Some(json!(want)), "{expr}");
    }
}

#[test]
fn get_function() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("get([\"a\", \"b\", \"c\"], 1)", json!("b")),
            ("get({\"a\":\"b\"}, \"a\")", json!("b")),
            // The reference's example gives "a", but its table says the 0-based index, as
            // for arrays: index 1 of "abc" is "b".
            ("get(\"abc\", 1)", json!("b")),
            ("get([1, 2], '1')", json!(2)),
            ("get([1, 2], 1.7)", json!(2)),
        ],
    );
    undefined(&["get([1, 2], 2)", "get([1, 2], -1)", "get({'a': 1}, 1)", "get(5, 0)", "get([1], 'x')"]);
}

#[test]
fn encode_and_decode_functions() {
    give(
        "SELECT decode(encoded_temp,\"base64\").temperature AS temp from 'topic/subtopic'",
        json!({"encoded_temp": "eyAidGVtcGVyYXR1cmUiOiAzMyB9Cg=="}),
        json!({"temp": 33}),
    );
    values(
        SqlVersion::V2016_03_23,
        &[
            ("decode('aGVsbG8=', 'base64')", json!("hello")),
            ("decode('aGVsbG8', 'BASE64')", json!("hello")),
            ("decode('!!', 'base64')", json!(null)),
            ("decode(encode([1, 2], 'base64'), 'base64')", json!([1, 2])),
            ("encode('hello', 'base64')", json!("aGVsbG8=")),
            ("encode(12, 'base64')", json!("MTI=")),
        ],
    );
    undefined(&["decode('aGVsbG8=', 'hex')", "encode('x', 'base32')", "encode(NULL, 'base64')"]);
}

#[test]
fn message_functions() {
    values(
        SqlVersion::V2016_03_23,
        &[
            ("topic()", json!("things/myThings/thingOne")),
            ("topic(1)", json!("things")),
            ("topic(3)", json!("thingOne")),
            ("clientid()", json!("sensor-7")),
            ("principal()", json!("ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373")),
            ("timestamp()", json!(TIMESTAMP)),
            ("newuuid()", json!(UUID)),
            ("sql_version()", json!("2016-03-23")),
        ],
    );
    undefined(&["topic(0)", "topic(4)", "topic('x')"]);
}

#[test]
fn rand_draws_its_bits_from_a_fresh_uuid() {
    let draw = |uuid: fn() -> String| {
        let e = parse_expression("rand()", SqlVersion::V2015_10_08).expect("rand() parses");
        let m = Message { new_uuid: &uuid, ..message(TOPIC, b"") };
        e.evaluate(&m).ok().flatten().and_then(|v| v.as_f64())
    };
    assert_eq!(draw(|| "00000000-0000-4000-8000-000000000000".into()), Some(0.0));
    assert_eq!(draw(|| "00000000-0000-4000-8008-000000000000".into()), Some(0.5));
    let high = draw(|| "ffffffff-ffff-4fff-bfff-ffffffffffff".into());
    assert!(high.is_some_and(|r| (0.999..1.0).contains(&r)), "{high:?}");
}

#[test]
fn time_functions() {
    give(
        "SELECT parse_time(\"yyyy.MM.dd G 'at' HH:mm:ss z\", 100000000, \"America/Belize\" ) as ts FROM 'A/B'",
        json!({}),
        json!({"ts": "1970.01.01 AD at 21:46:40 CST"}),
    );
    give(
        "SELECT parse_time(\"yyyy.MM.dd G 'at' HH:mm:ss z\", timestamp() ) as ts FROM 'A/B'",
        json!({}),
        json!({"ts": "2016.12.15 AD at 18:07:31 UTC"}),
    );
    values(
        SqlVersion::V2016_03_23,
        &[
            ("parse_time('yyyy', timestamp(), 'UTC')", json!("2016")),
            ("parse_time(concat('HH', ':mm'), 0, 'Asia/Kolkata')", json!("05:30")),
            ("time_to_epoch(\"2020-04-03 09:45:18 UTC+01:00\", \"yyyy-MM-dd HH:mm:ss VV\")", json!(1585903518000i64)),
            ("time_to_epoch(\"18 December 2015\", \"dd MMMM yyyy\")", json!(1450396800000i64)),
            (
                "time_to_epoch(\"2007-12-03 10:15:30.592 America/Los_Angeles\", \"yyyy-MM-dd HH:mm:ss.SSS z\")",
                json!(1196705730592i64),
            ),
            ("time_to_epoch(parse_time('yyyy-MM-dd HH:mm:ss.SSS', timestamp()), 'yyyy-MM-dd HH:mm:ss.SSS')", json!(TIMESTAMP)),
        ],
    );
    undefined(&[
        "parse_time('yyyy', 0, 'Nowhere/Special')",
        "parse_time('yyyy QQQ', 0)",
        "parse_time('yyyy', 'soon')",
        "time_to_epoch('3 Dec 2007', 'yyyy-MM-dd')",
    ]);
}

// Parse errors: where and what.

#[test]
fn syntax_errors_say_where_and_what_was_expected() {
    syntax("SELECT FROM 'a'", 8, "expected an expression, found 'FROM'");
    syntax("SELECT a FROM a/b", 15, "expected a quoted topic filter such as 'sensors/+/data', found 'a'");
    syntax("SELECT a, FROM 't'", 11, "expected an expression, found 'FROM'");
    syntax("SELECT a FROM 't' WHERE", 24, "expected an expression, found the end of the statement");
    syntax("SELECT a b FROM 't'", 10, "expected ',' or FROM, found 'b'");
    syntax(
        "SELECT a FROM 't' WHERE a = 1 b",
        31,
        "expected an operator or the end of the statement, found 'b'",
    );
    syntax("SELECT (a + 1 FROM 't'", 15, "expected ')', found 'FROM'");
    syntax("SELECT a AS FROM 't'", 13, "expected a name after AS, found 'FROM'");
    syntax("SELECT a.+ FROM 't'", 10, "expected a name after '.', found '+'");
    syntax("SELECT {'a' 1} AS o FROM 't'", 13, "expected ':', found number 1");
    syntax("SELECT 'abc FROM t", 8, "this string has no closing quote");
    syntax("SELECT a FROM 't' WHERE a # 1", 27, "unexpected character '#'");
    syntax("SELECT CASE a WHEN 1 THEN 2 FROM 't'", 29, "expected WHEN, ELSE or END, found 'FROM'");
    syntax("SELECT CASE a ELSE 2 END FROM 't'", 15, "expected WHEN, found 'ELSE'");
    syntax(
        "SELECT cast(a AS Float) FROM 't'",
        18,
        "expected a type (String, Int, Decimal, Double, Bool), found 'Float'",
    );
    syntax("SELECT VALUE a, b FROM 't'", 15, "SELECT VALUE takes a single expression");
    syntax("SELECT a FROM 't' WHERE a = 1;", 30, "unexpected character ';'");
    syntax(
        "SELECT a FROM",
        14,
        "expected a quoted topic filter such as 'sensors/+/data', found the end of the statement",
    );
    syntax_in(SqlVersion::V2016_03_23, "SELECT a,\n  b c\nFROM 't'", 2, 5, "expected ',' or FROM, found 'c'");
    let deep = format!("SELECT {}1{} FROM 't'", "(".repeat(100), ")".repeat(100));
    syntax(&deep, 72, "nests more than 64 levels deep");
}

#[test]
fn topic_filters_are_checked() {
    syntax("SELECT a FROM 'a/#/b'", 15, "'#' must be the whole last level");
    syntax("SELECT a FROM 'a/b+'", 15, "'+' must be a whole level");
    syntax("SELECT a FROM ''", 15, "the topic filter is empty");
    let rule = parse_rule("SELECT * FROM 'sensors/+/data/#'", SqlVersion::default()).expect("parses");
    assert_eq!(rule.topic_filter(), "sensors/+/data/#");
    assert!(topic_matches(rule.topic_filter(), "sensors/a1/data/x/y"));
    assert!(!topic_matches(rule.topic_filter(), "sensors/a1/status"));
}

#[test]
fn functions_are_checked_when_the_rule_is_parsed() {
    syntax(
        "SELECT aws_lambda(\"arn:aws:lambda:us-east-1:account_id:function:f\", {\"payload\":attribute1}) as output FROM 'topic-filter'",
        8,
        "aws_lambda calls an AWS service; stepgate does not offer it",
    );
    syntax(
        "SELECT * FROM 'some/topic' WHERE get_dynamodb(\"InServiceDevices\", \"deviceId\", id, \"arn:aws:iam::1:role/r\").location = 1",
        34,
        "get_dynamodb calls an AWS service",
    );
    syntax("SELECT Get_Thing_Shadow('t', 'arn') AS s FROM 't'", 8, "get_thing_shadow calls an AWS service");
    syntax("SELECT accountid() AS a FROM 't'", 8, "accountid names the AWS account");
    syntax("SELECT foo(1) AS x FROM 't'", 8, "unknown function 'foo'");
    syntax("SELECT substring('a') AS x FROM 't'", 8, "substring takes 2 to 3 arguments, not 1");
    syntax("SELECT upper('a', 'b') AS x FROM 't'", 8, "upper takes exactly 1 argument, not 2");
    syntax("SELECT timestamp(1) AS x FROM 't'", 8, "timestamp takes no arguments, not 1");
}

#[test]
fn variables_are_checked_when_the_rule_is_parsed() {
    syntax("SELECT @x AS x FROM 't'", 8, "@x is not set; set it first with SET @x = ...");
    syntax("SET @a = @b, @b = 1 SELECT @a FROM 't'", 10, "@b is not set");
    syntax("SET @a = 1, @a = 2 SELECT @a FROM 't'", 13, "@a is already set");
    syntax("SET a = 1 SELECT a FROM 't'", 5, "expected a variable such as @name, found 'a'");
    syntax("SET @a = 1 SET @b = 2 SELECT @a FROM 't'", 12, "expected SELECT, found 'SET'");
    syntax(&format!("SET @{} = 1 SELECT 1 AS x FROM 't'", "v".repeat(65)), 5, "at most 64 characters");
}

#[test]
fn syntax_errors_display_their_position() {
    let e = parse_rule("SELECT FROM 'a'", SqlVersion::default()).err().map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("line 1, column 8: expected an expression, found 'FROM'"));
}

// The public surface.

#[test]
fn expressions_compute_execution_names() {
    let e = parse_expression("concat(topic(2), '-', msgId)", SqlVersion::default()).expect("parses");
    let payload = br#"{"msgId": 42}"#;
    let got = e.evaluate(&message("sensors/dev-9/data", payload));
    assert_eq!(got, Ok(Some(json!("dev-9-42"))));
    assert_eq!(e.evaluate(&message("sensors/dev-9/data", b"{}")), Ok(None));
    // An expression that does not read the payload works on a binary one.
    let e = parse_expression("topic(2) + '-' + timestamp()", SqlVersion::default()).expect("parses");
    assert_eq!(e.evaluate(&message("sensors/dev-9/data", &[0xff])), Ok(Some(json!("dev-9-1481825251155"))));
    let bad = parse_expression("concat(a, b) c", SqlVersion::default()).err().map(|e| (e.column, e.message));
    assert_eq!(bad, Some((14, "expected an operator or the end of the expression, found 'c'".to_string())));
    let var = parse_expression("@x", SqlVersion::default()).err().map(|e| e.message);
    assert_eq!(var.as_deref(), Some("@x: variables exist only in a rule's SET clause"));
}

#[test]
fn sql_versions_parse_from_their_names() {
    assert_eq!("2015-10-08".parse(), Ok(SqlVersion::V2015_10_08));
    assert_eq!("2016-03-23".parse(), Ok(SqlVersion::V2016_03_23));
    assert_eq!(SqlVersion::default(), SqlVersion::V2016_03_23);
    let bad = "beta".parse::<SqlVersion>().err().map(|e| e.to_string());
    assert_eq!(bad.as_deref(), Some("unknown AWS IoT SQL version 'beta'; expected 2016-03-23 or 2015-10-08"));
}

#[test]
fn rules_are_shared_between_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    let rule = parse_rule(
        "SELECT regexp_substr(a, '\\d+') AS n, parse_time('yyyy', 0) AS y FROM 't'",
        SqlVersion::default(),
    )
    .expect("parses");
    shared(&rule);
    let expr = parse_expression("topic()", SqlVersion::default()).expect("parses");
    shared(&expr);
}

#[test]
fn a_payload_that_is_not_an_object() {
    give("SELECT * FROM 't'", json!([1, 2]), json!([1, 2]));
    give("SELECT VALUE * FROM 't'", json!("text"), json!("text"));
    give("SELECT a FROM 't'", json!([1, 2]), json!({}));
    assert!(run("SELECT *, 1 AS one FROM 't'", SqlVersion::V2016_03_23, b"[1]").is_err());
}
