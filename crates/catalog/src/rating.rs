//! Ratings: how well a model handles each kind of feature.

use serde::Serialize;

/// The three kinds of work the catalog rates a model for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    CodeCompletion,
    CodeGeneration,
    Chat,
}

impl Capability {
    pub const ALL: [Capability; 3] = [Self::CodeCompletion, Self::CodeGeneration, Self::Chat];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CodeCompletion => "code_completion",
            Self::CodeGeneration => "code_generation",
            Self::Chat => "chat",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::CodeCompletion => "code completion",
            Self::CodeGeneration => "code generation",
            Self::Chat => "chat",
        }
    }
}

/// A model's rating for one capability.
///
/// The approved table grades green / amber / red; the "under evaluation" table and the older
/// page only say yes or no, which is kept as `Supported` / `NotSupported` rather than guessed
/// into a colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    Green,
    Amber,
    Red,
    Supported,
    NotSupported,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Green => "green",
            Self::Amber => "amber",
            Self::Red => "red",
            Self::Supported => "supported",
            Self::NotSupported => "not_supported",
        }
    }

    /// Whether a feature may be bound to a model with this rating.
    pub fn allows_binding(self) -> bool {
        matches!(self, Self::Green | Self::Amber | Self::Supported)
    }

    /// Orders ratings from best to worst, for picking a family's best model.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Self::Green => 4,
            Self::Amber => 3,
            Self::Supported => 2,
            Self::Red => 1,
            Self::NotSupported => 0,
        }
    }

    pub fn meaning(self) -> &'static str {
        LEGEND
            .iter()
            .find(|(r, _)| *r == self)
            .map(|(_, m)| *m)
            .unwrap_or_default()
    }
}

/// The legend of the supported-models page, in our words.
pub const LEGEND: [(Rating, &str); 5] = [
    (
        Rating::Green,
        "strongly recommended: the model handles the feature with no loss of quality",
    ),
    (
        Rating::Amber,
        "recommended: the model supports the feature with minor compromises or limitations",
    ),
    (
        Rating::Red,
        "not recommended: expect significant loss of quality or performance problems",
    ),
    (
        Rating::Supported,
        "supported, not graded (model under evaluation or listed only on the older page)",
    ),
    (Rating::NotSupported, "not supported for this feature"),
];

/// One rating per capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Ratings {
    pub code_completion: Rating,
    pub code_generation: Rating,
    pub chat: Rating,
}

impl Ratings {
    pub fn get(&self, capability: Capability) -> Rating {
        match capability {
            Capability::CodeCompletion => self.code_completion,
            Capability::CodeGeneration => self.code_generation,
            Capability::Chat => self.chat,
        }
    }
}

/// What the catalog says about using a family (or one model of it) for a capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FamilyVerdict {
    /// The catalog rates this; `model` names the model the rating comes from.
    Rated { rating: Rating, model: &'static str },
    /// The family has no model in the catalog (a family users may register, but GitLab
    /// has not evaluated).
    Unrated,
}
