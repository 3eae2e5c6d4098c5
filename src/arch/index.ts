/** The arch layer: the AArch64 stage-2 translation format. */
export * from "./granule.js";
export * from "./geometry.js";
export * from "./descriptor.js";
export * from "./cpu.js";
export * from "./vtcr.js";
