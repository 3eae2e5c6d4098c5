/**
 * The selftests' guest modes (`enum vm_guest_mode` of tools/testing/selftests/kvm, v5.12-v5.14;
 * spec 2.4): the guest's physical-address size, which sets the VM's IPA size, its virtual-address
 * size and its page size. `-m` picks one. The model runs the four a 4K arm64 host with a 48-bit IPA
 * offers (2 to 5; docs/model.md), and says why not the others.
 */
import { S2simError } from "../common/error.js";

/** One guest mode. */
export interface GuestMode {
  /** Its number (`-m`). */
  readonly id: number;
  /** As vm_guest_mode_string prints it. */
  readonly name: string;
  /** Guest physical-address bits: the VM's IPA size (KVM_VM_TYPE_ARM_IPA_SIZE unless 40). */
  readonly paBits: number;
  /** The guest's page size, bytes. */
  readonly pageSize: number;
  /** Why the model does not run it; null when it does. */
  readonly notModelled: string | null;
}

const IPA_52 =
  "it needs a 52-bit IPA, and a host with 4K pages offers KVM 48 bits at most (KVM_CAP_ARM_VM_IPA_SIZE)";

/** Every mode of the v5.14 selftests, by number. */
export const GUEST_MODES: readonly GuestMode[] = [
  { id: 0, name: "PA-bits:52,  VA-bits:48,  4K pages", paBits: 52, pageSize: 4096, notModelled: IPA_52 },
  { id: 1, name: "PA-bits:52,  VA-bits:48, 64K pages", paBits: 52, pageSize: 65536, notModelled: IPA_52 },
  { id: 2, name: "PA-bits:48,  VA-bits:48,  4K pages", paBits: 48, pageSize: 4096, notModelled: null },
  { id: 3, name: "PA-bits:48,  VA-bits:48, 64K pages", paBits: 48, pageSize: 65536, notModelled: null },
  { id: 4, name: "PA-bits:40,  VA-bits:48,  4K pages", paBits: 40, pageSize: 4096, notModelled: null },
  { id: 5, name: "PA-bits:40,  VA-bits:48, 64K pages", paBits: 40, pageSize: 65536, notModelled: null },
  {
    id: 6,
    name: "PA-bits:ANY, VA-bits:48,  4K pages",
    paBits: 0,
    pageSize: 4096,
    notModelled: "it is an x86 mode",
  },
  {
    id: 7,
    name: "PA-bits:47,  VA-bits:64,  4K pages",
    paBits: 47,
    pageSize: 4096,
    notModelled: "it is an s390x mode",
  },
  {
    id: 8,
    name: "PA-bits:44,  VA-bits:64,  4K pages",
    paBits: 44,
    pageSize: 4096,
    notModelled: "it is an s390x mode",
  },
];

/** VM_MODE_DEFAULT on arm64, the cover letter's `-m 4`. */
export const DEFAULT_GUEST_MODE = GUEST_MODES[4]!;

/** The modes the model runs. */
export const MODELLED_GUEST_MODES = GUEST_MODES.filter((m) => m.notModelled === null);

/** The mode numbered `id`, if there is one. */
export function guestMode(id: number): GuestMode | undefined {
  return GUEST_MODES.find((m) => m.id === id);
}

/** A mode's name with its column padding dropped, for a sentence. */
function squeeze(name: string): string {
  return name.replace(/ {2,}/g, " ");
}

/** The modes the model runs, for errors: `modelled: -m 2 (...), ...`. */
export const MODELLED_HINT = `modelled: ${MODELLED_GUEST_MODES.map((m) => `-m ${m.id} (${squeeze(m.name)})`).join(", ")}`;

/** The error for a guest mode ID (`id`, as written) that names no mode of the selftests. */
export function noSuchGuestMode(id: string): S2simError {
  return new S2simError(
    "bad-mode",
    `guest mode ${id} does not exist (the selftests number theirs 0 to ${GUEST_MODES.length - 1}); ${MODELLED_HINT}`,
  );
}

/**
 * The mode numbered `id` if the model runs it; an S2simError naming why not (it does not exist, or
 * is not modelled) and the modes it runs otherwise.
 */
export function modelledGuestMode(id: number): GuestMode {
  const mode = guestMode(id);
  if (mode === undefined) throw noSuchGuestMode(String(id));
  if (mode.notModelled !== null) {
    throw new S2simError(
      "bad-mode",
      `guest mode ${id} (${squeeze(mode.name)}) is not modelled: ${mode.notModelled}; ${MODELLED_HINT}`,
    );
  }
  return mode;
}
