import { describe, expect, it } from 'vitest';
import { isQuantity, parseQuantity } from './quantity';

describe('parseQuantity', () => {
  it.each<[string, number]>([
    ['1', 1], ['500m', 0.5], ['1.5', 1.5], ['.5', 0.5], ['1.', 1], ['+2', 2],
    ['1k', 1e3], ['1G', 1e9], ['100G', 1e11], ['1Gi', 2 ** 30], ['0.5Gi', 2 ** 29], ['512Mi', 512 * 2 ** 20], ['250u', 250e-6], ['5n', 5e-9],
    // Decimal exponents are quantities too: Kubernetes takes `1e3` as 1000 cores or bytes.
    ['1e3', 1000], ['2E3', 2000], ['1e+3', 1000], ['15e-1', 1.5],
  ])('%s = %d', (quantity, value) => expect(parseQuantity(quantity)).toBeCloseTo(value, 12));

  it.each([
    '', ' 1', '1 ', '4 GB', '1GB', 'one', 'm', 'Gi', '-1', '1K', '1e3G', '1Gie3', '1.2.3', '0x10', '1e',
  ])('refuses %j, as Kubernetes does', (value) => {
    expect(parseQuantity(value)).toBeUndefined();
    expect(isQuantity(value)).toBe(false);
  });
});
