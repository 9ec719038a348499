/**
 * Entry point: `node probe_agent.js`, started by the cluster inside the coordinator's network
 * namespace when the cluster's own process runs outside it (replica_probe.ts). Reads AgentRequest
 * lines on stdin, answers AgentResponse lines on stdout, exits when stdin closes.
 */
import { createInterface } from "node:readline";
import { DirectProbe, type AgentRequest, type AgentResponse } from "./replica_probe.js";

const probe = new DirectProbe();
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  let req: AgentRequest;
  try {
    req = JSON.parse(line) as AgentRequest;
  } catch {
    return;
  }
  void probe.metadata(req.address, req.timeoutMs).then((value) => {
    const res: AgentResponse = { id: req.id, value };
    process.stdout.write(`${JSON.stringify(res)}\n`);
  });
});
input.on("close", () => {
  probe.close();
  process.exit(0);
});
