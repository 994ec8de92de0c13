/**
 * The API's and the worker's telemetry: one logger and one metrics registry per process, built from the
 * configuration and handed to whatever needs them (no module singletons: tests hand in their own).
 */
import type { Config } from '../config';
import { createLogger, type Logger, type LoggerOptions } from './logger';
import { ServiceMetrics } from './metrics';

export interface Telemetry {
  logger: Logger;
  metrics: ServiceMetrics;
}

export function createTelemetry(
  config: Pick<Config, 'telemetry' | 'secrets' | 'build'>,
  service: 'api' | 'worker',
  options: Pick<LoggerOptions, 'destination'> & { processMetrics?: boolean } = {},
): Telemetry {
  return {
    logger: createLogger({ level: config.telemetry.logLevel, secrets: config.secrets, destination: options.destination, base: { service } }),
    metrics: new ServiceMetrics({ maxConsumers: config.telemetry.metricsMaxConsumers, processMetrics: options.processMetrics, defaultEngine: config.build.defaultEngine }),
  };
}

/**
 * A problem the caller carries on from, through the process's logger, or the console where none is wired (an app
 * built without telemetry, as some tests build it).
 */
export function logProblem(telemetry: Pick<Telemetry, 'logger'> | undefined, level: 'warn' | 'error', fields: Record<string, unknown>, message: string): void {
  if (telemetry) telemetry.logger[level](fields, message);
  else console[level](message, fields);
}

export { createLogger, errorText, type Logger } from './logger';
export { ServiceMetrics } from './metrics';
