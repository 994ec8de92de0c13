/**
 * Signing pushed images with the notation CLI (IMAGE_SIGNER_TYPE=notation). The digest is signed, never a tag;
 * an index is signed together with each of its platform manifests. The signature goes to the same repository as an
 * OCI referrer when the registry implements the referrers API, and under the referrers tag scheme when it does
 * not (asked of the registry, never guessed). Every signature is then verified with `notation verify` against a
 * trust policy for the profile's certificate before the build may succeed.
 *
 * The AWS Signer plugin (com.amazonaws.signer.notation.plugin) signs with `--id <profile ARN> --plugin …
 * --plugin-config aws-region=…`; any other plugin signs with the key NOTATION_PROFILE names in notation's key list
 * (`notation key add`, or `notation cert generate-test` for a local test key).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { CredentialsLookup } from '../registry/auth';
import type { RegistryClient } from '../registry/client';

export const AWS_SIGNER_PLUGIN = 'com.amazonaws.signer.notation.plugin';
/** What notation reads from its configuration folder besides the trust policy the worker writes. */
const NOTATION_CONFIG_ENTRIES = ['plugins', 'truststore', 'localkeys', 'signingkeys.json', 'config.json'];
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

export interface NotationSignerOptions {
  notationPath: string;
  /** XDG_CONFIG_HOME for notation (its keys, plugins, trust store and trust policy live in <this>/notation). */
  configHome?: string;
  /** notation configuration to link into <configHome>/notation where that lacks it (default ~/.config/notation). */
  defaultsDir?: string;
  profile: string;
  plugin: string;
  region: string;
  /** The trust store of the profile's certificate, e.g. signingAuthority:aws-signer-ts or ca:<key name>. */
  trustStore: string;
  insecureRegistry: boolean;
  credentials: CredentialsLookup;
  registry: RegistryClient;
  secrets: readonly string[];
}

export interface SignatureRecord {
  /** Digest of the signature manifest of the image's top digest (null when unsigned). */
  digest: string | null;
  profile: string;
  verified: boolean;
  /** Every digest signed: the index and each platform manifest. */
  signed: string[];
  /** How the signature was stored: as an OCI referrer or under the referrers tag scheme. */
  storedAs?: 'referrers-api' | 'referrers-tag';
  /** True when a retried build found the image already signed by this profile and signed nothing. */
  alreadySigned?: boolean;
}

/**
 * notation's words for a registry answer another try may not meet: throttling or a fault on the registry's side (a
 * 5xx or 429 status, notation does not retry them itself), or a connection that broke. Anything else (a refused
 * login, a key or trust policy notation cannot use, a signature that does not verify) stays a refusal.
 */
const TRANSIENT_REGISTRY_ANSWER = /response status code (5\d\d|429)\b|connection refused|connection reset by peer|: EOF\b|i\/o timeout/;

/** Whether notation's output shows a registry fault that a later attempt may not meet. */
export function isTransientNotationFailure(output: string): boolean {
  return TRANSIENT_REGISTRY_ANSWER.test(output);
}

export class SigningError extends Error {
  constructor(
    readonly code: 'signing_failed' | 'signature_verification_failed',
    message: string,
    /** The registry failed for a while (isTransientNotationFailure): the step is worth another attempt. */
    readonly transient = false,
  ) {
    super(message);
    this.name = 'SigningError';
  }
}

export class NotationSigner {
  /** What the copied trust store was copied from (a digest of its files), and the copy under way. */
  private trustStoreCopied?: string;
  private trustStoreSync: Promise<void> = Promise.resolve();

  constructor(private readonly options: NotationSignerOptions) {}

  private get defaultsDir(): string {
    return this.options.defaultsDir ?? join(process.env.HOME ?? '/root', '.config', 'notation');
  }

  private get configDir(): string {
    return join(this.options.configHome ?? join(process.env.HOME ?? '/root', '.config'), 'notation');
  }

  get profile(): string {
    return this.options.profile;
  }

  /**
   * Makes notation's configuration folder ready, once at worker start-up. In the chart the root filesystem is
   * read-only and NOTATION_CONFIG_HOME is on a writable volume: what it lacks of the defaults (the plugins the
   * service image installs, keys the operator mounted) is linked in (folders) or copied (files); the trust store is
   * copied, and copied again whenever it changes (syncTrustStore). Then a trust policy for the profile's certificate
   * is written unless one exists (the operator's policy is used as it is).
   */
  async prepareConfig(): Promise<void> {
    const defaults = this.defaultsDir;
    const dir = this.configDir;
    try {
      await mkdir(dir, { recursive: true });
      if (resolve(defaults) !== resolve(dir)) {
        for (const entry of NOTATION_CONFIG_ENTRIES) {
          const from = join(defaults, entry);
          if (entry === 'truststore' || !existsSync(from) || existsSync(join(dir, entry))) continue;
          // notation refuses a key list or config file that is a symlink: files are copied, folders linked.
          if ((await stat(from)).isDirectory()) await symlink(from, join(dir, entry));
          else await copyFile(from, join(dir, entry));
        }
        await this.syncTrustStore();
      }
    } catch (err) {
      throw new Error(`notation's configuration folder ${dir} could not be prepared (${(err as Error).message}); point NOTATION_CONFIG_HOME at a writable folder`);
    }
    if (existsSync(join(dir, 'trustpolicy.json')) || existsSync(join(dir, 'trustpolicy.oci.json'))) return;
    const aws = this.options.plugin === AWS_SIGNER_PLUGIN;
    const policy = {
      version: '1.0',
      trustPolicies: [
        {
          name: 'image-build-service',
          registryScopes: ['*'],
          signatureVerification: { level: 'strict' },
          trustStores: [this.options.trustStore],
          trustedIdentities: aws ? [this.options.profile] : ['*'],
        },
      ],
    };
    await writeFile(join(dir, 'trustpolicy.json'), JSON.stringify(policy, null, 2));
  }

  /**
   * notation refuses trust store certificates that are symlinks, which is what a mounted Secret holds (<name> ->
   * ..data/<name>), so the trust store is copied into notation's folder as regular files, without the volume's own
   * ..data entries. The kubelet updates a mounted Secret in place when the operator rotates the certificate, so
   * the copy is checked against it before every signing (a digest of a few small files) and made again when it
   * changed: a rotated certificate takes effect with the next build, without a new worker pod. Copies are made one
   * at a time; the new one replaces the old by a rename.
   */
  private syncTrustStore(): Promise<void> {
    const sync = this.trustStoreSync.then(async () => {
      const from = join(this.defaultsDir, 'truststore');
      if (resolve(this.defaultsDir) === resolve(this.configDir) || !existsSync(from)) return;
      const state = await treeDigest(from);
      if (state === this.trustStoreCopied) return;
      const to = join(this.configDir, 'truststore');
      const next = `${to}.next`;
      await rm(next, { recursive: true, force: true });
      await cp(from, next, { recursive: true, dereference: true, filter: (path) => !basename(path).startsWith('..') });
      await rm(to, { recursive: true, force: true });
      await rename(next, to);
      this.trustStoreCopied = state;
    });
    this.trustStoreSync = sync.catch(() => undefined);
    return sync;
  }

  /** Signs registry/repository@digest (and its platform manifests), unless this profile already signed it; then verifies. */
  async signAndVerify(registry: string, repository: string, digest: string, log: (text: string) => void): Promise<SignatureRecord> {
    try {
      await this.syncTrustStore();
    } catch (err) {
      throw new SigningError('signature_verification_failed', `the trust store could not be copied into notation's folder (${(err as Error).message}); check the mounted trust store`);
    }
    const targets = await this.digestsToSign(registry, repository, digest);
    const base = { profile: this.options.profile, signed: targets };
    if (await this.verifiesAll(registry, repository, targets)) {
      log(`[ibs] ${registry}/${repository}@${digest} is already signed by ${this.options.profile}; not signing it again\n`);
      return { ...base, digest: await this.signatureDigest(registry, repository, digest), verified: true, alreadySigned: true };
    }
    const referrersApi = await this.options.registry.supportsReferrers(registry, repository, digest);
    for (const target of targets) {
      const result = await this.notation(registry, ['sign', ...this.signingArgs(), `--force-referrers-tag=${!referrersApi}`, `${registry}/${repository}@${target}`]);
      if (result.code !== 0) {
        throw new SigningError('signing_failed', `notation could not sign ${registry}/${repository}@${target} with ${this.options.profile}: ${result.output}`, isTransientNotationFailure(result.output));
      }
    }
    log(`[ibs] signed ${targets.length} manifest(s) with ${this.options.profile}, stored ${referrersApi ? 'as OCI referrers' : 'under the referrers tag scheme (the registry has no referrers API)'}\n`);
    for (const target of targets) {
      const result = await this.verify(registry, repository, target);
      if (result.code !== 0) {
        throw new SigningError(
          'signature_verification_failed',
          `notation verify refused the signature of ${registry}/${repository}@${target}: ${result.output}; check that the trust policy trusts the certificate of ${this.options.profile}`,
          isTransientNotationFailure(result.output),
        );
      }
    }
    return { ...base, digest: await this.signatureDigest(registry, repository, digest), verified: true, storedAs: referrersApi ? 'referrers-api' : 'referrers-tag' };
  }

  /** `notation verify` of one reference (a digest, or a tag: what the tag points at now is what is verified). */
  verify(registry: string, repository: string, reference: string): Promise<{ code: number; output: string }> {
    const sep = reference.startsWith('sha256:') ? '@' : ':';
    return this.notation(registry, ['verify', `${registry}/${repository}${sep}${reference}`]);
  }

  private signingArgs(): string[] {
    const o = this.options;
    if (o.plugin === AWS_SIGNER_PLUGIN) return ['--id', o.profile, '--plugin', o.plugin, '--plugin-config', `aws-region=${o.region}`];
    return ['--key', o.profile];
  }

  private async verifiesAll(registry: string, repository: string, digests: string[]): Promise<boolean> {
    for (const d of digests) if ((await this.verify(registry, repository, d)).code !== 0) return false;
    return true;
  }

  private async digestsToSign(registry: string, repository: string, digest: string): Promise<string[]> {
    const manifest = await this.options.registry.getManifest(registry, repository, digest);
    const parsed = JSON.parse(manifest.body.toString('utf8')) as { mediaType?: string; manifests?: { digest: string; mediaType?: string }[] };
    if (!INDEX_TYPES.has(parsed.mediaType ?? manifest.mediaType)) return [digest];
    // Platform manifests only: BuildKit's attestation manifests are not images to sign.
    const children = (parsed.manifests ?? []).filter((m) => !/in-toto|attestation/.test(JSON.stringify(m))).map((m) => m.digest);
    return [...children, digest];
  }

  /** The newest signature of `digest` as `notation inspect` lists it. */
  private async signatureDigest(registry: string, repository: string, digest: string): Promise<string | null> {
    const result = await this.notation(registry, ['inspect', '-o', 'json', `${registry}/${repository}@${digest}`]);
    if (result.code !== 0) return null;
    try {
      const signatures = (JSON.parse(result.stdout) as { Signatures?: { digest: string; signedAttributes?: { signingTime?: string } }[] }).Signatures ?? [];
      signatures.sort((a, b) => String(b.signedAttributes?.signingTime).localeCompare(String(a.signedAttributes?.signingTime)));
      return signatures[0]?.digest ?? null;
    } catch {
      return null;
    }
  }

  /** Runs notation with the registry's credentials in its environment (never on the command line). */
  private async notation(registry: string, args: string[]): Promise<{ code: number; output: string; stdout: string }> {
    const creds = await this.options.credentials(registry);
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' };
    if (this.options.configHome) {
      env.XDG_CONFIG_HOME = this.options.configHome;
      // Its revocation-list cache, beside the configuration on the writable volume (HOME is read-only in the chart).
      env.XDG_CACHE_HOME = join(this.options.configHome, 'cache');
    }
    if (creds) Object.assign(env, { NOTATION_USERNAME: creds.username, NOTATION_PASSWORD: creds.password });
    for (const name of ['AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_SIGNER']) {
      const value = process.env[name];
      if (value) env[name] = value;
    }
    const argv = [...args.slice(0, 1), ...(this.options.insecureRegistry ? ['--insecure-registry'] : []), ...args.slice(1)];
    return new Promise((resolve, reject) => {
      const child = spawn(this.options.notationPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      child.on('error', (err) => reject(new Error(`could not run notation (${this.options.notationPath}): ${err.message}`)));
      child.on('close', (code) => {
        let output = `${stderr}${stdout}`.trim().slice(-2000);
        for (const s of this.options.secrets) if (s.length >= 4) output = output.split(s).join('*****');
        if (creds) output = output.split(creds.password).join('*****');
        resolve({ code: code ?? 1, output, stdout });
      });
    });
  }
}

/** A digest of the files under `dir`, symlinks followed (as the copy follows them), a mounted Secret's ..data skipped. */
async function treeDigest(dir: string, hash = createHash('sha256'), prefix = ''): Promise<string> {
  for (const name of (await readdir(dir)).filter((n) => !n.startsWith('..')).sort()) {
    const path = join(dir, name);
    if ((await stat(path)).isDirectory()) await treeDigest(path, hash, `${prefix}${name}/`);
    else hash.update(`${prefix}${name}\0`).update(await readFile(path)).update('\0');
  }
  return prefix ? '' : hash.digest('hex');
}
