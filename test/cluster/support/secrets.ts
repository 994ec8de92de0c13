/**
 * A build secret checked from inside a RUN step without printing it or writing it into the Dockerfile: the step
 * compares the secret's sha256 with the expected one and prints a marker only when they match; afterwards the
 * pushed image (its manifest, config and history) is searched for the value.
 */
import { createHash } from 'node:crypto';
import { blobOf, manifestOf } from '../../support/registry';

export const SECRET_SEEN = 'ibs-build-secret-matched';

/** A RUN step that passes only when BuildKit mounted secret `id` as its variable with exactly `value`. */
export function secretCheckStep(id: string, value: string): string {
  const sha = createHash('sha256').update(value).digest('hex');
  return `RUN --mount=type=secret,id=${id},env=${id} test "$(printf %s "$${id}" | sha256sum | cut -d' ' -f1)" = ${sha} && echo ${SECRET_SEEN}`;
}

/** The image's manifest and config blob as text (the config holds the env, labels and every step's history). */
export async function imageMetadataText(repository: string, digest: string): Promise<string> {
  const { manifest } = await manifestOf(repository, digest);
  return JSON.stringify(manifest) + (await blobOf(repository, manifest.config.digest)).toString('utf8');
}
