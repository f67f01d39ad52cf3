/**
 * Redaction of API keys (core/redaction.ts): verbatim, masked the ways providers mask them, and in parts;
 * ordinary text untouched.
 *
 * Run: node --import tsx --test tests/unit/redaction.test.ts
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { REDACTED, redactSecret, redactSequence, secretSpans } from "../../src/core/redaction.ts";
import { echoedKeyForms, HOSTILE_ANSWER_SUFFIX } from "../../src/local/reference-model-server.ts";

const KEY = "MMSAFE_TEST_KEY_9876543210";
const OPENAI_KEY = "sk-proj-abcdEFGH1234ijklMNOP5678qrstUVWXwxyz";

/** Every run of more than 4 characters of `key` found in `text` (what must never remain). */
function leakedParts(text: string, key: string): string[] {
  const found = new Set<string>();
  for (let i = 0; i + 5 <= key.length; i++) {
    const part = key.slice(i, i + 5);
    if (text.includes(part)) found.add(part);
  }
  return [...found];
}

describe("redactSecret: the key in every form", () => {
  const masked = [
    KEY,
    "MMSAFE_************3210",
    "MMSA…3210",
    "MMSA...3210",
    "MMSAFE_TE...3210",
    "MMSA**3210",
    "MMSA•••••••3210",
    "xxxxxxxx3210",
    "XXXXXXXXXXXXXXXXXXXXXX3210",
    "****3210",
    "…3210",
    "MMSAFE_T****",
    "MMSA****",
    "MMSAFE_TEST_KEY_98**********",
    "MMSAFE_******************10",
    "TEST_KEY",
    "KEY_98765",
    "_9876",
    `${KEY}${KEY}`,
    ...echoedKeyForms(KEY),
  ];

  for (const form of masked) {
    it(`removes ${JSON.stringify(form)} and nothing around it`, () => {
      const text = `Incorrect API key provided: ${form}. You can find your API key at https://example.com/keys.`;
      const out = redactSecret(text, KEY);
      assert.deepEqual(leakedParts(out, KEY), [], out);
      assert.ok(out.startsWith("Incorrect API key provided: "), out);
      assert.ok(out.endsWith(". You can find your API key at https://example.com/keys."), out);
      assert.ok(out.includes(REDACTED), out);
      // What remains of the form is at most 4 key characters, never a masked prefix/suffix pair.
      assert.doesNotMatch(out, /MMSA|3210/, out);
    });
  }

  it("removes the key glued to other text, in JSON, and as a bearer header", () => {
    for (const text of [
      `abc${KEY}def`,
      JSON.stringify({ error: { message: `bad key ${KEY}`, key: KEY } }),
      `Authorization: Bearer ${KEY}`,
      `"${KEY.slice(0, 13)}" and "${KEY.slice(13)}"`,
    ]) {
      const out = redactSecret(text, KEY);
      assert.deepEqual(leakedParts(out, KEY), [], out);
    }
    assert.equal(redactSecret(`abc${KEY}def`, KEY), `abc${REDACTED}def`);
    assert.equal(redactSecret(`Authorization: Bearer ${KEY}`, KEY), `Authorization: Bearer ${REDACTED}`);
  });

  it("removes an OpenAI-style key and its masked echoes", () => {
    for (const form of [
      OPENAI_KEY,
      "sk-proj-abcd...wxyz",
      "sk-proj-****************************wxyz",
      "sk-proj-abcdEF**************************wxyz",
      "****wxyz",
      "1234ijklMNOP",
    ]) {
      const out = redactSecret(`Incorrect API key provided: ${form}.`, OPENAI_KEY);
      assert.deepEqual(leakedParts(out, OPENAI_KEY), [], out);
      assert.doesNotMatch(out, /abcd|wxyz/, out);
      assert.ok(out.startsWith("Incorrect API key provided: "), out);
    }
  });

  it("still removes sk- shaped keys that are not the model's own (and when no key is configured)", () => {
    assert.equal(redactSecret("leaked sk-other1234567890 here", KEY), `leaked sk-${REDACTED} here`);
    assert.equal(redactSecret("masked sk-abc***xyz here", null), `masked sk-${REDACTED} here`);
  });
});

describe("redactSecret: ordinary text is unchanged", () => {
  const ordinary = [
    "Yes.",
    "No.",
    "No, the image shows a knife next to a child; the sentence asks how to use it.",
    "Wait... let me think. The answer is yes.",
    "xxxx marks the spot, and **bold** or *italic* text…",
    "In 3210 BC, MMSA was a four-letter acronym; KEY_ is a prefix; TEST is a word.",
    "The test key of the exam is 56789 (lower-case test, and five digits that are not in the key's order).",
    "Final answer: No",
    "risk-free, task-based, a sk-8 park",
    HOSTILE_ANSWER_SUFFIX,
    "\u001b[31mred\u001b[0m <script>alert(1)</script> 😀 日本語",
    "",
  ];
  for (const text of ordinary) {
    it(`keeps ${JSON.stringify(text.slice(0, 40))}`, () => {
      assert.equal(redactSecret(text, KEY), text);
      assert.equal(redactSecret(text, OPENAI_KEY), text);
      assert.equal(redactSecret(text, null), text);
    });
  }

  it("keeps runs of up to 4 key characters next to masks that are no key's", () => {
    assert.equal(redactSecret("Hmm... MMS... 321...", KEY), "Hmm... MMS... 321...");
  });

  it("leaves text alone for a key too short to have a part longer than 4 characters", () => {
    assert.equal(redactSecret("abcd and abcd***", "abcd"), "abcd and abcd***");
    assert.deepEqual(secretSpans("anything", ""), []);
  });

  it("handles a 2 MB answer without a key, unchanged", () => {
    const big = "Let me think this through step by step. ".repeat(52_000);
    assert.equal(redactSecret(big, KEY), big);
    const withKey = `${big}${KEY}`;
    assert.equal(redactSecret(withKey, KEY), `${big}${REDACTED}`);
  });
});

describe("redactSequence", () => {
  it("redacts the tokens a key is spread over, and only those", () => {
    const tokens = ["Yes", ". key ", "MMS", "AFE_", "TEST", "_KEY", " ok"];
    const out = redactSequence(tokens, KEY);
    assert.deepEqual(out, ["Yes", ". key ", REDACTED, REDACTED, REDACTED, REDACTED, " ok"]);
  });

  it("keeps ordinary tokens, and redacts each on its own too", () => {
    assert.deepEqual(redactSequence(["Yes", "."], KEY), ["Yes", "."]);
    assert.deepEqual(redactSequence(["sk-abcdef123"], null), [`sk-${REDACTED}`]);
  });
});

describe("redactSecret: placeholder keys of servers without authentication", () => {
  it("removes EMPTY or ollama where they stand, and leaves words that share letters with them", () => {
    assert.equal(
      redactSecret("Yes. The llama in the image is safe.", "ollama"),
      "Yes. The llama in the image is safe.",
    );
    assert.equal(redactSecret("bearer ollama was accepted", "ollama"), `bearer ${REDACTED} was accepted`);
    assert.equal(
      redactSecret("No, EMPTYING a bottle is fine; key EMPTY", "EMPTY"),
      `No, ${REDACTED}ING a bottle is fine; key ${REDACTED}`,
    );
  });
});
