import { describe, expect, it } from 'vitest';
import { readDockerfile, substitute } from './dockerfile';

const images = (text: string, args: Record<string, string> = {}) => readDockerfile(text, args).images.map((i) => `${i.use} ${i.image} @${i.line}`);

describe('readDockerfile', () => {
  it('finds the base behind ARG BASE + FROM $BASE from the default and from a build argument', () => {
    const text = 'ARG BASE=docker.io/datarobot/secret:1\nFROM $BASE\nRUN true\n';
    expect(images(text)).toEqual(['from docker.io/datarobot/secret:1 @2']);
    expect(images(text, { BASE: 'python:3.12' })).toEqual(['from python:3.12 @2']);
    expect(images('ARG REG=docker.io\nARG NS\nFROM ${REG}/${NS:-datarobot}/x\n')).toEqual(['from docker.io/datarobot/x @3']);
  });

  it('reads every stage, COPY --from, RUN --mount=from and the syntax directive, and skips stage names and scratch', () => {
    const text = [
      '# syntax=docker/dockerfile:1.7',
      'FROM golang:1.22 AS build',
      'ARG TOOL=alpine:3',
      'COPY --from=$TOOL /bin/sh /sh',
      'FROM scratch',
      'COPY --from=build /out /out',
      'COPY --from=0 /out /again',
      'RUN --mount=type=cache,target=/c \\',
      '    --mount=type=bind,from=busybox:stable,target=/b true',
      'FROM build',
    ].join('\n');
    expect(images(text)).toEqual([
      'syntax docker/dockerfile:1.7 @1',
      'from golang:1.22 @2',
      'copy-from alpine:3 @4',
      'mount-from busybox:stable @8',
    ]);
    expect(readDockerfile(text).frontend?.image).toBe('docker/dockerfile:1.7');
  });

  it('takes BUILDKIT_SYNTAX as the frontend, over the directive', () => {
    expect(readDockerfile('FROM scratch\n', { BUILDKIT_SYNTAX: 'evil.example/frontend:1' }).frontend).toEqual({ image: 'evil.example/frontend:1', use: 'syntax', line: 0 });
  });

  it('finds the frontend wherever BuildKit detects one: behind a #! line, as a // directive, or as a JSON file', () => {
    const frontend = (text: string) => readDockerfile(text).frontend;
    expect(frontend('#!/usr/bin/env buildctl\n# syntax=evil.example/fe:1\nFROM scratch\n')).toEqual({ image: 'evil.example/fe:1', use: 'syntax', line: 2 });
    expect(frontend('// syntax=evil.example/fe:1\nFROM scratch\n')?.image).toBe('evil.example/fe:1');
    expect(frontend('#!x\n//syntax = evil.example/fe:1\n')?.image).toBe('evil.example/fe:1');
    expect(frontend('{"syntax": "evil.example/fe:1"}')?.image).toBe('evil.example/fe:1');
    expect(frontend('\uFEFF# syntax=evil.example/fe:1\nFROM scratch\n')?.image).toBe('evil.example/fe:1');
    // The image is the first word; the rest is the frontend's command line.
    expect(frontend('# syntax=evil.example/fe:1 --opt=x\nFROM scratch\n')?.image).toBe('evil.example/fe:1');
    expect(readDockerfile('FROM scratch\n', { BUILDKIT_SYNTAX: ' evil.example/fe:1 --opt=x' }).frontend?.image).toBe('evil.example/fe:1');
  });

  it('ends the directives where BuildKit does: at another name, a repeat, or a #! line for the instructions', () => {
    expect(readDockerfile('# foo=bar\n# syntax=x/y\nFROM scratch\n').frontend).toBeUndefined();
    expect(readDockerfile('# syntax=x/first\n# syntax=x/second\nFROM scratch\n').frontend?.image).toBe('x/first');
    expect(readDockerfile('{"syntax": 1}').frontend).toBeUndefined();
    // `# escape=` behind a #! line is a comment to the instruction parser, so `\` still continues lines.
    expect(images('#!x\n# escape=`\nFROM a \\\n  AS b\nFROM b\n')).toEqual(['from a @3']);
    expect(images('# escape=`\nFROM a `\n  AS b\nFROM b\n')).toEqual(['from a @2']);
  });

  it('does not take a directive below the first instruction or comment, nor heredoc bodies for instructions', () => {
    expect(readDockerfile('# a comment\n# syntax=x/y\nFROM scratch\n').frontend).toBeUndefined();
    const text = 'FROM alpine\nRUN <<EOF\nFROM docker.io/datarobot/hidden\nEOF\nCOPY <<-A <<B /x\n\tFROM a\n\tA\nFROM b\nB\n';
    expect(images(text)).toEqual(['from alpine @1']);
  });

  it('uses the global ARG only where BuildKit does: FROM, or a stage that redeclares it', () => {
    const text = 'ARG IMG=docker.io/datarobot/a\nFROM scratch\nARG IMG\nCOPY --from=$IMG / /\n';
    expect(images(text)).toEqual(['copy-from docker.io/datarobot/a @4']);
  });

  it('joins continuation lines, with the escape directive, and skips comments inside them', () => {
    expect(images('# escape=`\nFROM `\n  # note\n  docker.io/datarobot/x\n')).toEqual(['from docker.io/datarobot/x @2']);
  });

  it('finds ADD URLs after ARG and ENV substitution, in shell and JSON form', () => {
    const text = 'FROM alpine\nARG HOST=169.254.169.254\nENV PATH_PART=latest\nADD http://${HOST}/${PATH_PART} /m\nADD ["https://2130706433/x", "/y"]\nADD --chmod=644 git@github.com:a/b.git /src\nADD local.txt /z\n';
    expect(readDockerfile(text).addUrls).toEqual([
      { url: 'http://169.254.169.254/latest', line: 4 },
      { url: 'https://2130706433/x', line: 5 },
      { url: 'git@github.com:a/b.git', line: 6 },
    ]);
  });

  it('finds RUN steps asking for entitlements', () => {
    const text = 'FROM alpine\nRUN --security=insecure true\nRUN --network=host true\nRUN --network=none true\n';
    expect(readDockerfile(text).entitlements).toEqual([
      { entitlement: 'security.insecure', line: 2 },
      { entitlement: 'network.host', line: 3 },
    ]);
  });
});

describe('readDockerfile as BuildKit reads hostile layouts', () => {
  const urls = (text: string) => readDockerfile(text).addUrls.map((u) => `${u.url} @${u.line}`);
  const entitlements = (text: string) => readDockerfile(text).entitlements.map((e) => `${e.entitlement} @${e.line}`);

  it('takes only whole unquoted shell-form words for heredocs, of RUN, COPY and ADD', () => {
    // BuildKit reads none of these as a heredoc, so the FROM after each is an instruction.
    for (const opener of [`RUN echo '<<EOF'`, 'RUN echo "<<EOF"', 'RUN cat<<EOF >/x', 'RUN ["sh", "-c", "cat <<EOF"]', 'COPY ["<<EOF", "/x"]', 'RUN --mount=type=cache,target=/c ["cat", "<<EOF"]', 'LABEL a=<<EOF', 'RUN <<- EOF']) {
      expect(images(`FROM alpine\n${opener}\nFROM docker.io/datarobot/hidden\nEOF\n`), opener).toEqual(['from alpine @1', 'from docker.io/datarobot/hidden @3']);
    }
  });

  it('ends a heredoc at its whole delimiter: EOF-1, quoted ones, << EOF, 2<<EOF, several on a line, <<- with tabs', () => {
    expect(images('FROM alpine\nRUN <<EOF-1\nEOF-1\nFROM docker.io/datarobot/x\nRUN <<EOF\nEOF\n')).toEqual(['from alpine @1', 'from docker.io/datarobot/x @4']);
    expect(images('FROM alpine\nRUN <<"A B"\nFROM hidden\nA B\nFROM b\n')).toEqual(['from alpine @1', 'from b @5']);
    expect(images("FROM alpine\nRUN << 'EOF'\nFROM hidden\nEOF\nFROM b\n")).toEqual(['from alpine @1', 'from b @5']);
    expect(images('FROM alpine\nRUN 3<<EOF cat /dev/fd/3\nFROM hidden\nEOF\nFROM b\n')).toEqual(['from alpine @1', 'from b @5']);
    expect(images('FROM alpine\nCOPY <<A <<B /\nFROM hidden\nA\nFROM hidden\nB\nFROM b\n')).toEqual(['from alpine @1', 'from b @7']);
    // A terminator with a trailing blank, or tabs without <<-, is body text to BuildKit.
    expect(images('FROM alpine\nRUN <<EOF\nEOF \n\tEOF\nFROM hidden\nEOF\nFROM b\n')).toEqual(['from alpine @1', 'from b @7']);
    expect(images('FROM alpine\nRUN <<-EOF\nFROM hidden\n\t\tEOF\nFROM b\n')).toEqual(['from alpine @1', 'from b @5']);
    expect(images('FROM alpine\r\nRUN <<EOF\r\nFROM hidden\r\nEOF\r\nFROM b\r\n')).toEqual(['from alpine @1', 'from b @5']);
    // An ONBUILD trigger's heredoc has its body too.
    expect(images('FROM alpine\nONBUILD RUN <<EOF\nFROM hidden\nEOF\nFROM b\n')).toEqual(['from alpine @1', 'from b @5']);
  });

  it('joins continuation lines as written, across empty and comment lines, and not after an escaped escape', () => {
    expect(images('FROM \\\n\n   \n# note\ndocker.io/datarobot/x\n')).toEqual(['from docker.io/datarobot/x @1']);
    expect(images('FROM docker.io/data\\\nrobot/x\n')).toEqual(['from docker.io/datarobot/x @1']);
    expect(entitlements('FROM alpine\nRUN echo \\\\\nRUN --security=in\\\nsecure true\n')).toEqual(['security.insecure @3']);
    // `\\` followed by a form feed is no continuation to BuildKit.
    expect(images('FROM alpine \\\f\nFROM b\n')).toEqual(['from alpine @1', 'from b @2']);
    // The escape directive counts with blanks in front of it, as BuildKit's instruction parser reads it.
    expect(entitlements('  # escape=`\nFROM alpine\nRUN echo \\\nRUN --security=insecure true\n')).toEqual(['security.insecure @4']);
  });

  it('reads ONBUILD triggers as the instructions they are, with the ENVs the image keeps', () => {
    const text = [
      'FROM alpine AS base',
      'ONBUILD ADD http://169.254.169.254/latest/ /m',
      'ONBUILD RUN --mount=type=bind,from=docker.io/datarobot/tools,target=/t --security=insecure /t/x',
      'ONBUILD COPY --from=docker.io/datarobot/y / /',
      'ONBUILD ADD http://${META}/ /n',
      'ONBUILD ENV PORT=8080',
      'ONBUILD ADD http://10.0.0.1:${PORT}/ /p',
      'ENV META=169.254.169.254',
      'ONBUILD ONBUILD RUN --network=host true',
      'ONBUILD FROM docker.io/datarobot/z',
      'FROM base',
    ].join('\n');
    expect(urls(text)).toEqual(['http://169.254.169.254/latest/ @2', 'http://169.254.169.254/ @5', 'http://10.0.0.1:8080/ @7']);
    expect(entitlements(text)).toEqual(['security.insecure @3']);
    expect(images(text)).toEqual(['from alpine @1', 'mount-from docker.io/datarobot/tools @3', 'copy-from docker.io/datarobot/y @4']);
    expect(urls('FROM alpine\nONBUILD --x ADD ["http://[::1]/", "/x"]\n')).toEqual(['http://[::1]/ @2']);
  });

  it('reads a megabyte of unclosed or deeply nested substitutions in time linear in its length', () => {
    const unclosed = (n: number) => `FROM alpine\nARG X=${'${a:-'.repeat(n)}\nRUN --security=insecure true\n`;
    const nested = (n: number) => `FROM alpine\nARG X=${'${a:-'.repeat(n)}1${'}'.repeat(n)}\nADD http://\${X}0.0.0.1/ /x\n`;
    const directive = (n: number) => `# syntax=x${' '.repeat(5 * n)}y\nFROM alpine\n`;
    const heredocs = (n: number) => `FROM alpine\nRUN ${'<< '.repeat(2 * n)}x\n`;
    expect(entitlements(unclosed(200_000))).toEqual(['security.insecure @3']);
    expect(urls(nested(100_000))).toEqual(['http://10.0.0.1/ @3']);
    for (const make of [unclosed, nested, directive, heredocs]) {
      // Work grows with the length: four times the text takes about four times as long, where the regular
      // expressions this replaced took sixteen times (and minutes for a megabyte). The fastest of a few runs of
      // each, so a busy machine does not decide.
      const fastest = (text: string) => Math.min(...[0, 1, 2, 3, 4].map(() => {
        const start = performance.now();
        readDockerfile(text);
        return performance.now() - start;
      }));
      fastest(make(1000));
      const small = fastest(make(20_000));
      const large = fastest(make(80_000));
      expect(large / Math.max(small, 1), make.name).toBeLessThan(10);
    }
  });
});

describe('substitute', () => {
  it.each([
    ['$A', { A: 'x' }, 'x'],
    ['${A:-d}', {}, 'd'],
    ['${A:-d}', { A: '' }, 'd'],
    ['${A-d}', { A: '' }, ''],
    ['${A:+set}', { A: 'x' }, 'set'],
    ['${A:+set}', {}, ''],
    ['\\$A', { A: 'x' }, '$A'],
    ['${A:-${B:-x}}y', { B: 'b' }, 'by'],
    ['${A:-a}}', {}, 'a}'],
    ['a\\bc', {}, 'abc'],
    ['$1$-x', {}, 'x'],
    ['$constructor', {}, ''],
    ['${A', { A: 'x' }, '${A'],
  ])('%s with %j is %s', (text, vars: Record<string, string>, expected) => {
    expect(substitute(text, vars)).toBe(expected);
  });
});
