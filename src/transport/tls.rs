//! rustls client configuration (ring provider, no OpenSSL). Certificates are verified against
//! the Mozilla roots plus any `--cacert` file; `--insecure` is an explicit, named opt-out.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::Error;
use crate::plan::{Protocol, TlsOptions};

/// Builds the client config with ALPN set to exactly the protocol we mean to speak.
pub fn client_config(opts: &TlsOptions, protocol: Protocol) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid("TLS", "protocol versions", e.to_string()))?;
    let mut config = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &opts.ca_file {
            let ca_err = |reason: String| Error::CaCert {
                path: path.clone(),
                reason,
            };
            let pem = crate::input::read_bounded(path, crate::input::MAX_CACERT, "a CA file")
                .map_err(|e| ca_err(e.to_string()))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no certificate found".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![match protocol {
        Protocol::Http1 => b"http/1.1".to_vec(),
        Protocol::Http2 => b"h2".to_vec(),
    }];
    Ok(Arc::new(config))
}

/// A failed TLS handshake in words: what is wrong and what to do, for the cases people meet
/// (an untrusted or misissued certificate, no common protocol, a port that does not speak TLS),
/// instead of rustls's debug text (`Other(OtherError(CaUsedAsEndEntity))`).
pub fn describe(err: &std::io::Error) -> String {
    let why = match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(e) => describe_rustls(e),
        None => match err.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                format!("the server closed the connection during the handshake ({err}); does this port speak TLS? (use http:// if not)")
            }
            _ => err.to_string(),
        },
    };
    format!("TLS handshake failed: {why}")
}

/// A TLS failure's words for a gRPC target: the plaintext scheme to suggest is grpc://.
pub fn for_grpc(message: String) -> String {
    message.replace("use http://", "use grpc://")
}

fn describe_rustls(e: &rustls::Error) -> String {
    use rustls::{AlertDescription, CertificateError, Error};
    match e {
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => "the server's certificate is not signed by a trusted CA: use --cacert CA.pem (the CA that issued it) or --insecure".to_string(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let presented = match c {
                    CertificateError::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
                        // rustls gives them as `DnsName("a.test")`: keep the name.
                        let names: Vec<&str> = presented
                            .iter()
                            .map(|p| p.split_once("(\"").map_or(p.as_str(), |(_, n)| n.trim_end_matches("\")")))
                            .collect();
                        format!(" (it names {})", names.join(", "))
                    }
                    _ => String::new(),
                };
                format!("the server's certificate is not valid for the host in the URL{presented}: use a name the certificate was issued for, or --insecure")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired: renew it, or use --insecure".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet: check the clocks, or use --insecure".to_string()
            }
            CertificateError::Revoked => "the server's certificate has been revoked".to_string(),
            CertificateError::BadSignature => {
                "the server's certificate has a bad signature: it was not issued by the CA it names".to_string()
            }
            CertificateError::Other(other)
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                "the server presents a CA certificate (basicConstraints CA:TRUE) as its own, which is not allowed; this is what `openssl req -x509` makes by default. Issue the server a leaf certificate signed by that CA and give the CA with --cacert, or use --insecure".to_string()
            }
            other => format!("the server's certificate was refused: {other}"),
        },
        Error::AlertReceived(AlertDescription::HandshakeFailure) | Error::PeerIncompatible(_) => {
            format!("the server and metronome have no TLS version or cipher suite in common ({e}); metronome speaks TLS 1.2 and 1.3")
        }
        Error::AlertReceived(AlertDescription::ProtocolVersion) => {
            "the server does not speak TLS 1.2 or 1.3, the versions metronome offers".to_string()
        }
        Error::AlertReceived(AlertDescription::NoApplicationProtocol) => {
            "the server does not speak the protocol asked for in ALPN (h2 with --http2, else http/1.1): drop or add --http2".to_string()
        }
        Error::AlertReceived(AlertDescription::UnknownCA | AlertDescription::BadCertificate | AlertDescription::CertificateRequired) => {
            format!("the server refused the connection ({e}); it may require a client certificate, which metronome does not send")
        }
        Error::InvalidMessage(_) => {
            "the answer is not TLS, so the port does not speak TLS: use http://, or check the port".to_string()
        }
        other => other.to_string(),
    }
}

/// The server name to verify, from the URL's host.
pub fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_string()).map_err(|e| {
        Error::invalid(
            "URL host",
            host,
            format!("not a valid TLS server name: {e}"),
        )
    })
}

/// Accepts any certificate but still checks handshake signatures, so the connection is
/// encrypted, just not authenticated. Only reachable through `--insecure`.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{AlertDescription, CertificateError};

    fn said(e: rustls::Error) -> String {
        describe(&std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn handshake_errors_in_words() {
        let table = [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "use --cacert CA.pem",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                "has expired",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
                "not valid for the host",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::ProtocolVersion),
                "TLS 1.2 or 1.3",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol),
                "ALPN",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::HandshakeFailure),
                "no TLS version or cipher suite in common",
            ),
            (
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                "does not speak TLS",
            ),
        ];
        for (e, want) in table {
            let msg = said(e);
            assert!(msg.starts_with("TLS handshake failed: "), "{msg}");
            assert!(msg.contains(want), "{want}: {msg}");
        }
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(describe(&eof).contains("does this port speak TLS"));
    }
}
