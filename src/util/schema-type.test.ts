import { describe, expect, expectTypeOf, it } from "vitest";
import type { SchemaType, TypesEqual } from "./schema-type.ts";

const schema = {
  type: "object",
  required: ["id", "tags", "kind"],
  additionalProperties: false,
  properties: {
    id: { type: "string", format: "date-time" },
    count: { type: "integer" },
    ratio: { type: "number" },
    on: { type: "boolean" },
    tags: { type: "array", items: { type: "string" } },
    kind: { enum: ["a", "b"] },
    dtype: { const: "float32" },
    nested: {
      type: "object",
      required: ["x"],
      properties: { x: { type: "integer" }, y: { type: "string" } },
    },
    open: { type: "object" },
  },
} as const;

describe("SchemaType", () => {
  it("maps required properties to present ones and the others to optional ones, by type", () => {
    expectTypeOf<SchemaType<typeof schema>>().toEqualTypeOf<{
      id: string;
      tags: string[];
      kind: "a" | "b";
      count?: number;
      ratio?: number;
      on?: boolean;
      dtype?: "float32";
      nested?: { x: number; y?: string };
      open?: Record<string, unknown>;
    }>();
    const value: SchemaType<typeof schema> = { id: "2026-01-01T00:00:00Z", tags: [], kind: "a" };
    expect(value).toEqual({ id: "2026-01-01T00:00:00Z", tags: [], kind: "a" });
  });

  it("maps what is outside its subset to unknown", () => {
    expectTypeOf<SchemaType<{ oneOf: [{ type: "string" }] }>>().toEqualTypeOf<unknown>();
  });

  it("tells equal types from types assignable one way only", () => {
    const same: [
      TypesEqual<{ a: string }, { a: string }>,
      TypesEqual<{ a: string }, { a: string; b?: string }>,
    ] = [true, false];
    expect(same).toEqual([true, false]);
  });
});
