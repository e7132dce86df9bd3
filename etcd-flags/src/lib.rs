//! How to reach etcd, as command-line flags: one definition for every theseus program.
//!
//! The `theseus` command and `theseus-controller` take the same etcd options with the same
//! names, defaults and environment variables. The flags live here, outside the library, so the
//! library builds without a command-line parser; [`EtcdArgs::config`] turns them into the
//! library's [`EtcdConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use theseus::store::{Error, EtcdConfig, Layout, Store};

/// How to reach etcd; shared by every command that reads or writes it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "etcd connection")]
pub struct EtcdArgs {
    /// etcd client URLs, comma-separated; every one is tried.
    #[arg(
        long,
        env = "ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379",
        global = true
    )]
    pub etcd_endpoints: Vec<String>,

    /// Root prefix of theseus's keys in etcd (keys then start at `<prefix>/desired`).
    #[arg(long, env = "THESEUS_PREFIX", default_value = "", global = true)]
    pub prefix: String,

    /// etcd user name, for clusters with authentication.
    #[arg(long, env = "ETCD_USERNAME", global = true)]
    pub etcd_username: Option<String>,

    /// etcd password (prefer the environment variable to keep it out of `ps`).
    #[arg(long, env = "ETCD_PASSWORD", hide_env_values = true, global = true)]
    pub etcd_password: Option<String>,

    /// CA certificate (PEM) that signed etcd's server certificates.
    #[arg(long, env = "ETCD_CACERT", global = true)]
    pub etcd_ca_file: Option<PathBuf>,

    /// Client certificate (PEM) for etcd's client-certificate authentication.
    #[arg(long, env = "ETCD_CERT", global = true, requires = "etcd_key_file")]
    pub etcd_cert_file: Option<PathBuf>,

    /// Client key (PEM) for `--etcd-cert-file`.
    #[arg(long, env = "ETCD_KEY", global = true, requires = "etcd_cert_file")]
    pub etcd_key_file: Option<PathBuf>,

    /// How long to wait for etcd before giving up on a request.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub etcd_timeout: Duration,
}

impl EtcdArgs {
    /// The store configuration these options describe.
    pub fn config(&self) -> EtcdConfig {
        let mut config = EtcdConfig::new(self.etcd_endpoints.clone());
        config.username = self.etcd_username.clone();
        config.password = self.etcd_password.clone();
        config.ca_file = self.etcd_ca_file.clone();
        config.cert_file = self.etcd_cert_file.clone();
        config.key_file = self.etcd_key_file.clone();
        config.connect_timeout = self.etcd_timeout;
        config.request_timeout = self.etcd_timeout;
        config
    }

    /// The key layout under `--prefix`, or why the prefix is not one.
    pub fn layout(&self) -> Result<Layout, Error> {
        Layout::new(&self.prefix)
    }

    /// Connects, or explains which endpoints failed and why.
    pub async fn connect(&self) -> Result<Store, Error> {
        Store::connect(self.config(), self.layout()?).await
    }
}
