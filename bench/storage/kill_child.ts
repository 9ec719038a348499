/**
 * A writer process for the kill -9 recovery measurement: opens the CommitLog in argv[2] and
 * appends batches until it is killed (or 120 s pass). Prints "ready" after 200 synced batches.
 */
import { openCommitLog } from "../../storage/commit_log.js";
import { DiskOs } from "../../storage/disk_os.js";
import { makeBatch, randomBody } from "./storage_bench.js";

const [dir, entryBytesArg, batchArg] = process.argv.slice(2);
if (dir === undefined) throw new Error("usage: kill_child <dir> <entry-bytes> <batch>");
const entryBytes = Number(entryBytesArg ?? 1024);
const batch = Number(batchArg ?? 64);
const log = openCommitLog({ disk: new DiskOs(), dir, members: ["n1"] });
const body = randomBody(entryBytes);
const deadline = performance.now() + 120_000;
for (let i = 0; performance.now() < deadline; i++) {
  log.append(makeBatch(log.lastIndex() + 1, batch, 1, body));
  log.sync();
  if (i === 200) process.stdout.write("ready\n");
}
