import { describe, expect, it } from 'vitest';
import { MintedCache } from './minted';

describe('MintedCache', () => {
  it('mints once for concurrent callers and again only within the margin before expiry', async () => {
    let now = 0;
    let mints = 0;
    const cache = new MintedCache<string>(60_000, () => now);
    const mint = async () => ({ value: `v${++mints}`, expiresAt: now + 600_000 });
    expect(await Promise.all([cache.get(mint), cache.get(mint), cache.get(mint)])).toEqual(['v1', 'v1', 'v1']);
    now = 539_000;
    expect(await cache.get(mint)).toBe('v1');
    now = 540_001;
    expect(await cache.get(mint)).toBe('v2');
  });

  it('does not keep a failed mint', async () => {
    const cache = new MintedCache<string>(0);
    await expect(cache.get(() => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(await cache.get(async () => ({ value: 'ok', expiresAt: Date.now() + 1000 }))).toBe('ok');
  });
});
