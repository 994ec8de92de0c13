/** A credential that is minted on demand, kept until shortly before it expires, and minted once for concurrent callers. */
export interface Minted<T> {
  value: T;
  /** Epoch ms. */
  expiresAt: number;
}

export class MintedCache<T> {
  private current?: Minted<T>;
  private pending?: Promise<Minted<T>>;

  constructor(
    /** Renew this long before expiry: a token handed to a long build must outlive the push. */
    private readonly marginMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async get(mint: () => Promise<Minted<T>>): Promise<T> {
    if (this.current && this.current.expiresAt - this.marginMs > this.now()) return this.current.value;
    this.pending ??= mint().finally(() => {
      this.pending = undefined;
    });
    this.current = await this.pending;
    return this.current.value;
  }

  clear(): void {
    this.current = undefined;
  }
}
