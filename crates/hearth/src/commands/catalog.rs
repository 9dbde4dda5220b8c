//! `hearth catalog`: the approved-model table, offline.

use anyhow::anyhow;
use hearth_catalog::{BASE_SYSTEM, Capability, Filter, LEGEND, Rating, ReleaseStatus, document};

use crate::cli::CatalogArgs;
use crate::output::{Table, Tone, outln, plain, print_json};

pub(crate) fn run(args: CatalogArgs) -> anyhow::Result<()> {
    let capability = args
        .feature
        .as_deref()
        .map(|f| {
            Capability::parse(f).ok_or_else(|| {
                anyhow!("unknown feature {f:?}; use code_completion, code_generation, chat or a feature name such as duo_chat")
            })
        })
        .transpose()?;
    let status = args
        .status
        .as_deref()
        .map(|s| {
            ReleaseStatus::parse(s).ok_or_else(|| anyhow!("unknown status {s:?}; use ga or beta"))
        })
        .transpose()?;
    let doc = document(Filter { capability, status });
    if args.json {
        return print_json(&doc);
    }
    let mut table = Table::new(vec![
        "MODEL",
        "NAME",
        "FAMILY",
        "STATUS",
        "COMPLETION",
        "GENERATION",
        "CHAT",
        "PLATFORMS",
        "GPU MEMORY",
    ]);
    for entry in &doc.models {
        let m = entry.model;
        let memory = match &entry.requirement {
            None => plain("cloud"),
            Some(r) if r.is_estimate() => (format!("~{} GB (estimate)", r.min_vram_gb), Tone::Dim),
            Some(r) => plain(format!("{} GB", r.min_vram_gb)),
        };
        let platforms: Vec<&str> = m.platforms.iter().map(|p| p.label()).collect();
        table.row(vec![
            plain(m.id),
            plain(m.name),
            plain(m.family.as_str()),
            match m.deprecated {
                Some(d) => (
                    format!(
                        "{} (deprecated {}, end of support {})",
                        m.status.label(),
                        d.since,
                        d.end_of_support
                    ),
                    Tone::Warn,
                ),
                None => plain(match m.introduced {
                    Some(v) => format!("{} (added {v})", m.status.label()),
                    None => m.status.label().to_string(),
                }),
            },
            rating_cell(m.ratings.code_completion),
            rating_cell(m.ratings.code_generation),
            rating_cell(m.ratings.chat),
            plain(platforms.join(", ")),
            memory,
        ]);
    }
    table.print()?;
    outln!()?;
    for (rating, meaning) in LEGEND {
        outln!("  {:<13} {meaning}", rating_text(rating))?;
    }
    outln!(
        "\nBase system for a model server: CPU {} (recommended {}), RAM {} GB ({} GB recommended), {}.",
        BASE_SYSTEM.cpu_min,
        BASE_SYSTEM.cpu_recommended,
        BASE_SYSTEM.ram_min_gb,
        BASE_SYSTEM.ram_recommended_gb,
        BASE_SYSTEM.storage
    )?;
    outln!(
        "Deprecated models still serve, but GitLab no longer supports them; `hearth plan MODEL` names the replacement."
    )?;
    outln!("`hearth plan MODEL --gpu NAME` checks a model against your GPUs.")?;
    Ok(())
}

fn rating_text(r: Rating) -> &'static str {
    match r {
        Rating::Green => "green",
        Rating::Amber => "amber",
        Rating::Red => "red",
        Rating::Supported => "yes",
        Rating::NotSupported => "-",
    }
}

fn rating_cell(r: Rating) -> (String, Tone) {
    let tone = match r {
        Rating::Green => Tone::Good,
        Rating::Amber => Tone::Warn,
        Rating::Red => Tone::Bad,
        Rating::Supported => Tone::Plain,
        Rating::NotSupported => Tone::Dim,
    };
    (rating_text(r).to_string(), tone)
}
