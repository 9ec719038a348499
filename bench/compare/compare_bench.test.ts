import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "../../broker/server/test_build.js";
import { runCompareBench } from "./compare_bench.js";
import { bytesField, decodeFields, numberAt, varint } from "./proto_mini.js";

beforeAll(() => ensureBuilt(), 120_000);

describe("proto_mini", () => {
  it("round-trips a length-delimited field and decodes varints", () => {
    const f = decodeFields(Buffer.concat([bytesField(1, Buffer.from("k")), varint((4 << 3) | 0), varint(300)]));
    expect(f.get(1)?.[0]).toEqual(Buffer.from("k"));
    expect(numberAt(f, 4)).toBe(300n);
  });
  it("rejects a truncated varint", () => {
    expect(() => decodeFields(Buffer.from([0x08, 0x80]))).toThrow(/truncated/);
  });
});

describe("dledger bench compare (smoke)", () => {
  it("runs dledger alone (peers not selected read '-'), writes the report and ends with the summary line", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dledger-bench-compare-smoke-"));
    const out = path.join(dir, "report.json");
    const lines: string[] = [];
    try {
      process.env["DLEDGER_BENCH_QUIET_WAIT_S"] = "0";
      await runCompareBench({ entryBytes: 256, duration: 1, warmup: 0.3, levels: [2], peerLevels: [2], batch: 4, channels: 1, only: ["dledger"], out }, (l) => lines.push(l));
      expect(lines[lines.length - 1]).toMatch(/^compare: dledger \d+\/s, etcd -\/s, rabbitmq -\/s, nats -\/s$/);
      const report = JSON.parse(fs.readFileSync(out, "utf8")) as { kind: string; systems: { name: string; best: { appendsPerSec: number } | null }[] };
      expect(report.kind).toBe("bench-compare");
      expect(report.systems.map((s) => s.name)).toEqual(["dledger", "etcd", "rabbitmq", "nats"]);
      expect(report.systems[0]?.best).not.toBeNull();
    } finally {
      delete process.env["DLEDGER_BENCH_QUIET_WAIT_S"];
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
