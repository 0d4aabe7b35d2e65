import { createHash } from "node:crypto";
import type {} from "@fastify/swagger"; // the `hide` schema option
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { webBundle, type WebAsset } from "./bundle.ts";

/**
 * The web GUI: `GET /` is the page, `GET /ui/*` its assets. Both are open (no token): they carry no
 * data. The page shows only a sign-in form until a token is entered, then calls the API with it.
 * The client is bundled in memory at startup (see bundle.ts), so there is no build step.
 */
const PAGE_ROUTE = "/";
const ASSET_ROUTE = "/ui/*";

/** True for the GUI's own routes, which the API's token check leaves alone. */
export function isWebUiRequest(request: FastifyRequest): boolean {
  const route = request.routeOptions.url;
  return request.method === "GET" && (route === PAGE_ROUTE || route === ASSET_ROUTE);
}

const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#1e3a5f"/><circle cx="16" cy="16" r="6" fill="#7dd3fc"/></svg>`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>Pith</title>
<link rel="icon" href="/ui/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui/app.css">
</head>
<body>
<div id="app"><noscript>Pith's web console needs JavaScript.</noscript></div>
<script type="module" src="/ui/app.js"></script>
</body>
</html>
`;

const asset = (body: string, contentType: string): WebAsset => ({
  body,
  contentType,
  etag: `"${createHash("sha256").update(body).digest("hex").slice(0, 32)}"`,
});

const STATIC: Record<string, WebAsset> = {
  "favicon.svg": asset(FAVICON, "image/svg+xml"),
};
const PAGE_ASSET = asset(PAGE, "text/html; charset=utf-8");

// The page talks only to this server; nothing is loaded from anywhere else.
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  // The SSE watch carries the token in its URL: never send URLs elsewhere.
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

function send(request: FastifyRequest, reply: FastifyReply, file: WebAsset): FastifyReply {
  reply.headers({ ...SECURITY_HEADERS, etag: file.etag, "cache-control": "no-cache" });
  if (request.headers["if-none-match"] === file.etag) return reply.code(304).send();
  return reply.type(file.contentType).send(file.body);
}

export const webUiPlugin: FastifyPluginAsync = async (app) => {
  // Start bundling now, so the first page load does not wait for it; errors surface on request.
  webBundle().catch((error: Error) => app.log.error({ err: error }, "the web GUI failed to build"));

  app.get(PAGE_ROUTE, { schema: { hide: true } }, async (request, reply) => send(request, reply, PAGE_ASSET));

  app.get<{ Params: { "*": string } }>(ASSET_ROUTE, { schema: { hide: true } }, async (request, reply) => {
    const name = request.params["*"];
    const file = STATIC[name] ?? (await bundledAsset(name));
    if (!file) return reply.code(404).type("text/plain; charset=utf-8").send(`no such file: /ui/${name}\n`);
    return send(request, reply, file);
  });
};

/** The GUI as the API server takes it: routes of its own, open because they carry no data. */
export const webUi = { plugin: webUiPlugin, serves: isWebUiRequest };

async function bundledAsset(name: string): Promise<WebAsset | undefined> {
  if (name !== "app.js" && name !== "app.css") return undefined;
  try {
    return (await webBundle()).assets.get(name);
  } catch (error) {
    const message = `the web GUI failed to build: ${(error as Error).message}`;
    return asset(name === "app.js" ? `document.body.textContent = ${JSON.stringify(message)};` : "", name === "app.js" ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8");
  }
}
