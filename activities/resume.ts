/** What a retry that resumes after the build step writes to the build's log, so the log says why no build ran. */
import { BuildLog, type BuildLogSettings } from '../lib/logs/build-log';
import type { ObjectStore } from '../lib/storage/object-store';
import type { ResumePoint } from '../workflows/definitions';

export interface ResumeActivityDeps {
  storage: ObjectStore;
  buildLogs: BuildLogSettings;
  secrets: readonly string[];
}

export function createResumeActivities(deps: ResumeActivityDeps) {
  return {
    async noteResume(buildId: string, resume: ResumePoint): Promise<void> {
      const log = await BuildLog.open(deps.storage, deps.buildLogs, buildId, deps.secrets);
      log.write(`[ibs] retry of build ${buildId} resumes at the ${resume.step} step with ${resume.digest}, which the registry still holds; nothing is rebuilt\n`);
      await log.close();
    },
  };
}
