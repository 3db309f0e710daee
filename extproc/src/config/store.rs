//! The current [`RuntimeConfig`], swapped atomically; requests load it once per message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::{Config, ConfigError, RuntimeConfig};

/// Holds the config every stream reads. `generation` counts swaps (1 after the first update),
/// and a watch channel tells waiters when it changes.
#[derive(Debug)]
pub struct ConfigStore {
    current: ArcSwap<RuntimeConfig>,
    /// Tokens minted for the current config's token credentials.
    tokens: crate::auth::token::Tokens,
    generation: AtomicU64,
    changed: watch::Sender<u64>,
}

impl Default for ConfigStore {
    fn default() -> Self {
        ConfigStore {
            current: ArcSwap::from_pointee(RuntimeConfig {
                request_body_limit: crate::keys::DEFAULT_REQUEST_BODY_LIMIT,
                ..RuntimeConfig::default()
            }),
            generation: AtomicU64::new(0),
            changed: watch::channel(0).0,
            tokens: crate::auth::token::Tokens::default(),
        }
    }
}

impl ConfigStore {
    /// An empty store (no routes: only the request checks apply).
    pub fn new() -> Arc<ConfigStore> {
        Arc::new(ConfigStore::default())
    }

    /// Builds `config` and swaps it in; returns the per-object errors (those objects are left
    /// out, everything else applies).
    pub fn update(&self, config: &Config) -> Vec<ConfigError> {
        let out = config.build();
        for err in &out.errors {
            tracing::warn!(version = %config.version, error = %err, "extproc config object");
        }
        self.tokens.sync(&out.config);
        self.current.store(Arc::new(out.config));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed.send_replace(generation);
        tracing::info!(
            version = %config.version,
            generation,
            routes = config.routes.len(),
            backends = config.backends.len(),
            "extproc config applied"
        );
        out.errors
    }

    /// The minted tokens of the current config's credentials.
    pub fn tokens(&self) -> &crate::auth::token::Tokens {
        &self.tokens
    }

    pub fn load(&self) -> Arc<RuntimeConfig> {
        self.current.load_full()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Notified with the generation after each update.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
