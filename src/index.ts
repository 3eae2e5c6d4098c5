/** s2sim: an executable model of Linux KVM arm64 stage-2 memory management. */
export * from "./common/errno.js";
export * from "./common/error.js";
export * from "./common/events.js";
export * from "./common/format.js";
export * from "./arch/index.js";
export * from "./pgtable/index.js";
export * from "./common/size.js";
export * from "./common/steps.js";
export * from "./host/index.js";
export * from "./kvm/index.js";
