import assert from "node:assert/strict";
import { test } from "node:test";
import { netHelperArgv, parseNetHelperArgv, type NetHelperSpec } from "./net-helper.ts";

const spec: NetHelperSpec = {
  owner: "agent.node-a",
  machineId: "web-1",
  socketPath: "/m/net.sock",
  forwards: [{ hostPort: 18080, guestPort: 8080 }],
  egress: [
    { guestAddress: "10.0.2.100", guestPort: 5432, host: "db.example.com", port: 5432 },
    { guestAddress: "10.0.2.101", guestPort: 443, host: "10.0.0.5", port: 443 },
  ],
};

test("pith-net forwards from the loopback only and names each egress destination as declared", () => {
  assert.deepEqual(netHelperArgv(spec), [
    "--machine", "agent.node-a/web-1",
    "--socket", "/m/net.sock",
    "--forward", "127.0.0.1:18080:8080",
    "--egress", "10.0.2.100:5432=db.example.com:5432",
    "--egress", "10.0.2.101:443=10.0.0.5:443",
  ]);
});

test("discovery reads a running pith-net's machine and forwards back from its argv", () => {
  const found = parseNetHelperArgv(["/home/u/.pith/tools/pith-net-0123/pith-net", ...netHelperArgv(spec)]);
  assert.deepEqual(found, { owner: "agent.node-a", machineId: "web-1", forwards: [{ address: "127.0.0.1", hostPort: 18080, guestPort: 8080 }] });
  assert.equal(parseNetHelperArgv(["/usr/bin/other", ...netHelperArgv(spec)]), undefined, "only pith-net itself");
  assert.equal(parseNetHelperArgv(["pith-net", "--socket", "/m/net.sock"]), undefined, "only with a machine name");
});

test("on a host of several, forwards listen on the node's address alone, and discovery reads it back", () => {
  const onNode = { ...spec, forwards: [{ hostPort: 18080, guestPort: 8080, address: "10.213.0.11" }] };
  assert.deepEqual(netHelperArgv(onNode).slice(4, 6), ["--forward", "10.213.0.11:18080:8080"]);
  assert.deepEqual(parseNetHelperArgv(["pith-net", ...netHelperArgv(onNode)])?.forwards, [{ address: "10.213.0.11", hostPort: 18080, guestPort: 8080 }]);
});
