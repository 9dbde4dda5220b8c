"""Drives Hearth's Anthropic door with the official `anthropic` Python SDK; run by
tests/it/sdk.rs, which starts Hearth and a scripted upstream whose replies come in the order of
the steps below. Prints `ok <step>` per step; any failure raises, so the exit code is non-zero."""

import os

import anthropic

KEY = os.environ["HEARTH_KEY"]
MODEL = os.environ["HEARTH_MODEL"]

client = anthropic.Anthropic(
    base_url=os.environ["HEARTH_URL"], api_key=KEY, max_retries=0, timeout=30
)

TOOLS = [
    {
        "name": "get_weather",
        "description": "the weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


def ok(step):
    print("ok", step, flush=True)


# 1. A whole message.
message = client.messages.create(
    model=MODEL,
    max_tokens=64,
    system="be brief",
    # This SDK's create() has no sampling arguments; clients send them as extra body fields.
    extra_body={"temperature": 0.25},
    messages=[{"role": "user", "content": "hi"}],
)
assert message.type == "message" and message.role == "assistant", message
assert [b.type for b in message.content] == ["text"], message
assert message.content[0].text == "Hello there.", message
assert message.stop_reason == "end_turn", message
assert message.usage.input_tokens == 7 and message.usage.output_tokens == 3, message
ok("messages.create")

# 2. Streamed through the SDK's helper, which assembles the events into the final message.
with client.messages.stream(
    model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
assert text == "Hello again.", text
assert final.content[0].text == "Hello again.", final
assert final.stop_reason == "end_turn", final
assert final.usage.output_tokens == 2, final
ok("messages.stream")

# 3. The raw events of create(stream=True), in Anthropic's order.
events = client.messages.create(
    model=MODEL, max_tokens=64, stream=True, messages=[{"role": "user", "content": "hi"}]
)
kinds = [e.type for e in events]
assert kinds[0] == "message_start", kinds
assert kinds[-2:] == ["message_delta", "message_stop"], kinds
assert "content_block_delta" in kinds, kinds
ok("create stream=True")

# 4. Tools, round trip: the model calls a tool, the result goes back, the model answers.
messages = [{"role": "user", "content": "weather in Paris?"}]
first = client.messages.create(
    model=MODEL,
    max_tokens=64,
    tools=TOOLS,
    tool_choice={"type": "any"},
    messages=messages,
)
assert first.stop_reason == "tool_use", first
use = first.content[0]
assert use.type == "tool_use" and use.name == "get_weather", first
assert use.input == {"city": "Paris"}, use
messages.append({"role": "assistant", "content": first.content})
messages.append(
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21 degrees"}],
    }
)
second = client.messages.create(model=MODEL, max_tokens=64, tools=TOOLS, messages=messages)
assert second.content[0].text == "It is 21 degrees.", second
ok("tools round trip")

# 5. Streamed tool calls: the SDK assembles each input from its input_json_delta pieces.
with client.messages.stream(
    model=MODEL,
    max_tokens=64,
    tools=TOOLS,
    messages=[{"role": "user", "content": "weather in Nice and Metz?"}],
) as stream:
    final = stream.get_final_message()
assert final.stop_reason == "tool_use", final
assert [(b.type, b.name, b.input) for b in final.content] == [
    ("tool_use", "get_weather", {"city": "Nice"}),
    ("tool_use", "get_weather", {"city": "Metz"}),
], final
ok("streamed tool calls")

# 6. Each error class the SDK raises from Anthropic's error shape.
try:
    client.messages.create(
        model=MODEL,
        max_tokens=64,
        extra_body={"temperature": 1.5},
        messages=[{"role": "user", "content": "hi"}],
    )
    raise AssertionError("temperature 1.5 accepted")
except anthropic.BadRequestError as e:
    assert e.body["error"]["type"] == "invalid_request_error", e.body
    assert "temperature" in e.body["error"]["message"], e.body
ok("BadRequestError")

try:
    anthropic.Anthropic(
        base_url=os.environ["HEARTH_URL"], api_key="wrong", max_retries=0
    ).messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("a wrong key accepted")
except anthropic.AuthenticationError as e:
    assert e.body["error"]["type"] == "authentication_error", e.body
ok("AuthenticationError")

try:
    client.messages.create(
        model="no-such-model", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    raise AssertionError("an unknown model accepted")
except anthropic.NotFoundError as e:
    assert e.body["error"]["type"] == "not_found_error", e.body
ok("NotFoundError")

try:
    client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("the upstream's 429 was not passed on")
except anthropic.RateLimitError as e:
    assert e.body["error"]["type"] == "rate_limit_error", e.body
ok("RateLimitError")

ok("all")
