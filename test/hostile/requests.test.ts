/**
 * Hostile build requests through the real API over HTTP (PostgreSQL, MinIO, Temporal of the stack): Dockerfiles
 * that ask for untrusted frontends, entitlements, internal URLs or denied images; targets and sources at internal
 * addresses in every spelling; oversized and malformed requests; and every action on another consumer's build.
 * Each refusal is checked by support/hostile.ts (exact code, a fix in the message, nothing stored or started). Only
 * the test of builds queued before their images became another consumer's starts a worker.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveHost } from '../../lib/policy/addresses';
import { buildForm, contextOf, tarOf } from '../support/archives';
import { tokenFor, waitForBuild } from '../support/stack';
import { startHostileStack, type HostileStack } from './support/hostile';

const DENIED = '127.0.0.1:5000/hostile-denied';

describe('hostile build requests', () => {
  let h: HostileStack;
  let image: string;
  const json = { 'content-type': 'application/json' };

  beforeAll(async () => {
    h = await startHostileStack('requests', {
      EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST: `${DENIED}/*`,
    });
    image = `127.0.0.1:5000/hostile/requests:${h.run}`;
  });
  afterAll(() => h?.close());

  const withDockerfile = async (dockerfile: string, extra: Record<string, unknown> = {}) =>
    buildForm({ image, ...extra }, await contextOf({ Dockerfile: dockerfile }));

  describe('Dockerfiles', () => {
    const cases: [string, string, Record<string, unknown>, string][] = [
      ['a # syntax= frontend from Docker Hub', '# syntax=docker/dockerfile:1\nFROM scratch\n', {}, 'frontend_not_allowed'],
      ['a # syntax= frontend from a registry it can reach', `# syntax=127.0.0.1:5000/evil/frontend:1\nFROM scratch\n`, {}, 'frontend_not_allowed'],
      ['a # syntax= frontend behind a #! first line', '#!/usr/bin/env buildctl\n# syntax=127.0.0.1:5000/evil/frontend:1\nFROM scratch\n', {}, 'frontend_not_allowed'],
      ['a // syntax= frontend', '// syntax=127.0.0.1:5000/evil/frontend:1\nFROM scratch\n', {}, 'frontend_not_allowed'],
      ['a frontend named by a Dockerfile that is JSON', '{"syntax": "127.0.0.1:5000/evil/frontend:1"}', {}, 'frontend_not_allowed'],
      ['the BUILDKIT_SYNTAX build argument', 'FROM scratch\n', { buildArgs: { BUILDKIT_SYNTAX: '127.0.0.1:5000/evil/frontend:1' } }, 'frontend_not_allowed'],
      ['RUN --security=insecure', 'FROM scratch\nRUN --security=insecure mount -t proc none /mnt\n', {}, 'entitlement_not_allowed'],
      ['RUN --network=host', 'FROM scratch\nRUN --network=host wget http://127.0.0.1:7233/\n', {}, 'entitlement_not_allowed'],
      ['RUN --network=host after another flag, in capitals', 'FROM scratch\nRUN --mount=type=cache,target=/c --NETWORK=HOST true\n', {}, 'entitlement_not_allowed'],
      ['ADD of the cloud metadata address', 'FROM scratch\nADD http://169.254.169.254/latest/meta-data/iam/ /m\n', {}, 'add_url_not_allowed'],
      ['ADD of loopback written as a decimal number', 'FROM scratch\nADD http://2130706433/ /x\n', {}, 'add_url_not_allowed'],
      ['ADD of loopback written in octal', 'FROM scratch\nADD http://0177.0.0.1/ /x\n', {}, 'add_url_not_allowed'],
      ['ADD of loopback written in hex', 'FROM scratch\nADD http://0x7f.0x0.0x0.0x1:8080/ /x\n', {}, 'add_url_not_allowed'],
      ['ADD of loopback shortened to 127.1', 'FROM scratch\nADD http://127.1/ /x\n', {}, 'add_url_not_allowed'],
      ['ADD of IPv6 loopback', 'FROM scratch\nADD http://[::1]:8080/ /x\n', {}, 'add_url_not_allowed'],
      ['ADD of IPv4-mapped IPv6 loopback', 'FROM scratch\nADD http://[::ffff:127.0.0.1]/ /x\n', {}, 'add_url_not_allowed'],
      ['ADD of an IPv6 link-local address', 'FROM scratch\nADD http://[fe80::1]/ /x\n', {}, 'add_url_not_allowed'],
      ['ADD of a private address', 'FROM scratch\nADD https://10.0.0.1/secret.tgz /x\n', {}, 'add_url_not_allowed'],
      ['ADD of a 192.168 address', 'FROM scratch\nADD http://192.168.0.1/ /x\n', {}, 'add_url_not_allowed'],
      ['ADD of localhost', 'FROM scratch\nADD http://localhost:8080/openapi.json /x\n', {}, 'add_url_not_allowed'],
      ['ADD of a name /etc/hosts resolves to loopback', 'FROM scratch\nADD http://vm:8080/openapi.json /x\n', {}, 'add_url_not_allowed'],
      ['ADD of a git URL at the metadata address', 'FROM scratch\nADD git@169.254.169.254:repo.git /x\n', {}, 'add_url_not_allowed'],
      ['ADD of an internal URL hidden behind ARG', 'FROM scratch\nARG U=http://169.254.169.254/latest/\nADD $U /x\n', {}, 'add_url_not_allowed'],
      ['ADD of an internal URL given as a build argument', 'FROM scratch\nARG U\nADD ${U} /x\n', { buildArgs: { U: 'http://0x7f000001/' } }, 'add_url_not_allowed'],
      ['ADD of an internal URL in the JSON form', 'FROM scratch\nADD ["http://[::ffff:a9fe:a9fe]/latest/", "/x"]\n', {}, 'add_url_not_allowed'],
      ['a denied base image behind a global ARG', `ARG BASE=${DENIED}/base:1\nFROM $BASE\n`, {}, 'base_image_denied'],
      ['a denied base image given as a build argument', 'ARG BASE=scratch\nFROM ${BASE}\n', { buildArgs: { BASE: `${DENIED}/base:1` } }, 'base_image_denied'],
      ['RUN --mount=type=bind,from= a denied image', `FROM scratch\nRUN --mount=type=bind,from=${DENIED}/tools:1,target=/t /t/run\n`, {}, 'base_image_denied'],
      ['COPY --from= a denied image', `FROM scratch\nCOPY --from=${DENIED}/secrets:1 /etc/shadow /x\n`, {}, 'base_image_denied'],
      ['a denied base image behind a quoted <<EOF', `FROM scratch\nRUN echo '<<EOF'\nFROM ${DENIED}/base:1\n`, {}, 'base_image_denied'],
      ['ADD of the metadata address behind a JSON-form RUN naming <<EOF', 'FROM scratch\nRUN ["sh", "-c", "cat <<EOF"]\nADD http://169.254.169.254/latest/ /m\n', {}, 'add_url_not_allowed'],
      ['RUN --security=insecure between a heredoc delimited EOF-1 and an EOF line', 'FROM scratch\nRUN <<EOF-1\nEOF-1\nRUN --security=insecure true\nRUN <<EOF\nEOF\n', {}, 'entitlement_not_allowed'],
      ['a denied base image continued over an empty line', `FROM \\\n\n${DENIED}/base:1\n`, {}, 'base_image_denied'],
      ['a denied base image split inside its name by a continuation', `FROM ${DENIED.slice(0, -3)}\\\n${DENIED.slice(-3)}/base:1\n`, {}, 'base_image_denied'],
      ['RUN --security=insecure after a line ending in an escaped escape', 'FROM scratch\nRUN echo \\\\\nRUN --security=insecure true\n', {}, 'entitlement_not_allowed'],
      ['ONBUILD ADD of the metadata address', 'FROM scratch\nONBUILD ADD http://169.254.169.254/latest/ /m\n', {}, 'add_url_not_allowed'],
      ['ONBUILD RUN --security=insecure', 'FROM scratch\nONBUILD RUN --security=insecure true\n', {}, 'entitlement_not_allowed'],
      ['ONBUILD RUN --mount=type=bind,from= a denied image', `FROM scratch\nONBUILD RUN --mount=type=bind,from=${DENIED}/tools:1,target=/t /t/run\n`, {}, 'base_image_denied'],
    ];
    it.each(cases)('refuses %s', async (_what, dockerfile, extra, code) => {
      const form = await withDockerfile(dockerfile, extra);
      await h.expectRefused(() => h.submit(form), 400, code, 'dockerfile');
    });

    it('refuses an engine the deployment does not list (Kaniko, whose RUN steps could read the push credentials)', async () => {
      const error = await h.expectRefused(async () => h.submit(await withDockerfile('FROM scratch\n', { engine: 'kaniko' })), 400, 'engine_not_allowed', 'engine');
      expect(error.message).toContain('"buildkit" only');
      const body = JSON.stringify({ image, sourceImage: '127.0.0.1:5000/x/y:1', engine: 'kaniko' });
      await h.expectRefused(() => h.submit(body, json), 400, 'engine_not_allowed', 'engine');
    });

    it('refuses a Dockerfile over 1 MiB', async () => {
      // A plain tar: so repetitive a Dockerfile would be refused as a gzip bomb first.
      const context = await tarOf([{ name: 'Dockerfile', body: `FROM scratch\n${'# padding\n'.repeat(110_000)}` }]);
      await h.expectRefused(() => h.submit(buildForm({ image }, context, 'context.tar')), 400, 'dockerfile_too_large', 'dockerfile');
    });

    // The API keeps the Dockerfile that a spec sent ahead of the context names as the context arrives; these two
    // take the other way, reading it back from the spooled context.
    it('refuses a Dockerfile last in the context when the spec part comes after it', async () => {
      const form = new FormData();
      form.append('context', new Blob([await contextOf({ 'src/a.bin': randomBytes(1 << 20), Dockerfile: '# syntax=docker/dockerfile:1\nFROM scratch\n' })]), 'context.tar.gz');
      form.append('spec', JSON.stringify({ image }));
      await h.expectRefused(() => h.submit(form), 400, 'frontend_not_allowed', 'dockerfile');
    });

    it('refuses a Dockerfile the spec reaches through a symlink', async () => {
      const context = await tarOf([
        { name: 'docker/Dockerfile', body: 'FROM scratch\nRUN --network=host true\n' },
        { name: 'Dockerfile', type: 'symlink', linkname: 'docker/Dockerfile' },
      ]);
      await h.expectRefused(() => h.submit(buildForm({ image }, context, 'context.tar')), 400, 'entitlement_not_allowed', 'dockerfile');
    });

    it('refuses a Dockerfile that is a hard link by what the file it links to says', async () => {
      // As GNU tar writes a file with two names: the body under the first, a link entry for the second.
      const context = await tarOf([
        { name: './docker/Dockerfile.orig', body: 'FROM scratch\nRUN --network=host true\n' },
        { name: './Dockerfile', type: 'link', linkname: './docker/Dockerfile.orig' },
      ]);
      await h.expectRefused(() => h.submit(buildForm({ image }, context, 'context.tar')), 400, 'entitlement_not_allowed', 'dockerfile');
    });
  });

  describe('dependency builds', () => {
    it('refuses a denied baseImage at request time, though the unused Dockerfile of the context would pass', async () => {
      const spec = { image, dependencies: { baseImage: `${DENIED}/python:3.12`, python: { requirements: 'requirements.txt' } } };
      const form = buildForm(spec, await contextOf({ 'requirements.txt': 'six\n', Dockerfile: 'FROM scratch\n' }));
      const error = await h.expectRefused(() => h.submit(form), 400, 'base_image_denied', 'dependencies.baseImage');
      expect(error.message).toContain(`${DENIED}/* on EXECUTION_ENVIRONMENT_VERSION_URI_VALIDATION_DENYLIST`);
    });
  });

  describe('targets and sources at internal addresses', () => {
    const targets = [
      '169.254.169.254/latest/meta-data:1',
      '2130706433:5000/x/y:1',
      '0177.0.0.1:5000/x/y:1',
      '0x7f.1:5000/x/y:1',
      '[::1]:5000/x/y:1',
      '[::ffff:7f00:1]:5000/x/y:1',
      'localhost:5000/x/y:1',
      '10.1.2.3:5000/x/y:1',
      'vm:5000/x/y:1',
    ];
    it.each(targets)('refuses the target %s', async (target) => {
      const form = buildForm({ image: target }, await contextOf({ Dockerfile: 'FROM scratch\n' }));
      await h.expectRefused(() => h.submit(form), 400, 'target_registry_not_allowed', 'image');
    });

    const sources = [
      '169.254.169.254/latest/meta-data:1',
      '2130706433:5000/x/y:1',
      '[::ffff:7f00:1]:5000/x/y:1',
      '[::ffff:a9fe:a9fe]/x/y:1',
      'localhost:5000/x/y:1',
      '192.168.1.10/x/y:1',
      'vm:5000/x/y:1',
    ];
    it.each(sources)('refuses the source image %s', async (source) => {
      const body = JSON.stringify({ image, sourceImage: source });
      await h.expectRefused(() => h.submit(body, json), 400, 'source_registry_not_allowed', 'sourceImage');
    });

    it('refuses a dotted IPv4-mapped address, which is no registry host of the reference grammar', async () => {
      const form = buildForm({ image: '[::ffff:127.0.0.1]:5000/x/y:1' }, await contextOf({ Dockerfile: 'FROM scratch\n' }));
      await h.expectRefused(() => h.submit(form), 400, 'invalid_spec', 'image');
    });

    it('refuses a source image whose digest is not sha256', async () => {
      const body = JSON.stringify({ image, sourceImage: '127.0.0.1:5000/x/y@md5:abc' });
      await h.expectRefused(() => h.submit(body, json), 400, 'source_image_invalid');
    });
  });

  describe('host names the resolver does not answer for in time', () => {
    let slow: HostileStack;
    beforeAll(async () => {
      // A resolver that never answers, as a consumer's slow authoritative server makes the system's time out.
      const silent = (host: string) => resolveHost(host, { timeoutMs: 100, lookup: () => new Promise(() => undefined) });
      slow = await startHostileStack('slow-dns', {}, { resolveHost: silent });
    });
    afterAll(() => slow?.close());

    const target = () => `127.0.0.1:5000/hostile/slow-dns:${slow.run}`;
    it.each([
      ['an ADD URL', async () => buildForm({ image: target() }, await contextOf({ Dockerfile: 'FROM scratch\nADD http://slow.attacker.example/x.tgz /x\n' })), {}],
      ['a source image', async () => JSON.stringify({ image: target(), sourceImage: 'slow.attacker.example/x/y:1' }), json],
    ])('refuses for now (503, Retry-After) %s whose host name cannot be looked up, rather than let it through', async (_what, body, headers) => {
      const sent = await body();
      let retryAfter: string | null = null;
      const error = await slow.expectRefused(async () => {
        const res = await slow.submit(sent, headers);
        retryAfter = res.headers.get('retry-after');
        return res;
      }, 503, 'dns_unavailable');
      expect(retryAfter).toBe('5');
      expect(error.message).toContain('slow.attacker.example');
    });
  });

  describe("another consumer's repository, where each consumer pushes under its own path", () => {
    let scoped: HostileStack;
    beforeAll(async () => {
      scoped = await startHostileStack('scoped-repositories', { TARGET_REPOSITORY_PATTERNS: '127.0.0.1:5000/{consumer}/*' });
    });
    afterAll(() => scoped?.close());

    it.each([
      ['a multipart build', 'multipart'],
      ['a sourceImage copy', 'json'],
    ])("refuses %s into another consumer's repository, and tags there, with target_repository_not_allowed", async (_what, kind) => {
      const victim = `127.0.0.1:5000/${scoped.consumer}-victim/app:prod`;
      const body = kind === 'json'
        ? JSON.stringify({ image: victim, sourceImage: '127.0.0.1:5000/x/y:1', overwrite: true })
        : buildForm({ image: victim, overwrite: true }, await contextOf({ Dockerfile: 'FROM scratch\n' }));
      const error = await scoped.expectRefused(() => scoped.submit(body, kind === 'json' ? json : {}), 400, 'target_repository_not_allowed', 'image');
      expect(error.message).toContain(`127.0.0.1:5000/${scoped.consumer}/*`);
    });

    it("refuses to retry a failed build recorded before the patterns confined the consumer, and leaves it failed", async () => {
      const image = `127.0.0.1:5000/${scoped.consumer}-victim/app:old`;
      const { record } = await scoped.stack.builds.create({
        id: randomUUID(),
        consumer: scoped.consumer,
        image,
        spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'], sourceImage: '127.0.0.1:5000/x/y:1' },
        contextKey: '',
        contextDigest: '',
        source: { kind: 'image-uri', reference: '127.0.0.1:5000/x/y:1' },
      });
      await scoped.stack.builds.markFailed(record.id, { code: 'push_failed', message: 'the registry answered 503' });
      const res = await scoped.stack.api(`/v1/builds/${record.id}/retry`, { method: 'POST' }, { consumer: scoped.consumer });
      const text = await res.text();
      expect(res.status, text).toBe(400);
      expect((JSON.parse(text) as { error: { code: string } }).error.code).toBe('target_repository_not_allowed');
      expect((await scoped.stack.builds.get(record.id))?.status).toBe('failed');
      expect(await scoped.settledWorkflows()).toBe(0);
    });

    describe("reading another consumer's images with the service's registry credentials", () => {
      // The victim holds a token, so the deployment knows it as a consumer.
      const victim = () => `${scoped.consumer}-victim`;
      const theirs = () => `127.0.0.1:5000/${victim()}/private:1`;
      const own = () => `127.0.0.1:5000/${scoped.consumer}/app:1`;
      beforeAll(() => void tokenFor({ consumer: victim() }));

      it.each([
        ['FROM', () => `FROM ${theirs()}\n`, {}],
        ['COPY --from', () => `FROM scratch\nCOPY --from=${theirs()} /secret /secret\n`, {}],
        ['RUN --mount=from', () => `FROM scratch\nRUN --mount=type=bind,from=${theirs()},target=/m true\n`, {}],
        ['a FROM built from a build argument', () => 'ARG BASE\nFROM ${BASE}\n', () => ({ buildArgs: { BASE: theirs() } })],
      ])('refuses %s of an image in its repositories with image_of_another_consumer', async (_what, dockerfile, extra) => {
        const form = buildForm({ image: own(), ...(typeof extra === 'function' ? extra() : extra) }, await contextOf({ Dockerfile: dockerfile() }));
        const error = await scoped.expectRefused(() => scoped.submit(form), 400, 'image_of_another_consumer', 'dockerfile');
        expect(error.message).toContain(`127.0.0.1:5000/${scoped.consumer}/*`);
        expect(error.message).not.toContain(`${victim()}'s`);
      });

      it('refuses a sourceImage copy and a dependency build from its repositories', async () => {
        await scoped.expectRefused(() => scoped.submit(JSON.stringify({ image: own(), sourceImage: theirs() }), json), 400, 'image_of_another_consumer', 'sourceImage');
        const dependencies = buildForm({ image: own(), dependencies: { baseImage: theirs(), python: { requirements: 'requirements.txt' } } }, await contextOf({ 'requirements.txt': 'six\n' }));
        await scoped.expectRefused(() => scoped.submit(dependencies), 400, 'image_of_another_consumer', 'dependencies.baseImage');
      });

      it("guards the repositories of a consumer an operator builds for with X-Consumer, which holds no token", async () => {
        const tenant = `${scoped.consumer}-tenant`;
        const image = `127.0.0.1:5000/${tenant}/app:1`;
        // A build an operator submitted for it, recorded as it would be (failed, so no workflow runs it here).
        const { record } = await scoped.stack.builds.create({
          id: randomUUID(), consumer: tenant, image, spec: { image, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, platforms: ['linux/amd64'] }, contextKey: '', contextDigest: '',
        });
        await scoped.stack.builds.markFailed(record.id, { code: 'build_failed', message: 'a build of the tenant' });
        // The API reads the consumers with builds at most every 5 s.
        await new Promise((resolve) => setTimeout(resolve, 5_100));
        const theirs = buildForm({ image: own() }, await contextOf({ Dockerfile: `FROM ${image}\n` }));
        await scoped.expectRefused(() => scoped.submit(theirs), 400, 'image_of_another_consumer', 'dockerfile');
      });

      it("fails the builds of images whose repositories became another consumer's while they were queued, before anything runs, and refuses their retries", async () => {
        const newcomer = `${scoped.consumer}-newcomer`;
        const image = `127.0.0.1:5000/${newcomer}/private:1`;
        // Accepted while no worker runs and no token names the newcomer, so its repositories are no consumer's yet.
        const accepted = [
          await scoped.submit(buildForm({ image: own() }, await contextOf({ Dockerfile: `FROM ${image}\n` }))),
          await scoped.submit(JSON.stringify({ image: own(), sourceImage: image }), json),
        ];
        const ids: string[] = [];
        for (const res of accepted) {
          expect(res.status, await res.clone().text()).toBe(202);
          ids.push(((await res.json()) as { id: string }).id);
        }

        // The newcomer gets a token before a worker takes the builds: the worker checks the stored Dockerfile and
        // source again before a builder or the copy starts, and nothing reaches the log.
        tokenFor({ consumer: newcomer });
        await scoped.stack.startWorker();
        for (const id of ids) {
          expect(await waitForBuild(scoped.stack.apiUrl, id, 480_000, { consumer: scoped.consumer })).toMatchObject({ status: 'failed', attempt: 1, error: { code: 'image_of_another_consumer' } });
          const log = await scoped.stack.api(`/v1/builds/${id}/logs`, {}, { consumer: scoped.consumer });
          expect(await log.text()).toContain('"code":"log_not_available"');
        }

        // Their retries are refused at once, the Dockerfile read from the stored context, and the builds stay as they were.
        const fields = ['dockerfile', 'sourceImage'];
        for (const [i, id] of ids.entries()) {
          const error = await scoped.expectRefused(() => scoped.stack.api(`/v1/builds/${id}/retry`, { method: 'POST' }, { consumer: scoped.consumer }), 400, 'image_of_another_consumer', fields[i]);
          expect(error.message).not.toContain(`${newcomer}'s`);
          expect(await scoped.stack.builds.get(id)).toMatchObject({ status: 'failed', attempt: 1 });
        }
      }, 600_000);

      it('holds an operator acting for a consumer to it', async () => {
        const form = buildForm({ image: own() }, await contextOf({ Dockerfile: `FROM ${theirs()}\n` }));
        await scoped.expectRefused(() => scoped.submit(form, { 'x-consumer': scoped.consumer }, { consumer: `${scoped.consumer}-ops`, role: 'operator' }), 400, 'image_of_another_consumer', 'dockerfile');
      });
    });

    it('holds an operator acting for a consumer to that consumer\'s repositories', async () => {
      const operator = { consumer: `${scoped.consumer}-ops`, role: 'operator' as const };
      const form = buildForm({ image: `127.0.0.1:5000/${scoped.consumer}-victim/app:1` }, await contextOf({ Dockerfile: 'FROM scratch\n' }));
      await scoped.expectRefused(() => scoped.submit(form, { 'x-consumer': scoped.consumer }, operator), 400, 'target_repository_not_allowed', 'image');
    });
  });

  describe('targets in a deployment that lists none (any DNS name may be pushed to)', () => {
    let open: HostileStack;
    beforeAll(async () => {
      open = await startHostileStack('open-targets', { TARGET_REGISTRY_ALLOWLIST: '' });
    });
    afterAll(() => open?.close());

    it.each([
      // This machine's /etc/hosts maps vm to 127.0.0.1, as an attacker's DNS name for an internal address would.
      ['a name that resolves to loopback', 'vm:5000/x/y:1', /host name vm, which resolves to the loopback address 127\.0\.0\.1/],
      ['localhost', 'localhost:5000/x/y:1', /localhost/],
      ['the metadata address', '169.254.169.254/latest/meta-data:1', /link-local/],
    ])('refuses %s', async (_what, target, message) => {
      const form = buildForm({ image: target }, await contextOf({ Dockerfile: 'FROM scratch\n' }));
      const error = await open.expectRefused(() => open.submit(form), 400, 'target_registry_not_allowed', 'image');
      expect(error.message).toMatch(message);
    });
  });

  describe('limits and malformed requests', () => {
    const specCases: [string, () => string, string, string | undefined][] = [
      ['a spec nested 5,000 levels', () => `{"image":"${image}","metadata":${'{"k":'.repeat(5000)}1${'}'.repeat(5000)}}`, 'spec_too_deep', 'spec'],
      ['metadata nested 11 levels', () => JSON.stringify({ image, metadata: JSON.parse(`${'{"k":'.repeat(11)}1${'}'.repeat(11)}`) }), 'spec_too_deep', 'metadata'],
      ['metadata over 64 KiB', () => JSON.stringify({ image, metadata: { blob: 'x'.repeat(70_000) } }), 'spec_field_too_large', 'metadata'],
      ['201 build arguments', () => JSON.stringify({ image, buildArgs: Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`A${i}`, 'x'])) }), 'invalid_spec', 'buildArgs'],
      ['17 tags', () => JSON.stringify({ image, tags: Array.from({ length: 17 }, (_, i) => `t${i}`) }), 'too_many_tags', 'tags'],
      ['a label value over 8 KiB', () => JSON.stringify({ image, labels: { a: 'x'.repeat(9000) } }), 'invalid_spec', 'labels.a'],
      ['an image reference over 512 characters', () => JSON.stringify({ image: `127.0.0.1:5000/${'a'.repeat(600)}:1` }), 'invalid_spec', 'image'],
      ['a tag with a newline', () => JSON.stringify({ image, tags: ['ok\nX-Injected: 1'] }), 'invalid_tag', 'tags.0'],
      ["the cache mount namespace, which would reach another consumer's cache mounts", () => JSON.stringify({ image, buildArgs: { BUILDKIT_CACHE_MOUNT_NS: 'ibs/other' } }), 'invalid_spec', 'buildArgs.BUILDKIT_CACHE_MOUNT_NS'],
      ['a spec that is JSON but not an object', () => '["image"]', 'invalid_spec', undefined],
    ];
    it.each(specCases)('refuses %s', async (_what, spec, code, field) => {
      const form = buildForm(spec(), await contextOf({ Dockerfile: 'FROM scratch\n' }));
      await h.expectRefused(() => h.submit(form), 400, code, field);
    });

    it('refuses a multipart spec part over 256 KiB', async () => {
      const form = buildForm(JSON.stringify({ image, metadata: { pad: 'x'.repeat(300 * 1024) } }), await contextOf({ Dockerfile: 'FROM scratch\n' }));
      await h.expectRefused(() => h.submit(form), 400, 'spec_too_large', 'spec');
    });

    it('refuses a JSON body over 256 KiB without reading it all', async () => {
      // 8 MiB: the refusal must not wait for (or buffer) the whole body.
      const body = JSON.stringify({ image, sourceImage: '127.0.0.1:5000/x/y:1', metadata: { pad: 'x'.repeat(8 * 1024 * 1024) } });
      await h.expectRefused(() => h.submit(body, json), 400, 'spec_too_large', 'spec');
    });

    it.each<[string, Record<string, string>]>([
      ['a tab', { 'idempotency-key': 'a\tb' }],
      ['201 characters', { 'idempotency-key': 'k'.repeat(201) }],
      ['a non-ASCII character', { 'idempotency-key': 'cl\u00e9' }],
    ])('refuses an Idempotency-Key with %s', async (_what, headers) => {
      const form = await withDockerfile('FROM scratch\n');
      await h.expectRefused(() => h.submit(form, headers), 400, 'invalid_idempotency_key', 'Idempotency-Key');
    });

    it('refuses an X-Consumer that is a path', async () => {
      const form = await withDockerfile('FROM scratch\n');
      await h.expectRefused(() => h.submit(form, { 'x-consumer': '../../etc' }), 400, 'invalid_consumer', 'X-Consumer');
    });

    it('refuses a body that is neither multipart nor JSON', async () => {
      await h.expectRefused(() => h.submit('image=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type');
    });

    it('refuses multipart without a boundary', async () => {
      await h.expectRefused(() => h.submit('--x\r\n', { 'content-type': 'multipart/form-data' }), 400, 'invalid_multipart');
    });

    it('refuses a part it does not know', async () => {
      const form = await withDockerfile('FROM scratch\n');
      form.append('script', new Blob(['#!/bin/sh']), 'run.sh');
      await h.expectRefused(() => h.submit(form), 400, 'unknown_part', 'script');
    });

    it('refuses a second context part', async () => {
      const form = await withDockerfile('FROM scratch\n');
      form.append('context', new Blob([await contextOf({ Dockerfile: `FROM ${DENIED}/x:1\n` })]), 'second.tar.gz');
      await h.expectRefused(() => h.submit(form), 400, 'unknown_part', 'context');
    });

    it('refuses a list limit above 100 and a forged cursor', async () => {
      await h.expectRefused(() => h.stack.api('/v1/builds?limit=100000', {}, { consumer: h.consumer }), 400, 'invalid_request', 'limit');
      const forged = Buffer.from(JSON.stringify({ t: "2020-01-01'; DROP TABLE builds; --", i: randomUUID() })).toString('base64url');
      await h.expectRefused(() => h.stack.api(`/v1/builds?cursor=${forged}`, {}, { consumer: h.consumer }), 400, 'invalid_cursor', 'cursor');
    });

    it('answers headers over the server limit with 431 and a JSON error', async () => {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const url = new URL(`${h.stack.apiUrl}/v1/builds`);
        const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, headers: { 'x-padding': 'x'.repeat(64 * 1024) } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
      expect(answer.status).toBe(431);
      expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'headers_too_large' } });
    });

    it('answers an unauthenticated upload at once and cuts its connection soon after, instead of reading the body it declared', async () => {
      // A client that never reads its answer and keeps sending the 4 GiB it declared. Node would read and drop a
      // body the application left unread for as long as it keeps coming (requestTimeout: 2 h), for a caller the API
      // never authenticated; @hono/node-server cuts the connection after 64 MiB or 500 ms of that instead.
      const url = new URL(h.stack.apiUrl);
      const socket = connect(Number(url.port), url.hostname);
      let answer = '';
      socket.on('data', (c: Buffer) => (answer += c.toString()));
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.on('error', () => undefined); // EPIPE or ECONNRESET once the API cuts it: expected
      const declared = 4 * 2 ** 30;
      socket.write(`POST /v1/builds HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: ${declared}\r\n\r\n`);
      const chunk = Buffer.alloc(1 << 20, 'x');
      const started = Date.now();
      let sent = 0;
      for (let open = true; open && sent < declared; sent += chunk.length) {
        open = await Promise.race([
          new Promise<boolean>((resolve) => (socket.write(chunk) ? resolve(true) : socket.once('drain', () => resolve(true)))),
          closed.then(() => false),
        ]);
      }
      const seconds = (Date.now() - started) / 1000;
      socket.destroy();
      await closed;
      expect(answer).toMatch(/^HTTP\/1\.1 401 /);
      expect(answer).toContain('"code":"authentication_required"');
      expect(sent, `${Math.round(sent / 2 ** 20)} MiB sent in ${seconds} s before the connection was cut`).toBeLessThan(declared);
    });
  });

  describe("one consumer's flood of builds", () => {
    // At most two builds of a consumer queued or under way (BUILD_MAX_UNFINISHED_PER_CONSUMER); no worker runs them.
    let capped: HostileStack;
    const flood = () => ({ consumer: `${capped.consumer}-flood` });
    const calm = () => ({ consumer: `${capped.consumer}-calm` });
    const accepted: [string, { consumer: string }][] = [];
    beforeAll(async () => {
      capped = await startHostileStack('unfinished-limit', { BUILD_MAX_UNFINISHED_PER_CONSUMER: '2' });
    });
    afterAll(async () => {
      for (const [id, as] of accepted) await capped.stack.api(`/v1/builds/${id}/cancel`, { method: 'POST' }, as);
      await capped?.close();
    });

    const form = async () => buildForm({ image: `127.0.0.1:5000/hostile/flood:${capped.run}`, reuse: false }, await contextOf({ Dockerfile: `FROM scratch\nLABEL n=${randomUUID()}\n` }));
    const accept = async (as: { consumer: string }, headers: Record<string, string> = {}) => {
      const res = await capped.submit(await form(), headers, as);
      expect(res.status, await res.clone().text()).toBe(202);
      const { id } = (await res.json()) as { id: string };
      accepted.push([id, as]);
      return id;
    };

    /** Until Temporal lists the workflows of the builds accepted so far (the API starts them after its answer). */
    const settled = async () => {
      for (const deadline = Date.now() + 30_000; (await capped.state()).workflows < accepted.length && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 250));
    };

    it('refuses its third unfinished build with 429 too_many_unfinished_builds and Retry-After, and still answers a replay and another consumer', async () => {
      const first = await accept(flood(), { 'idempotency-key': `flood-${capped.run}` });
      await accept(flood());
      await settled();
      let retryAfter: string | null = null;
      const error = await capped.expectRefused(async () => {
        const res = await capped.submit(await form(), {}, flood());
        retryAfter = res.headers.get('retry-after');
        return res;
      }, 429, 'too_many_unfinished_builds');
      expect(retryAfter).toBe('30');
      expect(error.message).toContain('BUILD_MAX_UNFINISHED_PER_CONSUMER');
      // A client retrying a request whose answer it lost gets its build, as before the limit was reached.
      const replay = await capped.submit(await form(), { 'idempotency-key': `flood-${capped.run}` }, flood());
      expect(replay.status).toBe(202);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(((await replay.json()) as { id: string }).id).toBe(first);
      // The limit is the flooding consumer's alone.
      await accept(calm());
    });

    it('refuses it before reading the body: a large upload is neither spooled nor stored', async () => {
      // 64 MiB the API would spool and stream to storage if it read them; refused at once, nothing is stored.
      const big = buildForm({ image: `127.0.0.1:5000/hostile/flood:${capped.run}`, reuse: false }, randomBytes(64 * 1024 * 1024));
      await capped.expectRefused(() => capped.submit(big, {}, flood()), 429, 'too_many_unfinished_builds');
    });

    it('refuses a retry that would put a third one back in the queue', async () => {
      // A build of the consumer's that failed: written as the worker would have recorded it.
      const { record } = await capped.stack.builds.create({
        id: randomUUID(), consumer: flood().consumer, image: `127.0.0.1:5000/hostile/flood:${capped.run}`, spec: { image: `127.0.0.1:5000/hostile/flood:${capped.run}`, dockerfile: 'Dockerfile' } as never,
        contextKey: 'contexts/none', contextDigest: `sha256:${'0'.repeat(64)}`, taskQueue: capped.stack.taskQueue,
      });
      await capped.stack.builds.markFailed(record.id, { code: 'build_failed', message: 'failed' });
      await capped.expectRefused(() => capped.stack.api(`/v1/builds/${record.id}/retry`, { method: 'POST' }, flood()), 429, 'too_many_unfinished_builds');
      expect((await capped.stack.builds.get(record.id))?.status).toBe('failed');
    });
  });

  describe("another consumer's build", () => {
    let owner: { consumer: string };
    let other: { consumer: string };
    let build: string;

    beforeAll(async () => {
      owner = { consumer: `${h.consumer}-owner` };
      other = { consumer: `${h.consumer}-other` };
      const before = await h.state();
      const res = await h.submit(await withDockerfile(`FROM scratch\nLABEL run=${h.run}\n`), {}, owner);
      expect(res.status).toBe(202);
      build = ((await res.json()) as { id: string }).id;
      // The control: an accepted request shows in every check the refusals pass (Temporal's list catches up later).
      const deadline = Date.now() + 30_000;
      let after = await h.state();
      while (after.workflows === before.workflows && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        after = await h.state();
      }
      expect(after).toEqual({ rows: before.rows + 1, workflows: before.workflows + 1, objects: expect.arrayContaining([expect.stringMatching(/^contexts\//)]) });
      expect(after.objects.length).toBe(before.objects.length + 1);
    });
    afterAll(async () => {
      await h.stack.api(`/v1/builds/${build}/cancel`, { method: 'POST' }, owner);
    });

    it.each<[string, string, string]>([
      ['get', 'GET', ''],
      ['logs', 'GET', '/logs'],
      ['follow', 'GET', '/logs?follow=true'],
      ['cancel', 'POST', '/cancel'],
      ['retry', 'POST', '/retry'],
      ['scan-report', 'GET', '/scan-report'],
    ])('answers %s with 404 build_not_found', async (_what, method, suffix) => {
      const error = await h.expectRefused(() => h.stack.api(`/v1/builds/${build}${suffix}`, { method }, other), 404, 'build_not_found');
      expect(error.message).not.toContain(owner.consumer);
      expect((await h.stack.builds.get(build))?.status).toBe('queued');
    });

    it('lists none of its builds, however the filter is spelled', async () => {
      for (const query of [`?consumer=${owner.consumer}`, `?image=${encodeURIComponent(image)}`, '?status=queued&limit=100', `?consumer=${owner.consumer.toUpperCase()}`]) {
        const res = await h.stack.api(`/v1/builds${query}`, {}, other);
        expect(res.status, query).toBe(200);
        expect(((await res.json()) as { items: { id: string }[] }).items.map((b) => b.id), query).not.toContain(build);
      }
    });

    it('refuses to submit under its name with X-Consumer', async () => {
      const form = await withDockerfile('FROM scratch\n');
      await h.expectRefused(() => h.submit(form, { 'x-consumer': owner.consumer }, other), 403, 'consumer_mismatch');
    });

    it("cannot put its name on its own requests in the API's log with X-Consumer", async () => {
      const marker = randomUUID();
      const logged = h.logLines.length;
      await h.stack.api(`/v1/builds/${build}?probe=${marker}`, { headers: { 'x-consumer': owner.consumer } }, other);
      await h.submit(await withDockerfile('FROM scratch\n'), { 'x-consumer': owner.consumer }, other);
      // An operator may act for a consumer: its line names both (refused here for its spec, so nothing is built).
      const operator = { consumer: `${h.consumer}-ops`, role: 'operator' as const };
      expect((await h.submit(buildForm({}, await contextOf({ Dockerfile: 'FROM scratch\n' })), { 'x-consumer': owner.consumer }, operator)).status).toBe(400);
      const lines = h.logLines.slice(logged).map((line) => JSON.parse(line) as { msg?: string; consumer?: string; route?: string; actingFor?: string });
      const requests = lines.filter((line) => line.msg === 'request');
      expect(requests.map((line) => [line.route, line.consumer, line.actingFor])).toEqual([
        ['/v1/builds/:id', other.consumer, undefined],
        ['/v1/builds', other.consumer, undefined],
        ['/v1/builds', operator.consumer, owner.consumer],
      ]);
    });
  });

  it('started one workflow in all, the accepted control build, once Temporal has caught up', async () => {
    expect(await h.settledWorkflows()).toBe(1);
  });
});
