//! The Marathon client over HTTPS: it trusts exactly the CAs of its configured CA file.
//! Each test makes its own CA with rcgen, so no certificate lives in the repository.

mod marathon_server;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use marathon_server::{FakeMarathon, config};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use reqwest::Url;
use theseus::marathon::{Error, MarathonClient};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

/// A CA and its PEM file.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem_file: tempfile::NamedTempFile,
}

fn new_ca(name: &str) -> TestCa {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let pem_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem_file.path(), issuer.pem()).unwrap();
    TestCa { issuer, pem_file }
}

/// Accepts TLS connections for the axum test server; failed handshakes are skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, address)) = self.tcp.accept().await else {
                continue;
            };
            // A client that does not trust the certificate aborts the handshake.
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, address);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An HTTPS Marathon stand-in with a certificate for `127.0.0.1` issued by `ca`.
async fn https_marathon(ca: &TestCa) -> FakeMarathon {
    let key = KeyPair::generate().unwrap();
    let certificate = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca.issuer)
        .unwrap();
    let provider = Arc::new(aws_lc_rs::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(certificate.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("https://{}/", tcp.local_addr().unwrap())).unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(server)),
    };
    let router = Router::new().route("/ping", get(|| async { "pong" }));
    FakeMarathon::serve(listener, url, router)
}

#[tokio::test]
async fn https_with_the_ca_file_reaches_marathon() {
    let ca = new_ca("theseus test CA");
    let marathon = https_marathon(&ca).await;
    let mut config = config(&[&marathon.url]);
    config.ca_file = Some(ca.pem_file.path().to_owned());
    config.username = Some("marathon".into());
    config.password = Some("secret".into());

    MarathonClient::new(config).unwrap().ping().await.unwrap();
    let request = &marathon.requests()[0];
    assert_eq!(request.path, "/ping");
    assert!(request.header("authorization").is_some());
}

#[tokio::test]
async fn https_signed_by_another_ca_is_refused_as_unreachable() {
    let marathon = https_marathon(&new_ca("the server's CA")).await;
    let other = new_ca("another CA");
    let mut config = config(&[&marathon.url]);
    config.ca_file = Some(other.pem_file.path().to_owned());

    let error = MarathonClient::new(config)
        .unwrap()
        .ping()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains("certificate"), "{error}");
    assert!(marathon.requests().is_empty());
}

#[tokio::test]
async fn a_ca_file_without_certificates_is_a_clear_error() {
    let empty = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(empty.path(), "not a certificate\n").unwrap();
    let url = Url::parse("https://127.0.0.1:8443/").unwrap();
    let mut config = config(&[&url]);
    config.ca_file = Some(empty.path().to_owned());
    let error = MarathonClient::new(config).unwrap_err();
    assert!(matches!(error, Error::CaFile { .. }), "{error:?}");
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
}
