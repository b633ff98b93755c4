/**
 * `value` as an integer from `min` to `max` if it is one, written in decimal digits; otherwise
 * null. The one reader of integers the user writes: command-line options and arguments, and
 * the values of the configuration file and its environment variables.
 */
export function integerIn(value: string, min: number, max = Number.MAX_SAFE_INTEGER): number | null {
  const n = Number(value);
  return /^\d+$/.test(value) && Number.isSafeInteger(n) && n >= min && n <= max ? n : null;
}
