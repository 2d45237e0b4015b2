//! TLS between the shared store and PostgreSQL, as libpq's `sslmode` asks for it: the
//! URL's `sslmode` (`disable`, `prefer` (the default), `require`, `verify-ca`, `verify-full`)
//! and `sslrootcert` (PEM; the system's bundle by default) are read here, and the rest of
//! the URL goes to tokio-postgres, which knows only disable, prefer and require. As with
//! libpq, `prefer` and `require` encrypt without checking the server's certificate,
//! `verify-ca` checks that a trusted CA signed it, and `verify-full` also that it names the
//! host. rustls with ring, as everywhere else in the daemon.

use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Where the system keeps its trusted CAs (Debian's ca-certificates).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A store URL with its TLS settings taken out.
#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    /// The URL for tokio-postgres (its sslmode one it knows).
    pub url: String,
    pub mode: SslMode,
    pub root_cert: Option<String>,
}

fn mode(value: &str) -> Result<SslMode, String> {
    Ok(match value {
        "disable" => SslMode::Disable,
        "allow" | "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(format!(
                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ))
        }
    })
}

fn wire(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        _ => "require",
    }
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query or a libpq
/// `key=value` string.
pub fn split(url: &str) -> Result<Tls, String> {
    let (mut mode_v, mut root_cert) = (SslMode::Prefer, None);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "sslmode" => mode_v = mode(&v)?,
                "sslrootcert" => root_cert = Some(v.into_owned()),
                _ => {
                    kept.append_pair(&k, &v);
                }
            }
        }
        kept.append_pair("sslmode", wire(mode_v));
        // tokio-postgres decodes %XX but reads '+' as itself: a space must stay %20.
        let query = kept.finish().replace('+', "%20");
        return Ok(Tls { url: format!("{base}?{query}"), mode: mode_v, root_cert });
    }
    let mut kept = Vec::new();
    for token in url.split_whitespace() {
        match token.split_once('=') {
            Some(("sslmode", v)) => mode_v = mode(v)?,
            Some(("sslrootcert", v)) => root_cert = Some(v.to_string()),
            _ => kept.push(token.to_string()),
        }
    }
    kept.push(format!("sslmode={}", wire(mode_v)));
    Ok(Tls { url: kept.join(" "), mode: mode_v, root_cert })
}

/// The connector for `tls`'s mode.
pub fn connector(tls: &Tls) -> Result<MakeRustlsConnect, String> {
    crate::connectors::http::install_tls_provider();
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .ok_or("no TLS crypto provider is installed")?;
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder();
    let config = match tls.mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(algorithms)))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let path = tls.root_cert.as_deref().unwrap_or(SYSTEM_CA_BUNDLE);
            let mut roots = RootCertStore::empty();
            let certs =
                CertificateDer::pem_file_iter(path).map_err(|e| format!("sslrootcert {path}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                roots.add(cert).map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("sslrootcert {path}: no certificate in it"));
            }
            let webpki = WebPkiServerVerifier::builder(Arc::new(roots)).build().map_err(|e| e.to_string())?;
            if tls.mode == SslMode::VerifyFull {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
                    .with_no_client_auth()
            }
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `prefer` and `require`: the connection is encrypted, the certificate taken as it is (the
/// handshake's signatures are still checked).
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name in it is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_urls_and_key_value_strings() {
        let t = split(
            "postgres://u:p@h:5432/db?sslmode=verify-full&sslrootcert=%2Fca.pem&options=-csearch_path%3Dx",
        )
        .unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(t.url, "postgres://u:p@h:5432/db?options=-csearch_path%3Dx&sslmode=require");
        let t = split("postgres://h/db").unwrap();
        assert_eq!((t.mode, t.url.as_str()), (SslMode::Prefer, "postgres://h/db?sslmode=prefer"));
        let t = split("host=h dbname=db sslmode=disable").unwrap();
        assert_eq!((t.mode, t.url.as_str()), (SslMode::Disable, "host=h dbname=db sslmode=disable"));
        let e = split("postgres://h/db?sslmode=maybe").unwrap_err();
        assert!(e.contains("sslmode=maybe"), "{e}");
    }
}
