//! `hearth models`: deployments, over the admin API.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::cli::{ApiKeyArgs, ModelsCommand, TimeoutArgs};
use crate::cli_models::Resettable;
use crate::client::Client;
use crate::output::{Table, Tone, outln, plain, print_json, print_warnings};

pub(crate) async fn run(cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::Check { client, deployment } => {
            let c = Client::new(&client)?;
            let id = c.deployment_id(&deployment).await?;
            let answer = c
                .send(
                    Method::POST,
                    &format!("/api/v1/self_hosted_models/{id}/check"),
                    None,
                )
                .await?;
            if client.json {
                print_json(&answer)?;
            } else if answer["ok"].as_bool() == Some(true) {
                outln!(
                    "OK: {} answered in {} ms ({}).",
                    text(&answer["deployment"]),
                    answer["latency_ms"],
                    text(&answer["detail"])
                )?;
            } else {
                outln!("FAILED: {}", text(&answer["error"]))?;
            }
            if answer["ok"].as_bool() == Some(true) {
                Ok(())
            } else {
                anyhow::bail!("the connection check of {deployment} failed")
            }
        }
        ModelsCommand::Add {
            client,
            name,
            family,
            endpoint,
            routing,
            identifier,
            model,
            key,
            timeouts,
        } => {
            let c = Client::new(&client)?;
            let mut body = json!({"name": name, "family": family, "identifier": identifier});
            for (field, value) in timeout_fields(&timeouts) {
                body[field] = json!(value);
            }
            if let Some(v) = &timeouts.api_version {
                body["api_version"] = json!(v);
            }
            if let Some(v) = &timeouts.region {
                body["region"] = json!(v);
            }
            match endpoint.as_slice() {
                [] => {}
                [one] => body["endpoint"] = json!(one),
                many => body["endpoints"] = json!(many),
            }
            if let Some(r) = routing {
                body["routing"] = json!(r);
            }
            if let Some(m) = model {
                body["model"] = json!(m);
            }
            if let Some(k) = read_key(&key)? {
                body["api_key"] = json!(k);
            }
            let created = c
                .send(Method::POST, "/api/v1/self_hosted_models", Some(&body))
                .await?;
            print_warnings(&created);
            if client.json {
                return print_json(&created);
            }
            outln!(
                "Created self-hosted model {} (id {}).",
                created["name"].as_str().unwrap_or_default(),
                created["id"]
            )?;
            let allowed = bindable_examples(&created);
            if allowed.is_empty() {
                outln!(
                    "The catalog rates this model red or unsupported for every kind of feature; no feature can use it."
                )?;
            }
            for feature in allowed {
                outln!(
                    "Bind a feature to it: hearth features set {feature} {}",
                    created["id"]
                )?;
            }
            Ok(())
        }
        ModelsCommand::List { client } => {
            let c = Client::new(&client)?;
            let list = c.get("/api/v1/self_hosted_models").await?;
            if client.json {
                return print_json(&list);
            }
            let mut table = Table::new(vec![
                "ID",
                "NAME",
                "FAMILY",
                "MODEL",
                "PLATFORM",
                "ENDPOINTS",
                "IDENTIFIER",
                "API KEY",
                "FEATURES",
            ]);
            for d in list.as_array().into_iter().flatten() {
                table.row(vec![
                    plain(d["id"].to_string()),
                    plain(text(&d["name"])),
                    plain(text(&d["family"])),
                    plain(text(&d["model"])),
                    plain(text(&d["platform"])),
                    endpoints_cell(d),
                    plain(text(&d["identifier"])),
                    key_cell(d),
                    plain(join(&d["features"])),
                ]);
            }
            table.print()?;
            Ok(())
        }
        ModelsCommand::Show { client, deployment } => {
            let c = Client::new(&client)?;
            let id = c.deployment_id(&deployment).await?;
            let d = c.get(&format!("/api/v1/self_hosted_models/{id}")).await?;
            if client.json {
                return print_json(&d);
            }
            for (label, value) in [
                ("id", d["id"].to_string()),
                ("name", text(&d["name"])),
                ("family", text(&d["family"])),
                ("model", text(&d["model_name"])),
                ("platform", text(&d["platform"])),
                (
                    "endpoints",
                    endpoints_cell(&d).0.replace(", ", "\n            "),
                ),
                ("routing", text(&d["routing"])),
                ("identifier", text(&d["identifier"])),
                ("api key", key_cell(&d).0),
                ("timeouts", timeouts_text(&d)),
                ("features", join(&d["features"])),
                ("created", text(&d["created_at"])),
                ("updated", text(&d["updated_at"])),
            ] {
                outln!("{label:<11} {value}")?;
            }
            Ok(())
        }
        ModelsCommand::Update {
            client,
            deployment,
            name,
            family,
            endpoint,
            add_endpoint,
            remove_endpoint,
            routing,
            identifier,
            model,
            reset,
            key,
            timeouts,
            clear_api_key,
        } => {
            let mut body = Map::new();
            for field in &reset.reset {
                let (fields, given): (&[&str], bool) = match field {
                    Resettable::Model => (&["model"], model.is_some()),
                    Resettable::Timeouts => (
                        &[
                            "connect_timeout_ms",
                            "first_token_timeout_ms",
                            "total_timeout_ms",
                        ],
                        !timeout_fields(&timeouts).is_empty(),
                    ),
                    Resettable::ConnectTimeout => (
                        &["connect_timeout_ms"],
                        timeouts.connect_timeout_ms.is_some(),
                    ),
                    Resettable::FirstTokenTimeout => (
                        &["first_token_timeout_ms"],
                        timeouts.first_token_timeout_ms.is_some(),
                    ),
                    Resettable::TotalTimeout => {
                        (&["total_timeout_ms"], timeouts.total_timeout_ms.is_some())
                    }
                    Resettable::ApiVersion => (&["api_version"], timeouts.api_version.is_some()),
                    Resettable::Region => (&["region"], timeouts.region.is_some()),
                };
                if given {
                    anyhow::bail!(
                        "--reset {} and a new value for it were both given; pass one",
                        fields.join("/")
                    );
                }
                for f in fields {
                    body.insert((*f).into(), Value::Null);
                }
            }
            let c = Client::new(&client)?;
            let id = c.deployment_id(&deployment).await?;
            for (field, value) in timeout_fields(&timeouts) {
                body.insert(field.into(), json!(value));
            }
            if let Some(v) = &timeouts.api_version {
                body.insert("api_version".into(), json!(v));
            }
            if let Some(v) = &timeouts.region {
                body.insert("region".into(), json!(v));
            }
            if !add_endpoint.is_empty() || !remove_endpoint.is_empty() {
                let current = c.get(&format!("/api/v1/self_hosted_models/{id}")).await?;
                let mut list: Vec<String> = current["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| text(&e["url"]))
                    .collect();
                if let (Some(first), Some(new)) = (list.first_mut(), &endpoint) {
                    first.clone_from(new);
                }
                for gone in &remove_endpoint {
                    let gone = gone.trim_end_matches('/');
                    let before = list.len();
                    list.retain(|u| u != gone);
                    if list.len() == before {
                        anyhow::bail!(
                            "{deployment} has no endpoint {gone}; `hearth models show {deployment}` lists them"
                        );
                    }
                }
                list.extend(add_endpoint.iter().cloned());
                body.insert("endpoints".into(), json!(list));
            }
            let endpoint = endpoint.filter(|_| !body.contains_key("endpoints"));
            for (field, value) in [
                ("name", name),
                ("family", family),
                ("endpoint", endpoint),
                ("routing", routing),
                ("identifier", identifier),
                ("model", model),
            ] {
                if let Some(v) = value {
                    body.insert(field.into(), json!(v));
                }
            }
            if clear_api_key {
                body.insert("api_key".into(), Value::Null);
            } else if let Some(k) = read_key(&key)? {
                body.insert("api_key".into(), json!(k));
            }
            if body.is_empty() {
                anyhow::bail!(
                    "nothing to change: pass at least one of --name, --family, --endpoint, --add-endpoint, --remove-endpoint, --routing, --identifier, --model, --api-key, --clear-api-key, --reset"
                );
            }
            let updated = c
                .send(
                    Method::PATCH,
                    &format!("/api/v1/self_hosted_models/{id}"),
                    Some(&Value::Object(body)),
                )
                .await?;
            print_warnings(&updated);
            if client.json {
                return print_json(&updated);
            }
            outln!(
                "Updated self-hosted model {} (id {id}).",
                text(&updated["name"])
            )?;
            Ok(())
        }
        ModelsCommand::Remove { client, deployment } => {
            let c = Client::new(&client)?;
            let id = c.deployment_id(&deployment).await?;
            c.send(
                Method::DELETE,
                &format!("/api/v1/self_hosted_models/{id}"),
                None,
            )
            .await?;
            if client.json {
                return print_json(&json!({"deleted": id}));
            }
            outln!("Removed self-hosted model {deployment} (id {id}).")?;
            Ok(())
        }
    }
}

fn timeout_fields(t: &TimeoutArgs) -> Vec<(&'static str, u32)> {
    [
        ("connect_timeout_ms", t.connect_timeout_ms),
        ("first_token_timeout_ms", t.first_token_timeout_ms),
        ("total_timeout_ms", t.total_timeout_ms),
    ]
    .into_iter()
    .filter_map(|(f, v)| v.map(|v| (f, v)))
    .collect()
}

fn read_key(args: &ApiKeyArgs) -> anyhow::Result<Option<String>> {
    if let Some(k) = &args.api_key {
        return Ok(Some(k.clone()));
    }
    let Some(path) = &args.api_key_file else {
        return Ok(None);
    };
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the API key from standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the API key from {}", path.display()))?;
    }
    let key = text.trim();
    if key.is_empty() {
        // An empty file is far more often a mistake (wrong path to a fresh file, a secret
        // not yet mounted) than a wish to delete the key, which would then go unnoticed.
        anyhow::bail!(
            "{} is empty: no API key read; to remove the stored key use --clear-api-key",
            if path == Path::new("-") {
                "standard input".to_string()
            } else {
                path.display().to_string()
            }
        );
    }
    Ok(Some(key.to_string()))
}

/// The `features set` lines worth suggesting: one feature per kind of work the catalog lets
/// this deployment serve (its model's ratings, else its family's best; unrated families may
/// serve anything).
fn bindable_examples(created: &Value) -> Vec<&'static str> {
    use hearth_catalog::{Capability, Family, FamilyVerdict, model_by_id};
    let model = created["model"].as_str().and_then(model_by_id);
    let family = created["family"].as_str().and_then(Family::parse);
    [
        (Capability::CodeCompletion, "code_completions"),
        (Capability::CodeGeneration, "code_generations"),
        (Capability::Chat, "duo_chat"),
    ]
    .into_iter()
    .filter(|(capability, _)| {
        let verdict = match (model, family) {
            (Some(m), _) => FamilyVerdict::Rated {
                rating: m.ratings.get(*capability),
                model: m.name,
            },
            (None, Some(f)) => f.best_rating(*capability),
            (None, None) => FamilyVerdict::Unrated,
        };
        match verdict {
            FamilyVerdict::Rated { rating, .. } => rating.allows_binding(),
            FamilyVerdict::Unrated => true,
        }
    })
    .map(|(_, feature)| feature)
    .collect()
}

fn timeouts_text(d: &Value) -> String {
    let ms = |k: &str| {
        d[k].as_u64()
            .map_or("default".to_string(), |v| format!("{v} ms"))
    };
    format!(
        "connect {}, first token {}, total {}",
        ms("connect_timeout_ms"),
        ms("first_token_timeout_ms"),
        ms("total_timeout_ms")
    )
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn join(v: &Value) -> String {
    let items: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn key_cell(d: &Value) -> (String, Tone) {
    if d["api_key_error"].is_string() {
        ("unreadable".into(), Tone::Bad)
    } else if d["api_key_set"].as_bool() == Some(true) {
        ("set".into(), Tone::Plain)
    } else {
        ("-".into(), Tone::Dim)
    }
}

/// Each replica's URL, with its state when there are several or one is not healthy.
fn endpoints_cell(d: &Value) -> (String, Tone) {
    let list: Vec<&Value> = d["endpoints"].as_array().into_iter().flatten().collect();
    if list.is_empty() {
        return (text(&d["endpoint"]), Tone::Plain);
    }
    let ejected = list.iter().any(|e| e["state"] == "ejected");
    let cell = list
        .iter()
        .map(|e| {
            let state = text(&e["state"]);
            if list.len() > 1 || state == "ejected" {
                format!("{} ({state})", text(&e["url"]))
            } else {
                text(&e["url"])
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    (cell, if ejected { Tone::Bad } else { Tone::Plain })
}
