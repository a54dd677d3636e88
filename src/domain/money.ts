/**
 * Money as an integer count of minor units (cents, fils, yen…), free of I/O.
 *
 * Amounts are `bigint` because usage charges multiply quantity, seconds and price, which passes
 * 2^53 long before any real bill would; a float would silently lose the low digits. Decimal text
 * is only the wire form: it is parsed into minor units once and formatted from them once.
 */

export interface Currency {
  /** ISO 4217 alphabetic code, upper case. */
  code: string;
  /** Number of fraction digits of the minor unit: 2 for EUR (cents), 0 for JPY, 3 for BHD. */
  exponent: number;
}

// Only the exceptions to the default of 2 are listed, so that an unlisted but valid code still works.
const EXPONENT_EXCEPTIONS: Record<number, readonly string[]> = {
  0: [
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
  ],
  3: ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"],
  4: ["CLF", "UYW"],
};

const EXPONENTS: ReadonlyMap<string, number> = new Map(
  Object.entries(EXPONENT_EXCEPTIONS).flatMap(([exponent, codes]) =>
    codes.map((code) => [code, Number(exponent)] as const),
  ),
);

const DEFAULT_EXPONENT = 2;

/** Accepts any three ASCII letters, in either case; the returned code is upper case. */
export function currency(code: string): Currency {
  if (!/^[A-Za-z]{3}$/.test(code)) {
    throw new RangeError(`not an ISO 4217 currency code: ${JSON.stringify(code)}`);
  }
  const upper = code.toUpperCase();
  return { code: upper, exponent: EXPONENTS.get(upper) ?? DEFAULT_EXPONENT };
}

/** Whether `code` is a currency ISO 4217 lists (as the runtime's ICU data knows them), not just three letters. */
export function isKnownCurrency(code: string): boolean {
  return knownCurrencies().has(code.toUpperCase());
}

let known: Set<string> | undefined;
const knownCurrencies = () => {
  known ??= new Set(Intl.supportedValuesOf("currency"));
  return known;
};

// A hand-built Currency could carry any number; a negative or fractional exponent has no decimal form.
function exponentOf(cur: Currency): number {
  if (!Number.isSafeInteger(cur.exponent) || cur.exponent < 0) {
    throw new RangeError(`invalid minor-unit exponent for ${cur.code}: ${cur.exponent}`);
  }
  return cur.exponent;
}

/** Canonical decimal text: always exactly `exponent` fraction digits, a leading '-' when negative. */
export function formatMinor(minor: bigint, cur: Currency): string {
  const exponent = exponentOf(cur);
  const sign = minor < 0n ? "-" : "";
  const digits = (minor < 0n ? -minor : minor).toString();
  if (exponent === 0) return sign + digits;
  const padded = digits.padStart(exponent + 1, "0");
  const cut = padded.length - exponent;
  return `${sign}${padded.slice(0, cut)}.${padded.slice(cut)}`;
}

// Digits on both sides of the point, so "5." and ".5" are refused rather than guessed at.
const DECIMAL = /^(-?)([0-9]+)(?:\.([0-9]+))?$/;

/**
 * Inverse of `formatMinor`, returning null for anything that is not a plain decimal in `cur`.
 * Fewer fraction digits than the exponent are padded ("1.5" EUR is 150); more are refused, because
 * silently rounding an amount a client sent would charge something other than what they wrote.
 */
export function parseDecimal(text: string, cur: Currency): bigint | null {
  const exponent = exponentOf(cur);
  const match = DECIMAL.exec(text);
  if (match === null) return null;
  const [, sign = "", whole = "", fraction = ""] = match;
  if (fraction.length > exponent) return null;
  const magnitude = BigInt(whole + fraction.padEnd(exponent, "0"));
  return sign === "-" ? -magnitude : magnitude;
}

/**
 * The most one purchase, one term of it, or one usage line may cost, in minor units. Past it an
 * amount is no longer exact as a JS number, which is how an order's total and a charge line travel
 * to D1: the price answered, the order and the charge line would disagree.
 */
export const MAX_PRICE_MINOR = BigInt(Number.MAX_SAFE_INTEGER);
