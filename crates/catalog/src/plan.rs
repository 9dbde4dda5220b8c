//! `hearth plan`: will a model fit this hardware, and exactly how to serve and register it.

use serde::Serialize;

use crate::family::{Family, ReleaseStatus};
use crate::hardware::{GPUS, Gpu, Requirement, RequirementBasis, requirement_at};
use crate::models::{CatalogError, Model, Platform, Precision, find_model};

/// The GPUs a plan is checked against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hardware {
    pub gpu: Gpu,
    /// `None`: work out how many of `gpu` the model needs.
    pub count: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct PlanRequest<'a> {
    pub model: &'a str,
    pub hardware: Option<Hardware>,
    pub served_name: Option<&'a str>,
    pub host: Option<&'a str>,
    pub model_dir: Option<&'a str>,
    /// Weights at this precision instead of the checkpoint's (`--precision fp8`).
    pub precision: Option<Precision>,
}

/// What to enter in Hearth once the model server runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Registration {
    pub family: Family,
    pub endpoint: Option<String>,
    pub identifier: String,
    pub command: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub model: &'static Model,
    pub requirement: Option<Requirement>,
    /// `None` when no hardware was given, or for cloud-only models.
    pub fits: Option<bool>,
    pub verdict: String,
    pub tensor_parallel_size: Option<u32>,
    pub setup: Vec<String>,
    pub vllm_command: Option<String>,
    pub register: Registration,
    pub notes: Vec<String>,
    /// The precision the weights are sized at.
    pub precision: Option<Precision>,
}

/// vLLM's port when `--port` is not given; GitLab's docs assume it.
const VLLM_PORT: u16 = 8000;
const MIN_VLLM: &str = "0.6.4.post1";
/// Tensor parallelism within one node: vLLM's common sizes.
const TP_SIZES: [u32; 4] = [1, 2, 4, 8];

pub fn plan(req: &PlanRequest<'_>) -> Result<Plan, CatalogError> {
    let model = find_model(req.model)?;
    let served = req.served_name.unwrap_or(model.repo_name()).to_string();
    let host = req.host.unwrap_or("localhost");
    let mut notes = Vec::new();
    if model.family.status() == ReleaseStatus::Beta {
        notes.push(format!(
            "{} is a beta family: turn on beta models first (`hearth settings set beta_models_enabled true`)",
            model.family.display_name()
        ));
    }
    if let Some(d) = model.deprecated {
        notes.push(deprecation_note(d));
    }
    if let Some(s) = model.shape
        && let Some(active) = s.active_params_billion
    {
        notes.push(format!(
            "mixture of experts: {active} B of its {} B parameters work per token, so it generates about as fast as a {active} B dense model, but all {} B must sit in GPU memory",
            s.params_billion, s.params_billion
        ));
    }
    if !model.serves_on(Platform::Vllm) {
        return Ok(cloud_plan(model, req, served, notes));
    }
    let checkpoint = model.shape.map_or(Precision::Bf16, |s| s.precision);
    let precision = req.precision.unwrap_or(checkpoint);
    if precision != checkpoint && !(checkpoint == Precision::Bf16 && precision != Precision::Mxfp4)
    {
        return Err(CatalogError::Precision {
            model: model.id,
            why: format!(
                "its checkpoint is {}; Hearth sizes {} models at bf16, FP8 or AWQ-INT4 only from a bf16 checkpoint",
                checkpoint.label(),
                model.name
            ),
        });
    }
    // Every vLLM model in the catalog has a shape, so it has a requirement.
    let Some(need) = requirement_at(model, precision) else {
        return Ok(cloud_plan(model, req, served, notes));
    };
    let heads = model.shape.map_or(1, |s| s.attention_heads);
    let min_count = |gpu: &Gpu| {
        TP_SIZES
            .into_iter()
            .find(|&t| heads % t == 0 && t * gpu.vram_gb >= need.min_vram_gb)
    };
    let need_text = match &need.basis {
        RequirementBasis::GitlabTable {
            min_gpu_config,
            size_class,
        } => format!(
            "needs {} GB of GPU memory (GitLab's table for {size_class}; the table's minimum configuration, {min_gpu_config}, is the smallest GitLab tested, not a memory floor: GPUs with {} GB in total serve it with less room for long prompts and concurrent requests)",
            need.min_vram_gb, need.min_vram_gb
        ),
        RequirementBasis::Estimate { explanation, .. } => {
            format!(
                "needs about {} GB of GPU memory ({explanation})",
                need.min_vram_gb
            )
        }
    };

    let (fits, tp, verdict) = match req.hardware {
        None => {
            let (count, gpu) = match &need.basis {
                RequirementBasis::GitlabTable { min_gpu_config, .. } => {
                    table_config(min_gpu_config)
                }
                RequirementBasis::Estimate { .. } => {
                    let a100 = GPUS[1];
                    (min_count(&a100).unwrap_or(8), a100)
                }
            };
            let verdict = format!(
                "{} {need_text}; e.g. {count} x {} ({} GB each). Pass --gpu/--count or --vram-gb to check your hardware",
                model.name, gpu.name, gpu.vram_gb
            );
            (None, Some(count), verdict)
        }
        Some(Hardware { gpu, count: None }) => match min_count(&gpu) {
            Some(t) => (
                Some(true),
                Some(t),
                format!(
                    "fits on {t} x {} ({} GB): {} {need_text}",
                    gpu.name,
                    t * gpu.vram_gb,
                    model.name
                ),
            ),
            None => (
                Some(false),
                None,
                format!(
                    "does not fit on one node of up to 8 x {} ({} GB): {} {need_text}",
                    gpu.name,
                    8 * gpu.vram_gb,
                    model.name
                ),
            ),
        },
        Some(Hardware {
            gpu,
            count: Some(n),
        }) => {
            let available = n * gpu.vram_gb;
            if available >= need.min_vram_gb {
                let t = (1..=n)
                    .rev()
                    .find(|&t| heads % t == 0 && t * gpu.vram_gb >= need.min_vram_gb)
                    .unwrap_or(n);
                if t < n {
                    notes.push(format!(
                        "the tensor-parallel size must divide the model's {heads} attention heads, so {t} of the {n} GPUs serve it"
                    ));
                }
                if heads % t != 0 {
                    (
                        Some(false),
                        None,
                        format!(
                            "does not fit: no GPU count up to {n} divides the model's {heads} attention heads and holds {} GB",
                            need.min_vram_gb
                        ),
                    )
                } else {
                    (
                        Some(true),
                        Some(t),
                        format!(
                            "fits: {n} x {} = {available} GB >= {} GB; {} {need_text}",
                            gpu.name, need.min_vram_gb, model.name
                        ),
                    )
                }
            } else {
                let hint = match min_count(&gpu) {
                    Some(k) => format!("use {k} x {}", gpu.name),
                    None => format!(
                        "even 8 x {} is not enough on one node; pick larger GPUs",
                        gpu.name
                    ),
                };
                (
                    Some(false),
                    min_count(&gpu),
                    format!(
                        "does not fit: {n} x {} = {available} GB < {} GB; {} {need_text}; {hint}",
                        gpu.name, need.min_vram_gb, model.name
                    ),
                )
            }
        }
    };

    let dir = req.model_dir.unwrap_or("/models").trim_end_matches('/');
    let path = format!("{dir}/{}", model.repo_name());
    let min_vllm = model.serve.min_vllm.unwrap_or(MIN_VLLM);
    let mut setup = vec![
        format!("pip install 'vllm>={min_vllm}'"),
        "pip install -U 'huggingface_hub[cli]'".to_string(),
        format!(
            "huggingface-cli download {} --local-dir {path}",
            model.public_id
        ),
    ];
    let mut args = vec![
        format!("vllm serve {path}"),
        format!("--served_model_name {served}"),
    ];
    match launch_format(model) {
        LaunchFormat::MistralNative => {
            args.push("--tokenizer_mode mistral".into());
            args.push("--load_format mistral".into());
            args.push("--config_format mistral".into());
            args.push(format!("--tokenizer {path}"));
        }
        LaunchFormat::Mixtral => {
            setup.push(format!(
                "cp {path}/tokenizer.model {path}/tokenizer.model.v3"
            ));
            args.push("--tokenizer_mode mistral".into());
            args.push("--load_format safetensors".into());
            args.push(format!("--tokenizer {path}/"));
        }
        LaunchFormat::HuggingFace => {}
    }
    let serve = model.serve;
    if let Some(parser) = serve.tool_parser {
        args.push("--enable_auto_tool_choice".into());
        args.push(format!("--tool_call_parser {parser}"));
    }
    if let Some(template) = serve.chat_template {
        args.push(format!("--chat_template {template}"));
        notes.push(format!(
            "{template} is in the vLLM source tree (github.com/vllm-project/vllm); copy it next to the model or give its full path"
        ));
    }
    if let Some(len) = serve.max_model_len {
        args.push(format!("--max_model_len {len}"));
        notes.push(format!(
            "--max_model_len {len} keeps vLLM's KV cache to what the sizing counts; a longer window needs more GPU memory"
        ));
    }
    args.extend(serve.extra.iter().map(|e| e.to_string()));
    match precision {
        _ if precision == checkpoint => {}
        Precision::Fp8 => {
            args.push("--quantization fp8".into());
            notes.push(format!(
                "FP8: vLLM quantizes the bf16 weights to FP8 as it loads them (`--quantization fp8`, GPUs with FP8 support: Ada, Hopper or later); with a published FP8 checkpoint of {} instead, download that and drop the flag: vLLM reads the quantization from its config.json",
                model.name
            ));
        }
        Precision::AwqInt4 => notes.push(format!(
            "AWQ-INT4: download an AWQ-INT4 checkpoint of {} instead of {} (its config.json has quant_method awq, bits 4, group_size 128) and serve that directory; vLLM reads the quantization from it. The estimate counts every parameter at 4 + 20/128 bits: AWQ leaves the embeddings and the output layer at 16 bits, a few GB more for large vocabularies",
            model.name, model.public_id
        )),
        Precision::Bf16 | Precision::Mxfp4 => {}
    }
    if let Some(t) = tp {
        args.push(format!("--tensor_parallel_size {t}"));
    }
    args.push(format!("--host 0.0.0.0 --port {VLLM_PORT}"));
    notes.push(format!(
        "vLLM {min_vllm} or later is required; gated Hugging Face repositories need `huggingface-cli login` (or HF_TOKEN) before the download; with `git clone` instead, install git-lfs first (`git lfs install`) or only pointer files arrive"
    ));

    let endpoint = format!("http://{host}:{VLLM_PORT}/v1");
    let identifier = format!("custom_openai/{served}");
    let command = format!(
        "hearth models add --name {} --family {} --endpoint {endpoint} --identifier {identifier} --model {}",
        shell_word(&served),
        model.family,
        model.id
    );
    Ok(Plan {
        model,
        requirement: Some(need),
        fits,
        verdict,
        tensor_parallel_size: tp,
        setup,
        vllm_command: Some(args.join(" \\\n    ")),
        register: Registration {
            family: model.family,
            endpoint: Some(endpoint),
            identifier,
            command,
        },
        notes,
        precision: Some(precision),
    })
}

/// A sizing for a model the catalog does not hold, from its parameter count alone: bf16
/// weights plus a fifth for KV cache and runtime, at vLLM's 90 % GPU memory use.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FamilyEstimate {
    pub family: Family,
    pub params_billion: f64,
    pub min_vram_gb: u32,
    pub explanation: String,
}

/// For a query like `starcoder2-15b` or `Qwen/Qwen2.5-Coder-7B-Instruct`: a family without
/// catalog models, and a size in the name. `Err` says what is missing; `Ok(None)` when the
/// query names no such family.
pub fn estimate_unlisted(query: &str) -> Result<Option<FamilyEstimate>, String> {
    let Some(family) = Family::named_in(query).filter(|f| f.models().next().is_none()) else {
        return Ok(None);
    };
    let Some(params_billion) = params_in(query) else {
        return Err(format!(
            "the catalog has no {} model, so GitLab has not rated one; name its size for an estimate, e.g. `hearth plan {}-15b --gpu L4`",
            family.display_name(),
            family.as_str()
        ));
    };
    let weights = params_billion * 2.0;
    let min_vram_gb = (weights * 1.2 / 0.9).ceil() as u32;
    Ok(Some(FamilyEstimate {
        family,
        params_billion,
        min_vram_gb,
        explanation: format!(
            "estimate from the name's size only: weights {weights:.1} GB ({params_billion} B params x 2 bytes, bf16) + 20% for KV cache and runtime, at vLLM's 90% GPU memory use"
        ),
    }))
}

/// `15b`, `7B`, `1.5b` in a model name, as billions of parameters.
fn params_in(query: &str) -> Option<f64> {
    query
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .rev()
        .find_map(|word| {
            let digits = word.strip_suffix('b').or_else(|| word.strip_suffix('B'))?;
            digits
                .parse::<f64>()
                .ok()
                .filter(|n| *n > 0.0 && *n < 2000.0)
        })
}

enum LaunchFormat {
    /// Repos that ship Mistral's own `consolidated.safetensors` + `params.json`.
    MistralNative,
    /// GitLab's Mixtral recipe: safetensors weights with Mistral's v3 tokenizer file.
    Mixtral,
    HuggingFace,
}

fn launch_format(model: &Model) -> LaunchFormat {
    if model.serve.mistral_format {
        return LaunchFormat::MistralNative;
    }
    match model.family {
        Family::Mixtral => LaunchFormat::Mixtral,
        Family::Codestral => LaunchFormat::MistralNative,
        Family::Mistral if model.public_id.ends_with("v0.3") => LaunchFormat::MistralNative,
        _ => LaunchFormat::HuggingFace,
    }
}

/// Reads "2x NVIDIA A100 (80GB)" back into a count and a GPU.
fn table_config(config: &str) -> (u32, Gpu) {
    let count = config
        .split('x')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1);
    let gpu = if config.contains("40GB") {
        GPUS[0]
    } else {
        GPUS[1]
    };
    (count, gpu)
}

fn cloud_plan(
    model: &'static Model,
    req: &PlanRequest<'_>,
    served: String,
    mut notes: Vec<String>,
) -> Plan {
    if req.hardware.is_some() {
        notes.push(
            "GPU options are ignored: this model runs in the cloud provider's account".into(),
        );
    }
    let (endpoint, identifier, extra) = if model.serves_on(Platform::Bedrock) {
        let id = model.bedrock_id.unwrap_or(model.public_id);
        (None, format!("bedrock/{id}"), String::new())
    } else {
        let deployment = req.served_name.unwrap_or(model.public_id);
        (
            Some("https://<resource>.openai.azure.com".to_string()),
            format!("azure/{deployment}"),
            " --endpoint https://<resource>.openai.azure.com".to_string(),
        )
    };
    if model.serves_on(Platform::Bedrock) && model.source == crate::Source::CurrentPage {
        notes.push(format!(
            "newer Bedrock models are often callable only through a cross-region inference profile: if Bedrock refuses the plain id, register bedrock/us.{} (or your region's prefix)",
            model.bedrock_id.unwrap_or(model.public_id)
        ));
    }
    let platforms: Vec<&str> = model.platforms.iter().map(|p| p.label()).collect();
    let command = format!(
        "hearth models add --name {} --family {}{extra} --identifier {identifier} --model {}",
        shell_word(&served),
        model.family,
        model.id
    );
    Plan {
        model,
        requirement: None,
        fits: None,
        verdict: format!(
            "{} runs on {}: no GPUs of yours to size",
            model.name,
            platforms.join(", ")
        ),
        tensor_parallel_size: None,
        setup: Vec::new(),
        vllm_command: None,
        register: Registration {
            family: model.family,
            endpoint,
            identifier,
            command,
        },
        notes,
        precision: None,
    }
}

pub(crate) fn deprecation_note(d: crate::Deprecation) -> String {
    format!(
        "deprecated by GitLab in {} (end of support in {}): it still works, but GitLab no longer supports it; GitLab points to {} instead",
        d.since, d.end_of_support, d.replacement
    )
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::find_gpu;

    fn plan_for(model: &str, gpu: Option<(&str, Option<u32>)>) -> Plan {
        plan(&PlanRequest {
            model,
            hardware: gpu.map(|(g, count)| Hardware {
                gpu: find_gpu(g).unwrap(),
                count,
            }),
            served_name: None,
            host: Some("gpu1.internal"),
            model_dir: None,
            precision: None,
        })
        .unwrap()
    }

    #[test]
    fn mistral_7b_uses_the_mistral_formats() {
        let p = plan_for("mistral-7b-instruct-v0.3", Some(("a100-40gb", Some(1))));
        assert_eq!(p.fits, Some(true));
        assert_eq!(p.tensor_parallel_size, Some(1));
        assert_eq!(
            p.vllm_command.as_deref().unwrap(),
            "vllm serve /models/Mistral-7B-Instruct-v0.3 \\\n    \
             --served_model_name Mistral-7B-Instruct-v0.3 \\\n    \
             --tokenizer_mode mistral \\\n    --load_format mistral \\\n    \
             --config_format mistral \\\n    --tokenizer /models/Mistral-7B-Instruct-v0.3 \\\n    \
             --tensor_parallel_size 1 \\\n    --host 0.0.0.0 --port 8000"
        );
        assert_eq!(
            p.register.endpoint.as_deref(),
            Some("http://gpu1.internal:8000/v1")
        );
        assert_eq!(
            p.register.identifier,
            "custom_openai/Mistral-7B-Instruct-v0.3"
        );
        assert!(p.setup[0].contains("vllm>=0.6.4.post1"));
    }

    #[test]
    fn mixtral_copies_the_tokenizer_and_loads_safetensors() {
        let p = plan_for("mixtral-8x7b-instruct-v0.1", Some(("a100-80gb", Some(2))));
        assert_eq!(p.fits, Some(true));
        assert_eq!(p.tensor_parallel_size, Some(2));
        assert!(p.setup.iter().any(|s| s
            == "cp /models/Mixtral-8x7B-Instruct-v0.1/tokenizer.model /models/Mixtral-8x7B-Instruct-v0.1/tokenizer.model.v3"));
        let cmd = p.vllm_command.unwrap();
        assert!(cmd.contains("--load_format safetensors"));
        assert!(cmd.contains("--tokenizer_mode mistral"));
        assert!(!cmd.contains("--config_format"));
    }

    #[test]
    fn too_little_memory_says_why_and_what_would_fit() {
        let p = plan_for("codestral", Some(("a100-80gb", Some(1))));
        assert_eq!(p.fits, Some(false));
        assert!(p.verdict.contains("80 GB < 90 GB"), "{}", p.verdict);
        assert!(p.verdict.contains("use 2 x A100-80GB"), "{}", p.verdict);
        assert_eq!(p.tensor_parallel_size, Some(2));
    }

    #[test]
    fn mixtral_8x22b_needs_a_full_node() {
        let p = plan_for("mixtral-8x22b-instruct-v0.1", Some(("a100-80gb", None)));
        assert_eq!(p.fits, Some(true));
        assert_eq!(p.tensor_parallel_size, Some(4));
        let small = plan_for("mixtral-8x22b-instruct-v0.1", Some(("l4", None)));
        assert_eq!(small.fits, Some(false));
    }

    #[test]
    fn tensor_parallel_size_divides_attention_heads() {
        // Code Llama 13B has 40 heads: 3 GPUs cannot split it, so 2 serve it.
        let p = plan_for("codellama-13b-instruct", Some(("l40s", Some(3))));
        assert_eq!(p.fits, Some(true));
        assert_eq!(p.tensor_parallel_size, Some(2));
        assert!(p.notes.iter().any(|n| n.contains("40 attention heads")));
        assert!(p.verdict.contains("estimate"), "{}", p.verdict);
        assert!(p.notes.iter().any(|n| n.contains("beta family")));
    }

    #[test]
    fn other_families_use_plain_hugging_face_flags() {
        for id in [
            "codegemma-2b",
            "deepseek-coder-33b-instruct",
            "mistral-7b-instruct-v0.2",
        ] {
            let cmd = plan_for(id, None).vllm_command.unwrap();
            assert!(!cmd.contains("--tokenizer_mode"), "{id}: {cmd}");
            assert!(cmd.contains("--tensor_parallel_size"), "{id}: {cmd}");
        }
    }

    #[test]
    fn cloud_models_get_their_identifier_and_no_vllm_command() {
        let claude = plan_for("claude-3.5-sonnet", Some(("a100-80gb", Some(1))));
        assert_eq!(claude.vllm_command, None);
        assert_eq!(
            claude.register.identifier,
            "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0"
        );
        assert!(claude.notes.iter().any(|n| n.contains("ignored")));
        let gpt = plan_for("gpt-4o", None);
        assert_eq!(gpt.register.identifier, "azure/gpt-4o");
        assert!(gpt.register.endpoint.unwrap().contains("openai.azure.com"));
    }

    #[test]
    fn served_name_flows_into_command_and_identifier() {
        let p = plan(&PlanRequest {
            model: "codestral",
            served_name: Some("codestral"),
            ..Default::default()
        })
        .unwrap();
        assert!(
            p.vllm_command
                .unwrap()
                .contains("--served_model_name codestral")
        );
        assert_eq!(p.register.identifier, "custom_openai/codestral");
        assert_eq!(
            p.register.endpoint.as_deref(),
            Some("http://localhost:8000/v1")
        );
        assert_eq!(p.tensor_parallel_size, Some(2));
    }

    #[test]
    fn families_without_catalog_models_get_an_estimate() {
        let e = estimate_unlisted("starcoder2-15b").unwrap().unwrap();
        assert_eq!(e.family, Family::Starcoder2);
        assert_eq!(e.params_billion, 15.0);
        assert_eq!(e.min_vram_gb, 40, "30 GB of weights x 1.2 / 0.9");
        let q = estimate_unlisted("Qwen/Qwen2.5-Coder-7B-Instruct")
            .unwrap()
            .unwrap();
        assert_eq!((q.family, q.params_billion), (Family::Qwen, 7.0));
        let missing = estimate_unlisted("starcoder2").unwrap_err();
        assert!(missing.contains("starcoder2-15b"), "{missing}");
        assert_eq!(estimate_unlisted("codestral-22b").unwrap(), None);
    }

    #[test]
    fn the_gitlab_minimum_is_explained_beside_a_smaller_fit() {
        let p = plan_for("mistral-7b-instruct-v0.3", Some(("L4", None)));
        assert_eq!(p.fits, Some(true));
        assert!(
            p.verdict.contains("fits on 1 x L4")
                && p.verdict
                    .contains("smallest GitLab tested, not a memory floor"),
            "{}",
            p.verdict
        );
        assert!(
            p.setup
                .iter()
                .any(|s| s.starts_with("huggingface-cli download mistralai/")),
            "{:?}",
            p.setup
        );
    }

    #[test]
    fn mistral_small_loads_mistral_format_with_its_tool_parser() {
        let p = plan_for("mistral-small-24b-instruct-2506", Some(("a100-80gb", None)));
        assert_eq!((p.fits, p.tensor_parallel_size), (Some(true), Some(1)));
        let cmd = p.vllm_command.unwrap();
        for flag in [
            "--tokenizer_mode mistral",
            "--config_format mistral",
            "--load_format mistral",
            "--enable_auto_tool_choice",
            "--tool_call_parser mistral",
            "--max_model_len 16384",
        ] {
            assert!(cmd.contains(flag), "{flag}: {cmd}");
        }
        assert!(p.setup[0].contains("vllm>=0.9.1"), "{:?}", p.setup);
    }

    #[test]
    fn llama_31_gets_the_json_tool_template_and_llama_3_does_not() {
        let p = plan_for("llama-3.3-70b-instruct", Some(("a100-80gb", None)));
        assert_eq!(
            p.tensor_parallel_size,
            Some(4),
            "180 GB: 3 cards cannot split 64 heads"
        );
        let cmd = p.vllm_command.unwrap();
        assert!(cmd.contains("--tool_call_parser llama3_json"), "{cmd}");
        assert!(
            cmd.contains("--chat_template examples/tool_chat_template_llama3.1_json.jinja"),
            "{cmd}"
        );
        let old = plan_for("llama-3-8b-instruct", None).vllm_command.unwrap();
        assert!(!old.contains("--tool_call_parser"), "{old}");
        assert!(!old.contains("--max_model_len"), "8k window already: {old}");
    }

    #[test]
    fn gpt_oss_fits_one_card_and_says_it_is_a_mixture_of_experts() {
        let p = plan_for("gpt-oss-120b", Some(("h100-80gb", None)));
        assert_eq!((p.fits, p.tensor_parallel_size), (Some(true), Some(1)));
        assert!(p.setup[0].contains("vllm>=0.10.1"), "{:?}", p.setup);
        assert!(
            p.vllm_command
                .unwrap()
                .contains("--tool_call_parser openai")
        );
        assert!(
            p.notes.iter().any(|n| n.contains("5.1 B of its 116.8 B")),
            "{:?}",
            p.notes
        );
        let small = plan_for("gpt-oss-20b", Some(("l4", None)));
        assert_eq!(small.fits, Some(true));
    }

    #[test]
    fn deprecated_models_say_so_and_name_the_replacement() {
        let p = plan_for("mixtral-8x7b-instruct-v0.1", None);
        assert!(
            p.notes.iter().any(|n| n
                .contains("deprecated by GitLab in 18.3 (end of support in 18.6)")
                && n.contains("mistral-small-24b-instruct-2506")),
            "{:?}",
            p.notes
        );
        assert!(
            !plan_for("codestral", None)
                .notes
                .iter()
                .any(|n| n.contains("deprecated"))
        );
    }

    #[test]
    fn precision_changes_the_sizing_and_the_launch() {
        let at = |model: &str, precision| {
            plan(&PlanRequest {
                model,
                hardware: Some(Hardware {
                    gpu: find_gpu("a100-80gb").unwrap(),
                    count: None,
                }),
                precision: Some(precision),
                ..Default::default()
            })
        };
        // Llama 3.3 70B: 180 GB at bf16 (4 cards), 93 GB at FP8 (2), 52 GB at AWQ-INT4 (1).
        let fp8 = at("llama-3.3-70b-instruct", Precision::Fp8).unwrap();
        assert_eq!(fp8.tensor_parallel_size, Some(2));
        assert_eq!(fp8.requirement.as_ref().unwrap().min_vram_gb, 93);
        assert!(fp8.vllm_command.unwrap().contains("--quantization fp8"));
        assert_eq!(fp8.precision, Some(Precision::Fp8));
        let awq = at("llama-3.3-70b-instruct", Precision::AwqInt4).unwrap();
        assert_eq!(awq.tensor_parallel_size, Some(1));
        assert!(!awq.vllm_command.unwrap().contains("--quantization"));
        assert!(awq.notes.iter().any(|n| n.contains("AWQ-INT4 checkpoint")));
        // Mistral Small at FP8, the variant Mistral's page names: one 80 GB card, 33 GB.
        let small = at("mistral-small-24b-instruct-2506", Precision::Fp8).unwrap();
        assert_eq!(small.requirement.unwrap().min_vram_gb, 33);
        // gpt-oss ships MXFP4: no other precision is offered.
        let err = at("gpt-oss-20b", Precision::Fp8).unwrap_err().to_string();
        assert!(err.contains("MXFP4"), "{err}");
        // The checkpoint's own precision changes nothing.
        let same = at("llama-3.3-70b-instruct", Precision::Bf16).unwrap();
        assert!(!same.vllm_command.unwrap().contains("--quantization"));
    }

    #[test]
    fn newer_bedrock_models_mention_inference_profiles() {
        let p = plan_for("claude-4.5-sonnet", None);
        assert_eq!(
            p.register.identifier,
            "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("bedrock/us.anthropic.claude-sonnet-4-5")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn unknown_model_lists_the_closest() {
        let err = plan(&PlanRequest {
            model: "codestrall-22b",
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("codestral-22b-v0.1"), "{err}");
    }
}
