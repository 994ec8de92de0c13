import { describe, expect, it } from 'vitest';
import { migrations } from './migrations';

describe('migrations', () => {
  it('have unique ids: a repeated id is skipped as applied on a database that has the first, and fails on a new one', () => {
    const ids = migrations.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
