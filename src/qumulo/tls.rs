//! How the client trusts the cluster: the system roots plus a CA file, a pinned fingerprint of
//! the cluster's own certificate, or (when told to) anything. Builds the one pooled HTTPS client.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use super::client::ClientConfig;
use super::error::Error;
use super::http;

/// Idle keep-alive connections kept per node.
const POOL_IDLE_PER_NODE: usize = 32;
/// How long an idle keep-alive connection is kept.
const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("qftpd/", env!("CARGO_PKG_VERSION"));

/// Builds the HTTPS client for `cfg` (installs the ring TLS provider as the process default if
/// none is).
///
/// With `pin_sha256`, exactly the server whose end-entity certificate has that fingerprint is
/// trusted (`ca_file` and `accept_invalid_certs` are then ignored). Otherwise certificates are
/// checked against the system roots plus those of `ca_file`; when the system has no usable
/// roots and there is no `ca_file`, the client is still built (with a warning) but trusts no
/// certificate, so every HTTPS call fails until `ca_file`, a pin or `accept_invalid_certs` is
/// set.
///
/// `read_timeout` limits every wait for the cluster's bytes; `None` for the client of
/// streamed uploads, whose wait for the answer spans the whole upload (see
/// [`super::transfer::Progress`] for how their stalls are caught).
pub(super) fn http_client(
    cfg: &ClientConfig,
    read_timeout: Option<std::time::Duration>,
) -> Result<reqwest::Client, Error> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have installed one in between: that is fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    if let Some(pin) = cfg.pin_sha256 {
        return builder(cfg, read_timeout)
            .tls_backend_preconfigured(pinned(pin)?)
            .build()
            .map_err(|e| Error::Config(format!("HTTPS client: {}", http::chain(&e))));
    }
    if let Some(path) = &cfg.ca_file {
        return builder(cfg, read_timeout)
            .tls_backend_preconfigured(with_ca_file(path)?)
            .build()
            .map_err(|e| {
                Error::Config(format!(
                    "HTTPS client with CA file {}: {}",
                    path.display(),
                    http::chain(&e)
                ))
            });
    }
    let mut trusting = builder(cfg, read_timeout);
    if cfg.accept_invalid_certs {
        trusting = trusting.tls_danger_accept_invalid_certs(true);
    }
    match trusting.build() {
        Ok(client) => Ok(client),
        Err(e) if !cfg.accept_invalid_certs => {
            tracing::warn!(
                error = %http::chain(&e),
                "no system CA certificates could be loaded and no CA file is set: the \
                 cluster's certificate cannot be trusted (set ca_file or accept_invalid_certs)"
            );
            builder(cfg, read_timeout)
                .tls_certs_only(Vec::new())
                .build()
                .map_err(|e| Error::Config(format!("HTTPS client: {}", http::chain(&e))))
        }
        Err(e) => Err(Error::Config(format!("HTTPS client: {}", http::chain(&e)))),
    }
}

/// The client builder for `cfg`, without any trust settings.
fn builder(
    cfg: &ClientConfig,
    read_timeout: Option<std::time::Duration>,
) -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        // After a burst, keep a few idle connections per node for the next one and close the
        // rest soon, rather than hundreds for minutes (a node limits its connections).
        .pool_max_idle_per_host(POOL_IDLE_PER_NODE)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .user_agent(USER_AGENT);
    match read_timeout {
        Some(t) => b.read_timeout(t),
        None => b,
    }
}

/// Reads the PEM certificates of a CA file; an unreadable file or one without any certificate
/// is a configuration error naming the file.
fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bad = |why: String| Error::Config(format!("CA file {}: {why}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".to_string()));
    }
    Ok(certs)
}

/// A rustls configuration that trusts the system roots and the certificates of the CA file at
/// `path`, and also a certificate of that file presented by the cluster itself (see
/// [`CaFileVerifier`]).
fn with_ca_file(path: &Path) -> Result<rustls::ClientConfig, Error> {
    let anchors = load_ca(path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = rustls_platform_verifier::Verifier::new_with_extra_roots(
        anchors.iter().cloned(),
        provider.clone(),
    )
    .map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?;
    verified_by(provider, Arc::new(CaFileVerifier { inner, anchors }))
}

/// A rustls configuration of `provider` whose server certificates `verifier` checks.
fn verified_by(
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<rustls::ClientConfig, Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifies the cluster's certificate against the system roots and the CA file; and trusts a
/// certificate of the CA file that the cluster presents as its own, when it names the cluster
/// and is within its validity period.
///
/// A self-signed certificate made the usual way (`openssl req -x509`) is marked as a CA
/// (`basicConstraints CA:TRUE`), which WebPKI refuses as a server's certificate
/// (`CaUsedAsEndEntity`) even when it is the trust anchor itself; curl and OpenSSL accept it,
/// as the administrator named exactly that certificate.
#[derive(Debug)]
struct CaFileVerifier {
    inner: rustls_platform_verifier::Verifier,
    /// The certificates of the CA file.
    anchors: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        if !self
            .anchors
            .iter()
            .any(|a| a.as_ref() == end_entity.as_ref())
        {
            return Err(refused);
        }
        anchor_as_end_entity(end_entity, server_name, now)?;
        Ok(ServerCertVerified::assertion())
    }

    // The handshake signatures: as the system verifier checks them.
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

/// Checks what still matters of a trusted certificate presented as the server's own: that it
/// names `server_name` and that `now` is within its validity period.
fn anchor_as_end_entity(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    parsed
        .verify_is_valid_for_subject_name(server_name)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let validity = x509.validity();
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < validity.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now > validity.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// A rustls configuration that trusts exactly the certificate whose fingerprint is `pin`.
fn pinned(pin: [u8; 32]) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinVerifier {
        pin,
        algorithms: provider.signature_verification_algorithms,
    });
    verified_by(provider, verifier)
}

/// Trusts a server whose end-entity certificate (DER) has the pinned SHA-256 fingerprint,
/// whatever signed it and whatever names it holds: a cluster's self-signed certificate. The
/// handshake signatures are still verified, so the server must hold the certificate's key.
#[derive(Debug)]
struct PinVerifier {
    /// The fingerprint to accept.
    pin: [u8; 32],
    /// The ring provider's signature algorithms.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = sha256(end_entity.as_ref());
        if presented == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = PinMismatch {
            expected: self.pin,
            presented,
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(mismatch)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server presented another certificate than the pinned one.
#[derive(thiserror::Error)]
#[error(
    "the cluster's certificate has the SHA-256 fingerprint {}, not the pinned {}",
    fingerprint(.presented),
    fingerprint(.expected)
)]
struct PinMismatch {
    expected: [u8; 32],
    presented: [u8; 32],
}

/// rustls shows the cause of a refused certificate with `Debug`: make that the message too.
impl fmt::Debug for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The SHA-256 digest of `data`, by the ring provider's hash (the one of its TLS 1.3 suites).
fn sha256(data: &[u8]) -> [u8; 32] {
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let hash = suite
        .tls13()
        .expect("a TLS 1.3 suite")
        .common
        .hash_provider
        .hash(data);
    hash.as_ref()
        .try_into()
        .expect("SHA-256 digests are 32 bytes")
}

/// A fingerprint as `openssl x509 -fingerprint -sha256` prints it: `AB:CD:…`.
fn fingerprint(digest: &[u8; 32]) -> String {
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_and_fingerprint_text_match_openssl() {
        // `printf abc | openssl dgst -sha256 -c`, uppercased.
        assert_eq!(
            fingerprint(&sha256(b"abc")),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:\
             B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }

    #[test]
    fn a_mismatch_names_both_fingerprints() {
        let e = PinMismatch {
            expected: [0xab; 32],
            presented: [0x01; 32],
        };
        let text = format!("{e}");
        assert!(text.contains(&["AB"; 32].join(":")), "{text}");
        assert!(text.contains(&["01"; 32].join(":")), "{text}");
        assert_eq!(format!("{e:?}"), text);
    }
}
