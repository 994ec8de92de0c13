/** A small server-sent-events reader for the log-follow tests: parses frames as a browser's EventSource would. */
export interface SseEvent {
  event: string;
  id?: string;
  data: string;
  /** performance.now() when the event was parsed. */
  at: number;
}

/**
 * Reads `res`'s event stream, calling `onEvent` for each event; resolves when the stream ends (or is aborted by the
 * caller's AbortController, which surfaces as an AbortError that is swallowed here).
 */
export async function readEvents(res: Response, onEvent: (event: SseEvent) => void): Promise<void> {
  if (!res.body) throw new Error('no event stream');
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event: SseEvent = { event: 'message', data: '', at: performance.now() };
        const data: string[] = [];
        for (const line of frame.split('\n')) {
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event.event = value;
          else if (field === 'id') event.id = value;
          else if (field === 'data') data.push(value);
        }
        event.data = data.join('\n');
        onEvent(event);
      }
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  }
}

/** The numbers of the `tick-N` lines in `text`, in order. */
export function ticksIn(text: string, marker = 'tick'): number[] {
  return [...text.matchAll(new RegExp(`${marker}-(\\d+)\\b`, 'g'))].map((m) => Number(m[1]));
}
