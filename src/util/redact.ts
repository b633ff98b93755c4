/** What replaces a redacted part. */
export const REDACTED = "***";

/** scheme://[userinfo@]authority[path][?query][#fragment], for one URL on its own. */
const URL_PARTS = /^([a-z][a-z0-9+.-]*:\/\/)(?:([^@/?#\s]*)@)?([^/?#\s]*)([^?#\s]*)(\?[^#\s]*)?(#\S*)?$/i;
/** A URL inside free text (an error message, a JSON dump): it ends at whitespace, a quote or a backslash. */
const URL_IN_TEXT = /[a-z][a-z0-9+.-]*:\/\/[^\s"'`<>\\]+/gi;
/** Path segments kept as they are: API versions (`/v3/`), which name no account. */
const VERSION_SEGMENT = /^v\d{1,3}$/i;
/** Shorter strings are not looked for in text: they would match ordinary words, and hide nothing. */
const MIN_SECRET_LENGTH = 4;

/**
 * A URL with everything that may carry a credential replaced by `***`: the userinfo, every
 * path segment but API versions, every query value and the fragment. Scheme, host and port
 * stay, so an operator still sees which node failed. A URL with none of these comes back
 * unchanged; a string that is not a URL comes back as `***`.
 *
 * @example
 * ```ts
 * redactUrl("https://user:pass@mainnet.infura.io/v3/0123abcd?x=1") // "https://***@mainnet.infura.io/v3/***?x=***"
 * ```
 */
export function redactUrl(url: string): string {
  const m = URL_PARTS.exec(url);
  if (!m) return REDACTED;
  const [, scheme, userinfo, authority, path = "", query, fragment] = m;
  const segments = path
    .split("/")
    .map((s) => (s === "" || VERSION_SEGMENT.test(s) ? s : REDACTED))
    .join("/");
  const params =
    query === undefined
      ? ""
      : `?${query
          .slice(1)
          .split("&")
          .map((p) => {
            const eq = p.indexOf("=");
            return eq < 0 ? (p === "" ? p : REDACTED) : `${p.slice(0, eq + 1)}${REDACTED}`;
          })
          .join("&")}`;
  return `${scheme}${userinfo === undefined ? "" : `${REDACTED}@`}${authority}${segments}${params}${fragment === undefined ? "" : `#${REDACTED}`}`;
}

/**
 * The parts of `url` that {@link redactUrl} hides and that are long enough to look for in
 * text (user, password, path segments, query values; raw and percent-decoded), so that they
 * are also found where a node echoes only a path, or a library prints them apart.
 *
 * @example
 * ```ts
 * secretsOfUrl("http://alice:s3cret@node:8545/v3/key0123") // ["alice", "s3cret", "key0123"]
 * ```
 */
export function secretsOfUrl(url: string): string[] {
  const m = URL_PARTS.exec(url);
  if (!m) return url.length >= MIN_SECRET_LENGTH ? [url] : [];
  const [, , userinfo, , path = "", query] = m;
  const parts = [
    ...(userinfo === undefined ? [] : userinfo.split(":")),
    ...path.split("/").filter((s) => !VERSION_SEGMENT.test(s)),
    ...(query === undefined
      ? []
      : query
          .slice(1)
          .split("&")
          .map((p) => p.slice(p.indexOf("=") + 1))),
  ];
  const found = new Set<string>();
  for (const part of parts) {
    for (const form of [part, decodeOrSelf(part)]) if (form.length >= MIN_SECRET_LENGTH) found.add(form);
  }
  return [...found];
}

/**
 * `text` (an error message, a stack, a log line) with every URL in it passed through
 * {@link redactUrl}, and every occurrence of the `known` secrets (see {@link secretsOfUrl})
 * replaced by `***`. For anything written to an operator's log or a terminal.
 *
 * @example
 * ```ts
 * redactSecrets('failed (info={"requestUrl": "https://node/v3/k3y"})') // 'failed (info={"requestUrl": "https://node/v3/***"})'
 * ```
 */
export function redactSecrets(text: string, known: readonly string[] = []): string {
  let out = text;
  for (const secret of [...known].sort((a, b) => b.length - a.length)) {
    if (secret.length >= MIN_SECRET_LENGTH) out = out.split(secret).join(REDACTED);
  }
  return out.replace(URL_IN_TEXT, (url) => redactUrl(url));
}

function decodeOrSelf(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
