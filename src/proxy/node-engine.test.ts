import { NodeEngine } from "./node-engine.ts";
import { proxyEngineContract } from "./proxy-engine-contract.ts";

proxyEngineContract("node", (options) => new NodeEngine(options));
