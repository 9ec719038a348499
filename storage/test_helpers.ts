import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Entry } from "../raft/core/types.js";
import { CommitLog, openCommitLog } from "./commit_log.js";
import type { CommitLogOptions } from "./config.js";
import type { Disk } from "./disk.js";

/** Test helpers (not part of the public API). */

export function entry(index: number, term: number, size = 16, fill = index): Entry {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (fill * 31 + i) & 0xff;
  return { index, term, type: "normal", data };
}

export function entries(from: number, count: number, term: number, size = 16): Entry[] {
  return Array.from({ length: count }, (_, i) => entry(from + i, term, size));
}

export function open(disk: Disk, dir: string, extra: Partial<CommitLogOptions> = {}): CommitLog {
  return openCommitLog({ disk, dir, members: ["n1", "n2", "n3"], ...extra });
}

/** A fresh temp directory under the OS temp dir; remove it with `rmTemp`. */
export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `dledger-${tag}-`));
}

export function rmTemp(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}
