import { aggregationTarget, readAggregation, setAggregation } from '../host/aggregation.js';
import { CommandError, UsageError, command } from './command.js';

/** `mdevkit aggregation UUID [VALUE]`: how many instances a device aggregates, read or changed. */
export const aggregationCommand = command({
  synopsis: 'UUID [VALUE] [--parent P]',
  description:
    "How many instances' worth of resources a mediated device aggregates (mdev/aggregation/value, at most mdev/aggregation/max). With VALUE, change it: on the running device (the kernel refuses with EBUSY while a VM holds it, with the driver's errno when the parent has too little left; nothing changes then) and in its definition, as the attribute mdevctl writes at start.",
  options: {
    parent: {
      type: 'string',
      value: 'P',
      help: 'the parent, when the UUID is defined on several',
    },
  },
  positionals: [{ name: 'UUID' }, { name: 'VALUE', optional: true }],
  root: true,
  json: true,
  run(io, call) {
    const [uuidText, valueText] = call.positionals;
    const env = call.host();
    const target = aggregationTarget(env, uuidText!, call.values.parent);
    let a;
    if (valueText === undefined) {
      a = readAggregation(env, target.uuid);
      if (a === undefined) {
        throw new CommandError(
          `${target.uuid} has no mdev/aggregation/value: ${target.active ? 'its type does not aggregate' : 'it is not running'}`,
        );
      }
    } else {
      if (!/^[1-9][0-9]{0,6}$/.test(valueText)) {
        throw new UsageError(`VALUE is a number of instances (1 or more), not '${valueText}'`);
      }
      a = setAggregation(env, target, Number(valueText));
    }
    const stored = valueText !== undefined && target.definition !== undefined;
    call.output({ uuid: target.uuid, parent: target.parent, ...a }, () => {
      const max = a.max === undefined ? '' : ` (at most ${a.max})`;
      const where = stored ? `; stored in its definition on ${target.parent}` : '';
      return `${target.uuid} aggregates ${a.value}${max}${where}\n`;
    });
  },
});
