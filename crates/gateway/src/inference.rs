//! What every front door shares once a deployment is chosen: the family's completion prompt for
//! that platform, the request to send, and the cleaning of the answer.

use std::sync::Arc;

use hearth_catalog::Family;
use hearth_prompts::{
    CompletionPrompt, CompletionStyle, PromptBody, RepoFile, StopScanner, clean_generation,
    completion_prompt_in, instruct_completion_prompt,
};
use hearth_providers::{
    CallContext, ChatMessage, ChatRequest, ChunkStream, Endpoint, Flavor, ProviderError, Providers,
    TextRequest, Usage,
};

/// A whole completion: the cleaned text, whether a stop cut it, and the usage.
pub(crate) type Completed = (String, Option<String>, Option<Usage>);

/// A completion ready to send: the prompt and every stop sequence that ends it.
pub(crate) struct CompletionPlan {
    pub prompt: CompletionPrompt,
    /// The family's stops, then the client's: made once, shared by the upstream request and
    /// the scanner that cuts its answer.
    pub stops: Arc<[String]>,
}

/// The client's sampling choices; `None` keeps the family's default. (`max_tokens` shapes
/// the prompt budget, so it is given to [`CompletionPlan::new`].)
pub(crate) struct Sampling<'a> {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub user: Option<&'a str>,
    /// Fields passed upstream as the client sent them (see `openai::check_platform`).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The code around the cursor, and where it lives.
pub(crate) struct Cursor<'a> {
    pub prefix: &'a str,
    pub suffix: &'a str,
    pub language: Option<&'a str>,
    pub file: Option<RepoFile<'a>>,
}

impl CompletionPlan {
    pub(crate) fn new(
        family: Family,
        endpoint: &Endpoint,
        at: Cursor<'_>,
        max_tokens: Option<u32>,
        client_stops: Vec<String>,
    ) -> CompletionPlan {
        let Cursor {
            prefix,
            suffix,
            language,
            file,
        } = at;
        let mut prompt = completion_prompt_in(family, prefix, suffix, language, max_tokens, file);
        // Bedrock serves Mistral and Mixtral instruct models through a raw prompt: ask in [INST].
        if matches!(endpoint.flavor, Flavor::Bedrock(_))
            && prompt.style == CompletionStyle::PrefixContinuation
        {
            prompt = instruct_completion_prompt(family, prefix, suffix, max_tokens);
        }
        let mut stops = std::mem::take(&mut prompt.stops);
        for s in client_stops {
            if !stops.contains(&s) {
                stops.push(s);
            }
        }
        CompletionPlan {
            prompt,
            stops: stops.into(),
        }
    }

    pub(crate) fn scanner(&self) -> StopScanner {
        StopScanner::new(self.stops.clone(), self.prompt.suffix_echo.clone())
    }

    /// Answers written for a reader (chat models, instructions) may wrap code in fences.
    pub(crate) fn cleans_like_generation(&self) -> bool {
        matches!(
            self.prompt.style,
            CompletionStyle::ChatInstruct | CompletionStyle::InstructText
        )
    }

    pub(crate) fn logged_prompt(&self) -> String {
        match &self.prompt.body {
            PromptBody::Text(t) => t.clone(),
            PromptBody::Chat(m) => m
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n\n"),
        }
    }

    fn text_request(&self, model: &str, prompt: String, s: &Sampling<'_>) -> TextRequest {
        TextRequest {
            model: model.to_string(),
            prompt,
            max_tokens: self.prompt.max_tokens,
            temperature: Some(s.temperature.unwrap_or(self.prompt.temperature)),
            top_p: s.top_p,
            stop: self.stops.clone(),
            user: s.user.map(str::to_owned),
            extra: s.extra.clone(),
        }
    }

    fn chat_request(
        &self,
        model: &str,
        messages: &[hearth_prompts::Message],
        s: &Sampling<'_>,
    ) -> ChatRequest {
        ChatRequest {
            model: model.to_string(),
            messages: messages
                .iter()
                .map(|m| ChatMessage {
                    role: m.role.as_str().into(),
                    content: m.content.clone(),
                    ..Default::default()
                })
                .collect(),
            max_tokens: Some(self.prompt.max_tokens),
            temperature: Some(s.temperature.unwrap_or(self.prompt.temperature)),
            top_p: s.top_p,
            stop: self.stops.clone(),
            user: s.user.map(str::to_owned),
            extra: s.extra.clone(),
        }
    }

    /// Sends the plan and returns the cleaned answer, whether a stop cut it, and the usage.
    pub(crate) async fn complete(
        &self,
        providers: &Providers,
        endpoint: &Endpoint,
        model: &str,
        prefix: &str,
        sampling: &Sampling<'_>,
        ctx: &CallContext,
    ) -> Result<Completed, ProviderError> {
        let reply = match &self.prompt.body {
            PromptBody::Text(p) => {
                providers
                    .complete(
                        endpoint,
                        &self.text_request(model, p.clone(), sampling),
                        ctx,
                    )
                    .await?
            }
            PromptBody::Chat(m) => {
                providers
                    .chat(endpoint, &self.chat_request(model, m, sampling), ctx)
                    .await?
            }
        };
        let raw = if self.cleans_like_generation() {
            clean_generation(&reply.text, prefix)
        } else {
            reply.text
        };
        let (text, cut) = self.scanner().cut(raw);
        let finish = if cut {
            Some("stop".to_string())
        } else {
            reply.finish_reason
        };
        Ok((text, finish, reply.usage))
    }

    /// Opens the upstream stream; the caller runs each chunk through [`Self::scanner`].
    pub(crate) async fn stream(
        &self,
        providers: &Providers,
        endpoint: &Endpoint,
        model: &str,
        sampling: &Sampling<'_>,
        include_usage: bool,
        ctx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        match &self.prompt.body {
            PromptBody::Text(p) => {
                providers
                    .complete_stream(
                        endpoint,
                        &self.text_request(model, p.clone(), sampling),
                        include_usage,
                        ctx,
                    )
                    .await
            }
            PromptBody::Chat(m) => {
                providers
                    .chat_stream(
                        endpoint,
                        &self.chat_request(model, m, sampling),
                        include_usage,
                        ctx,
                    )
                    .await
            }
        }
    }
}
