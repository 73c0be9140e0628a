//! TLS with a self-signed certificate made in the test: verification on by default (trusted via
//! --cacert), refused without it, skipped only with --insecure; HTTP/1.1 and HTTP/2 via ALPN.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::common::*;

struct TlsServer {
    port: u16,
    cert_pem: String,
    h1: Arc<AtomicU64>,
    h2: Arc<AtomicU64>,
}

async fn start_tls_server() -> TlsServer {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    start_tls_server_with(ck.cert, ck.signing_key).await
}

/// A self-signed certificate with `CA:TRUE`, as `openssl req -x509` makes by default.
fn ca_as_leaf() -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    (params.self_signed(&key).unwrap(), key)
}

async fn start_tls_server_with(cert: rcgen::Certificate, signing_key: rcgen::KeyPair) -> TlsServer {
    let pem = cert.pem();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
    let cert = CertificateDer::from(cert.der().to_vec());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (h1, h2) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (c1, c2) = (h1.clone(), h2.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let (c1, c2) = (c1.clone(), c2.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let counter = if req.version() == hyper::Version::HTTP_2 {
                        &c2
                    } else {
                        &c1
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    TlsServer {
        port,
        cert_pem: pem,
        h1,
        h2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_h1_and_h2_with_verified_certificate() {
    let server = start_tls_server().await;
    let dir = tempdir();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &server.cert_pem).unwrap();
    let url = format!("https://localhost:{}/", server.port);
    let ca = ca.to_str().unwrap();

    let r = run(plan(&[
        &url, "-r", "200", "-n", "100", "-c", "4", "--cacert", ca,
    ]))
    .await;
    assert_accounting(&r);
    assert_eq!(r.counts.ok, 100);
    assert_eq!(server.h1.load(Ordering::Relaxed), 100);

    let r = run(plan(&[
        &url, "--http2", "-r", "200", "-n", "100", "-c", "1", "--cacert", ca,
    ]))
    .await;
    assert_eq!(r.counts.ok, 100);
    assert_eq!(server.h2.load(Ordering::Relaxed), 100, "ALPN negotiated h2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_certificate_is_refused_unless_insecure() {
    let server = start_tls_server().await;
    let url = format!("https://localhost:{}/", server.port);
    let p = plan(&[&url, "-r", "100", "-n", "10", "-c", "1"]);
    let err = metronome::run(&p, metronome::Stop::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("unreachable")
            && msg.contains("not signed by a trusted CA: use --cacert CA.pem")
            && msg.contains("--insecure"),
        "{msg}"
    );
    assert!(
        !msg.contains("InvalidCertificate"),
        "words, not debug text: {msg}"
    );
    assert_eq!(server.h1.load(Ordering::Relaxed), 0, "nothing sent");

    let r = run(plan(&[
        &url,
        "-r",
        "100",
        "-n",
        "10",
        "-c",
        "1",
        "--insecure",
    ]))
    .await;
    assert_eq!(r.counts.ok, 10);
}

/// The message for a failed TLS handshake of `args` (which must fail before sending).
async fn handshake_error(args: &[&str]) -> String {
    let p = plan(args);
    metronome::run(&p, metronome::Stop::new())
        .await
        .unwrap_err()
        .to_string()
}

/// Handshake failures say what is wrong in words and how to fix it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_explained() {
    let dir = tempdir();

    // A certificate for "localhost", reached as 127.0.0.1.
    let server = start_tls_server().await;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &server.cert_pem).unwrap();
    let ca = ca.to_str().unwrap();
    let by_ip = format!("https://127.0.0.1:{}/", server.port);
    let msg = handshake_error(&[&by_ip, "-r", "10", "-n", "1", "-c", "1", "--cacert", ca]).await;
    assert!(
        msg.contains("not valid for the host in the URL (it names localhost)"),
        "{msg}"
    );

    // A CA certificate used as the server's own, trusted with --cacert: webpki refuses it.
    let (cert, key) = ca_as_leaf();
    let server = start_tls_server_with(cert, key).await;
    let ca2 = dir.join("ca-leaf.pem");
    std::fs::write(&ca2, &server.cert_pem).unwrap();
    let url = format!("https://localhost:{}/", server.port);
    let ca2 = ca2.to_str().unwrap();
    let msg = handshake_error(&[&url, "-r", "10", "-n", "1", "-c", "1", "--cacert", ca2]).await;
    assert!(
        msg.contains("CA certificate (basicConstraints CA:TRUE)"),
        "{msg}"
    );
    assert!(!msg.contains("OtherError"), "{msg}");

    // A plain-HTTP server behind an https:// URL.
    let plain = serve_default().await;
    let url = format!("https://{}/", plain.local_addr());
    let msg = handshake_error(&[&url, "-r", "10", "-n", "1", "-c", "1"]).await;
    assert!(msg.contains("does not speak TLS: use http://"), "{msg}");
    plain.shutdown().await;
}
