//! FTPS: the rustls server configuration built from `[ftp.tls]`. One configuration serves
//! every connection of a loaded gateway (control and data), so TLS sessions resume from the
//! control connection onto the data connections, as clients such as FileZilla require. A
//! reload reads the certificate and key again.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::GatewayError;
use crate::config::{TlsConfig, TlsVersion};

/// Sessions remembered for resumption by session id.
const SESSION_CACHE: usize = 4096;

/// FTPS as `[ftp.tls]` sets it up: the server configuration when a certificate and key are
/// given, else none. The error names the section (`ftp.tls: certificate FILE: ...`).
pub fn from_config(tls: &TlsConfig) -> Result<Option<Arc<ServerConfig>>, GatewayError> {
    match (&tls.certificate, &tls.key) {
        (Some(cert), Some(key)) => server_config(cert, key, tls.min_version)
            .map(Some)
            .map_err(GatewayError::Tls),
        _ => Ok(None),
    }
}

/// The server configuration of a PEM certificate chain and key, accepting TLS `min` and newer.
pub fn server_config(
    cert: &Path,
    key: &Path,
    min: TlsVersion,
) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate {}: holds no PEM certificate",
            cert.display()
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match min {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate {} and its key do not fit: {e}", cert.display()))?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS session tickets: {e}"))?;
    Ok(Arc::new(config))
}
