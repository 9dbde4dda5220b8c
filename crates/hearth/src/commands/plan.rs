//! `hearth plan`: sizing and launch instructions for one model, offline.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use hearth_catalog::{
    FamilyEstimate, Gpu, Hardware, PlanRequest, estimate_unlisted, find_gpu, plan,
};

use crate::cli::PlanArgs;
use crate::output::{outln, print_json};

/// Exit 0 when the model fits (or no hardware was given), 1 when it does not.
pub(crate) fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let gpu = match (&args.gpu, args.vram_gb) {
        (Some(name), _) => Some(find_gpu(name).map_err(|e| anyhow!(e))?),
        (None, Some(vram_gb)) => Some(Gpu {
            name: "GPU",
            vram_gb,
        }),
        (None, None) if args.count.is_some() => bail!("--count needs --gpu NAME or --vram-gb X"),
        (None, None) => None,
    };
    let hardware = gpu.map(|gpu| Hardware {
        gpu,
        count: args.count,
    });
    let p = match plan(&PlanRequest {
        model: &args.model,
        hardware,
        served_name: args.served_name.as_deref(),
        host: args.host.as_deref(),
        model_dir: args.model_dir.as_deref(),
        precision: args.precision,
    }) {
        Ok(p) => p,
        // Families one may register but GitLab has not evaluated: size them from the name
        // rather than pointing at an unrelated catalog model.
        Err(e) => match estimate_unlisted(&args.model).map_err(|why| anyhow!(why))? {
            Some(estimate) => return unlisted(&args, hardware, &estimate),
            None => return Err(e.into()),
        },
    };
    let code = if p.fits == Some(false) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if args.json {
        print_json(&p)?;
        return Ok(code);
    }
    let m = p.model;
    let deprecated = m
        .deprecated
        .map(|d| {
            format!(
                ", deprecated by GitLab in {} (end of support {})",
                d.since, d.end_of_support
            )
        })
        .unwrap_or_default();
    let introduced = m
        .introduced
        .map(|v| format!(", added by GitLab in {v}"))
        .unwrap_or_default();
    outln!(
        "Model:   {} ({}), family {}, {}{introduced}{deprecated}",
        m.name,
        m.id,
        m.family,
        m.status.label()
    )?;
    if let Some(precision) = p.precision {
        outln!("Weights: {}", precision.label())?;
    }
    outln!("Verdict: {}", p.verdict)?;
    if p.fits == Some(false) {
        // Install steps for hardware that cannot hold the model would only be followed.
        for n in &p.notes {
            outln!("  - {n}")?;
        }
        outln!(
            "Nothing to install on this hardware: plan again with more or larger GPUs (--gpu, --count, --vram-gb)."
        )?;
        return Ok(code);
    }
    if let Some(tp) = p.tensor_parallel_size {
        outln!("Tensor-parallel size: {tp}")?;
    }
    let mut step = 1;
    if !p.setup.is_empty() {
        outln!("\n{step}. Install vLLM and fetch the weights:")?;
        for line in &p.setup {
            outln!("   {line}")?;
        }
        step += 1;
    }
    if let Some(cmd) = &p.vllm_command {
        outln!(
            "\n{step}. Start the model server:\n   {}",
            cmd.replace('\n', "\n   ")
        )?;
        step += 1;
    }
    outln!(
        "\n{step}. Register it in Hearth:\n   {}",
        p.register.command
    )?;
    outln!(
        "   (endpoint {}, identifier {})",
        p.register
            .endpoint
            .as_deref()
            .unwrap_or("none: the platform implies it"),
        p.register.identifier
    )?;
    if !p.notes.is_empty() {
        outln!("\nNotes:")?;
        for n in &p.notes {
            outln!("  - {n}")?;
        }
    }
    Ok(code)
}

/// The plan of a model from a family the catalog has no model of: the estimate, whether it
/// fits, and the registration line; exit 1 when it does not fit.
fn unlisted(
    args: &PlanArgs,
    hardware: Option<Hardware>,
    e: &FamilyEstimate,
) -> anyhow::Result<ExitCode> {
    let fits = hardware.map(|h| {
        let holds = |n: u32| n * h.gpu.vram_gb >= e.min_vram_gb;
        // Without --count: the fewest GPUs of a tensor-parallel size vLLM commonly runs.
        let count = h
            .count
            .unwrap_or_else(|| [1, 2, 4, 8].into_iter().find(|&n| holds(n)).unwrap_or(8));
        (holds(count), count, h.gpu)
    });
    let served = args.served_name.clone().unwrap_or_else(|| {
        args.model
            .rsplit('/')
            .next()
            .unwrap_or(&args.model)
            .to_string()
    });
    let host = args.host.as_deref().unwrap_or("localhost");
    let register = format!(
        "hearth models add --name {served} --family {} --endpoint http://{host}:8000/v1 --identifier custom_openai/{served}",
        e.family
    );
    let code = match fits {
        Some((false, ..)) => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    };
    if args.json {
        print_json(&serde_json::json!({
            "estimate": e,
            "fits": fits.map(|(f, ..)| f),
            "register": register,
            "notes": ["the catalog has no model of this family: GitLab has not rated it, and no feature rating applies"],
        }))?;
        return Ok(code);
    }
    outln!(
        "Model:   {} ({} B parameters), family {}: not in the catalog",
        args.model,
        e.params_billion,
        e.family
    )?;
    let need = format!(
        "needs about {} GB of GPU memory ({})",
        e.min_vram_gb, e.explanation
    );
    match fits {
        None => outln!("Verdict: {need}. Pass --gpu/--count or --vram-gb to check your hardware")?,
        Some((true, count, gpu)) => outln!(
            "Verdict: fits on {count} x {} ({} GB): {need}",
            gpu.name,
            count * gpu.vram_gb
        )?,
        Some((false, count, gpu)) => {
            outln!(
                "Verdict: does not fit on {count} x {} ({} GB): {need}",
                gpu.name,
                count * gpu.vram_gb
            )?;
            return Ok(code);
        }
    }
    if args.model.contains('/') {
        let dir = args
            .model_dir
            .as_deref()
            .unwrap_or("/models")
            .trim_end_matches('/');
        outln!(
            "\n1. Fetch the weights:\n   pip install -U 'huggingface_hub[cli]'\n   huggingface-cli download {} --local-dir {dir}/{served}",
            args.model
        )?;
        outln!("\n2. Start vLLM on them with --served_model_name {served}, then register it:")?;
    } else {
        outln!("\nServe it with vLLM (--served_model_name {served}), then register it:")?;
    }
    outln!("   {register}")?;
    outln!(
        "\nNotes:\n  - the catalog has no {} model: GitLab has not rated it, so no feature rating applies; check the answers yourself",
        e.family.display_name()
    )?;
    Ok(code)
}
