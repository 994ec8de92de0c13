/**
 * What a Dockerfile makes BuildKit fetch and ask for, read the way BuildKit reads it, for the policy checks: every
 * image it pulls (FROM, COPY --from, RUN --mount=from, the `# syntax=` frontend), every URL an ADD downloads and
 * every RUN that asks for an entitlement. Build arguments are substituted as BuildKit does: global ARGs before the
 * first FROM (with the build's buildArgs overriding their defaults) for FROM, and the stage's ARGs and ENVs for the
 * instructions inside it. Stage names and `scratch` are not images. Heredoc bodies are skipped, so a line of a
 * heredoc that reads `FROM x` is not taken for an instruction. ONBUILD triggers are read as the instructions they are,
 * since BuildKit runs them in any build FROM the image (another stage of the same Dockerfile included).
 *
 * Everything here reads text a consumer sends (up to 1 MiB) on the API's event loop, so it is written as scanners
 * that look at each character a bounded number of times: no regular expression that can backtrack over the text.
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
  /** An ONBUILD trigger: run by the builds FROM this stage's image, not by this one. */
  trigger?: boolean;
}

/** The variables an instruction sees: ARGs and ENVs, and the ENVs alone (what the image keeps for a build FROM it). */
interface Scope {
  vars: Record<string, string>;
  env: Record<string, string>;
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
  // Lines end at \n only, as BuildKit's scanner splits them; the \r of a \r\n is trimmed where BuildKit trims it.
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  const { instructions, escape } = parse(lines);
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
  let stage: (Scope & { triggers: Instruction[] }) | undefined;
  const isImage = (ref: string) => ref !== '' && ref.toLowerCase() !== 'scratch' && !stages.has(ref.toLowerCase()) && !/^\d+$/.test(ref);
  const sub = (word: string, vars: Record<string, string>) => substitute(word, vars, escape);

  /** One instruction read in `scope` (undefined before the first FROM, where ARGs are global). */
  const read = ({ keyword, rest, line }: Instruction, scope: Scope | undefined) => {
    const { flags, args } = splitFlags(rest);
    switch (keyword) {
      case 'ARG':
        for (const word of args) {
          const eq = word.indexOf('=');
          const name = eq >= 0 ? word.slice(0, eq) : word;
          facts.declaredArgs.push({ name, line });
          const fallback = eq >= 0 ? sub(word.slice(eq + 1), scope?.vars ?? globals) : scope ? own(globals, name) : undefined;
          const value = own(buildArgs, name) ?? fallback;
          if (value !== undefined) define(scope?.vars ?? globals, name, value);
        }
        break;
      case 'ENV':
        if (scope) {
          for (const [name, value] of envPairs(args)) {
            const expanded = sub(value, scope.vars);
            define(scope.vars, name, expanded);
            define(scope.env, name, expanded);
          }
        }
        break;
      case 'FROM': {
        const image = sub(args[0] ?? '', { ...buildArgs, ...globals }).trim();
        if (isImage(image)) facts.images.push({ image, use: 'from', line });
        if (args[1]?.toUpperCase() === 'AS' && args[2]) stages.add(args[2].toLowerCase());
        // Platform arguments are visible in a stage once redeclared; the build's arguments are as well.
        stage = { vars: {}, env: {}, triggers: [] };
        break;
      }
      case 'COPY': {
        const from = flags.get('from');
        if (from !== undefined && scope) {
          const image = sub(from, scope.vars).trim();
          if (isImage(image)) facts.images.push({ image, use: 'copy-from', line });
        }
        break;
      }
      case 'ADD':
        for (const source of sourcesOf(rest, args)) {
          const url = sub(source, scope?.vars ?? {});
          if (/^(?:https?|git):\/\//i.test(url) || /^git@/i.test(url)) facts.addUrls.push({ url, line });
        }
        break;
      case 'RUN':
        for (const mount of flags.getAll('mount')) {
          const from = mountOptions(mount).get('from');
          if (from !== undefined) {
            const image = sub(from, scope?.vars ?? {}).trim();
            if (isImage(image)) facts.images.push({ image, use: 'mount-from', line });
          }
        }
        if (flags.getAll('security').some((v) => v.toLowerCase() === 'insecure')) facts.entitlements.push({ entitlement: 'security.insecure', line });
        if (flags.getAll('network').some((v) => v.toLowerCase() === 'host')) facts.entitlements.push({ entitlement: 'network.host', line });
        break;
    }
  };

  // A stage's triggers run, in order, first thing in a build FROM its image: they see the ENVs the image keeps (as at
  // the end of the stage) and what earlier triggers declare, and the build arguments that build is given (taken to
  // be this build's, as when a consumer builds FROM its own image).
  const runTriggers = (triggers: Instruction[], env: Record<string, string>) => {
    const scope: Scope = { vars: { ...env }, env: { ...env } };
    for (const trigger of triggers) read(trigger, scope);
  };
  const orphanTriggers: Instruction[] = [];
  for (const instruction of instructions) {
    if (instruction.trigger) {
      (stage?.triggers ?? orphanTriggers).push(instruction);
      continue;
    }
    if (instruction.keyword === 'FROM' && stage) runTriggers(stage.triggers, stage.env);
    read(instruction, stage);
  }
  if (stage) runTriggers(stage.triggers, stage.env);
  runTriggers(orphanTriggers, {});
  return facts;
}

/** The object's own value for `name` (never one of Object.prototype's, for a name like `constructor`). */
function own(vars: Record<string, string>, name: string): string | undefined {
  return Object.hasOwn(vars, name) ? vars[name] : undefined;
}

/** Sets `name` as an own value, `__proto__` included. */
function define(vars: Record<string, string>, name: string, value: string): void {
  Object.defineProperty(vars, name, { value, writable: true, enumerable: true, configurable: true });
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
  const json = rest.slice(flagsEnd(rest));
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

/** Where the `--flag` words in front of an instruction's arguments end, and the white space after them. */
function flagsEnd(rest: string): number {
  let i = 0;
  for (;;) {
    while (i < rest.length && /\s/.test(rest[i]!)) i++;
    if (!rest.startsWith('--', i)) return i;
    while (i < rest.length && !/\s/.test(rest[i]!)) i++;
  }
}

/** ENV's `KEY=value ...` form or its legacy `KEY value` form. */
function envPairs(args: string[]): Array<[string, string]> {
  if (args.length >= 1 && !args[0]!.includes('=')) return [[args[0]!, args.slice(1).join(' ')]];
  return args.map((w) => {
    const eq = w.indexOf('=');
    return [w.slice(0, eq), w.slice(eq + 1)] as [string, string];
  });
}

/** White space as Go's unicode.IsSpace, which BuildKit's parser trims lines with and its shell lexer splits words on. */
function isGoSpace(ch: string | undefined): boolean {
  if (ch === undefined) return false;
  const code = ch.charCodeAt(0);
  if (code < 0x80) return code === 0x20 || (code >= 0x09 && code <= 0x0d);
  return code === 0x85 || code === 0xa0 || code === 0x1680 || (code >= 0x2000 && code <= 0x200a) || code === 0x2028 || code === 0x2029 || code === 0x202f || code === 0x205f || code === 0x3000;
}

function trimLeftGoSpace(text: string): string {
  let i = 0;
  while (isGoSpace(text[i])) i++;
  return text.slice(i);
}

function trimGoSpace(text: string): string {
  let end = text.length;
  while (end > 0 && isGoSpace(text[end - 1])) end--;
  return trimLeftGoSpace(text.slice(0, end));
}

/** The line without the \r and \n at its end (BuildKit's trimNewline). */
function trimNewline(line: string): string {
  let end = line.length;
  while (end > 0 && (line[end - 1] === '\r' || line[end - 1] === '\n')) end--;
  return line.slice(0, end);
}

interface LexOptions {
  escape: string;
  /** Keep quotes and escape characters as written (BuildKit's RawQuotes and RawEscapes, for finding heredoc words). */
  raw?: boolean;
  /** Take quotes as ordinary characters (the text's quotes were removed already). */
  skipQuotes?: boolean;
  /** The variables; without them a variable is kept as written (BuildKit's SkipUnsetEnv with no environment). */
  vars?: Record<string, string>;
}

/** A shell word BuildKit's lexer refuses (an unclosed quote or `${`, a bad substitution): BuildKit fails on it. */
class LexError extends Error {}

/** Text being read up to a stop character (`}` or `/` of a substitution, none at the top) or inside double quotes. */
type Frame =
  | { kind: 'stop'; stop: string; raw: boolean; out: string; end?: (out: string) => string | Frame }
  | { kind: 'quote'; raw: boolean; out: string };

/** Words being collected at the top level, split on unquoted white space (BuildKit's wordsStruct). */
class Words {
  readonly words: string[] = [];
  private current = '';
  private inWord = false;

  char(ch: string): void {
    if (isGoSpace(ch)) {
      if (this.inWord && this.current !== '') {
        this.words.push(this.current);
        this.current = '';
        this.inWord = false;
      }
    } else this.raw(ch);
  }

  string(text: string): void {
    for (const ch of text) this.char(ch);
  }

  raw(text: string): void {
    this.current += text;
    this.inWord = true;
  }

  finish(): string[] {
    if (this.current !== '') this.words.push(this.current);
    return this.words;
  }
}

/** A variable name at `i`, as BuildKit's processName reads one: digits, one special parameter, or letters, digits and `_`. */
function nameAt(text: string, i: number): [string, number] {
  const at = (j: number) => {
    const code = text.charCodeAt(j);
    // ASCII without a look at Unicode classes: names are nearly always ASCII.
    if (code < 0x80) return code >= 0x30 && code <= 0x39 ? '0' : (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || code === 0x5f ? 'a' : text[j]!;
    return j < text.length ? String.fromCodePoint(text.codePointAt(j)!) : '';
  };
  const first = at(i);
  if (/^\p{Nd}$/u.test(first)) {
    let j = i;
    while (/^\p{Nd}$/u.test(at(j))) j += at(j).length;
    return [text.slice(i, j), j];
  }
  if (first !== '' && '@*#?-$!0'.includes(first)) return [first, i + 1];
  let j = i;
  while (/^[\p{L}\p{Nd}_]$/u.test(at(j))) j += at(j).length;
  return [text.slice(i, j), j];
}

/**
 * BuildKit's shell lexer (frontend/dockerfile/shell/lex.go): the text with `$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`,
 * `${VAR:+w}`, `${VAR+w}`, `${VAR?w}` substituted (nested ones too), escapes and quotes applied, and its words. It
 * reads each character once, keeping nested substitutions on a stack of its own, so neither a long text nor deep
 * nesting costs more than its length. Pattern edits (`${VAR#p}`, `${VAR%p}`, `${VAR/p/r}`) give the value unedited.
 */
function lex(text: string, options: LexOptions): { result: string; words: string[] } {
  const { escape, raw = false, skipQuotes = false, vars } = options;
  const root: Frame = { kind: 'stop', stop: '', raw, out: '' };
  const stack: Frame[] = [root];
  const words = new Words();
  const top = () => stack[stack.length - 1]!;
  const lookup = (name: string) => (vars && Object.hasOwn(vars, name) ? vars[name] : undefined);
  // A substitution's value joins the words as text that splits; a quoted part or `<<` joins them whole.
  const deliver = (value: string, splits: boolean) => {
    const frame = top();
    frame.out += value;
    if (frame === root) {
      if (splits) words.string(value);
      else words.raw(value);
    }
  };
  const modifier = (name: string, op: string, written: string, nullIsUnset: boolean) => (word: string) => {
    const value = lookup(name);
    if (!vars) return `\${${name}${written}${word}}`;
    const unset = value === undefined || (nullIsUnset && value === '');
    if (op === '-') return unset ? word : value!;
    if (op === '+') return unset ? '' : word;
    if (op === '?' && unset) throw new LexError(`${name}: ${word || 'is not allowed to be unset'}`);
    return value ?? '';
  };
  /** Reads the `$…` at `i`; returns where reading goes on. */
  const dollar = (start: number): number => {
    let i = start + 1;
    if (text[i] !== '{') {
      const [name, next] = nameAt(text, i);
      deliver(name === '' ? '$' : vars ? (lookup(name) ?? '') : `$${name}`, true);
      return next;
    }
    i++;
    if (i >= text.length || '{}:'.includes(text[i]!)) throw new LexError('bad substitution');
    const [name, next] = nameAt(text, i);
    i = next;
    let op = text[i++] ?? '';
    if (op === '}') {
      deliver(vars ? (lookup(name) ?? '') : `\${${name}}`, true);
      return i;
    }
    if (op === '/') {
      const replaceAll = text[i] === '/';
      if (replaceAll) i++;
      stack.push({
        kind: 'stop', stop: '/', raw: true, out: '',
        end: (pattern) => ({ kind: 'stop', stop: '}', raw: true, out: '', end: (replacement) => (vars ? (lookup(name) ?? '') : `\${${name}/${pattern}/${replacement}}`) }),
      });
      return i;
    }
    let written = op;
    const nullIsUnset = op === ':';
    if (nullIsUnset) {
      op = text[i++] ?? '';
      written += op;
    }
    if (op === '' || !'+-?#%'.includes(op) || (nullIsUnset && (op === '#' || op === '%'))) throw new LexError(`unsupported modifier (${written}) in substitution`);
    stack.push({ kind: 'stop', stop: '}', raw: op === '#' || op === '%', out: '', end: modifier(name, op, written, nullIsUnset) });
    return i;
  };

  let i = 0;
  for (;;) {
    const frame = top();
    if (i >= text.length) {
      if (frame === root) break;
      throw new LexError('unexpected end of statement');
    }
    const ch = text[i]!;
    if (frame.kind === 'quote') {
      if (ch === '"') {
        i++;
        stack.pop();
        deliver(frame.out + (raw ? '"' : ''), false);
      } else if (ch === '$') {
        i = dollar(i);
      } else {
        i++;
        if (ch === escape) {
          if (frame.raw) frame.out += ch;
          // An escape at the end leaves the quote unclosed.
          if (i >= text.length) continue;
          if (text[i] === '"' || text[i] === '$' || text[i] === escape) {
            frame.out += text[i++];
            continue;
          }
        }
        frame.out += ch;
      }
      continue;
    }
    if (frame.stop !== '' && ch === frame.stop) {
      i++;
      stack.pop();
      const ended = frame.end!(frame.out);
      if (typeof ended === 'string') deliver(ended, true);
      else stack.push(ended);
    } else if (ch === '$') {
      i = dollar(i);
    } else if (ch === '<') {
      // `<<` keeps the blanks after it in its word, for heredocs written `<< EOF`.
      let part = '<';
      i++;
      if (text[i] === '<') {
        part = '<<';
        for (i++; text[i] === ' ' || text[i] === '\t' || text[i] === '\r'; i++) part += text[i];
      }
      deliver(part, false);
    } else if (!skipQuotes && ch === "'") {
      const close = text.indexOf("'", i + 1);
      if (close < 0) throw new LexError('unclosed single quote');
      deliver(raw ? text.slice(i, close + 1) : text.slice(i + 1, close), false);
      i = close + 1;
    } else if (!skipQuotes && ch === '"') {
      i++;
      stack.push({ kind: 'quote', raw: frame.raw, out: raw ? '"' : '' });
    } else {
      i++;
      if (ch === escape) {
        if (frame.raw) {
          frame.out += ch;
          if (frame === root) words.raw(ch);
        }
        if (i >= text.length) {
          if (frame === root) break;
          throw new LexError('unexpected end of statement');
        }
        const escaped = text[i++]!;
        frame.out += escaped;
        if (frame === root) words.raw(escaped);
      } else {
        frame.out += ch;
        if (frame === root) words.char(ch);
      }
    }
  }
  return { result: root.out, words: words.finish() };
}

/**
 * `$NAME`, `${NAME}`, `${NAME:-word}` / `${NAME-word}` and `${NAME:+word}` / `${NAME+word}` (nested too), as BuildKit's
 * shell lexer substitutes them in a word whose quotes are already removed. Text BuildKit refuses (an unclosed `${`)
 * fails the build there; it is returned as it is.
 */
export function substitute(text: string, vars: Record<string, string>, escape = '\\'): string {
  try {
    return lex(text, { escape, skipQuotes: true, vars }).result;
  } catch (err) {
    if (err instanceof LexError) return text;
    throw err;
  }
}

/** Any other name ends the directives, as a line that is not a directive does. */
const DIRECTIVE_NAMES = new Set(['syntax', 'escape', 'check']);
const DIRECTIVE_SPACE = ' \t\f\r\n';

/**
 * A directive after its comment marker, as BuildKit's parser/directives.go matches it with
 * `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` (read by hand: that expression backtracks quadratically on a long line).
 */
function directiveOf(text: string): { name: string; value: string } | undefined {
  const [name] = /^[a-zA-Z][a-zA-Z0-9]*/.exec(text) ?? [];
  if (name === undefined) return undefined;
  let i = name.length;
  while (i < text.length && DIRECTIVE_SPACE.includes(text[i]!)) i++;
  if (text[i] !== '=') return undefined;
  for (i++; i < text.length && DIRECTIVE_SPACE.includes(text[i]!); i++);
  let end = text.length;
  while (end > i && DIRECTIVE_SPACE.includes(text[end - 1]!)) end--;
  return end > i ? { name, value: text.slice(i, end) } : undefined;
}

type Directives = Record<string, { value: string; line: number }>;

/**
 * The directives at the top of `lines` written behind `comment` (`#`, or `//` in the syntax detection's fallback),
 * with their 1-based lines counted from `firstLine`. They end at the first line that is not one, or that repeats one.
 * `trimmed`: lines are read without their leading white space, as the instruction parser reads them.
 */
function directivesOf(lines: readonly string[], comment: string, firstLine: number, trimmed = false): Directives {
  const directives: Directives = {};
  for (const [i, raw] of lines.entries()) {
    const line = trimmed ? trimLeftGoSpace(raw) : raw;
    if (!line.startsWith(comment)) break;
    const directive = directiveOf(trimLeftGoSpace(line.slice(comment.length)));
    const key = directive?.name.toLowerCase();
    if (key === undefined || !DIRECTIVE_NAMES.has(key) || key in directives) break;
    directives[key] = { value: directive!.value, line: firstLine + i };
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

/** Instructions whose shell form may carry heredocs (BuildKit's heredocDirectives). */
const HEREDOC_INSTRUCTIONS = new Set(['RUN', 'COPY', 'ADD']);
/** Triggers BuildKit refuses (`ONBUILD ONBUILD`, `ONBUILD FROM`, `ONBUILD MAINTAINER`): such a Dockerfile fails there. */
const NOT_TRIGGERS = new Set(['ONBUILD', 'FROM', 'MAINTAINER']);

/**
 * A continuation line's text without its escape character, and whether the instruction ends with it: BuildKit's
 * `([^E])E[ \t]*$|^E[ \t]*$`, so an escape that is itself escaped (`\\`) ends the instruction.
 */
function continuation(line: string, escape: string): [string, boolean] {
  let end = line.length;
  while (end > 0 && (line[end - 1] === ' ' || line[end - 1] === '\t')) end--;
  if (end > 0 && line[end - 1] === escape && (end === 1 || line[end - 2] !== escape)) return [line.slice(0, end - 1), false];
  return [line, true];
}

/** The builder flags in front of an instruction's arguments and the arguments after them (BuildKit's extractBuilderFlags). */
function argumentsAfterFlags(line: string, escape: string): string {
  let i = 0;
  for (;;) {
    while (isGoSpace(line[i])) i++;
    if (!line.startsWith('--', i)) return line.slice(i).trim();
    let quote: string | undefined;
    let word = '';
    for (; i < line.length; i++) {
      const ch = line[i]!;
      if (quote) {
        if (ch === quote) quote = undefined;
        else word += ch === escape && i + 1 < line.length ? line[++i] : ch === escape ? '' : ch;
      } else if (isGoSpace(ch)) {
        break;
      } else if (ch === '"' || ch === "'") {
        quote = ch;
      } else {
        word += ch === escape && i + 1 < line.length ? line[++i] : ch === escape ? '' : ch;
      }
    }
    // A lone `--` ends the flags.
    if (word === '--' && !quote) return line.slice(i).trim();
  }
}

/** The keyword and the rest of an instruction line, split as BuildKit's splitCommand splits them. */
function commandOf(line: string): { keyword: string; rest: string } {
  const text = trimGoSpace(line);
  const blank = /[\t\v\f\r ]+/.exec(text);
  if (!blank) return { keyword: text.toUpperCase(), rest: '' };
  return { keyword: text.slice(0, blank.index).toUpperCase(), rest: text.slice(blank.index + blank[0].length) };
}

/** Whether the arguments are the JSON array form (BuildKit's parseJSON), which never has heredocs. */
function isJsonForm(args: string): boolean {
  const text = trimLeftGoSpace(args);
  if (!text.startsWith('[')) return false;
  try {
    const parsed = JSON.parse(text) as unknown;
    return Array.isArray(parsed) && parsed.every((p) => typeof p === 'string');
  } catch {
    return false;
  }
}

/** `^(\d*)<<(-?)\s*([^<]*)$` on a word, read by hand: whether `<<-` and the delimiter as written. */
function heredocWord(word: string): { chomp: boolean; rest: string } | undefined {
  let i = 0;
  while (word[i]! >= '0' && word[i]! <= '9') i++;
  if (!word.startsWith('<<', i)) return undefined;
  i += 2;
  const chomp = word[i] === '-';
  if (chomp) i++;
  while (i < word.length && ' \t\n\f\r'.includes(word[i]!)) i++;
  const rest = word.slice(i);
  return rest.includes('<') ? undefined : { chomp, rest };
}

/**
 * The heredocs an instruction line opens, in order, as BuildKit's heredocsFromLine finds them: the words of the whole
 * line (quotes kept, so a quoted `'<<EOF'` is no heredoc) that are `<<WORD`, `<<-WORD`, `2<<WORD`, `<< WORD`, with the
 * delimiter's quotes removed. A line the lexer refuses has none.
 */
function heredocsOf(line: string): { name: string; chomp: boolean }[] {
  let words: string[];
  try {
    words = lex(line, { escape: '\\', raw: true }).words;
  } catch (err) {
    if (err instanceof LexError) return [];
    throw err;
  }
  const heredocs: { name: string; chomp: boolean }[] = [];
  for (const word of words) {
    const match = heredocWord(word);
    if (!match?.rest) continue;
    try {
      const [name, ...more] = lex(match.rest, { escape: '\\' }).words;
      if (name !== undefined && more.length === 0) heredocs.push({ name, chomp: match.chomp });
    } catch (err) {
      // BuildKit fails on such a delimiter; the lines after it are read as instructions.
      if (!(err instanceof LexError)) throw err;
    }
  }
  return heredocs;
}

/**
 * The instructions as BuildKit's parser (frontend/dockerfile/parser/parser.go) reads them, with the escape character
 * of the `# escape=` directive (the instruction parser reads directives from the very first line, a `#!` one
 * included, which ends them): continuation lines joined as written (comment and empty lines inside a continuation
 * skipped), heredoc bodies skipped, and an ONBUILD's trigger as an instruction of its own.
 */
function parse(lines: readonly string[]): { instructions: Instruction[]; escape: string } {
  const escape = directivesOf(lines, '#', 1, true).escape?.value === '`' ? '`' : '\\';
  const instructions: Instruction[] = [];
  let index = 0;
  while (index < lines.length) {
    // Directives are comments to the instructions.
    const first = trimLeftGoSpace(trimNewline(lines[index++]!));
    const line = index;
    if (first.startsWith('#')) continue;
    let [text, ended] = continuation(first, escape);
    if (ended && text === '') continue;
    while (!ended && index < lines.length) {
      const next = trimNewline(lines[index++]!);
      const content = trimLeftGoSpace(next);
      if (content === '' || content.startsWith('#')) continue;
      let part: string;
      [part, ended] = continuation(next, escape);
      text += part;
    }

    const { keyword, rest } = commandOf(text);
    let command = { keyword, rest };
    if (keyword === 'ONBUILD') {
      command = commandOf(argumentsAfterFlags(rest, escape));
      if (!NOT_TRIGGERS.has(command.keyword)) instructions.push({ ...command, line, trigger: true });
    } else {
      instructions.push({ keyword, rest, line });
    }
    // Heredocs: their bodies follow the instruction, one per delimiter, in order; only the shell form has them.
    if (HEREDOC_INSTRUCTIONS.has(command.keyword) && !isJsonForm(argumentsAfterFlags(command.rest, escape)) && text.includes('<<')) {
      for (const { name, chomp } of heredocsOf(text)) {
        while (index < lines.length) {
          const body = trimNewline(lines[index++]!);
          if ((chomp ? body.replace(/^\t+/, '') : body) === name) break;
        }
      }
    }
  }
  return { instructions, escape };
}
