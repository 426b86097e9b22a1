import * as echarts from 'echarts';
import type { ColdStart } from '../results/schema.js';
import {
  cellTask,
  COLD_START_MESSAGES,
  COLD_START_SEGMENTS,
  COLD_START_UNSPLIT,
  coldStartRest,
  engineMode,
  type CellView,
  type RunModel,
  type WorkloadSection,
} from './model.js';

/**
 * Charts as inline SVG, rendered when the report is made (ECharts' server-side SVG renderer, no
 * browser, no DOM): the report then needs no script and no network to show them. ECharts escapes
 * the text it draws, so labels from run.json cannot break out of the SVG.
 */

/** A rendered chart. */
export interface Chart {
  /** Stable id (for tests and links). */
  id: string;
  /** Caption, with units. */
  caption: string;
  svg: string;
}

const WIDTH = 580;

function render(option: echarts.EChartsCoreOption, height: number): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width: WIDTH, height });
  try {
    chart.setOption({ animation: false, textStyle: { fontFamily: 'system-ui, sans-serif' }, ...option });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

const grid = { left: 70, right: 20, top: 40, bottom: 70, containLabel: false };
const legend = { top: 5, type: 'scroll' as const, itemGap: 18 };
const categoryAxis = (data: string[], name: string) => ({
  type: 'category' as const,
  data,
  name,
  nameLocation: 'middle' as const,
  nameGap: 45,
  axisLabel: { interval: 0, rotate: data.length > 4 ? 20 : 0 },
});
/** A value axis; a log axis starts at the decade below its smallest value (bars grow up from there, never down from 1). */
const valueAxis = (name: string, log: boolean, values: number[] = []) => {
  const positive = values.filter((v) => v > 0);
  const min = log && positive.length > 0 ? 10 ** Math.floor(Math.log10(Math.min(...positive))) : undefined;
  return {
    type: log ? ('log' as const) : ('value' as const),
    name,
    nameLocation: 'middle' as const,
    nameGap: 55,
    ...(min === undefined ? {} : { min, startValue: min }),
  };
};

const okCells = (s: WorkloadSection): CellView[] => s.groups.flatMap((g) => g.cells).filter((v) => v.cell.status === 'ok');
const seriesNames = (cells: CellView[]): string[] => [...new Set(cells.map((v) => engineMode(v.cell)))];

/** Per-batch bars over engine/mode categories of one figure per cell. */
function barsByBatch(s: WorkloadSection, value: (v: CellView) => number | undefined, axisName: string, log: boolean): string {
  const cells = okCells(s);
  const categories = seriesNames(cells);
  const series = s.groups.map((g) => ({
    name: `batch ${g.batchSize}`,
    type: 'bar' as const,
    data: categories.map((name) => {
      const cell = g.cells.find((v) => v.cell.status === 'ok' && engineMode(v.cell) === name);
      return (cell && value(cell)) ?? '-';
    }),
  }));
  const values = series.flatMap((x) => x.data.filter((v): v is number => typeof v === 'number'));
  return render({ legend, grid, xAxis: categoryAxis(categories, 'engine/mode'), yAxis: valueAxis(axisName, log, values), series }, 340);
}

/** The charts of one workload section: latency distribution, throughput vs batch, peak memory, GFLOP/s, cold start. */
export function sectionCharts(s: WorkloadSection, sectionIndex: number): Chart[] {
  const cells = okCells(s);
  if (cells.length === 0) return [];
  const names = seriesNames(cells);
  const find = (batch: number, name: string): CellView | undefined =>
    s.groups.find((g) => g.batchSize === batch)?.cells.find((v) => v.cell.status === 'ok' && engineMode(v.cell) === name);
  const id = (what: string): string => `chart-${sectionIndex}-${what}`;
  const charts: Chart[] = [];

  charts.push({
    id: id('latency'),
    caption:
      'Latency distribution per engine/mode and batch size (ms, log scale): box = quartiles, line = median, whiskers = furthest samples within 1.5 IQR; outliers not drawn.',
    svg: render(
      {
        legend,
        grid,
        xAxis: categoryAxis(names, 'engine/mode'),
        yAxis: valueAxis('latency (ms)', true),
        series: s.groups.map((g) => ({
          name: `batch ${g.batchSize}`,
          type: 'boxplot' as const,
          data: names.map((name) => find(g.batchSize, name)?.latency?.tukeyBoxMs ?? []),
        })),
      },
      360,
    ),
  });

  charts.push({
    id: id('throughput'),
    caption: 'Throughput vs batch size (samples/s, log scale): batch size / median latency.',
    svg: render(
      {
        legend,
        grid,
        xAxis: categoryAxis(
          s.groups.map((g) => String(g.batchSize)),
          'batch size',
        ),
        yAxis: valueAxis('samples/s', true),
        series: names.map((name) => ({
          name,
          type: 'line' as const,
          symbolSize: 8,
          connectNulls: true,
          data: s.groups.map((g) => find(g.batchSize, name)?.cell.throughput ?? '-'),
        })),
      },
      340,
    ),
  });

  charts.push({
    id: id('memory'),
    caption: 'Peak host memory of the worker process (MiB, VmHWM).',
    svg: barsByBatch(s, (v) => (v.cell.memory ? v.cell.memory.peakHostBytes / 2 ** 20 : undefined), 'peak host memory (MiB)', false),
  });
  charts.push({
    id: id('gflops'),
    caption: 'Achieved GFLOP/s (analytic FLOPs / median latency, log scale).',
    svg: barsByBatch(s, (v) => v.cell.gflops, 'GFLOP/s', true),
  });

  if (s.task === 'generate') {
    charts.push({
      id: id('ttft'),
      caption: 'Time to first token (ms): the prefill, median over the warm generations.',
      svg: barsByBatch(s, (v) => v.cell.generation?.ttftMs?.medianMs, 'TTFT (ms)', false),
    });
    charts.push({
      id: id('tpot'),
      caption: 'Time per output token (ms): every decode step, median over the warm generations.',
      svg: barsByBatch(s, (v) => v.cell.generation?.tpotMs?.medianMs, 'TPOT (ms)', false),
    });
  }

  const coldCells = cells.filter((v) => v.cell.coldStart);
  const colds = coldCells.map((v) => v.cell.coldStart!);
  const labels = coldCells.map((v) => `${engineMode(v.cell)} b${v.cell.batchSize}`);
  const part = (name: string, ms: (c: ColdStart) => number | undefined) => ({
    name,
    type: 'bar' as const,
    stack: 'cold',
    data: colds.map((c) => Math.max(0, ms(c) ?? 0)),
  });
  const restOf = (name: string) => part(name, (c) => (coldStartRest(c).name === name ? coldStartRest(c).ms : 0));
  // The unsplit rest only appears for records from before the segments were measured.
  const rests = colds.some((c) => coldStartRest(c).name === COLD_START_UNSPLIT) ? [COLD_START_MESSAGES, COLD_START_UNSPLIT] : [COLD_START_MESSAGES];
  charts.push({
    id: id('cold-start'),
    caption:
      'Cold start (ms), spawn to first output: process spawn to hello; framework import (and TensorFlow.js backend initialisation); reading the weight files; model build (ORT: session creation with its graph optimizations); compile / trace where the mode has one; first inference; messages = what the measured segments leave of the total (protocol messages between them).',
    svg: render(
      {
        // Every segment's name in view (a plain legend wraps to a second row; a scrolling one would hide some).
        legend: { ...legend, type: 'plain' as const },
        grid: { ...grid, left: 170, top: 60, bottom: 50 },
        yAxis: { type: 'category' as const, data: labels },
        xAxis: { type: 'value' as const, name: 'ms', nameLocation: 'middle' as const, nameGap: 30 },
        series: [...COLD_START_SEGMENTS.map((s) => part(s.name, s.ms)), ...rests.map(restOf)],
      },
      Math.max(220, 110 + 26 * labels.length),
    ),
  });
  return charts;
}

/**
 * The generation charts of a run that swept the prompt length: decode tokens/s and time to first
 * token against the prompt length, one line per workload, batch and engine/mode (with its cache).
 */
export function generationCharts(model: RunModel): Chart[] {
  const cells = model.cells.filter((v) => cellTask(v.cell) === 'generate' && v.cell.status === 'ok' && v.cell.generation?.ttftMs);
  const prompts = [...new Set(cells.map((v) => v.cell.generation!.promptLength))].sort((a, b) => a - b);
  if (prompts.length < 2) return [];
  const lines = new Map<string, CellView[]>();
  for (const v of cells) {
    const k = `${engineMode(v.cell)} ${v.cell.workload}/${v.cell.preset} b${v.cell.batchSize}`;
    lines.set(k, [...(lines.get(k) ?? []), v]);
  }
  const chart = (value: (v: CellView) => number | null | undefined, axis: string, log: boolean): string =>
    render(
      {
        legend,
        grid,
        xAxis: categoryAxis(prompts.map(String), 'prompt length (tokens)'),
        yAxis: valueAxis(axis, log),
        series: [...lines].map(([name, vs]) => ({
          name,
          type: 'line' as const,
          symbolSize: 8,
          connectNulls: true,
          data: prompts.map((p) => {
            const v = vs.find((x) => x.cell.generation!.promptLength === p);
            return (v && value(v)) ?? '-';
          }),
        })),
      },
      360,
    );
  return [
    {
      id: 'chart-generation-decode-rate',
      caption: 'Decode tokens/s against the prompt length (log scale): batch x (new tokens - 1) / the decode steps of a generation.',
      svg: chart((v) => v.cell.generation?.decodeTokensPerS, 'decode tokens/s', true),
    },
    {
      id: 'chart-generation-ttft',
      caption: 'Time to first token against the prompt length (ms, log scale).',
      svg: chart((v) => v.cell.generation?.ttftMs?.medianMs, 'TTFT (ms)', true),
    },
  ];
}
