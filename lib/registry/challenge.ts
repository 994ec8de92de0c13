/** WWW-Authenticate challenges of registries (RFC 9110 §11.6.1 syntax, Docker token-auth parameters). */

export interface Challenge {
  scheme: 'bearer' | 'basic' | string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate value into its challenges. Registries send one; a header listing several is split at
 * the points where a new scheme name starts, so that commas inside quoted values (scope lists) are kept.
 */
export function parseChallenges(header: string | null | undefined): Challenge[] {
  const challenges: Challenge[] = [];
  if (!header) return challenges;
  const token = /\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?:\s+|$)/y;
  const param = /\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/y;
  let at = 0;
  while (at < header.length) {
    token.lastIndex = at;
    const scheme = token.exec(header);
    if (!scheme) break;
    at = token.lastIndex;
    const params: Record<string, string> = {};
    for (;;) {
      param.lastIndex = at;
      const p = param.exec(header);
      // A bare word followed by a space starts the next challenge, not a parameter.
      if (!p) break;
      params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
      at = param.lastIndex;
    }
    challenges.push({ scheme: scheme[1]!.toLowerCase(), params });
    while (header[at] === ',' || header[at] === ' ') at++;
  }
  return challenges;
}

/** The challenge to answer: Bearer when offered (it carries the scope), else Basic. */
export function preferredChallenge(header: string | null | undefined): Challenge | undefined {
  const all = parseChallenges(header);
  return all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic');
}
