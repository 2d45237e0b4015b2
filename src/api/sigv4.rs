//! AWS Signature Version 4 checks for the API: `dispatch` hands every `POST /` here before it
//! parses anything, its headers before the body is read, then the whole request. With access
//! keys in the config (`server.access_keys`) a request must be signed by one of them, as the
//! aws CLI and every SDK sign it, `X-Amz-Target` included; without keys the verifier lets
//! everything through (the daemon then only listens on loopback).
//!
//! The server rebuilds the canonical request and the string to sign exactly as AWS documents
//! them and compares signatures in constant time. The credential scope must name the service
//! `states`; any region is accepted, because the region only picks an endpoint on AWS and
//! stepgate is the one endpoint: a client whose default region differs from `region` in the
//! config still works. As on AWS, a request dated more than 15 minutes away from the server's
//! clock is refused, which bounds how long a captured request can be replayed.

use axum::http::{self, HeaderMap};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "states";
const TERMINATOR: &str = "aws4_request";
const AMZ_DATE: &str = "%Y%m%dT%H%M%SZ";
/// AWS's tolerance for clocks that disagree.
const MAX_SKEW_MINUTES: i64 = 15;

/// Why a request was refused, named as AWS names it; the API answers 403 with
/// `{"__type": kind, "message": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub kind: &'static str,
    pub message: String,
}

impl AuthError {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        AuthError { kind, message: message.into() }
    }

    fn missing() -> Self {
        AuthError::new("MissingAuthenticationTokenException", "Missing Authentication Token")
    }

    fn incomplete(message: impl Into<String>) -> Self {
        AuthError::new("IncompleteSignatureException", message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        AuthError::new("InvalidSignatureException", message)
    }

    fn mismatch() -> Self {
        AuthError::invalid(
            "The request signature we calculated does not match the signature you provided. Check your \
             AWS Secret Access Key and signing method. Consult the service documentation for details.",
        )
    }

    fn unrecognized() -> Self {
        AuthError::new(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    }
}

/// The parts of an HTTP request that a SigV4 signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as it came on the wire (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`; empty when there is none.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Checks signatures against the configured access keys.
pub struct Verifier {
    /// Secret access key by access key id.
    keys: HashMap<String, String>,
    service: &'static str,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("Verifier").field("access_key_ids", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl Verifier {
    /// A verifier for `(access_key_id, secret_access_key)` pairs; none: every request passes.
    pub fn new<I, K, S>(keys: I) -> Verifier
    where
        I: IntoIterator<Item = (K, S)>,
        K: Into<String>,
        S: Into<String>,
    {
        Verifier { keys: keys.into_iter().map(|(k, s)| (k.into(), s.into())).collect(), service: SERVICE }
    }

    /// Whether requests are let through unsigned (no access keys configured).
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// `Ok` when the headers of a request could carry a valid signature: a configured key,
    /// the scope, the signed headers and the date all hold. Judged before the body is read,
    /// so a caller without a key cannot make the daemon take in a large body.
    pub fn check_headers(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Result<(), AuthError> {
        self.signer(headers, now).map(|_| ())
    }

    /// The key, authorization and date of a request whose headers hold (`None`: no keys
    /// are configured and every request passes).
    fn signer<'a>(
        &'a self,
        headers: &'a HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<Option<(Authorization<'a>, String, &'a str)>, AuthError> {
        if self.is_open() {
            return Ok(None);
        }
        let header = headers.get(http::header::AUTHORIZATION).ok_or_else(AuthError::missing)?;
        let header =
            header.to_str().map_err(|_| AuthError::incomplete("The Authorization header is not ASCII."))?;
        let auth = Authorization::parse(header)?;
        auth.check_scope(self.service)?;
        let signed = |name: &str| auth.signed_headers.split(';').any(|h| h == name);
        if !signed("host") {
            return Err(AuthError::incomplete(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        // The operation is in a header, not the path: unsigned, a captured request could be
        // replayed as another operation. The aws CLI and every SDK sign it.
        if headers.contains_key("x-amz-target") && !signed("x-amz-target") {
            return Err(AuthError::incomplete(
                "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        let amz_date = header_value(headers, "x-amz-date").ok_or_else(|| {
            AuthError::incomplete(format!(
                "Authorization header requires existence of a 'X-Amz-Date' header. Authorization={header}"
            ))
        })?;
        let signed_at = NaiveDateTime::parse_from_str(&amz_date, AMZ_DATE)
            .map_err(|_| {
                AuthError::incomplete(format!(
                    "X-Amz-Date must be an ISO-8601 basic date-time like 20150830T123600Z, not '{amz_date}'."
                ))
            })?
            .and_utc();
        let day = amz_date.get(..8).unwrap_or_default();
        if auth.date != day {
            return Err(AuthError::invalid(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
                 '{}' != '{day}', from '{amz_date}'.",
                auth.date
            )));
        }
        check_skew(signed_at, now)?;
        let secret = self.keys.get(auth.access_key_id).ok_or_else(AuthError::unrecognized)?;
        Ok(Some((auth, amz_date, secret)))
    }

    /// `Ok` when `req` carries a valid signature from a configured key (or no keys are
    /// configured), judged at the server time `now`.
    pub fn verify(&self, req: &SignedRequest<'_>, now: DateTime<Utc>) -> Result<(), AuthError> {
        let Some((auth, amz_date, secret)) = self.signer(req.headers, now)? else {
            return Ok(());
        };
        let payload_hash = hex(&Sha256::digest(req.body));
        if let Some(claimed) = header_value(req.headers, "x-amz-content-sha256") {
            // Only S3 may leave a payload unsigned; here the body is always covered.
            if claimed != payload_hash {
                return Err(AuthError::invalid(
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                ));
            }
        }
        let canonical = canonical_request(req, auth.signed_headers, &payload_hash);
        let scope = format!("{}/{}/{}/{}", auth.date, auth.region, auth.service, auth.terminator);
        let expected = signature(secret, &scope, &amz_date, &canonical);
        if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
            Ok(())
        } else {
            // What the client should have signed helps the operator find the disagreement;
            // it holds no secret.
            tracing::debug!(
                access_key_id = auth.access_key_id,
                canonical_request = %canonical,
                "A signature does not match."
            );
            Err(AuthError::mismatch())
        }
    }
}

/// `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=hex`
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(header: &'a str) -> Result<Self, AuthError> {
        let header = header.trim();
        let (algorithm, params) = header.split_once(' ').unwrap_or((header, ""));
        if algorithm != ALGORITHM {
            return Err(AuthError::incomplete(format!(
                "Unsupported AWS 'algorithm': '{algorithm}'; only {ALGORITHM} is accepted."
            )));
        }
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for param in params.split(',') {
            match param.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => {}
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) =
            (credential, signed_headers, signature)
        else {
            let mut message = String::new();
            for (name, v) in
                [("Credential", credential), ("Signature", signature), ("SignedHeaders", signed_headers)]
            {
                if v.is_none() {
                    let _ = write!(message, "Authorization header requires '{name}' parameter. ");
                }
            }
            return Err(AuthError::incomplete(format!("{message}Authorization={header}")));
        };
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = parts[..] else {
            return Err(AuthError::incomplete(format!(
                "Credential must have exactly 5 slash-delimited elements, \
                 e.g. keyid/date/region/service/term, got '{credential}'"
            )));
        };
        Ok(Authorization { access_key_id, date, region, service, terminator, signed_headers, signature })
    }

    fn check_scope(&self, service: &str) -> Result<(), AuthError> {
        if self.service != service {
            return Err(AuthError::invalid(format!(
                "Credential should be scoped to correct service: '{service}'."
            )));
        }
        if self.terminator != TERMINATOR {
            return Err(AuthError::invalid(format!(
                "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'.",
                self.terminator
            )));
        }
        Ok(())
    }
}

fn check_skew(signed_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), AuthError> {
    let skew = Duration::minutes(MAX_SKEW_MINUTES);
    let fmt = |t: DateTime<Utc>| t.format(AMZ_DATE).to_string();
    if signed_at < now - skew {
        return Err(AuthError::invalid(format!(
            "Signature expired: {} is now earlier than {} ({} - {MAX_SKEW_MINUTES} min.)",
            fmt(signed_at),
            fmt(now - skew),
            fmt(now)
        )));
    }
    if signed_at > now + skew {
        return Err(AuthError::invalid(format!(
            "Signature not yet current: {} is still later than {} ({} + {MAX_SKEW_MINUTES} min.)",
            fmt(signed_at),
            fmt(now + skew),
            fmt(now)
        )));
    }
    Ok(())
}

/// All values of a header joined by commas, each trimmed with inner runs of spaces collapsed,
/// as the canonical headers list them.
fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let joined: Vec<String> = values
        .map(|v| String::from_utf8_lossy(v.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    Some(joined.join(","))
}

/// The canonical request: method, URI, query, the signed headers, their names, payload hash.
fn canonical_request(req: &SignedRequest<'_>, signed_headers: &str, payload_hash: &str) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    out.push_str(&canonical_query(req.query));
    out.push('\n');
    for name in signed_headers.split(';') {
        // A signed header that did not arrive signs as empty, and so fails to match.
        let value = header_value(req.headers, name).unwrap_or_default();
        let _ = writeln!(out, "{name}:{value}");
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The normalized path (no empty, `.` or `..` segments), each segment encoded once more:
/// services other than S3 sign the already encoded path encoded again.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(&segments.iter().map(|s| uri_encode(s.as_bytes())).collect::<Vec<_>>().join("/"));
    if !segments.is_empty() && path.ends_with('/') {
        out.push('/');
    }
    out
}

/// Parameters decoded, strictly re-encoded and sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&percent_decode(k)), uri_encode(&percent_decode(v)))
        })
        .collect();
    params.sort();
    params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, all else is `%XX`.
fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex_at = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex_at(i + 1), hex_at(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The hex signature of `canonical` under `secret` for the credential `scope`
/// (`DATE/REGION/SERVICE/aws4_request`) at `amz_date`.
fn signature(secret: &str, scope: &str, amz_date: &str, canonical: &str) -> String {
    let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical)));
    // kSecret -> kDate -> kRegion -> kService -> kSigning, one scope element at a time.
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope.split('/') {
        key = hmac_sha256(&key, part.as_bytes()).to_vec();
    }
    hex(&hmac_sha256(&key, string_to_sign.as_bytes()))
}

/// HMAC-SHA256 (RFC 2104) over sha2, which the crate already has.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    let mut mac = [0u8; 32];
    mac.copy_from_slice(&outer.finalize());
    mac
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Equal or not, in a time that depends on the length only: a byte-by-byte early exit would
/// let a client find a valid signature one byte at a time.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use chrono::TimeZone;

    // The credentials and time of the AWS SigV4 test suite (AWS General Reference).
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn suite_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// The test suite signs for the service `service`; stepgate verifies `states`.
    fn suite_verifier() -> Verifier {
        Verifier { service: "service", ..Verifier::new([(AKID, SECRET)]) }
    }

    fn suite_request(method: &str, query: &str, signature: &str) -> (HeaderMap, String, String) {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature={signature}"
        );
        let h = headers(&[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
            ("authorization", &auth),
        ]);
        (h, method.to_string(), query.to_string())
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first.
        assert_eq!(
            hex(&hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn get_vanilla_canonical_request_and_signature() {
        let h = headers(&[("host", "example.amazonaws.com"), ("x-amz-date", "20150830T123600Z")]);
        let req = SignedRequest { method: "GET", path: "/", query: "", headers: &h, body: b"" };
        let canonical = canonical_request(&req, "host;x-amz-date", EMPTY_SHA256);
        assert_eq!(
            canonical,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                 host;x-amz-date\n{EMPTY_SHA256}"
            )
        );
        assert_eq!(
            hex(&Sha256::digest(&canonical)),
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            signature(SECRET, "20150830/us-east-1/service/aws4_request", "20150830T123600Z", &canonical),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn the_test_suite_requests_verify() {
        let v = suite_verifier();
        for (method, query, sig) in [
            ("GET", "", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            // get-vanilla-query-order-key-case: parameters are sorted before signing.
            (
                "GET",
                "Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            ("POST", "", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        ] {
            let (h, method, query) = suite_request(method, query, sig);
            let req = SignedRequest { method: &method, path: "/", query: &query, headers: &h, body: b"" };
            assert_eq!(v.verify(&req, suite_time()), Ok(()), "{method} ?{query}");
        }
    }

    /// A Step Functions request as botocore 1.43 signs it (SigV4Auth with the clock pinned to
    /// 2024-03-01T12:00:00Z, region eu-west-1, service states).
    fn botocore_request() -> HeaderMap {
        headers(&[
            ("host", "127.0.0.1:8083"),
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "AWSStepFunctions.ListStateMachines"),
            ("user-agent", "aws-cli/1"),
            ("x-amz-date", "20240301T120000Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDSTEPGATE/20240301/eu-west-1/states/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
                 Signature=8473e80bab7ba51a9eb8fd41b7f0f4958575097327120eae81e5646d3caa2bbe",
            ),
        ])
    }
    const BOTOCORE_BODY: &[u8] = br#"{"maxResults": 10}"#;

    fn botocore_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()
    }

    fn post<'a>(h: &'a HeaderMap, body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest { method: "POST", path: "/", query: "", headers: h, body }
    }

    #[test]
    fn a_botocore_signed_request_verifies_in_any_region() {
        let v = Verifier::new([("other", "x"), ("AKIDSTEPGATE", "s3cr3t/+key")]);
        let h = botocore_request();
        assert_eq!(v.verify(&post(&h, BOTOCORE_BODY), botocore_time()), Ok(()));
        // The body is signed.
        let err = v.verify(&post(&h, br#"{"maxResults": 11}"#), botocore_time()).unwrap_err();
        assert_eq!(err, AuthError::mismatch());
    }

    #[test]
    fn refusals_are_named_as_aws_names_them() {
        let h = botocore_request();
        let at = botocore_time();
        let wrong_secret = Verifier::new([("AKIDSTEPGATE", "not-the-secret")]);
        let e = wrong_secret.verify(&post(&h, BOTOCORE_BODY), at).unwrap_err();
        assert_eq!(e.kind, "InvalidSignatureException");
        assert!(e.message.starts_with("The request signature we calculated does not match"), "{}", e.message);

        let unknown = Verifier::new([("SOMEONE_ELSE", "s3cr3t/+key")]);
        let e = unknown.verify(&post(&h, BOTOCORE_BODY), at).unwrap_err();
        assert_eq!(e, AuthError::unrecognized());
        assert_eq!(e.message, "The security token included in the request is invalid.");

        let v = Verifier::new([("AKIDSTEPGATE", "s3cr3t/+key")]);
        let mut unsigned = h.clone();
        unsigned.remove("authorization");
        let e = v.verify(&post(&unsigned, BOTOCORE_BODY), at).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            ("MissingAuthenticationTokenException", "Missing Authentication Token")
        );

        // No keys configured: nothing is checked.
        assert!(Verifier::new(Vec::<(String, String)>::new()).verify(&post(&unsigned, b""), at).is_ok());
    }

    #[test]
    fn the_operation_header_must_be_signed_and_headers_are_judged_before_the_body() {
        let v = Verifier::new([("AKIDSTEPGATE", "s3cr3t/+key")]);
        let at = botocore_time();
        assert_eq!(v.check_headers(&botocore_request(), at), Ok(()));
        // The same signature over fewer headers: X-Amz-Target could then be swapped.
        let mut h = botocore_request();
        let auth = h["authorization"].to_str().unwrap().replace("x-amz-date;x-amz-target", "x-amz-date");
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let e = v.check_headers(&h, at).unwrap_err();
        assert_eq!(e.kind, "IncompleteSignatureException");
        assert!(e.message.contains("'X-Amz-Target' must be a 'SignedHeader'"), "{}", e.message);
        assert_eq!(v.verify(&post(&h, BOTOCORE_BODY), at).unwrap_err(), e);
        // Unknown key, expired date, no signature: known before any body is read.
        assert_eq!(
            Verifier::new([("x", "y")]).check_headers(&botocore_request(), at),
            Err(AuthError::unrecognized())
        );
        assert!(v.check_headers(&botocore_request(), at + Duration::minutes(30)).is_err());
        assert_eq!(v.check_headers(&HeaderMap::new(), at), Err(AuthError::missing()));
    }

    #[test]
    fn clocks_more_than_15_minutes_apart_are_refused() {
        let v = Verifier::new([("AKIDSTEPGATE", "s3cr3t/+key")]);
        let h = botocore_request();
        for ok in [-15, 15] {
            assert!(v.verify(&post(&h, BOTOCORE_BODY), botocore_time() + Duration::minutes(ok)).is_ok());
        }
        let late = v.verify(&post(&h, BOTOCORE_BODY), botocore_time() + Duration::minutes(30)).unwrap_err();
        assert_eq!(late.kind, "InvalidSignatureException");
        assert_eq!(
            late.message,
            "Signature expired: 20240301T120000Z is now earlier than 20240301T121500Z \
             (20240301T123000Z - 15 min.)"
        );
        let early = v.verify(&post(&h, BOTOCORE_BODY), botocore_time() - Duration::minutes(16)).unwrap_err();
        assert_eq!(early.kind, "InvalidSignatureException");
        assert!(
            early.message.starts_with("Signature not yet current: 20240301T120000Z"),
            "{}",
            early.message
        );
    }

    #[test]
    fn the_scope_must_name_states_and_match_the_date() {
        let v = Verifier::new([(AKID, SECRET)]);
        let (h, _, _) =
            suite_request("GET", "", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
        let req = SignedRequest { method: "GET", path: "/", query: "", headers: &h, body: b"" };
        let e = v.verify(&req, suite_time()).unwrap_err();
        assert_eq!(e.kind, "InvalidSignatureException");
        assert!(e.message.contains("'states'"), "{}", e.message);

        let mut h = botocore_request();
        h.insert("x-amz-date", HeaderValue::from_static("20240302T000500Z"));
        let e = Verifier::new([("AKIDSTEPGATE", "s3cr3t/+key")])
            .verify(&post(&h, BOTOCORE_BODY), botocore_time())
            .unwrap_err();
        assert!(e.message.starts_with("Date in Credential scope does not match"), "{}", e.message);
    }

    #[test]
    fn malformed_authorization_headers_are_incomplete_signatures() {
        let v = Verifier::new([("AKIDSTEPGATE", "s3cr3t/+key")]);
        for (auth, needle) in [
            ("AWS AKIDSTEPGATE:abc", "Unsupported AWS 'algorithm'"),
            (
                "AWS4-HMAC-SHA256 Credential=AKIDSTEPGATE/20240301/eu-west-1/states/aws4_request",
                "'Signature'",
            ),
            ("AWS4-HMAC-SHA256 Credential=AKIDSTEPGATE/states, SignedHeaders=host, Signature=00", "5 slash"),
            (
                "AWS4-HMAC-SHA256 Credential=AKIDSTEPGATE/20240301/eu-west-1/states/aws4_request, \
                 SignedHeaders=x-amz-date, Signature=00",
                "'Host'",
            ),
        ] {
            let mut h = botocore_request();
            h.insert("authorization", HeaderValue::from_str(auth).unwrap());
            let e = v.verify(&post(&h, BOTOCORE_BODY), botocore_time()).unwrap_err();
            assert_eq!(e.kind, "IncompleteSignatureException", "{auth}");
            assert!(e.message.contains(needle), "{auth}: {}", e.message);
        }
        let mut h = botocore_request();
        h.remove("x-amz-date");
        let e = v.verify(&post(&h, BOTOCORE_BODY), botocore_time()).unwrap_err();
        assert!(e.message.contains("'X-Amz-Date'"), "{}", e.message);
    }

    #[test]
    fn a_content_hash_header_must_match_the_body() {
        let v = Verifier::new([("AKIDSTEPGATE", "s3cr3t/+key")]);
        let mut h = botocore_request();
        h.insert("x-amz-content-sha256", HeaderValue::from_static("UNSIGNED-PAYLOAD"));
        let e = v.verify(&post(&h, BOTOCORE_BODY), botocore_time()).unwrap_err();
        assert!(e.message.contains("x-amz-content-sha256"), "{}", e.message);
        // The right hash, unsigned: accepted (the signed headers do not list it).
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_str(&hex(&Sha256::digest(BOTOCORE_BODY))).unwrap(),
        );
        assert!(v.verify(&post(&h, BOTOCORE_BODY), botocore_time()).is_ok());
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("//a/./b/../c/"), "/a/c/");
        // The wire path is encoded once; non-S3 services sign it encoded twice.
        assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
        assert_eq!(canonical_query("b=2&a=1&A=0&c"), "A=0&a=1&b=2&c=");
        assert_eq!(canonical_query("k=a%20b+c&x=%2F"), "k=a%20b%2Bc&x=%2F");
        let h = headers(&[("x-multi", "  a   b "), ("x-multi", "c")]);
        assert_eq!(header_value(&h, "x-multi").as_deref(), Some("a b,c"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
