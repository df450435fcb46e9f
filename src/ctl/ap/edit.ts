import type { SysfsPort } from '../../port/sysfs-port.js';
import {
  applyMaskPlan,
  applyMatrixPlan,
  matrixPlanChanges,
  planMaskChange,
  planMatrixChange,
  type MaskChange,
  type MaskDirection,
  type MatrixChange,
  type MatrixOp,
} from '../../host/ap/edit.js';
import { formatIdList } from '../../host/ap/ids.js';
import type { MatrixConfig } from '../../host/ap/model.js';

/**
 * The changing `mdevkit ap` commands as a person sees them: the library
 * (src/host/ap) plans the change and refuses it with a coded error; these
 * show the plan first (which queues change side, before and after), then
 * apply it, or stop at --dry-run.
 */

export interface Out {
  write(chunk: string): unknown;
}

function listQueues(queues: readonly string[]): string {
  if (queues.length === 0) return 'none';
  return queues.length <= 16
    ? queues.join(' ')
    : `${queues.slice(0, 16).join(' ')} ... (${queues.length} in all)`;
}

export interface MaskCommandOptions extends MaskChange {
  readonly dryRun?: boolean;
}

/** `ap reserve` (for guests) and `ap release` (back to the host). */
export function apChangeMasks(
  port: SysfsPort,
  out: Out,
  direction: MaskDirection,
  opts: MaskCommandOptions,
): void {
  const plan = planMaskChange(port, direction, opts);
  const verb = direction === 'reserve' ? 'Reserving for guests' : 'Releasing to the host';
  const what = [
    opts.adapters?.length ? `adapters ${formatIdList(opts.adapters, 2)}` : '',
    opts.domains?.length ? `domains ${formatIdList(opts.domains, 4)}` : '',
  ]
    .filter(Boolean)
    .join(' and ');
  out.write(`${verb}: ${what}\n`);
  if (plan.apmaskEdit === undefined && plan.aqmaskEdit === undefined) {
    out.write(`Nothing to change: the masks say so already.\n`);
    return;
  }
  if (plan.apmaskEdit !== undefined) out.write(`  apmask: ${plan.apmaskEdit}\n`);
  if (plan.aqmaskEdit !== undefined) out.write(`  aqmask: ${plan.aqmaskEdit}\n`);
  out.write(`  queues to guests (vfio_ap): ${listQueues(plan.toGuests)}\n`);
  out.write(`  queues to the host:         ${listQueues(plan.toHost)}\n`);
  if (plan.refusal !== undefined) throw plan.refusal;
  if (opts.dryRun === true) {
    out.write('Dry run: nothing written.\n');
    return;
  }
  applyMaskPlan(port, plan);
  const moved = plan.toGuests.length + plan.toHost.length;
  out.write(`Done: ${moved} queue${moved === 1 ? '' : 's'} changed side.\n`);
}

export interface MatrixCommandOptions extends MatrixChange {
  readonly dryRun?: boolean;
}

/** `ap assign` and `ap unassign`: check, explain, then one atomic write of ap_config. */
export function apChangeMatrix(
  port: SysfsPort,
  out: Out,
  uuid: string,
  op: MatrixOp,
  opts: MatrixCommandOptions,
): void {
  const plan = planMatrixChange(port, uuid, op, opts);
  if (plan.refusal !== undefined) throw plan.refusal;
  const summary = (c: MatrixConfig): string =>
    `adapters ${formatIdList(c.adapters, 2)}; domains ${formatIdList(c.domains, 4)}; control domains ${formatIdList(c.controlDomains, 4)}`;
  out.write(`Matrix device ${plan.uuid}\n  now:   ${summary(plan.before)}\n`);
  if (!matrixPlanChanges(plan)) {
    out.write('Nothing to change.\n');
    return;
  }
  out.write(`  after: ${summary(plan.after)}\n`);
  out.write(
    `  queues gained: ${listQueues(plan.added)}\n  queues lost:   ${listQueues(plan.removed)}\n`,
  );
  if (opts.dryRun === true) {
    out.write('Dry run: nothing written.\n');
    return;
  }
  const how = applyMatrixPlan(port, plan);
  out.write(
    how === 'stepwise' ? 'Done (one id at a time: this kernel has no ap_config).\n' : 'Done.\n',
  );
}
