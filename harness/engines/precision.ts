import type { Precision } from '../../workloads/precision.js';
import type { FamilyName } from '../../workloads/types.js';
import type { Device, EngineDescriptor } from './types.js';

/**
 * Why an engine cannot run a cell at a precision (its declared reason, or the limits of its way:
 * devices, families, modes), or undefined when it can; fp32 always can.
 */
export function precisionProblem(e: EngineDescriptor, precision: Precision, at: { device: Device; family: FamilyName; mode: string }): string | undefined {
  if (precision === 'fp32') return undefined;
  const way = e.precisions[precision];
  if (typeof way === 'string') return way;
  const outside = !way.devices.includes(at.device)
    ? `it runs ${precision} on ${way.devices.join(', ')} only`
    : way.families && !way.families.includes(at.family)
      ? `its ${precision} applies to ${way.families.join(', ')} only`
      : way.modes && !way.modes.includes(at.mode)
        ? `its ${precision} works in mode${way.modes.length > 1 ? 's' : ''} ${way.modes.join(', ')} only`
        : undefined;
  return outside && `${outside}${way.limits ? `: ${way.limits}` : ''}`;
}
