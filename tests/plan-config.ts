import type { RunConfig } from '../harness/results/schema.js';
import { DEFAULT_MEASURE } from '../harness/worker/measure.js';

/** A run configuration for planning tests (no engine runs): tiny presets on the CPU, one thread, seed 0; `over` replaces any key. */
export const planConfig = (over: Partial<RunConfig> & Pick<RunConfig, 'engines' | 'workloads' | 'preset'>): RunConfig => ({
  batchSizes: [1],
  sets: [],
  device: 'cpu',
  threads: [1],
  seed: 0,
  measure: DEFAULT_MEASURE,
  cellTimeoutMs: 1000,
  ...over,
});
