//! Features: the things a code assistant asks for, each bound to one deployment (or disabled).

use serde::Serialize;

use crate::rating::Capability;

/// A Duo feature. Identifiers follow GitLab's `Ai::FeatureSetting` names so a GitLab
/// administrator finds the same list here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    CodeCompletions,
    CodeGenerations,
    DuoChat,
    DuoChatExplainCode,
    DuoChatWriteTests,
    DuoChatRefactorCode,
    DuoChatFixCode,
    DuoChatTroubleshootJob,
    DuoChatExplainVulnerability,
    DuoChatSummarizeComments,
    GenerateCommitMessage,
    SummarizeNewMergeRequest,
    SummarizeReview,
    ResolveVulnerability,
    ReviewMergeRequest,
    GlabAskGitCommand,
}

impl Feature {
    pub const ALL: [Feature; 16] = [
        Self::CodeCompletions,
        Self::CodeGenerations,
        Self::DuoChat,
        Self::DuoChatExplainCode,
        Self::DuoChatWriteTests,
        Self::DuoChatRefactorCode,
        Self::DuoChatFixCode,
        Self::DuoChatTroubleshootJob,
        Self::DuoChatExplainVulnerability,
        Self::DuoChatSummarizeComments,
        Self::GenerateCommitMessage,
        Self::SummarizeNewMergeRequest,
        Self::SummarizeReview,
        Self::ResolveVulnerability,
        Self::ReviewMergeRequest,
        Self::GlabAskGitCommand,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CodeCompletions => "code_completions",
            Self::CodeGenerations => "code_generations",
            Self::DuoChat => "duo_chat",
            Self::DuoChatExplainCode => "duo_chat_explain_code",
            Self::DuoChatWriteTests => "duo_chat_write_tests",
            Self::DuoChatRefactorCode => "duo_chat_refactor_code",
            Self::DuoChatFixCode => "duo_chat_fix_code",
            Self::DuoChatTroubleshootJob => "duo_chat_troubleshoot_job",
            Self::DuoChatExplainVulnerability => "duo_chat_explain_vulnerability",
            Self::DuoChatSummarizeComments => "duo_chat_summarize_comments",
            Self::GenerateCommitMessage => "generate_commit_message",
            Self::SummarizeNewMergeRequest => "summarize_new_merge_request",
            Self::SummarizeReview => "summarize_review",
            Self::ResolveVulnerability => "resolve_vulnerability",
            Self::ReviewMergeRequest => "review_merge_request",
            Self::GlabAskGitCommand => "glab_ask_git_command",
        }
    }

    /// Accepts GitLab's name and, for chat sub-features, the short name without `duo_chat_`
    /// (`explain_code`), which is how people say them.
    pub fn parse(s: &str) -> Option<Feature> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL.into_iter().find(|f| {
            f.as_str() == s
                || f.as_str()
                    .strip_prefix("duo_chat_")
                    .is_some_and(|short| short == s)
        })
    }

    /// Which catalog rating applies to this feature.
    pub fn capability(self) -> Capability {
        match self {
            Self::CodeCompletions => Capability::CodeCompletion,
            Self::CodeGenerations => Capability::CodeGeneration,
            _ => Capability::Chat,
        }
    }

    /// Features GitLab ships as beta; binding them needs the `beta_models_enabled` setting.
    pub fn is_beta(self) -> bool {
        matches!(
            self,
            Self::DuoChatTroubleshootJob
                | Self::DuoChatExplainVulnerability
                | Self::DuoChatSummarizeComments
                | Self::GenerateCommitMessage
                | Self::SummarizeNewMergeRequest
                | Self::SummarizeReview
                | Self::ResolveVulnerability
                | Self::GlabAskGitCommand
        )
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
