/**
 * Reads what the real OpenTelemetry Collector (infra/local/start.d/otelcol.sh) received: its `debug` exporter prints
 * each batch of spans in detail through the collector's JSON logger into one file; this parses those prints back
 * into spans (service, trace id, span id, parent, name).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const COLLECTOR_ENDPOINT = process.env.IBS_OTELCOL_ENDPOINT ?? 'http://127.0.0.1:4318';
export const COLLECTOR_OUTPUT = process.env.IBS_OTELCOL_OUTPUT ?? join(process.env.IBS_RUN ?? '/tmp/image-build-service', 'otelcol', 'received.jsonl');

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentId: string;
  name: string;
}

/** Where the collector's output ends now: spans received later are read from here on. */
export function collectorMark(): number {
  return existsSync(COLLECTOR_OUTPUT) ? statSync(COLLECTOR_OUTPUT).size : 0;
}

export function spansReceivedSince(mark: number): ReceivedSpan[] {
  if (!existsSync(COLLECTOR_OUTPUT)) return [];
  const text = readFileSync(COLLECTOR_OUTPUT).subarray(mark).toString('utf8');
  const spans: ReceivedSpan[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('Span #')) continue;
    let msg: string;
    try {
      msg = (JSON.parse(line) as { msg?: string }).msg ?? '';
    } catch {
      continue;
    }
    let service = '';
    let span: Partial<ReceivedSpan> | undefined;
    const flush = () => {
      if (span?.traceId && span.spanId) spans.push({ service, traceId: span.traceId, spanId: span.spanId, parentId: span.parentId ?? '', name: span.name ?? '' });
    };
    for (const row of msg.split('\n')) {
      const serviceName = /-> service\.name: Str\((.*)\)/.exec(row);
      if (/^ResourceSpans #/.test(row)) {
        flush();
        span = undefined;
      }
      if (serviceName) service = serviceName[1] ?? '';
      if (/^Span #/.test(row)) {
        flush();
        span = {};
      }
      const field = /^\s+(Trace ID|Parent ID|ID|Name)\s+:\s?(.*)$/.exec(row);
      if (span && field) {
        const value = (field[2] ?? '').trim();
        if (field[1] === 'Trace ID') span.traceId = value;
        else if (field[1] === 'Parent ID') span.parentId = value;
        else if (field[1] === 'ID') span.spanId = value;
        else span.name = value;
      }
    }
    flush();
  }
  return spans;
}
