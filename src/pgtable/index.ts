/** The pgtable layer: the kernel's kvm_pgtable for a guest stage 2. */
export * from "./events.js";
export * from "./hw.js";
export * from "./kernel.js";
export * from "./memcache.js";
export * from "./mm-ops.js";
export * from "./phys-mem.js";
export * from "./prot.js";
export * from "./stage2.js";
export * from "./walker.js";
export * from "./trace-format.js";
export * from "./invariants.js";
export * from "./hw-walk.js";
