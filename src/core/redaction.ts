/**
 * Removing API keys from text that came from (or through) an endpoint, before it is stored, cached or shown.
 *
 * Endpoints echo keys: verbatim in an error body or inside a 200 answer, and masked in the shapes providers
 * use for "Incorrect API key provided" messages (`sk-proj-abcd...wxyz`, `MMSAFE_************3210`,
 * `MMSA…3210`, `xxxxxxxx3210`). The rule enforced here: no part of the key longer than
 * {@link MAX_KEPT_FRAGMENT} characters is ever kept, and a masked form goes with its visible part.
 *
 * Only substrings of the actual key count (plus the generic `sk-…` shape of provider keys), so ordinary text
 * is left alone: a model's answer that shares no 5-character run with the key is returned unchanged.
 *
 * Pure: no I/O, no environment.
 */

/** What a removed key, or part of one, is replaced with. */
export const REDACTED = "[redacted]";

/** The longest run of a key's characters that may remain in text (4: "no part longer than 4 characters"). */
export const MAX_KEPT_FRAGMENT = 4;

/** Visible key characters beside a mask run that make it a masked key (`MMSA…`, `…3210`). */
const MASK_ANCHOR = 4;

/**
 * A run of masking characters: `*`, bullets, `…`, two or more `.` or two or more `x`/`X`, in any mix
 * (`****`, `...`, `•••`, `xxxxxxxx`, `**…**`).
 */
const MASK_RUN = /(?:[*•●…]|\.{2,}|[xX]{2,})+/g;

/**
 * Anything shaped like a provider key (`sk-…`, `sk-proj-…`), masked or not, whatever key it belongs to.
 * `\b` keeps words such as "risk-free" or "task-based" out.
 */
const PROVIDER_KEY = /\bsk-[A-Za-z0-9_*.…•-]{3,}/g;

type Span = readonly [start: number, end: number];

/**
 * Short all-letter keys (`EMPTY` for vLLM, `ollama`) are placeholders that servers without authentication
 * accept, not secrets: only their verbatim occurrences are removed, so ordinary words ("llama") survive.
 */
const PLACEHOLDER_KEY = /^[A-Za-z]{1,11}$/;

/**
 * `text` without `secret` in any form: verbatim, any part of it longer than {@link MAX_KEPT_FRAGMENT}
 * characters, and masked forms (a prefix and/or a suffix of at least 4 of its characters around a run of
 * `*`, `…`, `...` or `x`). Each removed stretch becomes {@link REDACTED}; `sk-…` shapes become
 * `sk-[redacted]`. A `secret` of null (no key configured) or shorter than 5 characters only gets the generic
 * `sk-…` treatment; a short all-letter placeholder (`EMPTY`, `ollama`) is removed where it stands verbatim.
 *
 * @example
 * redactSecret("key MMSA…3210 rejected", "MMSAFE_TEST_KEY_9876543210") // "key [redacted] rejected"
 */
export function redactSecret(text: string, secret: string | null): string {
  return replaceSpans(text, secretSpans(text, secret)).replace(PROVIDER_KEY, `sk-${REDACTED}`);
}

/**
 * Redacts a sequence of text pieces that are shown apart but were produced together (the tokens of an
 * answer's log-probabilities): a piece is replaced by {@link REDACTED} when it overlaps a trace of the key
 * in the pieces joined, so a key spread over several short tokens is caught too; every piece is also
 * redacted on its own.
 */
export function redactSequence(pieces: readonly string[], secret: string | null): string[] {
  const spans = secretSpans(pieces.join(""), secret);
  let offset = 0;
  return pieces.map((piece) => {
    const start = offset;
    offset += piece.length;
    const overlaps = spans.some(([s, e]) => s < offset && e > start && offset > start);
    return overlaps ? REDACTED : redactSecret(piece, secret);
  });
}

/** Where traces of `secret` are in `text`: sorted, merged [start, end) spans. */
export function secretSpans(text: string, secret: string | null): Span[] {
  if (secret === null || secret.length <= MAX_KEPT_FRAGMENT || text.length <= MAX_KEPT_FRAGMENT) return [];
  if (PLACEHOLDER_KEY.test(secret)) {
    const spans: Span[] = [];
    for (let at = text.indexOf(secret); at !== -1; at = text.indexOf(secret, at + secret.length))
      spans.push([at, at + secret.length]);
    return spans;
  }
  return merge([...fragmentSpans(text, secret), ...maskedSpans(text, secret)]);
}

/** Every occurrence of a (MAX_KEPT_FRAGMENT + 1)-character run of the secret: covers any longer part, the whole key too. */
function fragmentSpans(text: string, secret: string): Span[] {
  const size = MAX_KEPT_FRAGMENT + 1;
  const grams = new Set<string>();
  for (let i = 0; i + size <= secret.length; i++) grams.add(secret.slice(i, i + size));
  const keyChars = new Set(secret);
  const spans: Span[] = [];
  for (let i = 0; i + size <= text.length; ) {
    // A run containing a character the key lacks cannot match: skip every start whose run contains it.
    const last = text[i + size - 1] ?? "";
    if (!keyChars.has(last)) {
      i += size;
      continue;
    }
    if (grams.has(text.slice(i, i + size))) spans.push([i, i + size]);
    i++;
  }
  return spans;
}

/**
 * Mask runs beside at least {@link MASK_ANCHOR} of the key's first characters (before the run) or last
 * characters (after it), with whatever part of the key shows on the other side.
 */
function maskedSpans(text: string, secret: string): Span[] {
  const spans: Span[] = [];
  for (const match of text.matchAll(MASK_RUN)) {
    const start = match.index;
    const end = start + match[0].length;
    const prefix = keyPrefixBefore(text, start, secret);
    const suffix = keySuffixAfter(text, end, secret);
    if (prefix >= MASK_ANCHOR || suffix >= MASK_ANCHOR) spans.push([start - prefix, end + suffix]);
  }
  return spans;
}

/** Length of the longest start of `secret` that `text` has just before `at`. */
function keyPrefixBefore(text: string, at: number, secret: string): number {
  for (let n = Math.min(at, secret.length); n > 0; n--)
    if (text.charCodeAt(at - 1) === secret.charCodeAt(n - 1) && text.startsWith(secret.slice(0, n), at - n))
      return n;
  return 0;
}

/** Length of the longest end of `secret` that `text` has from `at`. */
function keySuffixAfter(text: string, at: number, secret: string): number {
  for (let n = Math.min(text.length - at, secret.length); n > 0; n--)
    if (
      text.charCodeAt(at) === secret.charCodeAt(secret.length - n) &&
      text.startsWith(secret.slice(secret.length - n), at)
    )
      return n;
  return 0;
}

function merge(spans: Span[]): Span[] {
  const sorted = [...spans].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [start, end] of sorted) {
    const last = out.at(-1);
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else out.push([start, end]);
  }
  return out;
}

function replaceSpans(text: string, spans: readonly Span[]): string {
  if (spans.length === 0) return text;
  let out = "";
  let at = 0;
  for (const [start, end] of spans) {
    out += text.slice(at, start) + REDACTED;
    at = end;
  }
  return out + text.slice(at);
}
