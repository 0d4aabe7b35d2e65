// The proxy's own code (src/proxy), bundled into this image. It calls ready() once its route
// table is synced from the API; see src/proxy/machine/proxy-machine.ts for its settings.
import { proxyMachineMain } from "../../../src/proxy/machine/proxy-machine.ts";

await proxyMachineMain();
