export { FileModelStore, type ModelInfo } from "./store.ts";
