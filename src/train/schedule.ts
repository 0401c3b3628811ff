// Learning-rate schedules (transformers' shapes): linear warmup from 0, then constant, linear decay or
// cosine decay to min_lr_ratio × lr at the last step.
export interface ScheduleSpec {
  lr: number;
  schedule: 'constant' | 'linear' | 'cosine';
  warmupSteps: number;
  totalSteps: number;
  minLrRatio?: number;
}

/** The learning rate of optimizer step `step` (1-based). */
export function learningRate(s: ScheduleSpec, step: number): number {
  const min = s.minLrRatio ?? 0;
  if (s.warmupSteps > 0 && step <= s.warmupSteps) return (s.lr * step) / s.warmupSteps;
  if (s.schedule === 'constant') return s.lr;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, Math.max(0, (step - s.warmupSteps) / span));
  const f = s.schedule === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
  return s.lr * (min + (1 - min) * f);
}
