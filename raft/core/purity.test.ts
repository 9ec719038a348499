/**
 * The dependency rules of DESIGN.md §1, read from the sources: raft/core is pure (imports only
 * raft/core and raft/base, and uses no timers, clocks, Math.random, async or node:*), and nothing
 * but the CLI composition root imports chaos/ or bench/.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const found: string[] = [];
  for (const m of text.matchAll(/(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
    found.push((m[1] ?? m[2]) as string);
  }
  return found;
}

/** Repo-relative target of an import, or the bare specifier for packages and node:*. */
function target(file: string, spec: string): string {
  if (!spec.startsWith(".")) return spec;
  return relative(root, resolve(dirname(file), spec));
}

const production = (f: string) => !f.endsWith(".test.ts") && !f.endsWith("test_cluster.ts");

describe("raft/core purity", () => {
  const core = sources(join(root, "raft/core")).filter(production);

  it("has sources to check", () => {
    expect(core.length).toBeGreaterThan(5);
  });

  it("imports only raft/core and raft/base", () => {
    const bad: string[] = [];
    for (const f of core) {
      for (const spec of importsOf(f)) {
        const t = target(f, spec);
        if (!t.startsWith("raft/core/") && !t.startsWith("raft/base/")) bad.push(`${relative(root, f)} imports ${spec}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it("uses no timers, clocks, randomness, async or process state", () => {
    const forbidden = [/\bsetTimeout\b/, /\bsetInterval\b/, /\bsetImmediate\b/, /\bDate\b/, /\bperformance\b/, /Math\.random/, /\basync\b/, /\bawait\b/, /\bprocess\./, /\bqueueMicrotask\b/];
    const bad: string[] = [];
    for (const f of core) {
      const code = readFileSync(f, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
      for (const re of forbidden) if (re.test(code)) bad.push(`${relative(root, f)} uses ${re.source}`);
    }
    expect(bad).toEqual([]);
  });
});

describe("dependency rules between folders", () => {
  const all = ["raft", "storage", "broker", "chaos", "bench"].flatMap((d) => {
    try {
      return sources(join(root, d));
    } catch {
      return [];
    }
  });

  it("raft/base imports nothing of the project outside raft/base", () => {
    const bad = all
      .filter((f) => relative(root, f).startsWith("raft/base/"))
      .flatMap((f) => importsOf(f).filter((s) => s.startsWith(".") && !target(f, s).startsWith("raft/base/")).map((s) => `${relative(root, f)} → ${s}`));
    expect(bad).toEqual([]);
  });

  it("storage imports raft/base (and only types of raft/core), never raft/replica", () => {
    const bad: string[] = [];
    for (const f of all.filter((x) => relative(root, x).startsWith("storage/") && production(x))) {
      const text = readFileSync(f, "utf8");
      for (const m of text.matchAll(/^(import(?:\s+type)?)\s[^;]*?from\s+["']([^"']+)["']/gm)) {
        const t = target(f, m[2] as string);
        if (t.startsWith("raft/replica") || t.startsWith("raft/transport") || t.startsWith("broker") || t.startsWith("chaos") || t.startsWith("bench")) bad.push(`${relative(root, f)} → ${t}`);
        if (t.startsWith("raft/core/") && !(m[1] as string).includes("type")) bad.push(`${relative(root, f)} imports values from ${t}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it("only the CLI composition root imports chaos/ or bench/ from outside them", () => {
    const bad: string[] = [];
    for (const f of all) {
      const rel = relative(root, f);
      if (rel.startsWith("chaos/") || rel.startsWith("bench/") || rel === "broker/cli/main.ts") continue;
      for (const spec of importsOf(f)) {
        const t = target(f, spec);
        if (t.startsWith("chaos/") || t.startsWith("bench/")) bad.push(`${rel} → ${t}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
