/**
 * The kubernetes executor's half of the scanner gate: the builder pod's scanner container uploads the report
 * (always) and the scanned archive (when the scan passed) to presigned URLs of these staging keys; the worker
 * brings them into the gate's shared folder, where lib/scan/gate.ts judges and pushes as it does locally.
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { IMAGE_ARCHIVE, SCAN_REPORT } from '../../scan/contract';
import type { ObjectStore } from '../../storage/object-store';

export function gateStagingKeys(buildId: string): { report: string; archive: string } {
  return { report: `scan-staging/builds/${buildId}/${SCAN_REPORT}`, archive: `scan-staging/builds/${buildId}/${IMAGE_ARCHIVE}` };
}

/**
 * Downloads what the pod uploaded into `sharedDir` (a missing report stays missing). The staging objects stay as long
 * as the pod does (removeGateStaging goes with it): an attempt retried after this one fetched them (a push that
 * failed, a worker that died) attaches to the finished pod and fetches them again.
 */
export async function fetchGateResults(storage: ObjectStore, buildId: string, sharedDir: string, scanExitCode: number): Promise<void> {
  const keys = gateStagingKeys(buildId);
  const download = async (key: string, file: string) => {
    const body = await storage.get(key);
    if (body) await pipeline(body, createWriteStream(join(sharedDir, file)));
  };
  await download(keys.report, SCAN_REPORT);
  if (scanExitCode === 0) await download(keys.archive, IMAGE_ARCHIVE);
}

/** Removes a build's staged report and archive; deleting its builder pod calls it. */
export async function removeGateStaging(storage: ObjectStore, buildId: string): Promise<void> {
  const keys = gateStagingKeys(buildId);
  await storage.delete(keys.report);
  await storage.delete(keys.archive);
}
