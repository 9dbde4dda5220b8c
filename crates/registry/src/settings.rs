//! Instance-wide settings.

/// The settings an administrator can change at run time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Allows beta model families and beta features (GitLab's "Use beta self-hosted models
    /// features").
    pub beta_models_enabled: bool,
    /// Logs prompts and completions with each request. Off by default: code is sensitive.
    pub verbose_ai_logs: bool,
}

/// A partial update; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default)]
pub struct SettingsPatch {
    pub beta_models_enabled: Option<bool>,
    pub verbose_ai_logs: Option<bool>,
}

pub(crate) const BETA_MODELS_ENABLED: &str = "beta_models_enabled";
pub(crate) const VERBOSE_AI_LOGS: &str = "verbose_ai_logs";

impl Settings {
    pub(crate) fn apply(&mut self, name: &str, value: &str) {
        let on = value == "true";
        match name {
            BETA_MODELS_ENABLED => self.beta_models_enabled = on,
            VERBOSE_AI_LOGS => self.verbose_ai_logs = on,
            // A setting from a newer Hearth: ignore rather than fail to start.
            _ => {}
        }
    }
}

pub(crate) const ENABLE_BETA_HINT: &str = "turn on beta models with `hearth settings set beta_models_enabled true` \
     (or PATCH /api/v1/settings {\"beta_models_enabled\": true})";
