// A bounded read-ahead over a stateful async producer: while the consumer works on item k, items k+1..k+depth are
// being produced (one after another, since the producer is stateful). At most `depth` items are produced or in
// production and not yet handed over, so memory stays bounded. An error surfaces at the consumer's next() for the
// item it belongs to; nothing is produced after an error or after the producer's end (undefined).

export class Prefetch<T> implements AsyncIterableIterator<T> {
  private readonly queue: Promise<T | undefined>[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(private readonly produce: () => Promise<T | undefined>, readonly depth: number) {
    if (!Number.isInteger(depth) || depth < 0) throw new RangeError(`prefetch depth must be a non-negative integer, got ${depth}`);
  }

  private start(): void {
    const p = this.chain.then(() => (this.stopped ? undefined : this.produce()));
    p.then(
      (v) => {
        if (v === undefined) this.stopped = true;
      },
      () => {
        this.stopped = true;
      },
    );
    this.chain = p.catch(() => undefined);
    this.queue.push(p);
  }

  private topUp(n: number): void {
    while (this.queue.length < n && !this.stopped) this.start();
  }

  async next(): Promise<IteratorResult<T>> {
    this.topUp(Math.max(this.depth, 1));
    const p = this.queue.shift();
    if (!p) return { done: true, value: undefined };
    const v = await p; // throws the producer's error
    this.topUp(this.depth);
    return v === undefined ? { done: true, value: undefined } : { done: false, value: v };
  }

  /** Stops producing; waits for the production in progress (its result is dropped). */
  async return(): Promise<IteratorResult<T>> {
    this.stopped = true;
    this.queue.length = 0;
    await this.chain;
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
