//! Keeps the credentials Hearth sends out of the text it relays: a model server that echoes
//! the key it was given ("Incorrect API key provided: Bearer sk-…") must not hand it to
//! every client and every log line.

use secrecy::{ExposeSecret, SecretString};

use crate::bedrock::BedrockAuth;
use crate::types::{Endpoint, Flavor};

pub(crate) const REDACTED: &str = "[redacted]";

/// Shorter values are not worth redacting: replacing every `ab` would garble messages while
/// a two-character key protects nothing anyway.
const MIN_SECRET: usize = 4;

/// Every secret one endpoint carries, longest first so that a secret containing another is
/// replaced whole.
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    pub(crate) fn of(ep: &Endpoint) -> Secrets {
        let bedrock = match &ep.flavor {
            Flavor::Bedrock(target) => Some(&target.auth),
            _ => None,
        };
        Secrets::from_parts(ep.api_key.as_ref(), bedrock)
    }

    fn from_parts(api_key: Option<&SecretString>, bedrock: Option<&BedrockAuth>) -> Secrets {
        let mut all: Vec<String> = Vec::new();
        if let Some(key) = api_key {
            let key = key.expose_secret();
            all.push(key.to_string());
            // An Entra token stored with its scheme is sent without it; a Bedrock key
            // stored as `ID:SECRET[:TOKEN]` is sent in parts.
            if let Some(token) = key.strip_prefix("Bearer ") {
                all.push(token.to_string());
            }
            all.extend(key.split(':').skip(1).map(str::to_string));
        }
        if let Some(auth) = bedrock {
            match auth {
                BedrockAuth::SigV4 {
                    secret_access_key,
                    session_token,
                    ..
                } => {
                    all.push(secret_access_key.expose_secret().to_string());
                    if let Some(t) = session_token {
                        all.push(t.expose_secret().to_string());
                    }
                }
                BedrockAuth::ApiKey(key) => all.push(key.expose_secret().to_string()),
            }
        }
        all.retain(|s| s.len() >= MIN_SECRET);
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Secrets(all)
    }

    /// The text with every known secret and every credential-shaped value replaced.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.0 {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        scrub_patterns(&out)
    }
}

/// An endpoint's credentials, kept by a stream in case one of its errors needs scrubbing:
/// [`Secrets`] is built from them only then, not for every stream. For an endpoint without
/// credentials it holds nothing.
pub(crate) struct SecretSource {
    api_key: Option<SecretString>,
    bedrock: Option<BedrockAuth>,
}

impl SecretSource {
    pub(crate) fn of(ep: &Endpoint) -> SecretSource {
        SecretSource {
            api_key: ep.api_key.clone(),
            bedrock: match &ep.flavor {
                Flavor::Bedrock(target) => Some(target.auth.clone()),
                _ => None,
            },
        }
    }

    pub(crate) fn secrets(&self) -> Secrets {
        Secrets::from_parts(self.api_key.as_ref(), self.bedrock.as_ref())
    }
}

/// Labels after which a credential follows; `bearer ` takes the token directly, the others
/// take `:` or `=` first (a header line, a query parameter, a JSON field).
const LABELS: &[&str] = &[
    "bearer ",
    "api-key",
    "api_key",
    "x-api-key",
    "x-amz-security-token",
];

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// The safety net for secrets Hearth does not know (another deployment's, a proxy's): any
/// `Bearer <token>` or `api-key: <token>` keeps its label and loses its value.
pub(crate) fn scrub_patterns(text: &str) -> String {
    let bytes = text.as_bytes();
    // ASCII lowercasing keeps every byte offset, so positions in `lower` hold in `text`.
    let lower = text.to_ascii_lowercase();
    let lower = lower.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        let Some(label) = LABELS.iter().find(|l| lower[i..].starts_with(l.as_bytes())) else {
            i += 1;
            continue;
        };
        let mut j = i + label.len();
        let skip = |j: &mut usize, set: &[u8]| {
            while *j < bytes.len() && set.contains(&bytes[*j]) {
                *j += 1;
            }
        };
        if label.ends_with(' ') {
            skip(&mut j, b" ");
        } else {
            skip(&mut j, b"\"' ");
            if j < bytes.len() && matches!(bytes[j], b':' | b'=') {
                j += 1;
                skip(&mut j, b"\"' ");
                // `Bearer` may follow the label (`Authorization: Bearer …` shapes).
                if lower[j..].starts_with(b"bearer ") {
                    j += "bearer ".len();
                    skip(&mut j, b" ");
                }
            } else {
                i = j;
                continue;
            }
        }
        let start = j;
        while j < bytes.len() && is_token(bytes[j]) {
            j += 1;
        }
        if j > start {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = j;
        }
        i = j.max(i + 1);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Timeouts;
    use secrecy::SecretString;
    use std::time::Duration;

    fn ep(key: &str, flavor: Flavor) -> Endpoint {
        Endpoint {
            base_url: "http://h/v1".into(),
            api_key: Some(SecretString::from(key)),
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                first_token: Duration::from_secs(1),
                total: Duration::from_secs(1),
            },
            flavor,
            replicas: None,
        }
    }

    #[test]
    fn known_secrets_go_whole_and_patterns_catch_the_rest() {
        let s = Secrets::of(&ep("sk-live-123456", Flavor::OpenAi));
        assert_eq!(
            s.redact("Incorrect API key provided: sk-live-123456."),
            "Incorrect API key provided: [redacted]."
        );
        assert_eq!(
            s.redact("got Authorization: Bearer other-token-9 here"),
            "got Authorization: Bearer [redacted] here"
        );
        assert_eq!(
            s.redact(r#"{"api-key": "abc/def+="} and api_key=xyz, x-amz-security-token:T0k"#),
            r#"{"api-key": "[redacted]"} and api_key=[redacted], x-amz-security-token:[redacted]"#
        );
        assert_eq!(
            s.redact("check your api_key setting"),
            "check your api_key setting"
        );
        assert_eq!(s.redact("Bearer [redacted]"), "Bearer [redacted]");
        assert_eq!(s.redact("é bearer ünïcode"), "é bearer ünïcode");
    }

    #[test]
    fn bedrock_parts_and_azure_tokens_are_known() {
        let target = crate::bedrock::BedrockTarget {
            region: "us-east-1".into(),
            model_id: "m".into(),
            auth: crate::bedrock_auth_from_key(&SecretString::from(
                "AKIAIOSFODNN7EXAMPLE:secret/part+1:session-token-2",
            )),
        };
        let s = Secrets::of(&ep(
            "AKIAIOSFODNN7EXAMPLE:secret/part+1:session-token-2",
            Flavor::Bedrock(target),
        ));
        let text = s.redact("bad secret/part+1 or session-token-2");
        assert_eq!(text, "bad [redacted] or [redacted]");
        let azure = Secrets::of(&ep(
            "Bearer entra-token-xyz",
            Flavor::Azure {
                deployment: "d".into(),
                api_version: None,
            },
        ));
        assert_eq!(azure.redact("token entra-token-xyz"), "token [redacted]");
    }

    #[test]
    fn a_stream_lists_the_same_secrets_when_it_needs_them() {
        let plain = ep("sk-live-123456", Flavor::OpenAi);
        let text = "key sk-live-123456 refused";
        assert_eq!(
            SecretSource::of(&plain).secrets().redact(text),
            Secrets::of(&plain).redact(text)
        );
        let target = crate::bedrock::BedrockTarget {
            region: "us-east-1".into(),
            model_id: "m".into(),
            auth: crate::bedrock_auth_from_key(&SecretString::from("AKIAEXAMPLE:secret/part+1")),
        };
        let bedrock = ep("AKIAEXAMPLE:secret/part+1", Flavor::Bedrock(target));
        assert_eq!(
            SecretSource::of(&bedrock)
                .secrets()
                .redact("bad secret/part+1"),
            "bad [redacted]"
        );
    }

    #[test]
    fn secrets_are_redacted_before_long_messages_are_cut() {
        let key = "sk-abcdefghij0123456789";
        let secrets = Secrets::of(&ep(key, Flavor::OpenAi));
        // The cut at 500 characters would keep the key's first ten.
        let message = format!("{}{key} is not valid", "a".repeat(490));
        let e = crate::ProviderError::Upstream {
            status: 401,
            message,
            code: None,
            retry_after: None,
        }
        .scrubbed(&secrets);
        let text = e.to_string();
        assert!(!text.contains("sk-abc"), "{text}");
        assert!(text.contains(REDACTED), "{text}");
        assert!(text.ends_with('…'), "{text}");
    }

    proptest::proptest! {
        #[test]
        fn scrubbing_never_panics_and_is_stable(text in "\\PC{0,80}") {
            let once = scrub_patterns(&text);
            proptest::prop_assert_eq!(scrub_patterns(&once), once);
        }
    }
}
