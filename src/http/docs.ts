/**
 * The API reference page: Scalar's standalone renderer (served from this origin as a static asset,
 * see wrangler.toml's [assets]) drawing /openapi.json. Everything stays on this origin: no fonts,
 * telemetry, proxy or AI agent from Scalar's services, and the CSP refuses anything else, so the
 * page works offline and try-it can only call this API (the document's server is this origin).
 */

const bundlePath = "/docs/scalar.js";

const config = {
  url: "/openapi.json",
  withDefaultFonts: false,
  customCss: ":root{--scalar-font:system-ui,sans-serif;--scalar-font-code:ui-monospace,monospace}",
  telemetry: false,
  agent: { disabled: true },
  mcp: { disabled: true },
  showDeveloperTools: "never",
  // Its "Open API Client" buttons link to Scalar's hosted client, handing it the document.
  hideClientButton: true,
  documentDownloadType: "json",
};

// JSON inside <script>: "<" escaped so no value can close the element.
const inlineConfig = JSON.stringify(config).replaceAll("<", "\\u003c");

export const docsHtml = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stratus API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
</head><body>
<noscript>The API reference needs JavaScript; the OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="app"></div>
<script src="${bundlePath}"></script>
<script>Scalar.createApiReference("#app", ${inlineConfig});</script>
</body></html>`;

export const docsContentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-inline'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");
