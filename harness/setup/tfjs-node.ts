import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { writeFileAtomic } from '../io/files.js';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { packageRoot, pythonInterpreter } from '../run/workers.js';

/**
 * Offline installation of @tensorflow/tfjs-node (or -gpu): the npm package's own install script
 * downloads libtensorflow and a prebuilt addon from Google's storage, which fails on machines
 * without that access. The TensorFlow Python wheel ships the same C API (headers under
 * tensorflow/include, symbols in libtensorflow_cc.so.2 + libtensorflow_framework.so.2), so we
 * install the npm package with its scripts skipped, point its deps/ folder at the wheel, build the
 * addon locally with node-gyp, and check that it loads.
 */

/** The tfjs-node version fwbench pins (it matches @tensorflow/tfjs). */
export const TFJS_NODE_VERSION = '4.22.0';
/** Written into the package's deps/ folder: where its libtensorflow came from (read by `detect`). */
export const ORIGIN_FILE = 'fwbench-libtensorflow.json';

/** A set-up step that cannot succeed here, with what to do about it. */
export class SetupError extends Error {
  override name = 'SetupError';
  constructor(
    message: string,
    /** What fixes it. */
    readonly fix: string,
  ) {
    super(message);
  }
}

/** Where the libtensorflow of a native tfjs package came from. */
export interface LibtensorflowOrigin {
  /** `tensorflow wheel` when fwbench built the addon, else the package's own download. */
  origin: string;
  /** TensorFlow version of the library. */
  tensorflowVersion: string;
  /** Python distribution that shipped it (tensorflow, tensorflow-cpu...). */
  distribution?: string;
  /** Folder of the library files. */
  libraryDir?: string;
  /** Interpreter whose site-packages held it. */
  python?: string;
  /** When the addon was built. */
  builtAt?: string;
}

/** Interpreters to look in: --python, else the one the Python runner uses (FWBENCH_PYTHON, the project venv, python3). */
export function pythonCandidates(explicit?: string): string[] {
  if (explicit) return [explicit];
  const runner = pythonInterpreter();
  return 'path' in runner ? [runner.path] : [];
}

interface WheelInfo {
  dir: string;
  version: string;
  distribution: string;
  python: string;
}

// Finds the installed TensorFlow package without importing it (an import takes seconds and
// initialises the runtime); prints JSON or nothing.
const FIND_TF = `
import importlib.util, importlib.metadata, json, sys
spec = importlib.util.find_spec("tensorflow")
if spec is None or not spec.submodule_search_locations:
    sys.exit(3)
dist, version = None, None
for name in ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"):
    try:
        version = importlib.metadata.version(name); dist = name; break
    except importlib.metadata.PackageNotFoundError:
        pass
print(json.dumps({"dir": list(spec.submodule_search_locations)[0], "version": version, "distribution": dist, "python": sys.executable}))
`;

/** Locates a TensorFlow wheel whose C API can serve tfjs-node, trying interpreters in order. */
export async function findTensorflowWheel(candidates: string[]): Promise<WheelInfo> {
  const tried: string[] = [];
  for (const py of candidates) {
    const r = await execa(py, ['-c', FIND_TF], { reject: false, timeout: 30_000 });
    if (r.exitCode === 0 && r.stdout.trim().startsWith('{')) {
      return JSON.parse(r.stdout.trim()) as WheelInfo;
    }
    tried.push(`${py} (${r.exitCode === 3 ? 'no tensorflow package' : r.failed && r.exitCode === undefined ? 'not found' : `exit ${r.exitCode}`})`);
  }
  throw new SetupError(
    `no Python with TensorFlow found; tried ${tried.join(', ') || 'none (no interpreter: FWBENCH_PYTHON unset, no python-runners/.venv, no python3)'}`,
    'bash python-runners/setup.sh (creates python-runners/.venv with tensorflow-cpu), or pass --python PATH',
  );
}

/** Files of the wheel that the addon compiles and links against. */
export function wheelCApi(dir: string): { include: string; libs: string[] } {
  const include = join(dir, 'include');
  const needed = [
    join(include, 'tensorflow', 'c', 'c_api.h'),
    join(include, 'tensorflow', 'c', 'eager', 'c_api.h'),
    join(dir, 'libtensorflow_cc.so.2'),
    join(dir, 'libtensorflow_framework.so.2'),
  ];
  const missing = needed.filter((f) => !existsSync(f));
  if (missing.length)
    throw new SetupError(
      `the TensorFlow wheel at ${dir} lacks the C API files ${missing.join(', ')}`,
      'install a Linux TensorFlow 2.x wheel (pip install tensorflow-cpu) that ships tensorflow/include and libtensorflow_cc.so.2',
    );
  return { include, libs: needed.slice(2) };
}

/** Folder of an installed npm package in this project, or undefined. */
function packageDir(pkg: string): string | undefined {
  try {
    return dirname(createRequire(join(packageRoot(), 'package.json')).resolve(`${pkg}/package.json`));
  } catch {
    return undefined;
  }
}

/** Node's own headers, so node-gyp never downloads them. */
function nodeHeadersDir(): string | undefined {
  for (const dir of [resolve(dirname(process.execPath), '..'), process.env.npm_config_nodedir].filter((d): d is string => !!d)) {
    if (existsSync(join(dir, 'include', 'node', 'node_api.h'))) return dir;
  }
  return undefined;
}

/** Reads the origin file a set-up wrote, if any. */
export function readOrigin(pkgDir: string): LibtensorflowOrigin | undefined {
  const f = join(pkgDir, 'deps', ORIGIN_FILE);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as LibtensorflowOrigin) : undefined;
}

/** Runs the whole offline installation; `log` receives one line per step. */
export async function setupTfjsNode(opts: {
  gpu?: boolean;
  python?: string;
  log: (line: string) => void;
}): Promise<{ packageDir: string; origin: LibtensorflowOrigin }> {
  const pkg = opts.gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  const other = opts.gpu ? '@tensorflow/tfjs-node' : '@tensorflow/tfjs-node-gpu';
  const wheel = await findTensorflowWheel(pythonCandidates(opts.python));
  const capi = wheelCApi(wheel.dir);
  opts.log(`found TensorFlow ${wheel.version} (${wheel.distribution}) at ${wheel.dir}`);
  const headers = nodeHeadersDir();
  if (!headers)
    throw new SetupError(
      `Node's C headers (include/node/node_api.h) are not next to ${process.execPath}`,
      'install the Node headers (Debian: apt-get install libnode-dev or nodejs-dev), or set npm_config_nodedir',
    );
  for (const tool of ['make', 'g++']) {
    if ((await execa(tool, ['--version'], { reject: false })).exitCode !== 0)
      throw new SetupError(`${tool} is not installed; node-gyp needs it to build the addon`, 'apt-get install -y g++ make');
  }

  let dir = packageDir(pkg);
  if (!dir) {
    opts.log(`installing ${pkg}@${TFJS_NODE_VERSION} from npm with its download scripts skipped`);
    const r = await execa('npm', ['install', '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', `${pkg}@${TFJS_NODE_VERSION}`], {
      cwd: packageRoot(),
      reject: false,
      all: true,
    });
    if (r.exitCode !== 0)
      throw new SetupError(
        `npm install ${pkg} failed: ${r.all
          ?.split('\n')
          .filter((l) => !l.startsWith('npm warn'))
          .slice(-3)
          .join(' | ')}`,
        'check access to the npm registry',
      );
    dir = packageDir(pkg);
    if (!dir) throw new SetupError(`${pkg} is still not resolvable after npm install`, 'run npm install in the project folder');
  }
  // npm also brings the other optional native package, without its scripts (so without an addon);
  // remove it so detect reports it as not installed rather than broken.
  const otherDir = packageDir(other);
  if (otherDir && !existsSync(join(otherDir, 'deps', ORIGIN_FILE)) && !existsSync(join(otherDir, 'lib'))) rmSync(otherDir, { recursive: true, force: true });

  const deps = join(dir, 'deps');
  rmSync(deps, { recursive: true, force: true });
  mkdirSync(join(deps, 'lib'), { recursive: true });
  symlinkSync(capi.include, join(deps, 'include'));
  // binding.gyp links -ltensorflow -ltensorflow_framework; the loader then looks for the
  // libraries' own sonames through the addon's rpath ($ORIGIN/../../deps/lib).
  const [cc, framework] = capi.libs as [string, string];
  for (const [name, target] of [
    ['libtensorflow.so', cc],
    ['libtensorflow_cc.so.2', cc],
    ['libtensorflow_framework.so', framework],
    ['libtensorflow_framework.so.2', framework],
  ] as const)
    symlinkSync(target, join(deps, 'lib', name));

  opts.log(`building the ${pkg} addon with node-gyp against TensorFlow ${wheel.version} (about a minute on 2 cores)`);
  const preGyp = join(dir, '..', '..', '.bin', 'node-pre-gyp');
  const gyp = existsSync(preGyp) ? preGyp : 'node-pre-gyp';
  const build = await execa(gyp, ['rebuild', `--nodedir=${headers}`], { cwd: dir, reject: false, all: true, env: { JOBS: 'max' } });
  if (build.exitCode !== 0) {
    const tail = (build.all ?? '')
      .split('\n')
      .filter((l) => /error|Error/.test(l))
      .slice(-5)
      .join(' | ');
    throw new SetupError(
      `building the ${pkg} addon failed: ${tail || `exit ${build.exitCode}`}`,
      'see the node-gyp output above; it needs python3, make and g++',
    );
  }
  const origin: LibtensorflowOrigin = {
    origin: 'tensorflow wheel',
    tensorflowVersion: wheel.version,
    distribution: wheel.distribution,
    libraryDir: wheel.dir,
    python: wheel.python,
    builtAt: new Date().toISOString(),
  };
  writeFileAtomic(join(deps, ORIGIN_FILE), `${JSON.stringify(origin, null, 2)}\n`);
  return { packageDir: dir, origin };
}
