/**
 * A failure's evidence (docs/errors.md: what the registry answered, the OOM limit, the scheduler's message) travels
 * as the ApplicationFailure's details to the workflow and the build record, scrubbed of the deployment's secrets like
 * the message is.
 */
import { scrubValue } from '../lib/telemetry/logger';

export function evidenceDetails(evidence: Record<string, string> | undefined, secrets: readonly string[]): unknown[] | undefined {
  return evidence && Object.keys(evidence).length ? [scrubValue(evidence, secrets)] : undefined;
}
