export { accuracy, type Dataset, prng, slice, syntheticDataset, trainLocal } from "./logreg.ts";
export { FileModelStore, type ModelInfo, type UpdateReceipt } from "./store.ts";
