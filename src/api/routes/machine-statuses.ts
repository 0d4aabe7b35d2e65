import { Type, type Static } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import type { FastifyInstance } from "fastify";
import type { Machine, MachineStatus } from "../../model/kinds.ts";
import { API_VERSION, type ResourceInput } from "../../model/resource.ts";
import { toApiError, type ErrorBody } from "../api-error.ts";
import type { ApiContext } from "../context.ts";
import { principalOf } from "../principal.ts";
import { visibleTo } from "../redaction.ts";
import { forbidden, machineRefusal } from "../roles.ts";
import { closed, ErrorBody as ErrorBodySchema, Name, ResourceVersion } from "../schemas/common.ts";
import { KIND_SCHEMAS } from "../schemas/kinds.ts";
import { errorResponses } from "../schemas/requests.ts";
import { schemaProblems } from "../schemas/problems.ts";
import { invalid } from "../validation.ts";
import { notFound, readModifyWrite } from "./read-modify-write.ts";

/** Entries one request may carry: an agent sends what piled up while its previous batch was answered. */
export const MAX_MACHINE_STATUSES = 256;

export const MACHINE_STATUSES_PATH = "/api/v1/machine-statuses";

/** One machine's status, as `PUT /api/v1/machines/:name/status` takes it, with the machine's name. */
const Entry = Type.Object(
  {
    name: Name,
    metadata: Type.Optional(Type.Object({ resourceVersion: Type.Optional(ResourceVersion) }, closed)),
    status: KIND_SCHEMAS.Machine.status,
  },
  closed,
);
const entryChecker = TypeCompiler.Compile(Entry);

/** Only the envelope is the route's schema: each entry is checked on its own, so one bad entry fails only itself. */
const Body = Type.Object({ items: Type.Array(Type.Unknown({ description: "{name, metadata?: {resourceVersion?}, status}: as PUT /api/v1/machines/NAME/status takes it, with the name" }), { maxItems: MAX_MACHINE_STATUSES }) }, closed);

const Answer = Type.Object(
  {
    items: Type.Array(
      Type.Union([
        Type.Object({ name: Type.String(), object: KIND_SCHEMAS.Machine.resource }, closed),
        Type.Object({ name: Type.String(), status: Type.Integer({ description: "the HTTP status the single route would have answered" }), ...ErrorBodySchema.properties }, closed),
      ]),
    ),
  },
  { ...closed, title: "MachineStatusesAnswer" },
);

type EntryAnswer = { name: string; object: Machine } | ({ name: string; status: number } & ErrorBody);

/**
 * `POST /api/v1/machine-statuses {items: [{name, metadata?, status}]}`: several machines'
 * statuses in one request, for an agent whose machines change many at a time (a scale-out of a
 * thousand is a thousand starts). Each entry is validated, authorised (a node token: machines
 * placed on its node, addresses at its node's address) and written as the single status route
 * would, and answered in the same position with the object or the error that route would give.
 */
export function registerMachineStatusesRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.post<{ Body: Static<typeof Body> }>(
    MACHINE_STATUSES_PATH,
    {
      schema: {
        summary: "Replace several Machines' statuses, each on its own",
        description: `At most ${MAX_MACHINE_STATUSES} entries. Each entry is answered in its position: {name, object} when written, {name, status, error} when not (the status and error PUT /api/v1/machines/NAME/status would have answered); one entry's failure changes nothing of the others.`,
        tags: ["Machine"],
        body: Body,
        response: { 200: Answer, ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const answers: (EntryAnswer | undefined)[] = [];
      const failed = (index: number, name: string, error: unknown) => {
        const apiError = toApiError(error);
        if (apiError.code === "Internal") request.log.error({ err: error }, `machine status ${name} failed`);
        answers[index] = { name, status: apiError.statusCode, ...apiError.body() };
      };
      // Checked and read one by one, written together (one writeMany: for SQLite one commit).
      const writes: { index: number; entry: Entry; update: ResourceInput }[] = [];
      for (const [index, raw] of request.body.items.entries()) {
        const name = typeof (raw as { name?: unknown })?.name === "string" ? (raw as { name: string }).name : `(entry ${index})`;
        try {
          const entry = await checkEntry(ctx, principal, raw);
          const existing = await ctx.store.get<Machine>("Machine", entry.name);
          if (!existing) throw notFound("Machine", entry.name);
          writes.push({ index, entry, update: statusUpdate(existing, entry, entry.metadata?.resourceVersion ?? existing.metadata.resourceVersion) });
        } catch (error) {
          failed(index, name, error);
        }
      }
      const results = await ctx.store.writeMany(writes.map(({ update }) => ({ update })));
      for (const [i, { index, entry }] of writes.entries()) {
        const result = results[i]!;
        try {
          if ("object" in result) answers[index] = { name: entry.name, object: visibleTo(principal, result.object as Machine) };
          // Written meanwhile by someone else, and the agent named no revision: read again, as the single route does.
          else if (result.error.code === "Conflict" && entry.metadata?.resourceVersion === undefined) answers[index] = { name: entry.name, object: await writeAlone(ctx, principal, entry) };
          else throw result.error;
        } catch (error) {
          failed(index, entry.name, error);
        }
      }
      return { items: answers };
    },
  );
}

type Entry = Static<typeof Entry>;

/** The entry, valid and allowed for this principal (a node token: machines on its node, addresses at its address). */
async function checkEntry(ctx: ApiContext, principal: ReturnType<typeof principalOf>, raw: unknown): Promise<Entry> {
  const problems = schemaProblems(Entry, raw, entryChecker);
  if (problems.length > 0) throw invalid("entry", problems.map(({ path, message }) => ({ path, message })));
  const entry = raw as Entry;
  if (principal && principal.role !== "admin") {
    const refusal = await machineRefusal(principal, ctx.store, entry.name, entry.status as Partial<MachineStatus>);
    if (refusal) throw forbidden(principal, `PUT /api/v1/machines/${entry.name}/status`, refusal);
  }
  return entry;
}

/** What the single status route writes: the stored machine with this status, at `resourceVersion`. */
function statusUpdate(existing: Machine, entry: Entry, resourceVersion: string): ResourceInput {
  return {
    apiVersion: API_VERSION,
    kind: "Machine",
    metadata: { name: entry.name, labels: existing.metadata.labels, resourceVersion },
    spec: existing.spec,
    status: entry.status as MachineStatus,
  };
}

async function writeAlone(ctx: ApiContext, principal: ReturnType<typeof principalOf>, entry: Entry): Promise<Machine> {
  const written = await readModifyWrite<Machine>(ctx.store, "Machine", entry.name, entry.metadata?.resourceVersion, (existing) => statusUpdate(existing, entry, existing.metadata.resourceVersion) as ResourceInput<"Machine", Machine["spec"], Machine["status"]>);
  return visibleTo(principal, written);
}
