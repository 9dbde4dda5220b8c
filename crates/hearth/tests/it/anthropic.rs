//! The Anthropic Messages door, `POST /v1/messages`: what each Anthropic field becomes on the
//! wire to an OpenAI-compatible model server, and the exact Anthropic answer, events and
//! errors that come back.

use hearth_testkit::{FakeUpstream, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::Hearth;

async fn chat_deployment() -> (Hearth, FakeUpstream) {
    let up = FakeUpstream::start().await;
    let h = Hearth::start();
    let id = h
        .create(
            json!({"name": "mixtral", "family": "mixtral", "endpoint": up.endpoint(),
            "identifier": "custom_openai/Mixtral-8x7B-Instruct-v0.1"}),
        )
        .await;
    let (s, b) = h
        .put(
            "/api/v1/feature_settings/duo_chat",
            json!({"provider": "self_hosted", "self_hosted_model_id": id}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (h, up)
}

async fn send(h: &Hearth, body: Value) -> reqwest::Response {
    h.http()
        .post(h.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn whole(h: &Hearth, body: Value) -> (StatusCode, Value) {
    let resp = send(h, body).await;
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

/// `(event name, data)` of each event, after checking every event names itself in its data.
async fn events(resp: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e
                .strip_prefix("event: ")
                .and_then(|e| e.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not an Anthropic event: {e:?}"));
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "{e}");
            (name.to_string(), data)
        })
        .collect()
}

fn without_id(mut v: Value) -> Value {
    let id = v["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("msg_"), "{id}");
    v["id"] = json!("msg_");
    v
}

#[tokio::test]
async fn a_message_reaches_the_model_server_as_openai_chat_and_comes_back_as_anthropics() {
    let (h, up) = chat_deployment().await;
    up.script(Reply::Text {
        chunks: vec!["Hello ".into(), "there.".into()],
        finish: "stop",
    });
    let (s, b) = whole(
        &h,
        json!({"model": "mixtral", "max_tokens": 64,
            "system": [{"type": "text", "text": "be brief"}, {"type": "text", "text": "be kind"}],
            "messages": [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
                {"role": "user", "content": [{"type": "text", "text": "again"}]}],
            "temperature": 0.32, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"],
            "metadata": {"user_id": "alice"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        without_id(b),
        json!({"id": "msg_", "type": "message", "role": "assistant", "model": "mixtral",
            "content": [{"type": "text", "text": "Hello there."}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 7, "output_tokens": 3}})
    );
    let sent = up.last().body;
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "be brief\nbe kind"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"}])
    );
    assert_eq!(sent["max_tokens"], 64);
    assert!(sent.to_string().contains("\"temperature\":0.32"), "{sent}");
    assert_eq!(sent["top_p"], 0.9);
    assert_eq!(sent["top_k"], 40);
    assert_eq!(sent["stop"], json!(["END"]));
    assert_eq!(sent["user"], "alice");
    assert!(sent.get("tools").is_none(), "{sent}");
}

#[tokio::test]
async fn a_streamed_message_is_anthropics_events_in_order() {
    let (h, up) = chat_deployment().await;
    up.script(Reply::Text {
        chunks: vec!["Hel".into(), "lo".into()],
        finish: "length",
    });
    let got = events(
        send(
            &h,
            json!({"max_tokens": 2, "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(up.last().body["stream"], true);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &got[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["model"], "mixtral");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(
        got[2].1,
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(
        got[3].1,
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}})
    );
    assert_eq!(got[4].1["delta"]["text"], "lo");
    assert_eq!(got[5].1, json!({"type": "content_block_stop", "index": 0}));
    assert_eq!(
        got[6].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
            "usage": {"input_tokens": 7, "output_tokens": 2}})
    );
}

const WEATHER: &str = r#"{"name": "get_weather", "description": "the weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}"#;

#[tokio::test]
async fn tools_round_trip_whole_and_streamed() {
    let (h, up) = chat_deployment().await;
    let tool: Value = serde_json::from_str(WEATHER).unwrap();
    up.script(Reply::ToolCalls(vec![(
        "call_1".into(),
        "get_weather".into(),
        r#"{"city": "Paris"}"#.into(),
    )]));
    let (s, b) = whole(
        &h,
        json!({"max_tokens": 64, "tools": [tool],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "messages": [{"role": "user", "content": "weather in Paris?"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["content"],
        json!([{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}])
    );
    assert_eq!(b["stop_reason"], "tool_use");
    let sent = up.last().body;
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "get_weather",
            "description": "the weather in a city", "parameters": tool["input_schema"]}}])
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );

    // The result goes back; the model calls two tools, streamed.
    up.script(Reply::ToolCalls(vec![
        (
            "call_a".into(),
            "get_weather".into(),
            r#"{"city": "Nice"}"#.into(),
        ),
        (
            "call_b".into(),
            "get_weather".into(),
            r#"{"city": "Metz"}"#.into(),
        ),
    ]));
    let got = events(
        send(
            &h,
            json!({"max_tokens": 64, "stream": true, "tools": [tool],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": false},
                "messages": [{"role": "user", "content": "weather in Paris?"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1",
                        "name": "get_weather", "input": {"city": "Paris"}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1",
                        "content": [{"type": "text", "text": "21 degrees"}]},
                        {"type": "text", "text": "and Nice and Metz?"}]}]}),
        )
        .await,
    )
    .await;
    let sent = up.last().body;
    assert_eq!(sent["tool_choice"], "required");
    assert!(sent.get("parallel_tool_calls").is_none(), "{sent}");
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "21 degrees"},
            {"role": "user", "content": "and Nice and Metz?"}])
    );
    let starts: Vec<&Value> = got
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        starts,
        [
            &json!({"type": "content_block_start", "index": 0, "content_block":
                {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}}}),
            &json!({"type": "content_block_start", "index": 1, "content_block":
                {"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {}}}),
        ]
    );
    for (index, city) in [(0, "Nice"), (1, "Metz")] {
        let partial: String = got
            .iter()
            .filter(|(n, d)| n == "content_block_delta" && d["index"] == index)
            .map(|(_, d)| {
                assert_eq!(d["delta"]["type"], "input_json_delta", "{d}");
                d["delta"]["partial_json"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(partial, format!("{{\"city\": \"{city}\"}}"));
    }
    let last_two: Vec<&str> = got[got.len() - 2..]
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(last_two, ["message_delta", "message_stop"]);
    assert_eq!(got[got.len() - 2].1["delta"]["stop_reason"], "tool_use");
}

fn assert_anthropic_error(got: &(StatusCode, Value), status: StatusCode, kind: &str) -> String {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["type"], "error", "{}", got.1);
    assert_eq!(got.1["error"]["type"], kind, "{}", got.1);
    got.1["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn errors_are_anthropics_shape_and_statuses() {
    let (h, up) = chat_deployment().await;
    let hi = json!([{"role": "user", "content": "hi"}]);
    let message = assert_anthropic_error(
        &whole(&h, json!({"messages": hi})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
    );
    assert!(message.contains("max_tokens"), "{message}");
    let message = assert_anthropic_error(
        &whole(&h, json!({"max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}]}]}))
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
    );
    assert!(message.contains("messages[0].content[0]"), "{message}");
    // A body of the wrong shape is 400 too, never 422.
    assert_anthropic_error(
        &whole(&h, json!({"max_tokens": 5, "messages": "hi"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
    );
    assert_anthropic_error(
        &whole(
            &h,
            json!({"model": "nope", "max_tokens": 5, "messages": hi}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found_error",
    );
    up.script(Reply::Error {
        status: 429,
        body: json!({"error": {"message": "slow down"}}).to_string(),
        headers: vec![("retry-after".into(), "1".into())],
    });
    assert_anthropic_error(
        &whole(&h, json!({"max_tokens": 5, "messages": hi})).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
    );
    up.script(Reply::Error {
        status: 500,
        body: json!({"error": {"message": "boom"}}).to_string(),
        headers: vec![],
    });
    let got = whole(&h, json!({"max_tokens": 5, "messages": hi})).await;
    assert!(got.0.is_server_error(), "{}", got.1);
    assert_eq!(got.1["error"]["type"], "api_error", "{}", got.1);
    assert_eq!(up.requests().len(), 2, "refusals reached the model server");

    // Once a client key exists, it is needed, as Bearer or as Anthropic's x-api-key.
    let (s, created) = h
        .post("/api/v1/client_keys", json!({"name": "claude"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap();
    assert_anthropic_error(
        &whole(&h, json!({"max_tokens": 5, "messages": hi})).await,
        StatusCode::UNAUTHORIZED,
        "authentication_error",
    );
    up.script(Reply::Text {
        chunks: vec!["ok".into()],
        finish: "stop",
    });
    let resp = h
        .http()
        .post(h.url("/v1/messages"))
        .header("x-api-key", key)
        .json(&json!({"max_tokens": 5, "messages": hi}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = h
        .http()
        .post(h.url("/v1/messages"))
        .header("x-api-key", "wrong")
        .json(&json!({"max_tokens": 5, "messages": hi}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn top_k_is_refused_by_name_on_azure() {
    let up = FakeUpstream::start().await;
    up.azure("azure-key", &["gpt-4o"]);
    let h = Hearth::start();
    let id = h
        .create(
            json!({"name": "gpt-4o", "family": "gpt", "identifier": "azure/gpt-4o",
            "endpoint": up.azure_endpoint(), "api_key": "azure-key"}),
        )
        .await;
    let (s, b) = h
        .put(
            "/api/v1/feature_settings/duo_chat",
            json!({"provider": "self_hosted", "self_hosted_model_id": id}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let message = assert_anthropic_error(
        &whole(
            &h,
            json!({"max_tokens": 5, "top_k": 5, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
    );
    assert!(message.contains("top_k"), "{message}");
    assert!(up.requests().is_empty());
}

/// A model server that fails after text has streamed: the open block is left as it was and an
/// Anthropic `error` event ends the stream (no message_stop that would read as success).
#[tokio::test]
async fn a_failure_mid_stream_is_an_error_event() {
    let (h, up) = chat_deployment().await;
    up.script(Reply::FailMidStream {
        chunks: vec!["Hel".into()],
        error: json!({"error": {"message": "the GPU fell over", "type": "server_error"}}),
    });
    let got = events(
        send(
            &h,
            json!({"max_tokens": 5, "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
    )
    .await;
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    let error = &got[4].1;
    assert_eq!(error["error"]["type"], "api_error", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the GPU fell over"),
        "{error}"
    );
}

/// Unknown routes and methods under `/v1/messages` answer in Anthropic's shape too.
#[tokio::test]
async fn unknown_routes_under_messages_answer_anthropics_shape() {
    let (h, up) = chat_deployment().await;
    let resp = h
        .http()
        .post(h.url("/v1/messages/count_tokens"))
        .json(&json!({"messages": []}))
        .send()
        .await
        .unwrap();
    let got = (resp.status(), resp.json::<Value>().await.unwrap());
    assert_anthropic_error(&got, StatusCode::NOT_FOUND, "not_found_error");
    let resp = h.http().get(h.url("/v1/messages")).send().await.unwrap();
    let got = (resp.status(), resp.json::<Value>().await.unwrap());
    let message = assert_anthropic_error(
        &got,
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
    );
    assert!(message.contains("GET"), "{message}");
    assert!(up.requests().is_empty());
}
