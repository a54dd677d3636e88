import { describe, expect, it } from "vitest";
import { call, deref, expectOk, type Tenant, tenant, withCatalog } from "../helpers";

/**
 * Times as the subscriptions spec reads them ("all times are in UTC"): a date alone is its
 * midnight UTC, a date-time without a zone is UTC, and a start in the past starts now. Bad dates
 * still answer 400 (test/integration/v1-input.test.ts).
 */

const DAY = 86_400_000;

/** The UTC date `days` from today, as `YYYY-MM-DD`. */
const dateIn = (days: number) => new Date(Date.now() + days * DAY).toISOString().slice(0, 10);
const noonOf = (date: string) => `${date}T12:00:00.000Z`;
const dayBefore = (date: string) => new Date(Date.parse(date) - DAY).toISOString().slice(0, 10);
const dayAfter = (date: string, days = 1) =>
  new Date(Date.parse(date) + days * DAY).toISOString().slice(0, 10);

/** The earliest noon UTC at or after `ms`. */
const nextNoon = (ms: number) => {
  const noon = new Date(ms);
  noon.setUTCHours(12, 0, 0, 0);
  return noon.getTime() >= ms ? noon.toISOString() : new Date(noon.getTime() + DAY).toISOString();
};

describe("time inputs", async () => {
  const t: Tenant = await tenant({ customers: 1 });
  await withCatalog(t);
  const buy = async (object: Record<string, unknown>) =>
    (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, ...object }] },
        }),
        201,
      )
    ).objects[0];
  const price = async (object: Record<string, unknown>) =>
    (
      await expectOk(
        call("POST", "/v1/subscriptioncalculator/", {
          token: t.partnerKey,
          body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, ...object }] },
        }),
      )
    ).objects[0];

  it("reads a date alone as its midnight UTC, then rounds as the spec says", async () => {
    const start = dateIn(10);
    const expected = {
      // Bought for later, it starts at the noon before the requested midnight.
      start_time: noonOf(dayBefore(start)),
      end_time: noonOf(dayAfter(start, 7)),
      period: "1 week",
    };
    expect(await buy({ start_time: start, period: "1 week" })).toMatchObject(expected);
    expect(await price({ start_time: start, period: "1 week" })).toMatchObject(expected);
    expect(await buy({ start_time: start, end_time: dayAfter(start, 3) })).toMatchObject({
      start_time: noonOf(dayBefore(start)),
      end_time: noonOf(dayAfter(start, 3)),
    });
  });

  it("reads a date-time without a zone as UTC, and honours one that names a zone", async () => {
    const day = dateIn(20);
    const utc = { start_time: `${day}T15:00:00`, end_time: `${dayAfter(day, 3)}T09:00:00` };
    const expected = { start_time: noonOf(day), end_time: noonOf(dayAfter(day, 3)) };
    expect(await buy(utc)).toMatchObject(expected);
    expect(await price(utc)).toMatchObject(expected);
    // 11:30 at +01:00 is 10:30 UTC, before noon: it starts at the noon before.
    expect(await buy({ start_time: `${day}T11:30:00+01:00`, period: "2 days" })).toMatchObject({
      start_time: noonOf(dayBefore(day)),
      end_time: noonOf(dayAfter(day, 2)),
    });
  });

  it("starts a start_time in the past now, the period counted from then", async () => {
    for (const past of [new Date(Date.now() - 2 * DAY).toISOString(), "2020-01-01", "2020-01-01T08:00:00"]) {
      const before = Date.now();
      const bought = await buy({ start_time: past, period: "1 week" });
      const after = Date.now();
      const start = Date.parse(bought.start_time);
      expect(start, past).toBeGreaterThanOrEqual(before);
      expect(start, past).toBeLessThanOrEqual(after);
      expect(bought.end_time, past).toBe(nextNoon(start + 7 * DAY));
      expect(bought.status, past).toBe("active");
    }
    const end = dateIn(5);
    const quoted = await price({ start_time: "2020-01-01", end_time: end });
    expect(Date.parse(quoted.start_time)).toBeGreaterThan(Date.now() - 60_000);
    expect(quoted.end_time).toBe(noonOf(end));
  });

  it("rounds an end_time a fraction of a millisecond past noon to the next noon, as its instant does", async () => {
    const day = dateIn(30);
    // Python's isoformat() writes microseconds: 100 µs past noon is past noon, and the spec rounds
    // an end "always to the next noon".
    // Cut to the millisecond, it read as noon itself: a day less, or, from that noon, refused.
    for (const [start, days, total] of [
      [dayBefore(day), 2, "0.96"],
      [day, 1, "0.48"],
    ] as const) {
      const object = { start_time: noonOf(start), end_time: `${day}T12:00:00.000100+00:00` };
      const expected = { start_time: noonOf(start), end_time: noonOf(dayAfter(start, days)), price: total };
      expect(await price(object)).toMatchObject(expected);
      expect(await buy(object)).toMatchObject(expected);
    }
    // A start rounds down, so one just before noon still starts at the noon before.
    expect(await price({ start_time: `${day}T11:59:59.9999Z`, period: "1 day" })).toMatchObject({
      start_time: noonOf(dayBefore(day)),
      end_time: noonOf(dayAfter(day)),
    });
    const bought = await buy({ start_time: noonOf(day), period: "1 day" });
    const extension = await expectOk(
      call("POST", `/v1/subscriptions/${bought.id}/action/?do=extend`, {
        token: t.partnerKey,
        body: { end_time: `${dayAfter(day, 2)}T12:00:00.0000001Z` },
      }),
    );
    expect(extension).toMatchObject({
      start_time: noonOf(dayAfter(day)),
      end_time: noonOf(dayAfter(day, 3)),
    });
  });

  it("extends to an end_time without a zone, read as UTC", async () => {
    const bought = await buy({ period: "1 week" });
    const end = dateIn(40);
    const extension = await expectOk(
      call("POST", `/v1/subscriptions/${bought.id}/action/?do=extend`, {
        token: t.partnerKey,
        body: { end_time: `${end}T10:00:00` },
      }),
    );
    expect(extension).toMatchObject({
      start_time: bought.end_time,
      end_time: noonOf(end),
      extends: bought.id,
    });
  });

  it("are described in the OpenAPI document: the forms read, and how a start and an end round", async () => {
    const doc = await expectOk(call("GET", "/openapi.json"));
    const body = (path: string) =>
      deref(doc, doc.paths[path].post.requestBody.content["application/json"].schema);
    const described = (schema: any) => JSON.stringify(schema);
    const object = deref(doc, body("/v1/subscriptions").properties.objects.items).properties;
    expect(described(object.start_time)).toContain("UTC unless it names a zone");
    expect(described(object.start_time)).toContain("noon UTC at or before it");
    expect(described(object.end_time)).toContain("Rounded up to the next noon UTC");
    const extend = body("/v1/subscriptions/{id}/action").properties;
    expect(described(extend.end_time)).toContain("Rounded up to the next noon UTC");
    const charges = doc.paths["/v1/charges"].get.parameters;
    for (const name of ["since", "until"]) {
      const parameter = charges.find((p: any) => p.name === name);
      expect(parameter?.description, name).toContain("Send the zone's `+` as `%2B`");
    }
  });
});
