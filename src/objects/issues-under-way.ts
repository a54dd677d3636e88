/**
 * The issues under way in a ledger that carry a reference, each until it is decided. An issue may
 * wait (on D1, for its next block of serials) and let other calls in: a question about its
 * reference (`settleReferenced`) waits for it, or "no such commission" could be answered for one
 * about to be made, and its caller would drop a change whose quota is then moved all the same.
 * Kept in memory: an issue under way dies with its instance.
 */
export class IssuesUnderWay {
  private readonly running = new Map<string, Set<Promise<unknown>>>();

  /** Runs `issue` for `reference`, noted as under way until it is decided. */
  async track<T>(reference: string, issue: () => Promise<T>): Promise<T> {
    const running = issue();
    const decided = running.catch(() => undefined);
    const underway = this.running.get(reference) ?? new Set();
    this.running.set(reference, underway.add(decided));
    try {
      return await running;
    } finally {
      underway.delete(decided);
      if (underway.size === 0 && this.running.get(reference) === underway) this.running.delete(reference);
    }
  }

  /** Resolves once no issue of `reference` is under way. */
  async decided(reference: string): Promise<void> {
    for (let underway = this.running.get(reference); underway; underway = this.running.get(reference)) {
      await Promise.all(underway);
    }
  }
}
