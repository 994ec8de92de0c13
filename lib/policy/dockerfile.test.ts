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

describe('substitute', () => {
  it.each([
    ['$A', { A: 'x' }, 'x'],
    ['${A:-d}', {}, 'd'],
    ['${A:-d}', { A: '' }, 'd'],
    ['${A-d}', { A: '' }, ''],
    ['${A:+set}', { A: 'x' }, 'set'],
    ['${A:+set}', {}, ''],
    ['\\$A', { A: 'x' }, '$A'],
  ])('%s with %j is %s', (text, vars: Record<string, string>, expected) => {
    expect(substitute(text, vars)).toBe(expected);
  });
});
