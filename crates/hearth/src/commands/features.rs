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
                let deployment = match f["self_hosted_model_id"].as_i64() {
                    Some(id) => format!("{} (id {id})", text(&f["self_hosted_model_name"])),
                    None => "-".into(),
                };
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
        } => {
            let c = Client::new(&client)?;
            let id = c.deployment_id(&deployment).await?;
            let answer = c
                .send(
                    Method::PUT,
                    &format!("/api/v1/feature_settings/{feature}"),
                    Some(&json!({"provider": "self_hosted", "self_hosted_model_id": id})),
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
