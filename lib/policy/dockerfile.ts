/**
 * What a Dockerfile makes BuildKit fetch and ask for, read the way BuildKit reads it, for the policy checks: every
 * image it pulls (FROM, COPY --from, RUN --mount=from, the `# syntax=` frontend), every URL an ADD downloads and
 * every RUN that asks for an entitlement. Build arguments are substituted as BuildKit does: global ARGs before the
 * first FROM (with the build's buildArgs overriding their defaults) for FROM, and the stage's ARGs and ENVs for the
 * instructions inside it. Stage names and `scratch` are not images. Heredoc bodies are skipped, so a line of a
 * heredoc that reads `FROM x` is not taken for an instruction.
 */

export type ImageUse = 'from' | 'copy-from' | 'mount-from' | 'syntax';

export interface ImageMention {
  /** The reference after ARG substitution, as written (not normalised). */
  image: string;
  use: ImageUse;
  /** 1-based line of the instruction (0 for a frontend named by the BUILDKIT_SYNTAX build argument). */
  line: number;
}

export interface UrlMention {
  url: string;
  line: number;
}

export interface EntitlementRequest {
  /** `security.insecure` or `network.host`. */
  entitlement: string;
  line: number;
}

export interface DockerfileFacts {
  images: ImageMention[];
  /** The custom frontend from `# syntax=` (or BUILDKIT_SYNTAX), when there is one. */
  frontend?: ImageMention;
  addUrls: UrlMention[];
  entitlements: EntitlementRequest[];
  /** Every ARG the Dockerfile declares, global or in a stage: a declared build argument is written into the image's history. */
  declaredArgs: { name: string; line: number }[];
}

interface Instruction {
  keyword: string;
  /** The instruction's text after the keyword, continuation lines joined. */
  rest: string;
  line: number;
}

/** The platform arguments BuildKit defines in the global scope without any ARG. */
function platformArgs(platform: string): Record<string, string> {
  const [os = 'linux', arch = 'amd64', variant = ''] = platform.split('/');
  return {
    TARGETPLATFORM: platform,
    TARGETOS: os,
    TARGETARCH: arch,
    TARGETVARIANT: variant,
    BUILDPLATFORM: 'linux/amd64',
    BUILDOS: 'linux',
    BUILDARCH: 'amd64',
    BUILDVARIANT: '',
  };
}

export function readDockerfile(text: string, buildArgs: Record<string, string> = {}, platform = 'linux/amd64'): DockerfileFacts {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const { instructions } = parse(lines);
  const facts: DockerfileFacts = { images: [], addUrls: [], entitlements: [], declaredArgs: [] };
  // BuildKit runs the image named by the first word of BUILDKIT_SYNTAX, or else of the detected syntax directive.
  const detected = detectSyntax(lines);
  const syntax = buildArgs.BUILDKIT_SYNTAX !== undefined ? { value: buildArgs.BUILDKIT_SYNTAX.trim().split(' ', 1)[0]!, line: 0 } : detected;
  if (syntax?.value) {
    facts.frontend = { image: syntax.value, use: 'syntax', line: syntax.line };
    facts.images.push(facts.frontend);
  }

  const globals: Record<string, string> = { ...platformArgs(platform) };
  const stages = new Set<string>();
  let stage: Record<string, string> | undefined;
  const isImage = (ref: string) => ref !== '' && ref.toLowerCase() !== 'scratch' && !stages.has(ref.toLowerCase()) && !/^\d+$/.test(ref);

  for (const { keyword, rest, line } of instructions) {
    const { flags, args } = splitFlags(rest);
    switch (keyword) {
      case 'ARG':
        for (const word of args) {
          const eq = word.indexOf('=');
          const name = eq >= 0 ? word.slice(0, eq) : word;
          facts.declaredArgs.push({ name, line });
          const scope = stage ?? globals;
          const fallback = eq >= 0 ? substitute(word.slice(eq + 1), stage ?? globals) : stage ? globals[name] : undefined;
          const value = buildArgs[name] ?? fallback;
          if (value !== undefined) scope[name] = value;
        }
        break;
      case 'ENV':
        if (stage) for (const [name, value] of envPairs(args)) stage[name] = substitute(value, stage);
        break;
      case 'FROM': {
        const image = substitute(args[0] ?? '', { ...buildArgs, ...globals }).trim();
        if (isImage(image)) facts.images.push({ image, use: 'from', line });
        if (args[1]?.toUpperCase() === 'AS' && args[2]) stages.add(args[2].toLowerCase());
        // Platform arguments are visible in a stage once redeclared; the build's arguments are as well.
        stage = {};
        break;
      }
      case 'COPY': {
        const from = flags.get('from');
        if (from !== undefined && stage) {
          const image = substitute(from, stage).trim();
          if (isImage(image)) facts.images.push({ image, use: 'copy-from', line });
        }
        break;
      }
      case 'ADD':
        for (const source of sourcesOf(rest, args)) {
          const url = substitute(source, stage ?? {});
          if (/^(?:https?|git):\/\//i.test(url) || /^git@/i.test(url)) facts.addUrls.push({ url, line });
        }
        break;
      case 'RUN':
        for (const mount of flags.getAll('mount')) {
          const from = mountOptions(mount).get('from');
          if (from !== undefined) {
            const image = substitute(from, stage ?? {}).trim();
            if (isImage(image)) facts.images.push({ image, use: 'mount-from', line });
          }
        }
        if (flags.getAll('security').some((v) => v.toLowerCase() === 'insecure')) facts.entitlements.push({ entitlement: 'security.insecure', line });
        if (flags.getAll('network').some((v) => v.toLowerCase() === 'host')) facts.entitlements.push({ entitlement: 'network.host', line });
        break;
    }
  }
  return facts;
}

/** Flags (`--name=value`, repeatable) in front of an instruction's arguments, and the arguments after them. */
function splitFlags(rest: string): { flags: { get(name: string): string | undefined; getAll(name: string): string[] }; args: string[] } {
  const words = shellWords(rest);
  const found: Array<[string, string]> = [];
  let i = 0;
  for (; i < words.length && words[i]!.startsWith('--'); i++) {
    const word = words[i]!.slice(2);
    const eq = word.indexOf('=');
    found.push(eq >= 0 ? [word.slice(0, eq).toLowerCase(), word.slice(eq + 1)] : [word.toLowerCase(), '']);
  }
  return {
    flags: {
      get: (name) => found.find(([n]) => n === name)?.[1],
      getAll: (name) => found.filter(([n]) => n === name).map(([, v]) => v),
    },
    args: words.slice(i),
  };
}

/** Words split on unquoted whitespace, quotes removed (enough for flags, ARG and FROM). */
function shellWords(text: string): string[] {
  const words: string[] = [];
  let current = '';
  let quote: string | undefined;
  let inWord = false;
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else current += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(current);
  return words;
}

/** `type=cache,from=img,target=/x` (a CSV field may be quoted) as a map of its keys. */
function mountOptions(value: string): Map<string, string> {
  const options = new Map<string, string>();
  for (const field of value.match(/(?:"[^"]*"|[^,])+/g) ?? []) {
    const eq = field.indexOf('=');
    const key = (eq >= 0 ? field.slice(0, eq) : field).trim().toLowerCase();
    const raw = eq >= 0 ? field.slice(eq + 1).trim() : '';
    options.set(key, raw.replace(/^"(.*)"$/, '$1'));
  }
  return options;
}

/** The sources of an ADD: its JSON array form or its words, without the destination. */
function sourcesOf(rest: string, args: string[]): string[] {
  const json = rest.replace(/^(\s*--\S+)*\s*/, '');
  if (json.startsWith('[')) {
    try {
      const parsed = JSON.parse(json) as unknown;
      if (Array.isArray(parsed) && parsed.every((p) => typeof p === 'string')) return (parsed as string[]).slice(0, -1);
    } catch {
      // Not valid JSON: Docker then reads it as the shell form, and so do we.
    }
  }
  return args.slice(0, -1).filter((a) => !a.startsWith('<<'));
}

/** ENV's `KEY=value ...` form or its legacy `KEY value` form. */
function envPairs(args: string[]): Array<[string, string]> {
  if (args.length >= 1 && !args[0]!.includes('=')) return [[args[0]!, args.slice(1).join(' ')]];
  return args.map((w) => {
    const eq = w.indexOf('=');
    return [w.slice(0, eq), w.slice(eq + 1)] as [string, string];
  });
}

/** `$NAME`, `${NAME}`, `${NAME:-word}` / `${NAME-word}` and `${NAME:+word}` / `${NAME+word}`, as BuildKit's shell lexer. */
export function substitute(text: string, vars: Record<string, string>): string {
  return text.replace(/\\\$|\$(?:\{(\w+)(?:(:?)([-+])((?:[^}]|\}(?!\}))*?))?\}|(\w+))/g, (match, braced: string | undefined, colon: string | undefined, op: string | undefined, word: string | undefined, bare: string | undefined) => {
    if (match === '\\$') return '$';
    const name = (braced ?? bare)!;
    const value = vars[name];
    const set = colon ? value !== undefined && value !== '' : value !== undefined;
    if (op === '-') return set ? value! : substitute(word ?? '', vars);
    if (op === '+') return set ? substitute(word ?? '', vars) : '';
    return value ?? '';
  });
}

/** A directive after its comment marker, as BuildKit's parser/directives.go matches it. */
const DIRECTIVE = /^([a-zA-Z][a-zA-Z0-9]*)[ \t\f\r\n]*=[ \t\f\r\n]*(.+?)[ \t\f\r\n]*$/;
/** Any other name ends the directives, as a line that is not a directive does. */
const DIRECTIVE_NAMES = new Set(['syntax', 'escape', 'check']);
const HEREDOC = /<<-?\s*(["']?)([A-Za-z_][A-Za-z0-9_]*)\1/g;

type Directives = Record<string, { value: string; line: number }>;

/**
 * The directives at the top of `lines` written behind `comment` (`#`, or `//` in the syntax detection's fallback),
 * with their 1-based lines counted from `firstLine`. They end at the first line that is not one, or that repeats one.
 */
function directivesOf(lines: readonly string[], comment: string, firstLine: number): Directives {
  const directives: Directives = {};
  for (const [i, line] of lines.entries()) {
    if (!line.startsWith(comment)) break;
    const [, name, value] = DIRECTIVE.exec(line.slice(comment.length).replace(/^\s+/, '')) ?? [];
    const key = name?.toLowerCase();
    if (key === undefined || !DIRECTIVE_NAMES.has(key) || key in directives) break;
    directives[key] = { value: value!, line: firstLine + i };
  }
  return directives;
}

/**
 * The frontend the Dockerfile asks for, found as BuildKit's dockerfile frontend finds it before anything else
 * (parser.DetectSyntax), since that decides which code reads the rest: a first line starting `#!` is skipped, then a
 * `# syntax=` directive counts, else a `// syntax=` one, else a file that is a JSON object with a string "syntax".
 * Its value is the image (the first word; a JSON one whole).
 */
function detectSyntax(dockerfileLines: readonly string[]): { value: string; line: number } | undefined {
  const shebang = dockerfileLines[0]!.startsWith('#!');
  const lines = shebang ? dockerfileLines.slice(1) : dockerfileLines;
  const first = shebang ? 2 : 1;
  const directive = directivesOf(lines, '#', first).syntax ?? directivesOf(lines, '//', first).syntax;
  if (directive) return { value: directive.value.split(' ', 1)[0]!, line: directive.line };
  try {
    const json = JSON.parse(lines.join('\n')) as unknown;
    if (json && typeof json === 'object' && !Array.isArray(json)) {
      const value = (json as Record<string, unknown>).syntax;
      if (typeof value === 'string') return { value, line: first };
    }
  } catch {
    // Not JSON: a Dockerfile without a frontend of its own.
  }
  return undefined;
}

/**
 * The instructions with continuation lines joined (comment lines inside a continuation dropped, as BuildKit does)
 * and heredoc bodies skipped, read with the escape character of the `# escape=` directive (the instruction parser
 * reads directives from the very first line, a `#!` one included, which ends them).
 */
function parse(lines: readonly string[]): { instructions: Instruction[] } {
  const directives = directivesOf(lines, '#', 1);
  let index = Object.keys(directives).length;
  const escape = directives.escape?.value === '`' ? '`' : '\\';
  const instructions: Instruction[] = [];
  while (index < lines.length) {
    const start = index;
    let text = '';
    for (; index < lines.length; index++) {
      const raw = lines[index]!;
      const trimmed = raw.trim();
      if (text && trimmed.startsWith('#')) continue;
      if (!text && (trimmed === '' || trimmed.startsWith('#'))) {
        index++;
        break;
      }
      const continued = trimmed.endsWith(escape);
      text += continued ? `${trimmed.slice(0, -1)} ` : trimmed;
      if (!continued) {
        index++;
        break;
      }
    }
    text = text.trim();
    if (!text) continue;
    const [keyword = ''] = text.split(/\s/, 1);
    const rest = text.slice(keyword.length).trim();
    instructions.push({ keyword: keyword.toUpperCase(), rest, line: start + 1 });
    // Heredocs (RUN <<EOF / COPY <<EOF): their bodies follow the instruction, one per delimiter, in order.
    if (['RUN', 'COPY', 'ADD'].includes(keyword.toUpperCase())) {
      for (const m of rest.matchAll(HEREDOC)) {
        const delimiter = m[2]!;
        while (index < lines.length && lines[index]!.replace(/^\t+/, '').trimEnd() !== delimiter) index++;
        index++;
      }
    }
  }
  return { instructions };
}
