/** The kvm layer: memslots, the stage-2 fault path, dirty logging and MMU-notifier handlers. */
export * from "./dirty-log.js";
export * from "./events.js";
export * from "./fault.js";
export * from "./kernel.js";
export * from "./memslot.js";
export * from "./mmu-notifier.js";
export * from "./vm.js";
