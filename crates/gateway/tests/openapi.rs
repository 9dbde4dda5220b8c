//! The OpenAPI document at /api/v1/openapi.json: a well-formed OpenAPI 3.1 document (every
//! reference resolves, every path parameter is declared, every operation answers something),
//! listing exactly the admin and OpenAI routes the router serves — each documented operation
//! reaches a handler, and the list matches the routes Hearth has.

// Helpers outside `#[test]` functions unwrap too: in a test a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use secrecy::SecretString;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "openapi-test-admin-token";

/// Every admin and OpenAI-compatible route Hearth serves. A route added to the router is
/// documented by construction (it is registered from its `#[utoipa::path]`); this list makes
/// a removal, or a route registered around utoipa, fail here.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/self_hosted_models"),
    ("post", "/api/v1/self_hosted_models"),
    ("get", "/api/v1/self_hosted_models/{id}"),
    ("patch", "/api/v1/self_hosted_models/{id}"),
    ("delete", "/api/v1/self_hosted_models/{id}"),
    ("post", "/api/v1/self_hosted_models/{id}/check"),
    ("get", "/api/v1/feature_settings"),
    ("get", "/api/v1/feature_settings/{feature}"),
    ("put", "/api/v1/feature_settings/{feature}"),
    ("get", "/api/v1/settings"),
    ("patch", "/api/v1/settings"),
    ("get", "/api/v1/catalog"),
    ("post", "/api/v1/verify"),
    ("get", "/api/v1/client_keys"),
    ("post", "/api/v1/client_keys"),
    ("delete", "/api/v1/client_keys/{id}"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/v1/completions"),
    ("post", "/v1/chat/completions"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{model}"),
    ("post", "/v1/fim/completions"),
    ("post", "/api/generate"),
    ("post", "/api/chat"),
    ("get", "/api/tags"),
    ("post", "/api/show"),
    ("get", "/api/version"),
    ("post", "/infill"),
    ("post", "/v1/messages"),
    ("get", "/monitoring/healthz"),
    ("get", "/monitoring/ready"),
];

mod common;

async fn router() -> (hearth_gateway::Api, tempfile::TempDir) {
    let (registry, dir) = common::registry().await;
    let gateway = hearth_gateway::build(
        registry,
        SecretString::from(TOKEN),
        hearth_gateway::RouterOptions::default(),
    );
    (gateway.router, dir)
}

async fn send(router: &hearth_gateway::Api, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn document(router: &hearth_gateway::Api) -> Value {
    let req = Request::get("/api/v1/openapi.json")
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "served without credentials");
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.clone(), path.clone(), op));
        }
    }
    out
}

/// Every `$ref` anywhere in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_well_formed_openapi_3_1() {
    let (router, _dir) = router().await;
    let doc = document(&router).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Hearth");
    assert!(doc["info"]["version"].is_string());

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }

    let schemes = &doc["components"]["securitySchemes"];
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let what = format!("{method} {path}");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{what}: no responses"
        );
        if let Some(id) = op["operationId"].as_str() {
            assert!(
                ids.insert(id.to_string()),
                "{what}: operationId {id} repeated"
            );
        }
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_path, "{what}: path parameters");
        for requirement in op["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    schemes[scheme].is_object(),
                    "{what}: unknown scheme {scheme}"
                );
            }
        }
        if path.starts_with("/api/v1/") && path != "/api/v1/openapi.json" {
            assert_eq!(op["security"], json!([{"admin_token": []}]), "{what}");
            assert!(
                op["responses"]["401"].is_object(),
                "{what}: 401 undocumented"
            );
        }
    }
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let (router, _dir) = router().await;
    let doc = document(&router).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);

    // Each documented operation reaches its route: without credentials, the admin and
    // OpenAI routes answer 401 (not the router's 404 or 405), the open ones answer 200.
    for (method, path) in &documented {
        let uri = path
            .replace("{id}", "1")
            .replace("{feature}", "code_completions");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let req = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let (status, body) = send(&router, req).await;
        let open = path.starts_with("/monitoring/") || path.ends_with("openapi.json");
        let want = if open {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, want, "{method} {uri}: {body}");
    }
    // The probe tells routed from unrouted.
    let req = Request::get("/api/v1/nothing").body(Body::empty()).unwrap();
    let (status, body) = send(&router, req).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let req = Request::delete("/api/v1/settings")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, req).await.0, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn answers_carry_only_documented_fields() {
    let (router, _dir) = router().await;
    let doc = document(&router).await;
    let properties = |schema: &str| -> BTreeSet<String> {
        doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no schema {schema}"))
            .keys()
            .cloned()
            .collect()
    };
    let admin = |method: Method, uri: &str, body: Value| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let create = json!({"name": "m", "family": "mixtral", "endpoint": "http://gpu:8000/v1",
        "identifier": "custom_openai/Mixtral-8x7B-Instruct-v0.1", "api_key": "k"});
    for key in create.as_object().unwrap().keys() {
        assert!(properties("CreateDeployment").contains(key), "{key}");
    }
    let (status, created) = send(
        &router,
        admin(Method::POST, "/api/v1/self_hosted_models", create),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, settings) = send(&router, admin(Method::GET, "/api/v1/settings", Value::Null)).await;
    let (_, features) = send(
        &router,
        admin(
            Method::GET,
            "/api/v1/feature_settings/code_completions",
            Value::Null,
        ),
    )
    .await;
    let (_, error) = send(
        &router,
        admin(Method::GET, "/api/v1/self_hosted_models/99", Value::Null),
    )
    .await;
    for (schema, answer) in [
        ("DeploymentView", &created),
        ("Settings", &settings),
        ("FeatureSetting", &features),
        ("ApiError", &error),
        ("ApiErrorDetail", &error["error"]),
    ] {
        let keys: BTreeSet<String> = answer.as_object().unwrap().keys().cloned().collect();
        let known = properties(schema);
        assert!(
            keys.is_subset(&known),
            "{schema}: {:?} undocumented",
            keys.difference(&known).collect::<Vec<_>>()
        );
    }
}

/// A route registered with a bare `.route(` would be served but not documented; the admin and
/// OpenAI routers must register through utoipa-axum's `routes!` only.
#[test]
fn admin_and_openai_routes_are_registered_only_through_routes_macro() {
    for (file, source) in [
        ("admin.rs", include_str!("../src/admin.rs")),
        ("openai.rs", include_str!("../src/openai.rs")),
        ("lib.rs", include_str!("../src/lib.rs")),
    ] {
        for (n, line) in source.lines().enumerate() {
            let bare = line.contains(".route(\"/api/") || line.contains(".route(\"/v1/");
            let elsewhere =
                file != "lib.rs" && (line.contains(".route(") || line.contains(".route_service("));
            assert!(
                !bare && !elsewhere,
                "{file}:{}: register with routes!() so the route is documented: {line}",
                n + 1
            );
        }
    }
}
