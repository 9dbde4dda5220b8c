// Drives Hearth with JavaScript clients nobody here wrote: the official `openai` Node SDK and
// Continue's `@continuedev/openai-adapters` (its `fimStream`, which Continue uses for Codestral
// and other FIM models). Run by tests/it/sdk.rs from the directory scripts/node-clients.sh
// installs them into, so `import` finds them there; the stand-in upstream answers in the order
// of the steps below. Prints `ok <step>` per step; any failure throws, so node exits non-zero.

import assert from "node:assert/strict";
import OpenAI from "openai";
import { constructLlmApi } from "@continuedev/openai-adapters";

const BASE = process.env.HEARTH_URL + "/v1";
const KEY = process.env.HEARTH_KEY;
const MODEL = process.env.HEARTH_MODEL;

const ok = (step) => console.log(`ok ${step}`);

const client = new OpenAI({ baseURL: BASE, apiKey: KEY, maxRetries: 0, timeout: 30000 });

// 1. Chat, whole.
const chat = await client.chat.completions.create({
  model: MODEL,
  messages: [{ role: "user", content: "hi" }],
  temperature: 0.32,
});
assert.equal(chat.choices[0].message.content, "Hello there.");
assert.equal(chat.choices[0].finish_reason, "stop");
ok("chat");

// 2. Chat, streamed, with usage.
const stream = await client.chat.completions.create({
  model: MODEL,
  messages: [{ role: "user", content: "hi" }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let usage = null;
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? "";
  usage = chunk.usage ?? usage;
}
assert.equal(text, "Hello again.");
assert.ok(usage && usage.completion_tokens > 0, JSON.stringify(usage));
ok("chat streamed");

// 3. An invalid value raises the SDK's BadRequestError, naming the field.
await assert.rejects(
  client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: "hi" }],
    temperature: 5,
  }),
  (e) => e instanceof OpenAI.BadRequestError && e.param === "temperature",
);
ok("BadRequestError");

// 4. A wrong key raises AuthenticationError.
await assert.rejects(
  new OpenAI({ baseURL: BASE, apiKey: "wrong", maxRetries: 0 }).models.list(),
  (e) => e instanceof OpenAI.AuthenticationError,
);
ok("AuthenticationError");

// 5. Continue's fimStream against /v1/fim/completions, configured as Continue configures a
// Mistral (Codestral) provider, with Hearth as its base URL.
const fim = constructLlmApi({ provider: "mistral", apiBase: BASE + "/", apiKey: KEY });
assert.ok(fim, "no adapter for provider mistral");
let middle = "";
for await (const chunk of fim.fimStream(
  {
    model: process.env.HEARTH_FIM_MODEL,
    prompt: "def add(a, b):\n    return ",
    suffix: "\n",
    max_tokens: 20,
    temperature: 0.2,
  },
  new AbortController().signal,
)) {
  middle += chunk.choices[0]?.delta?.content ?? "";
}
assert.equal(middle, "a + b");
ok("fimStream");

ok("all");
