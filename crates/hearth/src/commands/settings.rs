//! `hearth settings`: instance settings.

use anyhow::bail;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::SettingsCommand;
use crate::client::Client;
use crate::output::{outln, print_json, print_warnings};

const NAMES: [&str; 2] = ["beta_models_enabled", "verbose_ai_logs"];

pub(crate) async fn run(cmd: SettingsCommand) -> anyhow::Result<()> {
    match cmd {
        SettingsCommand::Get { client, name } => {
            let c = Client::new(&client)?;
            let settings = c.get("/api/v1/settings").await?;
            let shown = match &name {
                Some(n) => {
                    check_name(n)?;
                    json!({ n.as_str(): settings[n.as_str()] })
                }
                None => settings,
            };
            if client.json {
                return print_json(&shown);
            }
            for (k, v) in shown.as_object().into_iter().flatten() {
                outln!("{k:<20} {v}")?;
            }
            Ok(())
        }
        SettingsCommand::Set {
            client,
            name,
            value,
        } => {
            check_name(&name)?;
            let on = match value.to_ascii_lowercase().as_str() {
                "true" | "on" | "yes" | "1" => true,
                "false" | "off" | "no" | "0" => false,
                _ => bail!("{name} takes true or false, not {value:?}"),
            };
            let c = Client::new(&client)?;
            let answer = c
                .send(
                    Method::PATCH,
                    "/api/v1/settings",
                    Some(&json!({ name.as_str(): on })),
                )
                .await?;
            print_warnings(&answer);
            if client.json {
                return print_json(&answer);
            }
            outln!("{name} = {}", answer.get(&name).unwrap_or(&Value::Null))?;
            Ok(())
        }
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if NAMES.contains(&name) {
        Ok(())
    } else {
        bail!("unknown setting {name:?}; settings: {}", NAMES.join(", "))
    }
}
