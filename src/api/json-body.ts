import type { FastifyInstance } from "fastify";
import { invalid } from "./validation.ts";

/**
 * The API's JSON body parser. Fastify's own refuses the same bodies but says only "Body is not
 * valid JSON", whatever was wrong; this one says what and where: JSON.parse's own message for
 * malformed text, and the path of a `__proto__` member or of a `constructor` member holding a
 * `prototype`, which are refused outright because code merging such an object into another
 * (Object.assign, a naive deep merge) would change the prototype of every object in the process.
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_request, text, done) => {
    const body = String(text);
    if (body.length === 0) return done(invalid("request body", [{ path: "", message: "is empty: send a JSON object" }]), undefined);
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (e) {
      return done(invalid("request body", [{ path: "", message: `is not JSON: ${(e as Error).message}` }]), undefined);
    }
    // Most bodies contain neither word: then there is nothing to look for.
    const path = body.includes("__proto__") || body.includes("constructor") ? poisonedPath(value) : undefined;
    if (path !== undefined) return done(invalid("request body", [{ path, message: "is not allowed: __proto__, and constructor.prototype, are never valid fields" }]), undefined);
    done(null, value);
  });
}

/** The JSON pointer of the first forbidden member, walking without recursion (bodies can be deep). */
function poisonedPath(root: unknown): string | undefined {
  const stack: [unknown, string][] = [[root, ""]];
  while (stack.length > 0) {
    const [value, path] = stack.pop()!;
    if (value === null || typeof value !== "object") continue;
    for (const [key, child] of Object.entries(value)) {
      const at = `${path}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;
      if (key === "__proto__") return at;
      if (key === "constructor" && child !== null && typeof child === "object" && Object.hasOwn(child, "prototype")) return at;
      stack.push([child, at]);
    }
  }
  return undefined;
}
