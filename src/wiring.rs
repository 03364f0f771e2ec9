//! The one place a configuration becomes the service's dependencies — the
//! store, the key service, the secret store, the alert channels — and the
//! `App` that holds them. The server and every host command start here, so
//! a host command runs the same use cases, through the same audit path, as
//! the API.

use std::sync::Arc;

use anyhow::Context;

use crate::app::App;
use crate::auth::TokenService;
use crate::clock::Clock;
use crate::config::{Config, KeyServiceChoice, SecretStoreChoice, SigningKeysAt};
use crate::crypto::signing::SigningKey;
use crate::datadir::DataDir;
use crate::domain::PolicySet;
use crate::keys::absent::AbsentKeyService;
use crate::keys::kms::KmsKeyService;
use crate::keys::local::LocalKeyService;
use crate::keys::{KeyRing, KeyService};
use crate::secrets::aws::SecretsManagerStore;
use crate::secrets::database::DatabaseSecretStore;
use crate::secrets::SecretStore;
use crate::store::Store;

/// The names of the service keys the database keeps.
pub const TOKEN_KEY: &str = "token-signing";
pub const AUDIT_KEY: &str = "audit-checkpoint";

/// Who the `App` is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The server: loads the policies, creates the data directory's keys on
    /// first start, and migrates the database if configured to.
    Serve,
    /// A host command: the data directory must hold the server's keys
    /// already (nothing is created), and the policies are not read (no host
    /// command decides on a quorum). `migrate` applies the migrations first.
    Host { migrate: bool },
}

/// The dependencies a configuration names.
#[derive(Debug)]
pub struct Wiring<'a> {
    config: &'a Config,
    dir: DataDir,
    /// The AWS configuration, loaded once for KMS, Secrets Manager and the
    /// review, whichever of them are configured.
    sdk: tokio::sync::OnceCell<aws_config::SdkConfig>,
}

impl<'a> Wiring<'a> {
    pub fn new(config: &'a Config) -> Self {
        Wiring {
            config,
            dir: DataDir::new(&config.data_dir),
            sdk: tokio::sync::OnceCell::new(),
        }
    }

    /// The AWS SDK configuration (credential chain, region, endpoint,
    /// timeouts), loaded the first time it is needed.
    pub async fn sdk(&self) -> &aws_config::SdkConfig {
        self.sdk
            .get_or_init(|| crate::aws::sdk_config(&self.config.aws))
            .await
    }

    /// The database, with the pool bounded as configured.
    pub async fn store(&self, migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
        crate::store::connect_with(&self.config.database_url, migrate, &self.config.pool)
            .await
            .context("while opening the database")
    }

    /// Where the local key file is: the configured file (a mounted Secret
    /// that replicas share), or the data directory's.
    pub fn local_key_path(&self) -> std::path::PathBuf {
        self.config
            .local_key_file
            .clone()
            .unwrap_or_else(|| self.dir.key_file())
    }

    /// The local key file, which every key ring keeps readable for the
    /// envelopes it wrapped.
    pub fn local_keys(&self) -> anyhow::Result<Arc<dyn KeyService>> {
        let service = match &self.config.local_key_file {
            Some(p) => LocalKeyService::load_mounted(p),
            None => LocalKeyService::load(&self.dir.key_file()),
        };
        Ok(Arc::new(
            service.context("while loading the local key file")?,
        ))
    }

    /// The configured key service: the local key file, or AWS KMS with the
    /// local key file kept readable for envelopes wrapped before the move.
    /// On the host the local key file may be gone (offline recovery needs no
    /// key service): then only KMS, or no key service at all, whose every
    /// call is refused naming why.
    pub async fn key_service(&self, purpose: Purpose) -> anyhow::Result<Arc<dyn KeyService>> {
        let local = match purpose {
            Purpose::Host { .. } if !self.local_key_path().exists() => None,
            _ => Some(self.local_keys()?),
        };
        Ok(match (&self.config.key_service, local) {
            (KeyServiceChoice::AwsKms { key_id }, local) => Arc::new(KeyRing::new(
                Arc::new(KmsKeyService::new(self.sdk().await, key_id)),
                local.into_iter().collect(),
            )),
            (KeyServiceChoice::Local, Some(local)) => Arc::new(KeyRing::new(local, vec![])),
            (KeyServiceChoice::Local, None) => Arc::new(AbsentKeyService::new(format!(
                "there is no local key file at {}",
                self.local_key_path().display()
            ))),
        })
    }

    /// The configured secret store (the database's own, or AWS Secrets
    /// Manager).
    pub async fn secret_store(&self, store: &Arc<dyn Store>) -> Arc<dyn SecretStore> {
        match &self.config.secret_store {
            SecretStoreChoice::AwsSecretsManager {
                name_prefix,
                recovery_window_days,
            } => Arc::new(SecretsManagerStore::new(
                self.sdk().await,
                name_prefix,
                *recovery_window_days,
            )),
            SecretStoreChoice::Database => Arc::new(DatabaseSecretStore::new(store.clone())),
        }
    }

    /// The token service, with the data directory's signing key.
    pub fn token_service(&self, key: &SigningKey) -> TokenService {
        TokenService::new(
            key,
            &self.config.token_issuer,
            &self.config.token_audience,
            self.config.token_max_ttl.as_secs() as i64,
        )
    }

    /// The data directory, checked: created with its keys for the server,
    /// required to hold them already for a host command (a mistyped
    /// `--data-dir` would otherwise mint keys nobody trusts and audit into a
    /// stray database).
    fn data_dir(&self, purpose: Purpose) -> anyhow::Result<()> {
        let in_dir = self.config.signing_keys == SigningKeysAt::DataDir;
        match purpose {
            Purpose::Serve => {
                if let Some(p) = &self.config.local_key_file {
                    anyhow::ensure!(
                        p.exists(),
                        "keys.local_key_file {} does not exist: create it once with `breakglass keys create-local --out FILE` and give every replica the same file (a mounted Secret)",
                        p.display()
                    );
                }
                self.dir
                    .ensure(self.config.local_key_file.is_none(), in_dir)?;
            }
            Purpose::Host { .. } if in_dir => anyhow::ensure!(
                self.dir.signing_key_file().exists(),
                "{} holds no signing key: start the server once with `breakglass serve --data-dir {}`, or fix --data-dir",
                self.config.data_dir.display(),
                self.config.data_dir.display()
            ),
            // The database must hold the keys: checked as they are read.
            Purpose::Host { .. } => {}
        };
        // Nobody else may read or swap the keys (each key file is checked
        // again as it is opened).
        crate::datadir::check_all(&self.dir.root)
    }

    /// The token signing key and the audit checkpoint key: the data
    /// directory's files, or the database's sealed copies.
    pub async fn signing_keys(
        &self,
        store: &Arc<dyn Store>,
        keys: &dyn KeyService,
        purpose: Purpose,
    ) -> anyhow::Result<(SigningKey, SigningKey)> {
        match self.config.signing_keys {
            SigningKeysAt::DataDir => Ok((
                SigningKey::load(&self.dir.signing_key_file())
                    .context("while loading the token signing key")?,
                SigningKey::load(&self.dir.audit_key_file())
                    .context("while loading the audit checkpoint key")?,
            )),
            SigningKeysAt::Database => Ok((
                self.shared_key(
                    store,
                    keys,
                    purpose,
                    TOKEN_KEY,
                    &self.dir.signing_key_file(),
                )
                .await
                .context("while loading the token signing key from the database")?,
                self.shared_key(store, keys, purpose, AUDIT_KEY, &self.dir.audit_key_file())
                    .await
                    .context("while loading the audit checkpoint key from the database")?,
            )),
        }
    }

    /// One signing key kept sealed in the database. The first server to
    /// start seals it (the data directory's file, when moving an existing
    /// installation, else a new key); whoever loses the race reads the
    /// winner's. A data directory file that differs from the kept key stops
    /// the start: two keys would sign for one service.
    async fn shared_key(
        &self,
        store: &Arc<dyn Store>,
        keys: &dyn KeyService,
        purpose: Purpose,
        name: &str,
        file: &std::path::Path,
    ) -> anyhow::Result<SigningKey> {
        use crate::crypto::envelope::{service_key_aad, Envelope};
        use crate::keys::EncryptionContext;
        use crate::store::ServiceKeyRow;
        let ctx = EncryptionContext::service_key(name);
        let aad = service_key_aad(name);
        let local = if file.exists() {
            Some(SigningKey::load(file)?)
        } else {
            None
        };
        let mut tx = store.begin().await?;
        let mut row = tx.service_key(name).await?;
        if row.is_none() {
            anyhow::ensure!(
                purpose == Purpose::Serve,
                "the database holds no {name} key yet: start the server once (keys.signing_keys = \"database\"), or check database_url"
            );
            let generated;
            let (key, origin) = match &local {
                Some(k) => (k, "the data directory's file"),
                None => {
                    generated = SigningKey::generate();
                    (&generated, "a new key")
                }
            };
            let sealed = Envelope::seal(keys, &ctx, &aad, key.pkcs8_der())
                .await
                .map_err(|e| anyhow::anyhow!("while sealing the {name} key: {e}"))?;
            let new = ServiceKeyRow {
                name: name.to_owned(),
                envelope: String::from_utf8(sealed.to_bytes())?,
                public_key: hex::encode(key.public_key()),
                created_at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_millis() as i64,
            };
            if tx.insert_service_key(&new).await? {
                tracing::warn!(
                    key = name,
                    kid = %key.kid(),
                    from = origin,
                    "sealed the {name} key in the database for every replica"
                );
                row = Some(new);
            } else {
                row = tx.service_key(name).await?;
            }
        }
        tx.commit().await?;
        let row =
            row.ok_or_else(|| anyhow::anyhow!("the {name} key vanished while it was kept"))?;
        let envelope = Envelope::from_bytes(row.envelope.as_bytes())?;
        let der = envelope
            .open(keys, &ctx, &aad)
            .await
            .map_err(|e| anyhow::anyhow!("while unsealing the {name} key: {e}"))?;
        let key = SigningKey::from_pkcs8(&der)?;
        anyhow::ensure!(
            hex::encode(key.public_key()) == row.public_key,
            "the {name} key in the database does not match its public key: the row was altered"
        );
        if let Some(l) = local {
            anyhow::ensure!(
                l.public_key() == key.public_key(),
                "{} is not the {name} key the database keeps for every replica (kid {} there, {} here): move the file away (keep a copy) and start again",
                file.display(),
                key.kid(),
                l.kid()
            );
        }
        Ok(key)
    }

    /// The embedded database holds envelopes and the audit log: owner-only,
    /// like the keys.
    fn protect_embedded_database(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if self.config.database_url != self.dir.database_url() {
            return Ok(());
        }
        let db = self.dir.db_path();
        for f in [
            db.clone(),
            db.with_extension("db-wal"),
            db.with_extension("db-shm"),
        ] {
            if f.exists() {
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        Ok(())
    }

    /// The application, every dependency wired from the configuration.
    pub async fn app(&self, clock: Arc<dyn Clock>, purpose: Purpose) -> anyhow::Result<Arc<App>> {
        let config = self.config;
        // Policies first: an invalid policy stops the server before it
        // creates or opens anything.
        let policies = match purpose {
            Purpose::Serve => PolicySet::load_dir(&config.policies_dir)
                .map_err(|e| anyhow::anyhow!("invalid policy: {e}"))?,
            Purpose::Host { .. } => PolicySet::default(),
        };
        self.data_dir(purpose)?;
        let migrate = match purpose {
            Purpose::Serve => config.migrate_on_start,
            Purpose::Host { migrate } => migrate,
        };
        let store = self.store(migrate).await?;
        let keys = self.key_service(purpose).await?;
        let (signing, audit_key) = self.signing_keys(&store, keys.as_ref(), purpose).await?;
        let audit_key = Arc::new(audit_key);
        self.protect_embedded_database()?;
        let secrets = self.secret_store(&store).await;
        let review_sdk = if config.settings.review_aws {
            Some(self.sdk().await.clone())
        } else {
            None
        };
        Ok(Arc::new(App {
            store,
            keys,
            secrets,
            policies: Arc::new(policies),
            clock,
            tokens: Arc::new(self.token_service(&signing)),
            settings: config.settings.clone(),
            oidc: config
                .oidc
                .iter()
                .cloned()
                .map(|c| crate::oidc::OidcIssuer::new(c).map(Arc::new))
                .collect::<anyhow::Result<Vec<_>>>()?,
            fallback_seen: Default::default(),
            aws_review: review_sdk
                .as_ref()
                .map(|sdk| (aws_sdk_iam::Client::new(sdk), aws_sdk_sts::Client::new(sdk))),
            aws_sdk: review_sdk,
            org: match &config.settings.org {
                Some(o) => Some(crate::org::OrgAws::new(
                    &crate::org::org_sdk(self.sdk().await, config.aws.call_timeout),
                    o.broker_role_arn.clone(),
                )),
                None => None,
            },
            trail: match &config.settings.root_watch {
                Some(w) => Some(crate::trail::TrailSource::new(
                    &crate::org::org_sdk(self.sdk().await, config.aws.call_timeout),
                    &w.bucket,
                    &w.prefix,
                    w.queue_url.as_deref(),
                )),
                None => None,
            },
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .context("while building the HTTP client")?,
            witness: Arc::new(
                crate::app::witness::Witness::load(
                    &self.dir.witness_file(),
                    &crate::crypto::chain::AuditKey::new(audit_key.public_key()),
                )
                .context("while loading the audit witness")?,
            ),
            chain_break: Default::default(),
            data_dir: config.data_dir.clone(),
            auth_refusals: Arc::new(crate::app::auth_refusals::AuthRefusals::new(
                config.settings.limits.auth_refusal_events_per_minute,
            )),
            audit_key,
            token_key: Arc::new(signing),
            replica: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            vault: Arc::default(),
            limiters: Arc::new(crate::limits::Limiters::new(&config.settings.limits)),
            metrics: Arc::default(),
        }))
    }
}
