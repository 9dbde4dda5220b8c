//! The approved-model catalog, compiled into the binary.
//!
//! Everything here is pure data and pure functions: which model families exist, which models
//! GitLab approved for which feature (and how well), what hardware each needs, and how to launch
//! it on vLLM. No I/O, so every other crate can use it and every answer is unit-testable.
//!
//! Sources: the GitLab "Duo Self-Hosted Models" pages in `shared/seeds/` (the newer
//! "supported models" page wins where the two model tables disagree).

mod document;
mod family;
mod feature;
mod hardware;
mod models;
mod plan;
mod rating;

pub use document::{Document, Filter, document};
pub use family::{Family, ReleaseStatus};
pub use feature::Feature;
pub use hardware::{BASE_SYSTEM, BaseSystem, GPUS, Gpu, Requirement, RequirementBasis, find_gpu};
pub use models::{
    CatalogError, Deprecation, MODELS, Model, ModelShape, Platform, Precision, ServeFlags, Source,
    find_model, model_by_id,
};
pub use plan::{
    FamilyEstimate, Hardware, Plan, PlanRequest, Registration, estimate_unlisted, plan,
};
pub use rating::{Capability, FamilyVerdict, LEGEND, Rating, Ratings};
