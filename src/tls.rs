//! Native TLS with rustls: the certificate chain and key come from PEM
//! files, checked for a change every `tls.reload_interval` and swapped in
//! for new connections without a restart. A pair that does not load (a half
//! written file, a key that does not match the certificate) is refused and
//! the previous pair stays in service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Tls;

/// The certificate in service, and how to find a newer one.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Stamp)>,
    provider: Arc<CryptoProvider>,
}

/// The files' modification times and sizes when last loaded.
type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let of = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| (m.modified().ok(), m.len()))
            .unwrap_or((None, 0))
    };
    [of(cert), of(key)]
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("while reading the certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{} is not a PEM private key", key.display()))?;
    CertifiedKey::from_der(chain, key_der, provider).with_context(|| {
        format!(
            "the key {} does not match the certificate {}",
            key.display(),
            cert.display()
        )
    })
}

impl ReloadingCert {
    pub fn load(tls: &Tls) -> anyhow::Result<Arc<ReloadingCert>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let before = stamp(&tls.cert_file, &tls.key_file);
        let ck = load(&tls.cert_file, &tls.key_file, &provider)?;
        Ok(Arc::new(ReloadingCert {
            cert_file: tls.cert_file.clone(),
            key_file: tls.key_file.clone(),
            current: RwLock::new((Arc::new(ck), before)),
            provider,
        }))
    }

    /// Load the files again if they changed since the last load. Returns
    /// whether a new certificate is now in service.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.cert_file, &self.key_file);
        if self.current.read().expect("lock poisoned").1 == now {
            return false;
        }
        match load(&self.cert_file, &self.key_file, &self.provider) {
            Ok(ck) => {
                *self.current.write().expect("lock poisoned") = (Arc::new(ck), now);
                tracing::info!(cert = %self.cert_file.display(), "loaded a new TLS certificate");
                true
            }
            Err(e) => {
                // Keep serving the old pair; try again at the next change.
                self.current.write().expect("lock poisoned").1 = now;
                tracing::warn!(error = %format!("{e:#}"), "kept the previous TLS certificate");
                false
            }
        }
    }

    /// The server configuration: TLS 1.2 and 1.3 with rustls's safe
    /// defaults, HTTP/2 and HTTP/1.1 by ALPN, this certificate.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("while choosing TLS versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Check the files every `every` until the process ends.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(me) = me.upgrade() else { break };
                me.reload_if_changed();
            }
        });
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("lock poisoned").0.clone())
    }
}
