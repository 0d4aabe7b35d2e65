import type { Command } from "commander";
import { isApiError } from "../../client/api-error.ts";
import { isRole, ROLES, type Role } from "../../model/token.ts";
import { userError } from "../../shared/errors.ts";
import { clientFor } from "../client-config.ts";
import { table } from "../output.ts";

/**
 * `pith token create|ls|revoke`: API tokens with roles (admin only). `create` prints the token
 * alone on stdout, once, so it can go straight into a file: `pith token create --role proxy > f`.
 */
export function registerToken(program: Command): void {
  const token = program.command("token").description("manage API tokens and their roles (admin only)");

  token
    .command("create")
    .description(`create a token and print it once (roles: ${ROLES.join(", ")})`)
    .requiredOption("--role <role>", `what the token may do: ${ROLES.join(", ")}`)
    .option("--node <name>", "with --role node: the node the agent runs as")
    .option("--name <label>", "a unique label for ls and revoke (default <role>[-<node>]-<id prefix>)")
    .action(async (options: { role: string; node?: string; name?: string }, command: Command) => {
      const role = parseRole(options.role);
      if (role === "node" && !options.node) throw userError("BAD_FLAG", "--role node needs --node NAME: a node token acts for one node", "e.g. pith token create --role node --node worker-1");
      if (role !== "node" && options.node) throw userError("BAD_FLAG", `--node applies only to --role node, not ${role}`);
      const created = await clientFor(command).createToken({ role, ...(options.node ? { node: options.node } : {}), ...(options.name ? { name: options.name } : {}) });
      process.stderr.write(`token ${created.token.name} (id ${created.token.id}, role ${role}) created; it is shown only this once\n`);
      process.stdout.write(`${created.secret}\n`);
    });

  token
    .command("ls")
    .description("list tokens: name, role, node, created, id (never the secret)")
    .option("-o, --output <format>", "table or json", "table")
    .action(async (options: { output: string }, command: Command) => {
      const tokens = await clientFor(command).listTokens();
      if (options.output === "json") {
        process.stdout.write(`${JSON.stringify(tokens, null, 2)}\n`);
        return;
      }
      const rows = tokens.map((t) => [t.name, t.role, t.node ?? "-", t.createdAt, t.id]);
      process.stdout.write(table(["NAME", "ROLE", "NODE", "CREATED", "ID"], rows));
    });

  token
    .command("revoke")
    .description("revoke a token by id or name: refused from the next request on, its open watches and tunnels cut")
    .argument("<token>", "the token's id or name (pith token ls)")
    .action(async (ref: string, _options: unknown, command: Command) => {
      try {
        const revoked = await clientFor(command).revokeToken(ref);
        process.stdout.write(`token ${revoked.name} (id ${revoked.id}) revoked\n`);
      } catch (e) {
        if (isApiError(e, 404)) throw userError("NOT_FOUND", `no token with id or name ${ref}`, "pith token ls lists them");
        throw e;
      }
    });
}

function parseRole(text: string): Role {
  if (!isRole(text)) throw userError("BAD_FLAG", `--role must be one of ${ROLES.join(", ")}, got ${text}`);
  return text;
}
