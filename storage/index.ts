/**
 * storage/: the CommitLog (Raft log + message store), its Disk bindings, the snapshot store and
 * the offline verifier. See storage/README.md for the API and storage/RECOVERY.md for recovery.
 */
export { CommitLog, openCommitLog } from "./commit_log.js";
export type { OpenReport } from "./commit_log.js";
export { commitLogDefaults, validateOptions } from "./config.js";
export type { CommitLogConfig, CommitLogOptions } from "./config.js";
export type { Disk, DiskFile } from "./disk.js";
export { DiskOs } from "./disk_os.js";
export { DiskSim, SimCrashError } from "./disk_sim.js";
export type { DiskSimOptions, DiskSimStats } from "./disk_sim.js";
export { CorruptionCheck, CorruptionError, DiskError, StorageClosedError, StorageConfigError, SyncFailedError } from "./errors.js";
export { SnapshotStore, SnapshotWriter } from "./snapshot_store.js";
export { verifyDataDir, formatFinding } from "./verify.js";
export type { VerifyFinding, VerifyReport } from "./verify.js";
