import { readFile, rename } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pithHome } from "../shared/paths.ts";
import { ensurePrivateDir, writePrivateFile } from "../shared/private-files.ts";

/**
 * The agent's only local state: a handle (the QEMU pid) per machine it runs, so a restarted
 * agent re-attaches to exactly those processes without scanning the host. It is a shortcut, not
 * the truth: when it is missing or unreadable the agent discovers its machines from /proc.
 */
export interface AgentState {
  node: string;
  machines: Record<string, { pid: number }>;
}

export const agentStatePath = (node: string): string => join(pithHome(), "agent", `${node}.json`);

export async function readAgentState(node: string): Promise<AgentState | undefined> {
  try {
    const state = JSON.parse(await readFile(agentStatePath(node), "utf8")) as AgentState;
    return state.node === node && state.machines && typeof state.machines === "object" ? state : undefined;
  } catch {
    return undefined;
  }
}

export async function writeAgentState(state: AgentState): Promise<void> {
  const path = agentStatePath(state.node);
  await ensurePrivateDir(dirname(path));
  const staging = `${path}.${process.pid}.tmp`;
  await writePrivateFile(staging, JSON.stringify(state, null, 2) + "\n");
  await rename(staging, path);
}
