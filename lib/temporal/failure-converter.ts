/**
 * The failure converter of a service whose Temporal payloads are sealed (payload-encryption.ts): a failure's message
 * and stack trace go into its encoded attributes, a payload the codec seals, instead of lying in the history in the
 * clear; the message left in the clear is "Encoded failure". Loaded by path: the worker requires it for its
 * activities' failures, and the workflow bundle carries it for the workflows' own.
 */
import { DefaultFailureConverter } from '@temporalio/common';

/** What only this module brings into a workflow bundle (build-workflow-bundle.ts checks a named bundle for it). */
export const SEALED_FAILURES_MARK = 'ibs-sealed-failure-converter';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
