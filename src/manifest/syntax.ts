import type { ErrorCode, YAMLError } from "yaml";
import type { Ctx } from "./context.ts";

/** The parser's wording is written for programmers calling it; these read better in a manifest. */
const FRIENDLY: Partial<Record<ErrorCode, { message?: string; hint: string }>> = {
  DUPLICATE_KEY: { message: "this key appears twice in the same mapping", hint: "remove or merge the duplicate" },
  MULTIPLE_DOCS: { message: "the file holds more than one YAML document", hint: "remove the extra --- separator" },
  TAB_AS_INDENT: { hint: "indent with spaces, not tabs" },
  BAD_INDENT: { hint: "check the indentation of this line and the ones above it" },
  MISSING_CHAR: { hint: "check for an unclosed quote or bracket" },
  BLOCK_AS_IMPLICIT_KEY: { hint: "a value containing \": \" must be quoted" },
};

export function reportSyntaxError(ctx: Ctx, error: YAMLError): void {
  const friendly = FRIENDLY[error.code];
  ctx.reportAt(error.pos[0], "", `YAML syntax error: ${friendly?.message ?? error.message}`,
    friendly?.hint ?? "check the YAML syntax near this position");
}
