/**
 * The TypeScript type of a JSON Schema written `as const`, for the subset kparty's route schemas
 * use: `const`, `enum`, `type` (`string`, `integer`, `number`, `boolean`, `array` with `items`,
 * `object` with `properties` and `required`). A property not in `required` is optional;
 * `format`, `pattern`, bounds and `description` do not change the type; an object without
 * `properties` is `Record<string, unknown>`. Anything else maps to `unknown`, so a schema that
 * outgrows this subset gives types that no longer type-check where they are used, rather than
 * wrong ones.
 *
 * @example
 * ```ts
 * const challengeSchema = { type: "object", required: ["challenge"], properties: { challenge: { type: "string" } } } as const;
 * type Challenge = SchemaType<typeof challengeSchema>; // { challenge: string }
 * ```
 */
export type SchemaType<S> = S extends { const: infer C }
  ? C
  : S extends { enum: readonly (infer E)[] }
    ? E
    : S extends { type: "string" }
      ? string
      : S extends { type: "integer" | "number" }
        ? number
        : S extends { type: "boolean" }
          ? boolean
          : S extends { type: "array"; items: infer I }
            ? SchemaType<I>[]
            : S extends { type: "object"; properties: infer P }
              ? ObjectType<P, S extends { required: readonly (infer R)[] } ? R : never>
              : S extends { type: "object" }
                ? Record<string, unknown>
                : unknown;

/** An object's properties: those in `Required` present, the others optional. */
type ObjectType<P, Required> = Flat<
  { -readonly [K in keyof P & Required]: SchemaType<P[K]> } & {
    -readonly [K in Exclude<keyof P, Required>]?: SchemaType<P[K]>;
  }
>;

/** One object type instead of an intersection (so equal types print, and compare, as equal). */
type Flat<T> = { [K in keyof T]: T[K] };

/**
 * `true` when `A` and `B` are the same type (not merely assignable either way); used as
 * `const _: TypesEqual<A, B> = true` to make tsc prove two types agree.
 */
export type TypesEqual<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
