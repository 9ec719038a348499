import { assert } from "../base/assert.js";
import type { DurableLogStore, Entry, HardState, ReplicaId, Snapshot } from "./types.js";

/**
 * An in-memory DurableLogStore with real durability semantics, for core tests and the simulator.
 * Every write lands in a volatile view at once (reads see it) and in a pending list; `sync()`
 * replays the pending list onto the durable view; `crash()` throws the volatile view away and
 * starts again from the durable one, as a power loss would. etcd-raft's MemoryStorage has no
 * such split; we need it so the simulator can lose unsynced writes.
 */

interface LogState {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** Index and term of the entry just before entries[0] (the snapshot's, or 0/0). */
  baseIndex: number;
  baseTerm: number;
  entries: Entry[];
}

type Write =
  | { readonly kind: "append"; readonly entries: readonly Entry[] }
  | { readonly kind: "hard_state"; readonly hardState: HardState }
  | { readonly kind: "install"; readonly snapshot: Snapshot }
  | { readonly kind: "save"; readonly snapshot: Snapshot; readonly compactTo: number };

const emptyHardState: HardState = { term: 0, votedFor: null, commit: 0 };

export class MemoryLogStore implements DurableLogStore {
  private readonly members: readonly ReplicaId[];
  private volatile: LogState;
  private durable: LogState;
  private pending: Write[] = [];
  /** Count of sync() calls: lets tests see that a batch costs one sync. */
  syncCount = 0;

  constructor(options: { readonly members: readonly ReplicaId[] }) {
    assert(options.members.length > 0, "MemoryLogStore needs at least one member");
    this.members = Object.freeze([...options.members]);
    this.durable = freshState();
    this.volatile = freshState();
  }

  initialState(): { readonly hardState: HardState; readonly members: readonly ReplicaId[] } {
    return { hardState: this.volatile.hardState, members: this.volatile.snapshot?.meta.members ?? this.members };
  }

  firstIndex(): number {
    return this.volatile.baseIndex + 1;
  }

  lastIndex(): number {
    return this.volatile.baseIndex + this.volatile.entries.length;
  }

  term(index: number): number | undefined {
    const s = this.volatile;
    if (index === s.baseIndex) return s.baseTerm;
    if (index < s.baseIndex || index > s.baseIndex + s.entries.length) return undefined;
    return s.entries[index - s.baseIndex - 1]?.term;
  }

  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    const s = this.volatile;
    assert(lo >= s.baseIndex + 1, `entries: lo ${lo} below firstIndex ${s.baseIndex + 1}`);
    assert(hi <= s.baseIndex + s.entries.length + 1, `entries: hi ${hi} above lastIndex + 1`);
    assert(lo <= hi, `entries: lo ${lo} > hi ${hi}`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = s.entries[i - s.baseIndex - 1] as Entry;
      bytes += e.data.byteLength;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): Snapshot | null {
    return this.volatile.snapshot;
  }

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    applyWrite(this.volatile, { kind: "append", entries });
    this.pending.push({ kind: "append", entries });
  }

  setHardState(hardState: HardState): void {
    applyWrite(this.volatile, { kind: "hard_state", hardState });
    this.pending.push({ kind: "hard_state", hardState });
  }

  installSnapshot(snapshot: Snapshot): void {
    applyWrite(this.volatile, { kind: "install", snapshot });
    this.pending.push({ kind: "install", snapshot });
  }

  saveSnapshot(snapshot: Snapshot, compactTo: number): void {
    applyWrite(this.volatile, { kind: "save", snapshot, compactTo });
    this.pending.push({ kind: "save", snapshot, compactTo });
  }

  sync(): void {
    for (const w of this.pending) applyWrite(this.durable, w);
    this.pending = [];
    this.syncCount++;
  }

  /** Power loss: every write since the last sync() is gone. */
  crash(): void {
    this.pending = [];
    this.volatile = cloneState(this.durable);
  }

  /** Number of writes not yet covered by a sync. */
  unsyncedWrites(): number {
    return this.pending.length;
  }
}

function freshState(): LogState {
  return { hardState: emptyHardState, snapshot: null, baseIndex: 0, baseTerm: 0, entries: [] };
}

function cloneState(s: LogState): LogState {
  return { ...s, entries: s.entries.slice() };
}

function applyWrite(s: LogState, w: Write): void {
  switch (w.kind) {
    case "append":
      return appendTo(s, w.entries);
    case "hard_state":
      s.hardState = w.hardState;
      return;
    case "install":
      s.snapshot = w.snapshot;
      s.baseIndex = w.snapshot.meta.index;
      s.baseTerm = w.snapshot.meta.term;
      s.entries = [];
      return;
    case "save":
      return saveTo(s, w.snapshot, w.compactTo);
  }
}

function appendTo(s: LogState, entries: readonly Entry[]): void {
  const first = entries[0] as Entry;
  const last = s.baseIndex + s.entries.length;
  assert(first.index > s.baseIndex, `append at ${first.index} at or below the snapshot ${s.baseIndex}`);
  assert(first.index <= last + 1, `append at ${first.index} leaves a gap after ${last}`);
  if (first.index <= last) s.entries.length = first.index - s.baseIndex - 1;
  for (const e of entries) s.entries.push(e);
}

function saveTo(s: LogState, snapshot: Snapshot, compactTo: number): void {
  const last = s.baseIndex + s.entries.length;
  assert(compactTo <= snapshot.meta.index, `compactTo ${compactTo} above snapshot ${snapshot.meta.index}`);
  assert(snapshot.meta.index <= last, `snapshot ${snapshot.meta.index} above lastIndex ${last}`);
  s.snapshot = snapshot;
  if (compactTo <= s.baseIndex) return;
  const term = s.entries[compactTo - s.baseIndex - 1]?.term;
  assert(term !== undefined, `compactTo ${compactTo} has no entry`);
  s.entries = s.entries.slice(compactTo - s.baseIndex);
  s.baseIndex = compactTo;
  s.baseTerm = term;
}
