import { describe, expect, it } from 'vitest';
import { QEMU_MIN_MEMORY_LIMIT, QEMU_OWN_MIB, QEMU_VM_MIN_MIB, qemuMemoryAdvice, qemuVmSize } from './qemu-vm';

describe('qemuVmSize', () => {
  it.each([
    // limit in MiB less 320 and a sixteenth, rounded down
    ['the chart\'s default limits', { cpu: '1', memory: '1G' }, { memoryMiB: 574, kvmCpus: 1 }],
    ['the operator documentation\'s QEMU limits', { cpu: '4', memory: '8G' }, { memoryMiB: 6832, kvmCpus: 4 }],
    ['binary units', { cpu: '2', memory: '8Gi' }, { memoryMiB: 7360, kvmCpus: 2 }],
    ['part of a CPU: one', { cpu: '500m', memory: '2Gi' }, { memoryMiB: 1600, kvmCpus: 1 }],
    ['a fractional CPU limit: its whole cores', { cpu: '2500m', memory: '2Gi' }, { memoryMiB: 1600, kvmCpus: 2 }],
  ])('sizes the VM for %s', (_name, limits, size) => {
    expect(qemuVmSize(limits)).toEqual(size);
  });

  it('refuses a limit below QEMU_MIN_MEMORY_LIMIT, and the minimum leaves the VM its least memory', () => {
    expect(QEMU_MIN_MEMORY_LIMIT).toBe('888Mi');
    expect(qemuVmSize({ cpu: '1', memory: QEMU_MIN_MEMORY_LIMIT })?.memoryMiB).toBe(QEMU_VM_MIN_MIB);
    expect(qemuVmSize({ cpu: '1', memory: '887Mi' })).toBeUndefined();
    expect(qemuVmSize({ cpu: '1', memory: '512Mi' })).toBeUndefined();
  });

  it('says how much to set', () => {
    expect(qemuMemoryAdvice('512Mi')).toBe(
      `512Mi is too little for BuildKit in a QEMU VM: the VM gets the memory limit less ${QEMU_OWN_MIB} MiB for QEMU and a sixteenth, and needs at least ${QEMU_VM_MIN_MIB} MiB; set at least 888Mi`,
    );
  });
});
