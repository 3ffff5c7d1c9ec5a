//! rustls (ring) client configuration with full verification, plus a
//! verifier wrapper that records the server's leaf certificate so its expiry
//! can be reported even when verification fails.

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::FailureKind;

pub(crate) type SeenCert = Arc<Mutex<Option<CertificateDer<'static>>>>;

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

fn default_roots() -> &'static RootCertStore {
    static R: OnceLock<RootCertStore> = OnceLock::new();
    R.get_or_init(|| RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
}

#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    seen: SeenCert,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut g) = self.seen.lock() {
            *g = Some(end_entity.clone().into_owned());
        }
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A fresh client config (no session resumption, offering `alpn`) trusting
/// the webpki roots plus any certificates in `extra_roots_pem`.
pub(crate) fn client_config(
    extra_roots_pem: Option<&[u8]>,
    alpn: &[&[u8]],
) -> Result<(Arc<ClientConfig>, SeenCert), String> {
    let mut roots = default_roots().clone();
    if let Some(pem) = extra_roots_pem {
        let mut added = 0usize;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("invalid extra root CA PEM: {e}"))?;
            roots.add(cert).map_err(|e| format!("invalid extra root CA certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("extra root CA PEM contains no certificate".into());
        }
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("TLS verifier setup failed: {e}"))?;
    let seen: SeenCert = Arc::new(Mutex::new(None));
    let verifier = Arc::new(RecordingVerifier { inner, seen: seen.clone() });
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok((Arc::new(cfg), seen))
}

/// Classify a handshake error.
pub(crate) fn classify(err: &io::Error) -> (FailureKind, String) {
    let tls_err = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
    match tls_err {
        Some(rustls::Error::InvalidCertificate(ce)) => {
            let kind = match ce {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => FailureKind::TlsExpired,
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    FailureKind::TlsNameMismatch
                }
                CertificateError::UnknownIssuer => FailureKind::TlsUntrusted,
                _ => FailureKind::Tls,
            };
            (kind, format!("certificate rejected: {ce}"))
        }
        Some(e) => (FailureKind::Tls, format!("TLS handshake failed: {e}")),
        None => (FailureKind::Tls, format!("TLS handshake failed: {err}")),
    }
}

/// The certificate's notAfter.
pub(crate) fn not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
}
