//! Nothing a client sends is dropped silently: every OpenAI field either reaches the model
//! server exactly as the client wrote it (OpenAI-compatible servers and Azure), is translated
//! (tools on Bedrock, as Converse `toolConfig`/`toolUse`/`toolResult`) or is refused with 400
//! naming it, and what comes back (tool calls, logprobs) reaches the client.

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionRequestAssistantMessageArgs,
    ChatCompletionRequestMessage, ChatCompletionRequestToolMessageArgs,
    ChatCompletionRequestUserMessageArgs, ChatCompletionTool, ChatCompletionTools,
    CreateChatCompletionRequestArgs, FinishReason, FunctionObject,
};
use futures_util::StreamExt;
use hearth_testkit::{BedrockReply, FakeBedrock, FakeUpstream, REGION, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Hearth, post, sse_json};

const TOOLS: &str = r#"[{"type": "function", "function": {"name": "get_weather",
    "description": "the weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]"#;

/// Every pass-through field with a value that would show any rewriting (0.32 as f32 is
/// 0.3199999928474426; a penalty of 0.1 likewise).
fn fields() -> Value {
    json!({
        "tools": serde_json::from_str::<Value>(TOOLS).unwrap(),
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "strict": true,
            "schema": {"type": "object", "properties": {"t": {"type": "number"}}}}},
        "logprobs": true,
        "top_logprobs": 2,
        "seed": 12345678901_i64,
        "presence_penalty": 0.1,
        "frequency_penalty": -0.7,
        "logit_bias": {"50256": -100},
        "user": "alice",
        "temperature": 0.32,
        "top_p": 0.9,
        // Fields Hearth has no name for (OpenAI's bookkeeping): passed on, never dropped.
        "store": false,
        "metadata": {"team": "a"},
    })
}

/// A conversation where the assistant already called a tool and its result came back.
fn tool_turns() -> Value {
    json!([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"t\": 21}"},
    ])
}

async fn openai_compatible() -> (Hearth, FakeUpstream) {
    let up = FakeUpstream::start().await;
    let h = Hearth::start();
    let id = h
        .create(
            json!({"name": "mixtral", "family": "mixtral", "endpoint": up.endpoint(),
            "identifier": "custom_openai/Mixtral-8x7B-Instruct-v0.1"}),
        )
        .await;
    bind(&h, id).await;
    (h, up)
}

async fn azure() -> (Hearth, FakeUpstream) {
    let up = FakeUpstream::start().await;
    up.azure("azure-key", &["gpt-4o"]);
    let h = Hearth::start();
    let id = h
        .create(
            json!({"name": "gpt-4o", "family": "gpt", "identifier": "azure/gpt-4o",
            "endpoint": up.azure_endpoint(), "api_key": "azure-key"}),
        )
        .await;
    bind(&h, id).await;
    (h, up)
}

async fn bind(h: &Hearth, id: i64) {
    bind_features(h, id, &["code_completions", "duo_chat"]).await;
}

async fn bind_features(h: &Hearth, id: i64, features: &[&str]) {
    for f in features {
        let (s, b) = h
            .put(
                &format!("/api/v1/feature_settings/{f}"),
                json!({"provider": "self_hosted", "self_hosted_model_id": id}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}

fn with(mut body: Value, extra: &Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// On both platforms that take OpenAI's fields: each reaches the wire unchanged, tool turns
/// round-trip, and tool calls and logprobs come back, whole and streamed.
#[tokio::test]
async fn openai_compatible_and_azure_get_every_field_as_sent() {
    for platform in ["openai_compatible", "azure"] {
        let (h, up) = if platform == "azure" {
            azure().await
        } else {
            openai_compatible().await
        };
        let body = with(json!({"messages": tool_turns()}), &fields());

        up.script(Reply::ToolCalls(vec![(
            "call_2".into(),
            "get_weather".into(),
            r#"{"city":"Lyon"}"#.into(),
        )]));
        let resp = post(&h, "/v1/chat/completions", body.clone()).await;
        assert_eq!(resp.status(), StatusCode::OK, "{platform}");
        let answer: Value = resp.json().await.unwrap();
        let sent = up.last().body;
        for (k, v) in fields().as_object().unwrap() {
            assert_eq!(&sent[k], v, "{platform}: {k} on the wire: {sent}");
        }
        // Exact numbers in the raw JSON too, not just equal after parsing.
        let raw = sent.to_string();
        assert!(raw.contains("\"temperature\":0.32"), "{platform}: {raw}");
        assert!(
            raw.contains("\"presence_penalty\":0.1"),
            "{platform}: {raw}"
        );
        assert_eq!(sent["messages"], tool_turns(), "{platform}");
        let choice = &answer["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
        assert_eq!(choice["message"]["content"], Value::Null, "{answer}");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"],
            json!({"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}),
            "{answer}"
        );
        assert_eq!(choice["message"]["tool_calls"][0]["id"], "call_2");

        // Streamed: the pieces arrive as OpenAI's tool_calls deltas and add up.
        up.script(Reply::ToolCalls(vec![
            (
                "call_a".into(),
                "get_weather".into(),
                r#"{"city":"Nice"}"#.into(),
            ),
            (
                "call_b".into(),
                "get_weather".into(),
                r#"{"city":"Metz"}"#.into(),
            ),
        ]));
        let events = sse_json(
            post(
                &h,
                "/v1/chat/completions",
                with(body.clone(), &json!({"stream": true})),
            )
            .await,
        )
        .await;
        let mut args = [String::new(), String::new()];
        let mut ids = Vec::new();
        for e in &events {
            for call in e["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let i = call["index"].as_u64().unwrap() as usize;
                args[i].push_str(call["function"]["arguments"].as_str().unwrap_or_default());
                if let Some(id) = call["id"].as_str() {
                    ids.push(id.to_string());
                }
            }
        }
        assert_eq!(
            args,
            [r#"{"city":"Nice"}"#, r#"{"city":"Metz"}"#],
            "{events:?}"
        );
        assert_eq!(ids, ["call_a", "call_b"]);
        let last = events
            .iter()
            .rev()
            .find(|e| !e["choices"][0]["finish_reason"].is_null());
        assert_eq!(last.unwrap()["choices"][0]["finish_reason"], "tool_calls");

        // Logprobs come back with the answer, whole and streamed.
        let lp = json!({"content": [{"token": "{", "logprob": -0.25, "bytes": [123], "top_logprobs": []}]});
        for stream in [false, true] {
            up.script(Reply::WithLogprobs {
                content: r#"{"t": 21}"#.into(),
                logprobs: lp.clone(),
            });
            let resp = post(
                &h,
                "/v1/chat/completions",
                with(body.clone(), &json!({"stream": stream})),
            )
            .await;
            let got = if stream {
                sse_json(resp)
                    .await
                    .into_iter()
                    .find(|e| !e["choices"][0]["logprobs"].is_null())
            } else {
                Some(resp.json::<Value>().await.unwrap())
            };
            let got = got.unwrap_or_else(|| panic!("{platform}: no logprobs"));
            assert_eq!(
                got["choices"][0]["logprobs"], lp,
                "{platform} stream={stream}"
            );
        }

        // Legacy functions pass through as well.
        let legacy = json!({"messages": [{"role": "user", "content": "hi"}],
            "functions": [{"name": "f", "parameters": {"type": "object"}}], "function_call": "auto"});
        let resp = post(&h, "/v1/chat/completions", legacy).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let sent = up.last().body;
        assert_eq!(sent["functions"][0]["name"], "f", "{platform}");
        assert_eq!(sent["function_call"], "auto", "{platform}");

        // Completions: the sampling fields pass, what Hearth cannot honour is refused.
        let resp = post(
            &h,
            "/v1/completions",
            json!({"prompt": "def f(", "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.2,
                "logit_bias": {"1": 5}, "temperature": 0.32}),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK, "{platform}");
        let sent = up.last().body;
        assert_eq!(sent["seed"], 7, "{platform}: {sent}");
        assert_eq!(sent["logit_bias"], json!({"1": 5}), "{platform}");
        assert!(sent.to_string().contains("\"temperature\":0.32"), "{sent}");
        for (field, value) in [
            ("echo", json!(true)),
            ("logprobs", json!(2)),
            ("best_of", json!(3)),
        ] {
            let resp = post(&h, "/v1/completions", json!({"prompt": "x", field: value})).await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{field}");
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["error"]["param"], field);
        }
    }
}

async fn bedrock() -> (Hearth, FakeBedrock) {
    let fb = FakeBedrock::start().await;
    let h = Hearth::start();
    let id = h
        .create(json!({"name": "claude", "family": "claude_3",
            "identifier": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
            "endpoint": fb.endpoint(), "region": REGION,
            "api_key": format!("{}:{}", hearth_testkit::ACCESS_KEY, hearth_testkit::SECRET_KEY)}))
        .await;
    bind(&h, id).await;
    (h, fb)
}

/// Bedrock: each field Hearth does not send there is refused with 400 naming it, and so are
/// tool turns Converse cannot carry; nothing refused reaches Bedrock.
#[tokio::test]
async fn bedrock_refuses_what_it_does_not_get_naming_the_field() {
    let (h, fb) = bedrock().await;
    let hi = json!({"messages": [{"role": "user", "content": "hi"}]});
    for (field, value) in fields().as_object().unwrap() {
        // Translated (tools, tool_choice: see bedrock_tools_*); `parallel_tool_calls: false`
        // is still refused, as Converse cannot stop a model calling several tools.
        if matches!(
            field.as_str(),
            "user" | "temperature" | "top_p" | "tools" | "tool_choice"
        ) {
            continue;
        }
        let resp = post(
            &h,
            "/v1/chat/completions",
            with(hi.clone(), &json!({field: value})),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{field}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"], field.as_str(), "{v}");
        assert_eq!(v["error"]["code"], "unsupported_parameter");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("Bedrock"),
            "{v}"
        );
    }
    let tools: Value = serde_json::from_str(TOOLS).unwrap();
    let legacy = json!([{"name": "get_weather", "parameters": {"type": "object"}}]);
    let mut bad_args = tool_turns();
    bad_args[2]["tool_calls"][0]["function"]["arguments"] = json!("{\"city\": ");
    let mut no_id = tool_turns();
    no_id[3].as_object_mut().unwrap().remove("tool_call_id");
    let function_turn = json!([{"role": "user", "content": "hi"},
        {"role": "function", "name": "get_weather", "content": "{}"}]);
    for (body, param) in [
        (json!({"messages": tool_turns()}), "tools"),
        (
            json!({"messages": hi["messages"], "functions": legacy}),
            "functions",
        ),
        (
            json!({"messages": hi["messages"], "tools": tools, "function_call": "auto"}),
            "function_call",
        ),
        (
            json!({"messages": bad_args, "tools": tools}),
            "messages[2].tool_calls[0].function.arguments",
        ),
        (
            json!({"messages": no_id, "tools": tools}),
            "messages[3].tool_call_id",
        ),
        (
            json!({"messages": function_turn, "tools": tools}),
            "messages[1].role",
        ),
        (
            json!({"messages": tool_turns(), "tools": tools, "tool_choice": "none"}),
            "tool_choice",
        ),
        (
            json!({"messages": hi["messages"], "tool_choice": "auto"}),
            "tool_choice",
        ),
        (
            json!({"messages": hi["messages"], "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            "tools[0].type",
        ),
    ] {
        let resp = post(&h, "/v1/chat/completions", body.clone()).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"], param, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
    let resp = post(&h, "/v1/completions", json!({"prompt": "x", "seed": 1})).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(fb.requests().len(), 0, "nothing refused reached Bedrock");

    // What Bedrock does get still works, with the client's exact temperature.
    fb.script(BedrockReply::Text {
        chunks: vec!["ok".into()],
        stop_reason: "end_turn",
    });
    let resp = post(
        &h,
        "/v1/chat/completions",
        with(hi, &json!({"temperature": 0.32})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let sent = fb.last().body;
    assert!(sent.to_string().contains("\"temperature\":0.32"), "{sent}");
}

/// Bedrock: tools become Converse `toolConfig`, assistant `tool_calls` become `toolUse` blocks
/// and `tool` messages `toolResult` blocks in one user turn; the exact Converse body.
#[tokio::test]
async fn bedrock_tools_are_sent_as_converse_tool_config_and_blocks() {
    let (h, fb) = bedrock().await;
    let tools: Value = serde_json::from_str(TOOLS).unwrap();
    let mut messages = tool_turns();
    // Two calls at once, answered by two tool messages: one user turn of two results.
    messages[2]["content"] = json!("Let me look.");
    messages[2]["tool_calls"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "call_2", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}));
    messages
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "tool", "tool_call_id": "call_2", "content": "sunny"}));
    let resp = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": messages, "tools": tools, "tool_choice": "required",
            "parallel_tool_calls": true, "max_tokens": 50}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let schema = &tools[0]["function"]["parameters"];
    assert_eq!(
        fb.last().body,
        json!({
            "system": [{"text": "be brief"}],
            "messages": [
                {"role": "user", "content": [{"text": "weather in Paris?"}]},
                {"role": "assistant", "content": [
                    {"text": "Let me look."},
                    {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "call_2", "name": "get_weather", "input": {"city": "Lyon"}}},
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "call_1", "content": [{"text": "{\"t\": 21}"}]}},
                    {"toolResult": {"toolUseId": "call_2", "content": [{"text": "sunny"}]}},
                ]},
            ],
            "inferenceConfig": {"maxTokens": 50},
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "get_weather", "description": "the weather in a city",
                    "inputSchema": {"json": schema}}}],
                "toolChoice": {"any": {}},
            },
        })
    );

    let hi = json!([{"role": "user", "content": "hi"}]);
    for (choice, sent) in [
        (json!("auto"), Some(json!({"auto": {}}))),
        (
            json!({"type": "function", "function": {"name": "get_weather"}}),
            Some(json!({"tool": {"name": "get_weather"}})),
        ),
        (Value::Null, None),
    ] {
        let mut body = json!({"messages": hi, "tools": tools});
        if !choice.is_null() {
            body["tool_choice"] = choice;
        }
        let resp = post(&h, "/v1/chat/completions", body).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let config = &fb.last().body["toolConfig"];
        assert_eq!(config["tools"][0]["toolSpec"]["name"], "get_weather");
        assert_eq!(config.get("toolChoice"), sent.as_ref(), "{config}");
    }
    // "none": Converse has no such choice, so the tools are not sent at all.
    let resp = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": hi, "tools": tools, "tool_choice": "none"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(fb.last().body.get("toolConfig").is_none());
}

/// Bedrock: `toolUse` answers reach the client as OpenAI `tool_calls`, whole and as streamed
/// deltas, with finish_reason "tool_calls".
#[tokio::test]
async fn bedrock_tool_use_answers_come_back_as_tool_calls() {
    let (h, fb) = bedrock().await;
    let tools: Value = serde_json::from_str(TOOLS).unwrap();
    let calls = || BedrockReply::ToolUse {
        text: "Checking.".into(),
        calls: vec![
            (
                "tooluse_a".into(),
                "get_weather".into(),
                vec!["{\"ci".into(), "ty\": \"Par".into(), "is\"}".into()],
            ),
            ("tooluse_b".into(), "get_weather".into(), vec!["{}".into()]),
        ],
    };
    let body = json!({"messages": [{"role": "user", "content": "weather?"}], "tools": tools});

    fb.script(calls());
    let resp = post(&h, "/v1/chat/completions", body.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    assert_eq!(choice["message"]["content"], "Checking.");
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([
            {"id": "tooluse_a", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "tooluse_b", "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"}},
        ])
    );

    fb.script(calls());
    let resp = post(
        &h,
        "/v1/chat/completions",
        with(body, &json!({"stream": true})),
    )
    .await;
    let events = sse_json(resp).await;
    let mut text = String::new();
    let mut started = Vec::new();
    let mut args = [String::new(), String::new()];
    for e in &events {
        let delta = &e["choices"][0]["delta"];
        text.push_str(delta["content"].as_str().unwrap_or_default());
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = call["index"].as_u64().unwrap() as usize;
            if let Some(id) = call["id"].as_str() {
                assert_eq!(call["type"], "function");
                assert_eq!(call["function"]["arguments"], "");
                started.push((i, id.to_string(), call["function"]["name"].clone()));
            }
            args[i].push_str(call["function"]["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(text, "Checking.");
    assert_eq!(
        started,
        vec![
            (0, "tooluse_a".to_string(), json!("get_weather")),
            (1, "tooluse_b".to_string(), json!("get_weather")),
        ]
    );
    assert_eq!(
        args,
        ["{\"city\": \"Paris\"}".to_string(), "{}".to_string()]
    );
    let last = events
        .iter()
        .rev()
        .find(|e| !e["choices"][0]["finish_reason"].is_null())
        .unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
}

/// The real async-openai client against a Bedrock deployment: its typed tools go out as
/// Converse `toolConfig`, the `toolUse` answer parses as its tool calls (whole and streamed),
/// and sending those back with the tool's result reaches Bedrock as `toolUse` and
/// `toolResult` blocks.
#[tokio::test]
async fn bedrock_tools_round_trip_through_async_openai() {
    let (h, fb) = bedrock().await;
    let client = Client::with_config(
        OpenAIConfig::new()
            .with_api_base(h.url("/v1"))
            .with_api_key("unused"),
    );
    let tools: Value = serde_json::from_str(TOOLS).unwrap();
    let tool = ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObject {
            name: "get_weather".into(),
            description: Some("the weather in a city".into()),
            parameters: Some(tools[0]["function"]["parameters"].clone()),
            strict: None,
        },
    });
    let user: ChatCompletionRequestMessage = ChatCompletionRequestUserMessageArgs::default()
        .content("weather in Paris?")
        .build()
        .unwrap()
        .into();
    let call = || BedrockReply::ToolUse {
        text: String::new(),
        calls: vec![(
            "tooluse_a".into(),
            "get_weather".into(),
            vec!["{\"city\":".into(), "\"Paris\"}".into()],
        )],
    };

    fb.script(call());
    let request = CreateChatCompletionRequestArgs::default()
        .model("claude")
        .messages(vec![user.clone()])
        .tools(vec![tool.clone()])
        .build()
        .unwrap();
    let answer = client.chat().create(request.clone()).await.unwrap();
    assert_eq!(
        fb.last().body["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    let choice = &answer.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(choice.message.content, None);
    let calls = choice.message.tool_calls.clone().unwrap();
    match &calls[..] {
        [ChatCompletionMessageToolCalls::Function(c)] => {
            assert_eq!(c.id, "tooluse_a");
            assert_eq!(c.function.name, "get_weather");
            assert_eq!(c.function.arguments, "{\"city\":\"Paris\"}");
        }
        other => panic!("{other:?}"),
    }

    // Streamed, the same call arrives as typed tool-call chunks.
    fb.script(call());
    let mut streamed = request.clone();
    streamed.stream = Some(true);
    let mut chunks = client.chat().create_stream(streamed).await.unwrap();
    let (mut id, mut name, mut args, mut finish) = (None, None, String::new(), None);
    while let Some(chunk) = chunks.next().await {
        for c in chunk.unwrap().choices {
            finish = finish.or(c.finish_reason);
            for t in c.delta.tool_calls.into_iter().flatten() {
                assert_eq!(t.index, 0);
                id = id.or(t.id);
                let f = t.function.unwrap();
                name = name.or(f.name);
                args.push_str(&f.arguments.unwrap_or_default());
            }
        }
    }
    assert_eq!(id.as_deref(), Some("tooluse_a"));
    assert_eq!(name.as_deref(), Some("get_weather"));
    assert_eq!(args, "{\"city\":\"Paris\"}");
    assert_eq!(finish, Some(FinishReason::ToolCalls));

    // The client sends the call and its result back; Bedrock gets them as blocks.
    let assistant: ChatCompletionRequestMessage =
        ChatCompletionRequestAssistantMessageArgs::default()
            .tool_calls(calls)
            .build()
            .unwrap()
            .into();
    let result: ChatCompletionRequestMessage = ChatCompletionRequestToolMessageArgs::default()
        .tool_call_id("tooluse_a")
        .content("21 C")
        .build()
        .unwrap()
        .into();
    fb.script(BedrockReply::Text {
        chunks: vec!["It is ".into(), "21 C.".into()],
        stop_reason: "end_turn",
    });
    let request = CreateChatCompletionRequestArgs::default()
        .model("claude")
        .messages(vec![user, assistant, result])
        .tools(vec![tool])
        .build()
        .unwrap();
    let answer = client.chat().create(request).await.unwrap();
    assert_eq!(
        answer.choices[0].message.content.as_deref(),
        Some("It is 21 C.")
    );
    assert_eq!(answer.choices[0].finish_reason, Some(FinishReason::Stop));
    let sent = fb.last().body;
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"text": "weather in Paris?"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_a",
                "name": "get_weather", "input": {"city": "Paris"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_a",
                "content": [{"text": "21 C"}]}}]},
        ])
    );
}

/// Mistral's FIM API goes through the same prompts as `/v1/completions` and answers in chat
/// shape; a prompt already in the family's FIM tokens is not wrapped again; `models.retrieve`.
#[tokio::test]
async fn fim_route_templated_prompts_and_model_retrieval() {
    let up = FakeUpstream::start().await;
    let h = Hearth::start();
    h.patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    let id = h
        .create(
            json!({"name": "codestral", "family": "codestral", "endpoint": up.endpoint(),
            "identifier": "custom_openai/Codestral-22B-v0.1"}),
        )
        .await;
    bind_features(&h, id, &["code_completions"]).await;

    up.script(Reply::Text {
        chunks: vec!["x + 1".into()],
        finish: "stop",
    });
    let resp = post(
        &h,
        "/v1/fim/completions",
        json!({"model": "codestral", "prompt": "def f(x):\n    return ", "suffix": "\n\nprint(f(1))\n",
            "random_seed": 3, "min_tokens": 1, "temperature": 0.2}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "x + 1", "{v}");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let sent = up.last();
    assert_eq!(sent.path, "/v1/completions");
    assert_eq!(
        sent.body["prompt"],
        "<s>[SUFFIX]\n\nprint(f(1))\n[PREFIX]def f(x):\n    return "
    );
    assert_eq!(sent.body["seed"], 3, "random_seed is Mistral's seed");
    assert_eq!(sent.body["min_tokens"], 1);
    assert!(sent.body.get("suffix").is_none(), "vLLM refuses suffix");

    up.script(Reply::Text {
        chunks: vec!["x ".into(), "+ 1".into()],
        finish: "stop",
    });
    let events = sse_json(
        post(
            &h,
            "/v1/fim/completions",
            json!({"prompt": "a", "suffix": "b", "stream": true}),
        )
        .await,
    )
    .await;
    assert!(
        events
            .iter()
            .all(|e| e["object"] == "chat.completion.chunk"),
        "{events:?}"
    );
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "x + 1");

    // Already templated by the client: sent byte for byte, on both routes.
    let templated = "<s>[SUFFIX]\nprint(1)[PREFIX]def g():\n    ";
    for path in ["/v1/completions", "/v1/fim/completions"] {
        let resp = post(&h, path, json!({"prompt": templated})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(up.last().body["prompt"], templated, "{path}");
    }

    let (s, m) = h.get("/v1/models/codestral").await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["id"], "codestral");
    assert_eq!(m["object"], "model");
    let (s, e) = h.get("/v1/models/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "model_not_found", "{e}");
    assert_eq!(e["error"]["type"], "invalid_request_error");
}

/// Ollama's API and llama.cpp's `/infill` go through the same routing, family prompts and
/// cleaning as `/v1/completions`, and answer in their own shapes (NDJSON for Ollama's stream).
#[tokio::test]
async fn ollama_and_llama_cpp_doors() {
    let up = FakeUpstream::start().await;
    let h = Hearth::start();
    h.patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    let cs = h
        .create(
            json!({"name": "codestral", "family": "codestral", "endpoint": up.endpoint(),
            "identifier": "custom_openai/Codestral-22B-v0.1"}),
        )
        .await;
    bind_features(&h, cs, &["code_completions"]).await;
    let mx = h
        .create(
            json!({"name": "mixtral", "family": "mixtral", "endpoint": up.endpoint(),
            "identifier": "custom_openai/Mixtral-8x7B-Instruct-v0.1"}),
        )
        .await;
    bind_features(&h, mx, &["duo_chat"]).await;

    // /api/generate with suffix, whole: the family's FIM prompt, Ollama's options mapped.
    up.script(Reply::Text {
        chunks: vec!["a + b".into()],
        finish: "stop",
    });
    let resp = post(
        &h,
        "/api/generate",
        json!({"model": "codestral", "prompt": "def add(a, b):\n    return ", "suffix": "\n",
            "stream": false, "options": {"temperature": 0.2, "num_predict": 20, "stop": ["\n\n"], "num_ctx": 4096}}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["response"], "a + b", "{v}");
    assert_eq!(v["done"], true);
    assert_eq!(v["model"], "codestral");
    let sent = up.last().body;
    assert_eq!(
        sent["prompt"],
        "<s>[SUFFIX]\n[PREFIX]def add(a, b):\n    return "
    );
    assert_eq!(sent["max_tokens"], 20);
    assert_eq!(sent["temperature"], 0.2);
    assert!(sent["stop"].as_array().unwrap().contains(&json!("\n\n")));

    // Streamed by default, as NDJSON.
    up.script(Reply::Text {
        chunks: vec!["a ".into(), "+ b".into()],
        finish: "stop",
    });
    let resp = post(
        &h,
        "/api/generate",
        json!({"model": "codestral", "prompt": "x = ", "suffix": "\n"}),
    )
    .await;
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let joined: String = lines
        .iter()
        .filter_map(|l| l["response"].as_str())
        .collect();
    assert_eq!(joined, "a + b", "{text}");
    assert_eq!(lines.last().unwrap()["done"], true, "{text}");
    assert!(lines[..lines.len() - 1].iter().all(|l| l["done"] == false));

    // What cannot be honoured is refused in Ollama's error shape.
    let resp = post(
        &h,
        "/api/generate",
        json!({"model": "codestral", "prompt": "x", "system": "be nice"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("system"), "{v}");

    // /api/chat, whole, with format "json" as OpenAI's response_format.
    up.script(Reply::Text {
        chunks: vec!["{\"ok\": true}".into()],
        finish: "stop",
    });
    let resp = post(
        &h,
        "/api/chat",
        json!({"model": "mixtral", "messages": [{"role": "user", "content": "hi"}], "stream": false, "format": "json"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["message"]["content"], "{\"ok\": true}", "{v}");
    assert_eq!(v["message"]["role"], "assistant");
    let sent = up.last().body;
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "hi"}]));

    // The model list, one model, the version.
    let (s, tags) = h.get("/api/tags").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["codestral", "mixtral"], "{tags}");
    let (s, show) = h.post("/api/show", json!({"model": "codestral"})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        show["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("insert")),
        "{show}"
    );
    let (s, e) = h.post("/api/show", json!({"model": "nope"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(e["error"].is_string(), "{e}");
    let (s, v) = h.get("/api/version").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["version"].is_string());

    // llama.cpp's /infill: extra files before the prefix, `prompt` where the middle starts.
    up.script(Reply::Text {
        chunks: vec!["b".into()],
        finish: "stop",
    });
    let resp = post(
        &h,
        "/infill",
        json!({"input_prefix": "def add(a, b):\n    return a + ", "input_suffix": "\n",
            "input_extra": [{"filename": "util.py", "text": "X = 1"}], "prompt": "",
            "n_predict": 16}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["content"], "b", "{v}");
    assert_eq!(v["stop"], true);
    assert_eq!(
        up.last().body["prompt"],
        "<s>[SUFFIX]\n[PREFIX]// util.py\nX = 1\ndef add(a, b):\n    return a + "
    );
    up.script(Reply::Text {
        chunks: vec!["b".into(), "c".into()],
        finish: "stop",
    });
    // llama.cpp's own stream has no `[DONE]`: the event with `stop: true` ends it.
    let body = post(
        &h,
        "/infill",
        json!({"input_prefix": "x", "input_suffix": "y", "stream": true}),
    )
    .await
    .text()
    .await
    .unwrap();
    let events: Vec<Value> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = events
        .iter()
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert_eq!(text, "bc", "{events:?}");
    assert_eq!(events.last().unwrap()["stop"], true);
}
