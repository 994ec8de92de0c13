/**
 * Kubernetes resource quantities ("1", "500m", "1G", "512Mi", "1e3"), parsed by one function so that what the
 * configuration accepts at start-up is exactly what the kubernetes executor can compare at build time.
 */

const SUFFIX_FACTOR: Record<string, number> = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/**
 * The grammar of Kubernetes' resource.Quantity: a number followed by a binary suffix (Ki…Ei), a decimal suffix
 * (n, u, m, k, M…E; a capital K is not one) or a decimal exponent (e3, E-2), never two of them. The sign is left
 * out on purpose: a resource request or limit below zero is refused by the API server anyway.
 */
const QUANTITY = /^\+?(\d+(?:\.\d*)?|\.\d+)(?:([KMGTPE]i|[numkMGTPE])|[eE]([+-]?\d+))?$/;

/** The value of a quantity in cores or bytes ("500m" → 0.5, "1Gi" → 1073741824), or undefined when it is not one. */
export function parseQuantity(quantity: string): number | undefined {
  const match = QUANTITY.exec(quantity);
  if (!match) return undefined;
  const [, number, suffix, exponent] = match;
  const value = Number(number) * (exponent === undefined ? SUFFIX_FACTOR[suffix ?? '']! : 10 ** Number(exponent));
  return Number.isFinite(value) ? value : undefined;
}

export function isQuantity(value: string): boolean {
  return parseQuantity(value) !== undefined;
}

/**
 * Kubernetes quantities as strings ("1", "500m", "1G", "100G"). Here, beside their parser and with no imports, so
 * the workflow contract (workflows/definitions.ts) can derive a build's own resources from it without a cycle.
 */
export interface ResourceQuantities {
  cpu: string;
  memory: string;
  ephemeralStorage: string;
}

