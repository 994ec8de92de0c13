/**
 * The signing step (IMAGE_SIGNER_TYPE=notation): after the push, sign the pushed digest and verify the signature
 * before the build may succeed. A failure ends the build with its own code and leaves the Build's `signature`
 * marked unverified (the image stays pushed, unsigned).
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { BuildRepository } from '../lib/db/builds-repository';
import { BuildLog, type BuildLogSettings } from '../lib/logs/build-log';
import { redact } from '../lib/logs/redact';
import { parseImageReference } from '../lib/registry/reference';
import { SigningError, type NotationSigner } from '../lib/signing/notation';
import { keepBeating } from './heartbeat';
import { phaseReporter, type PhaseDeps } from './phase';
import type { ObjectStore } from '../lib/storage/object-store';

export interface SigningDeps extends PhaseDeps {
  builds: BuildRepository;
  storage: ObjectStore;
  buildLogs: BuildLogSettings;
  secrets: readonly string[];
  signer?: NotationSigner;
}

export function createSigningActivities(deps: SigningDeps) {
  return {
    /** Whether this worker signs (IMAGE_SIGNER_TYPE=notation): the workflow skips the signing step when it does not. */
    async signingEnabled(): Promise<boolean> {
      return deps.signer !== undefined;
    },

    /** Signs and verifies the pushed digest; does nothing when signing is off. */
    async signImage(buildId: string, image: string, digest: string): Promise<void> {
      const signer = deps.signer;
      if (!signer) return;
      // A worker that dies mid-signing is noticed by its missing heartbeats, and the step retried on another worker
      // within seconds, rather than after the step's whole timeout.
      const ctx = Context.current();
      const stopBeating = keepBeating(ctx);
      try {
        await sign(signer, buildId, image, digest);
      } finally {
        stopBeating();
      }
    },
  };

  async function sign(signer: NotationSigner, buildId: string, image: string, digest: string): Promise<void> {
    await phaseReporter(deps, buildId)('signing');
    const ref = parseImageReference(image);
    const log = await BuildLog.open(deps.storage, deps.buildLogs, buildId, deps.secrets);
    try {
      const signature = await signer.signAndVerify(ref.registry, ref.repository, digest, (text) => log.write(text));
      await deps.builds.recordSignature(buildId, signature);
      log.write(`[ibs] signature ${signature.digest ?? '(unknown digest)'} of ${digest} verified\n`);
    } catch (err) {
      if (!(err instanceof SigningError)) throw err;
      // Until an attempt signs, the Build says unsigned. A registry that fails for a while gets the step's next
      // attempts (the workflow's retry policy); the last one's failure ends the build with the code as any refusal.
      await deps.builds.recordSignature(buildId, { digest: null, profile: signer.profile, verified: false, signed: [] });
      log.write(`[ibs] ${err.message}${err.transient ? '; trying again' : ''}\n`);
      throw ApplicationFailure.create({ type: err.code, message: redact(err.message, deps.secrets), nonRetryable: !err.transient });
    } finally {
      await log.close();
    }
  }
}
