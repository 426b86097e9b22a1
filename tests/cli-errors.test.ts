import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENGINE_IDS } from '../harness/engines/types.js';
import { loadRun } from '../harness/results/read.js';
import { RUN_FLAG_NAMES } from '../harness/run/flags.js';
import { fwbench, tempDir } from './helpers.js';

/**
 * The bad-input corpus: every command's flags, config files and results files. Each entry is one
 * test asserting the exit code (2) and the one-line message naming what was wrong and what is
 * allowed. Each fails before any engine starts: a run's output folder is never even created.
 */

/** Files the entries point at, made once. */
interface Ctx {
  /** A scratch folder. */
  dir: string;
  /** A valid run folder of the current schema (from the committed fwbench 0.1.0 run, upgraded). */
  run: string;
  /** A folder that no entry may create (a run's --out). */
  never: string;
  /** Path of a scratch file with the given content. */
  file: (name: string, content: string) => string;
  /** A run.json made from the valid one by `edit`. */
  runJson: (name: string, edit: (run: Record<string, unknown>) => unknown) => string;
}

interface Entry {
  args: (c: Ctx) => string[];
  message: RegExp;
}

// The lists messages name, from their one declaration.
const ENGINES = ENGINE_IDS.join(', ');
const KEYS = RUN_FLAG_NAMES.join(', ');
const run =
  (...args: string[]) =>
  (c: Ctx): string[] => ['run', ...args, '--out', c.never];
const config =
  (name: string, content: string, ...more: string[]) =>
  (c: Ctx): string[] => ['run', '--config', c.file(name, content), ...more, '--out', c.never];
const arg = (flag: string, value: string, message: string): RegExp =>
  new RegExp(`option '${flag} <[a-z=.,]+>' argument '${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' is invalid\\. ${message}`);

const CORPUS: Record<string, Entry> = {
  // fwbench run: every flag
  'run: unknown engine': {
    args: run('--engines', 'onnxruntime,pytorch'),
    message: arg('--engines', 'onnxruntime,pytorch', `unknown engine 'pytorch'; valid engines: ${ENGINES}`),
  },
  'run: empty engine list': { args: run('--engines', ','), message: /argument ',' is invalid\. empty engine list; valid engines: onnxruntime/ },
  'run: unknown workload': {
    args: run('--workloads', 'mlp'),
    message: arg('--workloads', 'mlp', "unknown workload 'mlp'; valid workloads: cnn, rnn, transformer"),
  },
  'run: unknown preset': {
    args: run('--preset', 'resnet101'),
    message: arg(
      '--preset',
      'resnet101',
      "unknown preset 'resnet101'; valid presets: tiny, resnet18, resnet50, small, large, bert-mini, bert-base, gpt2-mini, gpt2-small; or one per workload: cnn=resnet18,rnn=small,transformer=bert-mini,decoder=gpt2-mini",
    ),
  },
  'run: unknown workload in per-workload presets': {
    args: run('--preset', 'cnn=resnet18,gan=tiny'),
    message: arg('--preset', 'cnn=resnet18,gan=tiny', "unknown workload 'gan' in workload=preset; valid workloads: cnn, rnn, transformer"),
  },
  'run: per-workload preset of another family': {
    args: run('--preset', 'rnn=bert-mini'),
    message: /^fwbench: unknown preset 'bert-mini' for workload 'rnn'; valid presets: tiny, small, large$/m,
  },
  'run: per-workload preset for a workload not run': {
    args: run('--workloads', 'cnn', '--preset', 'rnn=small'),
    message: /^fwbench: --preset names rnn, which --workloads does not run \(cnn\); drop it there or add it to workloads$/m,
  },
  'run: unknown size': { args: run('--size', 'huge'), message: arg('--size', 'huge', "unknown size 'huge'; valid sizes: tiny, small, base") },
  'run: one preset for all and a size': {
    args: run('--preset', 'tiny', '--size', 'base'),
    message:
      /^fwbench: --preset tiny names the preset of every workload, so --size would pick none: give one of them, or one preset per workload \(cnn=resnet18,rnn=small,transformer=bert-mini,decoder=gpt2-mini\) to override the size for those$/m,
  },
  'run: preset missing in one family': {
    args: run('--workloads', 'cnn,rnn', '--preset', 'resnet18'),
    message:
      /^fwbench: unknown preset 'resnet18' for workload 'rnn'; valid presets: tiny, small, large; give one preset per workload \(cnn=resnet18,rnn=small,transformer=bert-mini,decoder=gpt2-mini\) or a --size \(tiny, small, base\)$/m,
  },
  'run: unknown --set parameter': { args: run('--workloads', 'rnn', '--set', 'depth=3'), message: /unknown parameter 'depth'.*valid parameters: .*seq/ },
  'run: --set value breaks a rule': {
    args: run('--workloads', 'transformer', '--preset', 'tiny', '--set', 'heads=5'),
    message: /heads=5 must divide hidden=32/,
  },
  'run: --set value not an integer': {
    args: run('--workloads', 'rnn', '--set', 'seq=long'),
    message: /--set seq=long \(rnn\): 'long' is not an integer; seq is sequence length/,
  },
  'run: --set item without key': { args: run('--set', '=3'), message: /--set item '=3' is not key=value/ },
  'run: batch size 0': { args: run('--batch-sizes', '1,0'), message: arg('--batch-sizes', '1,0', 'must be a positive integer up to 65536, got 0') },
  'run: batch size not a number': {
    args: run('--batch-sizes', '1,x'),
    message: arg('--batch-sizes', '1,x', "must be a positive integer up to 65536, got 'x'"),
  },
  'run: empty batch size list': { args: run('--batch-sizes', ','), message: /empty batch size list; give positive integers/ },
  'run: unknown device': { args: run('--device', 'tpu'), message: arg('--device', 'tpu', "unknown device 'tpu'; valid devices: cpu, cuda") },
  'run: threads not a number': {
    args: run('--threads', 'many'),
    message: arg('--threads', 'many', "must be a positive integer or a list of them, got 'many'"),
  },
  'run: threads 0': { args: run('--threads', '0'), message: arg('--threads', '0', 'must be a positive integer up to 1024, got 0') },
  'run: negative seed': { args: run('--seed', '-3'), message: arg('--seed', '-3', 'must be a non-negative integer, got -3') },
  'run: fractional seed': { args: run('--seed', '1.5'), message: arg('--seed', '1.5', 'must be a non-negative integer, got 1.5') },
  'run: negative target interval': { args: run('--target-interval', '-1'), message: arg('--target-interval', '-1', 'must be a non-negative number, got -1') },
  'run: target interval as a word': {
    args: run('--target-interval', 'tight'),
    message: arg('--target-interval', 'tight', "must be a non-negative number, got 'tight'"),
  },
  'run: memory cap 0': { args: run('--max-memory-mb', '0'), message: arg('--max-memory-mb', '0', 'must be a positive integer up to 4194304, got 0') },
  'run: --resume of a folder without a run': {
    args: (c) => ['run', '--resume', c.dir],
    message: /^fwbench: cannot resume .*: it has no run\.json \(a run writes it before its first cell; this one never got that far, so start it again\)$/m,
  },
  'run: zero replicates': { args: run('--replicates', '0'), message: arg('--replicates', '0', 'must be a positive integer up to 100, got 0') },
  'run: negative min samples': { args: run('--min-samples', '-1'), message: arg('--min-samples', '-1', 'must be a positive integer up to 1000000, got -1') },
  'run: min time as text': {
    args: run('--min-time', 'abc'),
    message: arg('--min-time', 'abc', "must be a non-negative number of ms up to 3600000, got 'abc'"),
  },
  'run: negative max time': { args: run('--max-time', '-5'), message: arg('--max-time', '-5', 'must be a non-negative number of ms up to 3600000, got -5') },
  'run: warm-up time as text': {
    args: run('--warmup-max-time', '2s'),
    message: arg('--warmup-max-time', '2s', "must be a non-negative number of ms up to 3600000, got '2s'"),
  },
  'run: zero timeout': { args: run('--timeout', '0'), message: arg('--timeout', '0', 'must be a positive integer up to 604800, got 0') },
  'run: batch size far beyond the bound': {
    args: run('--batch-sizes', '1e9'),
    message: arg('--batch-sizes', '1e9', 'must be a positive integer up to 65536, got 1000000000'),
  },
  'run: a --set size that would not fit in memory': {
    args: run('--workloads', 'cnn', '--size', 'tiny', '--set', 'image=100000'),
    message:
      /^fwbench: cnn \(.*image=100000.*\): input at batch \d+ 'images' \[\d+x3x100000x100000\] would hold .* values; fwbench allows at most 2\^28 \(1 GiB of float32\) per tensor: lower the batch size or the --set sizes$/m,
  },
  'run: min time above max time': {
    args: run('--min-time', '500', '--max-time', '100'),
    message: /^fwbench: --min-time 500 exceeds --max-time 100: the timed loop must be allowed at least its minimum; give min-time <= max-time$/m,
  },
  'run: control characters in a name are escaped': { args: run('--engines', 'onnx\x1b[2Jruntime'), message: /unknown engine 'onnx\\x1b\[2Jruntime'/ },
  'config: YAML alias bomb': {
    args: config(
      'bomb.yaml',
      `a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [${'*a, '.repeat(8)}*a]\nc: &c [${'*b, '.repeat(8)}*b]\nd: &d [${'*c, '.repeat(8)}*c]\nengines: [*d]\n`,
    ),
    message: /bomb\.yaml: YAML aliases expand too much \(at most 100 alias uses; /,
  },
  'config: file too large': {
    args: config('huge.yaml', `# ${'x'.repeat(1 << 20)}\nengines: [onnxruntime]\n`),
    message: /--config .*huge\.yaml: \d+ bytes; a config file holds run flags and may be at most 1048576 bytes$/m,
  },
  'run: unknown mode': {
    args: run('--engines', 'onnxruntime', '--modes', 'turbo'),
    message: /unknown mode 'turbo' for engines onnxruntime; their modes: onnxruntime all\|extended\|basic\|disabled/,
  },
  'run: empty mode list': { args: run('--modes', ','), message: /empty mode list; give mode names \(see fwbench list\) or 'all'/ },
  'run: --quick with --rigorous': { args: run('--quick', '--rigorous'), message: /^fwbench: --quick and --rigorous exclude each other$/m },
  'run: unknown option': { args: run('--engine', 'onnxruntime'), message: /unknown option '--engine'/ },
  'run: flag without its value': { args: () => ['run', '--engines'], message: /option '--engines <list>' argument missing/ },
  'run: --out under a file': {
    args: (c) => ['run', '--out', join(c.file('plain.txt', 'x'), 'sub')],
    message: /--out .*plain\.txt\/sub: cannot create a folder under .*plain\.txt, which is a file/,
  },
  'run: --out is a file': { args: (c) => ['run', '--out', c.file('plain.txt', 'x')], message: /--out .*plain\.txt: exists and is not a folder; give a folder/ },
  'run: --config missing': { args: run('--config', '/nonexistent/bench.yaml'), message: /--config \/nonexistent\/bench\.yaml: no such file/ },
  'run: --config is a folder': { args: (c) => ['run', '--config', c.dir, '--out', c.never], message: /--config .*: is a folder; give a YAML or JSON file/ },

  // config files
  'config: unknown key': {
    args: config('a.yaml', 'engine: [onnxruntime]\n'),
    message: new RegExp(`a\\.yaml: unknown key 'engine'; valid keys: ${KEYS}$`, 'm'),
  },
  'config: camelCase key': {
    args: config('b.yaml', 'batchSizes: [1]\n'),
    message: /b\.yaml: unknown key 'batchSizes' \(did you mean 'batch-sizes'\?\); valid keys: engines/,
  },
  'config: unknown engine': {
    args: config('c.yaml', 'engines: [onnxruntime, pytorch]\n'),
    message: new RegExp(`c\\.yaml: engines\\[1\\]: unknown engine 'pytorch'; valid engines: ${ENGINES}$`, 'm'),
  },
  'config: batch size 0': {
    args: config('d.yaml', 'batch-sizes: [1, 0]\n'),
    message: /d\.yaml: batch-sizes\[1\]: must be a positive integer up to 65536, got 0$/m,
  },
  'config: list written as text': {
    args: config('e.yaml', 'batch-sizes: "1,8"\n'),
    message: /e\.yaml: batch-sizes: must be a list of positive integers, got '1,8'$/m,
  },
  'config: threads as text (JSON)': {
    args: config('f.json', '{"threads": "many"}'),
    message: /f\.json: threads: must be a positive integer or a list of them, got 'many'$/m,
  },
  'config: threads list with 0': {
    args: config('g.yaml', 'threads: [2, 0]\n'),
    message: /g\.yaml: threads\[1\]: must be a positive integer up to 1024, got 0$/m,
  },
  'config: YAML syntax error': { args: config('h.yaml', 'engines: [onnxruntime\n'), message: /h\.yaml: not valid YAML: .* at line 2, column 1$/m },
  'config: truncated JSON': { args: config('i.json', '{"threads": 2,'), message: /i\.json: not valid JSON: / },
  'config: a list, not a mapping': { args: config('j.yaml', '- engines\n'), message: /j\.yaml: must be a mapping of run flags \(engines, .*\), got a list$/m },
  'config: empty file': { args: config('k.yaml', ''), message: /k\.yaml: empty config file; give a mapping of run flags/ },
  'config: duplicate key': {
    args: config('l.yaml', 'engines: [onnxruntime]\nengines: [tfjs-wasm]\n'),
    message: /l\.yaml: not valid YAML: Map keys must be unique at line 2/,
  },
  'config: set breaks a rule': {
    args: config('m.yaml', 'workloads: [transformer]\npreset: tiny\nset: {heads: 5}\n'),
    message: /m\.yaml: set: invalid parameters for workload 'transformer': heads=5 must divide hidden=32$/m,
  },
  'config: set value of the wrong type': {
    args: config('n.yaml', 'set: {seq: [1, "x"]}\n'),
    message: /n\.yaml: set: must be a mapping of workload parameters \(seq: 37\) or 'key=value,\.\.\.' text, got \{"seq":\[1,"x"\]\}$/m,
  },
  'config: preset missing in one family': {
    args: config('o.yaml', 'preset: resnet18\nworkloads: [rnn]\n'),
    message:
      /o\.yaml: preset: unknown preset 'resnet18' for workload 'rnn'; valid presets: tiny, small, large; give one preset per workload \(cnn=resnet18,rnn=small,transformer=bert-mini,decoder=gpt2-mini\) or a --size \(tiny, small, base\)$/m,
  },
  'config: quick and rigorous': { args: config('p.yaml', 'quick: true\nrigorous: true\n'), message: /p\.yaml: quick and rigorous exclude each other$/m },
  'config: unknown mode': {
    args: config('q.yaml', 'engines: [onnxruntime]\nmodes: [turbo]\n'),
    message: /q\.yaml: modes: unknown mode 'turbo' for engines onnxruntime/,
  },
  'config: unknown device': { args: config('r.yaml', 'device: tpu\n'), message: /r\.yaml: device: unknown device 'tpu'; valid devices: cpu, cuda$/m },
  'config: switch given as yes': { args: config('s.yaml', 'quick: yes\n'), message: /s\.yaml: quick: must be true or false, got 'yes'$/m },
  'config: negative target interval (JSON)': {
    args: config('t.json', '{"target-interval": -0.5}'),
    message: /t\.json: target-interval: must be a non-negative number, got -0\.5$/m,
  },
  'config: the file is fine, the flag is not': {
    args: config('u.yaml', 'engines: [onnxruntime]\n', '--batch-sizes', '0'),
    message: arg('--batch-sizes', '0', 'must be a positive integer up to 65536, got 0'),
  },
  'config: an error in a value the flag overrides is still reported': {
    args: config('v.yaml', 'seed: -1\n', '--seed', '3'),
    message: /v\.yaml: seed: must be a non-negative integer, got -1$/m,
  },

  // other commands' flags
  'unknown command': { args: () => ['benchmark'], message: /unknown command 'benchmark'/ },
  'list: extra argument': { args: () => ['list', 'cnn'], message: /too many arguments for 'list'\. Expected 0 arguments but got 1/ },
  'detect: unknown option': { args: () => ['detect', '--verbose'], message: /unknown option '--verbose'/ },
  'export: no format': {
    args: (c) => ['export', '--workload', 'cnn', '--out', join(c.dir, 'x.onnx')],
    message: /required option '--format <format>' not specified/,
  },
  'export: unknown format': {
    args: (c) => ['export', '--workload', 'cnn', '--format', 'pt', '--out', join(c.dir, 'x')],
    message: /argument 'pt' is invalid\. Allowed choices are onnx, weights, inputs/,
  },
  'export: unknown workload': {
    args: (c) => ['export', '--workload', 'mlp', '--format', 'onnx', '--out', join(c.dir, 'x')],
    message: arg('--workload', 'mlp', "unknown workload 'mlp'; valid workloads: cnn, rnn, transformer"),
  },
  'export: unknown preset for the workload': {
    args: (c) => ['export', '--workload', 'cnn', '--preset', 'small', '--format', 'onnx', '--out', join(c.dir, 'x')],
    message: /unknown preset 'small' for workload 'cnn'; valid presets: tiny, resnet18, resnet50/,
  },
  'export: batch size 0': {
    args: (c) => ['export', '--workload', 'cnn', '--format', 'inputs', '--batch-size', '0', '--out', join(c.dir, 'x')],
    message: arg('--batch-size', '0', 'must be a positive integer, got 0'),
  },
  'export: --out in a missing folder': {
    args: () => ['export', '--workload', 'cnn', '--format', 'onnx', '--out', '/nonexistent/x.onnx'],
    message: /--out \/nonexistent\/x\.onnx: folder \/nonexistent does not exist/,
  },
  'export: --out is a folder': {
    args: (c) => ['export', '--workload', 'cnn', '--format', 'onnx', '--out', c.dir],
    message: /--out .*: is a folder; give a file name/,
  },
  'schema: --out is a file': { args: (c) => ['schema', '--out', c.file('plain.txt', 'x')], message: /--out .*plain\.txt: exists and is not a folder/ },
  'peak: unknown engine': { args: () => ['peak', '--engines', 'jax'], message: arg('--engines', 'jax', `unknown engine 'jax'; valid engines: ${ENGINES}`) },
  'peak: unknown device': { args: () => ['peak', '--device', 'tpu'], message: /argument 'tpu' is invalid\. Allowed choices are cpu, cuda/ },
  'peak: threads 0': { args: () => ['peak', '--threads', '0'], message: arg('--threads', '0', 'must be a positive integer, got 0') },
  'doctor: unknown engine': { args: () => ['doctor', '--engines', 'torch,caffe'], message: /unknown engine 'caffe'; valid engines: / },
  'doctor: threads as text': { args: () => ['doctor', '--threads', 'all'], message: arg('--threads', 'all', "must be a positive integer, got 'all'") },
  'setup: unknown target': { args: () => ['setup', 'tfjs-gpu'], message: /unknown set-up target 'tfjs-gpu'; valid targets: tfjs-node/ },
  'setup: --python missing': {
    args: () => ['setup', 'tfjs-node', '--python', '/nonexistent/python3'],
    message: /--python \/nonexistent\/python3: no such file; give the path of a Python interpreter/,
  },
  'report: threshold 100': {
    args: (c) => ['report', c.run, '--threshold', '100'],
    message: arg('--threshold', '100', 'must be a percentage in \\[0, 100\\), got 100'),
  },
  'report: negative threshold': { args: (c) => ['report', c.run, '--threshold', '-1'], message: /must be a percentage in \[0, 100\), got -1/ },
  'report: unknown format': {
    args: (c) => ['report', c.run, '--format', 'pdf'],
    message: /argument 'pdf' is invalid\. Allowed choices are html, md, csv, json/,
  },
  'report: missing claims file': {
    args: (c) => ['report', c.run, '--claims', '/nonexistent/claims.json'],
    message: /--claims \/nonexistent\/claims\.json: no such file/,
  },
  'report: output would follow a symbolic link': {
    args: (c) => {
      const dir = join(c.dir, 'linked-run');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'run.json'), readFileSync(join(c.run, 'run.json')));
      if (!existsSync(join(dir, 'report.html'))) symlinkSync(join(c.dir, 'victim.txt'), join(dir, 'report.html'));
      return ['report', dir];
    },
    message: /cannot write .*linked-run\/report\.html: is a symbolic link; fwbench does not write through links/,
  },
  'compare: unknown format': { args: (c) => ['compare', c.run, c.run, '--format', 'xml'], message: /Allowed choices are text, json, html/ },
  'compare: one run only': { args: (c) => ['compare', c.run], message: /missing required argument 'b'/ },
  'compare: threshold as text': { args: (c) => ['compare', c.run, c.run, '--threshold', 'five'], message: /must be a percentage in \[0, 100\), got 'five'/ },
  'merge: no --out': { args: (c) => ['merge', c.run], message: /required option '--out <dir>' not specified/ },
  'merge: --out is a file': { args: (c) => ['merge', c.run, '--out', c.file('plain.txt', 'x')], message: /--out .*plain\.txt: exists and is not a folder/ },
  'merge: --out holds a run': { args: (c) => ['merge', c.run, '--out', c.run], message: /run\.json exists: merge writes into a new or empty folder/ },

  // results files given to report, compare and merge
  'report: no run.json in the folder': { args: (c) => ['report', c.dir], message: /no run\.json at .*\/run\.json \(a run writes it before its first cell/ },
  'report: not JSON': { args: (c) => ['report', c.file('garbage.json', 'cells: ok\n')], message: /garbage\.json is corrupt or truncated: not valid JSON \(/ },
  'report: truncated run.json': {
    args: (c) => ['report', c.file('truncated.json', readFileSync(join(c.run, 'run.json'), 'utf8').slice(0, 2000))],
    message: /truncated\.json is corrupt or truncated: not valid JSON \(/,
  },
  'report: empty run.json': { args: (c) => ['report', c.file('empty.json', '')], message: /empty\.json is empty \(corrupt or truncated run\.json\)/ },
  'report: foreign JSON': {
    args: (c) => ['report', c.file('package.json', '{"name": "left-pad", "version": "1.3.0"}')],
    message: /package\.json is not an fwbench run\.json: it lacks "tool": \{"name": "fwbench"\} and "schemaVersion"/,
  },
  'report: JSON list': { args: (c) => ['report', c.file('list.json', '[1, 2, 3]')], message: /list\.json is not an fwbench run\.json/ },
  'report: newer schema version': {
    args: (c) => ['report', c.runJson('newer.json', (r) => ({ ...r, schemaVersion: 2, tool: { name: 'fwbench', version: '9.0.0' } }))],
    message: /newer\.json has schemaVersion 2 \(written by fwbench 9\.0\.0\), newer than this fwbench \S+ reads \(1-1\); update fwbench to read it/,
  },
  'report: schema version as text': {
    args: (c) => ['report', c.runJson('text-version.json', (r) => ({ ...r, schemaVersion: '1' }))],
    message: /text-version\.json has schemaVersion "1"; fwbench run\.json versions are positive integers/,
  },
  'report: a field of the wrong type': {
    args: (c) => [
      'report',
      c.runJson('wrong-field.json', (r) => ({ ...r, cells: (r.cells as Array<Record<string, unknown>>).map((x) => ({ ...x, batchSize: 'one' })) })),
    ],
    message: /wrong-field\.json is not a valid fwbench run\.json \(schema version 1\): cells\.0\.batchSize: /,
  },
  'compare: truncated B': {
    args: (c) => ['compare', c.run, c.file('truncated-b.json', '{"schemaVersion": 1, "tool": {"name": "fw')],
    message: /truncated-b\.json is corrupt or truncated/,
  },
  'compare: newer A': {
    args: (c) => ['compare', c.runJson('newer-a.json', (r) => ({ ...r, schemaVersion: 7 })), c.run],
    message: /newer-a\.json has schemaVersion 7 .*newer than this fwbench/,
  },
  'merge: a foreign file': {
    args: (c) => ['merge', c.run, c.file('foreign.json', '{"tool": {"name": "hyperfine"}, "results": []}'), '--out', join(c.dir, 'merged-never')],
    message: /foreign\.json is not an fwbench run\.json/,
  },
  'merge: a truncated file': {
    args: (c) => ['merge', c.run, c.file('truncated-m.json', '{'), '--out', join(c.dir, 'merged-never')],
    message: /truncated-m\.json is corrupt or truncated/,
  },
  // fwbench schedule / collect: refused before anything is written or submitted
  'schedule: unknown scheduler': {
    args: (c) => ['schedule', '--on', 'pbs', '--dry-run', '--out', c.never, '--', '--quick'],
    message: /option '--on <scheduler>' argument 'pbs' is invalid\. Allowed choices are slurm, k8s, skypilot, ssh\./,
  },
  'schedule: --config in the run flags': {
    args: (c) => ['schedule', '--on', 'slurm', '--dry-run', '--out', c.never, '--', '--config', c.file('job.yaml', 'engines: [onnxruntime]\n')],
    message: /--config in the run flags: a job cannot read a local config file; give its settings as run flags after --/,
  },
  'schedule: an option of another scheduler': {
    args: (c) => ['schedule', '--on', 'slurm', '--dry-run', '--hosts', 'me@gpu1', '--out', c.never, '--', '--quick'],
    message: /--hosts does not apply to --on slurm; its options: --results-dir, /,
  },
  'schedule: zero GPUs': {
    args: (c) => ['schedule', '--on', 'k8s', '--dry-run', '--gpus', '0', '--out', c.never, '--', '--quick'],
    message: arg('--gpus', '0', 'must be a positive integer, got 0'),
  },
  'schedule: GPUs for a CPU-only run': {
    args: (c) => ['schedule', '--on', 'slurm', '--dry-run', '--gpus', '1', '--out', c.never, '--', '--engines', 'torch', '--quick'],
    message: /^fwbench: --gpus 1 but the run flags select no GPU device \(--device cpu\): add --device cuda to the run flags after -- \(or drop --gpus\)$/,
  },
  'collect: no state file': {
    args: (c) => ['collect', join(c.dir, 'no-schedule-here')],
    message: /no-schedule-here\/state\.json does not exist: give the folder \(or its state\.json\) that fwbench schedule wrote/,
  },
};
describe('bad-input corpus: exit 2 and one line naming the field, the value and what is allowed', () => {
  let ctx: Ctx;
  beforeAll(() => {
    const dir = tempDir('fwbench-corpus-');
    const runDir = join(dir, 'run');
    mkdirSync(runDir);
    const valid = loadRun('tests/fixtures/runs/v0.1.0-34a4747');
    writeFileSync(join(runDir, 'run.json'), JSON.stringify(valid));
    ctx = {
      dir,
      run: runDir,
      never: join(dir, 'never-created'),
      file: (name, content) => {
        const path = join(dir, name);
        writeFileSync(path, content);
        return path;
      },
      runJson: (name, edit) => {
        const path = join(dir, name);
        writeFileSync(path, JSON.stringify(edit(JSON.parse(JSON.stringify(valid)) as Record<string, unknown>)));
        return path;
      },
    };
  });

  it('holds at least 50 entries', () => {
    expect(Object.keys(CORPUS).length).toBeGreaterThanOrEqual(50);
  });

  describe.concurrent.each(Object.entries(CORPUS))('%s', (_name, entry) => {
    it('exits 2 with its message', async () => {
      const r = await fwbench(entry.args(ctx));
      expect(r.exitCode, r.stderr).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toMatch(/^fwbench: /);
      expect(r.stderr).toMatch(entry.message);
      // One line, or commander's "(Did you mean ...?)" after it; never a stack trace.
      expect(lines.length === 1 || (lines.length === 2 && lines[1]!.startsWith('(Did you mean')), r.stderr).toBe(true);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).toBe('');
      expect(existsSync(ctx.never)).toBe(false);
      expect(existsSync(join(ctx.dir, 'merged-never'))).toBe(false);
      expect(existsSync(join(ctx.dir, 'victim.txt'))).toBe(false);
    });
  });
});
