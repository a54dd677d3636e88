import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseInstant } from "../../src/domain/instants";

const iso = (text: string) => parseInstant(text)?.toISOString() ?? null;

describe("parseInstant", () => {
  it.each([
    ["a date alone is its midnight UTC", "2027-01-05", "2027-01-05T00:00:00.000Z"],
    ["a date-time without a zone is UTC", "2027-01-05T10:00:00", "2027-01-05T10:00:00.000Z"],
    ["minutes without seconds", "2027-01-05T10:30", "2027-01-05T10:30:00.000Z"],
    ["Z", "2027-01-05T10:00:00Z", "2027-01-05T10:00:00.000Z"],
    ["lower-case t and z", "2027-01-05t10:00:00z", "2027-01-05T10:00:00.000Z"],
    ["a space for T (RFC 3339)", "2027-01-05 10:00:00", "2027-01-05T10:00:00.000Z"],
    ["milliseconds", "2027-01-05T10:00:00.250Z", "2027-01-05T10:00:00.250Z"],
    ["a fraction past milliseconds is cut", "2027-01-05T10:00:00.123456789Z", "2027-01-05T10:00:00.123Z"],
    ["a decimal comma", "2027-01-05T10:00:00,5", "2027-01-05T10:00:00.500Z"],
    ["+hh:mm", "2027-01-05T11:00:00+01:00", "2027-01-05T10:00:00.000Z"],
    ["-hhmm", "2027-01-05T05:30:00-0430", "2027-01-05T10:00:00.000Z"],
    ["±hh", "2027-01-05T12:00:00+02", "2027-01-05T10:00:00.000Z"],
    ["a zone that crosses midnight", "2027-01-05T01:00:00+03:00", "2027-01-04T22:00:00.000Z"],
    ["29 February of a leap year", "2028-02-29", "2028-02-29T00:00:00.000Z"],
    ["a year before 100 stays itself", "0099-03-01", "0099-03-01T00:00:00.000Z"],
    ["the last hour of 9999", "9999-12-31T23:00:00+02:00", "9999-12-31T21:00:00.000Z"],
  ])("%s", (_, text, expected) => {
    expect(iso(text)).toBe(expected);
  });

  it.each([
    ["", "empty"],
    ["next tuesday", "words"],
    ["2027-1-5", "unpadded"],
    ["20270105", "basic format"],
    ["2027-13-01", "month 13"],
    ["2027-00-10", "month 0"],
    ["2027-02-29", "29 February of a common year"],
    ["2027-04-31", "31 April"],
    ["2027-01-05T24:00:00", "hour 24"],
    ["2027-01-05T10:60:00", "minute 60"],
    ["2027-01-05T10:00:60Z", "second 60"],
    ["2027-01-05T10:00:00+24:00", "a zone of 24 hours"],
    ["9999-12-31T23:00:00-02:00", "year 10000 once its zone applies (ISO text would write it +010000)"],
    ["2027-01-05T10:00:00+01:60", "a zone with minute 60"],
    ["2027-01-05T10", "an hour without minutes"],
    ["2027-01-05T10:00:00 Z", "a space before the zone"],
    [" 2027-01-05", "a leading space"],
    ["2027-01-05T10:00:00Z trailing", "trailing text"],
    ["0000-01-01", "year 0"],
  ])("refuses %j (%s)", (text) => {
    expect(parseInstant(text)).toBeNull();
  });

  it.each([
    ["2027-01-05T12:00:00.000100Z", "2027-01-05T12:00:00.001Z"],
    ["2027-01-05T12:00:00.123000001+00:00", "2027-01-05T12:00:00.124Z"],
    ["2027-01-05T12:00:00.999900Z", "2027-01-05T12:00:01.000Z"],
    ["2027-01-05T12:00:00.250000Z", "2027-01-05T12:00:00.250Z"],
    ["2027-01-05T12:00:00Z", "2027-01-05T12:00:00.000Z"],
  ])("rounded up, reads %j past its millisecond as the next one", (text, expected) => {
    expect(parseInstant(text, true)?.toISOString()).toBe(expected);
  });

  it("reads back every instant written as toISOString, and its zone-less form as the same (property)", () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date("0001-01-01"), max: new Date("9999-12-31"), noInvalidDate: true }),
        (d) => {
          expect(parseInstant(d.toISOString())?.getTime()).toBe(d.getTime());
          expect(parseInstant(d.toISOString().slice(0, -1))?.getTime()).toBe(d.getTime());
        },
      ),
    );
  });
});
