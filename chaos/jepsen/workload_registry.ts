import type { CheckMode } from "../checkers/check_run.js";
import type { Workload } from "./contracts.js";
import { createAppendWorkload } from "./workload_append.js";
import { createRegisterWorkload } from "./workload_register.js";
import { kvRegisterClientFactory } from "./workload_register_kv.js";

/**
 * The workloads `dledger chaos --workload` knows, by name. Each names the checker its history goes
 * to (check_run.ts CheckMode). The broker's `queue` workload plugs in here: a factory returning a
 * Workload, plus a CheckMode (and its case in check_run.ts checkHistory).
 */
export interface WorkloadEntry {
  readonly description: string;
  readonly checkMode: CheckMode;
  /** The checker's name in the summary, e.g. "linearizability (cas-register)". */
  readonly checkerName: string;
  create(): Workload;
}

export const workloadRegistry: Readonly<Record<string, WorkloadEntry>> = {
  register: {
    description: "per-key read/write/cas of small integers through dledger.v1.Kv; linearizability, cas-register model",
    checkMode: "cas-register",
    checkerName: "linearizability (cas-register)",
    create: () => createRegisterWorkload({ clientFactory: kvRegisterClientFactory }),
  },
  append: {
    description: "unique appends through dledger.v1.Ledger and whole-log reads; lost, duplicated, unexpected, misplaced, reordered",
    checkMode: "append",
    checkerName: "append",
    create: () => createAppendWorkload(),
  },
};

export const workloadNames: readonly string[] = Object.keys(workloadRegistry);

/** The entry for `name`, or a RangeError naming the known ones. */
export function workloadEntry(name: string): WorkloadEntry {
  const e = Object.hasOwn(workloadRegistry, name) ? workloadRegistry[name] : undefined;
  if (e === undefined) throw new RangeError(`--workload must be one of ${workloadNames.join(", ")}; got ${JSON.stringify(name)}`);
  return e;
}
