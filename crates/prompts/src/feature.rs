//! Hearth's own prompts for the Duo features GitLab reaches through `/v1/prompts/{prompt_id}`:
//! commit message, merge request summary, code review, review summary, vulnerability
//! explanation and resolution, root cause analysis of a failed job, discussion summary, the
//! git command helper of `glab duo ask`, and the chat tools.
//!
//! GitLab sends each feature's data as named `inputs` (a diff, a job log, a finding). The
//! prompt is one instruction per feature plus every input as a tagged block, so inputs GitLab
//! adds in later versions still reach the model.

use hearth_catalog::{Family, Feature};

use crate::completion::{Message, Role};
use crate::trim::{Budget, keep_end, keep_start};

/// One prompt id GitLab calls, and what Hearth answers it with.
#[derive(Debug)]
pub struct FeaturePrompt {
    /// The id in `/v1/prompts/{prompt_id}`.
    pub prompt_id: &'static str,
    pub feature: Feature,
    /// The scope GitLab's token must hold for it.
    pub unit_primitive: &'static str,
    instruction: &'static str,
    /// Inputs placed first, in this order; others follow by name.
    leading: &'static [&'static str],
}

/// Room for the answer: GitLab's own prompts for these features allow about 2,000 tokens.
pub const FEATURE_MAX_TOKENS: u32 = 2048;
/// GitLab's self-hosted prompts for these features sample at 0.1.
pub const FEATURE_TEMPERATURE: f64 = 0.1;

macro_rules! fp {
    ($id:literal, $feature:ident, $up:literal, $leading:expr, $instruction:expr) => {
        FeaturePrompt {
            prompt_id: $id,
            feature: Feature::$feature,
            unit_primitive: $up,
            instruction: $instruction,
            leading: $leading,
        }
    };
}

/// Every prompt id Hearth serves besides `model_configuration/check`.
pub static FEATURE_PROMPTS: &[FeaturePrompt] = &[
    fp!(
        "generate_commit_message",
        GenerateCommitMessage,
        "generate_commit_message",
        &["diff"],
        "You write git commit messages. From the diff, write one message: a subject line of at most 72 characters in the imperative mood, a blank line, then a short body saying what changed and why, wrapped at 72 columns. Reply with the message only."
    ),
    fp!(
        "summarize_new_merge_request",
        SummarizeNewMergeRequest,
        "summarize_new_merge_request",
        &["extracted_diff"],
        "You describe merge requests for reviewers. From the changes given, write a concise Markdown summary: what the change does and why, then a bullet list of the notable changes. Do not invent changes that are not in the diff."
    ),
    fp!(
        "review_merge_request",
        ReviewMergeRequest,
        "review_merge_request",
        &[
            "mr_title",
            "mr_description",
            "mr_data",
            "diff_lines",
            "codebase_context"
        ],
        "You review merge requests. Read the changes and point out bugs, security problems, missing error handling and unclear code, each with the file and line it concerns and a concrete fix. Skip praise and style nits. If nothing needs changing, say so in one sentence."
    ),
    fp!(
        "summarize_review",
        SummarizeReview,
        "summarize_review",
        &["draft_notes_content"],
        "You summarise a code review. From the reviewer's comments, write a short Markdown summary of the main points the author must act on, most important first."
    ),
    fp!(
        "resolve_vulnerability",
        ResolveVulnerability,
        "resolve_vulnerability",
        &[
            "name",
            "vulnerability_description",
            "identifiers",
            "filename",
            "vulnerable_code",
            "source_code",
        ],
        "You fix security vulnerabilities. Explain the flaw in the vulnerable code in two or three sentences, then give the fix as a unified diff against the source file, changing only what the fix needs. Put the diff in a fenced code block marked diff."
    ),
    fp!(
        "glab_ask_git_command",
        GlabAskGitCommand,
        "glab_ask_git_command",
        &[],
        "You turn requests into git commands for a terminal. Give the command or commands that do what is asked, each in a shell code block, with one sentence on what each does. Prefer safe commands; warn before anything that rewrites history or deletes work."
    ),
    fp!(
        "chat/explain_vulnerability",
        DuoChatExplainVulnerability,
        "explain_vulnerability",
        &[],
        "You explain security findings to developers. Say what the vulnerability is, how it could be exploited in this code, and how to fix it, with a short corrected example."
    ),
    fp!(
        "chat/troubleshoot_job",
        DuoChatTroubleshootJob,
        "troubleshoot_job",
        &[],
        "You find why CI/CD jobs fail. From the job log, state the root cause in one or two sentences, quote the log lines that show it, and give the steps or code change that fix it."
    ),
    fp!(
        "chat/summarize_comments",
        DuoChatSummarizeComments,
        "summarize_comments",
        &[],
        "You summarise discussions. From the comments, write a short Markdown summary of the points raised, the decisions taken and the open questions."
    ),
    fp!(
        "chat/explain_code",
        DuoChatExplainCode,
        "explain_code",
        &[],
        "You explain code. Say what the selected code does and how, step by step, and mention anything surprising or risky."
    ),
    fp!(
        "chat/write_tests",
        DuoChatWriteTests,
        "write_tests",
        &[],
        "You write unit tests. Write tests for the selected code in its language's usual test framework, covering normal cases, edge cases and errors. Reply with the test code and a one-line note on how to run it."
    ),
    fp!(
        "chat/refactor_code",
        DuoChatRefactorCode,
        "refactor_code",
        &[],
        "You refactor code. Rewrite the selected code to be clearer and simpler without changing its behaviour, then list the changes in a few bullets."
    ),
    fp!(
        "chat/fix_code",
        DuoChatFixCode,
        "fix_code",
        &[],
        "You fix code. Find the bugs in the selected code, give the corrected code, and say in a few bullets what was wrong."
    ),
];

/// The prompt GitLab's `prompt_id` names (leading and trailing `/` ignored).
pub fn feature_prompt(prompt_id: &str) -> Option<&'static FeaturePrompt> {
    let id = prompt_id.trim_matches('/');
    FEATURE_PROMPTS.iter().find(|p| p.prompt_id == id)
}

/// Inputs whose end matters more than their start (the failing step is at the end of a log).
fn keeps_end(name: &str) -> bool {
    name.contains("log")
}

impl FeaturePrompt {
    /// The chat messages for `family`. Inputs are cut to the family's context (GitLab's own
    /// limits are far smaller, so this only bites on 8k-16k families), each to an equal share.
    pub fn messages(&self, family: Family, inputs: &[(String, String)]) -> Vec<Message> {
        let mut ordered: Vec<&(String, String)> = Vec::with_capacity(inputs.len());
        for name in self.leading {
            ordered.extend(inputs.iter().filter(|(n, _)| n == name));
        }
        let mut rest: Vec<&(String, String)> = inputs
            .iter()
            .filter(|(n, _)| !self.leading.contains(&n.as_str()))
            .collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        ordered.extend(rest);
        ordered.retain(|(_, v)| !v.trim().is_empty());

        let budget = Budget::for_family(family, FEATURE_MAX_TOKENS).input_bytes();
        let share = budget / ordered.len().max(1);
        let mut user = String::new();
        for (name, value) in ordered {
            let value = if keeps_end(name) {
                keep_end(value, share)
            } else {
                keep_start(value, share)
            };
            user.push_str(&format!("<{name}>\n{value}\n</{name}>\n\n"));
        }
        if user.is_empty() {
            user.push_str("(GitLab sent no input for this request.)\n");
        }
        vec![
            Message {
                role: Role::System,
                content: self.instruction.to_string(),
            },
            Message {
                role: Role::User,
                content: user.trim_end().to_string(),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_prompt_id_is_unique_and_found_with_slashes() {
        for (i, a) in FEATURE_PROMPTS.iter().enumerate() {
            for b in &FEATURE_PROMPTS[i + 1..] {
                assert_ne!(a.prompt_id, b.prompt_id);
                assert_ne!(a.feature, b.feature);
            }
        }
        assert_eq!(
            feature_prompt("/generate_commit_message/").map(|p| p.feature),
            Some(Feature::GenerateCommitMessage)
        );
        assert_eq!(
            feature_prompt("chat/troubleshoot_job").map(|p| p.unit_primitive),
            Some("troubleshoot_job")
        );
        assert!(feature_prompt("model_configuration/check").is_none());
        assert!(feature_prompt("no_such_prompt").is_none());
    }

    #[test]
    fn known_inputs_lead_and_the_rest_follow_by_name() {
        let p = feature_prompt("resolve_vulnerability").unwrap();
        let m = p.messages(
            Family::Mistral,
            &inputs(&[
                ("source_code", "eval(x)"),
                ("zeta", "z"),
                ("name", "Code injection"),
                ("alpha", "a"),
                ("empty", "  "),
            ]),
        );
        assert_eq!(m[0].role, Role::System);
        assert_eq!(
            m[1].content,
            "<name>\nCode injection\n</name>\n\n<source_code>\neval(x)\n</source_code>\n\n<alpha>\na\n</alpha>\n\n<zeta>\nz\n</zeta>"
        );
    }

    #[test]
    fn long_logs_keep_their_end_and_diffs_their_start_within_the_family_context() {
        let p = feature_prompt("chat/troubleshoot_job").unwrap();
        let log = format!("{}ERROR: the real failure\n", "noise line\n".repeat(10_000));
        let m = p.messages(Family::Codegemma, &inputs(&[("job_log", &log)]));
        assert!(m[1].content.len() < 8_000 * 4, "{}", m[1].content.len());
        assert!(m[1].content.contains("ERROR: the real failure"));
        let c = feature_prompt("generate_commit_message").unwrap();
        let diff = format!("diff --git a/x b/x\n{}", "+line\n".repeat(20_000));
        let m = c.messages(Family::Codegemma, &inputs(&[("diff", &diff)]));
        assert!(m[1].content.starts_with("<diff>\ndiff --git a/x b/x\n"));
        // A 200k-token family keeps it whole.
        let m = c.messages(Family::Claude3, &inputs(&[("diff", &diff)]));
        assert!(m[1].content.len() > diff.len());
    }
}
