import * as v from "valibot";

/** The public meta routes: health and this API's own description. */

export const HealthOut = v.object({ ok: v.literal(true) });

export const OpenApiOut = v.pipe(
  v.looseObject({
    openapi: v.string(),
    info: v.looseObject({ title: v.string(), version: v.string() }),
    paths: v.record(v.string(), v.looseObject({})),
  }),
  v.description("An OpenAPI 3.1 document."),
);
