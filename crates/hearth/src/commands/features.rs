//! `hearth features`: which deployment serves each feature.

use reqwest::Method;
use serde_json::json;

use crate::cli::FeaturesCommand;
use crate::client::Client;
use crate::commands::models::text;
use crate::output::{Table, Tone, outln, plain, print_json, print_warnings};

pub(crate) async fn run(cmd: FeaturesCommand) -> anyhow::Result<()> {
    match cmd {
        FeaturesCommand::List { client } => {
            let c = Client::new(&client)?;
            let list = c.get("/api/v1/feature_settings").await?;
            if client.json {
                return print_json(&list);
            }
            let mut table = Table::new(vec!["FEATURE", "KIND", "PROVIDER", "DEPLOYMENT"]);
            for f in list.as_array().into_iter().flatten() {
                let mut feature = text(&f["feature"]);
                if f["beta"].as_bool() == Some(true) {
                    feature.push_str(" (beta)");
                }
                let provider = text(&f["provider"]);
                let tone = if provider == "disabled" {
                    Tone::Dim
                } else {
                    Tone::Good
                };
                let mut deployment = match f["self_hosted_model_id"].as_i64() {
                    Some(id) => format!("{} (id {id})", text(&f["self_hosted_model_name"])),
                    None => "-".into(),
                };
                let chain = fallback_names(f);
                if !chain.is_empty() {
                    deployment.push_str(&format!(", then {chain}"));
                }
                table.row(vec![
                    plain(feature),
                    plain(text(&f["capability"])),
                    (provider, tone),
                    plain(deployment),
                ]);
            }
            table.print()?;
            Ok(())
        }
        FeaturesCommand::Set {
            client,
            feature,
            deployment,
            fallback,
            no_fallbacks,
        } => {
            let c = Client::new(&client)?;
            let id = c.deployment_id(&deployment).await?;
            let mut body = json!({"provider": "self_hosted", "self_hosted_model_id": id});
            if no_fallbacks {
                body["fallbacks"] = json!([]);
            } else if !fallback.is_empty() {
                let mut ids = Vec::with_capacity(fallback.len());
                for f in &fallback {
                    ids.push(c.deployment_id(f).await?);
                }
                body["fallbacks"] = json!(ids);
            }
            let answer = c
                .send(
                    Method::PUT,
                    &format!("/api/v1/feature_settings/{feature}"),
                    Some(&body),
                )
                .await?;
            print_warnings(&answer);
            if client.json {
                return print_json(&answer);
            }
            outln!(
                "{} now uses {} (id {id}).",
                text(&answer["feature"]),
                text(&answer["self_hosted_model_name"])
            )?;
            let chain = fallback_names(&answer);
            if !chain.is_empty() {
                outln!("When it cannot serve, it falls back to: {chain}.")?;
            }
            Ok(())
        }
        FeaturesCommand::Disable { client, feature } => {
            let c = Client::new(&client)?;
            let answer = c
                .send(
                    Method::PUT,
                    &format!("/api/v1/feature_settings/{feature}"),
                    Some(&json!({"provider": "disabled"})),
                )
                .await?;
            if client.json {
                return print_json(&answer);
            }
            outln!("{} is disabled.", text(&answer["feature"]))?;
            Ok(())
        }
    }
}

/// The feature's fallbacks by name, in order.
fn fallback_names(f: &serde_json::Value) -> String {
    f["fallbacks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| text(&d["self_hosted_model_name"]))
        .collect::<Vec<_>>()
        .join(", then ")
}
