//! `--datastore-endpoint`: which store backend to open, and opening it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use navarch_store::etcd::EtcdStore;
use navarch_store::sqlite::SqliteStore;
use navarch_store::Store;

/// How long etcd may take to answer before startup fails.
const ETCD_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `--datastore-endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datastore {
    /// `sqlite://PATH`; `None` means `DATA_DIR/state.db`.
    Sqlite(Option<PathBuf>),
    /// `http://HOST:PORT[,…]`.
    Etcd(Vec<String>),
}

impl Default for Datastore {
    fn default() -> Self {
        Datastore::Sqlite(None)
    }
}

impl FromStr for Datastore {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            return Ok(Datastore::Sqlite(
                (!path.is_empty()).then(|| PathBuf::from(path)),
            ));
        }
        let endpoints: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect();
        if endpoints.is_empty() {
            return Err("no endpoint given".to_string());
        }
        for endpoint in &endpoints {
            if endpoint.starts_with("https://") {
                return Err(format!(
                    "{endpoint}: etcd over TLS is not supported yet; use http://"
                ));
            }
            let Some(host_port) = endpoint.strip_prefix("http://") else {
                return Err(format!(
                    "{endpoint}: expected sqlite://PATH or http://HOST:PORT[,http://HOST:PORT…]"
                ));
            };
            let host_port = host_port.trim_end_matches('/');
            let valid = host_port
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(format!("{endpoint}: expected http://HOST:PORT"));
            }
        }
        Ok(Datastore::Etcd(endpoints))
    }
}

impl Datastore {
    /// Open the store. SQLite lives at `DATA_DIR/state.db` unless a path was given; etcd must
    /// answer within a few seconds.
    pub async fn open(&self, data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
        match self {
            Datastore::Sqlite(path) => {
                let path = path.clone().unwrap_or_else(|| data_dir.join("state.db"));
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).with_context(|| {
                        format!(
                            "cannot create directory {} for the database",
                            parent.display()
                        )
                    })?;
                }
                let store = SqliteStore::open(&path)
                    .await
                    .with_context(|| format!("cannot open database {}", path.display()))?;
                Ok(Arc::new(store))
            }
            Datastore::Etcd(endpoints) => {
                let list = endpoints.join(",");
                let connect = async {
                    let store = EtcdStore::connect(endpoints).await?;
                    store.current_revision().await?;
                    Ok::<_, navarch_store::Error>(store)
                };
                match tokio::time::timeout(ETCD_CONNECT_TIMEOUT, connect).await {
                    Ok(Ok(store)) => Ok(Arc::new(store)),
                    Ok(Err(e)) => Err(e).with_context(|| format!("cannot use etcd at {list}")),
                    Err(_) => bail!(
                        "cannot reach etcd at {list} within {}s",
                        ETCD_CONNECT_TIMEOUT.as_secs()
                    ),
                }
            }
        }
    }

    /// For logs: the backend and where it lives.
    pub fn describe(&self, data_dir: &Path) -> String {
        match self {
            Datastore::Sqlite(path) => format!(
                "sqlite://{}",
                path.clone()
                    .unwrap_or_else(|| data_dir.join("state.db"))
                    .display()
            ),
            Datastore::Etcd(endpoints) => endpoints.join(","),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_a_path_or_the_default() {
        assert_eq!(
            "sqlite:///tmp/x.db".parse(),
            Ok(Datastore::Sqlite(Some("/tmp/x.db".into())))
        );
        assert_eq!("sqlite://".parse(), Ok(Datastore::Sqlite(None)));
    }

    #[test]
    fn etcd_endpoints_are_comma_separated_http_urls() {
        assert_eq!(
            "http://127.0.0.1:2379,http://10.0.0.2:2379".parse(),
            Ok(Datastore::Etcd(vec![
                "http://127.0.0.1:2379".into(),
                "http://10.0.0.2:2379".into()
            ]))
        );
    }

    #[test]
    fn other_schemes_and_malformed_endpoints_are_rejected() {
        for bad in [
            "",
            "mysql://db",
            "127.0.0.1:2379",
            "http://127.0.0.1",
            "http://:2379",
            "http://h:99999",
            "https://127.0.0.1:2379",
        ] {
            assert!(bad.parse::<Datastore>().is_err(), "{bad:?} was accepted");
        }
    }
}
