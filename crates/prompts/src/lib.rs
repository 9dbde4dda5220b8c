//! Prompts: how each model family is asked for a completion or a generation, how much of the
//! file fits, and how the answer is cleaned up.
//!
//! Pure functions only. The gateway picks a deployment, asks this crate for the prompt, sends
//! it through a provider, and runs the reply (whole or chunk by chunk) back through
//! [`StopScanner`] or [`clean_generation`].

mod completion;
mod feature;
mod generation;
mod stop;
mod trim;

pub use completion::{
    CompletionPrompt, CompletionStyle, Message, PromptBody, RepoFile, Role, carries_fim_tokens,
    completion_prompt, completion_prompt_in, instruct_completion_prompt,
};
pub use feature::{
    FEATURE_MAX_TOKENS, FEATURE_PROMPTS, FEATURE_TEMPERATURE, FeaturePrompt, feature_prompt,
};
pub use generation::{
    GenerationDefaults, clean_generation, generation_defaults, generation_messages,
};
pub use stop::StopScanner;
pub use trim::{Budget, keep_end, keep_start, trim_context};
