import { createNemesis } from "./nemesis.js";
import type { NemesisFactoryOptions, NemesisRunner } from "./runner.js";

/** The seam between the runner and nemesis.ts (kept apart so runner tests can pass another factory). */
export function loadNemesisFactory(): Promise<(o: NemesisFactoryOptions) => NemesisRunner> {
  return Promise.resolve((o: NemesisFactoryOptions) => createNemesis(o));
}
