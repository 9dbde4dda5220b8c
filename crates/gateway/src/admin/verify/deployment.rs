//! `hearth verify`'s checks of each deployment: configuration, DNS, TCP, TLS, authentication,
//! the served model list, a 1-token call per kind of bound feature and a completion smoke test
//! in the family's own format — each replica on its own.

use std::collections::BTreeSet;

use hearth_catalog::{Capability, Feature};
use hearth_prompts::{CompletionStyle, PromptBody, completion_prompt};
use hearth_providers::{CallContext, ConnectCause, Endpoint, Flavor, ProviderError, TextRequest};
use hearth_registry::Deployment;

use crate::AppState;
use crate::routing::endpoint_for;

use super::{Check, STEP_TIMEOUT, Status};

/// The capabilities `d` serves for bound features, each with those features' names.
fn bound_capabilities(state: &AppState, d: &Deployment) -> Vec<(Capability, Vec<Feature>)> {
    let features = state.registry.snapshot().features_using(d.id);
    let caps: BTreeSet<u8> = features.iter().map(|f| cap_rank(f.capability())).collect();
    caps.into_iter()
        .map(|r| {
            let cap = cap_from_rank(r);
            (
                cap,
                features
                    .iter()
                    .copied()
                    .filter(|f| f.capability() == cap)
                    .collect(),
            )
        })
        .collect()
}

fn cap_rank(c: Capability) -> u8 {
    match c {
        Capability::CodeCompletion => 0,
        Capability::CodeGeneration => 1,
        Capability::Chat => 2,
    }
}

fn cap_from_rank(r: u8) -> Capability {
    match r {
        0 => Capability::CodeCompletion,
        1 => Capability::CodeGeneration,
        _ => Capability::Chat,
    }
}

fn capped(mut ep: Endpoint) -> Endpoint {
    ep.timeouts.connect = ep.timeouts.connect.min(STEP_TIMEOUT);
    ep.timeouts.first_token = ep.timeouts.first_token.min(STEP_TIMEOUT);
    ep.timeouts.total = ep.timeouts.total.min(STEP_TIMEOUT);
    ep
}

/// Each replica checked as a deployment of its own, labelled `name @ url` when there are
/// several; with the deployment's real name for the fixes.
pub(super) fn replicas_of(d: &Deployment) -> Vec<(Deployment, String)> {
    if d.endpoints.len() < 2 {
        return vec![(d.clone(), d.name.clone())];
    }
    d.endpoints
        .iter()
        .map(|url| {
            let one = Deployment {
                name: format!("{} @ {url}", d.name),
                endpoint: Some(url.clone()),
                endpoints: vec![url.clone()],
                ..d.clone()
            };
            (one, d.name.clone())
        })
        .collect()
}

pub(super) async fn deployment(state: &AppState, d: &Deployment) -> Vec<Check> {
    let name = d.name.as_str();
    let mut checks = Vec::new();
    let check = |step: &str, status: Status, message: String| {
        Check::new("deployment", name, step, status, message)
    };
    let bound = bound_capabilities(state, d);
    let first_cap = bound
        .first()
        .map_or(Capability::CodeCompletion, |(c, _)| *c);
    let ep = match endpoint_for(d, first_cap, &state.cloud) {
        Ok(ep) => capped(ep),
        Err(e) => {
            let fix = match e.code {
                "deployment_key_unreadable" => format!("store the key again: hearth models update {name:?} --api-key-file FILE, or restart with the old HEARTH_SECRET_KEY"),
                "no_aws_credentials" => "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_BEARER_TOKEN_BEDROCK) for hearth serve, or the deployment's API key".into(),
                _ => format!("complete the deployment: hearth models update {name:?} --endpoint URL (or --region for Bedrock)"),
            };
            checks.push(check("configuration", Status::Fail, e.message).fix(fix));
            return checks;
        }
    };
    checks.push(check(
        "configuration",
        Status::Pass,
        format!(
            "{} at {}, model {:?}",
            d.platform.as_str(),
            ep.base_url,
            d.upstream_model()
        ),
    ));

    // DNS and TCP first: their failures are the clearest to tell apart.
    let Ok(url) = reqwest::Url::parse(&ep.base_url) else {
        checks.push(
            check(
                "configuration",
                Status::Fail,
                format!("the endpoint {:?} is not a URL", ep.base_url),
            )
            .fix(format!(
                "hearth models update {name:?} --endpoint http://HOST:PORT/v1"
            )),
        );
        return checks;
    };
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = match tokio::time::timeout(
        ep.timeouts.connect,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
        Ok(Err(e)) => {
            checks.push(check("dns", Status::Fail, format!("the host name {host:?} was not found ({e})"))
                .fix(format!("check the host name in the endpoint (hearth models update {name:?} --endpoint URL) and this machine's DNS")));
            return checks;
        }
        Err(_) => {
            checks.push(
                check(
                    "dns",
                    Status::Fail,
                    format!(
                        "looking up {host:?} took longer than {} ms",
                        ep.timeouts.connect.as_millis()
                    ),
                )
                .fix("check this machine's DNS resolver"),
            );
            return checks;
        }
    };
    let Some(addr) = addrs.first().copied() else {
        checks.push(
            check(
                "dns",
                Status::Fail,
                format!("the host name {host:?} has no address"),
            )
            .fix("check the host name in the endpoint"),
        );
        return checks;
    };
    checks.push(check(
        "dns",
        Status::Pass,
        format!("{host} is {}", addr.ip()),
    ));
    match tokio::time::timeout(ep.timeouts.connect, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => checks.push(check(
            "tcp",
            Status::Pass,
            format!("{addr} accepts connections"),
        )),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            checks.push(check("tcp", Status::Fail, format!("connection refused at {addr} ({e})"))
                .fix("start the model server, or correct the port in the endpoint: is the model server running and listening on that port?"));
            return checks;
        }
        Ok(Err(e)) => {
            checks.push(
                check(
                    "tcp",
                    Status::Fail,
                    format!("cannot connect to {addr}: {e}"),
                )
                .fix(
                    "check that the host is reachable from Hearth (firewall, VPN, security group)",
                ),
            );
            return checks;
        }
        Err(_) => {
            checks.push(
                check(
                    "tcp",
                    Status::Fail,
                    format!(
                        "connecting to {addr} took longer than the connect timeout of {} ms",
                        ep.timeouts.connect.as_millis()
                    ),
                )
                .fix(
                    "check that the host is reachable from Hearth (firewall, VPN, security group)",
                ),
            );
            return checks;
        }
    }

    let https = url.scheme() == "https";
    if matches!(ep.flavor, Flavor::OpenAi) {
        let listed = state.provider.list_models(&ep).await;
        if https {
            checks.push(tls_check(name, listed.as_ref().err()));
        }
        match listed {
            Ok(served) => {
                checks.push(check(
                    "authentication",
                    Status::Pass,
                    "the model server accepted Hearth's request".into(),
                ));
                let want = d.upstream_model();
                if served.iter().any(|s| s == want) {
                    checks.push(check(
                        "served name",
                        Status::Pass,
                        format!(
                            "GET {}/models lists {want:?}",
                            ep.base_url.trim_end_matches('/')
                        ),
                    ));
                } else {
                    checks.push(check("served name", Status::Fail, format!(
                        "the model server does not serve {want:?}; it serves: {}",
                        if served.is_empty() { "nothing".to_string() } else { served.join(", ") }))
                        .fix(format!("register the served name (hearth models update {name:?} --identifier custom_openai/NAME), or start the server with --served-model-name {want}")));
                }
            }
            Err(ProviderError::Upstream {
                status: 404 | 405, ..
            }) => {
                checks.push(check(
                    "served name",
                    Status::Warn,
                    "the model server has no /models route; the served name was not checked".into(),
                ));
            }
            Err(e) => {
                checks.push(failure(name, d, &e));
                return checks;
            }
        }
    }

    let ctx = CallContext {
        request_id: format!("verify-{}", uuid::Uuid::new_v4().simple()),

        affinity: None,
    };
    let runs: Vec<(Capability, String)> = if bound.is_empty() {
        vec![(Capability::CodeCompletion, "no feature bound".to_string())]
    } else {
        bound
            .iter()
            .map(|(c, fs)| {
                (
                    *c,
                    fs.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", "),
                )
            })
            .collect()
    };
    let mut reached = true;
    for (capability, features) in &runs {
        let ep = match endpoint_for(d, *capability, &state.cloud) {
            Ok(ep) => capped(ep),
            Err(e) => {
                checks.push(check("completion", Status::Fail, e.message));
                continue;
            }
        };
        let step = format!("1-token {} ({features})", capability.label());
        match one_token(state, d, *capability, &ep, &ctx).await {
            Ok(what) => checks.push(check(&step, Status::Pass, what)),
            Err(e) => {
                if https && !matches!(ep.flavor, Flavor::OpenAi) {
                    checks.push(tls_check(name, Some(&e)));
                }
                let mut c = failure(name, d, &e);
                c.step = step;
                checks.push(c);
                reached = false;
            }
        }
    }
    if reached && bound.iter().any(|(c, _)| *c == Capability::CodeCompletion) {
        checks.extend(fim_smoke(state, d, &ep, &ctx).await);
    }
    checks
}

fn tls_check(name: &str, error: Option<&ProviderError>) -> Check {
    match error {
        Some(ProviderError::Connect {
            cause: ConnectCause::Tls { certificate: true },
            message,
            ..
        }) => Check::new(
            "deployment",
            name,
            "tls",
            Status::Fail,
            format!("the server's certificate is not trusted: {message}"),
        )
        .fix(
            "add its CA to this machine's trust store, or use the host name the certificate names",
        ),
        Some(ProviderError::Connect {
            cause: ConnectCause::Tls { certificate: false },
            message,
            ..
        }) => Check::new(
            "deployment",
            name,
            "tls",
            Status::Fail,
            format!("the TLS handshake failed: {message}"),
        )
        .fix("check that the server speaks HTTPS on that port, or use http://"),
        _ => Check::new(
            "deployment",
            name,
            "tls",
            Status::Pass,
            "the TLS handshake succeeded and the certificate is trusted".into(),
        ),
    }
}

/// A failed call, with the fix for its cause.
fn failure(name: &str, d: &Deployment, e: &ProviderError) -> Check {
    let (step, fix) = match e {
        ProviderError::Upstream { status: 401 | 403, .. } => ("authentication", match d.platform {
            hearth_registry::DeploymentPlatform::Bedrock => "check the AWS credentials and their Bedrock permissions (bedrock:InvokeModel), and that the model is enabled in that region".to_string(),
            hearth_registry::DeploymentPlatform::AzureOpenai => format!("set the resource's key: hearth models update {name:?} --api-key-file FILE (or AZURE_OPENAI_API_KEY)"),
            hearth_registry::DeploymentPlatform::OpenaiCompatible if d.api_key.is_set() => format!("the model server refused the stored API key; store the one it expects (its --api-key): hearth models update {name:?} --api-key-file FILE"),
            hearth_registry::DeploymentPlatform::OpenaiCompatible => format!("the model server wants an API key and none is stored: hearth models update {name:?} --api-key-file FILE"),
        }),
        ProviderError::Upstream { status: 404, .. } if d.platform == hearth_registry::DeploymentPlatform::AzureOpenai =>
            ("azure deployment", format!("check the deployment name in the identifier (azure/<deployment>) and the --api-version (default {}; v1 for the v1 API)", crate::routing::AZURE_API_VERSION)),
        ProviderError::Upstream { .. } if d.platform == hearth_registry::DeploymentPlatform::Bedrock =>
            ("bedrock", "check the region (--region or AWS_REGION), the model id in the identifier, and that the model is enabled for the account in that region".to_string()),
        ProviderError::Upstream { .. } => ("model server", "check the model server's log for this request".to_string()),
        ProviderError::Connect { .. } => ("connection", "see the message; the endpoint's scheme, host and port must be the model server's".to_string()),
        ProviderError::Timeout { .. } => ("timeout", "the model server is too slow or overloaded; check its load, or raise the deployment's timeouts".to_string()),
        _ => ("protocol", "check that the endpoint is an OpenAI-compatible API (for vLLM it ends in /v1)".to_string()),
    };
    Check::new("deployment", name, step, Status::Fail, e.to_string()).fix(fix)
}

/// The connection check's 1-token request, for work of kind `capability`.
async fn one_token(
    state: &AppState,
    d: &Deployment,
    capability: Capability,
    ep: &Endpoint,
    ctx: &CallContext,
) -> Result<String, ProviderError> {
    let (route, result) = crate::admin::check::one_token(state, d, capability, ep, ctx).await;
    result.map(|_| {
        format!(
            "a 1-token {route} request as {:?} was answered",
            d.upstream_model()
        )
    })
}

const FIM_PREFIX: &str = "def add(a, b):\n    return ";
const FIM_SUFFIX: &str = "\n\n\nprint(add(1, 2))\n";

/// A short code completion in the family's own prompt format; a server that answers with the
/// prompt (a template or FIM tokens it does not know) serves garbage to every IDE.
async fn fim_smoke(
    state: &AppState,
    d: &Deployment,
    ep: &Endpoint,
    ctx: &CallContext,
) -> Vec<Check> {
    let name = d.name.as_str();
    let prompt = completion_prompt(d.family, FIM_PREFIX, FIM_SUFFIX, Some("python"), Some(16));
    let step = match prompt.style {
        CompletionStyle::FillInTheMiddle => "fim smoke test",
        _ => "completion smoke test",
    };
    let PromptBody::Text(text) = prompt.body else {
        return Vec::new();
    };
    let req = TextRequest {
        model: d.upstream_model().to_string(),
        prompt: text.clone(),
        max_tokens: 16,
        temperature: Some(0.0),
        stop: prompt.stops.clone().into(),
        ..Default::default()
    };
    let reply = match state.provider.complete(ep, &req, ctx).await {
        Ok(r) => r,
        Err(e) => {
            let mut c = failure(name, d, &e);
            c.step = step.into();
            return vec![c];
        }
    };
    let answer = reply.text.trim();
    let echoed = !answer.is_empty()
        && ((answer.len() >= 8 && text.trim().starts_with(answer))
            || answer.starts_with(text.trim())
            || answer.contains(FIM_PREFIX.trim()));
    let check = if echoed {
        Check::new("deployment", name, step, Status::Fail, format!("the model server answered with the prompt itself ({:?})", short(answer)))
            .fix("serve the model with its own tokenizer and no chat template on /completions (vLLM: the model's repository, not a chat-only build), and check the deployment's family")
    } else if answer.is_empty() {
        Check::new("deployment", name, step, Status::Warn, "the model answered a code completion with nothing".into())
            .fix("try it from an IDE; an empty answer to every completion means the family or the served model is wrong")
    } else {
        Check::new(
            "deployment",
            name,
            step,
            Status::Pass,
            format!("answered {:?}", short(answer)),
        )
    };
    vec![check]
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}
