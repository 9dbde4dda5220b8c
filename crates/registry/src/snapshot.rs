//! The registry as readers see it: an immutable copy swapped in after every write, so the
//! request path reads it without locks or database round trips.

use std::collections::HashMap;
use std::sync::Arc;

use hearth_catalog::Feature;

use crate::client_keys::{ClientKey, hash};
use crate::deployment::Deployment;
use crate::features::{Binding, FeatureSetting};
use crate::settings::Settings;

#[derive(Debug, Default)]
pub struct Snapshot {
    /// `registry_state.version` this state was read at; every write makes a new one.
    pub(crate) version: i64,
    pub(crate) deployments: Vec<Arc<Deployment>>,
    /// One entry per `Feature::ALL`, in that order.
    pub(crate) features: Vec<FeatureSetting>,
    pub(crate) settings: Settings,
    pub(crate) client_keys: Vec<ClientKey>,
    /// SHA-256 (hex) of each active key → its id.
    pub(crate) active_key_hashes: HashMap<String, i64>,
}

impl Snapshot {
    /// The registry version this state was read at.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Every deployment, oldest first.
    pub fn deployments(&self) -> &[Arc<Deployment>] {
        &self.deployments
    }

    pub fn deployment(&self, id: i64) -> Option<&Arc<Deployment>> {
        self.deployments.iter().find(|d| d.id == id)
    }

    pub fn deployment_by_name(&self, name: &str) -> Option<&Arc<Deployment>> {
        self.deployments.iter().find(|d| d.name == name)
    }

    /// Every feature's setting, in `Feature::ALL` order.
    pub fn features(&self) -> &[FeatureSetting] {
        &self.features
    }

    pub fn feature(&self, feature: Feature) -> FeatureSetting {
        self.features
            .iter()
            .find(|s| s.feature == feature)
            .cloned()
            .unwrap_or(FeatureSetting {
                feature,
                binding: Binding::Disabled,
                updated_at: None,
                fallbacks: Vec::new(),
            })
    }

    /// The deployment serving `feature`, or `None` when the feature is disabled.
    pub fn deployment_for(&self, feature: Feature) -> Option<&Arc<Deployment>> {
        self.feature(feature)
            .binding
            .deployment_id()
            .and_then(|id| self.deployment(id))
    }

    /// The features bound to deployment `id`.
    pub fn features_using(&self, id: i64) -> Vec<Feature> {
        self.features
            .iter()
            .filter(|s| s.binding.deployment_id() == Some(id))
            .map(|s| s.feature)
            .collect()
    }

    /// The features that fall back to deployment `id`.
    pub fn features_falling_back_to(&self, id: i64) -> Vec<Feature> {
        self.features
            .iter()
            .filter(|s| s.fallbacks.contains(&id))
            .map(|s| s.feature)
            .collect()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every client key, revoked ones included, oldest first.
    pub fn client_keys(&self) -> &[ClientKey] {
        &self.client_keys
    }

    pub fn has_active_client_keys(&self) -> bool {
        !self.active_key_hashes.is_empty()
    }

    /// The id of the active client key `presented` is, if any.
    pub fn client_key_id(&self, presented: &str) -> Option<i64> {
        if self.active_key_hashes.is_empty() {
            return None;
        }
        self.active_key_hashes.get(&hash(presented)).copied()
    }
}
