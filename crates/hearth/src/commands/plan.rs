//! `hearth plan`: sizing and launch instructions for one model, offline.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use hearth_catalog::{Gpu, Hardware, PlanRequest, find_gpu, plan};

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
    let p = plan(&PlanRequest {
        model: &args.model,
        hardware: gpu.map(|gpu| Hardware {
            gpu,
            count: args.count,
        }),
        served_name: args.served_name.as_deref(),
        host: args.host.as_deref(),
        model_dir: args.model_dir.as_deref(),
    })?;
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
    outln!(
        "Model:   {} ({}), family {}, {}",
        m.name,
        m.id,
        m.family,
        m.status.label()
    )?;
    outln!("Verdict: {}", p.verdict)?;
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
