import * as tf from '@tensorflow/tfjs';
import type { Tensor, TensorMap } from '../../../workloads/safetensors.js';
import { int, type FamilyName } from '../../../workloads/types.js';
import { EngineUnavailable, type BuiltTrainer, type EngineSettings, type TrainRequest } from '../types.js';
import type { TfjsTrainable } from './model.js';

/**
 * The TF.js training step, as a TF.js user writes a custom loop: `tf.variableGrads` of the mean
 * softmax cross-entropy over the model's trainable variables, weight decay added to each gradient
 * (TF.js optimizers have none), then `tf.train.momentum`. Loaded only when a trainer is built.
 */

/**
 * Kernels that only the backward pass needs, by family: a backend without one can run the
 * model's inference but not its training step (the forward kernels are checked by inference).
 */
const GRADIENT_KERNELS: Partial<Record<FamilyName, Array<{ op: string; neededBy: string }>>> = {
  cnn: [
    { op: 'Conv2DBackpropFilter', neededBy: 'Conv2D with respect to its kernel' },
    { op: 'Conv2DBackpropInput', neededBy: 'Conv2D with respect to its input' },
    { op: 'MaxPoolGrad', neededBy: 'MaxPool' },
  ],
  rnn: [{ op: 'UnsortedSegmentSum', neededBy: 'GatherV2, the Embedding lookup' }],
  transformer: [{ op: 'UnsortedSegmentSum', neededBy: 'GatherV2, the word-embedding lookup' }],
};

const cannotTrain = (engine: string, family: FamilyName, backend: string, op: string, neededBy: string): EngineUnavailable =>
  new EngineUnavailable(
    `${engine} cannot train ${family}: the ${backend} backend has no kernel for ${op} (needed by the gradient of ${neededBy})`,
    `train ${family} with TensorFlow.js on tfjs-node (native libtensorflow) or tfjs-cpu, which have ${op}; ${engine} can still run its inference`,
  );

/** Throws EngineUnavailable, naming the op, when the backend lacks a kernel the family's backward pass needs. */
export function checkGradientKernels(engine: string, family: FamilyName, backend: string): void {
  for (const { op, neededBy } of GRADIENT_KERNELS[family] ?? []) {
    if (!tf.getKernel(op, backend)) throw cannotTrain(engine, family, backend, op, neededBy);
  }
}

/** TF.js' own error for a missing kernel, turned into the same EngineUnavailable (for kernels the table does not list). */
function classify(e: unknown, engine: string, family: FamilyName): unknown {
  const m = /Kernel '(\w+)' not registered for backend '(\w+)'/.exec(e instanceof Error ? e.message : String(e));
  return m ? cannotTrain(engine, family, m[2]!, m[1]!, 'the training step') : e;
}

/** A copy of a float32 tensor in host memory. */
async function host(t: tf.Tensor): Promise<Tensor> {
  return { dtype: 'F32', shape: [...t.shape], data: Float32Array.from(await t.data()) };
}

/** What the runtime passes along: who trains, and how to make sure its backend is the active one. */
export interface TrainerContext {
  engine: string;
  backend: string;
  settings: EngineSettings;
  /** Re-selects the engine's backend (tests train several backends in one process; a no-op in a worker). */
  select(): Promise<void>;
}

/** Wraps a trainable TF.js model in the training step of the recipe, on the request's fixed batch. */
export function tfjsTrainer(model: TfjsTrainable, req: TrainRequest, ctx: TrainerContext): BuiltTrainer {
  const { learningRate, momentum, weightDecay } = req.recipe;
  const classes = int(req.params, 'classes');
  if (req.labels.length !== req.batchSize) throw new Error(`${req.labels.length} labels for a batch of ${req.batchSize}`);
  // The batch as a TF.js user holds it, made once outside the timed steps: input tensor and one-hot labels.
  const x = model.toInput(req.inputs);
  const oneHot = tf.tidy(() => tf.oneHot(tf.tensor1d(req.labels, 'int32'), classes).toFloat());
  const trainable = model.state.filter((s) => s.trainable);
  const variables = trainable.map((s) => s.variable);
  // tf.train.momentum: accumulation <- momentum * accumulation + g; w <- w - learningRate * accumulation.
  // Its accumulators start at zero, so the first step's accumulation is momentum * 0 + g = g:
  // exactly torch.optim.SGD's buffer (buf = g at the first step, then momentum * buf + g).
  const optimizer = tf.train.momentum(learningRate, momentum);
  const loss = (): tf.Scalar => tf.losses.softmaxCrossEntropy(oneHot, model.forward(x), undefined, 0, tf.Reduction.MEAN) as tf.Scalar;

  return {
    settings: { ...ctx.settings, optimizer: 'tf.train.momentum', gradients: 'tf.variableGrads' },
    async step(wantGrads) {
      await ctx.select();
      let out: { value: tf.Scalar; raw: tf.Tensor[] };
      try {
        out = tf.tidy(() => {
          const { value, grads } = tf.variableGrads(loss, variables);
          // Coupled weight decay (PyTorch's SGD weight_decay): g + weightDecay * w, before momentum.
          optimizer.applyGradients(
            variables.map((v) => ({ name: v.name, tensor: weightDecay > 0 ? tf.add(grads[v.name]!, tf.mul(v, weightDecay)) : grads[v.name]! })),
          );
          // tidy keeps what it returns: the loss, and the raw gradients (before weight decay) when asked for.
          return { value, raw: wantGrads ? variables.map((v) => grads[v.name]!) : [] };
        });
      } catch (e) {
        throw classify(e, ctx.engine, req.family);
      }
      try {
        // The step's one readback to the host.
        const [lossValue] = await out.value.data();
        if (!wantGrads) return { loss: lossValue! };
        const grads: TensorMap = new Map();
        for (const [i, g] of out.raw.entries()) grads.set(trainable[i]!.name, await host(g));
        return { loss: lossValue!, grads };
      } finally {
        tf.dispose([out.value, ...out.raw]);
      }
    },
    async state() {
      await ctx.select();
      const state: TensorMap = new Map();
      for (const s of model.state) state.set(s.name, await host(s.variable));
      return state;
    },
    async dispose() {
      tf.dispose([x, oneHot]);
      optimizer.dispose();
      // MomentumOptimizer.dispose (tfjs-core 4.22) frees its momentum scalar and accumulators but
      // not the learning-rate scalar its SGD base class keeps (`c`): one tensor per trainer.
      tf.dispose((optimizer as unknown as { c?: tf.Tensor }).c);
      model.dispose();
    },
  };
}
