//! TLS for `--local` PostgreSQL connections: rustls (ring provider, as kube uses) behind
//! tokio-postgres's `MakeTlsConnect`, with libpq's `sslmode` semantics.
//!
//! | sslmode             | TLS                 | certificate check                          |
//! |---------------------|---------------------|--------------------------------------------|
//! | `disable`           | never               | –                                          |
//! | `allow`, `prefer`, none | tried, plain if the server has none | none (as libpq)         |
//! | `require`           | mandatory           | none; chain if `sslrootcert` is given (as libpq) |
//! | `verify-ca`         | mandatory           | chain, not the host name                   |
//! | `verify-full`       | mandatory           | chain and host name                        |
//!
//! Roots: the PEM file named by `sslrootcert`, or the system store when it is absent or
//! `system` (libpq would look for `~/.postgresql/root.crt`; on-call machines rarely have one).
//! "No check" still verifies the handshake signature against the presented certificate, so
//! the peer must hold the key of the certificate it shows. No channel binding is offered
//! (SCRAM falls back to plain SCRAM-SHA-256, which every server accepts).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::connection::{PgConnection, SslMode};

/// How much of the server certificate is checked (see the module table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertCheck {
    /// No TLS at all (`disable`).
    NoTls,
    /// TLS, certificate accepted as presented (handshake signature still checked).
    AnyCert,
    /// Chain up to the roots, any host name.
    Chain(Roots),
    /// Chain up to the roots and the host name.
    ChainAndHost(Roots),
}

/// Where trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The operating system's store.
    System,
    /// A PEM file (`sslrootcert`).
    File(String),
}

/// The certificate policy libpq would apply to `conn` (pure; see the module table).
pub fn plan_cert_check(conn: &PgConnection) -> CertCheck {
    let rootcert = conn
        .params()
        .iter()
        .find(|(k, _)| k == "sslrootcert")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    let roots = match rootcert {
        None | Some("system") => Roots::System,
        Some(path) => Roots::File(path.to_owned()),
    };
    match conn.sslmode() {
        Some(SslMode::Disable) => CertCheck::NoTls,
        None | Some(SslMode::Allow | SslMode::Prefer) => CertCheck::AnyCert,
        // libpq: `require` with a root certificate file behaves like verify-ca.
        Some(SslMode::Require) => match rootcert {
            Some(path) if path != "system" => CertCheck::Chain(roots),
            _ => CertCheck::AnyCert,
        },
        Some(SslMode::VerifyCa) => CertCheck::Chain(roots),
        Some(SslMode::VerifyFull) => CertCheck::ChainAndHost(roots),
    }
}

/// Setting up TLS failed before any byte went to the server.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// `sslrootcert` could not be read or holds no certificate.
    #[error("cannot use sslrootcert {path:?}: {cause}")]
    RootCert {
        /// The file.
        path: String,
        /// Why.
        cause: String,
    },
    /// The system store gave no usable root.
    #[error("no trusted root certificates in the system store ({0})")]
    NoSystemRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A tokio-postgres connector for `check`: `None` for [`CertCheck::NoTls`].
pub fn connector(check: &CertCheck) -> Result<Option<RustlsConnect>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        CertCheck::NoTls => return Ok(None),
        CertCheck::AnyCert => Arc::new(AnyCert {
            algorithms: provider.signature_verification_algorithms,
        }),
        CertCheck::Chain(roots) => Arc::new(ChainOnly(webpki_verifier(roots, &provider)?)),
        CertCheck::ChainAndHost(roots) => webpki_verifier(roots, &provider)?,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(RustlsConnect(Arc::new(config))))
}

fn webpki_verifier(
    roots: &Roots,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsSetupError::RootCert {
                    path: path.clone(),
                    cause: e.to_string(),
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsSetupError::RootCert {
                    path: path.clone(),
                    cause: "no usable PEM certificate in it".into(),
                });
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let cause = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), ToString::to_string);
                return Err(TlsSetupError::NoSystemRoots(cause));
            }
        }
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| TlsSetupError::Config(rustls::Error::General(e.to_string())))
}

/// `require` without roots: any certificate, but the handshake must be signed by its key.
#[derive(Debug)]
struct AnyCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCert {
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

/// `verify-ca`: webpki's full check, except that a host-name mismatch is accepted.
/// webpki checks the name only after the chain, so a name error means the chain passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
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

/// The handshake failed (certificate rejected, protocol error); found again in the
/// driver's error chain by [`crate::pg::connect`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandshakeError(pub io::Error);

/// `MakeTlsConnect` over rustls.
#[derive(Clone)]
pub struct RustlsConnect(Arc<ClientConfig>);

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsHandshake;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsHandshake, Self::Error> {
        Ok(RustlsHandshake {
            config: self.0.clone(),
            name: ServerName::try_from(domain)?.to_owned(),
        })
    }
}

/// One handshake towards a named server.
pub struct RustlsHandshake {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsHandshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, HandshakeError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            connector
                .connect(self.name, stream)
                .await
                .map(RustlsStream)
                .map_err(HandshakeError)
        })
    }
}

/// A TLS session to the server.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(uri: &str) -> CertCheck {
        plan_cert_check(&PgConnection::parse(uri).unwrap())
    }

    #[test]
    fn sslmode_maps_to_libpq_certificate_checks() {
        let base = "postgres://u:p@db.example.com:5432/d";
        assert_eq!(check(base), CertCheck::AnyCert);
        assert_eq!(check(&format!("{base}?sslmode=disable")), CertCheck::NoTls);
        assert_eq!(check(&format!("{base}?sslmode=allow")), CertCheck::AnyCert);
        assert_eq!(check(&format!("{base}?sslmode=prefer")), CertCheck::AnyCert);
        assert_eq!(
            check(&format!("{base}?sslmode=require")),
            CertCheck::AnyCert
        );
        assert_eq!(
            check(&format!("{base}?sslmode=require&sslrootcert=/ca.pem")),
            CertCheck::Chain(Roots::File("/ca.pem".into()))
        );
        assert_eq!(
            check(&format!("{base}?sslmode=require&sslrootcert=system")),
            CertCheck::AnyCert
        );
        assert_eq!(
            check(&format!("{base}?sslmode=verify-ca")),
            CertCheck::Chain(Roots::System)
        );
        assert_eq!(
            check(&format!("{base}?sslmode=verify-ca&sslrootcert=/ca.pem")),
            CertCheck::Chain(Roots::File("/ca.pem".into()))
        );
        assert_eq!(
            check(&format!("{base}?sslmode=verify-full")),
            CertCheck::ChainAndHost(Roots::System)
        );
        assert_eq!(
            check(&format!("{base}?sslmode=verify-full&sslrootcert=system")),
            CertCheck::ChainAndHost(Roots::System)
        );
    }

    #[test]
    fn connector_exists_for_every_tls_mode() {
        assert!(connector(&CertCheck::NoTls).unwrap().is_none());
        assert!(connector(&CertCheck::AnyCert).unwrap().is_some());
    }

    #[test]
    fn unreadable_rootcert_is_a_setup_error_naming_the_file() {
        let err = connector(&CertCheck::Chain(Roots::File("/no/such/ca.pem".into())))
            .err()
            .expect("an error");
        assert!(err.to_string().contains("/no/such/ca.pem"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = connector(&CertCheck::ChainAndHost(Roots::File(
            empty.display().to_string(),
        )))
        .err()
        .expect("an error");
        assert!(err.to_string().contains("no usable PEM"), "{err}");
    }
}
