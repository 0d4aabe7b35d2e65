import { PithClient } from "../../client/index.ts";
import { config, egressAddress, onShutdown, ready } from "../../guest/index.ts";
import { type RunningProxy, startProxy } from "../run-proxy.ts";
import { ApiTunnelConnector } from "./api-tunnel-connector.ts";

/**
 * The proxy as a Pith machine (examples/proxy-machine): the same proxy as `pith proxy`, for a
 * machine whose only egress is the control plane's API. It watches routes through the API and
 * reaches machines through the API's tunnel route, since it can dial nothing else.
 *
 * Settings come from the machine's environment, given when the machine starts (`pith run
 * --env-file`, or a Service's `env`), never from the image: the image is shareable, the token is not.
 * - `API_TOKEN` (required): a bearer token with the proxy role (`pith token create --role proxy`):
 *   it may read and watch Services and Machines, report load and open tunnels, nothing else.
 * - `CONTROL_PLANE` (optional): the API as `host:port`, as declared in `egress`. Default: the
 *   image's only egress destination. Outside a machine (a laptop run), it is dialled directly.
 * - `PORT` (optional): where to listen. Default: the image's first `listen` port, else 8080.
 */
export interface ProxyMachineSettings {
  /** The declared destination, e.g. 127.0.0.1:7070. */
  controlPlane: string;
  /** Where that destination is dialled from here (its egress address inside a machine). */
  dial: { host: string; port: number };
  token: string;
  port: number;
}

export function proxyMachineSettings(env: NodeJS.ProcessEnv = process.env): ProxyMachineSettings {
  const token = env.API_TOKEN?.trim();
  if (!token) {
    throw new Error(
      "API_TOKEN is not set: start the machine with a proxy-role token in a file, e.g. { printf 'API_TOKEN='; pith token create --role proxy; } > edge.env; pith run examples/proxy-machine --env-file edge.env",
    );
  }
  const { egress, listen, inPith } = config();
  const declared = Object.keys(egress);
  let controlPlane = env.CONTROL_PLANE?.trim();
  if (!controlPlane) {
    if (declared.length !== 1) {
      throw new Error(
        inPith
          ? `CONTROL_PLANE is not set and the image declares ${declared.length} egress destinations (${declared.join(", ") || "none"}): declare exactly the API's host:port`
          : "CONTROL_PLANE is not set: outside a Pith machine, give the API as host:port, e.g. CONTROL_PLANE=127.0.0.1:7070",
      );
    }
    controlPlane = declared[0]!;
  }
  const port = Number(env.PORT ?? listen[0] ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT ${env.PORT} is not a port number`);
  return { controlPlane, dial: egressAddress(controlPlane), token, port };
}

/**
 * Starts the proxy: resolves once the route table is synced and the port is listening. When this
 * machine belongs to a service (`machine`: its name, PITH_MACHINE_ID), that service is not routed.
 */
export async function runProxyMachine(settings: ProxyMachineSettings, options: { machine?: string; onError?: (error: unknown) => void } = {}): Promise<RunningProxy> {
  const { dial, token, controlPlane } = settings;
  const client = new PithClient({ server: `http://${dial.host}:${dial.port}`, token });
  // A machine of `pith run` is no Machine object, and belongs to no service.
  const ownService = options.machine === undefined ? undefined : (await client.get("Machine", options.machine))?.spec.service;
  return startProxy({
    client,
    host: "0.0.0.0",
    port: settings.port,
    report: (service, load) => client.reportLoad(service, load),
    connector: new ApiTunnelConnector({ host: dial.host, port: dial.port, token, hostHeader: controlPlane }),
    ...(ownService ? { ownService } : {}),
    ...(options.onError ? { onError: options.onError } : {}),
  });
}

const RETRY_MS = 1_000;

/**
 * The machine's program: start (retrying while the API is not answering yet), say ready() once
 * the routes are synced, stop gracefully on shutdown. Exits non-zero if the route watches fail for
 * good (a revoked token, say): serving ever staler routes would be worse than a visible restart.
 */
export async function proxyMachineMain(): Promise<void> {
  const settings = proxyMachineSettings();
  const log = (message: string): void => console.log(`pith proxy machine: ${message}`);
  let running: RunningProxy | undefined;
  let stopping = false;
  onShutdown(async () => {
    stopping = true;
    await running?.close();
  });
  for (let attempt = 1; !running && !stopping; attempt++) {
    try {
      const { machineId } = config();
      running = await runProxyMachine(settings, machineId === undefined ? {} : { machine: machineId });
    } catch (error) {
      log(`cannot start yet (attempt ${attempt}): ${error instanceof Error ? error.message : String(error)}`);
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
  if (!running) return;
  log(`routing on :${settings.port}, routes and connections through the API at ${settings.controlPlane}`);
  ready();
  running.routesDone.catch((error: unknown) => {
    if (stopping) return;
    log(`the route watches failed for good, exiting: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
