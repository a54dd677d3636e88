import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Currency, currency, formatMinor, parseDecimal } from "../../src/domain/money";

const EUR = currency("EUR");
const JPY = currency("JPY");
const BHD = currency("BHD");

describe("currency", () => {
  it.each([
    ["EUR", 2],
    ["USD", 2],
    ["GBP", 2],
    ["JPY", 0],
    ["KRW", 0],
    ["BHD", 3],
    ["KWD", 3],
    ["JOD", 3],
    ["CLF", 4],
  ])("%s has %i minor-unit digits", (code, exponent) => {
    expect(currency(code)).toEqual({ code, exponent });
  });

  it("defaults unknown three-letter codes to 2 digits", () => {
    expect(currency("QQQ")).toEqual({ code: "QQQ", exponent: 2 });
  });

  it("normalises the code to upper case before looking it up", () => {
    expect(currency("jpy")).toEqual({ code: "JPY", exponent: 0 });
  });

  it.each(["", "EU", "EURO", "E1R", "EU ", " EUR", "€UR", "ÉUR"])("rejects %j", (code) => {
    expect(() => currency(code)).toThrow(RangeError);
  });
});

describe("formatMinor", () => {
  it.each([
    [12345n, EUR, "123.45"],
    [-5n, EUR, "-0.05"],
    [0n, EUR, "0.00"],
    [100n, EUR, "1.00"],
    [-12345n, EUR, "-123.45"],
    [7n, JPY, "7"],
    [-7n, JPY, "-7"],
    [0n, JPY, "0"],
    [1n, BHD, "0.001"],
    [1234567n, BHD, "1234.567"],
  ])("formats %s as %j", (minor, cur, text) => {
    expect(formatMinor(minor, cur)).toBe(text);
  });

  it("formats amounts beyond 2^53 exactly", () => {
    expect(formatMinor(2n ** 64n + 1n, EUR)).toBe("184467440737095516.17");
  });

  it.each([-1, 1.5, Number.NaN])("rejects a hand-built currency with exponent %s", (exponent) => {
    expect(() => formatMinor(1n, { code: "XXX", exponent })).toThrow(RangeError);
  });
});

describe("parseDecimal", () => {
  it.each([
    ["123.45", EUR, 12345n],
    ["123.4", EUR, 12340n],
    ["123", EUR, 12300n],
    ["-0.05", EUR, -5n],
    ["-0", EUR, 0n],
    ["007.50", EUR, 750n],
    ["7", JPY, 7n],
    ["0.001", BHD, 1n],
    ["184467440737095516.17", EUR, 2n ** 64n + 1n],
  ])("parses %j", (text, cur, minor) => {
    expect(parseDecimal(text, cur)).toBe(minor);
  });

  it.each([
    ["0.001", EUR],
    ["1.5", JPY],
    ["1.0", JPY],
    ["1.0000", BHD],
    ["", EUR],
    ["-", EUR],
    [".", EUR],
    [".5", EUR],
    ["5.", EUR],
    ["+1", EUR],
    ["--1", EUR],
    ["1-", EUR],
    ["1e3", EUR],
    ["1E3", EUR],
    [" 1", EUR],
    ["1 ", EUR],
    ["1,50", EUR],
    ["1.2.3", EUR],
    ["0x10", EUR],
    ["Infinity", EUR],
    ["NaN", EUR],
    ["١٢", EUR],
  ])("rejects %j", (text, cur) => {
    expect(parseDecimal(text, cur)).toBeNull();
  });
});

describe("formatMinor/parseDecimal round-trip", () => {
  const anyExponent = fc.integer({ min: 0, max: 8 });
  const anyAmount = fc.bigInt({ min: -(2n ** 96n), max: 2n ** 96n });

  it("parse(format(x)) = x for every exponent", () => {
    fc.assert(
      fc.property(anyExponent, anyAmount, (exponent, minor) => {
        const cur: Currency = { code: "XXX", exponent };
        expect(parseDecimal(formatMinor(minor, cur), cur)).toBe(minor);
      }),
    );
  });

  it("parse(format(x)) = x for every known currency", () => {
    const codes = ["EUR", "USD", "JPY", "KRW", "BHD", "KWD", "JOD", "CLF", "QQQ"];
    fc.assert(
      fc.property(fc.constantFrom(...codes), anyAmount, (code, minor) => {
        const cur = currency(code);
        expect(parseDecimal(formatMinor(minor, cur), cur)).toBe(minor);
      }),
    );
  });

  it("format(parse(s)) = s for canonical text", () => {
    const canonical = anyExponent.chain((exponent) =>
      fc
        .tuple(
          fc.boolean(),
          fc.bigInt({ min: 0n, max: 2n ** 80n }),
          fc.stringMatching(new RegExp(`^[0-9]{${exponent}}$`)),
        )
        .map(([negative, whole, fraction]) => {
          const body = exponent === 0 ? `${whole}` : `${whole}.${fraction}`;
          // "-0.00" has no canonical form of its own: zero is formatted unsigned.
          const isZero = whole === 0n && /^0*$/.test(fraction);
          return { exponent, text: negative && !isZero ? `-${body}` : body };
        }),
    );
    fc.assert(
      fc.property(canonical, ({ exponent, text }) => {
        const cur: Currency = { code: "XXX", exponent };
        const minor = parseDecimal(text, cur);
        expect(minor).not.toBeNull();
        expect(formatMinor(minor as bigint, cur)).toBe(text);
      }),
    );
  });
});
