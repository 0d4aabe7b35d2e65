import type { Command } from "commander";
import { defaultNodeName, NodeAgent } from "../../agent/node-agent.ts";
import { PithClient } from "../../client/index.ts";
import { chooseAccelerator } from "../../hypervisor/qemu/accelerator.ts";
import { QemuHypervisor } from "../../hypervisor/qemu/qemu-hypervisor.ts";
import { parseTcgCacheMiB, TCG_CACHE_HELP } from "../tcg-cache-flag.ts";
import { enableKsmForMachines } from "../../hypervisor/qemu/ksm.ts";
import { findHaproxy } from "../../proxy/haproxy/haproxy-process.ts";
import { PROXY_ENGINES, type ProxyEngineName } from "../../proxy/proxy-engine.ts";
import { startProxy } from "../../proxy/run-proxy.ts";
import { startControlPlane } from "../../server/control-plane.ts";
import { reissueToken } from "../../api/token.ts";
import { pithHome } from "../../shared/paths.ts";
import { join } from "node:path";
import { userError } from "../../shared/errors.ts";
import { execFile } from "../../shared/exec.ts";
import { globalClientFlags, resolveClientConfig } from "../client-config.ts";
import { addStoreFlags, storeConfigFromFlags, type StoreFlags } from "../store-flags.ts";
import { checkAgentAddress } from "../agent-address.ts";

const log = (component: string) => (message: string) => process.stderr.write(`${new Date().toISOString()} ${component}: ${message}\n`);

/** --engine / --proxy-engine; haproxy must be installed (checked now, not at the first request). */
function parseEngine(flag: string, text: string): ProxyEngineName {
  const engine = PROXY_ENGINES.find((name) => name === text);
  if (!engine) throw userError("BAD_FLAG", `${flag} must be ${PROXY_ENGINES.join(" or ")}, got ${text}`);
  if (engine === "haproxy") findHaproxy();
  return engine;
}

const KSM_HELP = "share identical memory pages between machines (KSM) while this runs; only where machines trust each other (see the security model)";

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw userError("BAD_FLAG", `--port must be 0-65535, got ${text}`);
  return port;
}

async function startAgent(server: string, token: string, node: string, address?: string, tcgCacheMiB?: number): Promise<NodeAgent> {
  const { stdout } = await execFile("qemu-system-x86_64", ["--version"], { code: "QEMU_MISSING" });
  const choice = await chooseAccelerator(stdout.split("\n")[0] ?? "");
  const agent = new NodeAgent({
    client: new PithClient({ server, token }),
    hypervisor: new QemuHypervisor({ owner: `agent.${node}`, ...(address ? { forwardAddress: address } : {}), ...(tcgCacheMiB ? { tcgTranslationCacheMiB: tcgCacheMiB } : {}) }),
    accelerator: choice.accelerator,
    nodeName: node,
    ...(address ? { address } : {}),
    log: log("agent"),
  });
  await agent.start();
  log("agent")(`node ${agent.nodeName} registered (${choice.accelerator}: ${choice.reason})`);
  return agent;
}

/** Machines belong to the host, not to this process: they keep running and are re-adopted next time. */
function onExit(stop: () => Promise<void> | void): void {
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      log("pith")(`${signal}: shutting down; running machines keep running and are re-adopted by the next agent`);
      void Promise.resolve(stop()).finally(() => process.exit(0));
    });
  }
}

export function registerUp(program: Command): void {
  program
    .command("up")
    .description("run the control plane, the node agent and the HTTP proxy in one process")
    .option("--host <address>", "address the API listens on", "127.0.0.1")
    .option("--port <port>", "port the API listens on", "7070")
    .option("--node <name>", "this node's name (default: the host name)")
    .option("--proxy-port <port>", "port the HTTP proxy listens on (127.0.0.1 unless --host says otherwise)", "8080")
    .option("--proxy-engine <engine>", "the proxy's data path: node (in this process) or haproxy (HAProxy 2.6, driven by Pith)", "node")
    .option("--ksm", KSM_HELP)
    .option("--tcg-cache <MiB>", TCG_CACHE_HELP)
    .action(async (options: { host: string; port: string; node?: string; proxyPort: string; proxyEngine: string; ksm?: boolean; tcgCache?: string }) => {
      const engine = parseEngine("--proxy-engine", options.proxyEngine);
      const tcgCacheMiB = options.tcgCache === undefined ? undefined : parseTcgCacheMiB(options.tcgCache);
      const undoKsm = options.ksm ? enableKsmForMachines() : undefined;
      const plane = await startControlPlane({ host: options.host, port: parsePort(options.port), log: log("control-plane") });
      // The in-process agent and proxy hold only what their roles allow, like remote ones would.
      const node = options.node ?? defaultNodeName();
      const agentToken = await reissueToken(plane.tokens, { name: `pith-up-agent-${node}`, role: "node", node });
      const proxyToken = await reissueToken(plane.tokens, { name: "pith-up-proxy", role: "proxy" });
      const agent = await startAgent(plane.url, agentToken, node, undefined, tcgCacheMiB);
      const proxy = await startProxy({
        client: new PithClient({ server: plane.url, token: proxyToken }),
        host: options.host,
        port: parsePort(options.proxyPort),
        report: (service, load) => plane.load.report(service, load),
        accessLogPath: join(pithHome(), "access.log"),
        onError: (e) => log("proxy")((e as Error).message),
        engine,
      });
      process.stderr.write(`pith is up: API ${plane.url} (token in ${join(pithHome(), "token")}), proxy ${proxy.url}\n`);
      onExit(async () => {
        agent.stop();
        await proxy.close();
        await plane.close();
        undoKsm?.();
      });
    });

  program
    .command("proxy")
    .description("run only the HTTP proxy, against a control plane (--server, --token-file)")
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "port to listen on", "8080")
    .option("--engine <engine>", "the data path: node (in this process) or haproxy (HAProxy 2.6, driven by Pith)", "node")
    .action(async (options: { host: string; port: string; engine: string }, command: Command) => {
      const engine = parseEngine("--engine", options.engine);
      const { server, token } = resolveClientConfig({ flags: globalClientFlags(command) });
      const client = new PithClient({ server, token });
      const proxy = await startProxy({
        client,
        host: options.host,
        port: parsePort(options.port),
        report: (service, load) => client.reportLoad(service, load),
        onError: (e) => log("proxy")((e as Error).message),
        engine,
      });
      log("proxy")(`listening on ${proxy.url} (${engine} engine), routes from ${server}`);
      onExit(() => proxy.close());
    });

  addStoreFlags(
    program
      .command("server")
      .description("run only the control plane (API, store, controllers); with --store etcd://..., several may share one etcd and elect who runs the controllers")
      .option("--host <address>", "address the API listens on", "127.0.0.1")
      .option("--port <port>", "port the API listens on", "7070"),
  ).action(async (options: { host: string; port: string } & StoreFlags) => {
    const store = storeConfigFromFlags(options);
    const plane = await startControlPlane({ host: options.host, port: parsePort(options.port), store, log: log("control-plane") });
    onExit(() => plane.close());
  });

  program
    .command("agent")
    .description("run only the node agent for this host, against a control plane (--server, --token-file)")
    .option("--node <name>", "this node's name (default: the host name)")
    .option("--address <ip>", "this host's address that proxies on other hosts reach its machines at (their ports are forwarded there instead of 127.0.0.1)")
    .option("--allow-public-address", "let --address be an address outside loopback and the private ranges, publishing machines' ports there")
    .option("--ksm", KSM_HELP)
    .option("--tcg-cache <MiB>", TCG_CACHE_HELP)
    .action(async (options: { node?: string; address?: string; allowPublicAddress?: boolean; ksm?: boolean; tcgCache?: string }, command: Command) => {
      const address = options.address === undefined ? undefined : checkAgentAddress(options.address, options.allowPublicAddress === true);
      const tcgCacheMiB = options.tcgCache === undefined ? undefined : parseTcgCacheMiB(options.tcgCache);
      const { server, token } = resolveClientConfig({ flags: globalClientFlags(command) });
      const undoKsm = options.ksm ? enableKsmForMachines() : undefined;
      const agent = await startAgent(server, token, options.node ?? defaultNodeName(), address, tcgCacheMiB);
      onExit(() => {
        agent.stop();
        undoKsm?.();
      });
    });
}
