import { createHash } from "node:crypto"

/** JSON with sorted keys, so equal values hash equally. */
export const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v
  )

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex")

export const hashOf = (value: unknown): string => sha256(canonicalJson(value))

/**
 * `field:hash8,…` for each top-level field: stored as a label so that a
 * replacement can say which field changed.
 */
export const fieldHashes = (fields: Readonly<Record<string, unknown>>): string =>
  Object.keys(fields)
    .sort()
    .map((k) => `${k}:${hashOf(fields[k] ?? null).slice(0, 8)}`)
    .join(",")

/** Names of the fields whose short hashes differ between two `fieldHashes` strings. */
export const changedFields = (before: string | undefined, after: string): ReadonlyArray<string> => {
  const parse = (s: string) => new Map(s.split(",").filter((x) => x.includes(":")).map((x) => x.split(":") as [string, string]))
  if (before === undefined) return []
  const a = parse(before)
  const b = parse(after)
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort()
  return keys.filter((k) => a.get(k) !== b.get(k))
}
