/** The host layer: Linux memory behind the guest. */
export * from "./backing.js";
export * from "./events.js";
export * from "./host-phys.js";
export * from "./mm.js";
export * from "./notifier.js";
