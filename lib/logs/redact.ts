/** Replaces every occurrence of a known secret value (and its base64 form) with a mask. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    for (const form of [secret, Buffer.from(secret).toString('base64')]) {
      if (out.includes(form)) out = out.split(form).join('*****');
    }
  }
  return out;
}
