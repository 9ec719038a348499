export { AssertionError, assert, isCount, unreachable } from "./assert.js";
export { Prng } from "./prng.js";
export type { Clock } from "./clock.js";
export { silentLogger } from "./logger.js";
export type { Logger } from "./logger.js";
export { bytesEqual, concatBytes, fnv1a, fromUtf8, toHex, utf8 } from "./bytes.js";
