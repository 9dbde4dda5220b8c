//! Hardware needs: GitLab's base-system and GPU tables, and a labelled estimate for the sizes
//! those tables leave out.

use serde::Serialize;

use crate::models::{Model, ModelShape, Precision, Source};

/// The base system every on-premise model server needs (seed 000, "Base system requirements").
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BaseSystem {
    pub cpu_min: &'static str,
    pub cpu_recommended: &'static str,
    pub ram_min_gb: u32,
    pub ram_recommended_gb: u32,
    pub storage: &'static str,
}

pub const BASE_SYSTEM: BaseSystem = BaseSystem {
    cpu_min: "8 cores (16 threads)",
    cpu_recommended: "16+ cores for production",
    ram_min_gb: 32,
    ram_recommended_gb: 64,
    storage: "SSD with room for the model weights and data",
};

/// A GPU model people can name on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Gpu {
    pub name: &'static str,
    pub vram_gb: u32,
}

/// GPUs `hearth plan --gpu` knows. Memory is the card's usable HBM/GDDR size.
pub static GPUS: &[Gpu] = &[
    Gpu {
        name: "A100-40GB",
        vram_gb: 40,
    },
    Gpu {
        name: "A100-80GB",
        vram_gb: 80,
    },
    Gpu {
        name: "H100-80GB",
        vram_gb: 80,
    },
    Gpu {
        name: "H100-NVL",
        vram_gb: 94,
    },
    Gpu {
        name: "H200",
        vram_gb: 141,
    },
    Gpu {
        name: "B200",
        vram_gb: 180,
    },
    Gpu {
        name: "L40S",
        vram_gb: 48,
    },
    Gpu {
        name: "L40",
        vram_gb: 48,
    },
    Gpu {
        name: "L4",
        vram_gb: 24,
    },
    Gpu {
        name: "A10G",
        vram_gb: 24,
    },
    Gpu {
        name: "A10",
        vram_gb: 24,
    },
    Gpu {
        name: "A6000",
        vram_gb: 48,
    },
    Gpu {
        name: "RTX-4090",
        vram_gb: 24,
    },
    Gpu {
        name: "V100-16GB",
        vram_gb: 16,
    },
    Gpu {
        name: "V100-32GB",
        vram_gb: 32,
    },
    Gpu {
        name: "T4",
        vram_gb: 16,
    },
    Gpu {
        name: "MI300X",
        vram_gb: 192,
    },
];

fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .flat_map(|c| c.to_lowercase())
        .collect()
}

/// Finds a GPU by name, ignoring case and punctuation (`a100 80gb`, `A100-80GB`, `h100`).
/// A name that matches several cards (`a100`) is an error naming them.
pub fn find_gpu(name: &str) -> Result<Gpu, String> {
    let q = fold(name);
    if let Some(g) = GPUS.iter().find(|g| fold(g.name) == q) {
        return Ok(*g);
    }
    let prefixed: Vec<&Gpu> = GPUS
        .iter()
        .filter(|g| fold(g.name).starts_with(&q))
        .collect();
    match prefixed.as_slice() {
        [one] => Ok(**one),
        [] => Err(format!(
            "unknown GPU {name:?}; known: {} (or give --vram-gb)",
            GPUS.iter().map(|g| g.name).collect::<Vec<_>>().join(", ")
        )),
        many => Err(format!(
            "GPU {name:?} is ambiguous: {}",
            many.iter().map(|g| g.name).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Where a memory figure comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RequirementBasis {
    /// GitLab's GPU table covers this size.
    GitlabTable {
        size_class: &'static str,
        min_gpu_config: &'static str,
    },
    /// No table row: weights + KV cache + headroom, computed from the model's shape.
    Estimate {
        weights_gb: f64,
        kv_cache_gb: f64,
        kv_cache_tokens: u32,
        explanation: String,
    },
}

/// The minimum GPU memory a model needs on vLLM.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Requirement {
    pub min_vram_gb: u32,
    pub basis: RequirementBasis,
}

impl Requirement {
    pub fn is_estimate(&self) -> bool {
        matches!(self.basis, RequirementBasis::Estimate { .. })
    }
}

/// Bytes per KV-cache element: vLLM keeps the cache in the model's activation dtype (bf16)
/// whatever the weights' precision.
const KV_BYTES: f64 = 2.0;
/// The estimate keeps one full sequence of KV cache, capped here: vLLM refuses to start when
/// even one `max_model_len` sequence does not fit.
const KV_TOKENS_CAP: u32 = 16_384;
/// Activations, CUDA graphs and fragmentation on top of weights and cache.
const RUNTIME_OVERHEAD: f64 = 0.10;
/// vLLM claims 90 % of each GPU by default (`--gpu-memory-utilization 0.9`).
const GPU_MEMORY_UTILIZATION: f64 = 0.9;

/// The GPU table of the supported-models page. Only the seed rows use it: GitLab's table
/// names sizes (7B, 22B, Mixtral), and reading Llama 3 8B or Mistral Small 24B into those
/// classes would pass off a guess as GitLab's figure.
fn table_row(model: &Model) -> Option<(&'static str, &'static str, u32)> {
    if model.source == Source::CurrentPage {
        return None;
    }
    let shape = model.shape?;
    match model.family {
        crate::Family::Mixtral if shape.params_billion > 100.0 => {
            Some(("Mixtral 8x22B", "8x NVIDIA A100 (80GB)", 300))
        }
        crate::Family::Mixtral => Some(("Mixtral 8x7B", "2x NVIDIA A100 (80GB)", 100)),
        crate::Family::Codestral => Some(("22B models", "2x NVIDIA A100 (80GB)", 90)),
        _ if (7.0..9.0).contains(&shape.params_billion) => {
            Some(("7B models", "1x NVIDIA A100 (40GB)", 24))
        }
        _ => None,
    }
}

fn estimate(shape: &ModelShape) -> Requirement {
    let weights_gb = f64::from(shape.params_billion) * shape.precision.bytes_per_param();
    let tokens = shape.context_tokens.min(KV_TOKENS_CAP);
    // K and V, per layer, per KV head, per head dimension, at bf16.
    let kv_bytes_per_token = 2.0
        * f64::from(shape.layers)
        * f64::from(shape.kv_heads)
        * f64::from(shape.head_dim)
        * KV_BYTES;
    let kv_cache_gb = kv_bytes_per_token * f64::from(tokens) / 1e9;
    let total = (weights_gb + kv_cache_gb) * (1.0 + RUNTIME_OVERHEAD) / GPU_MEMORY_UTILIZATION;
    let min_vram_gb = total.ceil() as u32;
    Requirement {
        min_vram_gb,
        basis: RequirementBasis::Estimate {
            weights_gb: round1(weights_gb),
            kv_cache_gb: round1(kv_cache_gb),
            kv_cache_tokens: tokens,
            explanation: format!(
                "estimate: weights {:.1} GB ({} B params x {} bytes, {}) + KV cache {:.1} GB \
                 ({tokens} tokens) + {:.0}% runtime overhead, at vLLM's {:.0}% GPU memory use",
                weights_gb,
                shape.params_billion,
                shape.precision.bytes_per_param(),
                shape.precision.label(),
                kv_cache_gb,
                RUNTIME_OVERHEAD * 100.0,
                GPU_MEMORY_UTILIZATION * 100.0
            ),
        },
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The GPU memory `model` needs with its weights at `precision` instead of the checkpoint's:
/// always an estimate (GitLab's table sizes the 16-bit checkpoints only). `None` for
/// cloud-only models.
pub(crate) fn requirement_at(model: &Model, precision: Precision) -> Option<Requirement> {
    let shape = model.shape?;
    if precision == shape.precision {
        return requirement(model);
    }
    Some(estimate(&ModelShape { precision, ..shape }))
}

/// The GPU memory `model` needs, or `None` for cloud-only models.
pub(crate) fn requirement(model: &Model) -> Option<Requirement> {
    let shape = model.shape?;
    Some(match table_row(model) {
        Some((size_class, min_gpu_config, min_vram_gb)) => Requirement {
            min_vram_gb,
            basis: RequirementBasis::GitlabTable {
                size_class,
                min_gpu_config,
            },
        },
        None => estimate(&shape),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::model_by_id;

    fn req(id: &str) -> Requirement {
        requirement(model_by_id(id).unwrap()).unwrap()
    }

    #[test]
    fn table_sizes_come_from_the_gitlab_table() {
        for (id, gb, config) in [
            ("mistral-7b-instruct-v0.3", 24, "1x NVIDIA A100 (40GB)"),
            ("codegemma-7b", 24, "1x NVIDIA A100 (40GB)"),
            ("codestral-22b-v0.1", 90, "2x NVIDIA A100 (80GB)"),
            ("mixtral-8x7b-instruct-v0.1", 100, "2x NVIDIA A100 (80GB)"),
            ("mixtral-8x22b-instruct-v0.1", 300, "8x NVIDIA A100 (80GB)"),
        ] {
            let r = req(id);
            assert_eq!(r.min_vram_gb, gb, "{id}");
            assert!(
                matches!(r.basis, RequirementBasis::GitlabTable { min_gpu_config, .. } if min_gpu_config == config),
                "{id}"
            );
        }
    }

    #[test]
    fn uncovered_sizes_are_labelled_estimates_that_grow_with_size() {
        let small = req("codegemma-2b");
        let mid = req("codellama-13b-instruct");
        let large = req("deepseek-coder-33b-base");
        for r in [&small, &mid, &large] {
            assert!(r.is_estimate());
        }
        // 2.51 B params at bf16 is 5 GB of weights alone; 33 B is 66 GB.
        assert!((6..=10).contains(&small.min_vram_gb), "{small:?}");
        assert!((35..=60).contains(&mid.min_vram_gb), "{mid:?}");
        assert!((75..=100).contains(&large.min_vram_gb), "{large:?}");
        match &mid.basis {
            RequirementBasis::Estimate {
                weights_gb,
                kv_cache_tokens,
                ..
            } => {
                assert_eq!(*weights_gb, 26.0);
                assert_eq!(*kv_cache_tokens, 16_384);
            }
            other => panic!("{other:?}"),
        }
    }

    /// The newer models have no row in GitLab's table: each is a labelled estimate, and the
    /// gpt-oss figures land where OpenAI's cookbook puts them (20b in about 16 GB, 120b on
    /// one 80 GB card) because the weights are counted at MXFP4.
    #[test]
    fn newer_models_are_estimates_at_their_checkpoint_precision() {
        for (id, gb) in [
            ("gpt-oss-20b", 15),
            ("gpt-oss-120b", 78),
            ("mistral-small-24b-instruct-2506", 62),
            ("llama-3-8b-instruct", 21),
            ("llama-3.1-8b-instruct", 23),
            ("llama-3-70b-instruct", 176),
            ("llama-3.3-70b-instruct", 180),
        ] {
            let r = req(id);
            assert!(r.is_estimate(), "{id}");
            assert_eq!(r.min_vram_gb, gb, "{id}");
        }
        match req("gpt-oss-120b").basis {
            RequirementBasis::Estimate { explanation, .. } => {
                assert!(explanation.contains("MXFP4"), "{explanation}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// Weights per precision (docs/catalog.md, "Precision variants"): bf16 2 bytes, FP8 1,
    /// AWQ-INT4 4 + 20/128 bits per parameter. Mistral Small 3.2 24B at FP8 is the variant
    /// Mistral's model page names (39 GB minimum there, for the full 128k window; Hearth's
    /// estimate keeps 16k tokens of KV cache); Llama 3.3 70B at AWQ-INT4 and FP8 are the
    /// published quantized checkpoints of it.
    #[test]
    fn precision_variants_scale_the_weights() {
        use crate::models::Precision::{AwqInt4, Bf16, Fp8};
        assert_eq!(AwqInt4.bytes_per_param(), 0.51953125);
        let at = |id: &str, p| {
            let m = model_by_id(id).unwrap();
            let r = requirement_at(m, p).unwrap();
            match r.basis {
                RequirementBasis::Estimate { weights_gb, .. } => (weights_gb, r.min_vram_gb),
                other => panic!("{other:?}"),
            }
        };
        for (id, p, weights, gb) in [
            ("mistral-small-24b-instruct-2506", Bf16, 48.0, 62),
            ("mistral-small-24b-instruct-2506", Fp8, 24.0, 33),
            ("mistral-small-24b-instruct-2506", AwqInt4, 12.5, 19),
            ("llama-3.3-70b-instruct", Bf16, 141.2, 180),
            ("llama-3.3-70b-instruct", Fp8, 70.6, 93),
            ("llama-3.3-70b-instruct", AwqInt4, 36.7, 52),
            ("llama-3.1-8b-instruct", Fp8, 8.0, 13),
        ] {
            assert_eq!(at(id, p), (weights, gb), "{id} {p:?}");
        }
        // A seed row at another precision leaves GitLab's table for an estimate.
        let m = model_by_id("mixtral-8x7b-instruct-v0.1").unwrap();
        assert!(requirement_at(m, Fp8).unwrap().is_estimate());
        assert!(!requirement_at(m, Bf16).unwrap().is_estimate());
    }

    #[test]
    fn cloud_models_have_no_gpu_requirement() {
        assert!(requirement(model_by_id("gpt-4o").unwrap()).is_none());
    }

    #[test]
    fn gpu_names_are_forgiving_but_not_ambiguous() {
        assert_eq!(find_gpu("a100 80gb").unwrap().vram_gb, 80);
        assert_eq!(find_gpu("L40S").unwrap().vram_gb, 48);
        assert!(find_gpu("a100").unwrap_err().contains("ambiguous"));
        assert!(find_gpu("tpu").unwrap_err().contains("unknown GPU"));
    }
}
