/**
 * Limits on the spec's shape that its schema cannot express. The spec is the caller's JSON and travels on to
 * PostgreSQL (jsonb) and Temporal, whose serializers recurse: a `metadata` nested thousands of levels deep would
 * blow the stack there, so depth is checked here without recursion, before anything else walks the value. jsonb
 * also refuses the NUL character (`\u0000`) in any string or key, so a spec holding one is refused here too.
 */
import { ApiError } from '../errors';

/** Nesting of the whole spec text; checked before JSON.parse, so no parser or walker sees deeper input. */
export const MAX_SPEC_NESTING = 32;
/** Nesting inside `metadata`, counting the metadata object itself as 1. */
export const MAX_METADATA_DEPTH = 10;
/** Bytes each free-form field may take as JSON (`metadata`, `labels`, `buildArgs`). */
export const MAX_FREE_FORM_FIELD_BYTES = 64 * 1024;

/** Refuses a JSON text that nests objects and arrays deeper than `limit`, scanning it once without recursion. */
export function checkJsonNesting(text: string, limit = MAX_SPEC_NESTING): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') {
      inString = true;
    } else if (ch === '{' || ch === '[') {
      if (++depth > limit) {
        throw new ApiError(400, 'spec_too_deep', `the spec nests objects and arrays more than ${limit} levels deep; flatten it`, 'spec');
      }
    } else if (ch === '}' || ch === ']') {
      depth--;
    }
  }
}

/** Depth of nested objects and arrays in a parsed JSON value (a scalar is 0), walked with an explicit stack. */
function depthOf(value: unknown): number {
  let deepest = 0;
  const pending: [unknown, number][] = [[value, 1]];
  for (let item = pending.pop(); item; item = pending.pop()) {
    const [node, depth] = item;
    if (node === null || typeof node !== 'object') continue;
    deepest = Math.max(deepest, depth);
    for (const child of Object.values(node)) pending.push([child, depth + 1]);
  }
  return deepest;
}

/** Depth and size limits of the free-form fields, each refusal naming the field and the limit. */
export function checkFreeFormFields(spec: { metadata?: Record<string, unknown>; labels: Record<string, string>; buildArgs: Record<string, string> }): void {
  if (spec.metadata !== undefined && depthOf(spec.metadata) > MAX_METADATA_DEPTH) {
    throw new ApiError(400, 'spec_too_deep', `spec.metadata nests more than ${MAX_METADATA_DEPTH} levels deep; flatten it`, 'metadata');
  }
  for (const field of ['metadata', 'labels', 'buildArgs'] as const) {
    const value = spec[field];
    if (value === undefined) continue;
    const bytes = Buffer.byteLength(JSON.stringify(value));
    if (bytes > MAX_FREE_FORM_FIELD_BYTES) {
      throw new ApiError(400, 'spec_field_too_large', `spec.${field} takes ${bytes} bytes as JSON; at most ${MAX_FREE_FORM_FIELD_BYTES} are accepted, so shorten it`, field);
    }
  }
}

/** Whether a caller's text can be stored: PostgreSQL's text and jsonb refuse the NUL character. */
export function isStorableText(text: string): boolean {
  return !text.includes('\0');
}

/**
 * Refuses a spec with a NUL character in any string or object key, naming the field that holds it (for a key, the
 * object with that key), so the caller gets a 400 instead of PostgreSQL's refusal of the whole insert. The spec's
 * depth is already checked, and the walk uses an explicit stack all the same.
 */
export function checkStorableStrings(spec: unknown): void {
  const pending: [unknown, string[]][] = [[spec, []]];
  for (let item = pending.pop(); item; item = pending.pop()) {
    const [node, path] = item;
    if (typeof node === 'string' && !isStorableText(node)) throw nulRefusal(path, 'contains');
    if (node === null || typeof node !== 'object') continue;
    for (const [key, child] of Object.entries(node)) {
      if (!isStorableText(key)) throw nulRefusal(path, 'has a key that contains');
      pending.push([child, [...path, key]]);
    }
  }
}

function nulRefusal(path: string[], what: string): ApiError {
  const field = path.join('.') || 'spec';
  const name = path.length ? `spec.${field}` : 'the spec';
  return new ApiError(400, 'invalid_spec', `${name} ${what} a NUL character (\\u0000), which cannot be stored; remove it`, field);
}
