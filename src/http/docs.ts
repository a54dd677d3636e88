/**
 * A self-contained API reference rendered from the OpenAPI document: no scripts, no CDN, so it
 * works offline in `wrangler dev` and under a strict CSP.
 */

type Json = Record<string, unknown>;

const escapeHtml = (s: string) =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");

const pretty = (value: unknown) => `<pre>${escapeHtml(JSON.stringify(value, null, 2))}</pre>`;

function operationHtml(path: string, method: string, op: Json): string {
  const params = (op.parameters as Json[]) ?? [];
  const body = (op.requestBody as Json | undefined)?.content as Json | undefined;
  const responses = (op.responses as Record<string, Json>) ?? {};
  const roles = (op["x-roles"] as string[] | undefined)?.join(", ") ?? "public";
  return `<section id="${escapeHtml(String(op.operationId))}">
<h3><span class="m ${method}">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code></h3>
<p>${escapeHtml(String(op.summary ?? ""))}</p>
${op.description ? `<p>${escapeHtml(String(op.description))}</p>` : ""}
<p class="auth">Roles: ${escapeHtml(roles)}</p>
${params.length ? `<h4>Parameters</h4><ul>${params.map((p) => `<li><code>${escapeHtml(String(p.name))}</code> (${escapeHtml(String(p.in))}${p.required ? ", required" : ""})</li>`).join("")}</ul>` : ""}
${body ? `<h4>Request body</h4>${pretty((body["application/json"] as Json).schema)}` : ""}
<h4>Responses</h4><ul>${Object.entries(responses)
    .map(([code, r]) => {
      const schema = ((r.content as Json | undefined)?.["application/json"] as Json | undefined)?.schema;
      return `<li><strong>${code}</strong> ${escapeHtml(String(r.description ?? ""))}${schema ? `<details><summary>schema</summary>${pretty(schema)}</details>` : ""}</li>`;
    })
    .join("")}</ul>
</section>`;
}

export function docsPage(doc: Json): string {
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const byTag = new Map<string, string[]>();
  for (const [path, methods] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = (op.tags as string[])[0] ?? "Other";
      byTag.set(tag, [...(byTag.get(tag) ?? []), operationHtml(path, method, op)]);
    }
  }
  const info = doc.info as Json;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(String(info.title))} API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
section{border-top:1px solid #ddd;padding:.5rem 0}h3{margin:.5rem 0}code{font-size:.95em}
pre{background:#f5f5f5;padding:.5rem;overflow:auto;font-size:13px}.auth{color:#555}
.m{display:inline-block;min-width:4.2em;text-align:center;border-radius:3px;color:#fff;font-size:.8em;padding:2px 4px}
.get{background:#2f7d32}.post{background:#1565c0}.put{background:#6a1b9a}.patch{background:#ef6c00}.delete{background:#c62828}
</style></head><body>
<h1>${escapeHtml(String(info.title))} API reference</h1>
<p>${escapeHtml(String(info.description ?? ""))}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
${[...byTag.entries()].map(([tag, ops]) => `<h2>${escapeHtml(tag)}</h2>${ops.join("\n")}`).join("\n")}
</body></html>`;
}
