"""Drives Hearth with the official `openai` Python SDK; run by tests/it/sdk.rs, which starts
Hearth and a scripted upstream whose replies come in the order of the steps below. Prints
`ok <step>` per step; any failure raises, so the exit code is non-zero."""

import json
import os
import sys

import openai
from pydantic import BaseModel

BASE = os.environ["HEARTH_URL"] + "/v1"
KEY = os.environ["HEARTH_KEY"]
MODEL = os.environ["HEARTH_MODEL"]

client = openai.OpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=30)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "the weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def ok(step):
    print("ok", step, flush=True)


# 1. Tools, round trip: the model calls a tool, the result goes back, the model answers.
messages = [{"role": "user", "content": "weather in Paris?"}]
first = client.chat.completions.create(
    model=MODEL, messages=messages, tools=TOOLS, tool_choice="required", temperature=0.32
)
choice = first.choices[0]
assert choice.finish_reason == "tool_calls", choice
call = choice.message.tool_calls[0]
assert call.function.name == "get_weather", call
assert json.loads(call.function.arguments) == {"city": "Paris"}, call
messages.append(choice.message.model_dump(exclude_none=True))
messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"t": 21}'})
second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
assert second.choices[0].message.content == "It is 21 degrees.", second
ok("tools round trip")

# 2. Streamed tool calls, assembled from their deltas as the SDK's users do.
calls = {}
with client.chat.completions.stream(
    model=MODEL,
    messages=[{"role": "user", "content": "weather in Nice and Metz?"}],
    tools=TOOLS,
) as stream:
    for event in stream:
        pass
    final = stream.get_final_completion()
got = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in final.choices[0].message.tool_calls]
assert got == [
    ("call_a", "get_weather", {"city": "Nice"}),
    ("call_b", "get_weather", {"city": "Metz"}),
], got
assert final.choices[0].finish_reason == "tool_calls", final
ok("streamed tool calls")


# 3. Structured output: parse() with a JSON schema from a pydantic model.
class Weather(BaseModel):
    city: str
    temp: float


parsed = client.chat.completions.parse(
    model=MODEL,
    messages=[{"role": "user", "content": "weather in Paris as JSON"}],
    response_format=Weather,
)
w = parsed.choices[0].message.parsed
assert w == Weather(city="Paris", temp=21.5), w
ok("parse")

# 4. models.retrieve
m = client.models.retrieve(MODEL)
assert m.id == MODEL and m.object == "model", m
ok("models.retrieve")


# 5. Each error class.
def raises(cls, fn):
    try:
        fn()
    except cls as e:
        assert type(e) is cls or cls is openai.APIStatusError, (cls, type(e))
        return e
    raise AssertionError(f"{cls.__name__} not raised")


e = raises(
    openai.BadRequestError,
    lambda: client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], n=0
    ),
)
assert e.status_code == 400 and e.body["param"] == "n", e.body
ok("BadRequestError")

bad = openai.OpenAI(base_url=BASE, api_key="hth_wrong", max_retries=0, timeout=30)
e = raises(openai.AuthenticationError, lambda: bad.models.list())
assert e.code == "invalid_api_key", e.body
ok("AuthenticationError")

e = raises(openai.NotFoundError, lambda: client.models.retrieve("no-such-model"))
assert e.code == "model_not_found", e.body
ok("NotFoundError")

e = raises(
    openai.RateLimitError,
    lambda: client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}]),
)
assert e.code == "upstream_rate_limited", e.body
ok("RateLimitError")

e = raises(
    openai.APIStatusError,
    lambda: client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}]),
)
assert e.status_code >= 500 and isinstance(e, openai.InternalServerError), (e.status_code, type(e))
ok("APIStatusError 5xx")

print("all", flush=True)
sys.exit(0)
