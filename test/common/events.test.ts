/** The event bus: per-kind interest, the tap, and what the checkers make producers build. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Checkers } from "../../src/check/checkers.js";
import { parseChecks } from "../../src/check/rules.js";
import { EventBus } from "../../src/common/events.js";
import { runToCompletion } from "../../src/common/steps.js";
import { guestAccess } from "../../src/kvm/fault.js";
import { Vm } from "../../src/kvm/vm.js";

type Ev = { kind: "a"; n: number } | { kind: "b"; s: string };

describe("event bus", () => {
  it("tells producers which kinds some subscriber wants, and delivers only those", () => {
    const bus = new EventBus<Ev>({ a: true, b: true });
    assert.equal(bus.active, false);
    assert.deepEqual(bus.wants, { a: false, b: false });
    const got: number[] = [];
    const offA = bus.subscribe((e) => got.push(e.n), ["a"]);
    assert.equal(bus.active, true);
    assert.deepEqual(bus.wants, { a: true, b: false });
    bus.emit({ kind: "b", s: "x" });
    bus.emit({ kind: "a", n: 1 });
    assert.deepEqual(got, [1]);
    const { events } = bus.record(() => bus.emit({ kind: "b", s: "y" }));
    assert.deepEqual(events, [{ kind: "b", s: "y" }]);
    assert.deepEqual(bus.wants, { a: true, b: false });
    offA();
    assert.equal(bus.active, false);
    assert.deepEqual(bus.wants, { a: false, b: false });
  });

  it("a tap keeps the bus active without wanting any event object; there is one at most", () => {
    const bus = new EventBus<Ev, { tick(): void }>({ a: true, b: true });
    const off = bus.setTap({ tick() {} });
    assert.equal(bus.active, true);
    assert.deepEqual(bus.wants, { a: false, b: false });
    assert.throws(() => bus.setTap({ tick() {} }), /already set/);
    off();
    assert.equal(bus.active, false);
    assert.equal(bus.tap, null);
  });

  it("with the checkers on, the VM's layers build only host-write events", () => {
    const vm = new Vm({ kernel: "v5.14", vcpus: 1, hostBytes: 2 << 20 });
    vm.addMemory(1, 2 ** 30, 2 << 20, 0x4000_0000_0000, "anonymous");
    const checkers = new Checkers(vm, { checks: parseChecks("all"), mode: "collect" });
    assert.equal(vm.events.tap, checkers);
    const wanted = Object.entries(vm.events.wants).filter(([, w]) => w);
    assert.deepEqual(wanted, [["host-alloc", true]]);
    const kinds = new Set<string>();
    const off = vm.events.subscribe((e) => kinds.add(e.kind), ["host-alloc", "guest-abort"]);
    runToCompletion(guestAccess(vm, vm.vcpus[0]!, { ipa: 2 ** 30, write: true, exec: false, s1ptw: false }));
    off();
    assert.deepEqual([...kinds].sort(), ["guest-abort", "host-alloc"]);
    assert.equal(checkers.found, 0);
    checkers.detach();
    assert.equal(vm.events.active, false);
  });
});
