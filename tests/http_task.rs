//! HTTP Tasks (`arn:aws:states:::http:invoke`) through the daemon against a real HTTP server
//! of the test's own (Python's http.server on a free loopback port): every method, query
//! parameters and headers, both body encodings and the array formats, each kind of connection
//! (API key, basic, OAuth client credentials with the token cached), a non-2xx answer caught
//! by its `States.Http.StatusCode.NNN`, a call cut short by TimeoutSeconds, a header AWS
//! refuses, and HTTPS with a test CA given as `SSL_CERT_FILE`.

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{start, wait_for_status, workflows, Daemon, PythonServer};

/// Answers every method with what it received (`/token`: an OAuth token endpoint counting its
/// tokens; `/status/N`: status N; `/slow`: after 5 s; `/text`: plain text).
const SERVER: &str = r#"
import http.server, json, ssl, sys, time, urllib.parse
port, certs = int(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else None)
tokens = {"n": 0}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def any(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/token":
            tokens["n"] += 1
            return self.reply(200, {"access_token": "tok-%d" % tokens["n"], "expires_in": 3600, "token_type": "bearer"})
        if u.path.startswith("/status/"):
            return self.reply(int(u.path.split("/")[2]), {"why": "refused"})
        if u.path == "/slow":
            time.sleep(5)
            return self.reply(200, {})
        if u.path == "/text":
            return self.reply(200, "plain words", "text/plain")
        self.reply(200, {"method": self.command, "path": u.path, "query": u.query, "body": body,
                         "headers": {k.lower(): v for k, v in self.headers.items()}, "tokens": tokens["n"]})
    def reply(self, code, v, kind="application/json"):
        data = (v if isinstance(v, str) else json.dumps(v)).encode()
        self.send_response(code)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.send_header("x-multi", "a")
        self.send_header("x-multi", "b")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = any
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
if certs:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs + "/server.pem", certs + "/server.key")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"#;

fn server(dir: &Path, certs: Option<&Path>) -> PythonServer {
    let certs = certs.map(|c| c.display().to_string());
    let args: Vec<&str> = certs.iter().map(String::as_str).collect();
    PythonServer::start(dir, "server", SERVER, &args)
}

fn http_task(params: Value, extra: Value) -> Value {
    let mut t = json!({"Type": "Task", "Resource": "arn:aws:states:::http:invoke", "Parameters": params});
    t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    t
}

fn branch(name: &str, state: Value) -> Value {
    let mut s = state;
    s.as_object_mut().unwrap().insert("End".into(), json!(true));
    json!({"StartAt": name, "States": {name: s}})
}

fn connection(name: &str) -> Value {
    json!({"ConnectionArn": format!("arn:aws:events:us-east-1:123456789012:connection/{name}/4b9e2c8a")})
}

#[test]
fn http_tasks_call_a_local_server_as_aws_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), None);
    let base = format!("http://127.0.0.1:{}", server.port);
    // State names are unique across branches: each catcher is "<state>Caught".
    let caught = |state: &str, errors: &[&str]| json!({"Catch": [{"ErrorEquals": errors, "Next": format!("{state}Caught")}]});
    let with_catch = |name: &str, state: Value| {
        let mut s = state;
        s.as_object_mut().unwrap().insert("End".into(), json!(true));
        json!({"StartAt": name, "States": {name: s, format!("{name}Caught"): {"Type": "Pass", "End": true}}})
    };
    let def = json!({
        "StartAt": "All",
        "States": {"All": {"Type": "Parallel", "End": true, "Branches": [
            branch("Post", http_task(json!({
                "ApiEndpoint": format!("{base}/orders?src=wf"), "Method": "POST",
                "Headers": {"X-Trace": "t-1", "Count": 3},
                "QueryParameters": {"tag": ["a b", "c"], "page": 2},
                "RequestBody": {"id": 7, "items": ["x"]}
            }), json!({}))),
            branch("Put", http_task(json!({
                "ApiEndpoint": format!("{base}/form"), "Method": "PUT",
                "Headers": {"content-type": "application/x-www-form-urlencoded"},
                "RequestBody": {"name": "Jo Bloggs", "tags": ["a", "b"], "meta": {"k": "v"}},
                "Transform": {"RequestBodyEncoding": "URL_ENCODED", "RequestEncodingOptions": {"ArrayFormat": "REPEAT"}}
            }), json!({}))),
            branch("Text", http_task(json!({"ApiEndpoint": format!("{base}/text"), "Method": "GET"}), json!({}))),
            branch("Key", http_task(json!({"ApiEndpoint": format!("{base}/k"), "Method": "DELETE", "Authentication": connection("key")}), json!({}))),
            branch("Basic", http_task(json!({"ApiEndpoint": format!("{base}/b"), "Method": "PATCH", "InvocationConfig": connection("basic")}), json!({}))),
            {"StartAt": "OAuth1", "States": {
                "OAuth1": http_task(json!({"ApiEndpoint": format!("{base}/o"), "Method": "GET", "Authentication": connection("oauth")}), json!({"ResultPath": "$.first", "Next": "OAuth2"})),
                "OAuth2": http_task(json!({"ApiEndpoint": format!("{base}/o"), "Method": "GET", "Authentication": connection("oauth")}), json!({"ResultPath": "$.second", "End": true}))
            }},
            with_catch("NotFound", http_task(json!({"ApiEndpoint": format!("{base}/status/404"), "Method": "GET"}), caught("NotFound", &["States.Http.StatusCode.404"]))),
            with_catch("Slow", http_task(json!({"ApiEndpoint": format!("{base}/slow"), "Method": "GET"}), {
                let mut c = caught("Slow", &["States.Timeout"]);
                c["TimeoutSeconds"] = json!(1);
                c
            }))
        ]}}
    });
    workflows(dir.path(), &[("calls", def)]);
    let config = format!(
        r#"[connections.key]
api_key = {{ header = "X-Api-Key", value = "k-123" }}
[connections.basic]
basic = {{ username = "user", password = "pass" }}
[connections.oauth]
oauth = {{ token_url = "{base}/token", client_id = "id", client_secret = "secret", scopes = ["read", "write"] }}
"#
    );
    let d = Daemon::start(dir.path(), &config, &[]);
    let began = Instant::now();
    let arn = start(&d, "calls", "c1", json!({}));
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(30));
    // The slow call was cut short at its TimeoutSeconds, not waited for.
    assert!(began.elapsed() < Duration::from_secs(4), "took {:?}", began.elapsed());
    let out: Vec<Value> = serde_json::from_str(e["output"].as_str().unwrap()).unwrap();

    let post = &out[0];
    assert_eq!(post["StatusCode"], 200);
    assert_eq!(post["StatusText"], "OK");
    assert_eq!(post["Headers"]["x-multi"], json!(["a", "b"]));
    assert_eq!(post["Headers"]["content-type"], json!(["application/json"]));
    let echo = &post["ResponseBody"];
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/orders");
    assert_eq!(echo["query"], "src=wf&tag%5B0%5D=a+b&tag%5B1%5D=c&page=2");
    assert_eq!(
        serde_json::from_str::<Value>(echo["body"].as_str().unwrap()).unwrap(),
        json!({"id": 7, "items": ["x"]})
    );
    assert_eq!(echo["headers"]["content-type"], "application/json; charset=UTF-8");
    assert_eq!(echo["headers"]["x-trace"], "t-1");
    assert_eq!(echo["headers"]["count"], "3");
    assert_eq!(echo["headers"]["user-agent"], "Amazon|StepFunctions|HttpInvoke|us-east-1");

    let put = &out[1]["ResponseBody"];
    assert_eq!(put["method"], "PUT");
    assert_eq!(put["body"], "name=Jo%20Bloggs&tags=a&tags=b&meta%5Bk%5D=v");
    assert_eq!(put["headers"]["content-type"], "application/x-www-form-urlencoded");

    assert_eq!(out[2]["ResponseBody"], "plain words");
    assert_eq!(out[3]["ResponseBody"]["method"], "DELETE");
    assert_eq!(out[3]["ResponseBody"]["headers"]["x-api-key"], "k-123");
    assert_eq!(out[4]["ResponseBody"]["method"], "PATCH");
    assert_eq!(out[4]["ResponseBody"]["headers"]["authorization"], "Basic dXNlcjpwYXNz");
    // One token for both calls: fetched once, then cached.
    assert_eq!(out[5]["first"]["ResponseBody"]["headers"]["authorization"], "Bearer tok-1");
    assert_eq!(out[5]["second"]["ResponseBody"]["headers"]["authorization"], "Bearer tok-1");
    assert_eq!(out[5]["second"]["ResponseBody"]["tokens"], 1);
    assert_eq!(out[6], json!({"Error": "States.Http.StatusCode.404", "Cause": "Not Found"}));
    assert_eq!(out[7]["Error"], "States.Timeout");
    // The calls in /metrics: by outcome, and a histogram of how long they took.
    let calls = |outcome: &str| {
        d.metric(&format!("stepgate_task_calls_total{{connector=\"http\",outcome=\"{outcome}\"}}"))
    };
    assert_eq!((calls("ok"), calls("error"), calls("cancelled")), (7.0, 1.0, 1.0));
    assert_eq!(d.metric("stepgate_task_call_duration_seconds_count{connector=\"http\"}"), 9.0);
    let (_, h) = d.call("GetExecutionHistory", json!({"executionArn": arn, "maxResults": 1000}));
    let scheduled = h["events"].as_array().unwrap().iter().find(|e| e["type"] == "TaskScheduled").unwrap();
    assert_eq!(scheduled["taskScheduledEventDetails"]["resourceType"], "http");
    assert_eq!(scheduled["taskScheduledEventDetails"]["resource"], "invoke");
}

#[test]
fn a_header_aws_refuses_fails_the_task_with_states_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), None);
    let def = json!({"StartAt": "Call", "States": {"Call": http_task(
        json!({"ApiEndpoint": format!("http://127.0.0.1:{}/x", server.port), "Method": "GET", "Headers": {"Authorization": "mine"}}),
        json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": true})),
        "Caught": {"Type": "Pass", "End": true}}});
    workflows(dir.path(), &[("refused", def)]);
    let d = Daemon::start(dir.path(), "", &[]);
    let arn = start(&d, "refused", "r1", json!({}));
    // States.Runtime is not caught by States.ALL.
    let e = wait_for_status(&d, &arn, "FAILED", Duration::from_secs(20));
    assert_eq!(e["error"], "States.Runtime");
    assert!(
        e["cause"].as_str().unwrap().contains("The header Authorization cannot be set on an HTTP Task"),
        "{e}"
    );
}

/// A CA, and a certificate it signed for 127.0.0.1, made with openssl.
fn test_ca(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect(
            "openssl is not installed; the HTTPS test makes its CA with it: apt-get install -y openssl",
        );
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=stepgate test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[test]
fn https_endpoints_are_checked_against_the_system_roots_and_ssl_cert_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    test_ca(&certs);
    let server = server(dir.path(), Some(&certs));
    let def = json!({"StartAt": "Call", "States": {"Call": http_task(
        json!({"ApiEndpoint": format!("https://127.0.0.1:{}/secure", server.port), "Method": "GET"}),
        json!({"Catch": [{"ErrorEquals": ["States.Http.Socket"], "Next": "Refused"}], "End": true})),
        "Refused": {"Type": "Pass", "End": true}}});
    workflows(dir.path(), &[("secure", def)]);
    // With the test CA among the roots, the call goes through.
    let ca = certs.join("ca.pem");
    let d = Daemon::start(dir.path(), "", &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    let arn = start(&d, "secure", "trusted", json!({}));
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(20));
    let out: Value = serde_json::from_str(e["output"].as_str().unwrap()).unwrap();
    assert_eq!(out["ResponseBody"]["path"], "/secure");
    drop(d);
    // Without it, the server's certificate is not trusted: the call fails, as a socket error.
    let d = Daemon::start(dir.path(), "", &[]);
    let arn = start(&d, "secure", "untrusted", json!({}));
    let e = wait_for_status(&d, &arn, "SUCCEEDED", Duration::from_secs(20));
    let out: Value = serde_json::from_str(e["output"].as_str().unwrap()).unwrap();
    assert_eq!(out["Error"], "States.Http.Socket", "{out}");
}
