/**
 * The scanner gate's side of the build activity: a shared folder and the resolved scanner before the executor
 * runs, then the gate's verdict, the Build's `scan`, and the push from the archive. The statuses follow the real
 * steps: the executor reports when the scanner starts (scanning), and `pushing` is set as the push starts, each
 * recorded and told to the workflow (activities/phase.ts).
 */
import type { BuildOutcome } from '../lib/executors/executor';
import type { GateJob, ScanRecord } from '../lib/scan/contract';
import type { ScanGate } from '../lib/scan/gate';
import { makeSharedDir, removeEarlierSharedDirs } from '../lib/scan/shared-dir';
import { removeTree } from '../lib/scratch/remove-tree';

export interface OpenGate {
  job: GateJob;
  /** Judges the scan and, when it passed, pushes the archive; answers the pushed digest. */
  finish(outcome: BuildOutcome, registry: string, repository: string): Promise<{ digest: string }>;
  close(): Promise<void>;
}

export async function openScanGate(
  gate: ScanGate,
  buildId: string,
  recordScan: (scan: ScanRecord) => Promise<void>,
  log: (text: string) => void,
  phase: (status: 'pushing') => Promise<void>,
  signal?: AbortSignal,
): Promise<OpenGate> {
  const scanner = await gate.prepare();
  log(`[ibs] scanner ${scanner.configured} resolved to ${scanner.image.digest} for this build\n`);
  await removeEarlierSharedDirs(buildId);
  const sharedDir = await makeSharedDir(buildId);
  return {
    job: { sharedDir, scanner: scanner.run, scannerImage: scanner.image },
    async finish(outcome, registry, repository) {
      if (!outcome.scan) throw new Error('the executor ran a gated build without its scanner');
      const scan = await gate.judge(buildId, sharedDir, outcome.scan.exitCode, scanner, recordScan);
      log(`[ibs] the scan passed; report at ${scan.reportUrl}\n`);
      // A cancel that came while the archive was fetched and judged stops the build before anything is pushed.
      signal?.throwIfAborted();
      await phase('pushing');
      const pushed = await gate.push(sharedDir, registry, repository, outcome.digest);
      log(`[ibs] pushed ${registry}/${repository}@${pushed.digest} from the scanned archive (${pushed.uploaded} blobs uploaded, ${pushed.reused} already there)\n`);
      return { digest: pushed.digest };
    },
    close: () => removeTree(sharedDir),
  };
}
