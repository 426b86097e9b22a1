import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ResultsStore, SCHEMA_VERSION, type Cell } from '../harness/results/schema.js';
import { tempDir } from './helpers.js';

const cell = (id: string): Cell => ({
  id,
  engine: 'onnxruntime',
  framework: 'ONNX Runtime',
  mode: 'all',
  device: 'cpu',
  workload: 'rnn',
  preset: 'tiny',
  params: {},
  batchSize: 1,
  seed: 0,
  flops: 1,
  startedAt: 't',
  status: 'skipped',
  reason: 'r',
  durationMs: 0,
});

describe('results store (cells.jsonl, run.json)', () => {
  it('appends one versioned line per cell and reads them back', () => {
    const s = new ResultsStore(tempDir());
    s.appendCell(cell('a'));
    s.appendCell(cell('b'));
    const lines = readFileSync(s.cellsPath, 'utf8').split('\n');
    expect(lines).toHaveLength(3);
    expect(JSON.parse(lines[0]!)).toMatchObject({ schemaVersion: SCHEMA_VERSION, id: 'a' });
    const warnings: string[] = [];
    expect(s.readCells((w) => warnings.push(w)).map((c) => c.id)).toEqual(['a', 'b']);
    expect(warnings).toEqual([]);
  });

  it('drops a truncated last line with a warning and cuts it from the file, so appends continue cleanly', () => {
    const s = new ResultsStore(tempDir());
    s.appendCell(cell('a'));
    const good = readFileSync(s.cellsPath, 'utf8');
    appendFileSync(s.cellsPath, '{"schemaVersion":1,"id":"b","eng');
    const warnings: string[] = [];
    expect(s.readCells((w) => warnings.push(w)).map((c) => c.id)).toEqual(['a']);
    expect(warnings).toEqual([`${s.cellsPath}: dropped a truncated last line (32 bytes, line 2); that cell will run again`]);
    expect(readFileSync(s.cellsPath, 'utf8')).toBe(good);
    s.appendCell(cell('b'));
    expect(s.readCells(() => undefined).map((c) => c.id)).toEqual(['a', 'b']);
  });

  it('refuses a bad line before the last, and a line of another schema version', () => {
    const s = new ResultsStore(tempDir());
    writeFileSync(s.cellsPath, `{"id":\n${JSON.stringify({ schemaVersion: 1, ...cell('a') })}\n`);
    expect(() => s.readCells(() => undefined)).toThrow(`${s.cellsPath}:1 is not a cell record of schema version 1 (not JSON)`);
    writeFileSync(s.cellsPath, `${JSON.stringify({ schemaVersion: 2, ...cell('a') })}\n`);
    expect(() => s.readCells(() => undefined)).toThrow(`${s.cellsPath}:1 is not a cell record of schema version 1 (schemaVersion: Invalid input: expected 1)`);
  });

  it('never leaves half a run.json: an invalid run is refused before any file is touched, the previous run.json stays whole', () => {
    const dir = tempDir();
    const s = new ResultsStore(dir);
    writeFileSync(s.runPath, '{"previous": true}\n');
    expect(() => s.writeRun({} as never)).toThrow();
    expect(readdirSync(dir)).toEqual(['run.json']);
    expect(readFileSync(join(dir, 'run.json'), 'utf8')).toBe('{"previous": true}\n');
  });
});
