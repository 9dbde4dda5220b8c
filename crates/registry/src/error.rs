//! The registry's one error type; the HTTP edge maps each variant to a status once.

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A rule was broken; `field` names the input field at fault.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with what is stored (duplicate name, deployment in use).
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Crypto(String),
    #[error("database error: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl RegistryError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
