/** Temporal histories as the suites search them for what must not be there. */

/** A Temporal history as text: every value, and every payload's bytes both as UTF-8 and as base64. */
export function historyText(value: unknown): string {
  const parts: string[] = [];
  const walk = (v: unknown) => {
    if (v instanceof Uint8Array) parts.push(Buffer.from(v).toString('utf8'), Buffer.from(v).toString('base64'));
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    else if (v !== null && v !== undefined) parts.push(String(v));
  };
  walk(value);
  return parts.join('\n');
}
