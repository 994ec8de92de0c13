import { describe, expect, it } from 'vitest';
import { BuildFailedError, type BuildJob } from '../executor';
import { buildctlArguments, classifyBuildFailure, secretVariables } from './buildctl';

const job: BuildJob = {
  buildId: 'b1',
  contextKey: 'contexts/sha256/abc',
  dockerfile: 'docker/Dockerfile.prod',
  repository: 'registry.example.com/team/app',
  buildArgs: { VERSION: '1.2', 'WITH SPACE': 'a b' },
  labels: { 'org.example.team': 'x' },
  target: 'runtime',
  platforms: ['linux/amd64'],
  engine: 'buildkit',
  timeoutSeconds: 60,
};
const paths = { buildkitHost: 'unix:///run/b.sock', contextDir: '/w/context', dockerfileDir: '/w/context/docker', metadataFile: '/w/m.json', insecureRegistry: false };

describe('buildctlArguments', () => {
  it('passes the Dockerfile folder and name, args, labels and target as separate argv entries', () => {
    const args = buildctlArguments(job, paths);
    expect(args.slice(0, 3)).toEqual(['--addr', 'unix:///run/b.sock', 'build']);
    expect(args).toContain('dockerfile=/w/context/docker');
    expect(args).toContain('filename=Dockerfile.prod');
    expect(args).toContain('build-arg:VERSION=1.2');
    expect(args).toContain('build-arg:WITH SPACE=a b');
    expect(args).toContain('label:org.example.team=x');
    expect(args).toContain('target=runtime');
    expect(args).toContain('platform=linux/amd64');
    expect(args).not.toContain('--no-cache');
  });

  it('pushes by digest only, so tagging is a separate idempotent step', () => {
    const output = buildctlArguments(job, paths)[buildctlArguments(job, paths).indexOf('--output') + 1];
    expect(output).toBe('type=image,name=registry.example.com/team/app,push=true,push-by-digest=true');
  });

  it('names secrets by the environment variables that carry them, never by their values', () => {
    const args = buildctlArguments({ ...job, secrets: { PIP_INDEX_URL: 'https://bot:t0ken@pypi.internal/simple/' } }, paths);
    expect(args).toEqual(expect.arrayContaining(['--secret', `id=PIP_INDEX_URL,env=${secretVariables({ secrets: { PIP_INDEX_URL: 'x' } }).PIP_INDEX_URL}`]));
    expect(args.join(' ')).not.toContain('t0ken');
  });

  it('adds registry.insecure with DISABLE_HTTPS and --no-cache when asked', () => {
    const args = buildctlArguments({ ...job, noCache: true }, { ...paths, insecureRegistry: true });
    expect(args.find((a) => a.startsWith('type=image'))).toContain('registry.insecure=true');
    expect(args).toContain('--no-cache');
  });
});

describe('classifyBuildFailure', () => {
  it.each([
    ['#5 [2/2] RUN exit 3\nERROR: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3', 'build_failed'],
    ['ERROR: failed to solve: failed to parse dockerfile: dockerfile parse error on line 2: unknown instruction: FOO', 'dockerfile_invalid'],
    ['#7 pushing layers\nERROR: failed to push 127.0.0.1:5000/x: unexpected status from PUT request: 401 Unauthorized', 'push_failed'],
    ['ERROR: failed to solve: 127.0.0.1:5000/base:1: failed to resolve source metadata for 127.0.0.1:5000/base:1: not found', 'base_image_unavailable'],
  ])('maps %j to %s', (tail, code) => {
    const err = classifyBuildFailure(tail);
    expect(err).toBeInstanceOf(BuildFailedError);
    expect((err as BuildFailedError).code).toBe(code);
    expect(err.message).toContain(tail.split('\n').pop()!);
  });

  it.each([
    ['#7 exporting to image\n#7 pushing layers\nERROR: failed to solve: failed to push 127.0.0.1:5000/x: failed to copy: unexpected status from PUT request to http://127.0.0.1:5000/v2/x/blobs/uploads/1: 503 Service Unavailable', 'push_failed'],
    ['#7 pushing layers\nERROR: failed to solve: failed to push 127.0.0.1:5000/x: unexpected status from PUT request: 429 Too Many Requests', 'push_failed'],
    // Two builds pushing the same layer: the second's manifest arrived before the first's layer (seen in a CI run).
    ['#7 DONE 0.0s\nerror: failed to solve: failed to push 127.0.0.1:5000/fair/a: errors:\nunknown: provided digest did not match uploaded content\nunknown: blob unknown to registry - sha256:a196', 'push_failed'],
    ['#5 [2/3] RUN sleep 5\nERROR: failed to receive status: rpc error: code = Unavailable desc = error reading from server: EOF', 'build_failed'],
    ['#5 [2/3] RUN sleep 5\nerror: failed to solve: Canceled: grpc: the client connection is closing', 'build_failed'],
  ])('retries %j, ending %s only once the retries are spent', (tail, code) => {
    const err = classifyBuildFailure(tail);
    expect(err).toMatchObject({ code, transient: true });
  });

  it.each([
    '#7 pushing layers\nERROR: failed to push 127.0.0.1:5000/x: unexpected status from PUT request: 401 Unauthorized',
    // Only the closing error counts: a RUN step that printed a registry's words does not make a refused push transient.
    '#5 [2/2] RUN echo "blob unknown to registry"\n#5 0.1 blob unknown to registry\nERROR: failed to push 127.0.0.1:5000/x: unexpected status from PUT request: 403 Forbidden',
    // A RUN step whose own output names a broken connection is the build's failure, not the daemon's.
    '#5 [2/2] RUN curl http://x\n#5 0.2 curl: (56) Recv failure: Connection reset by peer\nERROR: process "/bin/sh -c curl http://x" did not complete successfully: exit code: 56',
  ])('does not retry %j', (tail) => {
    expect(classifyBuildFailure(tail)).toMatchObject({ transient: false });
  });

  it('treats an unreachable daemon as transient (plain Error, retried)', () => {
    const err = classifyBuildFailure('error: listing workers: connection error: desc = "transport: Error while dialing: dial unix /run/b.sock: connect: no such file or directory"');
    expect(err).not.toBeInstanceOf(BuildFailedError);
  });
});
