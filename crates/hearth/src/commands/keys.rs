//! `hearth keys`: client API keys for the OpenAI-compatible routes.

use anyhow::anyhow;
use reqwest::Method;
use serde_json::json;

use crate::cli::KeysCommand;
use crate::client::Client;
use crate::commands::models::text;
use crate::output::{Table, Tone, outln, plain, print_json};

pub(crate) async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create { client, name } => {
            let c = Client::new(&client)?;
            let created = c
                .send(
                    Method::POST,
                    "/api/v1/client_keys",
                    Some(&json!({"name": name})),
                )
                .await?;
            if client.json {
                return print_json(&created);
            }
            outln!(
                "Created client key {} (id {}).",
                text(&created["name"]),
                created["id"]
            )?;
            outln!("Key, shown this once: {}", text(&created["key"]))?;
            outln!("Clients send it as `Authorization: Bearer <key>` (OpenAI SDKs: api_key).")?;
            Ok(())
        }
        KeysCommand::List { client } => {
            let c = Client::new(&client)?;
            let list = c.get("/api/v1/client_keys").await?;
            if client.json {
                return print_json(&list);
            }
            let mut table = Table::new(vec!["ID", "NAME", "PREFIX", "CREATED", "STATUS"]);
            for k in list.as_array().into_iter().flatten() {
                let status = if k["active"].as_bool() == Some(true) {
                    ("active".to_string(), Tone::Good)
                } else {
                    (format!("revoked {}", text(&k["revoked_at"])), Tone::Dim)
                };
                table.row(vec![
                    plain(k["id"].to_string()),
                    plain(text(&k["name"])),
                    plain(format!("{}…", text(&k["prefix"]))),
                    plain(text(&k["created_at"])),
                    status,
                ]);
            }
            table.print()?;
            Ok(())
        }
        KeysCommand::Revoke { client, key } => {
            let c = Client::new(&client)?;
            let id = match key.parse::<i64>() {
                Ok(id) => id,
                Err(_) => {
                    let list = c.get("/api/v1/client_keys").await?;
                    let matches: Vec<i64> = list
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|k| {
                            k["name"].as_str() == Some(key.as_str())
                                && k["active"].as_bool() == Some(true)
                        })
                        .filter_map(|k| k["id"].as_i64())
                        .collect();
                    match matches.as_slice() {
                        [one] => *one,
                        [] => {
                            return Err(anyhow!(
                                "no active client key is named {key:?}; `hearth keys list` shows them"
                            ));
                        }
                        _ => {
                            return Err(anyhow!(
                                "several active keys are named {key:?}; revoke by id"
                            ));
                        }
                    }
                }
            };
            let revoked = c
                .send(Method::DELETE, &format!("/api/v1/client_keys/{id}"), None)
                .await?;
            if client.json {
                return print_json(&revoked);
            }
            outln!("Revoked client key {} (id {id}).", text(&revoked["name"]))?;
            Ok(())
        }
    }
}
