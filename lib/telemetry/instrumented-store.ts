/**
 * An ObjectStore that counts its operations by outcome (ibs_storage_operations_total), so a storage outage shows in
 * metrics and alerts even where the caller carries on (the build-log flush retries; a missing object is no error).
 * A Proxy rather than a hand-written wrapper, so a method added to the ObjectStore interface is counted too.
 */
import type { ObjectStore } from '../storage/object-store';
import type { ServiceMetrics } from './metrics';

export function instrumentObjectStore<S extends ObjectStore>(store: S, metrics: ServiceMetrics): S {
  const count = (operation: string, outcome: 'success' | 'error') => metrics.storageOperations.inc({ operation: snakeCase(operation), outcome });
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]) => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.then(
          (ok: unknown) => {
            count(property, 'success');
            return ok;
          },
          (err: unknown) => {
            count(property, 'error');
            throw err;
          },
        );
      };
    },
  });
}

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
