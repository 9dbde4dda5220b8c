//! One module per CLI command group.

pub(crate) mod catalog;
pub(crate) mod db;
pub(crate) mod features;
pub(crate) mod keys;
pub(crate) mod models;
pub(crate) mod plan;
pub(crate) mod settings;
pub(crate) mod verify;
