/**
 * The wait before retry `n` (0: the first) of work that keeps failing: `first`, doubled on each
 * failure in a row, at most `max`. Work that can never succeed (a row D1 refuses) then costs a
 * try every `max`, not every `first`; work that failed once is tried again soon.
 */
export const backoff = (first: number, max: number, n: number): number => Math.min(max, first * 2 ** n);
