/**
 * The size of the QEMU VM a builder pod boots in QEMU mode, from the pod's own resources: one rule for the worker's
 * start-up check, the API's check of a build's own resources and the pod template.
 *
 * Everything the VM holds counts against the build container's memory limit: the guest's memory, which a build
 * fills (the VM's root and BuildKit's content store live in it), and QEMU's own (its code and the translated-code
 * cache of software emulation, which `ibs-build-in-vm` caps at 128 MiB). Measured under emulation: QEMU held
 * 190-250 MiB beside its guest's memory with the cache uncapped, 121 MiB with the cap (docs/benchmarks.md). So the
 * VM gets the limit less QEMU_OWN_MIB and a sixteenth for headroom. (Before, the VM had 2G in a pod limited to 1G
 * by default: a build that used its memory would have outgrown the limit, and the kernel kills the container then.)
 */
import { parseQuantity, type ResourceQuantities } from './quantity';

/** QEMU's own resident memory beside its guest's, rounded up. */
export const QEMU_OWN_MIB = 320;
/** The least the VM may get: a small build ran in 384 MiB; below this, large layers fail inside the VM. */
export const QEMU_VM_MIN_MIB = 512;
const MIB = 1024 * 1024;

export interface QemuVmSize {
  memoryMiB: number;
  /** The VM's CPUs when the node offers KVM: the CPU limit's whole cores, at least one. Under emulation it is one. */
  kvmCpus: number;
}

/** The least memory limit a QEMU builder pod may have, as a Kubernetes quantity. */
export const QEMU_MIN_MEMORY_LIMIT = `${Math.ceil(((QEMU_VM_MIN_MIB + QEMU_OWN_MIB) * 16) / 15)}Mi`;

function vmMemoryMiB(memoryLimit: string): number {
  const limitMiB = (parseQuantity(memoryLimit) ?? 0) / MIB;
  return Math.floor(limitMiB - QEMU_OWN_MIB - limitMiB / 16);
}

/**
 * The fix for a memory limit below QEMU_MIN_MEMORY_LIMIT, for the error that refuses it; undefined when the limit
 * holds the VM and QEMU.
 */
export function qemuMemoryAdvice(memoryLimit: string): string | undefined {
  if (vmMemoryMiB(memoryLimit) >= QEMU_VM_MIN_MIB) return undefined;
  return `${memoryLimit} is too little for BuildKit in a QEMU VM: the VM gets the memory limit less ${QEMU_OWN_MIB} MiB for QEMU and a sixteenth, and needs at least ${QEMU_VM_MIN_MIB} MiB; set at least ${QEMU_MIN_MEMORY_LIMIT}`;
}

/** The VM of a pod with these limits, or undefined when qemuMemoryAdvice refuses the memory limit. */
export function qemuVmSize(limits: Pick<ResourceQuantities, 'cpu' | 'memory'>): QemuVmSize | undefined {
  if (qemuMemoryAdvice(limits.memory)) return undefined;
  return { memoryMiB: vmMemoryMiB(limits.memory), kvmCpus: Math.max(1, Math.floor(parseQuantity(limits.cpu) ?? 1)) };
}
