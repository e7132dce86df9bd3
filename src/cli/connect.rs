//! Turning the command line's etcd options into a connected [`Store`].

use crate::store::{EtcdConfig, Layout, Store};

use super::{EtcdArgs, Failure};

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

    /// Connects, or explains which endpoints failed and why.
    pub async fn connect(&self) -> Result<Store, Failure> {
        let layout = Layout::new(&self.prefix)?;
        Ok(Store::connect(self.config(), layout).await?)
    }
}
