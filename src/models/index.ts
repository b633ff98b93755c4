export {
  AGGREGATION_RULES,
  type Aggregation,
  type AggregationRule,
  DEFAULT_MAX_SAMPLES_PER_UPDATE,
  DEFAULT_TRIM_FRACTION,
  MAX_SAMPLES_LIMIT,
} from "./aggregation.ts";
export { accuracy, type Dataset, prng, slice, syntheticDataset, trainLocal } from "./logreg.ts";
export { FileModelStore, type ModelInfo, type RoundResult, type UpdateReceipt } from "./store.ts";
