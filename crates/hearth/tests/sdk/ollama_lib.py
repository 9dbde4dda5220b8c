"""Drives Hearth's Ollama door with the official `ollama` Python library; run by
tests/it/sdk.rs against a scripted upstream whose replies come in the order of the steps."""

import os

import ollama

client = ollama.Client(host=os.environ["HEARTH_URL"], headers={"Authorization": "Bearer " + os.environ["HEARTH_KEY"]})


def ok(step):
    print("ok", step, flush=True)


r = client.generate(
    model="codestral",
    prompt="def add(a, b):\n    return ",
    suffix="\n",
    options={"temperature": 0.2, "num_predict": 20},
)
assert r.response == "a + b", r
assert r.done, r
ok("generate with suffix")

parts = list(client.generate(model="codestral", prompt="x = ", suffix="\n", stream=True))
assert "".join(p.response for p in parts) == "4 + 2", parts
assert parts[-1].done and all(not p.done for p in parts[:-1]), parts
ok("generate streamed")

c = client.chat(model="mixtral", messages=[{"role": "user", "content": "hi"}])
assert c.message.role == "assistant" and c.message.content == "Hello.", c
ok("chat")

streamed = "".join(
    p.message.content
    for p in client.chat(model="mixtral", messages=[{"role": "user", "content": "hi"}], stream=True)
)
assert streamed == "Hello again.", streamed
ok("chat streamed")

names = sorted(m.model for m in client.list().models)
assert names == ["codestral", "mixtral"], names
ok("list")

s = client.show("codestral")
assert "insert" in (s.capabilities or []), s
ok("show")

try:
    client.show("nope")
    raise AssertionError("no error for an unknown model")
except ollama.ResponseError as e:
    assert e.status_code == 404, e
ok("ResponseError")
print("all", flush=True)
