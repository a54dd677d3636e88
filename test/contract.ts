import { type OutputUnit, Validator } from "@cfworker/json-schema";
import { familyOf } from "../src/http/app";
import { openApiDocument } from "../src/http/openapi";
import { UNMATCHED } from "../src/http/openapi-errors";
import { routes } from "../src/http/routes";

/**
 * The contract check every call of the suite makes (helpers.ts `call`): the answer must be one
 * the OpenAPI document declares for the operation the request reached, its body must match the
 * declared schema for that status and media type, and the declared required headers must be there.
 * The document is the one `npm run openapi` writes (its drift check keeps the two the same).
 */

type Json = Record<string, unknown>;

const BASE = "https://stratus.test/openapi.json";
const document = openApiDocument(routes, "http://stratus.test") as unknown as {
  paths: Record<string, Record<string, Json>>;
  components: { schemas: Json; responses: Record<string, Json>; headers: Record<string, Json> };
};

/** The named schemas, at the URI every response schema's `$ref` is made absolute against. */
const named = { components: { schemas: document.components.schemas } };

const absolute = (schema: unknown): Json =>
  JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', `"${BASE}#/components/`));

const validators = new Map<string, Validator>();

function validatorFor(key: string, schema: unknown): Validator {
  let validator = validators.get(key);
  if (!validator) {
    validator = new Validator(absolute(schema), "2020-12", false);
    validator.addSchema(named, BASE);
    validators.set(key, validator);
  }
  return validator;
}

const segment = (part: string) =>
  /^\{\w+\}$/.test(part) ? "[^/]+" : part.replace(/[.*+?^$()|[\]\\]/g, "\\$&");

const templates = Object.keys(document.paths).map((template) => ({
  template,
  params: (template.match(/\{/g) ?? []).length,
  regex: new RegExp(`^${template.split("/").map(segment).join("/")}/?$`),
}));

/** The (method, path template) a request reached: literal segments win, as the router's order has it. */
function operationOf(method: string, pathname: string) {
  const matching = templates.filter((t) => t.regex.test(pathname)).sort((a, b) => a.params - b.params);
  const lower = method.toLowerCase();
  const found = matching.find((t) => document.paths[t.template]?.[lower]);
  return { pathMatched: matching.length > 0, template: found?.template };
}

const resolve = (node: Json): Json => {
  const ref = node.$ref;
  if (typeof ref !== "string") return node;
  const [, kind, name] = ref.match(/^#\/components\/(\w+)\/(.+)$/) ?? [];
  const target = (document.components as unknown as Record<string, Record<string, Json>>)[kind ?? ""]?.[
    name ?? ""
  ];
  if (!target) throw new Error(`contract: unresolvable ${ref}`);
  return { ...target, ...(typeof node.description === "string" ? { description: node.description } : {}) };
};

const describeErrors = (errors: OutputUnit[]) =>
  errors
    .slice(0, 8)
    .map((e) => `  ${e.instanceLocation} (${e.keyword}): ${e.error}`)
    .join("\n");

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** Throws, naming the operation and what is wrong, unless the document declares this answer. */
export function checkContract(method: string, url: URL, answer: Answer): void {
  if (method === "OPTIONS") return; // CORS preflights are the protocol's, not an operation's.
  const head = method === "HEAD";
  const { pathMatched, template } = operationOf(head ? "GET" : method, url.pathname);
  let declared: Json | undefined;
  let where: string;
  if (template) {
    const operation = document.paths[template]?.[(head ? "GET" : method).toLowerCase()];
    const responses = (operation?.responses ?? {}) as Record<string, Json>;
    declared = responses[String(answer.status)] ?? (answer.status >= 500 ? responses["5XX"] : undefined);
    where = `${method} ${template}`;
  } else {
    // No operation: the family's generic answer for a path no route has, or a method it does not take.
    const unmatched = UNMATCHED[familyOf(url.pathname)];
    const [status, name] = pathMatched ? unmatched.wrongMethod : [404, unmatched.notFound];
    declared = answer.status === status ? { $ref: `#/components/responses/${name}` } : undefined;
    where = `${method} ${url.pathname} (no operation)`;
  }
  const wrong = declared
    ? violation(where, resolve(declared), answer, head)
    : "the document declares no such answer";
  if (wrong)
    throw new Error(`contract: ${where} answered ${answer.status}: ${wrong}\n${answer.text.slice(0, 400)}`);
}

/** What is wrong with `answer` as the declared `response`, if anything. */
function violation(where: string, response: Json, answer: Answer, head: boolean): string | null {
  for (const [name, spec] of Object.entries((response.headers ?? {}) as Record<string, Json>)) {
    if (resolve(spec).required === true && !answer.headers.has(name))
      return `required header ${name} is missing`;
  }
  const content = response.content as Record<string, { schema: unknown }> | undefined;
  if (head) return null;
  if (answer.text === "") return content ? "the document declares a body; there is none" : null;
  if (!content) return "the document declares no body; there is one";
  const media = (answer.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
  const entry = content[media];
  if (!entry) return `content-type ${media || "(none)"} is not one of ${Object.keys(content).join(", ")}`;
  let body: unknown = answer.text;
  if (media.endsWith("json")) {
    try {
      body = JSON.parse(answer.text);
    } catch {
      return "the body is not JSON";
    }
  }
  const result = validatorFor(`${where} ${answer.status} ${media}`, entry.schema).validate(body);
  return result.valid
    ? null
    : `the body does not match the declared schema:\n${describeErrors(result.errors)}`;
}
