/**
 * The long activities (the build, pushes of sources, the scan of a ready image, signing) heartbeat on a timer for as
 * long as they run, whatever step they are in: Temporal notices a lost worker within their heartbeat timeout, and a
 * cancel reaches them at the next beat. A step inside them that heartbeats on its own (an executor following its
 * builder) only adds beats.
 */
import type { Context } from '@temporalio/activity';

export const HEARTBEAT_EVERY_MS = 5_000;

/** Starts beating for `ctx`; call the answer to stop. */
export function keepBeating(ctx: Context, everyMs = HEARTBEAT_EVERY_MS): () => void {
  const beat = setInterval(() => ctx.heartbeat(), everyMs);
  return () => clearInterval(beat);
}
