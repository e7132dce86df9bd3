//! How to reach etcd: endpoints, credentials, TLS files and timeouts.
//!
//! The configuration is plain data; it is checked when a [`Store`](super::Store) connects,
//! which turns it into one etcd-client connection setup per endpoint.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};

use super::Error;

/// Default [`EtcdConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default [`EtcdConfig::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`EtcdConfig::keep_alive_interval`]. etcd answers pings more frequent than its
/// `--grpc-keepalive-min-time` (5 s by default) with GOAWAY, so stay above it.
pub const DEFAULT_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Connection settings for etcd. `Debug` never prints the password.
#[derive(Clone)]
pub struct EtcdConfig {
    /// `http://host:port` or `https://host:port`; a bare `host:port` means https when a CA
    /// file is set, http otherwise. Every endpoint is tried in turn when one fails.
    pub endpoints: Vec<String>,
    /// User for etcd authentication; needs [`password`](Self::password) too.
    pub username: Option<String>,
    /// Password of [`username`](Self::username).
    pub password: Option<String>,
    /// PEM CA certificate that signed the servers' certificates (required for https).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for etcd's `--client-cert-auth`; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// How long opening a connection to one endpoint may take.
    pub connect_timeout: Duration,
    /// How long one request to one endpoint may take before the next endpoint is tried;
    /// also how long a keep-alive ping may go unanswered before a connection counts as dead.
    pub request_timeout: Duration,
    /// How often an idle connection (and a silent watch) is pinged to tell it from a dead one.
    pub keep_alive_interval: Duration,
}

impl EtcdConfig {
    /// Plain http to `endpoints`, no credentials, default timeouts.
    pub fn new<I, S>(endpoints: I) -> EtcdConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            username: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            keep_alive_interval: DEFAULT_KEEP_ALIVE_INTERVAL,
        }
    }

    /// Authenticates as `username` with `password`.
    pub fn with_user(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// Verifies servers with the CA in `ca_file`.
    pub fn with_ca(mut self, ca_file: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(ca_file.into());
        self
    }

    /// Presents the client certificate `cert_file` with its key `key_file`.
    pub fn with_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.cert_file = Some(cert_file.into());
        self.key_file = Some(key_file.into());
        self
    }

    /// The endpoints as URLs with a scheme and without a trailing slash.
    pub(crate) fn endpoint_urls(&self) -> Result<Vec<String>, Error> {
        if self.endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let tls = self.ca_file.is_some();
        self.endpoints
            .iter()
            .map(|endpoint| normalise_endpoint(endpoint, tls))
            .collect()
    }

    /// etcd-client options shared by every endpoint (TLS files are read here).
    pub(crate) fn connect_options(&self, urls: &[String]) -> Result<ConnectOptions, Error> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_keep_alive(self.keep_alive_interval, self.request_timeout)
            .with_keep_alive_while_idle(true)
            // A member cut off from its cluster would otherwise serve a watch that never
            // delivers again; with this, etcd cancels it and the store moves on.
            .with_require_leader(true)
            // Tokens live in the memory of etcd: after a restart every token is invalid.
            .with_auto_token_refresh(true);
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => options = options.with_user(user, password),
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::IncompleteCredentials {
                    reason: "a username is set without a password".into(),
                });
            }
            (None, Some(_)) => {
                return Err(Error::IncompleteCredentials {
                    reason: "a password is set without a username".into(),
                });
            }
        }
        let https = urls.iter().any(|url| url.starts_with("https://"));
        let http = urls.iter().find(|url| url.starts_with("http://"));
        let tls_files = self.ca_file.is_some() || self.cert_file.is_some();
        if !https {
            if tls_files {
                return Err(Error::InvalidTls {
                    reason: format!(
                        "TLS files are set but no endpoint uses https ({}); use https:// endpoints",
                        urls.join(",")
                    ),
                });
            }
            return Ok(options);
        }
        if let Some(http) = http {
            return Err(Error::InvalidTls {
                reason: format!("{http} uses http while other endpoints use https; use one scheme"),
            });
        }
        let Some(ca_file) = &self.ca_file else {
            return Err(Error::InvalidTls {
                reason: "https endpoints need a CA certificate file to verify etcd".into(),
            });
        };
        let mut tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(ca_file, "CA certificate")?));
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read(cert, "client certificate")?,
                    read(key, "client key")?,
                ));
            }
            (None, None) => {}
            _ => {
                return Err(Error::InvalidTls {
                    reason: "a client certificate needs both the certificate and the key file"
                        .into(),
                });
            }
        }
        Ok(options.with_tls(tls))
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::TlsFile {
        what,
        path: path.to_owned(),
        source,
    })
}

fn normalise_endpoint(endpoint: &str, tls: bool) -> Result<String, Error> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = endpoint.trim();
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => (scheme, rest),
        Some(_) => return Err(invalid("the scheme must be http or https")),
        None if tls => ("https", trimmed),
        None => ("http", trimmed),
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() {
        return Err(invalid(
            "no host is given; expected e.g. http://127.0.0.1:2379",
        ));
    }
    if authority.contains('/') || authority.contains(char::is_whitespace) {
        return Err(invalid("expected host:port, without a path"));
    }
    let port = authority.rsplit_once(':').map(|(_, port)| port);
    let bad_port = port.is_some_and(|port| port.parse::<u16>().is_err());
    // `[::1]` is an IPv6 address without a port, not a port `1]`.
    if bad_port && !authority.ends_with(']') {
        return Err(invalid("the port is not a number"));
    }
    Ok(format!("{scheme}://{authority}"))
}

impl fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("keep_alive_interval", &self.keep_alive_interval)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_endpoints_get_http_or_https_from_the_tls_settings() {
        let plain = EtcdConfig::new(["127.0.0.1:2379", "http://a:1/", " https://b:2 "]);
        assert_eq!(
            plain.endpoint_urls().unwrap(),
            ["http://127.0.0.1:2379", "http://a:1", "https://b:2"]
        );
        let tls = EtcdConfig::new(["127.0.0.1:2379"]).with_ca("ca.pem");
        assert_eq!(tls.endpoint_urls().unwrap(), ["https://127.0.0.1:2379"]);
    }

    #[test]
    fn malformed_endpoints_are_named_in_the_error() {
        for bad in ["", "ftp://a:1", "http://", "http://a:1/path", "a:port"] {
            let error = EtcdConfig::new([bad]).endpoint_urls().unwrap_err();
            assert!(
                matches!(&error, Error::InvalidEndpoint { endpoint, .. } if endpoint == bad),
                "{bad}: {error}"
            );
        }
        assert!(matches!(
            EtcdConfig::new(Vec::<String>::new()).endpoint_urls(),
            Err(Error::NoEndpoints)
        ));
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let config = EtcdConfig::new(["a:1"]).with_user("alice", "hunter2");
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("alice"), "{text}");
    }

    #[test]
    fn https_without_a_ca_file_is_refused_up_front() {
        let config = EtcdConfig::new(["https://a:1"]);
        let urls = config.endpoint_urls().unwrap();
        assert!(matches!(
            config.connect_options(&urls),
            Err(Error::InvalidTls { .. })
        ));
    }

    #[test]
    fn a_missing_tls_file_is_named() {
        let config = EtcdConfig::new(["https://a:1"]).with_ca("/nonexistent/ca.pem");
        let urls = config.endpoint_urls().unwrap();
        let error = config.connect_options(&urls).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
