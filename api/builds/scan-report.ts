/** A build's scan report, as the scanner wrote it, from the service's own bucket (lib/scan/report-store.ts). */
import { Readable } from 'node:stream';
import type { BuildRecord } from '../../lib/db/builds-repository';
import { scanReportKey } from '../../lib/scan/report-store';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';

export async function storedScanReport(deps: ApiDeps, build: BuildRecord): Promise<Response> {
  const stream = await deps.storage.get(scanReportKey(build.id));
  if (!stream) {
    throw new ApiError(404, 'scan_report_not_available', `build ${build.id} has no scan report: the scanner gate is off, the build has not been scanned yet, or the scanner wrote no report (see the build's error)`);
  }
  return new Response(Readable.toWeb(stream) as unknown as ReadableStream, {
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  });
}
