import type { EmulatedKernel } from './kernel.js';

/**
 * /sys/devices/system: the CPUs and NUMA nodes of the emulated host, as
 * drivers/base/cpu.c, topology.c and node.c render them. Tools that manage
 * VMs read these at start-up (libvirt's host capabilities: which CPUs are
 * online, how they form cores and packages, which node holds them and how
 * much memory it has), so a lab without them looks like a machine with no
 * processors.
 *
 * The model is the plainest real machine: one package, one NUMA node, one
 * thread per core, every CPU online. The lab sizes it after the machine it
 * runs on, so a VM started on the lab gets CPUs that exist.
 */
export interface SystemSpec {
  /** Number of CPUs, all online (at least 1). */
  readonly cpus: number;
  /** Memory of node 0 in KiB. */
  readonly memoryKiB: number;
  /** Free memory of node 0 in KiB (what meminfo shows as MemFree). */
  readonly freeKiB?: number;
}

const SYSTEM = '/sys/devices/system';

/** A CPU list in the kernel's "%*pbl" format: "0-3", "0", "0-1,4". */
export function cpuList(ids: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ids.length;) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j]! + 1) j++;
    parts.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * A CPU mask in the kernel's "%*pb" format for `nbits` possible CPUs:
 * hex in 32-bit groups separated by commas, most significant first, the
 * first group only as wide as its bits need ("3" for 2 CPUs, "00000001"
 * for a group of 32).
 */
export function cpuMask(nbits: number, ids: readonly number[]): string {
  const groups = Math.max(1, Math.ceil(nbits / 32));
  const words = new Array<number>(groups).fill(0);
  for (const id of ids) words[Math.floor(id / 32)]! |= 1 << (id % 32);
  const out: string[] = [];
  for (let g = groups - 1; g >= 0; g--) {
    const bits = g === groups - 1 ? nbits - 32 * g : 32;
    const digits = Math.max(1, Math.ceil(bits / 4));
    out.push((words[g]! >>> 0).toString(16).padStart(digits, '0'));
  }
  return out.join(',');
}

/** Render /sys/devices/system/{cpu,node} for `spec`. */
export function addSystemDevices(kernel: EmulatedKernel, spec: SystemSpec): void {
  const n = Math.max(1, Math.floor(spec.cpus));
  const all = Array.from({ length: n }, (_, i) => i);
  const list = cpuList(all);
  const mask = cpuMask(n, all);
  const t = kernel.tree;
  const ro = (path: string, name: string, text: string): void => {
    t.mkdirp(path).attr(name, 0o444, { show: () => `${text}\n` });
  };

  const cpu = `${SYSTEM}/cpu`;
  t.mkdirp(`${SYSTEM}/cpu`);
  ro(cpu, 'online', list);
  ro(cpu, 'possible', list);
  ro(cpu, 'present', list);
  ro(cpu, 'offline', '');
  ro(cpu, 'kernel_max', '8191');
  for (const id of all) {
    const dir = `${cpu}/cpu${id}`;
    // cpu0 cannot be taken offline on x86, so it has no `online` file.
    if (id > 0) ro(dir, 'online', '1');
    const topo = `${dir}/topology`;
    ro(topo, 'physical_package_id', '0');
    ro(topo, 'die_id', '0');
    ro(topo, 'core_id', String(id));
    ro(topo, 'thread_siblings_list', String(id));
    ro(topo, 'thread_siblings', cpuMask(n, [id]));
    ro(topo, 'core_cpus_list', String(id));
    ro(topo, 'core_cpus', cpuMask(n, [id]));
    ro(topo, 'core_siblings_list', list);
    ro(topo, 'core_siblings', mask);
    ro(topo, 'package_cpus_list', list);
    ro(topo, 'package_cpus', mask);
    t.mkdirp(dir).link('node0', '../../node/node0');
  }

  const node = `${SYSTEM}/node`;
  for (const name of ['online', 'possible', 'has_cpu', 'has_memory', 'has_normal_memory']) {
    ro(node, name, '0');
  }
  const node0 = `${node}/node0`;
  ro(node0, 'cpulist', list);
  ro(node0, 'cpumap', mask);
  ro(node0, 'distance', '10');
  const free = Math.min(spec.freeKiB ?? spec.memoryKiB, spec.memoryKiB);
  const kb = (k: number): string => `${String(k).padStart(8)} kB`;
  ro(
    node0,
    'meminfo',
    [
      `Node 0 MemTotal:       ${kb(spec.memoryKiB)}`,
      `Node 0 MemFree:        ${kb(free)}`,
      `Node 0 MemUsed:        ${kb(spec.memoryKiB - free)}`,
      'Node 0 HugePages_Total:     0',
      'Node 0 HugePages_Free:      0',
      'Node 0 HugePages_Surp:      0',
    ].join('\n'),
  );
  for (const id of all) t.mkdirp(node0).link(`cpu${id}`, `../../cpu/cpu${id}`);
}
